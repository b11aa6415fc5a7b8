//! `--find-rate`'s search against scripted servers: one whose latency jumps above a request
//! rate (the search finds that rate within 5 %, and its slowness is not taken for loadgen's),
//! one that resets connections above a rate (bounded there); and the search's rules where
//! loadgen, not the server, reaches its limit first ("at least").
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use loadgen::{Options, Slo};

/// What the scripted server does once the requests of the last [`WINDOW`] pass its rate.
#[derive(Clone, Copy)]
enum Above {
    /// Answers 5 ms late.
    Slow,
    /// Resets the connection.
    Reset,
}

/// The window over which the scripted server counts requests.
const WINDOW: Duration = Duration::from_millis(250);

/// An echo server (a `--work cpu=0` request's answer is itself) that behaves as `above` says
/// once more than `threshold` requests a second arrived over the last [`WINDOW`]. Requests
/// are 64 bytes. Its threads end with the process.
fn scripted(threshold: f64, above: Above) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let recent: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let recent = Arc::clone(&recent);
            thread::spawn(move || serve(stream, threshold, above, &recent));
        }
    });
    addr
}

fn serve(mut stream: TcpStream, threshold: f64, above: Above, recent: &Mutex<VecDeque<Instant>>) {
    let _ = stream.set_nodelay(true);
    let mut request = [0u8; 64];
    while stream.read_exact(&mut request).is_ok() {
        let now = Instant::now();
        let rate = {
            let mut recent = recent.lock().unwrap();
            recent.push_back(now);
            while recent
                .front()
                .is_some_and(|&t| now.duration_since(t) > WINDOW)
            {
                recent.pop_front();
            }
            recent.len() as f64 / WINDOW.as_secs_f64()
        };
        if rate > threshold {
            match above {
                Above::Slow => thread::sleep(Duration::from_millis(5)),
                Above::Reset => {
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    return;
                }
            }
        }
        if stream.write_all(&request).is_err() {
            return;
        }
    }
}

/// A search for `slo` from `start` requests/s over 4 connections of `--work cpu=0`, in short
/// steps.
fn search(addr: SocketAddr, slo: &str, start: f64, connections: usize) -> loadgen::Report {
    // One search at a time: two beside each other on 2 cores would make each other's
    // latency, and loadgen's lateness, what the searches judge.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut o = Options::new(addr);
    o.connections = connections;
    o.warmup = Duration::from_millis(200);
    o.step = Duration::from_millis(500);
    o.progress = false;
    o.work = Some(loadgen::work::WorkSpec::parse("cpu=0").unwrap());
    o.find_rate = Some(Slo::parse(slo).unwrap());
    o.rate_start = start;
    loadgen::run(&o).unwrap()
}

#[test]
fn the_search_finds_where_latency_jumps_within_five_per_cent() {
    let threshold = 1600.0;
    let report = search(scripted(threshold, Above::Slow), "p99=3ms", 400.0, 4);
    let found = report.find_rate.clone().unwrap();
    let rate = found.rate.unwrap();
    assert_eq!(found.limited_by, "server", "{found:?}");
    assert!(!found.at_least);
    // Within 5 % of the jump, whose edge the server's own count blurs a little.
    assert!(
        rate >= threshold * 0.9 && rate <= threshold * 1.05,
        "found {rate} for a jump at {threshold}: {found:?}"
    );
    // Doubled while it held, then bisected: every held step below every failed one.
    let steps = &found.steps;
    assert_eq!(steps[0].offered, 400.0);
    assert_eq!(steps[1].offered, 800.0);
    let lowest_failed = steps.iter().filter(|s| !s.held).map(|s| s.offered);
    let lowest_failed = lowest_failed.fold(f64::INFINITY, f64::min);
    assert!(lowest_failed <= rate * 1.05 + 1e-9, "{found:?}");
    assert!(steps
        .iter()
        .filter(|s| !s.held)
        .all(|s| s.p99_us > 3000.0 || s.why.is_some()));
    // The server's slowness made loadgen's sends late (one request in flight per connection),
    // but the round trips were as late: it is not taken for loadgen's limit.
    let blamed = steps.iter().filter_map(|s| s.why.as_deref());
    assert!(blamed.clone().all(|w| !w.contains("loadgen")), "{found:?}");
    // The report is the highest step that held.
    assert_eq!(report.rate, Some(rate));
    assert!(report.latency_us.p99 <= 3000.0, "{:?}", report.latency_us);
}

#[test]
fn a_server_that_errs_above_a_rate_bounds_the_search_there() {
    let threshold = 1200.0;
    let report = search(scripted(threshold, Above::Reset), "p99=50ms", 300.0, 4);
    let found = report.find_rate.unwrap();
    let rate = found.rate.unwrap();
    assert!(
        rate >= threshold * 0.85 && rate <= threshold * 1.05,
        "found {rate} for resets above {threshold}: {found:?}"
    );
    let failed: Vec<&loadgen::Step> = found.steps.iter().filter(|s| !s.held).collect();
    assert!(!failed.is_empty());
    assert!(
        failed
            .iter()
            .all(|s| s.why.as_deref().unwrap_or("").contains("errors")),
        "{failed:?}"
    );
}

#[test]
fn a_step_held_at_loadgens_limit_ends_the_search_at_least_there() {
    // Doubling from 1,000 against a server that never slows: the steps hold until loadgen
    // itself is at its limit (over 90 % of its CPU) at 8,000; the server holds at least that.
    let steps = std::cell::RefCell::new(Vec::new());
    let found = loadgen::load::search(1000.0, |rate| {
        steps.borrow_mut().push(rate);
        Ok((true, rate >= 8000.0))
    })
    .unwrap();
    assert_eq!(found, (Some(8000.0), "loadgen", true));
    assert_eq!(*steps.borrow(), [1000.0, 2000.0, 4000.0, 8000.0]);
    // Where loadgen fails the step above (it cannot send 6,000 on time), the search closes in
    // on its limit and says so: at least, not the server's.
    let found = loadgen::load::search(1000.0, |rate| Ok((rate < 6000.0, rate >= 6000.0))).unwrap();
    let (rate, by, at_least) = found;
    assert!((5700.0..6000.0).contains(&rate.unwrap()), "{found:?}");
    assert_eq!((by, at_least), ("loadgen", true));
    // A target no step meets is a result.
    let found = loadgen::load::search(1000.0, |_| Ok((false, false))).unwrap();
    assert_eq!(found, (None, "no rate", false));
}

#[test]
fn targets_parse_and_read_their_percentile() {
    let slo = Slo::parse("p99.9=5ms").unwrap();
    assert_eq!((slo.percentile, slo.target_us()), (99.9, 5000.0));
    assert_eq!(slo.text(), "p99.9=5ms");
    assert_eq!(Slo::parse("p50=200us").unwrap().target_us(), 200.0);
    for bad in ["p98=1ms", "p99", "p99=soon", "p99=0s", "99=1ms"] {
        assert!(Slo::parse(bad).is_err(), "{bad}");
    }
}
