//! The command line's words: clap's structs for every command and flag, with their help.
//! [`super::resolve`] turns what they hold into each command's options.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::schema::Profile;

/// Compare how server concurrency models serve one echo protocol.
#[derive(Parser, Debug)]
#[command(name = "echobench", version)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every model through every workload of the profile and write the reports.
    Compare(CompareFlags),
    /// Compare two comparisons: per model and workload, the change in throughput, p50, p99,
    /// CPU per message and memory per connection, with a confidence interval and a verdict.
    Diff {
        /// The baseline: a directory written by `echobench compare`.
        old: PathBuf,
        /// The comparison to judge against it.
        new: PathBuf,
        /// Changes smaller than this are "no change" (e.g. 5%).
        #[arg(long, default_value = "5%", value_parser = percent)]
        threshold: f64,
        /// Exit 1 when any figure regressed.
        #[arg(long)]
        fail_on_regression: bool,
        /// Where to write diff.md and diff.json [default: NEW].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Soak every model that serves any number of clients at once, all at the same time, and
    /// fail on a lost or corrupted echo or on RSS, descriptors or threads that keep growing.
    Soak {
        /// How long, in minutes (under 10: echo integrity only, no verdict on growth).
        #[arg(long, default_value = "30", value_parser = clap::value_parser!(u64).range(1..=1440))]
        minutes: u64,
        /// Models to soak, comma-separated, or `all` (those that serve any number of clients
        /// at once).
        #[arg(long, value_name = "LIST|all", default_value = "all")]
        models: String,
        /// Output directory [default: results/<date>-<hostname>-soak].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[command(flatten)]
        pinning: Pinning,
    },
    /// Re-render report.md, report.html, summary.json and the plots from DIR's raw data.
    Report {
        /// A directory written by `echobench compare`.
        dir: PathBuf,
    },
    /// Run one server, exactly as `echo-server` does, pinned to --cpus (used by compare); with
    /// --report, supervise it for a coordinator on another host (compare --server-host).
    #[command(hide = true)]
    Serve {
        /// CPUs to pin the server to before it starts [default: not pinned].
        #[arg(long, value_parser = cpu_list)]
        cpus: Option<CpuList>,
        /// Start the server in a session of its own, print its `listening on` line, answer
        /// requests for its /proc figures on stdout (one JSON line each), and stop it when
        /// stdin ends.
        #[arg(long)]
        report: bool,
        /// With --report: where the server listens, IP:PORT.
        #[arg(long, requires = "report", value_name = "ADDR")]
        addr: Option<String>,
        /// With --report: a server echobench does not build, its definition as JSON.
        #[arg(long, requires = "report", value_name = "JSON")]
        external: Option<String>,
        /// `echo-server` arguments: MODEL [--addr ...] [--workers N] [--max-conns N].
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run loadgen, exactly as the `loadgen` binary does (load agents run it so).
    #[command(hide = true, disable_help_flag = true, disable_version_flag = true)]
    Loadgen {
        /// `loadgen` arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

/// `compare`'s flags.
#[derive(Args, Debug)]
pub struct CompareFlags {
    /// Models to compare, comma-separated, `all`, or `none` (only the --server ones);
    /// `NAME(N)` runs a model with `--workers N` (pools default to thread-pool(64) and
    /// prefork(16)).
    #[arg(long, value_name = "LIST|all|none", default_value = "all")]
    pub models: String,
    #[command(flatten)]
    pub external: External,
    /// `quick` (within 5 minutes on 2 cores) or `full` (longer runs, 3 repeats, and the
    /// pool workload sweeping pool sizes).
    #[arg(long, value_enum, default_value = "quick")]
    pub profile: Profile,
    /// Output directory [default: results/<date>-<hostname>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub pinning: Pinning,
    #[command(flatten)]
    pub passes: Passes,
    #[command(flatten)]
    pub remote: Box<Remote>,
}

/// Servers echobench does not build, compared beside the models.
#[derive(Args, Debug)]
pub struct External {
    /// A server of your own, run as COMMAND (split into words as a shell would, run without
    /// one) with {port}, {addr} (127.0.0.1:PORT) and {host} filled in; ready at its
    /// `listening on` line or at its first echo of a probe. Repeatable.
    #[arg(long = "server", value_name = "NAME=COMMAND")]
    pub servers: Vec<String>,
    /// Servers of your own from a TOML file: [[server]] tables with name and command, and
    /// optionally family, notes, max_idle, max_connections, ready_timeout, stop_grace,
    /// tls_command (see docs/compare.md).
    #[arg(long, value_name = "FILE")]
    pub server_file: Option<PathBuf>,
}

/// Where the servers and the load run, for `compare` and `soak`.
#[derive(Args, Debug)]
pub struct Pinning {
    /// CPUs for the servers, e.g. 0 or 0-7 [default: 0 on 2 CPUs, else the first half].
    #[arg(long, value_name = "LIST", value_parser = cpu_list)]
    pub server_cpus: Option<CpuList>,
    /// CPUs for loadgen (and soak's churn clients), disjoint from the servers' [default: 1 on
    /// 2 CPUs, else the second half].
    #[arg(long, value_name = "LIST", value_parser = cpu_list)]
    pub loadgen_cpus: Option<CpuList>,
}

/// Load agents and a server on other hosts, for `compare`.
#[derive(Args, Debug)]
pub struct Remote {
    /// Split every run's load over load agents on these hosts, comma-separated (a host named
    /// twice runs two agents; `local` runs one here by direct exec): each runs its slice of
    /// the run's connections and of its one open-loop plan, all starting together, and their
    /// histograms are added. Agents elsewhere need --server-addr.
    #[arg(long, value_name = "HOST,...", value_delimiter = ',')]
    pub agents: Vec<String>,
    /// How a command is run on a host, {host} filled in; '' runs every host here by direct
    /// exec (e.g. 'ip netns exec {host}' for scripts/netns-lab.sh) [default: 'ssh {host} --'].
    /// When the template's program is ssh, the command is quoted for the remote shell (ssh
    /// joins its words into one line); any other launcher gets it as separate argv words.
    /// Hosts must be host names, IP addresses or user@host.
    #[arg(long, value_name = "TEMPLATE")]
    pub launcher: Option<String>,
    /// The echobench binary on the hosts [default: this binary's path].
    #[arg(long, value_name = "PATH")]
    pub agent_bin: Option<String>,
    /// Run the servers on HOST, through the launcher (`echobench serve --report`, which
    /// reports their /proc figures back), listening on --server-addr.
    #[arg(long, value_name = "HOST", requires = "server_addr")]
    pub server_host: Option<String>,
    /// Where the servers listen and the load is sent, IP:PORT (port 0: a free one) [default:
    /// 127.0.0.1 on a free port].
    #[arg(long, value_name = "ADDR")]
    pub server_addr: Option<String>,
}

/// How many times, in what order and for how long `compare` runs the matrix.
#[derive(Args, Debug)]
pub struct Passes {
    /// Run the whole matrix N times, each pass in its own seeded shuffle [default: 1; full: 3].
    /// Confidence intervals of the changes `echobench diff` finds need at least 3.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: Option<u32>,
    /// Seed of the run order and of the bootstrap [default: from the clock; recorded in
    /// environment.json and summary.json].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Also the UDP models through the UDP workloads (udp-pingpong over 1, 16 and 128 sockets
    /// and 16 with 8 in flight, udp-rate over 16 sockets; 100 ms loss timeout): about a
    /// minute more per pass on 2 cores for quick. The full profile always runs them.
    #[arg(long)]
    pub udp: bool,
    /// Also the TLS-capable models over TLS (a self-signed certificate made for the run):
    /// tls-pingpong, tls-churn (full handshakes), tls-churn-resumed, tls-bulk, and tls-mixed:
    /// 16 long-lived connections beside handshakes arriving at 0, 25 and 50 % of each model's
    /// tls-churn rate, 3 rounds each. About 5 minutes more per pass on 2 cores for quick. The
    /// full profile always runs them.
    #[arg(long)]
    pub tls: bool,
    /// Also requests with a cost, the tutorials' claims tested (every TCP model, and the
    /// Python ones with --python, speaks the protocol with `--work`): cpu-1ms-c16 (closed
    /// loop, 1 ms of CPU each), wait-1ms-c16 and wait-1ms-c1024 (a 1 ms wait each) and
    /// mixed-c16 (an open loop at 4,000/s of 99 % × 20 µs and 1 % × 10 ms of CPU). The CPU-bound
    /// two give the server the loadgen CPUs too (flagged in the report) and run the event
    /// loops also as MODEL+pool (`--offload pool`). About 4 minutes more per pass on 2 cores,
    /// Python models included. The full profile always runs them.
    #[arg(long)]
    pub work: bool,
    /// Also the chat room (every TCP model, and the Python ones with --python, serves it with
    /// `--chat`, each sharing its rooms its own way: locks, a single owner, a hub process):
    /// chat-r16-c64 (rooms of 16, 64 members, closed loop, 64-byte messages), chat-r128-c128
    /// (one room of 128), chat-r16-c1024, and chat-slow (rooms of 16, 64 members, one member
    /// of each room never reading, 1 KiB messages): deliveries/s, delivery and fan-out p99,
    /// server CPU per delivery, and whether the server drops a slow member while its room goes
    /// on. About 4 minutes more per pass on 2 cores, Python models included. The full profile
    /// always runs them.
    #[arg(long)]
    pub chat: bool,
    /// Also hostile clients (every built-in TCP model, with `--work`): a 16-connection open
    /// loop at 10,000 requests/s of `--work cpu=0` (attack-control) beside slowloris-64
    /// (64 connections from 127.0.0.2 trickling a request they never finish) and flood-2000
    /// (2,000 connections a second), each against the server without defences and with
    /// `--idle-timeout 2s --per-ip-max-conns 4 --block-after 200 --block-window 1s` (the
    /// `-defended` runs): what the legitimate clients keep of their rate and p99. About 4
    /// minutes more per pass on 2 cores. The full profile always runs them.
    #[arg(long)]
    pub attack: bool,
    /// Also the capacity search under a latency target (`p99=1ms`, `p99.9=5ms`; p50, p90,
    /// p99, p99.9): slo-c16 (and slo-c1024 in full), the highest open-loop rate each TCP
    /// server holds with its percentile within the target (`loadgen --find-rate`: steps of
    /// 1 s after 0.3 s from 5,000/s, doubling, then bisecting to within 5 %); "≥" where loadgen
    /// was the limit. The headline gains the rate. About 3 minutes more per pass on 2 cores
    /// for the Rust TCP models. The full profile always runs it, at p99=1ms unless given.
    #[arg(long, value_name = "SLO", value_parser = loadgen::Slo::parse)]
    pub slo: Option<loadgen::Slo>,
    /// Also the tutorials' own Python servers, run by PYTHON (3.9 or later) [default when
    /// given alone: python3]: py-iterative, py-threading, py-multiprocessing, py-asyncio,
    /// py-selectors, py-twisted and py-gevent where PYTHON can import them
    /// (scripts/python-models.sh), and with --udp py-udp. Without a fit interpreter, one line
    /// and the rest runs. About 2 minutes more per pass on 2 cores for quick (the five
    /// standard-library models; about 3 with Twisted, gevent and py-udp).
    #[arg(long, value_name = "PYTHON", num_args = 0..=1, default_missing_value = "python3")]
    pub python: Option<String>,
    /// Only these workloads, comma-separated, as the report labels them (pingpong-c16,
    /// rate-10000, churn, idle-1000, bulk, udp-pingpong-c16-p8, udp-rate-10000, cpu-1ms-c16,
    /// wait-1ms-c1024, mixed-c16).
    #[arg(long, value_name = "LIST")]
    pub workloads: Option<String>,
    /// Measured time of every run, e.g. 5s [default: the profile's].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up of every run, e.g. 1s [default: the profile's; idle runs warm up longer].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// Add the passes to the comparison already in --out (same models, profile, workloads and
    /// timing), numbered after its own; its report then covers them all. Alternating two
    /// comparisons this way lets a slow spell of the machine fall on both alike.
    #[arg(long)]
    pub append: bool,
}

/// `5%` or `5` → 0.05.
pub fn percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(p) if p.is_finite() && (0.0..100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!("'{text}' is not a percentage from 0% to 100%")),
    }
}

/// A parsed CPU list (one value to clap).
#[derive(Clone, Debug)]
pub struct CpuList(pub Vec<usize>);

/// `0-3,8` → its CPUs.
pub fn cpu_list(text: &str) -> Result<CpuList, String> {
    loadgen::parse_cpus(text).map(CpuList)
}
