//! `echobench diff` through the real binary: a comparison against itself changes nothing, and
//! against one whose server spends half as much CPU again per message (the `mio` model's
//! test-only busy wait) it finds the regression in CPU per message, and `--fail-on-regression` exits 1. The
//! two comparisons are built pass by pass, alternately, with `compare --append`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use echo_server::echo::TEST_SPIN_ENV;

const BIN: &str = env!("CARGO_BIN_EXE_echobench");

/// Passes of each comparison; the two comparisons' passes alternate, so that a slow spell of
/// a shared machine falls on both alike (here CPU per message of one model drifts by up to
/// 15 % between comparisons minutes apart: as much as the change the test looks for).
const PASSES: usize = 7;

/// One 2-second pass of `mio` at 16 connections into `out` (added to what is there with
/// `append`); `spin_ns` makes the server busy-wait that long before each echo.
fn compare(out: &Path, spin_ns: Option<u64>, append: bool) {
    let mut cmd = Command::new(BIN);
    cmd.args(["compare", "--profile", "tiny", "--models", "mio"])
        .args(["--workloads", "pingpong-c16", "--repeat", "1"])
        .args(["--duration", "2s", "--warmup", "300ms", "--seed", "7"])
        .args(["--server-cpus", "0", "--loadgen-cpus", "1", "--out"])
        .arg(out);
    if append {
        cmd.arg("--append");
    }
    match spin_ns {
        Some(ns) => cmd.env(TEST_SPIN_ENV, ns.to_string()),
        None => cmd.env_remove(TEST_SPIN_ENV),
    };
    let run = cmd.output().unwrap();
    assert!(run.status.success(), "{}", text(&run));
}

/// A copy of `base` said to have run on another kernel and CPU count: diff warns, once per
/// setting, and still compares.
fn environments_that_differ_are_warned_about(base: &Path, out: &Path) {
    let other = tempdir("other");
    let _ = std::fs::remove_dir_all(&other);
    std::fs::create_dir_all(other.join("raw")).unwrap();
    for entry in std::fs::read_dir(base.join("raw")).unwrap().flatten() {
        std::fs::copy(entry.path(), other.join("raw").join(entry.file_name())).unwrap();
    }
    let mut env = json(&base.join("environment.json"));
    env["kernel"] = "9.9.9".into();
    env["cores"] = 64.into();
    std::fs::write(other.join("environment.json"), env.to_string()).unwrap();
    let warned = diff(base, &other, out, false);
    assert!(warned.status.success(), "{}", text(&warned));
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(
        stderr.contains("warning: the environments differ: kernel"),
        "{stderr}"
    );
    assert!(
        stderr.contains("CPUs") && stderr.contains("against 64 (NEW)"),
        "{stderr}"
    );
    assert!(
        json(&out.join("diff.json"))["warnings"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    std::fs::remove_dir_all(other).unwrap();
}

fn diff(old: &Path, new: &Path, out: &Path, fail_on_regression: bool) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("diff").arg(old).arg(new).arg("--out").arg(out);
    if fail_on_regression {
        cmd.arg("--fail-on-regression");
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Each run's server CPU per message, µs, for a failure's message.
fn cpu_by_repeat(dir: &Path) -> Vec<f64> {
    let mut runs: Vec<_> = std::fs::read_dir(dir.join("raw"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".run.json"))
        .collect();
    runs.sort();
    runs.iter()
        .map(|p| {
            let record = json(p);
            let report = json(&PathBuf::from(
                p.to_string_lossy().replace(".run.json", ".json"),
            ));
            record["server"]["cpu_s"].as_f64().unwrap() * 1e6 / report["messages"].as_f64().unwrap()
        })
        .collect()
}

fn tempdir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("echobench-diff-{name}-{}", std::process::id()))
}

/// The row of `figure` for mio at 16 connections.
fn row<'a>(diff: &'a serde_json::Value, figure: &str) -> &'a serde_json::Value {
    diff["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["workload"] == "pingpong-c16" && r["figure"] == figure)
        .unwrap()
}

#[test]
fn a_run_against_itself_is_no_change_and_against_a_costlier_server_is_a_regression() {
    let (base, costly, out) = (tempdir("base"), tempdir("costly"), tempdir("out"));
    for dir in [&base, &costly] {
        let _ = std::fs::remove_dir_all(dir);
    }
    compare(&base, None, false);
    let first = json(&base.join("summary.json"));
    let cpu_us = first["cells"][0]["server_cpu_us_per_msg"]["median"]
        .as_f64()
        .unwrap();
    // 50 % more CPU per message: a busy wait of half what an echo costs now. Not less: on the
    // shared 2-core machine CPU per message drifted from 5.7 to 8.4 µs between passes, and a
    // 20 % change was found in only 4 of 6 runs of this test.
    let spin = Some((cpu_us * 500.0).round() as u64);
    compare(&costly, spin, false);
    for _ in 1..PASSES {
        compare(&base, None, true);
        compare(&costly, spin, true);
    }
    let summary = json(&base.join("summary.json"));
    assert_eq!(summary["cells"][0]["repeats"], PASSES, "{summary}");
    assert!(
        summary["cells"][0]["server_cpu_us_per_msg"]["ci"]["low"].is_f64(),
        "{PASSES} passes of 20 intervals give an interval: {summary}"
    );

    let same = diff(&base, &base, &out, true);
    assert!(same.status.success(), "{}", text(&same));
    let d = json(&out.join("diff.json"));
    for r in d["rows"].as_array().unwrap() {
        assert!(
            r["verdict"] == "no_change" || r["verdict"] == "not_comparable",
            "a run against itself: {r}"
        );
    }
    assert!(text(&same).contains("no change"), "{}", text(&same));
    assert!(out.join("diff.md").is_file());

    let worse = diff(&base, &costly, &out, true);
    assert_eq!(
        worse.status.code(),
        Some(1),
        "{}\nCPU per message by repeat: {:?} before, {:?} after",
        text(&worse),
        cpu_by_repeat(&base),
        cpu_by_repeat(&costly)
    );
    let d = json(&out.join("diff.json"));
    let cpu = row(&d, "cpu_per_msg");
    assert_eq!(cpu["verdict"], "regressed", "{cpu}");
    let low = cpu["change_ci"][0].as_f64().unwrap();
    assert!(low > 0.0, "the interval of the change excludes none: {cpu}");
    assert!(text(&worse).contains("regressed"), "{}", text(&worse));
    // Without --fail-on-regression the diff itself succeeds.
    assert!(diff(&base, &costly, &out, false).status.success());

    environments_that_differ_are_warned_about(&base, &out);
    for dir in [base, costly, out] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}
