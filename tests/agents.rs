//! `echobench compare --agents` through the real binary: a run's load split over agents that
//! start together, their histograms added bucket by bucket, and an agent that starts late,
//! dies or cannot be started fails the run with one line naming it. The lab tests run the
//! agents and the server in namespaces of `scripts/netns-lab.sh` (`ip netns exec {host}` as the
//! launcher, the server through `echobench serve --report`); they skip with one line where
//! namespaces cannot be made, unless `ECHOBENCH_REQUIRE=netns`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hdrhistogram::Histogram;
use testkit::lab::{Lab, NET};

const BIN: &str = env!("CARGO_BIN_EXE_echobench");

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("echobench-agents-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `compare` of `mio` (unless `args` name the models), server on CPU 0 and load on CPU 1.
fn compare(out: &Path, args: &[&str]) -> Output {
    let models = match args.contains(&"--models") {
        true => &[][..],
        false => &["--models", "mio"][..],
    };
    Command::new(BIN)
        .args(["compare", "--server-cpus", "0"])
        .args(["--loadgen-cpus", "1", "--warmup", "300ms", "--out"])
        .arg(out)
        .args(models)
        .args(args)
        .output()
        .unwrap()
}

/// `compare` in `lab`: agents and server in its namespaces.
fn compare_in(lab: &Lab, out: &Path, agents: usize, launcher: &str, args: &[&str]) -> Output {
    let hosts: Vec<String> = (1..=agents).map(|i| lab.agent(i)).collect();
    let server = lab.server();
    let addr = format!("{NET}.1:0");
    let mut all = vec![
        "--agents",
        &hosts.join(","),
        "--launcher",
        launcher,
        "--server-host",
        &server,
        "--server-addr",
        &addr,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    compare(out, &all)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every recorded bucket of `h`: (highest equivalent value, count).
fn buckets(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Asserts that the run's merged interval log holds, tag by tag and bucket by bucket, the sum
/// of its agents' logs, and its report the sum of their counts; returns the agents' records.
fn assert_merged(raw: &Path, id: &str, agents: usize) -> Vec<serde_json::Value> {
    let merged = loadgen::hlog::read(&raw.join(format!("{id}.hlog"))).unwrap();
    let mut sum: std::collections::BTreeMap<String, Histogram<u64>> = Default::default();
    let mut messages = 0;
    for n in 1..=agents {
        let log = loadgen::hlog::read(&raw.join(format!("{id}.agent-{n}.hlog"))).unwrap();
        messages += log.report.messages;
        assert!(log.report.messages > 0, "agent {n} measured nothing");
        for (tag, h) in log.totals {
            sum.entry(tag)
                .or_insert_with(loadgen::new_histogram)
                .add(&h)
                .unwrap();
        }
    }
    assert_eq!(
        merged.totals.keys().collect::<Vec<_>>(),
        sum.keys().collect::<Vec<_>>()
    );
    for (tag, h) in &sum {
        assert_eq!(buckets(&merged.totals[tag]), buckets(h), "tag {tag}");
    }
    let report = json(&raw.join(format!("{id}.json")));
    assert_eq!(report["messages"], messages);
    let record = json(&raw.join(format!("{id}.run.json")));
    assert_eq!(record["status"], "ok", "{record}");
    let records = record["agents"].as_array().unwrap().clone();
    assert_eq!(records.len(), agents);
    records
}

#[test]
fn two_local_agents_split_a_run_and_their_histograms_add_up() {
    let out = tempdir("local");
    let run = compare(
        &out,
        &[
            "--agents",
            "local,local",
            "--workloads",
            "pingpong-c16",
            "--duration",
            "1s",
        ],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let agents = assert_merged(&out.join("raw"), "mio.pingpong-c16.r1", 2);
    let slices: Vec<_> = agents
        .iter()
        .map(|a| (a["conn_offset"].as_u64(), a["connections"].as_u64()))
        .collect();
    assert_eq!(slices, [(Some(0), Some(8)), (Some(8), Some(8))]);
    for a in &agents {
        assert_eq!(
            a["cpus"], "1",
            "local agents are pinned to the loadgen CPUs"
        );
        assert_eq!(a["shares_cpus"], true, "two agents on one core take turns");
        assert!(a["loadgen_cpu_ratio"].as_f64().unwrap() > 0.0);
        assert!(a["start_late_ms"].as_f64().unwrap() < 100.0, "{a}");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Load agents"), "{report}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn two_agents_in_the_lab_keep_one_open_loop_plan_and_the_server_reports_from_its_host() {
    let Some(lab) = Lab::up("two_agents_in_the_lab", 2) else {
        return;
    };
    assert!(lab.status().contains("mtu=1500"), "{}", lab.status());
    let out = tempdir("lab");
    let workloads = ["--workloads", "pingpong-c16,rate-2000", "--duration", "1s"];
    let run = compare_in(&lab, &out, 2, "ip netns exec {host}", &workloads);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let raw = out.join("raw");
    assert_merged(&raw, "mio.pingpong-c16.r1", 2);
    assert_merged(&raw, "mio.rate-2000.r1", 2);
    let rate = json(&raw.join("mio.rate-2000.r1.json"));
    assert_eq!(rate["rate"], 2000.0);
    assert!(
        rate["target"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{NET}.1:")),
        "{rate}"
    );
    for n in 1..=2 {
        let part = json(&raw.join(format!("mio.rate-2000.r1.agent-{n}.json")));
        assert_eq!(part["rate"], 1000.0, "each agent sends its share");
        assert_eq!(part["conn_total"], 16);
    }
    // The server ran in its namespace, sampled there by `serve --report`.
    let record = json(&raw.join("mio.pingpong-c16.r1.run.json"));
    assert!(
        record["server"]["cpu_s"].as_f64().unwrap() > 0.0,
        "{record}"
    );
    assert!(
        record["server"]["peak_rss_kib"].as_u64().unwrap() > 0,
        "{record}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// A launcher that runs `ip netns exec HOST` and, for the run itself (not the check before
/// it), does `action` to the agent on host `victim` (`$h` the host, `"$@"` the command).
fn launcher(victim: &str, action: &str) -> String {
    format!(
        "sh -c 'h=$1; shift; case \"$*\" in *--start-at*) if [ \"$h\" = {victim} ]; then {action}; fi;; esac; exec ip netns exec \"$h\" \"$@\"' sh {{host}}"
    )
}

/// Runs `mio` through pingpong-c16 for `duration` in `lab` with `launcher`, and returns the
/// run's record and note, after checking that the comparison went on and that the run failed
/// naming agent 2.
fn failed_in_lab(
    lab: &Lab,
    test: &str,
    launcher: &str,
    duration: &str,
) -> (serde_json::Value, String) {
    let out = tempdir(test);
    let args = ["--workloads", "pingpong-c16", "--duration", duration];
    let run = compare_in(lab, &out, 2, launcher, &args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let record = json(&out.join("raw/mio.pingpong-c16.r1.run.json"));
    let _ = std::fs::remove_dir_all(&out);
    assert_eq!(record["status"], "failed", "{record}");
    let note = record["note"].as_str().unwrap().to_owned();
    assert!(
        note.contains(&format!("agent {} (2)", lab.agent(2))),
        "{note}"
    );
    (record, note)
}

#[test]
fn an_agent_that_starts_late_fails_the_run_naming_it() {
    let Some(lab) = Lab::up("an_agent_that_starts_late", 2) else {
        return;
    };
    let late = launcher(&lab.agent(2), "sleep 0.8");
    let (record, note) = failed_in_lab(&lab, "late", &late, "1s");
    assert!(note.contains("after the common start"), "{note}");
    let late_ms = record["agents"][1]["start_late_ms"].as_f64().unwrap();
    assert!(late_ms > 100.0, "{record}");
    let first = record["agents"][0]["start_late_ms"].as_f64().unwrap();
    assert!(first < 100.0, "{record}");
}

#[test]
fn an_agent_killed_mid_run_fails_the_run_naming_it() {
    let Some(lab) = Lab::up("an_agent_killed_mid_run", 2) else {
        return;
    };
    let kill = "ip netns exec \"$h\" \"$@\" & p=$!; sleep 1; kill -9 $p; wait $p; exit 137";
    let killer = launcher(&lab.agent(2), kill);
    let (record, note) = failed_in_lab(&lab, "killed", &killer, "3s");
    assert!(note.contains("exited before its report"), "{note}");
    // The other agent is stopped by the end of its stdin, well before its run's end.
    let other = record["agents"][0]["failure"].as_str().unwrap();
    let stopped = other.contains("stopped with the others") && other.contains("exit status 3");
    assert!(stopped, "{other}");
}

#[test]
fn a_host_that_cannot_be_started_costs_one_line_naming_it() {
    let out = tempdir("missing");
    let run = compare(
        &out,
        &[
            "--agents",
            "local,local",
            "--agent-bin",
            "/nonexistent/echobench",
            "--workloads",
            "pingpong-c16",
            "--duration",
            "500ms",
        ],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let record = json(&out.join("raw/mio.pingpong-c16.r1.run.json"));
    assert_eq!(record["status"], "failed", "{record}");
    let note = record["note"].as_str().unwrap();
    assert_eq!(
        note,
        "loadgen: agent local (1): cannot run '/nonexistent/echobench': No such file or directory (os error 2)"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn agents_elsewhere_without_a_reachable_server_address_are_refused() {
    let out = tempdir("refused");
    let run = compare(&out, &["--agents", "b1", "--workloads", "pingpong-c16"]);
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        stderr.trim(),
        "echobench: --agents: agent b1 cannot reach a server on loopback; give --server-addr ADDR, an address it can reach"
    );
}

#[test]
fn a_server_on_the_server_host_is_run_and_sampled_by_serve_report() {
    let out = tempdir("serve");
    let run = compare(
        &out,
        &[
            "--models",
            "fork-per-client",
            "--server-host",
            "local",
            "--server-addr",
            "127.0.0.1:0",
            "--workloads",
            "pingpong-c16",
            "--duration",
            "500ms",
        ],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let record = json(&out.join("raw/fork-per-client.pingpong-c16.r1.run.json"));
    assert_eq!(record["status"], "ok", "{record}");
    let server = &record["server"];
    // A process per client: the parent and 16 children, seen from the host's /proc.
    assert!(server["peak_processes"].as_u64().unwrap() >= 17, "{server}");
    assert!(server["cpu_s"].as_f64().unwrap() > 0.0, "{server}");
    assert!(
        server["cpu_series"].as_array().unwrap().len() >= 3,
        "{server}"
    );
    let env = json(&out.join("environment.json"));
    assert_eq!(env["hosts"]["server_host"], "local");
    let _ = std::fs::remove_dir_all(&out);
}
