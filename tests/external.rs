//! External servers (`compare --server`, `--server-file`) through the real binary: one that
//! prints no `listening on` line goes through a comparison like a built-in model; one that
//! exits at once, never listens, ignores SIGTERM or daemonizes fails alone, said why, and the
//! comparison goes on; nothing any of them started is left running.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_echobench");

/// A command line that runs the `mio` model through this binary, pinned to CPU 0, with its
/// stdout (and so its `listening on` line) thrown away: ready only by the probe's echo.
fn quiet_mio() -> String {
    format!("sh -c 'exec \"$0\" serve --cpus 0 -- mio --addr {{addr}} > /dev/null' {BIN}")
}

fn tempdir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("echobench-external-{name}-{}", std::process::id()))
}

/// Runs `compare` on the tiny profile with `args`, into `out`; with the pid it ran as.
fn compare(out: &Path, args: &[&str]) -> (Output, u32) {
    let _ = std::fs::remove_dir_all(out);
    let child = Command::new(BIN)
        .args(["compare", "--profile", "tiny", "--models", "none"])
        .args(["--server-cpus", "0", "--loadgen-cpus", "1", "--out"])
        .arg(out)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Processes still carrying the marker of a server started by echobench process `pid`.
fn left_running(pid: u32) -> Vec<String> {
    let marker = format!("ECHOBENCH_SERVER={pid}-");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/environ")).is_ok_and(|env| {
                env.split(|&b| b == 0)
                    .any(|e| e.starts_with(marker.as_bytes()))
            })
        })
        .map(|p| {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            format!("{p} {}", comm.trim())
        })
        .collect()
}

