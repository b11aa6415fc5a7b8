//! loadgen's TLS handshakes counted against the built-in servers' own `tls:` exit line: the
//! real models (through `echobench serve`, which is `echo-server`), loadgen in this process.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use loadgen::{Options, TlsOptions, Trust};

const BIN: &str = env!("CARGO_BIN_EXE_echobench");

/// Runs `loadgen --churn --tls [--tls-resume]` against `model`, stops the server with SIGTERM
/// and returns loadgen's (full, resumed) and the server's `tls:` line.
fn churn_against(model: &str, dir: &Path, resume: bool) -> ((u64, u64), String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut server = testkit::spawn_listening(
        Command::new(BIN)
            .args(["serve", "--cpus", "0", "--", model])
            .args(["--addr", "127.0.0.1:0", "--tls"])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stderr(Stdio::piped()),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{model}: {e}"));
    let mut o = Options::new(server.addr);
    o.churn = true;
    o.connections = 4;
    o.threads = Some(1);
    o.warmup = Duration::from_millis(100);
    o.duration = Duration::from_millis(400);
    o.tls = Some(TlsOptions {
        trust: Trust::Ca(cert),
        resume,
    });
    let report = loadgen::run(&o).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exited = server.child.wait().unwrap();
    let stderr = server.stderr_to_end();
    assert!(exited.success(), "{stderr}");
    assert!(
        report.failure().is_none(),
        "{model}: {:?}",
        report.failure()
    );
    let h = report.handshakes.unwrap();
    let tls = stderr
        .lines()
        .find(|l| l.starts_with("echo-server: tls: "))
        .unwrap_or_else(|| panic!("{model}: no tls line in {stderr}"))
        .to_owned();
    ((h.full, h.resumed), tls)
}

#[test]
fn loadgens_handshakes_by_kind_equal_the_servers_own_count() {
    let dir = std::env::temp_dir().join(format!("echobench-tls-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let made = Command::new(BIN)
        .args(["serve", "--cpus", "0", "--", "--gen-cert"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    // An event loop, a runtime, and forked workers resuming each other's tickets.
    for model in ["mio", "tokio", "prefork"] {
        for resume in [false, true] {
            let ((full, resumed), line) = churn_against(model, &dir, resume);
            let expected = format!("echo-server: tls: {full} full handshakes, {resumed} resumed,");
            assert!(
                line.starts_with(&expected),
                "{model}: {line} against {expected}"
            );
            assert!(full + resumed > 20, "{model}: {line}");
            if resume {
                assert!(resumed > 10 * full, "{model} resumes: {line}");
            } else {
                assert_eq!(resumed, 0, "{model}: {line}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
