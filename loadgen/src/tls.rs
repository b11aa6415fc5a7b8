//! TLS for the load (`--tls`): the client configuration (`--tls-ca` or `--tls-insecure`,
//! `--tls-resume`), the session store that makes resumption possible on every connection, the
//! probe that checks the server's certificate before any load is sent, and [`Link`], a
//! non-blocking socket with or without a rustls client session over it, which the engines
//! read and write without knowing which.
//!
//! One crypto provider, ring, as the servers use; the server decides the suite.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, NamedGroup,
    RootCertStore, SignatureScheme,
};
use serde::{Deserialize, Serialize};

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Against the certificates of this PEM file (`--tls-ca`): the server's own self-signed
    /// certificate, or the CA that signed it.
    Ca(PathBuf),
    /// Not at all (`--tls-insecure`): any certificate is taken; the handshake's signature is
    /// still checked. Marked in the report.
    Insecure,
}

/// The TLS options of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// How the server's certificate is checked.
    pub trust: Trust,
    /// Resume sessions (`--tls-resume`): every connection offers a ticket from an earlier one.
    pub resume: bool,
}

/// Most unused TLS 1.3 tickets kept: each handshake brings the server's (rustls sends two),
/// each resumption takes one, so the store only grows; the oldest go first.
const MAX_TICKETS: usize = 4096;

/// The session store of a run, shared by every connection: rustls' own memory cache keeps at
/// most eight tickets per server, too few for sixteen connections resuming at once.
#[derive(Debug, Default)]
pub struct Tickets {
    tls13: Mutex<VecDeque<Tls13ClientSessionValue>>,
    tls12: Mutex<Option<Tls12ClientSessionValue>>,
    kx_hint: Mutex<Option<NamedGroup>>,
}

impl Tickets {
    /// Unused TLS 1.3 tickets held, or 1 for a TLS 1.2 session (reusable).
    pub fn available(&self) -> usize {
        let tls12 = self.tls12.lock().map_or(0, |s| usize::from(s.is_some()));
        self.tls13.lock().map_or(0, |t| t.len()) + tls12
    }
}

impl ClientSessionStore for Tickets {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        if let Ok(mut hint) = self.kx_hint.lock() {
            *hint = Some(group);
        }
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        self.kx_hint.lock().ok().and_then(|h| *h)
    }

    fn set_tls12_session(&self, _: ServerName<'static>, value: Tls12ClientSessionValue) {
        if let Ok(mut session) = self.tls12.lock() {
            *session = Some(value);
        }
    }

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.tls12.lock().ok().and_then(|s| s.clone())
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {
        if let Ok(mut session) = self.tls12.lock() {
            *session = None;
        }
    }

    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        if let Ok(mut tickets) = self.tls13.lock() {
            if tickets.len() == MAX_TICKETS {
                tickets.pop_front();
            }
            tickets.push_back(value);
        }
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        // The newest: the least likely to have expired.
        self.tls13.lock().ok().and_then(|mut t| t.pop_back())
    }
}

/// What a run's TLS was: the `tls` key of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// Protocol version the server chose, e.g. `TLSv1_3`.
    pub version: String,
    /// Cipher suite the server chose, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub suite: String,
    /// `ca` (checked against `--tls-ca`) or `insecure` (`--tls-insecure`: not checked).
    pub verification: String,
    /// Whether sessions were resumed (`--tls-resume`).
    pub resume: bool,
}

/// Handshakes counted by kind as they complete, over the whole run (priming and warm-up
/// included), so that they can be set beside the server's own count.
#[derive(Debug, Default)]
pub struct HandshakeCounts {
    /// Full handshakes (a HelloRetryRequest's included).
    pub full: AtomicU64,
    /// Resumed handshakes.
    pub resumed: AtomicU64,
}

