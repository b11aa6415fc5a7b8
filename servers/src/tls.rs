//! TLS for the TCP models, with rustls: the server configuration every TLS model shares
//! ([`Tls`]), a TLS stream over any socket for the blocking models and the mio loop
//! ([`TlsStream`]), the handshake of the blocking models under a deadline, and
//! `echo-server --gen-cert` ([`gen_cert`]).
//!
//! One crypto provider for rustls and rcgen: *ring*. rustls' default, aws-lc-rs, builds a
//! large C library; ring's build is a fraction of it, and the one provider serves the
//! certificate generation and the handshakes alike.
//!
//! The rules every TLS model follows: TLS 1.3 and 1.2; the client ends with `close_notify` and
//! then its TCP half-close, the server flushes its echo, sends its own `close_notify` and closes;
//! an EOF without `close_notify` is counted ([`Ending::NoCloseNotify`]), not logged; a
//! handshake not complete within the handshake timeout ends the connection
//! ([`Ending::HandshakeTimeout`]), so a client that never sends a ClientHello cannot hold a
//! worker; rustls buffers at most [`MAX_PENDING`] bytes of records per connection, so
//! back-pressure holds as over plain TCP; sessions resume through a stateless ticketer made
//! once, before any fork, so that every forked child and prefork worker can open the others'
//! tickets.

use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rcgen::SanType;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{HandshakeKind, ServerConnection};

use crate::echo::{echo_blocking, HalfClose, MAX_PENDING};
use crate::endings::{Ending, Handshake, Outcome};
use crate::errors::{interrupted, timed_out, would_block};
use crate::work::Work;

/// The handshake timeout when `--tls-handshake-timeout` is not given.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a blocking handshake wakes to check the deadline and the stop signal.
const HANDSHAKE_TICK: Duration = Duration::from_millis(200);

/// What every TLS model is given: the rustls configuration (certificate, key, versions,
/// ticketer) and the handshake timeout.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificate chain and key (PEM) and builds the server configuration; errors
    /// name the flag and the file.
    pub fn load(cert: &Path, key: &Path, handshake_timeout: Duration) -> anyhow::Result<Tls> {
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| pem_error("--tls-cert", cert, e))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "--tls-cert {}: no certificate in the file",
            cert.display()
        );
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error("--tls-key", key, e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("cannot enable TLS 1.3 and 1.2")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("--tls-cert and --tls-key do not make a usable certificate and key")?;
        // Stateless tickets, keyed here, before any fork: every process opens every ticket.
        config.ticketer = Arc::new(SharedTicketer::new()?);
        // No per-process session cache: TLS 1.2 resumes by ticket too, in whichever process.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        // The server's order of suites decides, so that every client gets the same one.
        config.ignore_client_order = true;
        Ok(Tls {
            config: Arc::new(config),
            handshake_timeout,
        })
    }

    /// The rustls configuration, for the runtimes' own TLS streams.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.config)
    }

    /// How long a client has to complete its handshake.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// A new server-side TLS stream over `sock`, handshake not started.
    pub fn accept<S>(&self, sock: S) -> io::Result<TlsStream<S>> {
        let mut conn = ServerConnection::new(self.config()).map_err(io::Error::other)?;
        limit_buffers(&mut conn);
        Ok(TlsStream { sock, conn })
    }
}

/// Session tickets that every process forked after its creation can open: one
/// ChaCha20-Poly1305 key and key name, random, made once and never rotated (a benchmark server
/// lives for minutes).
///
/// rustls' own ring ticketer cannot serve forked workers: against partitioning-oracle attacks it
/// refuses ciphertexts longer than the longest it has produced itself, in its own process, so a
/// fresh child refuses every ticket its siblings issued. This one refuses ciphertexts beyond a
/// fixed bound instead, the same in every process.
struct SharedTicketer {
    key: ring::aead::LessSafeKey,
    key_name: [u8; 16],
}

