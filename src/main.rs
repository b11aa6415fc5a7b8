//! `echobench`: compare echo-server concurrency models, and render the reports.
//!
//! Exit codes: 0 when the comparison (or rendering) completed, models that failed included;
//! 1 when it could not be made (bad output directory, raw data unreadable); 2 for bad
//! arguments.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use echobench::plan::{self, CompareOptions};
use echobench::render::headline_text;
use echobench::run::launch::{end_sessions_on_interrupt, halt_if_interrupted};
use echobench::run::{machine, server::pin_process};
use echobench::schema::{Environment, ExternalServer, Profile, ServerSpec, Timing, Workload};
use echobench::soak;

/// Compare how server concurrency models serve one echo protocol.
#[derive(Parser, Debug)]
#[command(name = "echobench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every model through every workload of the profile and write the reports.
    Compare {
        /// Models to compare, comma-separated, `all`, or `none` (only the --server ones);
        /// `NAME(N)` runs a model with `--workers N` (pools default to thread-pool(64) and
        /// prefork(16)).
        #[arg(long, value_name = "LIST|all|none", default_value = "all")]
        models: String,
        #[command(flatten)]
        external: External,
        /// `quick` (within 5 minutes on 2 cores) or `full` (longer runs, 3 repeats, and the
        /// pool workload sweeping pool sizes).
        #[arg(long, value_enum, default_value = "quick")]
        profile: Profile,
        /// Output directory [default: results/<date>-<hostname>].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[command(flatten)]
        pinning: Pinning,
        #[command(flatten)]
        passes: Passes,
        #[command(flatten)]
        remote: Box<Remote>,
    },
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

/// Servers echobench does not build, compared beside the models.
#[derive(Args, Debug)]
struct External {
    /// A server of your own, run as COMMAND (split into words as a shell would, run without
    /// one) with {port}, {addr} (127.0.0.1:PORT) and {host} filled in; ready at its
    /// `listening on` line or at its first echo of a probe. Repeatable.
    #[arg(long = "server", value_name = "NAME=COMMAND")]
    servers: Vec<String>,
    /// Servers of your own from a TOML file: [[server]] tables with name and command, and
    /// optionally family, notes, max_idle, max_connections, ready_timeout, stop_grace,
    /// tls_command (see the README).
    #[arg(long, value_name = "FILE")]
    server_file: Option<PathBuf>,
}

/// Where the servers and the load run, for `compare` and `soak`.
#[derive(Args, Debug)]
struct Pinning {
    /// CPUs for the servers, e.g. 0 or 0-7 [default: 0 on 2 CPUs, else the first half].
    #[arg(long, value_name = "LIST", value_parser = cpu_list)]
    server_cpus: Option<CpuList>,
    /// CPUs for loadgen (and soak's churn clients), disjoint from the servers' [default: 1 on
    /// 2 CPUs, else the second half].
    #[arg(long, value_name = "LIST", value_parser = cpu_list)]
    loadgen_cpus: Option<CpuList>,
}

/// Load agents and a server on other hosts, for `compare`.
#[derive(Args, Debug)]
struct Remote {
    /// Split every run's load over load agents on these hosts, comma-separated (a host named
    /// twice runs two agents; `local` runs one here by direct exec): each runs its slice of
    /// the run's connections and of its one open-loop plan, all starting together, and their
    /// histograms are added. Agents elsewhere need --server-addr.
    #[arg(long, value_name = "HOST,...", value_delimiter = ',')]
    agents: Vec<String>,
    /// How a command is run on a host, {host} filled in; '' runs every host here by direct
    /// exec (e.g. 'ip netns exec {host}' for scripts/netns-lab.sh) [default: 'ssh {host} --'].
    #[arg(long, value_name = "TEMPLATE")]
    launcher: Option<String>,
    /// The echobench binary on the hosts [default: this binary's path].
    #[arg(long, value_name = "PATH")]
    agent_bin: Option<String>,
    /// Run the servers on HOST, through the launcher (`echobench serve --report`, which
    /// reports their /proc figures back), listening on --server-addr.
    #[arg(long, value_name = "HOST", requires = "server_addr")]
    server_host: Option<String>,
    /// Where the servers listen and the load is sent, IP:PORT (port 0: a free one) [default:
    /// 127.0.0.1 on a free port].
    #[arg(long, value_name = "ADDR")]
    server_addr: Option<String>,
}

