//! The `echo-server` command line, as a function, so that other binaries (the echobench runner)
//! can serve exactly as `echo-server` does.
//!
//! Exit codes: 0 after SIGINT/SIGTERM (or `--list`, `--gen-cert`, `--help`); 1 when the server
//! cannot start or its loop fails (e.g. the address is in use), or `--gen-cert` cannot write;
//! 2 for bad arguments (among them a UDP model asked to bind a non-loopback address without
//! `--allow-remote`, `--tls` for a model without TLS, a certificate or key that is missing or
//! unusable, `--work` with `--tls` or with a UDP model, `--chat` with `--tls`, `--work` or a
//! UDP model, a `--chat-queue` below one largest frame, `--offload` without `--work` or on
//! a model without an event loop, `--idle-timeout` without `--work`, a zero duration, or a
//! defence on a UDP model).
//!
//! At start the soft descriptor limit is raised to the hard limit (an event loop holding
//! 15,000 idle clients must not stop at a soft limit of 1,024); at a clean exit one line
//! reports the connections that ended uncleanly, by kind (a UDP model: its datagram counters;
//! with `--work`, a line before it counts the requests refused, by kind; with `--chat`, two
//! lines before it: `echo-server: chat: N joins, N messages, N deliveries, N slow members
//! dropped` and the connections closed for a bad frame). With any defence, one line comes
//! first: `echo-server: limits: N idle timeouts, N over per-address limit, N blocked`.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::chat;
use crate::config::{self, ServerConfig};
use crate::datagram;
use crate::defence::{self, BlockRule, Defences};
use crate::endings;
use crate::listen::{announce, bind};
use crate::models::{Bound, Model, Transport};
use crate::signals::SignalPipe;
use crate::tls::{self, Tls};
use crate::work::Work;
use anyhow::Context;
use clap::Parser;

/// Serve echo (RFC 862) over TCP or UDP with one of several concurrency models.
#[derive(Parser, Debug)]
#[command(name = "echo-server", version)]
struct Cli {
    /// Concurrency model to serve with (`--list` names them all).
    #[arg(value_name = "MODEL", value_parser = parse_model, required_unless_present_any = ["list", "gen_cert"])]
    model: Option<Model>,

    /// Address to listen on; port 0 picks any free port.
    #[arg(long, default_value = "127.0.0.1:7007")]
    addr: SocketAddr,

    /// Worker threads or processes, for models that have workers [default: CPUs in this
    /// process's affinity mask].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    workers: Option<u32>,

    /// Connections served at once; further connections are closed at once [default: no cap].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_conns: Option<u64>,

    /// Let a UDP model bind an address other than loopback (a UDP echo server answers any
    /// source address a datagram claims, so it can reflect traffic at a third party).
    #[arg(long)]
    allow_remote: bool,

    /// Serve TLS (1.3 and 1.2, rustls) with `--tls-cert` and `--tls-key`, for the models
    /// that support it.
    #[arg(long)]
    tls: bool,

    /// Certificate chain for `--tls`, PEM (`--gen-cert` makes one).
    #[arg(long, value_name = "FILE", requires = "tls")]
    tls_cert: Option<PathBuf>,

    /// Private key for `--tls`, PEM (`--gen-cert` makes one).
    #[arg(long, value_name = "FILE", requires = "tls")]
    tls_key: Option<PathBuf>,

    /// A TLS client that has not completed its handshake this long after connecting is
    /// disconnected (so it cannot hold a worker) [default: 10s].
    #[arg(long, value_name = "DURATION", requires = "tls", value_parser = humantime::parse_duration)]
    tls_handshake_timeout: Option<Duration>,

    /// Write a self-signed ECDSA P-256 certificate and key (`cert.pem`, `key.pem`) for
    /// localhost, 127.0.0.1 and ::1 into DIR, and exit.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["model", "list", "tls"])]
    gen_cert: Option<PathBuf>,

    /// With `--gen-cert`: another name or IP address the certificate is valid for
    /// (repeatable).
    #[arg(long, value_name = "NAME_OR_IP", requires = "gen_cert", value_parser = tls::parse_san)]
    san: Vec<rcgen::SanType>,

    /// Echo with a cost: every request is a 16-byte header (`EBW1`, total length, CPU ns,
    /// wait µs) and payload, answered unchanged once its CPU work and its wait are done (TCP
    /// models, without `--tls`).
    #[arg(long, conflicts_with = "tls")]
    work: bool,

