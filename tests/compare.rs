//! `echobench compare` end to end on the tiny profile, through the real binary: servers
//! started and stopped, loadgen run, raw data and reports written, and `echobench report`
//! re-rendering them byte for byte.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_echobench");

#[test]
fn a_tiny_comparison_runs_end_to_end_and_re_renders_identically() {
    let out = std::env::temp_dir().join(format!("echobench-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(BIN)
        .args([
            "compare",
            "--profile",
            "tiny",
            "--models",
            "blocking,fork-per-client,mio",
        ])
        .args(["--server-cpus", "0", "--loadgen-cpus", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("report.html"), "{stdout}");
    for model in ["blocking", "fork-per-client", "mio"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(model)),
            "{model} not in the headline:\n{stdout}"
        );
    }
    summary_holds_every_cell(&out);
    environment_describes_the_run(&out);
    raw_holds_every_record(&out);
    report_re_renders_identically(&out);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn udp_models_run_the_udp_workloads_alone_and_report_their_datagrams() {
    let out = std::env::temp_dir().join(format!("echobench-compare-udp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(BIN)
        .args(["compare", "--profile", "tiny", "--udp"])
        .args(["--models", "mio,udp-mio,udp-reuseport"])
        .args([
            "--workloads",
            "pingpong-c1,udp-pingpong-c16-p8,udp-rate-2000",
        ])
        .args(["--server-cpus", "0", "--loadgen-cpus", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    // The UDP headline follows the TCP one; udp-reuseport states its workers (one per CPU).
    assert!(stdout.contains("worst loss"), "{stdout}");
    assert!(stdout.contains("udp-reuseport(1)"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let cells = summary["cells"].as_array().unwrap();
    let ran: Vec<(String, String)> = cells
        .iter()
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap().to_owned();
            (field("model"), field("label"))
        })
        .collect();
    assert_eq!(
        ran,
        [
            ("mio", "pingpong-c1"),
            ("udp-mio", "udp-pingpong-c16-p8"),
            ("udp-mio", "udp-rate-2000"),
            ("udp-reuseport(1)", "udp-pingpong-c16-p8"),
            ("udp-reuseport(1)", "udp-rate-2000"),
        ]
        .map(|(m, l)| (m.to_owned(), l.to_owned()))
    );
    for c in cells
        .iter()
        .filter(|c| c["label"].as_str().unwrap().starts_with("udp-"))
    {
        assert_eq!(c["status"], "ok", "{c}");
        let d = &c["datagrams"];
        assert!(d["sent"].as_u64().unwrap() > 100, "{c}");
        assert!(c["loss_ratio"]["median"].as_f64().unwrap() < 0.01, "{c}");
    }
    assert!(
        cells[0].get("datagrams").is_none(),
        "a TCP cell has no datagrams"
    );
    let env = std::fs::read_to_string(out.join("environment.json")).unwrap();
    assert!(env.contains("\"udp\": true"), "{env}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## UDP"), "{report}");
    assert!(report.contains("What became of the datagrams"), "{report}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn tls_mixed_takes_its_arrival_rates_from_the_same_servers_tls_churn() {
    let out = std::env::temp_dir().join(format!("echobench-compare-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(BIN)
        .args(["compare", "--profile", "tiny", "--tls", "--models", "mio"])
        .args(["--workloads", "tls-churn,tls-mixed-0,tls-mixed-25"])
        .args(["--server-cpus", "0", "--loadgen-cpus", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("TLS handshakes/s"),
        "headline column: {stdout}"
    );
    let report = |id: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(out.join("raw").join(format!("{id}.json"))).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let churn = report("mio.tls-churn.r1");
    let churn_rate = churn["throughput_msgs_per_s"].as_f64().unwrap();
    assert!(churn_rate > 0.0);
    let handshakes = &churn["handshakes"];
    assert!(handshakes["full"].as_u64().unwrap() > 10, "{handshakes}");
    assert_eq!(churn["tls"]["verification"], "ca");
    for round in 1..=3 {
        let control = report(&format!("mio.tls-mixed-0.r{round}"));
        assert!(control["handshake_arrivals"].is_null());
        assert_eq!(control["rate"], 4000.0);
        let loaded = report(&format!("mio.tls-mixed-25.r{round}"));
        let rate = loaded["handshake_arrivals"]["rate"].as_f64().unwrap();
        assert_eq!(
            rate,
            (churn_rate * 0.25).round(),
            "25 % of the churn run's rate"
        );
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("## TLS") && md.contains("in the control"),
        "{md}"
    );
    report_re_renders_identically(&out);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn work_runs_the_event_loops_pooled_on_shared_cpus_and_tests_the_claims() {
    let out = tiny_compare(
        "work",
        &[
            "--work",
            "--models",
            "mio,thread-per-client",
            "--workloads",
            "cpu-1ms-c16,wait-1ms-c16,mixed-c16",
        ],
    );
    // The CPU-bound workloads give the server the loadgen CPU too, and say so in the record.
    let raw = out.join("raw");
    let shared = json(&raw.join("mio_offload_pool.cpu-1ms-c16.r1.run.json"));
    assert_eq!(shared["server_cpus"], "0-1", "{shared}");
    let own = json(&raw.join("mio.wait-1ms-c16.r1.run.json"));
    assert!(own.get("server_cpus").is_none(), "{own}");
    let sent = json(&raw.join("mio.mixed-c16.r1.json"));
    assert_eq!(sent["work"]["spec"], "cpu=20us;1%:cpu=10ms", "{sent}");

    let summary = json(&out.join("summary.json"));
    let cells = summary["cells"].as_array().unwrap();
    let ran = common::cells_ran(&summary);
    assert_eq!(
        ran,
        [
            "mio cpu-1ms-c16",
            "mio wait-1ms-c16",
            "mio mixed-c16",
            "thread-per-client cpu-1ms-c16",
            "thread-per-client wait-1ms-c16",
            "thread-per-client mixed-c16",
            "mio+pool cpu-1ms-c16",
            "mio+pool mixed-c16",
        ]
    );
    for c in cells {
        assert_eq!(c["status"], "ok", "{c}");
        let label = c["label"].as_str().unwrap();
        assert_eq!(c["server_cpus"].is_string(), label != "wait-1ms-c16", "{c}");
        assert_eq!(
            c["loadgen_cpu_ratio"].is_object(),
            label != "wait-1ms-c16",
            "{c}"
        );
        let classes = c.get("work_classes").and_then(|w| w.as_array());
        match label {
            // The light and the heavy requests, measured apart.
            "mixed-c16" => {
                let classes = classes.unwrap();
                assert_eq!(classes[0]["spec"], "cpu=20us", "{c}");
                assert_eq!(classes[1]["spec"], "cpu=10ms", "{c}");
                let light = classes[0]["latency_p99_us"]["median"].as_f64().unwrap();
                let heavy = classes[1]["latency_p50_us"]["median"].as_f64().unwrap();
                assert!(heavy >= 10_000.0, "a heavy request takes its 10 ms: {c}");
                assert!(light > 0.0 && classes[0]["latency_p99_us"]["ci"].is_object());
            }
            _ => assert!(classes.is_none(), "{c}"),
        }
    }
    // Each claim whose servers both ran, with the reason one pass cannot judge it.
    let claims = summary["claims"].as_array().unwrap();
    let pairs: Vec<String> = claims
        .iter()
        .map(|c| {
            format!(
                "{} / {}",
                c["other"].as_str().unwrap(),
                c["base"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(pairs, ["mio+pool / mio", "thread-per-client / mio"]);
    for c in claims {
        assert_eq!(c["verdict"], "cannot-be-seen", "{c}");
        assert!(
            c["why"].as_str().unwrap().contains("1 repeat(s), 3 needed"),
            "{c}"
        );
        assert!(c["ratio"].as_f64().unwrap() > 0.0, "{c}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for heading in [
        "## Requests with a cost",
        "**CPUs shared:**",
        "### mixed: p99 of the light / the heavy requests",
        "## The tutorials' claims, tested",
        "### The blocked event loop",
    ] {
        assert!(md.contains(heading), "{heading}:\n{md}");
    }
    report_re_renders_identically(&out);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn chat_runs_every_way_of_sharing_starves_the_iterative_server_and_judges_the_slow_member() {
    let out = tiny_compare(
        "chat",
        &[
            "--chat",
            "--models",
            "blocking,fork-per-client,mio,thread-per-client",
            "--workloads",
            "chat-r16-c64,chat-slow",
        ],
    );
    let summary = json(&out.join("summary.json"));
    let ran = common::cells_ran(&summary);
    let expected: Vec<String> = ["blocking", "fork-per-client", "mio", "thread-per-client"]
        .iter()
        .flat_map(|m| ["chat-r16-c64", "chat-slow"].map(|w| format!("{m} {w}")))
        .collect();
    assert_eq!(ran, expected);
    // Chat servers have no headline row: their figures are in their own section.
    assert!(
        summary["headline"].as_array().unwrap().is_empty(),
        "{summary}"
    );
    for c in summary["cells"].as_array().unwrap() {
        let chat = &c["chat"];
        let deliveries = c["throughput_msgs_per_s"]["median"].as_f64().unwrap();
        assert!(deliveries > 0.0, "{c}");
        assert!(
            c["server_cpu_us_per_msg"]["median"].as_f64().unwrap() > 0.0,
            "{c}"
        );
        assert!(
            chat["fanout_p99_us"]["median"].as_f64().unwrap() > 0.0,
            "{c}"
        );
        assert_eq!(chat["room"], 16, "{c}");
        match c["model"].as_str().unwrap() {
            // One member at a time: the rest are starved, a finding and not a failure.
            "blocking" => {
                assert_eq!(c["status"], "starved", "{c}");
                let readers = if c["label"] == "chat-slow" { 60 } else { 64 };
                assert_eq!(c["connections_starved"], readers - 1, "{c}");
            }
            _ => {
                assert_eq!(c["status"], "ok", "{c}");
                // Deliveries are what the cell counts: its messages are its deliveries.
                assert!(chat["messages_per_s"]["median"].as_f64().unwrap() < deliveries);
                assert!(c["server_cpu_us_per_msg"]["ci"].is_object(), "{c}");
            }
        }
    }
    // The server's CPU is sampled once the members have joined: the iterative server's 63
    // starved members keep loadgen joining for 1.5 s with the server idle, and a window that
    // began at loadgen's start would see that idle time in its first half.
    let record = json(&out.join("raw/blocking.chat-r16-c64.r1.run.json"));
    let series = record["server"]["cpu_series"].as_array().unwrap();
    let at = |i: usize| series[i][1].as_f64().unwrap();
    let (half, whole) = (at(series.len() / 2), at(series.len() - 1));
    assert!(whole > 0.0 && half >= whole / 4.0, "{series:?}");

    let models = summary["chat_models"].as_array().unwrap();
    let of = |name: &str| models.iter().find(|m| m["model"] == name).unwrap();
    for (model, sharing) in [
        ("blocking", "alone"),
        ("fork-per-client", "IPC"),
        ("mio", "single owner"),
        ("thread-per-client", "lock"),
    ] {
        assert_eq!(of(model)["sharing"], sharing, "{model}");
    }
    // One slow member in each of the 4 rooms, dropped; the rooms go on. On a busy machine
    // (the other tests beside this one) a reader may fall a whole queue behind too and be
    // dropped with it: the verdict says so, and only then may a reader lose deliveries.
    for model in ["fork-per-client", "mio"] {
        let slow = &of(model)["slow"];
        assert_eq!(slow["slow_members"], 4, "{model}: {slow}");
        assert!(slow["dropped"].as_u64().unwrap() >= 4, "{model}: {slow}");
        match slow["verdict"].as_str().unwrap() {
            "dropped" => assert_eq!(slow["lost"], 0, "{model}: {slow}"),
            "dropped_readers" => assert!(slow["dropped"].as_u64().unwrap() > 4),
            other => panic!("{model}: {other}: {slow}"),
        }
    }
    assert_eq!(of("blocking")["slow"]["verdict"], "not_served");
    let costs: Vec<String> = summary["sharing_costs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert!(
                c["why"].as_str().unwrap().contains("1 repeat(s), 3 needed"),
                "{c}"
            );
            format!(
                "{} {} / {}",
                c["workload"].as_str().unwrap(),
                c["model"].as_str().unwrap(),
                c["against"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        costs,
        [
            "chat-r16-c64 fork-per-client / thread-per-client",
            "chat-r16-c64 thread-per-client / mio",
            "chat-r16-c64 fork-per-client / mio",
        ]
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for heading in [
        "## The chat room: what sharing costs",
        "### Chat: deliveries/s",
        "### Chat: delivery p99 / fan-out p99 (µs)",
        "### Chat: server CPU per delivery (µs), peak memory PSS",
        "### How each model shares, and a slow member",
        "### What sharing costs per delivery",
    ] {
        assert!(md.contains(heading), "{heading}:\n{md}");
    }
    assert!(md.contains("S 63/64"), "{md}");
    report_re_renders_identically(&out);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn attack_denies_prefork_without_defences_and_mio_keeps_its_clients_either_way() {
    let out = tiny_compare(
        "attack",
        &[
            "--attack",
            "--models",
            "mio,prefork",
            "--workloads",
            "attack-control,slowloris-64,slowloris-64-defended",
        ],
    );
    let summary = json(&out.join("summary.json"));
    let ran = common::cells_ran(&summary);
    let expected: Vec<String> = ["mio", "prefork(16)"]
        .iter()
        .flat_map(|m| {
            ["attack-control", "slowloris-64", "slowloris-64-defended"].map(|w| format!("{m} {w}"))
        })
        .collect();
    assert_eq!(ran, expected);
    let models = summary["attack_models"].as_array().unwrap();
    let kept = |model: &str, workload: &str| {
        let m = models.iter().find(|m| m["model"] == model).unwrap();
        let k = m["kept"].as_array().unwrap();
        k.iter()
            .find(|k| k["workload"] == workload)
            .unwrap()
            .clone()
    };
    // An event loop barely notices 64 slowloris clients, defended or not.
    for w in ["slowloris-64", "slowloris-64-defended"] {
        let k = kept("mio", w);
        assert!(k["rate_share"].as_f64().unwrap() >= 0.9, "mio {w}: {k}");
    }
    // Sixteen workers, sixty-four attackers: every worker is held, and the legitimate clients
    // get nothing; a cap per address of 4 leaves them 12 workers.
    let denied = kept("prefork(16)", "slowloris-64");
    assert_eq!(denied["verdict"], "denied", "{denied}");
    let defended = kept("prefork(16)", "slowloris-64-defended");
    assert_ne!(defended["verdict"], "denied", "{defended}");
    let cell = |model: &str, label: &str| {
        summary["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["model"] == model && c["label"] == label)
            .unwrap()
            .clone()
    };
    assert_eq!(cell("prefork(16)", "slowloris-64")["status"], "starved");
    // The attackers met the defences: most closed by the server, at most 4 held at once.
    let attack = &cell("prefork(16)", "slowloris-64-defended")["attack"];
    assert!(
        attack["closed_by_server"].as_f64().unwrap() > 0.0,
        "{attack}"
    );
    assert!(attack["open_at_end"].as_f64().unwrap() <= 4.0, "{attack}");
    let undefended = &cell("mio", "slowloris-64")["attack"];
    assert_eq!(
        undefended["open_at_end"].as_f64(),
        Some(64.0),
        "{undefended}"
    );
    // Attacked servers have no headline row of their own.
    assert!(summary["headline"].as_array().unwrap().is_empty());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for heading in [
        "## Hostile clients: who keeps serving",
        "### What the legitimate clients kept",
        "### What the attackers met",
    ] {
        assert!(md.contains(heading), "{heading}:\n{md}");
    }
    report_re_renders_identically(&out);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn the_capacity_search_adds_its_rate_to_the_headline_and_draws_the_knee() {
    let out = tiny_compare(
        "slo",
        &[
            "--models",
            "mio,blocking",
            "--workloads",
            "pingpong-c16,slo-c16",
            "--slo",
            "p99=20ms",
        ],
    );
    let summary = json(&out.join("summary.json"));
    let cell = |model: &str| {
        summary["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["model"] == model && c["label"] == "slo-c16")
            .unwrap()
            .clone()
    };
    let mio = cell("mio");
    let capacity = &mio["capacity"];
    assert_eq!(capacity["slo"], "p99=20ms", "{mio}");
    assert!(
        capacity["rate"]["median"].as_f64().unwrap() >= 5000.0,
        "{mio}"
    );
    assert!(!capacity["steps"].as_array().unwrap().is_empty());
    // The iterative server serves one connection of 16: no step holds, and that is a result.
    let blocking = cell("blocking");
    assert_eq!(blocking["capacity"]["held_none"], 1, "{blocking}");
    assert!(blocking["capacity"]["rate"].is_null(), "{blocking}");
    let headline = summary["headline"].as_array().unwrap();
    let mio_row = headline.iter().find(|h| h["model"] == "mio").unwrap();
    assert!(mio_row["slo_rate"]["median"].as_f64().unwrap() >= 5000.0);
    let env = json(&out.join("environment.json"));
    assert_eq!(env["slo"], "p99=20ms");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| model | rate at p99 ≤ 20ms, 16 conns (msgs/s) | peak (msgs/s) |"),
        "the headline leads with the rate held under the target:\n{md}"
    );
    assert!(
        md.contains("| `slo-c16` | rate at p99 ≤ 20ms (msgs/s), 1 held | `mio` "),
        "the leaders rank the capacity search by its rate:\n{md}"
    );
    assert!(out.join("capacity-slo-c16.svg").exists());
    report_re_renders_identically(&out);
    std::fs::remove_dir_all(&out).unwrap();
}

/// Runs `compare --profile tiny` with `args` into a fresh directory named for `name`, the
/// server on CPU 0 and loadgen on CPU 1, and checks that it succeeded; the directory.
fn tiny_compare(name: &str, args: &[&str]) -> std::path::PathBuf {
    let out = std::env::temp_dir().join(format!("echobench-compare-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(BIN)
        .args(["compare", "--profile", "tiny"])
        .args(args)
        .args(["--server-cpus", "0", "--loadgen-cpus", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    out
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn summary_holds_every_cell(out: &Path) {
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let cells = summary["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3 * 7, "3 models × 7 tiny workloads");
    let cell = |model: &str, label: &str| {
        cells
            .iter()
            .find(|c| c["model"] == model && c["label"] == label)
            .unwrap()
    };
    // The iterative server starves 15 of 16 connections; that is recorded, not fatal.
    assert_eq!(cell("blocking", "pingpong-c16")["status"], "starved");
    assert_eq!(cell("blocking", "pingpong-c16")["connections_starved"], 15);
    assert_eq!(cell("mio", "pingpong-c16")["status"], "ok");
    // A forking server's churn shows processes; its resources were sampled.
    let processes = &cell("fork-per-client", "pingpong-c16")["peak_processes"];
    assert!(processes.as_u64().unwrap() >= 16, "{processes}");
    let cpu = &cell("mio", "pingpong-c16")["server_cpu_us_per_msg"]["median"];
    assert!(cpu.as_f64().unwrap() > 0.0, "{cpu}");
    // loadgen's own CPU per message, beside the server's.
    let own = &cell("mio", "pingpong-c16")["loadgen_cpu_us_per_msg"]["median"];
    assert!(own.as_f64().unwrap() > 0.0, "{own}");
}

fn environment_describes_the_run(out: &Path) {
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("environment.json")).unwrap())
            .unwrap();
    for key in [
        "cpu_model",
        "cores",
        "kernel",
        "rustc",
        "git_commit",
        "server_cpus",
        "loadgen_cpus",
        "profile",
    ] {
        assert!(env.get(key).is_some(), "environment.json lacks {key}");
    }
    // Toward the loopback servers, loadgen's connections come from 254 addresses in turn.
    assert_eq!(
        env["source_addrs"], "127.1.0.1-127.1.0.254 (254 addresses)",
        "{env}"
    );
}

fn raw_holds_every_record(out: &Path) {
    let raw: Vec<String> = std::fs::read_dir(out.join("raw"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for file in [
        "mio.pingpong-c16.r1.json",
        "mio.pingpong-c16.r1.hlog",
        "mio.pingpong-c16.r1.run.json",
    ] {
        assert!(raw.contains(&file.to_owned()), "{file} not in {raw:?}");
    }
}

fn report_re_renders_identically(out: &Path) {
    let before = common::files(out, true);
    let rerender = Command::new(BIN).arg("report").arg(out).output().unwrap();
    assert!(
        rerender.status.success(),
        "{}",
        String::from_utf8_lossy(&rerender.stderr)
    );
    assert_eq!(
        common::files(out, true),
        before,
        "report re-rendered different files"
    );
}

#[test]
fn bad_arguments_give_one_line_and_exit_2() {
    for (args, names) in [
        (vec!["compare", "--models", "nope"], "--models"),
        (
            vec!["compare", "--server-cpus", "1", "--loadgen-cpus", "1"],
            "disjoint",
        ),
        (vec!["compare", "--server-cpus", "0"], "--loadgen-cpus"),
        (vec!["compare", "--profile", "huge"], "--profile"),
        (
            vec!["compare", "--workloads", "pingpong-c16,fast"],
            "--workloads",
        ),
        (vec!["compare", "--repeat", "0"], "--repeat"),
        (vec!["compare", "--duration", "10ms"], "--duration"),
        (
            vec!["compare", "--append", "--out", "/nonexistent-echobench-dir"],
            "--append",
        ),
        (vec!["diff", "a", "b", "--threshold", "lots"], "--threshold"),
        (vec!["compare", "--server", "mine"], "NAME=COMMAND"),
        (
            vec!["compare", "--server", "mine=./nowhere {port}"],
            "--server mine",
        ),
        (vec!["compare", "--server", "mio=sh {port}"], "taken"),
        (
            vec![
                "compare",
                "--server",
                "a=sh {port}",
                "--server",
                "a=sh {addr}",
            ],
            "twice",
        ),
        (vec!["compare", "--models", "none"], "nothing to compare"),
        (vec!["compare", "--models", "mio,udp-mio"], "--udp"),
        (vec!["compare", "--udp", "--models", "mio"], "--udp"),
        (
            vec!["compare", "--workloads", "udp-pingpong-c0x"],
            "--workloads",
        ),
        (
            vec!["compare", "--server-file", "/nonexistent-servers.toml"],
            "--server-file",
        ),
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.contains(names), "{args:?}: {err:?}");
    }
    let out = Command::new(BIN)
        .args(["report", "/nonexistent-echobench-dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-echobench-dir"));
    let out = Command::new(BIN)
        .args(["diff", "/nonexistent-old", "/nonexistent-new"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("/nonexistent-old"), "{err:?}");
}