/// How many times, in what order and for how long `compare` runs the matrix.
#[derive(Args, Debug)]
struct Passes {
    /// Run the whole matrix N times, each pass in its own seeded shuffle [default: 1; full: 3].
    /// Confidence intervals of the changes `echobench diff` finds need at least 3.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat: Option<u32>,
    /// Seed of the run order and of the bootstrap [default: from the clock; recorded in
    /// environment.json and summary.json].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Also the UDP models through the UDP workloads (udp-pingpong over 1, 16 and 128 sockets
    /// and 16 with 8 in flight, udp-rate over 16 sockets; 100 ms loss timeout): about a
    /// minute more per pass on 2 cores for quick. The full profile always runs them.
    #[arg(long)]
    udp: bool,
    /// Also the TLS-capable models over TLS (a self-signed certificate made for the run):
    /// tls-pingpong, tls-churn (full handshakes), tls-churn-resumed, tls-bulk, and tls-mixed:
    /// 16 long-lived connections beside handshakes arriving at 0, 25 and 50 % of each model's
    /// tls-churn rate, 3 rounds each. About 5 minutes more per pass on 2 cores for quick. The
    /// full profile always runs them.
    #[arg(long)]
    tls: bool,
    /// Also the tutorials' own Python servers, run by PYTHON (3.9 or later) [default when
    /// given alone: python3]: py-iterative, py-threading, py-multiprocessing, py-asyncio,
    /// py-selectors, py-twisted and py-gevent where PYTHON can import them
    /// (scripts/python-models.sh), and with --udp py-udp. Without a fit interpreter, one line
    /// and the rest runs. About 2 minutes more per pass on 2 cores for quick (the five
    /// standard-library models; about 3 with Twisted, gevent and py-udp).
    #[arg(long, value_name = "PYTHON", num_args = 0..=1, default_missing_value = "python3")]
    python: Option<String>,
    /// Only these workloads, comma-separated, as the report labels them (pingpong-c16,
    /// rate-10000, churn, idle-1000, bulk, udp-pingpong-c16-p8, udp-rate-10000).
    #[arg(long, value_name = "LIST")]
    workloads: Option<String>,
    /// Measured time of every run, e.g. 5s [default: the profile's].
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Warm-up of every run, e.g. 1s [default: the profile's; idle runs warm up longer].
    #[arg(long, value_parser = humantime::parse_duration)]
    warmup: Option<Duration>,
    /// Add the passes to the comparison already in --out (same models, profile, workloads and
    /// timing), numbered after its own; its report then covers them all. Alternating two
    /// comparisons this way lets a slow spell of the machine fall on both alike.
    #[arg(long)]
    append: bool,
}

/// `5%` or `5` → 0.05.
fn percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(p) if p.is_finite() && (0.0..100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!("'{text}' is not a percentage from 0% to 100%")),
    }
}

/// A parsed CPU list (one value to clap).
#[derive(Clone, Debug)]
struct CpuList(Vec<usize>);