    /// With --work, on the models with an event loop or an executor: where requests' CPU work
    /// runs: `inline` on the loop (every other client of it waits), or `pool`, handed to a
    /// pool of threads so that the loop stays free (waits stay timers on the loop).
    #[arg(long, value_name = "WHERE", value_enum)]
    offload: Option<Offload>,

    /// With --offload pool: the pool's threads [default: CPUs in this process's affinity
    /// mask].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    offload_threads: Option<u32>,

    /// Serve the chat room instead of echo: frames of a u32 big-endian length and a body;
    /// `J` + room joins (answered `A` + room + members), then every `M` frame goes to every
    /// member of the sender's room (TCP models, without `--tls` or `--work`).
    #[arg(long, conflicts_with_all = ["tls", "work"])]
    chat: bool,

    /// With --chat: the most bytes queued for one member; a member whose deliveries would
    /// pass it is disconnected as too slow [default: 1MiB; at least 64KiB + 4, one largest
    /// frame].
    #[arg(long, value_name = "SIZE", requires = "chat", value_parser = parse_queue)]
    chat_queue: Option<usize>,

    /// With --work: close a connection that does not complete a request within DURATION of its
    /// first byte, or sends none within DURATION while none is in flight (a slowloris client
    /// holds no thread, worker or process for longer).
    #[arg(long, value_name = "DURATION", requires = "work", value_parser = parse_positive_duration)]
    idle_timeout: Option<Duration>,

    /// Close at once a connection beyond N live ones from the same address.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    per_ip_max_conns: Option<u64>,

    /// The tutorial's IP blocker: the N-th connection attempt from one address within
    /// --block-window blocks it for --block-for; a blocked client receives "You have been
    /// blocked due to too many attempts." and is closed.
    #[arg(long, value_name = "N", requires = "block_window", value_parser = clap::value_parser!(u32).range(1..))]
    block_after: Option<u32>,

    /// With --block-after: the window the attempts are counted in.
    #[arg(long, value_name = "DURATION", requires = "block_after", value_parser = parse_positive_duration)]
    block_window: Option<Duration>,

    /// With --block-after: how long a blocked address stays blocked [default: 60s].
    #[arg(long, value_name = "DURATION", requires = "block_after", value_parser = parse_positive_duration)]
    block_for: Option<Duration>,

    /// Print the model names, one per line, and exit.
    #[arg(long, exclusive = true)]
    list: bool,
}

/// The arguments clap found missing other than MODEL (say `--tls`, which `--tls-cert`
/// requires), or `None` when MODEL is all that is missing.
fn missing_besides_model(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::Strings(missing)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let others: Vec<&str> = missing
        .iter()
        .map(String::as_str)
        .filter(|m| !m.contains("MODEL"))
        .collect();
    (!others.is_empty()).then(|| others.join(", "))
}

/// `--offload`: where an event loop does requests' CPU work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Offload {
    /// On the loop itself.
    Inline,
    /// On a pool of threads.
    Pool,
}

/// The rules of `--offload` and `--offload-threads`; the error is the usage line.
fn check_offload(cli: &Cli, model: Model) -> Result<(), String> {
    if cli.offload.is_none() {
        return match cli.offload_threads {
            Some(_) => Err("--offload-threads needs --offload pool".to_owned()),
            None => Ok(()),
        };
    }
    if !cli.work {
        return Err("--offload needs --work: only requests with a cost have CPU work".to_owned());
    }
    if !model.offloads() {
        let loops: Vec<&str> = Model::ALL
            .iter()
            .filter(|m| m.offloads())
            .map(|m| m.name())
            .collect();
        return Err(format!(
            "--offload: {} has no event loop to keep free (models that offload: {})",
            model.name(),
            loops.join(", ")
        ));
    }
    if cli.offload == Some(Offload::Inline) && cli.offload_threads.is_some() {
        return Err("--offload-threads needs --offload pool".to_owned());
    }
    Ok(())
}

/// `--chat-queue`: bytes, with an optional `KiB`, `MiB` or `GiB` (or `k`, `M`, `G`: the same
/// binary multiples).
fn parse_queue(text: &str) -> Result<usize, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "k" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} (use B, KiB, MiB or GiB)")),
    };
    let bytes = digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{text:?} is not a size in bytes"))?;
    let least = crate::chat::MAX_BODY + crate::chat::PREFIX;
    if bytes < least {
        return Err(format!(
            "must be at least {least} bytes, one largest frame (64KiB + 4)"
        ));
    }
    Ok(bytes)
}