impl SharedTicketer {
    /// Tickets live this long (TLS 1.3 allows up to 7 days).
    const LIFETIME_S: u32 = 6 * 60 * 60;
    /// The longest ticket it opens: far above a session's few hundred bytes.
    const MAX_CIPHERTEXT: usize = 2048;
    const NONCE: usize = 12;

    fn new() -> anyhow::Result<SharedTicketer> {
        use ring::rand::{SecureRandom, SystemRandom};
        let (mut key, mut key_name) = ([0u8; 32], [0u8; 16]);
        let random = SystemRandom::new();
        random
            .fill(&mut key)
            .and_then(|()| random.fill(&mut key_name))
            .map_err(|_| anyhow::anyhow!("cannot draw the session-ticket key"))?;
        let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &key)
            .map_err(|_| anyhow::anyhow!("cannot make the session-ticket key"))?;
        Ok(SharedTicketer {
            key: ring::aead::LessSafeKey::new(key),
            key_name,
        })
    }
}

impl std::fmt::Debug for SharedTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedTicketer")
    }
}

impl rustls::server::ProducesTickets for SharedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        Self::LIFETIME_S
    }

    /// `key_name ‖ nonce ‖ sealed(message) ‖ tag`, the key name as associated data.
    fn encrypt(&self, message: &[u8]) -> Option<Vec<u8>> {
        use ring::rand::SecureRandom;
        let mut nonce = [0u8; Self::NONCE];
        // A random nonce: a counter would link a client's tickets together.
        ring::rand::SystemRandom::new().fill(&mut nonce).ok()?;
        let mut ticket = Vec::with_capacity(16 + Self::NONCE + message.len() + 16);
        ticket.extend_from_slice(&self.key_name);
        ticket.extend_from_slice(&nonce);
        ticket.extend_from_slice(message);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(self.key_name),
                &mut ticket[16 + Self::NONCE..],
            )
            .ok()?;
        ticket.extend_from_slice(tag.as_ref());
        (ticket.len() <= Self::MAX_CIPHERTEXT).then_some(ticket)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() > Self::MAX_CIPHERTEXT {
            return None;
        }
        let (name, rest) = ticket.split_at_checked(16)?;
        let (nonce, sealed) = rest.split_at_checked(Self::NONCE)?;
        if name != self.key_name {
            return None;
        }
        let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, ring::aead::Aad::from(self.key_name), &mut sealed)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// ring, with the suites in the server's order: AES-128-GCM with SHA-256 first (TLS 1.3's
/// mandatory suite, and the cheapest here: AES-NI, and SHA-256 in hardware where SHA-512 is
/// not), then AES-256-GCM, then ChaCha20-Poly1305; TLS 1.2 likewise, ECDHE-ECDSA only (the
/// key is ECDSA). Clients disagree on their own order (OpenSSL puts AES-256 first, browsers
/// AES-128), so the server choosing keeps figures comparable whatever the client.
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::{cipher_suite as suite, default_provider};
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            suite::TLS13_AES_128_GCM_SHA256,
            suite::TLS13_AES_256_GCM_SHA384,
            suite::TLS13_CHACHA20_POLY1305_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..default_provider()
    }
}

/// Caps what rustls buffers for one connection: records waiting for the socket and plaintext
/// waiting to be encrypted, each at [`MAX_PENDING`], as the plain models cap pending echo.
pub fn limit_buffers(conn: &mut ServerConnection) {
    conn.set_buffer_limit(Some(MAX_PENDING));
}

fn pem_error(flag: &str, path: &Path, e: rustls::pki_types::pem::Error) -> anyhow::Error {
    let hint = match &e {
        rustls::pki_types::pem::Error::Io(io) if io.kind() == io::ErrorKind::NotFound => {
            " (make a certificate and key with `echo-server --gen-cert DIR`)"
        }
        _ => "",
    };
    anyhow::anyhow!("{flag} {}: {e}{hint}", path.display())
}

