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

/// A launcher for hosts that are not this one in name only: it runs the command here, through
/// `shell` (`"$@"` the command, `$h` the host).
fn pretend(shell: &str) -> String {
    format!("sh -c 'h=$1; shift; {shell}' sh {{host}}")
}

/// Runs `mio` through pingpong-c16 for 500 ms with the servers on `--server-host HOST`, or the
/// load on `--agents HOST` (`flag`), started through `launcher`, the servers listening on
/// every address; checks that the comparison went on to its report, and returns the run's
/// record.
fn pretend_run(test: &str, flag: &str, host: &str, launcher: &str) -> serde_json::Value {
    let out = tempdir(test);
    let args = [
        flag,
        host,
        "--server-addr",
        "0.0.0.0:0",
        "--launcher",
        launcher,
        "--workloads",
        "pingpong-c16",
        "--duration",
        "500ms",
    ];
    let run = compare(&out, &args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(out.join("report.md").exists(), "no report");
    let record = json(&out.join("raw/mio.pingpong-c16.r1.run.json"));
    let _ = std::fs::remove_dir_all(&out);
    record
}

#[test]
fn hosts_that_are_not_host_names_are_refused_before_anything_runs() {
    let out = tempdir("not-a-host");
    for (flag, host) in [
        ("--agents", "-oProxyCommand=touch /tmp/echobench-pwned"),
        ("--server-host", "s1;reboot"),
    ] {
        // As one word, `--agents=...`: clap takes a separate `-o...` for an option itself.
        let given = format!("{flag}={host}");
        let run = compare(
            &out,
            &[
                &given,
                "--server-addr",
                "10.0.0.1:0",
                "--workloads",
                "pingpong-c16",
            ],
        );
        assert_eq!(run.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(
            stderr.trim(),
            format!("echobench: {flag}: '{host}' is not a host name, an IP address or user@host")
        );
        assert!(!out.exists());
    }
}

#[test]
fn a_server_host_is_read_past_its_banner_and_must_run_this_version() {
    // A banner that is not UTF-8, and a long one, before anything the host says.
    let banner = pretend(
        r#"printf "\377 welcome to $h\n"; head -c 200000 /dev/zero | tr "\0" "="; echo; exec "$@""#,
    );
    let record = pretend_run("banner", "--server-host", "s1", &banner);
    assert_eq!(record["status"], "ok", "{record}");
    // Another version there: refused, naming the host and both versions.
    let older = pretend(r#""$@" | sed -u "s/\"version\":\"[^\"]*\"/\"version\":\"0.0.1\"/""#);
    let record = pretend_run("older", "--server-host", "s1", &older);
    assert_eq!(record["status"], "failed", "{record}");
    let note = record["note"].as_str().unwrap();
    assert!(
        note.contains("server host s1: it runs echobench 0.0.1")
            && note.contains(env!("CARGO_PKG_VERSION")),
        "{note}"
    );
}

#[test]
fn a_server_host_that_reports_what_no_server_can_fails_the_run_naming_it() {
    let negative = pretend(r#""$@" | sed -u "s/\"took_s\":[0-9.e-]*/\"took_s\":-1.5/""#);
    let record = pretend_run("took", "--server-host", "s1", &negative);
    assert_eq!(record["status"], "failed", "{record}");
    let note = record["note"].as_str().unwrap();
    assert!(
        note.contains("server host s1: a stop that took -1.5 s, which no stop can"),
        "{note}"
    );
}

#[test]
fn an_agent_whose_report_cannot_be_true_fails_the_run_naming_it() {
    // The same length, so that the frames stay whole: a warm-up of 9e9 s, in both frames.
    let tamper = pretend(r#""$@" | sed -u "s/\"warmup_s\":0.3/\"warmup_s\":9e9/g""#);
    let record = pretend_run("agent-warmup", "--agents", "a1", &tamper);
    assert_eq!(record["status"], "failed", "{record}");
    let note = record["note"].as_str().unwrap();
    assert!(
        note.contains("agent a1 (1): a report with warmup_s 9000000000")
            && note.contains("over a year"),
        "{note}"
    );
}

#[test]
fn serve_report_keeps_the_server_log_private_and_removes_it_however_it_stops() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempdir("serve-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    for stop in ["stdin", "SIGTERM"] {
        let mut child = Command::new(BIN)
            .args(["serve", "--report", "--addr", "127.0.0.1:0", "--", "mio"])
            .env("TMPDIR", &tmp)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let hello = lines.next().unwrap().unwrap();
        assert!(hello.starts_with("{\"hello\":"), "{hello}");
        let listening = lines.next().unwrap().unwrap();
        assert!(listening.contains("listening on"), "{listening}");
        // Not at a name anyone could have guessed, and readable by its owner alone.
        let predictable = tmp.join(format!("echobench-serve-{}.log", child.id()));
        assert!(!predictable.exists(), "{}", predictable.display());
        let made: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
        assert_eq!(made.len(), 1, "{made:?}");
        let mode = made[0].metadata().unwrap().permissions().mode();
        assert!(made[0].path().is_dir() && mode & 0o077 == 0, "{mode:o}");
        match stop {
            "stdin" => drop(child.stdin.take()),
            _ => {
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
            }
        }
        let last = lines.map(Result::unwrap).last().unwrap();
        assert!(last.starts_with("{\"stopped\":"), "{stop}: {last}");
        assert!(child.wait().unwrap().success(), "{stop}");
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
        assert!(left.is_empty(), "{stop}: left behind {left:?}");
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}
