//! The UDP echo contract, checked against every `udp-` model through the real `echo-server`
//! binary with a plain `std` UDP client (not loadgen): each datagram comes back whole, to its
//! sender, from the address it was sent to; the models stop cleanly and count what they did.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use common::{io_uring_allowed, udp_models, Rng, Server};

/// The sizes every model must echo: one byte, a full Ethernet-MTU datagram, the largest IPv4
/// datagram.
const SIZES: [usize; 3] = [1, 1472, 65_507];

#[test]
fn every_udp_model_echoes_1_1472_and_65507_bytes_whole() {
    let models = udp_models();
    assert!(models.len() >= 5, "{models:?}");
    for model in models {
        let server = Server::start(&model, &[]);
        let client = server.udp_client();
        let mut buf = vec![0u8; 70_000];
        for (i, size) in SIZES.into_iter().enumerate() {
            let sent = Rng::new(10 + i as u64).bytes(size);
            client.send(&sent).unwrap();
            // A connected socket only takes datagrams from the server's address and port.
            let n = client
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("{model}: no echo of {size} B: {e}"));
            assert_eq!(n, size, "{model}: echo of {size} B has {n} B");
            assert!(buf[..n] == sent[..], "{model}: echo of {size} B differs");
        }
    }
}

#[test]
fn sixty_four_udp_clients_each_get_exactly_their_own_echoes() {
    for model in udp_models() {
        let server = Server::start(&model, &[]);
        thread::scope(|s| {
            for c in 0..64u64 {
                let server = &server;
                let model = &model;
                s.spawn(move || {
                    let client = server.udp_client();
                    let mut rng = Rng::new(1000 + c);
                    let mut sent = BTreeSet::new();
                    // Four in flight at a time: tasks on several threads may reorder them.
                    for _ in 0..5 {
                        for k in 0..4 {
                            let len = rng.range(8, 2000);
                            let mut msg = rng.bytes(len);
                            msg[..8].copy_from_slice(&(c * 100 + k).to_le_bytes());
                            client.send(&msg).unwrap();
                            sent.insert(msg);
                        }
                        let mut buf = vec![0u8; 4096];
                        for _ in 0..4 {
                            let n = client
                                .recv(&mut buf)
                                .unwrap_or_else(|e| panic!("{model}: client {c}: {e}"));
                            assert!(
                                sent.remove(&buf[..n]),
                                "{model}: client {c} got a datagram it did not send"
                            );
                        }
                    }
                    assert!(sent.is_empty(), "{model}: client {c}: echoes missing");
                });
            }
        });
    }
}

#[test]
fn udp_models_stop_on_sigterm_and_count_what_they_echoed() {
    for model in udp_models() {
        let mut server = Server::start(&model, &[]);
        let client = server.udp_client();
        let mut buf = [0u8; 64];
        for i in 0..10u8 {
            client.send(&[i; 32]).unwrap();
            assert_eq!(client.recv(&mut buf).unwrap(), 32, "{model}");
        }
        let (status, took) = server.terminate(Duration::from_secs(2));
        assert!(status.success(), "{model}: {status}");
        assert!(took < Duration::from_secs(2), "{model}: {took:?}");
        let said = server.final_stderr();
        assert!(
            said.contains("udp: 10 datagrams received, 10 echoed, 0 truncated"),
            "{model}: {said}"
        );
    }
}

#[test]
fn reuseport_workers_share_one_port_and_serve_every_client() {
    let server = Server::start("udp-reuseport", &["--workers", "4"]);
    // Four sockets bound to the server's port, in /proc/net/udp (port in hex).
    let port = format!(":{:04X} ", server.addr.port());
    let sockets = || {
        let table = std::fs::read_to_string("/proc/net/udp").unwrap();
        let bound = table.lines().filter(|l| l.contains(&port)).count();
        (bound == 4).then_some(bound)
    };
    assert_eq!(common::wait_until(common::IO_TIMEOUT, sockets), Some(4));
    for i in 0..32u8 {
        let client = server.udp_client();
        client.send(&[i; 100]).unwrap();
        let mut buf = [0u8; 128];
        assert_eq!(client.recv(&mut buf).unwrap(), 100, "client {i}");
        assert_eq!(buf[..100], [i; 100]);
    }
}