/// How a completed handshake went, for the counts.
pub fn handshake_of(conn: &ServerConnection) -> Option<Handshake> {
    match conn.handshake_kind()? {
        HandshakeKind::Resumed => Some(Handshake::Resumed),
        HandshakeKind::Full | HandshakeKind::FullWithHelloRetryRequest => Some(Handshake::Full),
    }
}

/// The ending an error gave a TLS connection whose handshake is complete.
pub fn ending_of(e: &io::Error) -> Ending {
    match e.kind() {
        // rustls' reader: the TCP stream ended without a `close_notify` first.
        io::ErrorKind::UnexpectedEof => Ending::NoCloseNotify,
        _ => Ending::of(e),
    }
}

/// Serves one connection of a blocking-style model to its end: the handshake first when `tls`
/// is given, then the echo (with `work`, over plain TCP: echo with a cost, request by
/// request, each within `idle` when `--idle-timeout` is given), with `tick` as the socket's
/// read and write timeout (a model that asks `stop` while a client is idle sets one). `record` is told the handshake as soon as it
/// completes (before any echo, so a client that has its echo sees it counted), then the
/// ending if it is unclean.
pub fn serve_connection(
    stream: TcpStream,
    tls: Option<&Tls>,
    (work, idle): (Option<&Work>, Option<Duration>),
    stop: &dyn Fn() -> bool,
    tick: Option<Duration>,
    record: &dyn Fn(&Outcome),
) {
    let ended = |ending| {
        record(&Outcome {
            handshake: None,
            ending: Some(ending),
        })
    };
    // After a handshake always (it leaves its own ticks); over plain TCP only to set one.
    let set_tick = |tcp: &TcpStream| {
        tcp.set_read_timeout(tick)
            .and_then(|()| tcp.set_write_timeout(tick))
    };
    let Some(tls) = tls else {
        if let Some(work) = work {
            let mut stream = stream;
            let served = match tick {
                Some(_) => set_tick(&stream).map_err(|e| Ending::of(&e)),
                None => Ok(()),
            };
            let served =
                served.and_then(|()| crate::work::serve_blocking(&mut stream, work, idle, stop));
            // Counted before `stream` closes: a client that sees it closed finds it counted.
            return served.unwrap_or_else(ended);
        }
        let mut stream = stream;
        let served = match tick {
            Some(_) => set_tick(&stream).and_then(|()| echo_blocking(&mut stream, stop)),
            None => echo_blocking(&mut stream, stop),
        };
        return served.unwrap_or_else(|e| ended(Ending::of(&e)));
    };
    let mut stream = match tls.accept(stream) {
        Ok(stream) => stream,
        Err(_) => return ended(Ending::Other),
    };
    match stream.handshake_blocking(tls.handshake_timeout(), stop) {
        Ok(handshake) => record(&Outcome {
            handshake,
            ending: None,
        }),
        Err(ending) => return ended(ending),
    }
    let served = set_tick(stream.socket()).and_then(|()| echo_blocking(&mut stream, stop));
    served.unwrap_or_else(|e| ended(ending_of(&e)));
}

/// A server-side TLS connection over a socket, read and written as a plain stream of
/// plaintext. Works on blocking sockets (a read waits for a whole record) and non-blocking
/// ones (`WouldBlock` as from the socket). Records owed to the client are sent before each
/// wait for the client's next, so neither side waits for the other.
pub struct TlsStream<S> {
    sock: S,
    conn: ServerConnection,
}

impl<S: Read + Write> TlsStream<S> {
    /// The socket under the TLS.
    pub fn socket(&self) -> &S {
        &self.sock
    }

