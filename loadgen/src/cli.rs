//! The `loadgen` command line: drive an echo server and report throughput and latency.
//!
//! Exit codes: 0 when the run completed (errors are counted, not fatal); 1 when no message
//! completed, an echo mismatched, or the run could not be made; 2 for bad arguments; 3 for an
//! agent whose stdin ended before its run did ([`crate::agent`]).

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::attack::AttackSpec;
use crate::load;
use crate::machine::parse_cpus;
use crate::options::{parse_count, parse_scaled, Options};
use crate::report::{from_unix_ns, Report, Slo};
use crate::source::SourceAddrs;
use crate::tls::{TlsOptions, Trust};
use crate::work::WorkSpec;
use crate::{agent, hlog};

/// Drive an echo server (RFC 862) over TCP or UDP and measure it: closed loop, open loop at a
/// fixed rate (coordinated-omission corrected), or one connection per message.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Merge interval logs (--hlog) of runs made at the same time by adding their histograms.
    Merge {
        /// Interval logs written by `loadgen --hlog`.
        #[arg(required = true, value_name = "HLOG")]
        logs: Vec<PathBuf>,
        /// Where to write the merged JSON report (printed as a summary either way).
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Agent mode's check before a run: a `hello` frame (version, report schema, this host's
    /// clock), then the clock again for every line read on stdin, until stdin ends.
    AgentHello,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Server to drive, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr, required = true)]
    addr: Option<(String, SocketAddr)>,
    /// Active connections (10k-style counts accepted).
    #[arg(long, default_value = "16", value_parser = parse_count)]
    connections: u64,
    /// Measured time after warm-up (10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Warm-up before measuring; excluded from every figure.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Message size in bytes (10k-style accepted).
    #[arg(long, default_value = "64", value_parser = parse_count)]
    size: u64,
    /// Open loop: total rate over all connections, messages/s; omitted: closed loop.
    #[arg(long, value_name = "MSGS_PER_S", value_parser = parse_scaled)]
    rate: Option<f64>,
    /// Closed loop: messages in flight per connection.
    #[arg(long, value_name = "K", default_value = "1", value_parser = parse_count)]
    pipeline: u64,
    /// One connection per message: connect, send, receive the echo, close.
    #[arg(long)]
    churn: bool,
    /// Also hold N idle connections open for the whole run.
    #[arg(long, value_name = "N", default_value = "0", value_parser = parse_count)]
    idle: u64,
    /// Worker threads, each an event loop [default: one per CPU of --cpus or of the affinity
    /// mask].
    #[arg(long, value_name = "T", value_parser = parse_count)]
    threads: Option<u64>,
    /// CPUs to pin the workers to, e.g. 1 or 8-15.
    #[arg(long, value_name = "LIST", value_parser = |s: &str| parse_cpus(s).map(CpuList))]
    cpus: Option<CpuList>,
    /// Connect timeout, and how long an answered connection's echo may stall before it counts
    /// as a timeout and the connection is replaced (one never answered waits: it is starved).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the latency percentile distribution (.hgrm, microseconds) here.
    #[arg(long, value_name = "FILE")]
    hgrm: Option<PathBuf>,
    /// Write the interval log (HdrHistogram V2 + deflate, one histogram per interval and tag)
    /// here.
    #[arg(long, value_name = "FILE")]
    hlog: Option<PathBuf>,
    /// Length of the interval log's intervals (at least 10ms).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    hlog_interval: Duration,
    /// Echo over UDP: a connected UDP socket per connection; each datagram carries an 8-byte
    /// sequence number, and one with no echo within --timeout is lost (loss, late, reordered
    /// and duplicated datagrams are counted). Not with --churn or --idle; --size 8 to 65507.
    #[arg(long)]
    udp: bool,
    /// Every connection over TLS (rustls, ring): the handshake after the TCP connect, then
    /// the echo as TLS records. Needs --tls-ca or --tls-insecure; a probe connection checks
    /// the certificate before the load.
    #[arg(long)]
    tls: bool,
    /// PEM file of the certificates to trust: the server's self-signed certificate
    /// (`echo-server --gen-cert`) or its CA. The name checked is the HOST of --addr.
    #[arg(long, value_name = "FILE", conflicts_with = "tls_insecure")]
    tls_ca: Option<PathBuf>,
    /// Take any certificate (the handshake's signature is still checked); marked in the report.
    #[arg(long)]
    tls_insecure: bool,
    /// Resume sessions: tickets are collected before the load (one probe per two connections)
    /// and every connection offers one; a run with under 90 % resumed handshakes fails.
    #[arg(long)]
    tls_resume: bool,
    /// Also open R new connections per second on an open-loop schedule, beside the load:
    /// each connects (with --tls: handshakes), makes one echo and closes; from a thread at
    /// SCHED_IDLE, so that it never delays the load's own threads.
    #[arg(long, value_name = "R", value_parser = parse_scaled)]
    handshake_rate: Option<f64>,
    /// No progress line and no summary; errors still go to stderr.
    #[arg(long)]
    quiet: bool,
    /// Start the load at this wall-clock time, nanoseconds since the Unix epoch, so that
    /// agents on several hosts start together (the open-loop schedule starts there too, even
    /// for one that gets there late). The report's `started_at_ns` says when it really did.
    #[arg(long, value_name = "UNIX_TIME_NS")]
    start_at: Option<u64>,
    /// This run's connections are numbers K, K+1, ... of a plan of --conn-total connections
    /// split over several agents.
    #[arg(long, value_name = "K", default_value = "0", value_parser = parse_count)]
    conn_offset: u64,
    /// The connections of the whole plan. With --rate, the rate is the whole plan's: this run
    /// sends its connections' share of it, on the plan's schedule, so that the agents together
    /// keep one evenly spaced open-loop plan.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    conn_total: Option<u64>,
    /// Other loadgens run on these CPUs (agents of one host): give the CPU up after every
    /// batch of events, so that theirs never wait a whole time slice with echoes unread.
    #[arg(long)]
    share_cpus: bool,
    /// Local addresses the connections come from, in turn: ADDR,ADDR,... or ADDR/PREFIX (its
    /// host addresses), or `none` for the kernel's choice [default: 127.1.0.1-127.1.0.254
    /// toward a loopback IPv4 target, `none` otherwise]. Many addresses keep a churn of
    /// connections from searching one address's ports, all in TIME_WAIT, for a free one.
    #[arg(long, value_name = "LIST|CIDR|none", value_parser = SourceAddrs::parse)]
    source_addrs: Option<SourceAddrs>,
    /// Requests with a cost, in `echo-server --work`'s protocol: `cpu=DUR`, `wait=DUR` or both
    /// (`cpu=1ms,wait=2ms`; `cpu=0` is the protocol at no cost), or a mix SPEC;P%:SPEC[;...]
    /// whose first class takes the rest (`cpu=20us;1%:cpu=10ms`). --size is the whole
    /// request, its 16-byte header included. TCP only, not with --tls or --churn.
    #[arg(long, value_name = "SPEC", value_parser = WorkSpec::parse)]
    work: Option<WorkSpec>,
    /// With --work: deals a mix's classes out to requests, the same for every model and
    /// every agent given the same seed.
    #[arg(long, value_name = "N", default_value_t = crate::work::DEFAULT_SEED, requires = "work")]
    seed: u64,
    /// The chat room of `echo-server --chat`: --connections members in rooms of ROOM, every
    /// message relayed to every member of its room; each member sends (closed loop, or
    /// --rate in total) and every delivery is checked and timed. Not with --udp, --tls,
    /// --churn, --work, --idle or agents.
    #[arg(long, value_name = "ROOM", value_parser = parse_count)]
    chat: Option<u64>,
    /// With --chat: members per room that join and never read (nor send), to see whether
    /// the server drops them or lets them stall their room.
    #[arg(long, value_name = "N", default_value = "0", value_parser = parse_count, requires = "chat")]
    chat_slow: u64,
    /// Hostile clients beside the load, from --attack-from, counted apart (JSON key
    /// `attack`): `slowloris:N` (N connections trickling a request they never finish, one
    /// byte every --attack-interval), `silent:N` (N connections that send nothing), or
    /// `connect-flood:R` (R connections a second, each reading for 100 ms, then closed).
    /// They start a second before the load. TCP only, not with --tls or --chat.
    #[arg(long, value_name = "KIND:N", value_parser = AttackSpec::parse)]
    attack: Option<AttackSpec>,
    /// With --attack: the address the attack connections come from (any of 127.0.0.0/8 is
    /// loopback).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.2",
        requires = "attack"
    )]
    attack_from: IpAddr,
    /// With --attack: how often a slowloris client sends its next byte, and closed attack
    /// connections are opened again.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration, requires = "attack")]
    attack_interval: Duration,
    /// Search for the highest open-loop rate that holds a latency target (`p99=1ms`,
    /// `p99.9=5ms`; p50, p90, p99, p99.9): steps of --step after --warmup each, from
    /// --rate-start doubling until a step fails, then bisecting to within 5 %. A step holds
    /// when 99 % of its rate is achieved, the percentile is within the target and nothing
    /// errs or starves. JSON key `find_rate`; a target no step meets is a result, not an error.
    #[arg(long, value_name = "SLO", value_parser = Slo::parse)]
    find_rate: Option<Slo>,
    /// With --find-rate: the first rate tried, requests/s.
    #[arg(long, value_name = "RATE", default_value = "1000", value_parser = parse_scaled, requires = "find_rate")]
    rate_start: f64,
    /// With --find-rate: each step's measured time.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration, requires = "find_rate")]
    step: Duration,
    /// Agent mode: stdout carries two frames, the JSON report and the interval log, and
    /// nothing else; the run stops at once (exit 3) when stdin ends.
    #[arg(long)]
    agent: bool,
}

