//! loadgen against small servers with known behaviour: the figures it reports must be true.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Behaviour, TestServer};
use loadgen::{hlog, Mode};
use testkit::faultproxy::{Direction, FaultProxy, Faults, Slice};

#[test]
fn p50_is_close_to_a_fixed_server_delay() {
    let server = TestServer::start(Behaviour::Delay(Duration::from_millis(5)));
    let report = loadgen::run(&server.options()).unwrap();
    assert!(report.messages > 0);
    // The delay is a sleep: never shorter, and on a busy machine a little longer.
    let p50 = report.latency_us.p50;
    assert!(
        (5000.0..10000.0).contains(&p50),
        "p50 {p50} µs for a 5 ms server"
    );
    assert_eq!(report.errors.total(), 0, "{:?}", report.errors);
}

#[test]
fn a_one_second_freeze_shows_in_corrected_p99_but_not_in_uncorrected() {
    // 2000 msgs/s over 10 connections; the server freezes once, 1.5 s into the run.
    let server = TestServer::start(Behaviour::FreezeAfter(3000, Duration::from_secs(1)));
    let mut opts = server.options();
    opts.connections = 10;
    opts.rate = Some(2000.0);
    opts.warmup = Duration::from_millis(500);
    opts.duration = Duration::from_secs(4);
    let report = loadgen::run(&opts).unwrap();
    assert_eq!(report.mode, Mode::Open);
    let corrected = report.latency_us.p99;
    let uncorrected = report.latency_uncorrected_us.clone().unwrap().p99;
    assert!(
        corrected > 300_000.0,
        "corrected p99 {corrected} µs hides the 1 s stall"
    );
    assert!(uncorrected < 100_000.0, "uncorrected p99 {uncorrected} µs");
    // The stalled messages were sent late, not dropped: the plan was caught up.
    assert!(
        report.latency_us.max >= 900_000.0,
        "max {} µs",
        report.latency_us.max
    );
}

#[test]
fn open_loop_achieves_its_target_rate() {
    let server = TestServer::start(Behaviour::Echo);
    let mut opts = server.options();
    opts.connections = 8;
    opts.rate = Some(2000.0);
    opts.duration = Duration::from_secs(2);
    let report = loadgen::run(&opts).unwrap();
    let ratio = report.achieved_rate_ratio.unwrap();
    assert!(
        (0.97..=1.03).contains(&ratio),
        "achieved {ratio} of the rate"
    );
    assert!(report.latency_uncorrected_us.is_some());
    assert!(report.latency_uncorrected_us.unwrap().p50 <= report.latency_us.p50 + 1.0);
}

#[test]
fn churn_opens_one_connection_per_message_and_times_the_connect() {
    let server = TestServer::start(Behaviour::Echo);
    let mut opts = server.options();
    opts.churn = true;
    let report = loadgen::run(&opts).unwrap();
    assert_eq!(report.mode, Mode::Churn);
    assert!(report.messages > 10, "{} messages", report.messages);
    assert!(
        server.accepted() as u64 >= report.messages,
        "{} connections for {} messages",
        server.accepted(),
        report.messages
    );
    let connect = report.connect_us.unwrap();
    assert!(connect.p50 > 0.0 && connect.p50 <= report.latency_us.p50);
}

#[test]
fn an_iterative_server_starves_three_of_four_connections() {
    let server = TestServer::start(Behaviour::Iterative);
    let mut opts = server.options();
    // Longer than the run: the waiting connections are never given up on.
    opts.timeout = Duration::from_secs(10);
    let report = loadgen::run(&opts).unwrap();
    assert!(report.messages > 0);
    assert_eq!(report.connections_starved, 3);
    assert!(
        report.failure().is_none(),
        "starvation is a finding, not a failure"
    );
}

#[test]
fn a_server_that_serves_one_connection_starves_exactly_the_others_without_reconnects() {
    let server = TestServer::start(Behaviour::ServeFirstOnly);
    let mut opts = server.options();
    // Far shorter than the run: a connection never answered still must not be replaced.
    opts.timeout = Duration::from_millis(200);
    opts.threads = Some(2);
    let report = loadgen::run(&opts).unwrap();
    assert!(report.messages > 0);
    assert_eq!(report.connections_starved, 3);
    assert_eq!(
        server.accepted(),
        4,
        "a starved slot reconnected, leaving a dead socket in the backlog"
    );
    // Their messages were sent in the warm-up, so no measured message timed out.
    assert_eq!(report.errors.total(), 0, "{:?}", report.errors);
}