    /// The socket under the TLS, mutably (to register it with a poll).
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.sock
    }

    /// The rustls connection.
    pub fn connection(&self) -> &ServerConnection {
        &self.conn
    }

    /// Whether records are waiting for the socket to take them.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Sends buffered records until none is left or the socket would block.
    pub fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads records from the socket and processes them (the client's EOF is rustls' to
    /// report, through its reader). A fatal TLS error sends its alert (as far as the socket
    /// takes it) and is `InvalidData`.
    fn read_records(&mut self) -> io::Result<()> {
        loop {
            match self.conn.read_tls(&mut self.sock) {
                Ok(_) => break,
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if let Err(tls) = self.conn.process_new_packets() {
            let _ = self.flush_tls();
            return Err(io::Error::new(io::ErrorKind::InvalidData, tls));
        }
        Ok(())
    }
}

impl TlsStream<TcpStream> {
    /// Completes the handshake on a blocking socket: within `timeout`, asking `stop` every
    /// [`HANDSHAKE_TICK`] at the latest. Leaves the socket's read and write timeouts at the last
    /// tick's: the caller sets the ones it serves with.
    ///
    /// One read or one write at a time, with the deadline checked between them: rustls'
    /// `complete_io` keeps reading while each read brings something, so a client that drips its
    /// ClientHello a byte at a time would hold the thread for as long as it likes.
    pub fn handshake_blocking(
        &mut self,
        timeout: Duration,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Handshake>, Ending> {
        let deadline = Instant::now() + timeout;
        while self.conn.is_handshaking() && !stop() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Ending::HandshakeTimeout);
            }
            let tick = Some(left.min(HANDSHAKE_TICK));
            let io = self
                .sock
                .set_read_timeout(tick)
                .and_then(|()| self.sock.set_write_timeout(tick))
                .and_then(|()| self.handshake_step());
            match io {
                Ok(()) => {}
                // The tick: check the deadline and `stop` again.
                Err(e) if timed_out(&e) || interrupted(&e) => {}
                Err(_) => return Err(Ending::HandshakeFailed),
            }
        }
        Ok(handshake_of(&self.conn))
    }

    /// One step of a handshake: one write of the records owed to the client, or else one read
    /// of the client's records and their processing. The client's EOF is `UnexpectedEof`.
    fn handshake_step(&mut self) -> io::Result<()> {
        if self.conn.wants_write() {
            return match self.conn.write_tls(&mut self.sock)? {
                0 => Err(io::ErrorKind::WriteZero.into()),
                _ => Ok(()),
            };
        }
        if self.conn.read_tls(&mut self.sock)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match self.conn.process_new_packets() {
            Ok(_) => Ok(()),
            Err(tls) => {
                // The alert that says why, as far as the socket takes it.
                let _ = self.flush_tls();
                Err(io::Error::new(io::ErrorKind::InvalidData, tls))
            }
        }
    }
}

impl<S: Read + Write> Read for TlsStream<S> {
    /// Plaintext from the client: `Ok(0)` after its `close_notify`, `UnexpectedEof` when the
    /// TCP stream ended without one.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                // No plaintext yet: get more records below.
                Err(e) if would_block(&e) => {}
                read => return read,
            }
            // Handshake flights and alerts go out before we wait for the client's next. A
            // client that is not reading does not stop us reading here: the echo path stops
            // at rustls' buffer limit.
            match self.flush_tls() {
                Err(e) if !timed_out(&e) => return Err(e),
                _ => {}
            }
            self.read_records()?;
        }
    }
}

impl<S: Read + Write> Write for TlsStream<S> {
    /// Takes plaintext up to rustls' buffer limit and sends what the socket takes now; the
    /// rest of the records wait in rustls for the next write, flush or read.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut n = self.conn.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            // rustls' buffer is full: room comes only from sending.
            self.flush_tls()?;
            n = self.conn.writer().write(buf)?;
        }
        // Bytes taken are taken: an error sending them shows again on the next call.
        let _ = self.flush_tls();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls()
    }
}