/// A parsed `--cpus` list (one value, not many, to clap).
#[derive(Clone, Debug)]
struct CpuList(Vec<usize>);

fn parse_addr(text: &str) -> Result<(String, SocketAddr), String> {
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{text}' as HOST:PORT: {e}"))?;
    addrs
        .next()
        .map(|addr| (text.to_owned(), addr))
        .ok_or_else(|| format!("'{text}' resolves to no address"))
}

/// Runs the command line `args` (the program's name first), as the `loadgen` binary does.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => {
            // clap lists what is missing on the lines between its first and the usage.
            let rendered = e.render().to_string();
            let missing: Vec<&str> = rendered
                .lines()
                .skip(1)
                .take_while(|l| !l.starts_with("Usage"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let missing = missing.join(", ");
            return usage_error(&if missing.contains("HLOG") {
                "merge needs at least one HLOG file".to_owned()
            } else if missing.contains("--addr") || missing.is_empty() {
                "--addr HOST:PORT is required".to_owned()
            } else {
                // Another flag's requirement: `--seed` needs `--work`.
                format!("the arguments given also need {missing}")
            });
        }
        Err(e) => return usage_error(first_line(&e.render().to_string())),
    };
    match cli.command {
        Some(Command::Merge { logs, json }) => merge(&logs, json.as_deref()),
        Some(Command::AgentHello) => match agent::hello() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadgen: agent-hello: {e}");
                ExitCode::from(1)
            }
        },
        None if cli.run.agent => run_agent(cli.run),
        None => run(cli.run),
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
}