#[test]
fn a_datagram_from_a_service_port_is_not_echoed() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: binding a source port below 1024 needs root");
        return;
    }
    for model in udp_models() {
        let mut server = Server::start(&model, &[]);
        // Port 7 is echo itself: two echo servers answering each other would loop for ever.
        let Ok(low) = std::net::UdpSocket::bind("127.0.0.1:7") else {
            eprintln!("skipped: 127.0.0.1:7 is taken");
            return;
        };
        low.connect(server.addr).unwrap();
        low.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        low.send(b"loop?").unwrap();
        assert!(
            low.recv(&mut [0u8; 16]).is_err(),
            "{model} echoed to port 7"
        );
        // An ordinary client right after is served: the datagram was read and dropped.
        let client = server.udp_client();
        client.send(b"fine").unwrap();
        assert_eq!(client.recv(&mut [0u8; 16]).unwrap(), 4, "{model}");
        server.terminate(Duration::from_secs(2));
        let said = server.final_stderr();
        assert!(said.contains("1 from ports below 1024"), "{model}: {said}");
    }
}

#[test]
fn a_udp_model_refuses_a_remote_address_without_allow_remote() {
    for model in udp_models() {
        let argv = common::server_argv(&model);
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .args(["--addr", "0.0.0.0:0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{model}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{model}: {stderr}");
        assert!(stderr.contains("--allow-remote"), "{model}: {stderr}");
        assert!(stderr.contains("0.0.0.0:0"), "{model}: {stderr}");
    }
}

#[test]
fn a_wildcard_udp_model_replies_from_the_address_it_was_sent_to() {
    for model in udp_models() {
        let argv = common::server_argv(&model);
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .args(["--addr", "0.0.0.0:0", "--allow-remote"]);
        let server = Server::spawn(&model, cmd);
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
        // 127.0.0.2 is loopback too: the reply must come from it, not from 127.0.0.1.
        let to = std::net::SocketAddr::from(([127, 0, 0, 2], server.addr.port()));
        client.send_to(b"where from?", to).unwrap();
        let mut buf = [0u8; 32];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"where from?", "{model}");
        assert_eq!(from, to, "{model}");
    }
    if !io_uring_allowed() {
        eprintln!("udp-io-uring not tested: the kernel refuses io_uring here");
    }
}

/// Sends `payload` to `to` in a UDP datagram that claims to come from `from`, through a raw
/// socket; `None` where this process may not open one (it needs `CAP_NET_RAW`).
fn spoof(from: SocketAddr, to: SocketAddr, payload: &[u8]) -> Option<()> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let raw = match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP)) {
        Ok(raw) => raw,
        Err(e) => {
            eprintln!("skipped: spoofing a source address needs CAP_NET_RAW ({e})");
            return None;
        }
    };
    // The kernel writes the IP header, with the address bound here as the source; the UDP
    // header is ours, checksum 0 (none, which IPv4 allows).
    raw.bind(&SockAddr::from(SocketAddr::new(from.ip(), 0)))
        .unwrap();
    let mut datagram = Vec::with_capacity(8 + payload.len());
    datagram.extend_from_slice(&from.port().to_be_bytes());
    datagram.extend_from_slice(&to.port().to_be_bytes());
    datagram.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    datagram.extend_from_slice(&[0, 0]);
    datagram.extend_from_slice(payload);
    raw.send_to(&datagram, &SockAddr::from(to)).unwrap();
    Some(())
}

/// A count from a UDP model's exit line: the number before `what`.
fn count(line: &str, what: &str) -> u64 {
    let at = line
        .find(what)
        .unwrap_or_else(|| panic!("no '{what}' in {line}"));
    line[..at]
        .trim_end()
        .rsplit([' ', ','])
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before '{what}' in {line}"))
}

/// The server's `udp:` line after a clean stop.
fn udp_line(server: &mut Server) -> String {
    let (status, _) = server.terminate(Duration::from_secs(2));
    assert!(status.success(), "{}: {status}", server.model);
    let said = server.final_stderr();
    said.lines()
        .find(|l| l.contains("udp: ") || l.starts_with("py-udp: "))
        .unwrap_or_else(|| panic!("{}: no udp line in {said}", server.model))
        .to_owned()
}