impl<S: Read + Write + HalfClose> HalfClose for TlsStream<S> {
    /// `close_notify`, sent with every record still buffered, then the TCP half-close. On a
    /// non-blocking socket `WouldBlock` means: call again when it is writable.
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush_tls()?;
        self.sock.shutdown_write()
    }
}

/// A connection of a model that serves plain TCP or TLS, chosen per run.
pub enum MaybeTls<S> {
    /// Plain TCP.
    Plain(S),
    /// TLS over the socket (boxed: a rustls connection is far larger than a socket).
    Tls(Box<TlsStream<S>>),
}

impl<S: Read + Write> MaybeTls<S> {
    /// The socket.
    pub fn socket_mut(&mut self) -> &mut S {
        match self {
            MaybeTls::Plain(sock) => sock,
            MaybeTls::Tls(tls) => tls.socket_mut(),
        }
    }

    /// Whether TLS records are waiting for the socket (never for plain TCP).
    pub fn wants_write(&self) -> bool {
        matches!(self, MaybeTls::Tls(tls) if tls.wants_write())
    }

    /// Whether a TLS handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        matches!(self, MaybeTls::Tls(tls) if tls.connection().is_handshaking())
    }

    /// The ending an error gave this connection.
    pub fn ending_of(&self, e: &io::Error) -> Ending {
        match self {
            MaybeTls::Plain(_) => Ending::of(e),
            MaybeTls::Tls(_) if self.is_handshaking() => Ending::HandshakeFailed,
            MaybeTls::Tls(_) => ending_of(e),
        }
    }
}

impl<S: Read + Write> Read for MaybeTls<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(sock) => sock.read(buf),
            MaybeTls::Tls(tls) => tls.read(buf),
        }
    }
}

impl<S: Read + Write> Write for MaybeTls<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(sock) => sock.write(buf),
            MaybeTls::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(sock) => sock.flush(),
            MaybeTls::Tls(tls) => tls.flush(),
        }
    }
}

impl<S: Read + Write + HalfClose> HalfClose for MaybeTls<S> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(sock) => sock.shutdown_write(),
            MaybeTls::Tls(tls) => tls.shutdown_write(),
        }
    }
}

/// A name a certificate is valid for, as `--san` takes it: an IP address, or else a DNS name
/// (ASCII).
pub fn parse_san(name: &str) -> Result<SanType, String> {
    match name.parse::<IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => name
            .to_owned()
            .try_into()
            .map(SanType::DnsName)
            .map_err(|e| format!("not a DNS name or IP address: {e}")),
    }
}

/// Writes `cert.pem` and `key.pem` (ECDSA P-256, self-signed) into `dir`, valid for
/// `localhost`, `127.0.0.1`, `::1` and `sans` (each a DNS name or an IP address); returns
/// their paths. The key file is readable by its owner only.
pub fn gen_cert(dir: &Path, sans: &[SanType]) -> anyhow::Result<(PathBuf, PathBuf)> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
    let mut params = CertificateParams::default();
    for name in ["localhost", "127.0.0.1", "::1"] {
        params
            .subject_alt_names
            .push(parse_san(name).map_err(anyhow::Error::msg)?);
    }
    for san in sans {
        if !params.subject_alt_names.contains(san) {
            params.subject_alt_names.push(san.clone());
        }
    }
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, "echobench self-signed");
    params.distinguished_name = subject;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("cannot generate an ECDSA P-256 key")?;
    let cert = params
        .self_signed(&key)
        .context("cannot sign the certificate")?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--gen-cert {}: cannot create the directory", dir.display()))?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    Ok((cert_path, key_path))
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("--gen-cert: cannot write {}", path.display()))?;
    // `mode` applies only to a new file: an old key file keeps no wider access either.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .and_then(|()| file.write_all(contents))
        .with_context(|| format!("--gen-cert: cannot write {}", path.display()))
}