/// The cells of `model`, by workload label: (status, notes).
fn cells(summary: &serde_json::Value, model: &str) -> Vec<(String, String, String)> {
    summary["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["model"] == model)
        .map(|c| {
            (
                c["label"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["notes"].to_string(),
            )
        })
        .collect()
}

#[test]
fn a_server_that_prints_no_line_is_compared_like_a_built_in_model() {
    let out = tempdir("quiet");
    let file = tempdir("quiet.toml");
    std::fs::write(
        &file,
        format!(
            "[[server]]\nname = \"quiet\"\ncommand = '''{}'''\nfamily = \"event loops\"\n\
             notes = \"mio, its line thrown away\"\nmax_idle = 10\n",
            quiet_mio()
        ),
    )
    .unwrap();
    let (run, pid) = compare(&out, &["--server-file", file.to_str().unwrap()]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(left_running(pid).is_empty(), "{:?}", left_running(pid));

    let summary = json(&out.join("summary.json"));
    let quiet = cells(&summary, "quiet");
    assert_eq!(quiet.len(), 7, "every tiny workload: {quiet:?}");
    for (label, status, notes) in &quiet {
        match label.as_str() {
            "idle-50" => {
                assert_eq!(status, "not_run", "{notes}");
                assert!(notes.contains("needs about 50 idle connections"), "{notes}");
            }
            _ => assert_eq!(status, "ok", "{label}: {notes}"),
        }
    }
    let c16 = summary["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == "quiet" && c["label"] == "pingpong-c16")
        .unwrap();
    assert!(c16["throughput_msgs_per_s"]["median"].as_f64().unwrap() > 0.0);
    assert!(c16["server_cpu_us_per_msg"]["median"].as_f64().unwrap() > 0.0);
    assert_eq!(c16["peak_processes"], 1, "exec'd: no shell in the tree");

    let env = json(&out.join("environment.json"));
    assert_eq!(env["models"], serde_json::json!(["quiet"]));
    assert_eq!(env["external"][0]["name"], "quiet");
    assert_eq!(env["external"][0]["family"], "event loops");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| quiet (external) |"), "{report}");
    assert!(report.contains("`quiet` (external"), "{report}");
    assert!(report.contains("not run in idle-50"), "{report}");

    // The same comparison again adds its passes; another server is refused.
    let append = |flags: &[&str]| {
        Command::new(BIN)
            .args(["compare", "--profile", "tiny", "--models", "none"])
            .args(["--append", "--out"])
            .arg(&out)
            .args(flags)
            .output()
            .unwrap()
    };
    let again = append(&["--server", &format!("quiet={}", quiet_mio())]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("--append"), "{}", text(&again));
    // The same server with other CPUs, other workloads or UDP: not comparable, each named.
    for (flags, names) in [
        (
            &["--server-cpus", "1", "--loadgen-cpus", "0"][..],
            &[
                "--server-cpus (0 there, 1 now)",
                "--loadgen-cpus (1 there, 0 now)",
            ][..],
        ),
        (
            &["--workloads", "pingpong-c16"],
            &["--workloads (bulk, churn, idle-0, idle-50, pingpong-c1, rate-2000 only there)"],
        ),
        (&["--udp"], &["--udp (false there, true now)"]),
    ] {
        let given = [&["--server-file", file.to_str().unwrap()][..], flags].concat();
        let again = append(&given);
        assert_eq!(again.status.code(), Some(2), "{}", text(&again));
        let said = String::from_utf8_lossy(&again.stderr);
        assert_eq!(said.lines().count(), 1, "{said}");
        for name in names {
            assert!(said.contains(name), "{flags:?}: {said}");
        }
    }
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn a_server_that_prints_bytes_that_are_not_text_is_read_to_its_end() {
    let out = tempdir("bytes");
    // Not UTF-8, then more than a pipe holds, before it starts: the reader must go on.
    let chatty = format!(
        "sh -c 'printf \"\\377 starting\\n\"; head -c 200000 /dev/zero | tr \"\\0\" x; echo; \
         exec \"$0\" serve --cpus 0 -- mio --addr {{addr}}' {BIN}"
    );
    let (run, pid) = compare(
        &out,
        &[
            "--server",
            &format!("chatty={chatty}"),
            "--workloads",
            "pingpong-c16",
            "--duration",
            "500ms",
        ],
    );
    assert!(run.status.success(), "{}", text(&run));
    assert!(left_running(pid).is_empty(), "{:?}", left_running(pid));
    let record = json(&out.join("raw/chatty.pingpong-c16.r1.run.json"));
    assert_eq!(record["status"], "ok", "{record}");
    let log = std::fs::read_to_string(out.join("raw/chatty.pingpong-c16.r1.server.log")).unwrap();
    assert!(log.starts_with("\u{fffd} starting\n"), "{:?}", &log[..40]);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn servers_that_die_never_listen_ignore_sigterm_or_daemonize_fail_alone() {
    let out = tempdir("bad");
    let file = tempdir("bad.toml");
    let serve = format!("{BIN} serve --cpus 0 -- mio --addr {{addr}}");
    std::fs::write(
        &file,
        format!(
            r#"
[[server]]
name = "dies"
command = "sh -c 'echo cannot start: no config >&2; exit 3' {{port}}"

[[server]]
name = "deaf"
command = "sh -c 'exec sleep 60' {{port}}"
ready_timeout = "1s"

[[server]]
name = "stubborn"
command = '''sh -c 'trap "" TERM; "$0" serve --cpus 0 -- mio --addr {{addr}}; exec sleep 60' {BIN}'''
stop_grace = "300ms"

[[server]]
name = "daemon"
command = "setsid -f {serve}"

[[server]]
name = "quiet"
command = '''{quiet}'''
"#,
            quiet = quiet_mio()
        ),
    )
    .unwrap();
    let (run, pid) = compare(
        &out,
        &[
            "--server-file",
            file.to_str().unwrap(),
            "--workloads",
            "pingpong-c1,pingpong-c16",
        ],
    );
    assert!(run.status.success(), "{}", text(&run));
    assert!(left_running(pid).is_empty(), "{:?}", left_running(pid));
    let summary = json(&out.join("summary.json"));
    for (model, says) in [
        (
            "dies",
            "exited (exit status 3) before it was ready: cannot start: no config",
        ),
        (
            "deaf",
            "not ready within 1s: no `listening on` line, and no echo of a probe",
        ),
        ("stubborn", "ignored SIGTERM for 300ms; killed with SIGKILL"),
        ("daemon", "daemonized: 1 process(es) left its session"),
    ] {
        let cells = cells(&summary, model);
        assert_eq!(cells.len(), 2, "{model}: {cells:?}");
        for (label, status, notes) in &cells {
            assert_eq!(status, "failed", "{model} {label}: {notes}");
        }
        let all: String = cells.iter().map(|c| c.2.as_str()).collect();
        assert!(all.contains(says), "{model}: {all}");
        assert!(all.contains("not tried: "), "{model}: tried once: {all}");
    }
    for (label, status, notes) in cells(&summary, "quiet") {
        assert_eq!(status, "ok", "{label}: {notes}");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains(
            "`daemon`: failed in pingpong-c1, pingpong-c16 (server did not start: daemonized"
        ),
        "{report}"
    );
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn an_interrupted_comparison_leaves_no_server_running() {
    let out = tempdir("interrupted");
    let _ = std::fs::remove_dir_all(&out);
    let child = Command::new(BIN)
        .args(["compare", "--profile", "tiny", "--models", "none"])
        .args(["--server", &format!("quiet={}", quiet_mio())])
        .args(["--workloads", "pingpong-c1", "--duration", "30s"])
        .args(["--server-cpus", "0", "--loadgen-cpus", "1", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait for its server, then interrupt it as a terminal's ^C would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while left_running(pid).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!left_running(pid).is_empty(), "its server never started");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(130), "{}", text(&done));
    assert!(String::from_utf8_lossy(&done.stderr).contains("interrupted"));
    // Killed processes may take a moment to be gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !left_running(pid).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(left_running(pid).is_empty(), "{:?}", left_running(pid));
    let _ = std::fs::remove_dir_all(&out);
}