/// Whether `server` still echoes a fresh client.
/// One worker, one socket: what one datagram after another reaches is read in order, so a
/// client's answered datagram says that those sent before it were read (with a socket per
/// worker, `udp-reuseport` may hold one unread in another socket when it is stopped).
const ONE_SOCKET: &[&str] = &["--workers", "1"];

fn serves(server: &Server) -> bool {
    let client = server.udp_client();
    client.send(b"still serving?").unwrap();
    let mut buf = [0u8; 32];
    client
        .recv(&mut buf)
        .is_ok_and(|n| &buf[..n] == b"still serving?")
}

#[test]
fn two_echo_servers_spoofed_at_each_other_do_not_loop() {
    for model in udp_models() {
        let mut a = Server::start(&model, ONE_SOCKET);
        let mut b = Server::start(&model, ONE_SOCKET);
        // One datagram to B claiming to come from A: B echoes it to A, A back to B, ...
        if spoof(a.addr, b.addr, b"who is there?").is_none() {
            return;
        }
        // Long enough for a loop to have made tens of thousands of echoes (40,000 in 0.5 s
        // between two models before the rule); with it, the third arrival is dropped.
        std::thread::sleep(Duration::from_millis(300));
        assert!(serves(&a) && serves(&b), "{model}: stopped serving");
        let (a_line, b_line) = (udp_line(&mut a), udp_line(&mut b));
        let received = count(&a_line, "datagrams received") + count(&b_line, "datagrams received");
        assert!(
            received < 20,
            "{model}: a loop: {received} datagrams\n{a_line}\n{b_line}"
        );
        let repeats = count(&a_line, "loop repeats") + count(&b_line, "loop repeats");
        assert!(
            repeats >= 1,
            "{model}: no repeat dropped\n{a_line}\n{b_line}"
        );
    }
}

#[test]
fn a_datagram_spoofed_from_the_server_itself_is_not_echoed() {
    for model in udp_models() {
        let mut server = Server::start(&model, ONE_SOCKET);
        if spoof(server.addr, server.addr, b"talking to myself").is_none() {
            return;
        }
        // The client after the spoofed datagram is answered: the server has read it.
        assert!(serves(&server), "{model}: stopped serving");
        let line = udp_line(&mut server);
        // Before the rule it went round and round: 22 datagrams by the time it was stopped.
        assert_eq!(count(&line, "datagrams received"), 2, "{model}: {line}");
        assert_eq!(count(&line, "from itself"), 1, "{model}: {line}");
    }
}

#[test]
fn reflector_ports_above_1023_are_not_answered() {
    for model in udp_models() {
        let mut server = Server::start(&model, ONE_SOCKET);
        let mut tried = 0;
        for port in [1900, 5353, 11211] {
            let Ok(reflector) = std::net::UdpSocket::bind(("127.0.0.1", port)) else {
                eprintln!("{model}: port {port} not tried: 127.0.0.1:{port} is taken");
                continue;
            };
            reflector.connect(server.addr).unwrap();
            reflector
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            reflector.send(b"amplify me").unwrap();
            assert!(
                reflector.recv(&mut [0u8; 16]).is_err(),
                "{model} answered port {port}"
            );
            tried += 1;
        }
        assert!(serves(&server), "{model}: stopped serving");
        let line = udp_line(&mut server);
        assert_eq!(
            count(&line, "from reflector ports"),
            tried,
            "{model}: {line}"
        );
    }
}

#[test]
fn a_client_repeating_the_same_datagram_slower_than_a_loop_is_answered_each_time() {
    for model in udp_models() {
        let mut server = Server::start(&model, &[]);
        let client = server.udp_client();
        let mut buf = [0u8; 32];
        for _ in 0..3 {
            client.send(b"same again").unwrap();
            let n = client
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("{model}: a repeated line went unanswered: {e}"));
            assert_eq!(&buf[..n], b"same again", "{model}");
            // Longer than the loop window (10 ms), as a person or a retry is.
            std::thread::sleep(Duration::from_millis(30));
        }
        let line = udp_line(&mut server);
        assert_eq!(count(&line, "loop repeats"), 0, "{model}: {line}");
    }
}
