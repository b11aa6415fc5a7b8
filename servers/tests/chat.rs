//! The chat room (`--chat`), checked against every TCP model, the Python ones included,
//! through the real `echo-server` binary or script with a plain client of its own (loadgen's `--chat` drives them in the
//! root tests): 64 members in 4 rooms get every message exactly once and in one order per
//! room, nothing crosses rooms; a bad frame closes its connection only, and is counted; a slow
//! member is dropped while the others keep receiving, and the server's memory stays bounded;
//! a member that resets in the middle of a frame disturbs nobody. The iterative server holds
//! one member at a time (the rest wait, as in echo); the pools are given a worker per member.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use echo_server::chat::{join_frame, message_frame, MAX_BODY};
use echo_server::models::ClientsAtOnce;

use common::{assert_refused, clients_at_once, models, program, tree, Server, IO_TIMEOUT};

/// Members of the many-rooms test, and its rooms.
const MEMBERS: usize = 64;
const ROOMS: usize = 4;

/// The models that can hold a room of 16, each started so that it does: a pool gets a
/// worker per member.
fn room_models() -> Vec<String> {
    models()
        .into_iter()
        .filter(|m| clients_at_once(m) != ClientsAtOnce::One)
        .collect()
}

fn start(model: &str, more: &[&str]) -> Server {
    let workers = MEMBERS.to_string();
    let mut args = vec!["--chat"];
    if clients_at_once(model) == ClientsAtOnce::Workers {
        args.extend(["--workers", &workers]);
    }
    args.extend(more);
    let server = Server::start(model, &args);
    server.wait_for_workers_of(MEMBERS);
    server
}

/// Reads one frame's body.
fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).unwrap();
    let len = u32::from_be_bytes(prefix) as usize;
    assert!((1..=MAX_BODY).contains(&len), "a frame of {len} bytes");
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    body
}

/// Joins `room`; checks the `A` names it and `members` in it.
fn join(server: &Server, room: u32, members: u32) -> TcpStream {
    let mut s = server.connect();
    s.write_all(&join_frame(room)).unwrap();
    let ack = read_frame(&mut s);
    let mut expected = vec![b'A'];
    expected.extend(room.to_be_bytes());
    expected.extend(members.to_be_bytes());
    assert_eq!(
        ack, expected,
        "{}: the A of a join of room {room}",
        server.model
    );
    s
}

/// Whether the server closed `stream` (EOF or reset), reading past what it still holds.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    let until = Instant::now() + IO_TIMEOUT;
    while Instant::now() < until {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return true
            }
            Err(_) => return false,
        }
    }
    false
}

/// A message: its sender and number, padded to `len` bytes.
fn message(sender: u32, n: u32, len: usize) -> Vec<u8> {
    let mut m = sender.to_be_bytes().to_vec();
    m.extend(n.to_be_bytes());
    m.resize(len.max(8), (sender as u8) ^ (n as u8));
    m
}

#[test]
fn sixty_four_members_in_four_rooms_get_every_message_once_in_one_order() {
    const EACH: u32 = 3;
    for model in room_models() {
        let mut server = start(&model, &[]);
        let members: Vec<TcpStream> = (0..MEMBERS)
            .map(|i| join(&server, (i % ROOMS) as u32, (i / ROOMS + 1) as u32))
            .collect();
        for (i, m) in members.iter().enumerate() {
            let mut m = m.try_clone().unwrap();
            for n in 0..EACH {
                m.write_all(&message_frame(&message(i as u32, n, 40)))
                    .unwrap();
            }
        }
        let mut orders: HashMap<usize, Vec<(u32, u32)>> = HashMap::new();
        for (i, mut m) in members.into_iter().enumerate() {
            let mut got = Vec::new();
            for _ in 0..(MEMBERS / ROOMS) as u32 * EACH {
                let body = read_frame(&mut m);
                assert_eq!(body[0], b'M', "{model}: member {i} got {body:?}");
                let sender = u32::from_be_bytes(body[1..5].try_into().unwrap());
                let n = u32::from_be_bytes(body[5..9].try_into().unwrap());
                assert_eq!(
                    &body[1..],
                    message(sender, n, 40),
                    "{model}: relayed changed"
                );
                assert_eq!(sender as usize % ROOMS, i % ROOMS, "{model}: crossed rooms");
                got.push((sender, n));
            }
            let mut once = got.clone();
            once.sort_unstable();
            once.dedup();
            assert_eq!(
                once.len(),
                got.len(),
                "{model}: member {i} got a message twice"
            );
            // Each sender's own messages in the order it sent them.
            for sender in once.iter().map(|&(s, _)| s) {
                let ns: Vec<u32> = got.iter().filter(|m| m.0 == sender).map(|m| m.1).collect();
                assert_eq!(ns, (0..EACH).collect::<Vec<_>>(), "{model}: from {sender}");
            }
            let room = orders.entry(i % ROOMS).or_insert_with(|| got.clone());
            assert_eq!(
                *room, got,
                "{model}: member {i} saw its room in another order"
            );
            m.shutdown(Shutdown::Write).unwrap();
            assert!(
                closed_by_server(&mut m),
                "{model}: no EOF after the member left"
            );
        }
        let (status, _) = server.terminate(Duration::from_secs(3));
        assert!(status.success(), "{model}: {status}");
        let said = server.final_stderr();
        let sent = MEMBERS as u32 * EACH;
        let line = format!(
            "{}: chat: {MEMBERS} joins, {sent} messages, {} deliveries, 0 slow members dropped",
            program(&model),
            sent * (MEMBERS / ROOMS) as u32
        );
        assert!(said.contains(&line), "{model}: {said}");
        assert!(
            said.contains("chat refused: 0 bad frames"),
            "{model}: {said}"
        );
    }
}