#[test]
fn an_iterative_server_serving_the_next_client_after_the_end_starves_it_all_the_same() {
    // Two workers end a moment apart: the first one's clean close lets the iterative server
    // accept the next client while the second worker still polls. That echo comes after the
    // end of the window and must not count the slot as served.
    for _ in 0..4 {
        let server = TestServer::start(Behaviour::Iterative);
        let mut opts = server.options();
        opts.threads = Some(2);
        opts.timeout = Duration::from_millis(300);
        let report = loadgen::run(&opts).unwrap();
        assert_eq!(report.connections_starved, 3, "{:?}", report.errors);
    }
}

#[test]
fn every_connection_ends_with_a_fin_and_never_a_reset() {
    type Setting = (&'static str, fn(&mut loadgen::Options));
    let modes: [Setting; 5] = [
        ("closed", |_| {}),
        ("pipelined bulk", |o| {
            o.pipeline = 4;
            o.size = 64 * 1024;
        }),
        ("open", |o| o.rate = Some(2000.0)),
        ("churn", |o| o.churn = true),
        ("idle", |o| o.idle = 50),
    ];
    for (mode, set) in modes {
        let server = TestServer::start(Behaviour::Echo);
        let mut opts = server.options();
        opts.duration = Duration::from_millis(500);
        set(&mut opts);
        let report = loadgen::run(&opts).unwrap();
        assert_eq!(report.errors.total(), 0, "{mode}: {:?}", report.errors);
        // The run has returned, so every connection has been closed by loadgen; the server's
        // threads may still be reading the last FINs.
        let ended = testkit::wait_until(Duration::from_secs(5), || {
            let (eofs, resets) = server.endings();
            (eofs + resets == server.accepted()).then_some((eofs, resets))
        });
        let (eofs, resets) = ended.unwrap_or_else(|| panic!("{mode}: connections left open"));
        assert_eq!(resets, 0, "{mode}: {resets} of {} reset", eofs + resets);
    }
}

#[test]
fn echoes_in_flight_at_the_end_are_waited_for_and_recorded() {
    // Every echo takes 300 ms and the window is 200 ms: the one message each connection sends
    // is still in flight at the end, and the drain (at most 250 ms) collects it.
    let server = TestServer::start(Behaviour::Delay(Duration::from_millis(300)));
    let mut opts = server.options();
    opts.warmup = Duration::ZERO;
    opts.duration = Duration::from_millis(200);
    let report = loadgen::run(&opts).unwrap();
    assert_eq!(report.errors.total(), 0, "{:?}", report.errors);
    assert_eq!(report.messages, 4, "one message per connection");
    assert!(
        report.latency_us.p50 >= 300_000.0,
        "{:?}",
        report.latency_us
    );
    // Answered only after the window closed: that is no service during the run.
    assert_eq!(report.connections_starved, 4);
}

#[test]
fn echoes_that_arrive_in_fragments_are_verified_and_completed() {
    let server = TestServer::start(Behaviour::Echo);
    for slice in [Slice::Bytes1, Slice::Random { max: 300 }] {
        let faults = Faults {
            to_client: Direction {
                slice,
                ..Direction::default()
            },
            ..Faults::default()
        };
        let proxy = FaultProxy::start(server.addr, faults).unwrap();
        let mut opts = server.options();
        opts.addr = proxy.addr;
        opts.size = 1000;
        opts.duration = Duration::from_millis(500);
        let report = loadgen::run(&opts).unwrap();
        assert!(
            report.messages > 10,
            "{slice:?}: {} messages",
            report.messages
        );
        assert_eq!(report.errors.total(), 0, "{slice:?}: {:?}", report.errors);
    }
}

#[test]
fn a_200_ms_network_stall_shows_in_corrected_latency_and_not_in_uncorrected() {
    let server = TestServer::start(Behaviour::Echo);
    let faults = Faults {
        to_server: Direction {
            // After about 300 ms of the run at 64 B × 1,000 msgs/s.
            stall: Some((20_000, Duration::from_millis(200))),
            ..Direction::default()
        },
        ..Faults::default()
    };
    let proxy = FaultProxy::start(server.addr, faults).unwrap();
    let mut opts = server.options();
    opts.addr = proxy.addr;
    opts.rate = Some(1000.0);
    opts.warmup = Duration::ZERO;
    opts.duration = Duration::from_millis(1200);
    let report = loadgen::run(&opts).unwrap();
    let corrected = report.latency_us;
    let uncorrected = report.latency_uncorrected_us.unwrap();
    // Messages planned during the stall wait for it: about a sixth of the run.
    assert!(corrected.p99 >= 100_000.0, "corrected {corrected:?}");
    assert!(corrected.max >= 190_000.0, "corrected {corrected:?}");
    // Only the few in flight when it began saw it from their actual send time.
    assert!(uncorrected.p99 < 50_000.0, "uncorrected {uncorrected:?}");
}

#[test]
fn pipeline_keeps_k_messages_in_flight() {
    // This server echoes only once 4 messages are waiting: it stalls a client that sends
    // fewer at a time.
    let server = TestServer::start(Behaviour::EchoInBatchesOf(4 * 64));
    let mut opts = server.options();
    opts.pipeline = 4;
    let report = loadgen::run(&opts).unwrap();
    assert!(report.messages > 100, "{} messages", report.messages);
    assert_eq!(report.errors.timeout, 0);
    assert_eq!(report.connections_starved, 0);
}

#[test]
fn idle_connections_are_held_beside_the_active_ones() {
    let server = TestServer::start(Behaviour::Echo);
    let mut opts = server.options();
    opts.connections = 2;
    opts.idle = 20;
    let report = loadgen::run(&opts).unwrap();
    assert!(
        server.max_open() >= 22,
        "at most {} open at once",
        server.max_open()
    );
    assert_eq!(report.idle, 20);
    assert_eq!(report.errors.total(), 0, "{:?}", report.errors);
    assert_eq!(
        report.connections_starved, 0,
        "idle connections are not starved ones"
    );
}

#[test]
fn a_server_that_dies_mid_run_leaves_a_report_of_what_was_done() {
    let server = TestServer::start(Behaviour::DieAfter(2000));
    let mut opts = server.options();
    opts.warmup = Duration::ZERO;
    let report = loadgen::run(&opts).unwrap();
    assert!(
        report.messages > 0 && report.messages < 2000,
        "{} messages",
        report.messages
    );
    assert!(
        report.errors.reset + report.errors.connect > 0,
        "{:?}",
        report.errors
    );
    assert!(report.failure().is_none());
}

#[test]
fn every_worker_thread_adds_its_histogram() {
    let server = TestServer::start(Behaviour::Echo);
    let mut opts = server.options();
    opts.connections = 8;
    opts.threads = Some(3);
    let report = loadgen::run(&opts).unwrap();
    assert!(report.messages > 0);
    assert_eq!(
        report.connections_starved, 0,
        "a worker's connections went unserved"
    );
}

#[test]
fn hlog_keeps_one_histogram_per_hlog_interval() {
    let dir = tempdir();
    let server = TestServer::start(Behaviour::Echo);
    let mut opts = server.options();
    opts.hlog = Some(dir.join("short.hlog"));
    opts.hlog_interval = Duration::from_millis(100);
    let report = loadgen::run(&opts).unwrap();
    let mut lengths = Vec::new();
    let mut total = 0;
    hlog::visit(opts.hlog.as_ref().unwrap(), |i| {
        if i.tag == "latency" {
            lengths.push(i.length);
            total += i.histogram.len();
        }
        Ok(())
    })
    .unwrap();
    // 1 s in 100 ms intervals; the last holds the drain's echoes and may be short.
    assert!((10..=11).contains(&lengths.len()), "{lengths:?}");
    assert!(
        lengths[..9]
            .iter()
            .all(|l| *l == Duration::from_millis(100)),
        "{lengths:?}"
    );
    assert_eq!(total, report.messages, "the intervals add up to the report");
}

#[test]
fn hlog_reads_back_and_merges_by_adding_histograms() {
    let dir = tempdir();
    let server = TestServer::start(Behaviour::Echo);
    let mut reports = Vec::new();
    for (i, rate) in [(0, Some(1000.0)), (1, Some(3000.0))] {
        let mut opts = server.options();
        opts.rate = rate;
        opts.hlog = Some(dir.join(format!("{i}.hlog")));
        opts.hgrm = Some(dir.join(format!("{i}.hgrm")));
        let report = loadgen::run(&opts).unwrap();
        let log = hlog::read(opts.hlog.as_ref().unwrap()).unwrap();
        assert_eq!(
            log.totals["latency"].len(),
            report.messages,
            "log and report disagree"
        );
        assert_eq!(log.totals["uncorrected"].len(), report.messages);
        assert_eq!(log.report, report);
        assert!(
            log.intervals >= 2,
            "{} intervals for a 1 s run",
            log.intervals
        );
        let hgrm = std::fs::read_to_string(opts.hgrm.as_ref().unwrap()).unwrap();
        assert!(
            hgrm.contains(&format!("Total count    = {:12}", report.messages)),
            "{hgrm}"
        );
        reports.push(report);
    }
    let merged = hlog::merge(&[dir.join("0.hlog"), dir.join("1.hlog")]).unwrap();
    assert_eq!(merged.messages, reports[0].messages + reports[1].messages);
    assert_eq!(merged.connections, 8);
    assert_eq!(merged.rate, Some(4000.0));
    let sum = reports[0].throughput_msgs_per_s + reports[1].throughput_msgs_per_s;
    assert!((merged.throughput_msgs_per_s - sum).abs() < 1e-6);
    assert!(merged.latency_us.min <= reports[0].latency_us.min.min(reports[1].latency_us.min));
    assert!(merged.latency_us.max >= reports[0].latency_us.max.max(reports[1].latency_us.max));
    std::fs::remove_dir_all(dir).unwrap();
}

/// A fresh directory under the target directory's temp area.
fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "loadgen-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn work_requests_are_verified_whole_and_each_class_is_measured_apart() {
    // An echo server returns the requests unchanged, as `echo-server --work` does once their
    // cost is paid: every byte, header included, is checked against what was sent.
    let server = TestServer::start(Behaviour::Echo);
    let mut opts = server.options();
    opts.work = Some(loadgen::work::WorkSpec::parse("cpu=20us;25%:cpu=1ms,wait=2ms").unwrap());
    // Any 64-bit seed: the report holding it still reads back and merges.
    opts.seed = u64::MAX - 9;
    opts.size = 100;
    opts.pipeline = 3;
    let hlog = tempfile::tempdir().unwrap();
    opts.hlog = Some(hlog.path().join("run.hlog"));
    let report = loadgen::run(&opts).unwrap();
    assert_eq!(report.errors.total(), 0, "{:?}", report.errors);
    let work = report.work.clone().unwrap();
    assert_eq!(
        (work.spec.as_str(), work.seed),
        ("cpu=20us;25%:cpu=1ms,wait=2ms", u64::MAX - 9)
    );
    let [light, heavy] = &work.classes[..] else {
        panic!("{work:?}");
    };
    assert_eq!((light.share, heavy.share), (0.75, 0.25));
    assert_eq!((heavy.cpu_us, heavy.wait_us), (1000.0, 2000.0));
    assert_eq!(light.messages + heavy.messages, report.messages);
    let heavy_share = heavy.messages as f64 / report.messages as f64;
    assert!((0.15..0.35).contains(&heavy_share), "{heavy_share}");
    assert!(light.latency_us.p50 > 0.0 && heavy.latency_us.p50 > 0.0);
    // The log carries each class, so that agents' runs merge class by class.
    let log = hlog::read(opts.hlog.as_ref().unwrap()).unwrap();
    assert_eq!(log.totals["class-1"].len(), heavy.messages);
    let merged = hlog::merge(&[opts.hlog.as_ref().unwrap(); 2]).unwrap();
    assert_eq!(merged.work.unwrap().classes[1].messages, 2 * heavy.messages);
}
