//! `echobench`: compare echo-server concurrency models, and render the reports.
//!
//! Exit codes: 0 when the comparison (or rendering) completed, models that failed included;
//! 1 when it could not be made (bad output directory, raw data unreadable); 2 for bad
//! arguments.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use echobench::plan::{self, CompareOptions};
use echobench::render::headline_text;
use echobench::run::{machine, server::pin_process};
use echobench::schema::Profile;
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
        /// Models to compare, comma-separated, or `all`.
        #[arg(long, value_name = "LIST|all", default_value = "all")]
        models: String,
        /// `quick` (within 5 minutes on 2 cores) or `full` (longer runs, 3 repeats).
        #[arg(long, value_enum, default_value = "quick")]
        profile: Profile,
        /// Output directory [default: results/<date>-<hostname>].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[command(flatten)]
        pinning: Pinning,
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
    /// Run one server, exactly as `echo-server` does, pinned to --cpus (used by compare).
    #[command(hide = true)]
    Serve {
        /// CPUs to pin the server to before it starts.
        #[arg(long, value_parser = cpu_list)]
        cpus: CpuList,
        /// `echo-server` arguments: MODEL [--addr ...] [--workers N] [--max-conns N].
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<OsString>,
    },
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
        Command::Serve { cpus, args } => {
            if let Err(e) = pin_process(&cpus.0) {
                eprintln!("echo-server: --cpus: {e:#}");
                return ExitCode::from(2);
            }
            let argv = std::iter::once(OsString::from("echo-server")).chain(args);
            return echo_server::cli::main_with_args(argv);
        }
        Command::Report { dir } => echobench::report(&dir).map(|summary| {
            print!("{}", headline_text(&summary));
            println!("report: {}", dir.join("report.html").display());
        }),
        Command::Compare {
            models,
            profile,
            out,
            pinning,
        } => compare(models, profile, out, pinning),
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
    profile: Profile,
    out: Option<PathBuf>,
    pinning: Pinning,
) -> anyhow::Result<()> {
    let servers = plan::parse_models(&models).map_err(usage)?;
    let (server_cpus, loadgen_cpus) = cpus(pinning)?;
    let out = out.unwrap_or_else(|| default_out(""));
    if out.join("raw").exists()
        && std::fs::read_dir(out.join("raw")).is_ok_and(|mut d| d.next().is_some())
    {
        bail!(
            "--out {} already holds a comparison; choose another directory",
            out.display()
        );
    }
    let opts = CompareOptions {
        servers,
        profile,
        out: out.clone(),
        server_cpus,
        loadgen_cpus,
        progress: true,
    };
    let summary = echobench::compare(&opts).map_err(|e| e.context("comparison failed"))?;
    print!("{}", headline_text(&summary));
    println!("report: {}", out.join("report.html").display());
    Ok(())
}

fn soak(minutes: u64, models: &str, out: Option<PathBuf>, pinning: Pinning) -> anyhow::Result<()> {
    let servers = if models == "all" {
        soak::soak_models()
    } else {
        let asked = plan::parse_models(models).map_err(usage)?;
        let soakable = soak::soak_models();
        if let Some(s) = asked.iter().find(|s| !soakable.contains(s)) {
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
    let found = soak::soak(&opts)?;
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