#[test]
fn the_iterative_server_holds_one_member_at_a_time() {
    for model in models() {
        if clients_at_once(&model) != ClientsAtOnce::One {
            continue;
        }
        let server = start(&model, &[]);
        let mut first = join(&server, 7, 1);
        first.write_all(&message_frame(&message(0, 0, 16))).unwrap();
        assert_eq!(read_frame(&mut first)[1..], message(0, 0, 16));
        // The second waits in the backlog until the first leaves; then it is alone.
        let mut second = server.connect();
        second.write_all(&join_frame(7)).unwrap();
        first.shutdown(Shutdown::Write).unwrap();
        assert!(closed_by_server(&mut first), "{model}");
        let ack = read_frame(&mut second);
        assert_eq!(
            &ack[5..],
            1u32.to_be_bytes(),
            "{model}: not alone in its room"
        );
    }
}

#[test]
fn a_bad_frame_closes_its_connection_only_and_is_counted() {
    let frame = |body: &[u8]| {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend(body);
        f
    };
    let mut twice = join_frame(1);
    twice.extend(join_frame(1));
    let bad: Vec<Vec<u8>> = vec![
        message_frame(b"before joining"),
        frame(b"X"),
        vec![0, 0, 0, 0],
        (MAX_BODY as u32 + 1).to_be_bytes().to_vec(),
        frame(b"J\0\0"),
        twice,
    ];
    for model in room_models() {
        let mut server = start(&model, &[]);
        let mut a = join(&server, 1, 1);
        let mut b = join(&server, 1, 2);
        for (i, offender) in bad.iter().enumerate() {
            let mut o = server.connect();
            o.write_all(offender).unwrap();
            assert!(closed_by_server(&mut o), "{model}: bad frame {i} kept open");
            // The room goes on.
            a.write_all(&message_frame(&message(1, i as u32, 12)))
                .unwrap();
            for m in [&mut a, &mut b] {
                let body = read_frame(m);
                assert_eq!(body[1..], message(1, i as u32, 12), "{model}: after {i}");
            }
        }
        drop((a, b));
        let (status, _) = server.terminate(Duration::from_secs(3));
        assert!(status.success(), "{model}: {status}");
        let said = server.final_stderr();
        let line = format!(
            "{}: chat refused: {} bad frames",
            program(&model),
            bad.len()
        );
        assert!(said.contains(&line), "{model}: {said}");
    }
}

/// Resident memory of the server's whole process tree, KiB.
fn tree_rss(server: &Server) -> u64 {
    tree(server.pid())
        .into_iter()
        .filter_map(|p| common::proc_status(p, "VmRSS"))
        .sum()
}