fn usage_error(line: &str) -> ExitCode {
    eprintln!("loadgen: {line}");
    ExitCode::from(2)
}

/// The options the flags ask for, checked; the error is the usage line.
fn options(args: RunArgs) -> Result<Options, String> {
    let tls = tls_options(&args)?;
    let Some((target, addr)) = args.addr else {
        return Err("--addr HOST:PORT is required".to_owned());
    };
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let opts = Options {
        target,
        addr,
        connections: count(args.connections),
        duration: args.duration,
        warmup: args.warmup,
        size: count(args.size),
        rate: args.rate,
        pipeline: count(args.pipeline),
        churn: args.churn,
        idle: count(args.idle),
        threads: args.threads.map(count),
        cpus: args.cpus.map(|c| c.0).unwrap_or_default(),
        timeout: args.timeout,
        json: args.json,
        hgrm: args.hgrm,
        hlog: args.hlog,
        hlog_interval: args.hlog_interval,
        progress: !args.quiet,
        udp: args.udp,
        tls,
        handshake_rate: args.handshake_rate,
        start_at: args.start_at.map(from_unix_ns),
        conn_offset: count(args.conn_offset),
        conn_total: args.conn_total.map(count),
        share_cpus: args.share_cpus,
        source_addrs: args.source_addrs.unwrap_or_default(),
        work: args.work,
        seed: args.seed,
        chat: args.chat.map(count),
        chat_slow: count(args.chat_slow),
        load_started: None,
        attack: args.attack,
        attack_from: args.attack_from,
        attack_interval: args.attack_interval,
        find_rate: args.find_rate,
        rate_start: args.rate_start,
        step: args.step,
    };
    if args.agent && opts.find_rate.is_some() {
        return Err("--find-rate cannot run as an agent: each step is a run of its own".into());
    }
    if args.agent && opts.attack.is_some() {
        return Err("--attack cannot run as an agent: the attackers run beside one loadgen".into());
    }
    if args.agent && opts.chat.is_some() {
        return Err(
            "--chat cannot run as an agent: a room's fan-out latency is read on one clock".into(),
        );
    }
    opts.validate()?;
    Ok(opts)
}

