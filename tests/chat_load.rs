//! loadgen's `--chat` against every Rust TCP model (through `echobench serve`, which is
//! `echo-server`; loadgen in this process): rooms filled before any message, every delivery
//! received once, whole and in the room's one order, none lost; the iterative server's
//! starved members reported as starved; the open loop keeps its rate; slow members are dropped
//! by the server while the readers lose nothing.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use echo_server::models::ClientsAtOnce;
use echo_server::{Model, Transport};
use loadgen::{Options, Report};

const BIN: &str = env!("CARGO_BIN_EXE_echobench");

/// A server of `model` with `--chat` and `args`; pools get a worker per member.
fn serve(model: Model, members: usize, args: &[&str]) -> testkit::Listening {
    let workers = match model.info().clients_at_once {
        ClientsAtOnce::Workers => members.to_string(),
        _ => "2".to_owned(),
    };
    testkit::spawn_listening(
        Command::new(BIN)
            .args(["serve", "--", model.name()])
            .args(["--addr", "127.0.0.1:0", "--chat", "--workers", &workers])
            .args(args)
            .stderr(Stdio::piped()),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", model.name()))
}

/// Stops the server; its stderr.
fn stop(mut server: testkit::Listening, name: &str) -> String {
    let pid = nix::unistd::Pid::from_raw(server.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(server.child.wait().unwrap().success(), "{name}");
    server.stderr_to_end()
}

fn options(server: &testkit::Listening, room: usize, members: usize) -> Options {
    let mut o = Options::new(server.addr);
    o.chat = Some(room);
    o.connections = members;
    o.threads = Some(1);
    o.warmup = Duration::from_millis(100);
    o.duration = Duration::from_millis(400);
    o.timeout = Duration::from_secs(2);
    o
}

/// Every delivery owed came, once, whole, in order.
fn assert_all_delivered(report: &Report, name: &str) {
    let chat = report.chat.as_ref().unwrap();
    assert!(report.messages > 0, "{name}: no message");
    assert_eq!(report.errors.total(), 0, "{name}: {:?}", report.errors);
    assert_eq!(
        (chat.lost, chat.duplicated, chat.out_of_order),
        (0, 0, 0),
        "{name}: {chat:?}"
    );
    assert_eq!(chat.deliveries_received, chat.deliveries_expected, "{name}");
    assert!(
        chat.fanout_latency_us.p99 >= chat.delivery_latency_us.p50,
        "{name}"
    );
    assert!(report.failure().is_none(), "{name}: {:?}", report.failure());
}

#[test]
fn every_model_delivers_every_message_to_its_room_once_and_in_order() {
    for model in Model::of(Transport::Tcp) {
        if model == Model::IoUring && !testkit::io_uring_allowed() {
            eprintln!("skipped io-uring: the kernel refuses io_uring to this process");
            continue;
        }
        let name = model.name();
        let server = serve(model, 64, &[]);
        let report = loadgen::run(&options(&server, 16, 64)).unwrap();
        let said = stop(server, name);
        assert_all_delivered(&report, name);
        let chat = report.chat.as_ref().unwrap();
        assert_eq!((chat.room, chat.rooms), (16, 4), "{name}");
        let one_at_a_time = model.info().clients_at_once == ClientsAtOnce::One;
        let starved = if one_at_a_time { 63 } else { 0 };
        assert_eq!(chat.members_starved, starved, "{name}");
        assert_eq!(report.connections_starved, starved as usize, "{name}");
        if !one_at_a_time {
            // Each message reached the 16 members of its room.
            assert_eq!(chat.deliveries_expected, report.messages * 16, "{name}");
        }
        assert!(said.contains("echo-server: chat: "), "{name}: {said}");
        assert!(said.contains(" 0 slow members dropped"), "{name}: {said}");
        assert!(
            said.contains("chat refused: 0 bad frames"),
            "{name}: {said}"
        );
    }
}

#[test]
fn the_open_loop_keeps_its_rate_and_one_room_of_128_gets_everything() {
    for model in [Model::Mio, Model::ThreadPerClient, Model::Tokio] {
        let name = model.name();
        let server = serve(model, 128, &[]);
        let mut o = options(&server, 16, 64);
        o.rate = Some(2000.0);
        let open = loadgen::run(&o).unwrap();
        let one_room = loadgen::run(&options(&server, 128, 128)).unwrap();
        stop(server, name);
        assert_all_delivered(&open, name);
        let ratio = open.achieved_rate_ratio.unwrap();
        assert!((0.9..=1.05).contains(&ratio), "{name}: {ratio}");
        assert!(open.send_late_us.is_some(), "{name}");
        assert_all_delivered(&one_room, name);
        let chat = one_room.chat.as_ref().unwrap();
        assert_eq!(chat.deliveries_expected, one_room.messages * 128, "{name}");
    }
}

#[test]
fn slow_members_are_dropped_by_the_server_and_the_readers_lose_nothing() {
    for model in [
        Model::Mio,
        Model::ThreadPerClient,
        Model::Tokio,
        Model::ForkPerClient,
    ] {
        let name = model.name();
        // A queue of 4 MiB: a reader is dropped only when it falls 4,000 messages behind,
        // which a loadgen worker on a busy machine (the other tests beside it) can do at 1 MiB;
        // a slow member passes it within the 3 s, whatever the model.
        let server = serve(model, 64, &["--chat-queue", "4MiB"]);
        let mut o = options(&server, 16, 64);
        o.chat_slow = 1;
        o.size = 1000;
        o.duration = Duration::from_secs(3);
        let began = Arc::new(OnceLock::new());
        o.load_started = Some(began.clone());
        let before = Instant::now();
        let report = loadgen::run(&o).unwrap();
        let said = stop(server, name);
        assert_all_delivered(&report, name);
        let chat = report.chat.as_ref().unwrap();
        // Each message is owed to the 15 readers of its room, not to the slow member.
        assert_eq!(chat.deliveries_expected, report.messages * 15, "{name}");
        assert!(said.contains(", 4 slow members dropped"), "{name}: {said}");
        // loadgen sees it too: each dropped member's last bytes are read through its small
        // window to the EOF.
        assert_eq!(chat.members_dropped, 4, "{name}");
        // The load began once every member had joined, and a caller was told when.
        let began = *began.get().expect("the load's start is told");
        assert!(
            began > before && began + o.duration < Instant::now(),
            "{name}"
        );
    }
}