impl HandshakeCounts {
    /// Counts a completed handshake of `kind`.
    pub fn count(&self, kind: Option<HandshakeKind>) {
        match kind {
            Some(HandshakeKind::Resumed) => &self.resumed,
            _ => &self.full,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
}

/// A run's client side of TLS: its configuration, the name it asks for, its tickets.
#[derive(Debug, Clone)]
pub struct Client {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    /// The session store (used only with `--tls-resume`).
    pub tickets: Arc<Tickets>,
    /// The options it was made from.
    pub options: TlsOptions,
    /// Handshakes completed, by kind.
    pub counts: Arc<HandshakeCounts>,
}

/// The ring provider, whose suites and groups the client offers (the server chooses).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Client {
    /// The client for `target` (`HOST:PORT`, whose HOST is the name the certificate must
    /// carry). Errors name the flag and the file.
    pub fn new(target: &str, options: &TlsOptions) -> Result<Client, String> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("--tls: {e}"))?;
        let mut config = match &options.trust {
            Trust::Ca(path) => builder
                .with_root_certificates(roots(path)?)
                .with_no_client_auth(),
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                .with_no_client_auth(),
        };
        let tickets = Arc::new(Tickets::default());
        config.resumption = if options.resume {
            rustls::client::Resumption::store(tickets.clone())
        } else {
            rustls::client::Resumption::disabled()
        };
        Ok(Client {
            config: Arc::new(config),
            name: server_name(target)?,
            tickets,
            options: options.clone(),
            counts: Arc::default(),
        })
    }

    /// A fresh client session.
    pub fn session(&self) -> io::Result<ClientConnection> {
        let mut session = ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(io::Error::other)?;
        // The echo loadgen has queued but the socket has not taken stays bounded.
        session.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(session)
    }
}

/// Most TLS bytes a session holds that the socket has not taken.
const BUFFER_LIMIT: usize = 64 * 1024;

/// The certificates of `path` as trust anchors; the error names `--tls-ca`.
fn roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect())
        .map_err(|e| match e {
            rustls::pki_types::pem::Error::Io(io) => format!("--tls-ca: cannot read {shown}: {io}"),
            other => format!("--tls-ca: {shown} is not PEM: {other:?}"),
        })?;
    if certs.is_empty() {
        return Err(format!("--tls-ca: {shown} holds no certificate"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("--tls-ca: {shown}: {e}"))?;
    }
    Ok(roots)
}

/// The name the server's certificate must carry: the HOST of `HOST:PORT`, an IP address or a
/// DNS name.
fn server_name(target: &str) -> Result<ServerName<'static>, String> {
    let host = target.rsplit_once(':').map_or(target, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|_| format!("--tls: '{host}' of --addr is neither an IP address nor a DNS name"))
}

/// `--tls-insecure`: takes any certificate, still checks the handshake's signatures with it.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects to `addr` with blocking I/O, completes a handshake and one echo of `probe`, and
/// ends with `close_notify`: checks the certificate before the load starts (one clear error
/// instead of thousands of failed connections) and collects tickets for `--tls-resume`.
/// Returns the version and suite the server chose.
pub fn probe(client: &Client, addr: SocketAddr, timeout: Duration) -> Result<TlsInfo, String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("--tls: {what} {addr}: {e}");
    let mut socket =
        StdTcpStream::connect_timeout(&addr, timeout).map_err(|e| fail("cannot connect to", &e))?;
    let _ = socket.set_read_timeout(Some(timeout));
    let _ = socket.set_write_timeout(Some(timeout));
    let _ = socket.set_nodelay(true);
    let mut session = client
        .session()
        .map_err(|e| fail("cannot start TLS with", &e))?;
    while session.is_handshaking() {
        session
            .complete_io(&mut socket)
            .map_err(|e| handshake_error(addr, &client.options, &e))?;
    }
    client.counts.count(session.handshake_kind());
    let info = TlsInfo {
        version: session
            .protocol_version()
            .map_or("unknown".to_owned(), |v| format!("{v:?}")),
        suite: session
            .negotiated_cipher_suite()
            .map_or("unknown".to_owned(), |s| format!("{:?}", s.suite())),
        verification: match client.options.trust {
            Trust::Ca(_) => "ca",
            Trust::Insecure => "insecure",
        }
        .to_owned(),
        resume: client.options.resume,
    };
    // One echo: the tickets come before it.
    let message = b"echobench tls probe";
    let mut stream = rustls::Stream::new(&mut session, &mut socket);
    let mut echo = [0u8; 19];
    stream
        .write_all(message)
        .and_then(|()| stream.read_exact(&mut echo))
        .map_err(|e| fail("no echo over TLS from", &e))?;
    if &echo != message {
        return Err(fail("wrong echo over TLS from", &"bytes differ"));
    }
    session.send_close_notify();
    let _ = session.complete_io(&mut socket);
    let _ = socket.shutdown(Shutdown::Write);
    // To the server's EOF: closing with its close_notify unread would reset the connection.
    let _ = io::copy(&mut socket, &mut io::sink());
    Ok(info)
}

