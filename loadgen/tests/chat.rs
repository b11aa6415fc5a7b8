//! `--chat`'s checks against a scripted chat server that breaks the rules on purpose: a
//! delivery twice, two deliveries swapped at one member, a delivery from another room. loadgen
//! must count each (and fail the run), and find nothing wrong when the server keeps them.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use loadgen::Options;

/// How the scripted server breaks the rules.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Every message twice to the first member.
    Twice,
    /// At the second member, each message held back until the next and sent after it.
    Swapped,
    /// Every message also to the first member of the next room.
    Crossing,
    /// The first member's `A` only after loadgen's wait for joins, its room's messages to it
    /// from then on: it joins the room part way through its order.
    LateAck,
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut prefix = [0u8; 4];
    s.read_exact(&mut prefix).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    s.read_exact(&mut body).ok()?;
    let mut frame = prefix.to_vec();
    frame.extend(body);
    Some(frame)
}

/// A chat server for `members` in rooms of `room`, breaking the rules as `fault` says; its
/// address. It serves one run and stops when every member has left.
fn scripted(members: usize, room: usize, fault: Fault) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let mut streams = Vec::new();
        let mut rooms = Vec::new();
        for _ in 0..members {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let join = read_frame(&mut s).unwrap();
            assert_eq!(join[4], b'J');
            rooms.push(u32::from_be_bytes(join[5..9].try_into().unwrap()) as usize);
            streams.push(s);
        }
        // Every member is in: the `A`s.
        let ack = |i: usize| {
            let count = rooms.iter().filter(|&&r| r == rooms[i]).count() as u32;
            let mut ack = 9u32.to_be_bytes().to_vec();
            ack.push(b'A');
            ack.extend((rooms[i] as u32).to_be_bytes());
            ack.extend(count.to_be_bytes());
            ack
        };
        let late = Arc::new(AtomicBool::new(fault != Fault::LateAck));
        for (i, s) in streams.iter_mut().enumerate() {
            if i > 0 || late.load(Ordering::SeqCst) {
                s.write_all(&ack(i)).unwrap();
            }
        }
        if !late.load(Ordering::SeqCst) {
            let (mut first, ack, late) =
                (streams[0].try_clone().unwrap(), ack(0), Arc::clone(&late));
            thread::spawn(move || {
                // After loadgen's wait for joins (its --timeout, 500 ms), in the measured time.
                thread::sleep(Duration::from_millis(700));
                first.write_all(&ack).unwrap();
                late.store(true, Ordering::SeqCst);
            });
        }
        let writers: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(
            streams.iter().map(|s| s.try_clone().unwrap()).collect(),
        ));
        let held: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let mut readers = Vec::new();
        for (i, mut s) in streams.into_iter().enumerate() {
            let (writers, held, rooms) = (Arc::clone(&writers), Arc::clone(&held), rooms.clone());
            let late = Arc::clone(&late);
            readers.push(thread::spawn(move || {
                while let Some(frame) = read_frame(&mut s) {
                    let mut w = writers.lock().unwrap();
                    let mine = rooms[i];
                    for (j, out) in w.iter_mut().enumerate() {
                        if rooms[j] != mine || (j == 0 && !late.load(Ordering::SeqCst)) {
                            continue;
                        }
                        if fault == Fault::Swapped && j == 1 {
                            let mut held = held.lock().unwrap();
                            match held.take() {
                                None => *held = Some(frame.clone()),
                                Some(earlier) => {
                                    let _ = out.write_all(&frame);
                                    let _ = out.write_all(&earlier);
                                }
                            }
                            continue;
                        }
                        let _ = out.write_all(&frame);
                        if fault == Fault::Twice && j == 0 {
                            let _ = out.write_all(&frame);
                        }
                    }
                    if fault == Fault::Crossing {
                        let other = (mine + 1) % (members / room);
                        let _ = w[other * room].write_all(&frame);
                    }
                }
                let _ = writers.lock().unwrap()[i].shutdown(std::net::Shutdown::Write);
            }));
        }
        for r in readers {
            let _ = r.join();
        }
    });
    addr
}

fn run(fault: Fault, members: usize, room: usize) -> loadgen::Report {
    let mut o = Options::new(scripted(members, room, fault));
    o.chat = Some(room);
    o.connections = members;
    o.warmup = Duration::from_millis(50);
    o.duration = Duration::from_millis(600);
    o.timeout = Duration::from_millis(500);
    o.threads = Some(1);
    loadgen::run(&o).unwrap()
}

#[test]
fn a_server_that_keeps_the_rules_gets_every_delivery_counted_once() {
    let report = run(Fault::None, 4, 2);
    let chat = report.chat.unwrap();
    assert!(report.messages > 0);
    assert_eq!(
        (chat.lost, chat.duplicated, chat.out_of_order),
        (0, 0, 0),
        "{chat:?}"
    );
    assert_eq!(chat.deliveries_received, chat.deliveries_expected);
    assert_eq!(chat.deliveries_expected, report.messages * 2);
    assert_eq!(report.errors.mismatch, 0);
}

#[test]
fn a_member_let_in_after_the_load_began_is_starved_and_left_out_of_the_checks() {
    let report = run(Fault::LateAck, 4, 2);
    assert_eq!(report.failure(), None);
    let chat = report.chat.unwrap();
    assert_eq!(report.connections_starved, 1, "{chat:?}");
    // Its room's messages reached it from part way through the room's order: neither owed to
    // it nor out of order, and nothing it received counts.
    assert_eq!(
        (
            chat.lost,
            chat.duplicated,
            chat.out_of_order,
            chat.members_dropped
        ),
        (0, 0, 0, 0),
        "{chat:?}"
    );
    assert_eq!(chat.deliveries_received, chat.deliveries_expected);
}

#[test]
fn a_delivery_twice_is_counted_and_fails_the_run() {
    let report = run(Fault::Twice, 2, 2);
    let chat = report.chat.as_ref().unwrap();
    assert!(chat.duplicated > 0, "{chat:?}");
    assert!(
        report.failure().unwrap().contains("duplicated"),
        "{:?}",
        report.failure()
    );
}

#[test]
fn deliveries_swapped_at_one_member_break_the_rooms_order() {
    let report = run(Fault::Swapped, 2, 2);
    let chat = report.chat.as_ref().unwrap();
    assert!(chat.out_of_order > 0, "{chat:?}");
    assert!(
        report.failure().unwrap().contains("out-of-order"),
        "{:?}",
        report.failure()
    );
}

#[test]
fn a_delivery_from_another_room_is_a_mismatch() {
    let report = run(Fault::Crossing, 4, 2);
    assert!(report.errors.mismatch > 0, "{:?}", report.errors);
    assert!(report.failure().is_some());
}