fn run(args: RunArgs) -> ExitCode {
    let quiet = args.quiet;
    let opts = match options(args) {
        Ok(opts) => opts,
        Err(e) => return usage_error(&e),
    };
    let report = match load::run(&opts) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            return ExitCode::from(1);
        }
    };
    if !quiet {
        print!("{}", report.summary());
    }
    // A search's steps say for themselves what they achieved.
    let searched = report.find_rate.is_some();
    if let Some(ratio) = report
        .achieved_rate_ratio
        .filter(|r| *r < 0.95 && !searched)
    {
        eprintln!(
            "loadgen: achieved {:.1} % of --rate {}: the server or the load generator could not keep up",
            ratio * 100.0,
            report.rate.unwrap_or(0.0)
        );
    }
    exit_status(&report)
}

/// 0 for a run that completed, 1 (with the line that says why) for one that failed.
fn exit_status(report: &Report) -> ExitCode {
    match report.failure() {
        Some(why) => {
            eprintln!("loadgen: {why}");
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    }
}

/// The TLS options the flags ask for; the error names the flags that do not go together.
fn tls_options(args: &RunArgs) -> Result<Option<TlsOptions>, String> {
    if !args.tls {
        if args.tls_ca.is_some() || args.tls_insecure || args.tls_resume {
            return Err("--tls-ca, --tls-insecure and --tls-resume need --tls".to_owned());
        }
        return Ok(None);
    }
    let trust =
        match (&args.tls_ca, args.tls_insecure) {
            (Some(ca), false) => Trust::Ca(ca.clone()),
            (None, true) => Trust::Insecure,
            _ => return Err(
                "--tls needs --tls-ca FILE (the server's certificate or its CA) or --tls-insecure"
                    .to_owned(),
            ),
        };
    Ok(Some(TlsOptions {
        trust,
        resume: args.tls_resume,
    }))
}

/// `--agent`: the run with its report and interval log as frames on stdout; the log is kept in
/// memory (and written to `--hlog` too, if given), so that nothing is left behind however the
/// agent ends.
fn run_agent(args: RunArgs) -> ExitCode {
    // Options first: a refused flag is its one line and exit 2, whatever stdin does meanwhile.
    let mut opts = match options(args) {
        Ok(opts) => opts,
        Err(e) => return usage_error(&e),
    };
    agent::stop_on_stdin_eof();
    opts.progress = false;
    let result = load::run_keeping_log(&opts).and_then(|(report, log)| {
        let mut out = std::io::stdout().lock();
        agent::write_frame(&mut out, "report", &serde_json::to_vec(&report)?)?;
        agent::write_frame(&mut out, "hlog", &log)?;
        Ok(report)
    });
    match result {
        Ok(report) => exit_status(&report),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn merge(logs: &[PathBuf], json: Option<&std::path::Path>) -> ExitCode {
    let merged = match hlog::merge(logs) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("loadgen: merge: {e:#}");
            return ExitCode::from(1);
        }
    };
    if let Some(path) = json {
        let written = serde_json::to_string_pretty(&merged)
            .map_err(anyhow::Error::from)
            .and_then(|text| Ok(std::fs::write(path, text + "\n")?));
        if let Err(e) = written {
            eprintln!(
                "loadgen: merge: cannot write --json {}: {e:#}",
                path.display()
            );
            return ExitCode::from(1);
        }
    }
    print!("{}", merged.summary());
    ExitCode::SUCCESS
}