/// The probe's handshake error, in one line that says what to do about an untrusted
/// certificate.
fn handshake_error(addr: SocketAddr, options: &TlsOptions, e: &io::Error) -> String {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    match (&options.trust, certificate) {
        (Trust::Ca(ca), true) => format!(
            "--tls: {addr} presented a certificate that --tls-ca {} does not trust ({e}); pass \
             the server's certificate or its CA with --tls-ca, or --tls-insecure",
            ca.display()
        ),
        _ => format!("--tls: handshake with {addr} failed: {e}"),
    }
}

/// Collects tickets before the run with further probes until there are `wanted` (each full
/// handshake brings the server's tickets), at most `wanted` probes; the handshakes are
/// counted in the client's counts like any other.
pub fn prime(client: &Client, addr: SocketAddr, timeout: Duration, wanted: usize) {
    for _ in 0..wanted {
        if client.tickets.available() >= wanted || probe(client, addr, timeout).is_err() {
            break;
        }
    }
}

/// A connected socket, plain or with a TLS client session over it.
pub struct Link {
    /// The socket.
    pub socket: TcpStream,
    tls: Option<Box<ClientConnection>>,
}

/// A TLS error as an I/O error (classified as `other` by the engines).
fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Link {
    /// A plain link over `socket`.
    pub fn plain(socket: TcpStream) -> Link {
        Link { socket, tls: None }
    }

    /// Starts TLS over the link: the ClientHello is sent at once.
    pub fn start_tls(&mut self, session: ClientConnection) -> io::Result<()> {
        self.tls = Some(Box::new(session));
        self.push()
    }

    /// TLS: moves the handshake on with what the socket has; `Ok(Some(kind))` once it is
    /// complete, `Ok(None)` while it waits for the server. Plain: complete at once.
    pub fn handshake(&mut self) -> io::Result<Option<Option<HandshakeKind>>> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(Some(None));
        };
        while tls.is_handshaking() {
            match tls.read_tls(&mut self.socket) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        let _ = self.push();
                        return Err(invalid(e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        self.push()?;
        let tls = self
            .tls
            .as_ref()
            .map(|t| (t.is_handshaking(), t.handshake_kind()));
        Ok(match tls {
            Some((false, kind)) => Some(kind),
            _ => None,
        })
    }

    /// Writes what TLS holds for the socket until it is sent or the socket is full.
    pub fn push(&mut self) -> io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        while tls.wants_write() {
            match tls.write_tls(&mut self.socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether TLS still holds bytes for the socket.
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Whether a read shorter than the buffer proves the socket empty (plain only: TLS may
    /// hold decrypted bytes, or a record half read).
    pub fn short_read_drains(&self) -> bool {
        self.tls.is_none()
    }

    /// Ends our side: TLS sends `close_notify` first; then FIN.
    pub fn half_close(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            self.push()?;
        }
        self.socket.shutdown(Shutdown::Write)
    }
}

impl Write for Link {
    /// Plain: the socket's write. TLS: as much as the session's buffer takes, encrypted and
    /// sent as far as the socket takes it; `WouldBlock` when the buffer is full.
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.socket.write(bytes);
        };
        let n = tls.writer().write(bytes)?;
        self.push()?;
        if n == 0 && !bytes.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }
}

impl Read for Link {
    /// Plain: the socket's read. TLS: decrypted bytes, reading records from the socket until
    /// there are some; `Ok(0)` after the server's `close_notify`, `UnexpectedEof` for a FIN
    /// without one, `WouldBlock` when the socket has nothing more.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.socket.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
            let eof = match tls.read_tls(&mut self.socket) {
                Ok(n) => n == 0,
                Err(e) => return Err(e),
            };
            if let Err(e) = tls.process_new_packets() {
                let _ = self.push();
                return Err(invalid(e));
            }
            if eof {
                return match tls.reader().read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        Err(io::ErrorKind::UnexpectedEof.into())
                    }
                    done => done,
                };
            }
        }
    }
}
