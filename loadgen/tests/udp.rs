//! loadgen `--udp` against small UDP servers with known faults: loss, reordering and
//! duplicates must be counted as what they are, and none of them may inflate the latency.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{UdpBehaviour, UdpTestServer};

#[test]
fn a_clean_udp_echo_loses_nothing_and_counts_every_datagram() {
    let server = UdpTestServer::start(UdpBehaviour::Echo);
    let mut opts = server.options();
    opts.pipeline = 4;
    let report = loadgen::run(&opts).unwrap();
    assert!(report.messages > 1000, "{}", report.summary());
    assert_eq!(report.datagrams_sent, Some(report.messages));
    assert_eq!(report.datagrams_lost, Some(0));
    assert_eq!(report.loss_ratio, Some(0.0));
    assert_eq!(report.datagrams_duplicated, Some(0));
    assert_eq!(report.errors.total(), 0, "{:?}", report.errors);
    assert_eq!(report.connections_starved, 0);
}

#[test]
fn a_server_that_drops_every_tenth_datagram_shows_ten_percent_loss() {
    let server = UdpTestServer::start(UdpBehaviour::DropEvery(10));
    let mut opts = server.options();
    opts.rate = Some(4000.0);
    let report = loadgen::run(&opts).unwrap();
    let sent = report.datagrams_sent.unwrap();
    let lost = report.datagrams_lost.unwrap();
    assert!(sent > 3000, "{}", report.summary());
    let ratio = report.loss_ratio.unwrap();
    assert!((0.09..=0.11).contains(&ratio), "{}", report.summary());
    assert_eq!(
        report.messages + lost,
        sent,
        "every judged datagram echoed or lost"
    );
    // Lost datagrams are not echoes: no latency near the 100 ms timeout is recorded, and a
    // loss is not also a timeout error.
    assert!(report.latency_us.max < 50_000.0, "{}", report.summary());
    assert_eq!(report.errors.timeout, 0);
    assert_eq!(report.datagrams_late, Some(0));
}

#[test]
fn neighbours_swapped_by_the_server_are_counted_as_reordered_in_the_open_loop() {
    let server = UdpTestServer::start(UdpBehaviour::SwapNeighbours);
    let mut opts = server.options();
    // Each socket sends every 2 ms: the held datagram waits for its neighbour that long.
    opts.rate = Some(2000.0);
    let report = loadgen::run(&opts).unwrap();
    let sent = report.datagrams_sent.unwrap();
    let reordered = report.datagrams_reordered.unwrap();
    assert!(sent > 1500, "{}", report.summary());
    // Every second datagram comes back before its predecessor.
    let share = reordered as f64 / sent as f64;
    assert!((0.4..=0.51).contains(&share), "{}", report.summary());
    assert_eq!(report.datagrams_lost, Some(0), "{}", report.summary());
    assert_eq!(report.datagrams_duplicated, Some(0));
    assert_eq!(report.messages, sent);
    // The held datagram waits one gap (2 ms): latency shows that, not the 100 ms timeout.
    assert!(report.latency_us.p99 < 30_000.0, "{}", report.summary());
}

#[test]
fn echoes_sent_twice_are_counted_as_duplicates_and_not_as_messages() {
    let server = UdpTestServer::start(UdpBehaviour::EchoTwice);
    let mut opts = server.options();
    opts.rate = Some(2000.0);
    let report = loadgen::run(&opts).unwrap();
    let sent = report.datagrams_sent.unwrap();
    let duplicated = report.datagrams_duplicated.unwrap();
    assert!(sent > 1500, "{}", report.summary());
    assert_eq!(report.messages, sent, "one message per datagram, not two");
    assert!(
        duplicated + 5 >= sent && duplicated <= sent,
        "{}",
        report.summary()
    );
    assert_eq!(report.datagrams_lost, Some(0));
    assert_eq!(report.errors.mismatch, 0, "a duplicate is not a mismatch");
    // Throughput is the rate offered, not twice it.
    let ratio = report.achieved_rate_ratio.unwrap();
    assert!((0.9..1.1).contains(&ratio), "{}", report.summary());
    assert!(report.latency_us.p99 < 30_000.0, "{}", report.summary());
}

#[test]
fn udp_without_a_server_completes_nothing_and_says_the_port_refused() {
    // A bound socket that never answers would be a loss; a closed port is refused by ICMP.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut opts = loadgen::Options::new(port);
    opts.udp = true;
    opts.connections = 2;
    opts.duration = Duration::from_millis(300);
    opts.warmup = Duration::from_millis(100);
    opts.timeout = Duration::from_millis(100);
    let report = loadgen::run(&opts).unwrap();
    assert_eq!(report.messages, 0);
    let why = report.failure().unwrap();
    assert!(why.contains("no message completed"), "{why}");
    assert!(report.errors.connect > 0, "{:?}", report.errors);
}