fn cpu_list(text: &str) -> Result<CpuList, String> {
    loadgen::parse_cpus(text).map(CpuList)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let line = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("echobench: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve {
            cpus,
            report,
            addr,
            external,
            args,
        } => return serve(cpus, report, addr, external, args),
        Command::Loadgen { args } => {
            let argv = std::iter::once(OsString::from("loadgen")).chain(args);
            return loadgen::cli::main_with_args(argv);
        }
        Command::Report { dir } => echobench::report(&dir).map(|summary| {
            print!("{}", headline_text(&summary));
            println!("report: {}", dir.join("report.html").display());
        }),
        Command::Compare {
            models,
            external,
            profile,
            out,
            pinning,
            passes,
            remote,
        } => compare(models, external, profile, out, pinning, passes, *remote),
        Command::Diff {
            old,
            new,
            threshold,
            fail_on_regression,
            out,
        } => diff(&old, &new, threshold, out).and_then(|regressed| {
            if regressed && fail_on_regression {
                bail!("diff: a figure regressed (--fail-on-regression)")
            }
            Ok(())
        }),
        Command::Soak {
            minutes,
            models,
            out,
            pinning,
        } => soak(minutes, &models, out, pinning),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<UsageError>() => {
            eprintln!("echobench: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("echobench: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// An argument error found after parsing (exit 2).
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(text: String) -> anyhow::Error {
    UsageError(text).into()
}

fn compare(
    models: String,
    external: External,
    profile: Profile,
    out: Option<PathBuf>,
    pinning: Pinning,
    passes: Passes,
    remote: Remote,
) -> anyhow::Result<()> {
    let hosts = hosts(remote, &pinning).map_err(usage)?;
    let workloads = passes
        .workloads
        .as_deref()
        .map(Workload::parse_list)
        .transpose()
        .map_err(usage)?;
    let udp =
        passes.udp || profile == Profile::Full || workloads.iter().flatten().any(|w| w.is_udp());
    let tls =
        passes.tls || profile == Profile::Full || workloads.iter().flatten().any(|w| w.is_tls());
    let mut servers = plan::parse_models(&models).map_err(usage)?;
    udp_servers(&mut servers, &models, udp).map_err(usage)?;
    let asked_python = python_asked(&mut servers, passes.python.is_some(), udp)?;
    let mut external = external_servers(&external).map_err(usage)?;
    let timing = timing(profile, &passes).map_err(usage)?;
    let (server_cpus, loadgen_cpus) = cpus(pinning)?;
    let out = out.unwrap_or_else(|| default_out(""));
    let held = out.join("raw").exists()
        && std::fs::read_dir(out.join("raw")).is_ok_and(|mut d| d.next().is_some());
    if held && !passes.append {
        bail!(
            "--out {} already holds a comparison; choose another directory, or add passes to it with --append",
            out.display()
        );
    }
    let python = match &passes.python {
        Some(program) => python_servers(program, &out, &asked_python, &mut external),
        None => None,
    };
    servers.extend(external.iter().map(|e| ServerSpec::model(&e.name)));
    if servers.is_empty() && passes.python.is_some() {
        // Only Python models were asked for, and none can run: said above, not a failure.
        return Ok(());
    }
    if servers.is_empty() {
        return Err(usage(
            "--models none and no --server or --server-file: nothing to compare".to_owned(),
        ));
    }
    plan::state_workers(&mut servers, server_cpus.len());
    let mut opts = CompareOptions {
        servers,
        profile,
        out: out.clone(),
        server_cpus,
        loadgen_cpus,
        progress: true,
        repeats: passes.repeat,
        seed: passes.seed.unwrap_or_else(clock_seed),
        workloads,
        timing,
        first_repeat: 1,
        external,
        udp,
        tls,
        python,
        hosts,
    };
    if passes.append {
        opts.first_repeat = appended_from(&opts)?;
    }
    end_sessions_on_interrupt()?;
    let summary = echobench::compare(&opts);
    halt_if_interrupted();
    let summary = summary.map_err(|e| e.context("comparison failed"))?;
    print!("{}", headline_text(&summary));
    println!("report: {}", out.join("report.html").display());
    Ok(())
}

/// `echobench serve`: the server in this process, or supervised with `--report`.
fn serve(
    cpus: Option<CpuList>,
    report: bool,
    addr: Option<String>,
    external: Option<String>,
    args: Vec<OsString>,
) -> ExitCode {
    let fail = |line: String| {
        eprintln!("echobench serve: {line}");
        ExitCode::from(2)
    };
    if !report {
        if let Some(cpus) = &cpus {
            if let Err(e) = pin_process(&cpus.0) {
                eprintln!("echo-server: --cpus: {e:#}");
                return ExitCode::from(2);
            }
        }
        let argv = std::iter::once(OsString::from("echo-server")).chain(args);
        return echo_server::cli::main_with_args(argv);
    }
    let served = match (external, args.split_first()) {
        (Some(json), _) => match serde_json::from_str::<ExternalServer>(&json) {
            Ok(ext) => echobench::run::remote::Served::External(ext),
            Err(e) => return fail(format!("--external: not a server definition: {e}")),
        },
        (None, Some((model, rest))) => echobench::run::remote::Served::Model(ServerSpec {
            model: model.to_string_lossy().into_owned(),
            args: rest
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        }),
        (None, None) => return fail("--report needs a MODEL or --external".to_owned()),
    };
    let cpus = cpus.map_or_else(loadgen::affinity_cpus, |c| c.0);
    let addr = addr.unwrap_or_else(|| "127.0.0.1:0".to_owned());
    echobench::run::remote::supervise(&served, &addr, &cpus)
}

/// Where the load and the servers run (`--agents`, `--server-host`...); the error is the usage
/// line.
fn hosts(remote: Remote, pinning: &Pinning) -> Result<plan::Hosts, String> {
    if let Some(addr) = &remote.server_addr {
        addr.parse::<std::net::SocketAddr>()
            .map_err(|_| format!("--server-addr: '{addr}' is not IP:PORT"))?;
    }
    if let Some(bad) = remote.agents.iter().find(|h| h.trim().is_empty()) {
        return Err(format!("--agents: an empty host name in {bad:?}"));
    }
    let template = remote
        .launcher
        .as_deref()
        .unwrap_or(plan::hosts::DEFAULT_LAUNCHER);
    let launcher =
        shlex::split(template).ok_or_else(|| format!("--launcher: cannot split {template:?}"))?;
    let bin = match remote.agent_bin {
        Some(bin) => bin,
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find the echobench binary: {e}"))?
            .to_string_lossy()
            .into_owned(),
    };
    let hosts = plan::Hosts {
        agents: remote.agents,
        launcher,
        bin,
        agent_cpus: pinning.loadgen_cpus.as_ref().map(|c| c.0.clone()),
        server_host: remote.server_host,
        server_addr: remote.server_addr,
        server_cpus: pinning.server_cpus.as_ref().map(|c| c.0.clone()),
    };
    match hosts.refusal() {
        Some(why) => Err(why),
        None => Ok(hosts),
    }
}

/// Keeps the UDP models among `servers` only when the UDP workloads run (`udp`): `all` drops
/// them without; a list that names one without is refused, as is `--udp` with a list that
/// names none.
fn udp_servers(servers: &mut Vec<ServerSpec>, list: &str, udp: bool) -> Result<(), String> {
    let named_udp: Vec<String> = servers
        .iter()
        .filter(|s| plan::serves_udp(&s.model))
        .map(|s| s.model.clone())
        .collect();
    match (udp, list) {
        (false, "all") => servers.retain(|s| !plan::serves_udp(&s.model)),
        (false, _) if !named_udp.is_empty() => {
            return Err(format!(
                "--models: {} serves UDP; add --udp to run the UDP workloads",
                named_udp.join(", ")
            ))
        }
        (true, "none") => {}
        (true, _) if named_udp.is_empty() => {
            let models: Vec<&str> = echo_server::Model::of(echo_server::Transport::Udp)
                .map(echo_server::Model::name)
                .collect();
            return Err(format!(
                "--udp: --models names no UDP model ({})",
                models.join(", ")
            ));
        }
        _ => {}
    }
    Ok(())
}

/// The Python models a comparison runs with `--python`, taken out of `servers` (they run as
/// external servers, after the Rust models): those `--models` names, or every one when it
/// names none (the UDP one with the UDP workloads). A list that names one without `--python`
/// is refused.
fn python_asked(
    servers: &mut Vec<ServerSpec>,
    python: bool,
    udp: bool,
) -> anyhow::Result<Vec<&'static echo_server::python::PythonModel>> {
    let named = servers
        .iter()
        .any(|s| echo_server::python::find(&s.model).is_some());
    // A list that names some asks for those alone.
    let asked = plan::python::asked(servers, udp);
    if !python && named {
        let names: Vec<&str> = asked.iter().map(|m| m.name).collect();
        return Err(usage(format!(
            "--models: {} is a Python model; add --python to run the Python models",
            names.join(", ")
        )));
    }
    servers.retain(|s| echo_server::python::find(&s.model).is_none());
    Ok(if python { asked } else { Vec::new() })
}

/// Writes the Python scripts into `out/python/` and puts the models that can run among
/// `external`, in the registry's order before the user's own; says in one line each what
/// cannot run, and in one line when no interpreter can run any (not a failure).
fn python_servers(
    program: &str,
    out: &Path,
    asked: &[&'static echo_server::python::PythonModel],
    external: &mut Vec<ExternalServer>,
) -> Option<echobench::schema::PythonRun> {
    match plan::python::prepare(program, &out.join("python"), asked) {
        Ok((run, servers)) => {
            for skipped in &run.skipped {
                eprintln!("echobench: {} {}", skipped.model, skipped.why);
            }
            external.splice(0..0, servers);
            Some(run)
        }
        Err(why) => {
            eprintln!("echobench: --python: {why}; the Python models are not run");
            None
        }
    }
}

/// The first pass `--append` adds to the comparison in `opts.out`: one after its last, once
/// its models, profile and timing are found to be the ones asked for.
fn appended_from(opts: &CompareOptions) -> anyhow::Result<u32> {
    let env = Environment::read(&opts.out.join("environment.json"))
        .map_err(|e| usage(format!("--append: {e:#}")))?;
    let models: Vec<String> = opts.servers.iter().map(|s| s.label()).collect();
    if env.external != opts.external {
        return Err(usage(format!(
            "--append: {} ran other external servers, or the same with other settings; give the same --server and --server-file",
            opts.out.display()
        )));
    }
    if env.models != models || env.profile != opts.profile {
        return Err(usage(format!(
            "--append: {} holds a {} comparison of {}; give the same --models and --profile",
            opts.out.display(),
            env.profile.name(),
            env.models.join(",")
        )));
    }
    let records = echobench::summary::load_records(&opts.out)?;
    for record in &records {
        let asked = record.spec.workload.timing(opts.timing());
        if record.timing != asked {
            return Err(usage(format!(
                "--append: {} ran {} with other timing; give the same --duration and --warmup",
                opts.out.display(),
                record.spec.id()
            )));
        }
    }
    Ok(records.iter().map(|r| r.spec.repeat).max().unwrap_or(0) + 1)
}

/// The servers of `--server-file`, then of each `--server`, each checked, their names unique.
fn external_servers(given: &External) -> Result<Vec<ExternalServer>, String> {
    let mut servers = match &given.server_file {
        Some(file) => plan::external::read_file(file)?,
        None => Vec::new(),
    };
    for flag in &given.servers {
        servers.push(plan::external::parse_flag(flag)?);
    }
    let names: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
    if let Some(name) = plan::external::duplicate(&names) {
        return Err(format!(
            "--server: the name '{name}' is given twice; each server needs a name of its own"
        ));
    }
    Ok(servers)
}

/// `--duration` and `--warmup` over the profile's timing, when either is given.
fn timing(profile: Profile, passes: &Passes) -> Result<Option<Timing>, String> {
    if passes
        .duration
        .is_some_and(|d| d < echobench::workload::INTERVAL * 2)
    {
        return Err(format!(
            "--duration must be at least {} (two sample intervals)",
            humantime::format_duration(echobench::workload::INTERVAL * 2)
        ));
    }
    if passes.duration.is_none() && passes.warmup.is_none() {
        return Ok(None);
    }
    // The profile's timing for a one-model pass: a starting point the flags override.
    let base = plan::timing(profile, 1);
    Ok(Some(Timing {
        warmup: passes.warmup.unwrap_or(base.warmup),
        duration: passes.duration.unwrap_or(base.duration),
    }))
}

/// A seed from the clock, for a comparison that was given none.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Writes `diff.md` and `diff.json`, prints the table; `true` when a figure regressed.
fn diff(old: &Path, new: &Path, threshold: f64, out: Option<PathBuf>) -> anyhow::Result<bool> {
    let diff = echobench::diff::diff(old, new, threshold)?;
    let out = out.unwrap_or_else(|| new.to_path_buf());
    echobench::diff::write(&out, &diff)?;
    for warning in &diff.warnings {
        eprintln!("echobench: warning: {warning}");
    }
    print!("{}", echobench::diff::text(&diff));
    println!("diff: {}", out.join("diff.md").display());
    Ok(diff.regressed())
}

fn soak(minutes: u64, models: &str, out: Option<PathBuf>, pinning: Pinning) -> anyhow::Result<()> {
    let servers = if models == "all" {
        soak::soak_models()
    } else {
        let asked = plan::parse_models(models).map_err(usage)?;
        let soakable = soak::soak_models();
        if let Some(s) = asked
            .iter()
            .find(|s| soakable.iter().all(|ok| ok.model != s.model))
        {
            if plan::serves_udp(&s.model) {
                return Err(usage(format!(
                    "--models: {} serves UDP; soak runs the TCP models",
                    s.model
                )));
            }
            return Err(usage(format!(
                "--models: {} serves only one client or its workers at a time; soak runs models \
                 that serve any number at once",
                s.model
            )));
        }
        asked
    };
    let (server_cpus, loadgen_cpus) = cpus(pinning)?;
    let opts = soak::SoakOptions {
        servers,
        duration: Duration::from_secs(minutes * 60),
        out: out.unwrap_or_else(|| default_out("-soak")),
        server_cpus,
        loadgen_cpus,
    };
    end_sessions_on_interrupt()?;
    let found = soak::soak(&opts);
    halt_if_interrupted();
    let found = found?;
    print!(
        "{}",
        std::fs::read_to_string(opts.out.join("soak.md")).unwrap_or_default()
    );
    println!("soak: {}", opts.out.display());
    let failed: Vec<&str> = found
        .iter()
        .filter(|s| s.verdict == soak::Verdict::Fail)
        .map(|s| s.server.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("soak failed for {}", failed.join(", "));
    }
    Ok(())
}

/// The server's and loadgen's CPUs: both given, or the default split; disjoint, and available
/// to this process.
fn cpus(pinning: Pinning) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
    let available = loadgen::affinity_cpus();
    let (server, loadgen) = match (pinning.server_cpus, pinning.loadgen_cpus) {
        (Some(s), Some(l)) => (s.0, l.0),
        (None, None) => plan::default_cpus(&available).map_err(|e| usage(e.to_string()))?,
        _ => {
            return Err(usage(
                "--server-cpus and --loadgen-cpus go together".to_owned(),
            ))
        }
    };
    if let Some(cpu) = server.iter().find(|c| loadgen.contains(c)) {
        return Err(usage(format!(
            "--server-cpus and --loadgen-cpus share CPU {cpu}: they must be disjoint"
        )));
    }
    if let Some(cpu) = server
        .iter()
        .chain(&loadgen)
        .find(|c| !available.contains(c))
    {
        return Err(usage(format!(
            "CPU {cpu} of --server-cpus/--loadgen-cpus is not available (this process may use {})",
            loadgen::format_cpus(&available)
        )));
    }
    Ok((server, loadgen))
}

/// `results/<date>-<hostname><suffix>`, or with `-2`, `-3`, ... when that already exists (a second run
/// on the same day, or the committed reference run of this very machine).
fn default_out(suffix: &str) -> PathBuf {
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let base = format!("{}-{}{suffix}", &date[..10], machine::hostname());
    (1..)
        .map(|n| match n {
            1 => PathBuf::from("results").join(&base),
            n => PathBuf::from("results").join(format!("{base}-{n}")),
        })
        .find(|dir| !dir.exists())
        .unwrap_or_else(|| PathBuf::from("results").join(&base))
}
