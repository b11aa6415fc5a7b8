//! The report formats, pinned on fixture data: `report.md` and `summary.json` by snapshot,
//! and the promise that rendering the same raw data twice gives byte-identical files.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use echobench::environment::Environment;
use echobench::procfs::ServerUsage;
use echobench::runner::{RunRecord, Status, SCHEMA_VERSION};
use echobench::workload::{Profile, RunSpec, Timing, Workload};
use hdrhistogram::Histogram;
use loadgen::{Errors, Latency, Mode, Report};

const MODELS: [&str; 2] = ["blocking", "mio"];

fn workloads() -> Vec<Workload> {
    vec![
        Workload::Pingpong { connections: 1 },
        Workload::Pingpong { connections: 16 },
        Workload::Rate { rate: 10_000.0 },
        Workload::Churn,
        Workload::Idle { idle: 0 },
        Workload::Idle { idle: 1000 },
        Workload::Bulk,
    ]
}

fn environment() -> Environment {
    Environment {
        schema_version: 1,
        started_utc: "2026-01-02T03:04:05Z".to_owned(),
        hostname: "fixture".to_owned(),
        cpu_model: "Fixture CPU".to_owned(),
        cores: 2,
        memory_kib: 24 * 1024 * 1024,
        kernel: "6.0.0".to_owned(),
        rustc: "rustc 1.0.0".to_owned(),
        echobench_version: "0.0.0".to_owned(),
        git_commit: Some("0123456789abcdef".to_owned()),
        server_cpus: "0".to_owned(),
        loadgen_cpus: "1".to_owned(),
        profile: Profile::Quick,
        models: MODELS.iter().map(|m| (*m).to_owned()).collect(),
    }
}

