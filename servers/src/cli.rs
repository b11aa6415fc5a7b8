//! The `echo-server` command line, as a function, so that other binaries (the echobench runner)
//! can serve exactly as `echo-server` does.
//!
//! Exit codes: 0 after SIGINT/SIGTERM (or `--list`, `--help`); 1 when the server cannot start
//! or its loop fails (e.g. the address is in use); 2 for bad arguments (a UDP model asked to
//! bind a non-loopback address without `--allow-remote` among them).
//!
//! At start the soft descriptor limit is raised to the hard limit (an event loop holding
//! 15,000 idle clients must not stop at a soft limit of 1,024); at a clean exit one line
//! reports the connections that ended uncleanly, by kind (a UDP model: its datagram counters).

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::config::ServerConfig;
use crate::datagram;
use crate::endings;
use crate::listen::{announce, bind};
use crate::models::{Bound, Model, Transport};
use crate::signals::SignalPipe;
use anyhow::Context;
use clap::Parser;

/// Serve echo (RFC 862) over TCP or UDP with one of several concurrency models.
#[derive(Parser, Debug)]
#[command(name = "echo-server", version)]
struct Cli {
    /// Concurrency model to serve with (`--list` names them all).
    #[arg(value_name = "MODEL", value_parser = parse_model, required_unless_present = "list")]
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

    /// Print the model names, one per line, and exit.
    #[arg(long, exclusive = true)]
    list: bool,
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
            eprintln!("echo-server: no MODEL given (`echo-server --list` names them)");
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
    if let Some(model) = cli.model.filter(|m| m.transport() == Transport::Udp) {
        if let Err(e) = datagram::check_addr(cli.addr, cli.allow_remote) {
            eprintln!("echo-server: {}: {e}", model.name());
            return ExitCode::from(2);
        }
    }
    match run(&cli) {
        Ok(()) => {
            match cli.model.map(Model::transport) {
                Some(Transport::Udp) => eprintln!("{}", datagram::summary()),
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

fn run(cli: &Cli) -> anyhow::Result<()> {
    let model = cli.model.context("no MODEL given")?;
    raise_nofile_limit();
    let mut config = ServerConfig::new(cli.addr);
    if let Some(workers) = cli.workers {
        config.workers = workers as usize;
    }
    if let Some(max) = cli.max_conns {
        config.max_conns = usize::try_from(max).unwrap_or(usize::MAX);
    }
    // The registry says what to bind.
    let bound = match model.transport() {
        Transport::Tcp => bind(config.addr, model.reuses_port())
            .map(Bound::Tcp)
            .with_context(|| format!("cannot listen on --addr {}", config.addr))?,
        Transport::Udp => datagram::bind(config.addr, model.reuses_port())
            .map(Bound::Udp)
            .with_context(|| format!("cannot bind UDP --addr {}", config.addr))?,
    };
    let stop = SignalPipe::stop_signals().context("cannot watch SIGINT and SIGTERM")?;
    announce(match &bound {
        Bound::Tcp(listener) => listener.local_addr(),
        Bound::Udp(socket) => socket.local_addr(),
    })?;
    model.serve(bound, &config, stop)
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
