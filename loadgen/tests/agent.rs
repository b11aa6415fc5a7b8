//! Agent mode through the real binary: the check before a run, two agents that start at one
//! time and split one open-loop plan (so that their sends interleave evenly rather than in
//! lockstep pairs), framed output, and the stop at the end of stdin.
#![allow(clippy::unwrap_used)]

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use loadgen::agent::{read_frame, Hello};
use loadgen::Report;

const BIN: &str = env!("CARGO_BIN_EXE_loadgen");

/// An echo server, a thread per connection, that notes when each 64-byte message arrived.
fn noting_server() -> (SocketAddr, Arc<Mutex<Vec<Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let noted = arrivals.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let noted = noted.clone();
            thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut buf = [0u8; 64];
                while stream.read_exact(&mut buf).is_ok() {
                    noted.lock().unwrap().push(Instant::now());
                    if stream.write_all(&buf).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, arrivals)
}

fn agent(args: &[String]) -> Child {
    Command::new(BIN)
        .arg("--agent")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The agent's two frames, its report read from the first; waits for its exit.
fn frames(mut child: Child) -> (Report, Vec<u8>) {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (kind, report) = read_frame(&mut out).unwrap().unwrap();
    assert_eq!(kind, "report");
    let (kind, log) = read_frame(&mut out).unwrap().unwrap();
    assert_eq!(kind, "hlog");
    assert!(
        read_frame(&mut out).unwrap().is_none(),
        "nothing after the two frames"
    );
    assert!(exits_by_itself(&mut child).success());
    (serde_json::from_slice(&report).unwrap(), log)
}

/// Waits (10 s at most) for an agent that has sent its frames to exit by itself, its stdin
/// still open: closed now, it could stop the agent (exit 3) before its own exit.
fn exits_by_itself(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not exit after its frames"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

fn now_ns() -> u64 {
    loadgen::unix_ns(SystemTime::now())
}

#[test]
fn two_agents_split_one_open_loop_plan_and_their_sends_interleave_evenly() {
    let (addr, arrivals) = noting_server();
    let start_at = now_ns() + 300_000_000;
    let run = |offset: usize| {
        let args = [
            "--addr",
            &addr.to_string(),
            "--start-at",
            &start_at.to_string(),
            "--conn-offset",
            &offset.to_string(),
            "--conn-total",
            "16",
            "--connections",
            "8",
            "--rate",
            "2000",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
        ]
        .map(str::to_owned);
        agent(&args)
    };
    let (a, b) = (run(0), run(8));
    let (a, log) = frames(a);
    let (b, _) = frames(b);
    assert!(
        String::from_utf8_lossy(&log).contains("#loadgen-report "),
        "an interval log"
    );
    for r in [&a, &b] {
        assert_eq!(
            (r.rate, r.conn_total, r.start_at_ns),
            (Some(1000.0), Some(16), Some(start_at))
        );
        let started = r.started_at_ns.unwrap();
        assert!(started >= start_at, "started before --start-at");
    }
    assert_eq!((a.conn_offset, b.conn_offset), (Some(0), Some(8)));
    let together = (a.messages + b.messages) as f64 / a.duration_s;
    assert!(together > 0.95 * 2000.0, "{together} msgs/s of 2000");
    // One plan: message k of the whole is due at k / rate, so arrivals come one at a time,
    // 500 µs apart. Two plans in lockstep (both from connection 0) would bring them in
    // pairs, half the gaps near zero.
    let mut times = arrivals.lock().unwrap().clone();
    times.sort();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let bunched = gaps
        .iter()
        .filter(|g| **g < Duration::from_micros(100))
        .count();
    // The spacing says something only of sends made on time: an agent whose sends run late
    // (a machine busy with other tests) sends next to the other's by chance. Two plans in
    // lockstep would pair the sends while both report them on time.
    let late = |r: &Report| r.send_late_us.as_ref().map_or(f64::MAX, |l| l.p90);
    if late(&a).max(late(&b)) > 100.0 {
        eprintln!(
            "spacing not judged: sends ran late (p90 {:.0} and {:.0} µs)",
            late(&a),
            late(&b)
        );
        return;
    }
    assert!(
        bunched * 4 < gaps.len(),
        "{bunched} of {} gaps under 100 µs: the agents' sends come in pairs",
        gaps.len()
    );
}

#[test]
fn an_agent_stops_at_once_when_its_stdin_ends() {
    let (addr, _) = noting_server();
    let args = ["--addr", &addr.to_string(), "--duration", "60s"].map(str::to_owned);
    let mut child = agent(&args);
    thread::sleep(Duration::from_millis(300));
    let stopped = Instant::now();
    drop(child.stdin.take());
    let status = testkit::wait_until(Duration::from_secs(10), || child.try_wait().unwrap());
    let status = status.expect("the agent did not stop within 10 s of its stdin's end");
    assert_eq!(status.code(), Some(3));
    assert!(stopped.elapsed() < Duration::from_secs(10));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        stderr,
        "loadgen: agent: stdin closed (the coordinator is gone); stopping\n"
    );
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    assert!(stdout.is_empty(), "no frame from a run that did not end");
}

#[test]
fn an_agent_whose_stderr_is_gone_too_still_stops_at_its_stdins_end() {
    // As after an ssh client is killed: stdin, stdout and stderr all lose their other end.
    let (addr, _) = noting_server();
    let args = ["--addr", &addr.to_string(), "--duration", "60s"].map(str::to_owned);
    let mut child = agent(&args);
    thread::sleep(Duration::from_millis(300));
    drop(child.stderr.take());
    drop(child.stdout.take());
    drop(child.stdin.take());
    let status = testkit::wait_until(Duration::from_secs(10), || child.try_wait().unwrap());
    let status = status.expect("the agent did not stop within 10 s of its stdin's end");
    assert_eq!(status.code(), Some(3));
}

#[test]
fn agent_hello_says_its_version_and_reads_its_clock_on_every_line() {
    let mut child = Command::new(BIN)
        .arg("agent-hello")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (kind, body) = read_frame(&mut out).unwrap().unwrap();
    assert_eq!(kind, "hello");
    let hello: Hello = serde_json::from_slice(&body).unwrap();
    assert_eq!(hello.mismatch(), None);
    let mut stdin = child.stdin.take().unwrap();
    for _ in 0..3 {
        let before = now_ns();
        stdin.write_all(b"clock\n").unwrap();
        let (kind, body) = read_frame(&mut out).unwrap().unwrap();
        let theirs: u64 = std::str::from_utf8(&body).unwrap().parse().unwrap();
        assert_eq!(kind, "clock");
        assert!(
            theirs >= before && theirs <= now_ns(),
            "one clock, read in between"
        );
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn an_agent_keeps_its_interval_log_in_memory_and_follows_no_planted_link() {
    let (addr, _) = noting_server();
    let tmp = std::env::temp_dir().join(format!("loadgen-agent-tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("planted")).unwrap();
    let victim = tmp.join("planted/victim");
    std::fs::write(&victim, "precious").unwrap();
    let args = [
        "--addr",
        &addr.to_string(),
        "--duration",
        "600ms",
        "--warmup",
        "0s",
        "--connections",
        "2",
    ]
    .map(String::from);
    let mut child = Command::new(BIN)
        .arg("--agent")
        .args(&args)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The name a temporary log would have had, planted while the run goes on.
    let predictable = tmp.join(format!("loadgen-agent-{}.hlog", child.id()));
    std::os::unix::fs::symlink(&victim, &predictable).unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (_, report) = read_frame(&mut out).unwrap().unwrap();
    let (_, log) = read_frame(&mut out).unwrap().unwrap();
    assert!(exits_by_itself(&mut child).success());
    let report: Report = serde_json::from_slice(&report).unwrap();
    assert!(report.messages > 0);
    assert!(String::from_utf8_lossy(&log).contains("#loadgen-report "));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    std::fs::remove_file(&predictable).unwrap();
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(left, [tmp.join("planted")], "the agent left files behind");
    std::fs::remove_dir_all(&tmp).unwrap();
}