/// Writes a comparison's raw data with made-up, deterministic figures: the blocking model
/// starves 15 of 16 connections and misses the rate, mio does not.
fn fixture(dir: &Path) {
    let raw = dir.join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    environment().write(&dir.join("environment.json")).unwrap();
    let timing = Timing {
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(2),
    };
    for (m, model) in MODELS.iter().enumerate() {
        let fast = m as f64 + 1.0;
        for (k, workload) in workloads().into_iter().enumerate() {
            let spec = RunSpec {
                model: (*model).to_owned(),
                workload,
                repeat: 1,
            };
            let id = spec.id();
            let opts = workload.loadgen_options("127.0.0.1:7".parse().unwrap(), timing);
            let blocking_starves = *model == "blocking" && opts.connections > 1 && !opts.churn;
            let starved = if blocking_starves {
                opts.connections - 1
            } else {
                0
            };
            let base_us = 50.0 * (k as f64 + 1.0) / fast;
            let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
            let messages = (20_000.0 * fast) as u64 + k as u64 * 100;
            for i in 0..messages {
                h.record((base_us * 1000.0) as u64 + (i % 97) * 500)
                    .unwrap();
            }
            let latency = Latency::from_histogram(&h);
            let throughput = messages as f64 / 2.0;
            let rate = opts.rate;
            let report = Report {
                schema_version: 1,
                target: "127.0.0.1:7".to_owned(),
                mode: opts.mode(),
                connections: opts.connections,
                idle: opts.idle,
                size: opts.size,
                pipeline: 1,
                rate,
                duration_s: 2.0,
                warmup_s: 0.5,
                messages,
                bytes: messages * opts.size as u64,
                throughput_msgs_per_s: throughput,
                achieved_rate_ratio: rate.map(|r| throughput / r),
                errors: Errors::default(),
                connections_starved: starved,
                latency_us: latency.clone(),
                latency_uncorrected_us: (opts.mode() == Mode::Open).then(|| latency.clone()),
                connect_us: (opts.mode() == Mode::Churn).then(|| latency.clone()),
                loadgen_cpu_ratio: if *model == "mio" && k == 1 { 0.97 } else { 0.5 },
                loadgen_saturated: *model == "mio" && k == 1,
                first_error: None,
            };
            std::fs::write(
                raw.join(format!("{id}.json")),
                serde_json::to_string_pretty(&report).unwrap(),
            )
            .unwrap();
            let interval = loadgen::hlog::Interval {
                start: Duration::ZERO,
                length: Duration::from_secs(2),
                tag: "latency".to_owned(),
                histogram: h,
            };
            let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045);
            loadgen::hlog::write(&raw.join(format!("{id}.hlog")), base, &[interval], &report)
                .unwrap();
            let idle = opts.idle as u64;
            let record = RunRecord {
                schema_version: SCHEMA_VERSION,
                spec,
                timing,
                status: if starved > 0 {
                    Status::Starved
                } else {
                    Status::Ok
                },
                note: (starved > 0).then(|| {
                    format!(
                        "{starved} of {} connections completed no message",
                        opts.connections
                    )
                }),
                server: Some(ServerUsage {
                    cpu_s: messages as f64 * 6e-6 * (3.0 - fast),
                    peak_rss_kib: 4000 + idle * (10 + 20 * (2 - m as u64)),
                    peak_pss_kib: 3000 + idle * (8 + 20 * (2 - m as u64)),
                    peak_threads: 1,
                    peak_processes: 1,
                    // The iterative server never takes the idle connections.
                    peak_fds: if *model == "blocking" { 9 } else { 8 + idle },
                    voluntary_switches: messages / 10,
                    involuntary_switches: messages / 100,
                }),
            };
            std::fs::write(
                raw.join(format!("{id}.run.json")),
                serde_json::to_string_pretty(&record).unwrap(),
            )
            .unwrap();
        }
    }
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("echobench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn report_md_and_summary_json_are_pinned() {
    let dir = tempdir("snapshot");
    fixture(&dir);
    echobench::report::render(&dir).unwrap();
    insta::assert_snapshot!(
        "report.md",
        std::fs::read_to_string(dir.join("report.md")).unwrap()
    );
    insta::assert_snapshot!(
        "summary.json",
        std::fs::read_to_string(dir.join("summary.json")).unwrap()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rendering_the_same_raw_data_twice_is_byte_identical() {
    let dir = tempdir("twice");
    fixture(&dir);
    echobench::report::render(&dir).unwrap();
    let first = common::files(&dir, false);
    echobench::report::render(&dir).unwrap();
    assert_eq!(common::files(&dir, false), first);
    let names: Vec<&str> = first.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "report.md",
        "report.html",
        "summary.json",
        "throughput-vs-connections.svg",
        "p99-vs-rate.svg",
        "memory-per-connection.svg",
        "cpu-per-message.svg",
        "latency-pingpong-c16.svg",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let html = String::from_utf8(
        first
            .iter()
            .find(|(n, _)| n == "report.html")
            .unwrap()
            .1
            .clone(),
    )
    .unwrap();
    assert!(html.matches("<svg").count() >= 5, "plots are not inline");
    assert!(
        !html.contains("src=\"http"),
        "report.html must not load anything"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn memory_per_connection_is_the_slope_over_idle_connections() {
    let dir = tempdir("slope");
    fixture(&dir);
    let summary = echobench::report::render(&dir).unwrap();
    let memory = |model: &str| {
        summary
            .memory_per_connection
            .iter()
            .find(|m| m.model == model)
            .unwrap()
    };
    // PSS grows by 28 KiB per idle connection for mio in the fixture.
    assert_eq!(memory("mio").pss_bytes_per_connection, Some(28.0 * 1024.0));
    // The iterative server leaves them in the backlog: no memory per connection is claimed.
    assert_eq!(memory("blocking").pss_bytes_per_connection, None);
    assert!(memory("blocking")
        .not_accepted
        .as_deref()
        .unwrap()
        .contains("backlog"));
    let flags = |model: &str| {
        summary
            .headline
            .iter()
            .find(|h| h.model == model)
            .unwrap()
            .flags
            .join("; ")
    };
    assert!(
        flags("mio").contains("loadgen-bound: pingpong-c16"),
        "{}",
        flags("mio")
    );
    assert!(
        flags("blocking").contains("15/16 starved"),
        "{}",
        flags("blocking")
    );
    assert!(
        flags("blocking").contains("backlog"),
        "{}",
        flags("blocking")
    );
    std::fs::remove_dir_all(dir).unwrap();
}
