//! The `echobench` command line, in the library so that tests reach it without the binary:
//! [`main_with_args`] parses the arguments ([`args`]: clap's structs), resolves the flags
//! into each command's options ([`resolve`]: every rule across flags, a [`UsageError`] for
//! each refusal) and runs the command.
//!
//! Exit codes: 0 when the comparison (or rendering) completed, models that failed included;
//! 1 when it could not be made (bad output directory, raw data unreadable); 2 for bad
//! arguments.

mod args;
pub mod resolve;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;

use crate::render::headline_text;
use crate::run::launch::{end_sessions_on_interrupt, halt_if_interrupted};
use crate::run::server::pin_process;
use crate::schema::{ExternalServer, ServerSpec};
use crate::soak;
use args::{Cli, Command, CpuList, Pinning};
pub use resolve::UsageError;

/// Runs `echobench` with `argv` (the program's name first) and returns its exit code.
pub fn main_with_args(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(argv) {
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
        Command::Report { dir } => crate::pipeline::report(&dir).map(|summary| {
            print!("{}", headline_text(&summary));
            println!("report: {}", dir.join("report.html").display());
        }),
        Command::Compare(flags) => compare(flags),
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

/// `echobench compare`: resolves the flags, runs the comparison and prints its headline.
fn compare(flags: args::CompareFlags) -> anyhow::Result<()> {
    let Some(opts) = resolve::compare_options(flags)? else {
        return Ok(());
    };
    end_sessions_on_interrupt()?;
    let summary = crate::pipeline::compare(&opts);
    halt_if_interrupted();
    let summary = summary.map_err(|e| e.context("comparison failed"))?;
    print!("{}", headline_text(&summary));
    println!("report: {}", opts.out.join("report.html").display());
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
            Ok(ext) => crate::run::remote::Served::External(ext),
            Err(e) => return fail(format!("--external: not a server definition: {e}")),
        },
        (None, Some((model, rest))) => crate::run::remote::Served::Model(ServerSpec {
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
    crate::run::remote::supervise(&served, &addr, &cpus)
}

/// Writes `diff.md` and `diff.json`, prints the table; `true` when a figure regressed.
fn diff(old: &Path, new: &Path, threshold: f64, out: Option<PathBuf>) -> anyhow::Result<bool> {
    let diff = crate::diff::diff(old, new, threshold)?;
    let out = out.unwrap_or_else(|| new.to_path_buf());
    crate::diff::write(&out, &diff)?;
    for warning in &diff.warnings {
        eprintln!("echobench: warning: {warning}");
    }
    print!("{}", crate::diff::text(&diff));
    println!("diff: {}", out.join("diff.md").display());
    Ok(diff.regressed())
}

fn soak(minutes: u64, models: &str, out: Option<PathBuf>, pinning: Pinning) -> anyhow::Result<()> {
    let servers = resolve::soak_servers(models)?;
    let (server_cpus, loadgen_cpus) = resolve::cpus(pinning)?;
    let opts = soak::SoakOptions {
        servers,
        duration: Duration::from_secs(minutes * 60),
        out: out.unwrap_or_else(|| resolve::default_out("-soak")),
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
