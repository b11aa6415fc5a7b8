//! Echo through real packet loss and a real rate limit, in a network namespace of the test's
//! own (nftables drops TCP packets at random; tbf caps the rate). Skips with one line where the
//! namespace or its tools are missing; `ECHOBENCH_REQUIRE=netns` makes that a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{models, Server, WORKERS};
use serde_json::Value;
use testkit::netns::Netns;

/// loadgen, built beside `echo-server` by `cargo test --workspace`.
fn loadgen_bin() -> PathBuf {
    std::path::Path::new(common::BIN).with_file_name("loadgen")
}

fn start_in(ns: &Netns, model: &str) -> Server {
    let mut argv = common::server_argv(model);
    argv.extend(["--addr", "127.0.0.1:0", "--workers", WORKERS].map(str::to_owned));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let cmd: Command = ns.exec(&argv);
    Server::spawn(model, cmd)
}

/// Runs loadgen inside `ns` against `server` and returns its JSON report.
fn load_in(ns: &Netns, server: &Server, args: &[&str]) -> Value {
    let json = std::env::temp_dir().join(format!(
        "echobench-netns-{}-{}.json",
        std::process::id(),
        ns.name
    ));
    let addr = server.addr.to_string();
    let out = ns
        .exec(&[loadgen_bin().to_str().unwrap(), "--addr", &addr, "--quiet"])
        .args(["--json", json.to_str().unwrap(), "--warmup", "0s"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "loadgen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(json).unwrap();
    report
}

fn errors(report: &Value) -> u64 {
    report["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

#[test]
fn every_model_echoes_byte_exact_through_one_percent_packet_loss() {
    let Some(ns) = Netns::create("every_model_echoes_byte_exact_through_one_percent_packet_loss")
    else {
        return;
    };
    ns.drop_tcp(1).unwrap();
    for model in models() {
        let server = start_in(&ns, &model);
        // 16 KiB messages: a dozen segments each, so that losses fall inside messages.
        let args = ["--connections", "4", "--size", "16384", "--duration", "1s"];
        let report = load_in(&ns, &server, &args);
        assert!(
            report["messages"].as_u64().unwrap() > 0,
            "{model}: {report}"
        );
        // Every echoed byte is checked by loadgen: a mismatch would be counted (and exit 1).
        // An echo still being retransmitted when the run's 250 ms drain gives up counts as a
        // timeout: at most one per connection, and nothing else may go wrong.
        let e = &report["errors"];
        assert_eq!(e["mismatch"], 0, "{model}: {e}");
        assert_eq!(
            errors(&report) - e["timeout"].as_u64().unwrap(),
            0,
            "{model}: {e}"
        );
        assert!(e["timeout"].as_u64().unwrap() <= 4, "{model}: {e}");
    }
    assert!(
        ns.tcp_counter("TcpRetransSegs").unwrap_or(1) > 0,
        "nothing was retransmitted: was anything dropped?"
    );
}

#[test]
fn packet_loss_shows_in_loadgen_latency_as_retransmission_delays() {
    let Some(ns) = Netns::create("packet_loss_shows_in_loadgen_latency_as_retransmission_delays")
    else {
        return;
    };
    let server = start_in(&ns, "mio");
    let args = ["--connections", "4", "--duration", "1s"];
    let clean = load_in(&ns, &server, &args);
    ns.drop_tcp(1).unwrap();
    let lossy = load_in(&ns, &server, &args);
    let p99 = |r: &Value| r["latency_us"]["p99"].as_f64().unwrap();
    // A lost segment of a ping-pong waits for a tail-loss probe or a retransmission timeout:
    // milliseconds, against tens of microseconds without loss.
    assert!(
        p99(&lossy) >= 2_000.0 && p99(&lossy) > 10.0 * p99(&clean),
        "p99 {} µs with 1 % loss, {} µs without",
        p99(&lossy),
        p99(&clean)
    );
    assert_eq!(lossy["errors"]["mismatch"], 0, "{}", lossy["errors"]);
}

#[test]
fn a_rate_limit_caps_bulk_echo() {
    let Some(ns) = Netns::create("a_rate_limit_caps_bulk_echo") else {
        return;
    };
    ns.limit_rate("40mbit").unwrap();
    let server = start_in(&ns, "mio");
    let args = ["--connections", "4", "--size", "65536", "--duration", "1s"];
    let report = load_in(&ns, &server, &args);
    // 40 Mbit/s is 5 MB/s on the loopback, which carries each byte twice (there and back).
    let echoed_per_s = report["bytes"].as_f64().unwrap() / report["duration_s"].as_f64().unwrap();
    assert!(
        echoed_per_s > 0.5e6 && echoed_per_s < 4e6,
        "{echoed_per_s} B/s echoed under a 5 MB/s cap"
    );
    assert_eq!(errors(&report), 0, "{}", report["errors"]);
}