#[test]
fn a_slow_member_is_dropped_while_the_room_goes_on_and_memory_stays_bounded() {
    const QUEUE: usize = MAX_BODY + 4;
    const WINDOWS: u32 = 1500;
    const WINDOW: u32 = 16;
    const SIZE: usize = 1000;
    for model in room_models() {
        let mut server = start(&model, &["--chat-queue", &QUEUE.to_string()]);
        let mut talker = join(&server, 3, 1);
        let mut listener = join(&server, 3, 2);
        // Joins and never reads.
        let mut slow = join(&server, 3, 3);
        // Once every member is served (a process each, where the model forks).
        let before = tree_rss(&server);
        let mut peak = before;
        // 24 MB in windows of 16 KB that both readers take before the next: they never lag
        // by more than their queue, while the slow member is owed it all.
        for w in 0..WINDOWS {
            let first = w * WINDOW;
            let mut burst = Vec::new();
            for n in first..first + WINDOW {
                burst.extend(message_frame(&message(0, n, SIZE)));
            }
            talker.write_all(&burst).unwrap();
            for m in [&mut talker, &mut listener] {
                for n in first..first + WINDOW {
                    let body = read_frame(m);
                    assert_eq!(
                        body[1..],
                        message(0, n, SIZE),
                        "{model}: a reader lost its place"
                    );
                }
            }
            if w % 100 == 0 {
                peak = peak.max(tree_rss(&server));
            }
        }
        assert!(
            closed_by_server(&mut slow),
            "{model}: the slow member was kept"
        );
        // What the slow member was owed stayed within its queue (and the sockets' buffers).
        let grew = peak.saturating_sub(before);
        assert!(grew < 16 * 1024, "{model}: memory grew {grew} KiB");
        drop((talker, listener));
        let (status, _) = server.terminate(Duration::from_secs(3));
        assert!(status.success(), "{model}: {status}");
        let said = server.final_stderr();
        assert!(said.contains(", 1 slow members dropped"), "{model}: {said}");
    }
}

#[test]
fn a_member_that_resets_mid_frame_does_not_disturb_the_room() {
    for model in room_models() {
        let mut server = start(&model, &[]);
        let mut a = join(&server, 9, 1);
        let quitter = join(&server, 9, 2);
        let mut c = join(&server, 9, 3);
        let half = message_frame(&message(1, 0, 200));
        (&quitter).write_all(&half[..100]).unwrap();
        socket2::SockRef::from(&quitter)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(quitter);
        for n in 0..20 {
            a.write_all(&message_frame(&message(0, n, 30))).unwrap();
            for m in [&mut a, &mut c] {
                assert_eq!(read_frame(m)[1..], message(0, n, 30), "{model}");
            }
        }
        // A newcomer finds the two that stayed.
        let _d = join(&server, 9, 3);
        drop((a, c));
        let (status, _) = server.terminate(Duration::from_secs(3));
        assert!(status.success(), "{model}: {status}");
    }
}

#[test]
fn a_member_that_leaves_while_its_room_talks_is_closed() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    for model in room_models() {
        let server = start(&model, &[]);
        let mut leaver = join(&server, 5, 1);
        let mut talker = join(&server, 5, 2);
        let talking = Arc::new(AtomicBool::new(true));
        let still = Arc::clone(&talking);
        let mut writer = talker.try_clone().unwrap();
        let chatter = std::thread::spawn(move || {
            let mut n = 0;
            while still.load(Ordering::Relaxed) {
                if writer
                    .write_all(&message_frame(&message(1, n, 100)))
                    .is_err()
                {
                    break;
                }
                n += 1;
            }
        });
        // The talker reads its own messages, so that it is never the slow one.
        let drain = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while matches!(talker.read(&mut buf), Ok(n) if n > 0) {}
        });
        leaver.shutdown(Shutdown::Write).unwrap();
        let closed = closed_by_server(&mut leaver);
        talking.store(false, Ordering::Relaxed);
        chatter.join().unwrap();
        drop(server);
        drain.join().unwrap();
        assert!(
            closed,
            "{model}: a member that left was kept while its room talked"
        );
    }
}

#[test]
fn chat_flags_that_do_not_fit_are_refused_in_one_line() {
    assert_refused(&["mio", "--chat", "--work"], "--work");
    assert_refused(&["udp-mio", "--chat"], "--chat");
    assert_refused(&["mio", "--chat", "--chat-queue", "1KiB"], "--chat-queue");
    assert_refused(&["mio", "--chat-queue", "2MiB"], "--chat");
    assert_refused(&["mio", "--chat", "--chat-queue", "lots"], "--chat-queue");
}
