//! The command-line contract of `loadgen`: exit codes, one-line errors, the JSON schema.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{closed_port, Behaviour, TestServer};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_loadgen");

fn loadgen(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// A quiet 300 ms closed-loop run against `server`, with `extra` flags.
fn short_run(server: &TestServer, extra: &[&str]) -> Output {
    let addr = server.addr.to_string();
    let mut args = vec![
        "--addr",
        &addr,
        "--duration",
        "300ms",
        "--warmup",
        "0s",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    loadgen(&args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_flags_give_one_line_naming_the_flag_and_exit_2() {
    let addr = "127.0.0.1:9";
    for (args, names) in [
        (vec![], "--addr"),
        (vec!["--addr", "no-port"], "--addr"),
        (vec!["--addr", addr, "--connections", "0"], "--connections"),
        (
            vec!["--addr", addr, "--connections", "many"],
            "--connections",
        ),
        (
            vec!["--addr", addr, "--duration", "10 parsecs"],
            "--duration",
        ),
        (vec!["--addr", addr, "--rate", "100", "--churn"], "--churn"),
        (
            vec!["--addr", addr, "--rate", "100", "--pipeline", "4"],
            "--pipeline",
        ),
        (vec!["--addr", addr, "--rate", "0"], "--rate"),
        (vec!["--addr", addr, "--size", "0"], "--size"),
        (vec!["--addr", addr, "--cpus", "9999"], "--cpus"),
        (vec!["--addr", addr, "--threads", "0"], "--threads"),
        (
            vec!["--addr", addr, "--hlog-interval", "1ms"],
            "--hlog-interval",
        ),
        (vec!["--addr", addr, "--frobnicate"], "--frobnicate"),
        (vec!["--addr", addr, "--udp", "--churn"], "--churn"),
        (vec!["--addr", addr, "--udp", "--idle", "10"], "--idle"),
        (vec!["--addr", addr, "--udp", "--size", "4"], "--size"),
        (vec!["--addr", addr, "--udp", "--size", "65508"], "--size"),
        (vec!["--addr", addr, "--tls"], "--tls-ca"),
        (vec!["--addr", addr, "--tls-resume"], "--tls"),
        (
            vec!["--addr", addr, "--tls", "--tls-ca", "/no/ca.pem"],
            "--tls-ca",
        ),
        (
            vec!["--addr", addr, "--tls", "--tls-ca", "Cargo.toml"],
            "--tls-ca",
        ),
        (
            vec!["--addr", addr, "--tls", "--tls-insecure", "--udp"],
            "--udp",
        ),
        (
            vec!["--addr", addr, "--handshake-rate", "0"],
            "--handshake-rate",
        ),
        (vec!["--addr", addr, "--conn-offset", "4"], "--conn-offset"),
        (vec!["--addr", addr, "--work", "cpu=fast"], "--work"),
        (
            vec!["--addr", addr, "--work", "cpu=1ms;100%:cpu=2ms"],
            "--work",
        ),
        (vec!["--addr", addr, "--work", "cpu=0", "--udp"], "--work"),
        (vec!["--addr", addr, "--work", "cpu=0", "--churn"], "--work"),
        (
            vec!["--addr", addr, "--work", "cpu=0", "--tls", "--tls-insecure"],
            "--work",
        ),
        (
            vec!["--addr", addr, "--work", "cpu=0", "--size", "15"],
            "--size",
        ),
        (
            vec!["--addr", addr, "--work", "cpu=0", "--size", "2000000"],
            "--size",
        ),
        (
            vec!["--addr", addr, "--work", "wait=5s", "--timeout", "5s"],
            "--timeout",
        ),
        (vec!["--addr", addr, "--seed", "3"], "--work"),
        (
            vec![
                "--addr",
                addr,
                "--conn-offset",
                "10",
                "--conn-total",
                "12",
                "--connections",
                "4",
            ],
            "--conn-total",
        ),
        (vec!["--addr", addr, "--start-at", "soon"], "--start-at"),
        (
            vec!["--addr", addr, "--source-addrs", "192.0.2.7"],
            "--source-addrs",
        ),
        (
            vec!["--addr", addr, "--source-addrs", "::1"],
            "--source-addrs",
        ),
        (
            vec!["--addr", addr, "--source-addrs", "10.0.0.0/8"],
            "--source-addrs",
        ),
        (
            vec!["--addr", addr, "--chat", "16", "--connections", "20"],
            "--connections",
        ),
        (vec!["--addr", addr, "--chat", "0"], "--chat"),
        (vec!["--addr", addr, "--chat-slow", "1"], "--chat"),
        (
            vec![
                "--addr",
                addr,
                "--chat",
                "4",
                "--connections",
                "8",
                "--chat-slow",
                "4",
            ],
            "--chat-slow",
        ),
        (
            vec![
                "--addr",
                addr,
                "--chat",
                "4",
                "--connections",
                "8",
                "--size",
                "8",
            ],
            "--size",
        ),
        (
            vec!["--addr", addr, "--chat", "4", "--connections", "8", "--udp"],
            "--udp",
        ),
        (
            vec![
                "--addr",
                addr,
                "--chat",
                "4",
                "--connections",
                "8",
                "--churn",
            ],
            "--churn",
        ),
        (
            vec![
                "--addr",
                addr,
                "--chat",
                "4",
                "--connections",
                "8",
                "--work",
                "cpu=0",
            ],
            "--work",
        ),
        (
            vec![
                "--addr",
                addr,
                "--chat",
                "4",
                "--connections",
                "8",
                "--agent",
            ],
            "--chat",
        ),
        (
            vec!["--addr", addr, "--find-rate", "p98=1ms"],
            "--find-rate",
        ),
        (
            vec!["--addr", addr, "--find-rate", "p99=0ms"],
            "--find-rate",
        ),
        (
            vec!["--addr", addr, "--find-rate", "p99=1ms", "--rate", "100"],
            "--rate",
        ),
        (vec!["--addr", addr, "--rate-start", "100"], "--find-rate"),
        (
            vec![
                "--addr",
                addr,
                "--find-rate",
                "p99=1ms",
                "--rate-start",
                "0",
            ],
            "--rate-start",
        ),
        (vec!["--addr", addr, "--attack", "siege:5"], "--attack"),
        (vec!["--addr", addr, "--attack", "slowloris:0"], "--attack"),
        (
            vec!["--addr", addr, "--attack-from", "127.0.0.3"],
            "--attack",
        ),
        (
            vec!["--addr", addr, "--attack", "silent:4", "--udp"],
            "--attack",
        ),
        (
            vec!["--addr", addr, "--attack", "silent:4", "--agent"],
            "--attack",
        ),
        // One second after the epoch: the whole run's window is long past.
        (
            vec!["--addr", addr, "--start-at", "1000000000"],
            "--start-at",
        ),
    ] {
        let out = loadgen(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err:?}");
        assert!(
            err.contains(names),
            "{args:?}: {err:?} does not name {names}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn more_connections_than_the_descriptor_limit_allows_are_refused_before_the_run() {
    let server = TestServer::start(Behaviour::Echo);
    // Soft and hard limit 256 for this loadgen only; 1,000 idle connections cannot fit.
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" \"$@\"")
        .args([BIN, "--addr", &server.addr.to_string(), "--idle", "1000"])
        .args(["--duration", "10s", "--quiet"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.contains("--idle 1000") && err.contains("hard descriptor limit") && err.contains("256"),
        "{err:?}"
    );
    assert_eq!(server.accepted(), 0, "refused, yet it connected");
}

#[test]
fn an_unreachable_target_exits_1_within_the_timeout() {
    let addr = closed_port().to_string();
    let started = Instant::now();
    let out = loadgen(&[
        "--addr",
        &addr,
        "--duration",
        "30s",
        "--timeout",
        "1s",
        "--quiet",
    ]);
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} for a 1 s timeout"
    );
    assert!(err.contains("refused") && err.contains(&addr), "{err:?}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
}

#[test]
fn a_mismatched_echo_exits_1_and_is_counted() {
    let server = TestServer::start(Behaviour::Corrupt);
    let json = std::env::temp_dir().join(format!("loadgen-mismatch-{}.json", std::process::id()));
    let out = short_run(&server, &["--json", json.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("differed"), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["errors"]["mismatch"].as_u64().unwrap() > 0);
    std::fs::remove_file(json).unwrap();
}

#[test]
fn a_work_request_whose_echo_differs_is_a_mismatch() {
    // The server flips the first byte of every read: a header's magic, with 16-byte requests.
    let server = TestServer::start(Behaviour::Corrupt);
    let out = short_run(&server, &["--work", "cpu=0", "--size", "16"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("differed"), "{}", stderr(&out));
}

/// Every key of the JSON schema, in order, with its type: the contract documented in
/// `docs/loadgen.md` (checked by `the_documented_schema_is_the_schema`).
const SCHEMA: &[(&str, &str)] = &[
    ("schema_version", "number"),
    ("target", "string"),
    ("mode", "string"),
    ("connections", "number"),
    ("idle", "number"),
    ("size", "number"),
    ("pipeline", "number"),
    ("rate", "number|null"),
    ("duration_s", "number"),
    ("warmup_s", "number"),
    ("messages", "number"),
    ("bytes", "number"),
    ("throughput_msgs_per_s", "number"),
    ("achieved_rate_ratio", "number|null"),
    ("errors", "object"),
    ("connections_starved", "number"),
    ("latency_us", "object"),
    ("latency_uncorrected_us", "object|null"),
    ("connect_us", "object|null"),
    ("loadgen_cpu_ratio", "number"),
    ("loadgen_saturated", "bool"),
    ("datagrams_sent", "number|null"),
    ("datagrams_lost", "number|null"),
    ("datagrams_late", "number|null"),
    ("datagrams_reordered", "number|null"),
    ("datagrams_duplicated", "number|null"),
    ("loss_ratio", "number|null"),
    ("udp_kernel_drops", "object|null"),
    ("tls", "object|null"),
    ("handshakes", "object|null"),
    ("handshake_us", "object|null"),
    ("send_late_us", "object|null"),
    ("handshake_arrivals", "object|null"),
    ("started_at_ns", "number"),
    ("start_at_ns", "number|null"),
    ("conn_offset", "number|null"),
    ("conn_total", "number|null"),
    ("source_addrs", "object|null"),
    ("loadgen_cpu_s", "number|null"),
    ("work", "object|null"),
    ("chat", "object|null"),
    ("attack", "object|null"),
    ("find_rate", "object|null"),
];

/// The keys only a UDP run fills.
const UDP_KEYS: [&str; 7] = [
    "datagrams_sent",
    "datagrams_lost",
    "datagrams_late",
    "datagrams_reordered",
    "datagrams_duplicated",
    "loss_ratio",
    "udp_kernel_drops",
];

/// The table of `docs/loadgen.md`'s "The JSON report" lists exactly these keys, in this order,
/// with these types: what users read is what loadgen writes.
#[test]
fn the_documented_schema_is_the_schema() {
    let doc = include_str!("../../docs/loadgen.md");
    let section = doc
        .split("## The JSON report")
        .nth(1)
        .expect("docs/loadgen.md has a section \"The JSON report\"");
    let documented: Vec<(String, String)> = section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let key = cells.first()?.strip_prefix("| `")?.strip_suffix('`')?;
            Some((key.to_string(), cells.get(1)?.replace(" or ", "|")))
        })
        .collect();
    let schema: Vec<(String, String)> = SCHEMA
        .iter()
        .map(|(k, t)| (k.to_string(), t.to_string()))
        .collect();
    assert_eq!(documented, schema);
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn assert_schema(report: &Value, mode: &str, udp: bool) {
    let object = report.as_object().unwrap();
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let expected: Vec<&str> = SCHEMA.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, expected, "keys of the {mode} report");
    for (key, types) in SCHEMA {
        let found = kind(&report[key]);
        assert!(
            types.split('|').any(|t| t == found),
            "{mode}: {key} is {found}, not {types}"
        );
    }
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["mode"], mode);
    let errors: Vec<&str> = report["errors"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(errors, ["connect", "reset", "timeout", "mismatch", "other"]);
    let latency: Vec<&str> = report["latency_us"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        latency,
        ["min", "p50", "p90", "p99", "p99_9", "max", "mean"]
    );
    let nulls = |key: &str| report[key].is_null();
    assert_eq!(nulls("rate"), mode != "open");
    assert_eq!(nulls("achieved_rate_ratio"), mode != "open");
    assert_eq!(nulls("latency_uncorrected_us"), mode != "open");
    assert_eq!(nulls("connect_us"), mode != "churn");
    assert_eq!(nulls("send_late_us"), mode != "open");
    for key in ["tls", "handshakes", "handshake_us", "handshake_arrivals"] {
        assert!(nulls(key), "{mode}: {key} is null without --tls");
    }
    for key in ["start_at_ns", "conn_offset", "conn_total"] {
        assert!(nulls(key), "{mode}: {key} is null without its flag");
    }
    for key in UDP_KEYS {
        assert_eq!(nulls(key), !udp, "{mode}: {key}");
    }
    if udp {
        let drops: Vec<&str> = report["udp_kernel_drops"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(drops, ["loadgen", "server", "rcvbuf_errors"]);
    }
}

#[test]
fn json_report_follows_the_pinned_schema_in_every_mode() {
    let server = TestServer::start(Behaviour::Echo);
    let udp_server = common::UdpTestServer::start(common::UdpBehaviour::Echo);
    let tcp = server.addr.to_string();
    let udp = udp_server.addr.to_string();
    for (mode, extra) in [
        ("closed", vec![]),
        ("open", vec!["--rate", "500"]),
        ("churn", vec!["--churn"]),
        ("closed", vec!["--udp"]),
        ("open", vec!["--udp", "--rate", "500"]),
    ] {
        let is_udp = extra.contains(&"--udp");
        let addr = if is_udp { &udp } else { &tcp };
        let json = std::env::temp_dir().join(format!(
            "loadgen-schema-{}-{mode}-{is_udp}.json",
            std::process::id()
        ));
        let mut args = vec![
            "--addr",
            &addr,
            "--connections",
            "2",
            "--duration",
            "300ms",
            "--warmup",
            "100ms",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend(extra);
        let out = loadgen(&args);
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", stderr(&out));
        assert!(
            out.stdout.is_empty(),
            "--quiet printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_schema(&report, mode, is_udp);
        assert_eq!(report["target"], addr.as_str());
        std::fs::remove_file(json).unwrap();
    }
}

#[test]
fn merge_adds_logs_through_the_command_line() {
    let server = TestServer::start(Behaviour::Echo);
    let dir = std::env::temp_dir();
    let log = dir.join(format!("loadgen-merge-{}.hlog", std::process::id()));
    let merged = dir.join(format!("loadgen-merged-{}.json", std::process::id()));
    let out = short_run(&server, &["--hlog", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let one = loadgen::hlog::read(&log).unwrap().report;
    let l = log.to_str().unwrap();
    let out = loadgen(&["merge", l, l, "--json", merged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    assert_schema(&report, "closed", false);
    assert_eq!(report["messages"].as_u64().unwrap(), 2 * one.messages);
    assert_eq!(
        report["connections"].as_u64().unwrap(),
        2 * one.connections as u64
    );
    let out = loadgen(&["merge", "/nonexistent.hlog"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent.hlog"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(log).unwrap();
    std::fs::remove_file(merged).unwrap();
}

/// A short run's interval log (`--rate` for an open loop), read back as text.
fn a_log(server: &TestServer, name: &str, extra: &[&str]) -> (std::path::PathBuf, String) {
    let log = std::env::temp_dir().join(format!("loadgen-{name}-{}.hlog", std::process::id()));
    let mut args = vec!["--hlog", log.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = short_run(server, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    (log, text)
}

/// `text` with the histogram of its first interval replaced by `bytes`, base64.
fn with_first_histogram(text: &str, bytes: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut done = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| match line.starts_with("Tag=") && !done {
            true => {
                done = true;
                let (head, _) = line.rsplit_once(',').unwrap();
                format!("{head},{encoded}")
            }
            false => line.to_owned(),
        })
        .collect();
    assert!(done, "no interval in the log");
    lines.join("\n") + "\n"
}

/// An uncompressed V2 histogram header (loadgen's bounds) that claims `payload` bytes.
fn v2_header(payload: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(0x1c84_9313_u32.to_be_bytes());
    h.extend(payload.to_be_bytes());
    h.extend(0_u32.to_be_bytes());
    h.extend(3_u32.to_be_bytes());
    h.extend(1_u64.to_be_bytes());
    h.extend(3_600_000_000_000_u64.to_be_bytes());
    h.extend(1.0_f64.to_be_bytes());
    h
}

/// `loadgen merge LOG` with its address space capped at 300 MB, as `ulimit -v` does.
fn merge_capped(log: &std::path::Path) -> Output {
    Command::new("sh")
        .args(["-c", "ulimit -v 300000 && exec \"$0\" merge \"$1\""])
        .arg(BIN)
        .arg(log)
        .output()
        .unwrap()
}

#[test]
fn a_log_whose_histogram_claims_a_gigabyte_is_refused_before_it_is_decoded() {
    use std::io::Write as _;
    let server = TestServer::start(Behaviour::Echo);
    let (log, text) = a_log(&server, "bomb", &[]);
    // 40 bytes (56 in base64) that claim a 1 GiB payload; and the same deflated, 1 GiB inside.
    let plain = v2_header(1 << 30);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(&plain).unwrap();
    let inner = zlib.finish().unwrap();
    let mut deflated = 0x1c84_9314_u32.to_be_bytes().to_vec();
    deflated.extend((inner.len() as u32).to_be_bytes());
    deflated.extend(&inner);
    for (bomb, says) in [
        (
            &plain[..],
            "claims a payload of 1073741824 bytes, and holds 0",
        ),
        (
            &deflated[..],
            "claims a payload of 1073741824 bytes, and holds 0",
        ),
    ] {
        std::fs::write(&log, with_first_histogram(&text, bomb)).unwrap();
        let out = merge_capped(&log);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(says) && err.contains(log.to_str().unwrap()),
            "{err}"
        );
    }
    // A histogram that claims more compressed bytes than follow.
    let mut short = deflated.clone();
    short[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    std::fs::write(&log, with_first_histogram(&text, &short)).unwrap();
    let out = merge_capped(&log);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("compressed bytes"),
        "{}",
        stderr(&out)
    );
    // The untouched log still merges under the same cap.
    std::fs::write(&log, &text).unwrap();
    let out = merge_capped(&log);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::remove_file(log).unwrap();
}

#[test]
fn a_log_whose_report_cannot_be_true_is_refused_naming_the_value() {
    let server = TestServer::start(Behaviour::Echo);
    let (log, text) = a_log(&server, "implausible", &[]);
    for (from, to, says) in [
        ("\"warmup_s\":0.0", "\"warmup_s\":1e300", "warmup_s"),
        (
            "\"duration_s\":0.3",
            "\"duration_s\":-0.3",
            "duration_s -0.3",
        ),
        (
            "\"messages\":",
            "\"messages\":18446744073709551615,\"x\":",
            "messages 1844",
        ),
    ] {
        assert!(text.contains(from), "{from} not in the log");
        std::fs::write(&log, text.replacen(from, to, 1)).unwrap();
        let merged = loadgen::hlog::merge(&[&log]);
        let err = format!("{:#}", merged.expect_err("refused"));
        assert!(err.contains(says), "{err}");
        let out = loadgen(&["merge", log.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    std::fs::remove_file(log).unwrap();
}

#[test]
fn merged_open_loop_logs_keep_their_send_lateness() {
    let server = TestServer::start(Behaviour::Echo);
    let (log, _) = a_log(&server, "late", &["--rate", "2000"]);
    let one = loadgen::hlog::read(&log).unwrap();
    let own = one
        .report
        .send_late_us
        .clone()
        .expect("an open loop's lateness");
    assert!(!one.totals["send-late"].is_empty(), "no send in the log");
    let merged = loadgen::hlog::merge(&[&log, &log]).unwrap();
    // Two copies of one log: the same distribution, every send counted twice.
    assert_eq!(merged.send_late_us, Some(own));
    std::fs::remove_file(log).unwrap();
}

/// An echo server, a thread per connection, that notes each connection's peer address.
fn peer_noting_server() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<std::net::IpAddr>>>,
) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let noted = peers.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            noted.lock().unwrap().push(stream.peer_addr().unwrap().ip());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, peers)
}

#[test]
fn connections_come_from_many_loopback_addresses_unless_told_otherwise() {
    let (addr, peers) = peer_noting_server();
    let json = std::env::temp_dir().join(format!("loadgen-sources-{}.json", std::process::id()));
    for (given, spec, from) in [
        (None, Some(("127.1.0.1-127.1.0.254", 254)), "127.1.0."),
        (Some("none"), None, "127.0.0.1"),
        (Some("127.3.0.0/30"), Some(("127.3.0.0/30", 2)), "127.3.0."),
    ] {
        peers.lock().unwrap().clear();
        let addr = addr.to_string();
        let mut args = vec![
            "--addr",
            &addr,
            "--churn",
            "--connections",
            "4",
            "--duration",
            "300ms",
            "--warmup",
            "0s",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ];
        if let Some(given) = given {
            args.extend(["--source-addrs", given]);
        }
        let out = loadgen(&args);
        assert_eq!(out.status.code(), Some(0), "{given:?}: {}", stderr(&out));
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        match spec {
            Some((spec, count)) => {
                assert_eq!(report["source_addrs"]["spec"], spec);
                assert_eq!(report["source_addrs"]["count"], count);
            }
            None => assert!(report["source_addrs"].is_null(), "{report}"),
        }
        assert!(report["loadgen_cpu_s"].as_f64().unwrap() > 0.0, "{report}");
        let seen = peers.lock().unwrap().clone();
        assert!(seen.len() > 20, "{given:?}: {} connections", seen.len());
        assert!(
            seen.iter().all(|ip| ip.to_string().starts_with(from)),
            "{given:?}: {seen:?}"
        );
        let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
        let expected = spec.map_or(1, |(_, count)| count.min(seen.len()));
        assert_eq!(distinct.len(), expected, "{given:?}: each address in turn");
    }
    std::fs::remove_file(json).unwrap();
}