/// A duration above zero, as humantime writes it (`2s`, `500ms`).
fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be above zero".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

impl Cli {
    /// The defences asked for (none by default).
    fn defences(&self) -> Defences {
        Defences {
            idle_timeout: self.idle_timeout,
            per_ip_max_conns: self
                .per_ip_max_conns
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            block: self
                .block_after
                .zip(self.block_window)
                .map(|(after, window)| BlockRule {
                    after,
                    window,
                    block_for: self.block_for.unwrap_or(defence::DEFAULT_BLOCK_FOR),
                }),
        }
    }

    /// The first defence flag given, for messages that refuse it.
    fn defence_flag(&self) -> Option<&'static str> {
        [
            (self.idle_timeout.is_some(), "--idle-timeout"),
            (self.per_ip_max_conns.is_some(), "--per-ip-max-conns"),
            (self.block_after.is_some(), "--block-after"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }
}

fn parse_model(name: &str) -> Result<Model, String> {
    Model::from_name(name).ok_or_else(|| {
        let known: Vec<_> = Model::ALL.iter().map(|m| m.name()).collect();
        format!("unknown model (known: {})", known.join(", "))
    })
}

/// Runs `echo-server` with these arguments (the first is the program name) and returns its exit
/// code.
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => {
            match missing_besides_model(&e) {
                None => eprintln!("echo-server: no MODEL given (`echo-server --list` names them)"),
                Some(missing) => eprintln!("echo-server: the arguments given also need {missing}"),
            }
            return ExitCode::from(2);
        }
        Err(e) => {
            // One line: clap's first, which names the argument and the cause.
            let rendered = e.render().to_string();
            let line = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("echo-server: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    if cli.list {
        for model in Model::ALL {
            println!("{}", model.name());
        }
        return ExitCode::SUCCESS;
    }
    if let Some(dir) = &cli.gen_cert {
        return gen_cert(dir, &cli.san);
    }
    if let Some(model) = cli.model.filter(|m| m.transport() == Transport::Udp) {
        if let Err(e) = datagram::check_addr(cli.addr, cli.allow_remote) {
            eprintln!("echo-server: {}: {e}", model.name());
            return ExitCode::from(2);
        }
        // What only the TCP models serve.
        let tcp_only = [
            (cli.chat, "--chat", "the chat room is"),
            (cli.work, "--work", "requests with a cost are"),
        ];
        if let Some((_, flag, what)) = tcp_only.iter().find(|(on, _, _)| *on) {
            let name = model.name();
            eprintln!("echo-server: {flag}: {name} serves UDP; {what} served over TCP");
            return ExitCode::from(2);
        }
        if let Some(flag) = cli.defence_flag() {
            let name = model.name();
            eprintln!("echo-server: {flag}: {name} serves UDP; the defences guard TCP connections");
            return ExitCode::from(2);
        }
    }
    if let Some(model) = cli.model {
        if let Err(e) = check_offload(&cli, model) {
            eprintln!("echo-server: {e}");
            return ExitCode::from(2);
        }
    }
    let tls = match load_tls(&cli) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("echo-server: {e:#}");
            return ExitCode::from(2);
        }
    };
    let tls_on = tls.is_some();
    let defended = cli.defence_flag().is_some();
    match run(&cli, tls) {
        Ok(()) => {
            if defended {
                eprintln!("{}", endings::limits_summary());
            }
            match cli.model.map(Model::transport) {
                Some(Transport::Udp) => eprintln!("{}", datagram::summary()),
                _ if tls_on => eprintln!("{}\n{}", endings::tls_summary(), endings::summary()),
                _ if cli.work => eprintln!("{}\n{}", endings::work_summary(), endings::summary()),
                _ if cli.chat => eprintln!(
                    "{}\n{}\n{}",
                    chat::summary(),
                    chat::refused_summary(),
                    endings::summary()
                ),
                _ => eprintln!("{}", endings::summary()),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo-server: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `--gen-cert DIR`: writes the certificate and key, says where, exits 0 (1 if it cannot;
/// a bad `--san` was refused by the parser already).
fn gen_cert(dir: &std::path::Path, sans: &[rcgen::SanType]) -> ExitCode {
    match tls::gen_cert(dir, sans) {
        Ok((cert, key)) => {
            println!("wrote {} and {}", cert.display(), key.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo-server: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The TLS configuration `--tls` asks for, `None` without it: the model must support TLS and
/// both files must load. Errors name the flag.
fn load_tls(cli: &Cli) -> anyhow::Result<Option<Tls>> {
    if !cli.tls {
        return Ok(None);
    }
    let model = cli.model.context("--tls needs a MODEL")?;
    if !model.supports_tls() {
        let tls: Vec<&str> = Model::ALL
            .iter()
            .filter(|m| m.supports_tls())
            .map(|m| m.name())
            .collect();
        anyhow::bail!(
            "--tls: {} does not serve TLS (models that do: {})",
            model.name(),
            tls.join(", ")
        );
    }
    let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) else {
        anyhow::bail!(
            "--tls needs --tls-cert FILE and --tls-key FILE (`echo-server --gen-cert DIR` makes both)"
        );
    };
    let timeout = cli.tls_handshake_timeout.unwrap_or(tls::HANDSHAKE_TIMEOUT);
    Tls::load(cert, key, timeout).map(Some)
}

fn run(cli: &Cli, tls: Option<Tls>) -> anyhow::Result<()> {
    let model = cli.model.context("no MODEL given")?;
    raise_nofile_limit();
    let mut config = ServerConfig::new(cli.addr);
    config.tls = tls;
    if let Some(workers) = cli.workers {
        config.workers = workers as usize;
    }
    if let Some(max) = cli.max_conns {
        config.max_conns = usize::try_from(max).unwrap_or(usize::MAX);
    }
    // The registry says what to bind: a model with SO_REUSEPORT siblings gets every one now,
    // before the `listening on` line, on the port the first got.
    let (reuse, siblings) = (model.reuses_port(), config.workers.max(1) - 1);
    let bound = match model.transport() {
        Transport::Tcp => {
            let first = bind(config.addr, reuse)
                .with_context(|| format!("cannot listen on --addr {}", config.addr))?;
            match reuse {
                false => Bound::Tcp(first),
                true => Bound::TcpGroup(with_siblings(
                    first,
                    siblings,
                    TcpListener::local_addr,
                    |addr| {
                        bind(addr, true).with_context(|| format!("cannot add a listener on {addr}"))
                    },
                )?),
            }
        }
        Transport::Udp => {
            let first = datagram::bind(config.addr, reuse)
                .with_context(|| format!("cannot bind UDP --addr {}", config.addr))?;
            match reuse {
                false => Bound::Udp(first),
                true => Bound::UdpGroup(with_siblings(
                    first,
                    siblings,
                    UdpSocket::local_addr,
                    |addr| {
                        datagram::bind(addr, true)
                            .with_context(|| format!("cannot bind another socket to --addr {addr}"))
                    },
                )?),
            }
        }
    };
    if cli.work {
        // Before the `listening on` line: no client waits while the loop is timed.
        let work = Work::calibrate();
        eprintln!("{}", work.line());
        config.work = Some(work);
        if cli.offload == Some(Offload::Pool) {
            let threads = cli
                .offload_threads
                .map_or(config::cpus_in_affinity_mask(), |n| n as usize);
            eprintln!(
                "work: CPU work on a pool of {threads} threads ({})",
                model.label(true)
            );
            config.offload = Some(threads);
        }
    }
    if cli.chat {
        config.chat = Some(cli.chat_queue.unwrap_or(chat::DEFAULT_QUEUE));
    }
    config.defences = cli.defences();
    let stop = SignalPipe::stop_signals().context("cannot watch SIGINT and SIGTERM")?;
    announce(match &bound {
        Bound::Tcp(listener) => listener.local_addr(),
        Bound::Udp(socket) => socket.local_addr(),
        Bound::TcpGroup(listeners) => listeners[0].local_addr(),
        Bound::UdpGroup(sockets) => sockets[0].local_addr(),
    })?;
    model.serve(bound, &config, stop)
}

/// `first` and `siblings` more sockets bound with `bind_sibling` to the address `first` got
/// (its port, where it asked for port 0).
fn with_siblings<S>(
    first: S,
    siblings: usize,
    local_addr: fn(&S) -> std::io::Result<SocketAddr>,
    bind_sibling: impl Fn(SocketAddr) -> anyhow::Result<S>,
) -> anyhow::Result<Vec<S>> {
    let addr = local_addr(&first).context("cannot read the bound address")?;
    let mut all = vec![first];
    for _ in 0..siblings {
        all.push(bind_sibling(addr)?);
    }
    Ok(all)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Failure leaves the limit as it was: the
/// server then runs out of descriptors sooner, and its accept loop survives that.
fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
