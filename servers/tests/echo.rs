//! The echo contract, checked against every model through the real `echo-server` binary.
//!
//! Each test body loops over `echo-server --list`, so a new model is tested without edits.
//! Where a test does not apply to a model, the test says why.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use echo_server::models::ClientsAtOnce;
use testkit::faultproxy::{Direction, FaultProxy, Faults, Slice};

use common::{
    assert_back_pressured, child_states, children, clients_at_once, exchange, forks,
    holds_every_client_in_one_process, is_alive, models, nofile_limits, ping, proc_status, program,
    python_models, serves_one_at_a_time, tree, tree_anon_kib, tree_sockets, wait_until, Rng,
    Server, IO_TIMEOUT,
};
use echo_server::Transport;

#[test]
fn small_pingpongs_echo_byte_for_byte() {
    for model in models() {
        let server = Server::start(&model, &[]);
        let mut client = server.connect();
        let mut rng = Rng::new(1);
        for _ in 0..50 {
            let len = rng.range(1, 512);
            ping(&mut client, &rng.bytes(len));
        }
    }
}

#[test]
fn half_close_after_4_mib_in_random_chunks_flushes_echo_then_eof() {
    let data = Arc::new(Rng::new(2).bytes(4 << 20));
    for model in models() {
        let server = Server::start(&model, &[]);
        let echoed = exchange(server.connect(), Arc::clone(&data), 64 * 1024, 3);
        assert_eq!(echoed.len(), data.len(), "{model}: echo length");
        assert!(echoed == *data, "{model}: echo differs from what was sent");
    }
}

#[test]
fn sixty_four_clients_with_random_sizes_get_exact_echoes() {
    for model in models() {
        let server = Server::start(&model, &[]);
        let client = |i: u64| {
            let mut rng = Rng::new(100 + i);
            let len = rng.range(1, 256 * 1024);
            let data = Arc::new(rng.bytes(len));
            let echoed = exchange(server.connect(), Arc::clone(&data), 16 * 1024, i);
            assert!(echoed == *data, "{model}: client {i} got a wrong echo");
        };
        if serves_one_at_a_time(&model) {
            // The iterative server serves clients in series by design.
            (0..64).for_each(client);
        } else {
            thread::scope(|s| {
                for i in 0..64 {
                    s.spawn(move || client(i));
                }
            });
        }
    }
}

#[test]
fn accepted_sockets_have_tcp_nodelay() {
    // Read from outside the server: a helper takes a copy of the accepted socket
    // (pidfd_getfd) and asks it.
    let Some(python) = common::python() else {
        return;
    };
    let helper = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helpers/nodelay.py");
    let ask = |port: u16, pids: &[nix::unistd::Pid]| {
        let out = std::process::Command::new(&python.executable)
            .arg(helper)
            .arg(port.to_string())
            .args(pids.iter().map(|p| p.to_string()))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            !said.is_empty(),
            "the helper failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        said
    };
    // The helper tells a socket without the option: one this test accepts itself.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let plain = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_accepted, _) = listener.accept().unwrap();
    let own = nix::unistd::Pid::this();
    match ask(plain.local_addr().unwrap().port(), &[own]) {
        said if said.starts_with("unsupported ") => {
            eprintln!("skipped accepted_sockets_have_tcp_nodelay: {said}");
            return;
        }
        said => assert_eq!(said, "nodelay 0", "the helper cannot tell"),
    }
    for model in models() {
        let server = Server::start(&model, &[]);
        let mut client = server.connect();
        ping(&mut client, b"nodelay?");
        // The server and its descendants: a forking model's child holds the socket.
        let said = ask(client.local_addr().unwrap().port(), &tree(server.pid()));
        assert_eq!(said, "nodelay 1", "{model}");
    }
}

#[test]
fn client_reset_mid_stream_leaves_the_server_serving() {
    for model in models() {
        let mut server = Server::start(&model, &[]);
        let mut bystander = (!serves_one_at_a_time(&model)).then(|| server.connect());
        if let Some(client) = bystander.as_mut() {
            ping(client, b"before");
        }
        let mut rude = server.connect();
        rude.write_all(&Rng::new(4).bytes(256 * 1024)).unwrap();
        // Linger 0: close sends RST instead of FIN, with echo still in flight.
        socket2::SockRef::from(&rude)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(rude);
        if let Some(client) = bystander.as_mut() {
            ping(client, b"during");
        }
        ping(&mut server.connect(), b"after the reset");
        assert!(server.is_running(), "{model}: died after a client reset");
    }
}

#[test]
fn unclean_endings_are_counted_in_one_line_at_exit_and_never_logged_per_connection() {
    const RUDE: usize = 3;
    for model in models() {
        let mut server = Server::start(&model, &[]);
        server.wait_for_workers();
        for _ in 0..RUDE {
            let mut rude = server.connect();
            ping(&mut rude, b"served");
            let serving = tree_sockets(server.pid());
            rude.write_all(&[7u8; 4096]).unwrap();
            // Linger 0: close sends RST instead of FIN, with its echo unread.
            socket2::SockRef::from(&rude)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(rude);
            // The server closes its side once it has seen (and counted) the reset.
            let closed = wait_until(IO_TIMEOUT, || {
                (tree_sockets(server.pid()) < serving).then_some(())
            });
            assert!(closed.is_some(), "{model}: never closed a reset connection");
        }
        let mut polite = server.connect();
        ping(&mut polite, b"clean");
        polite.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(polite.read(&mut [0u8; 16]).unwrap(), 0, "{model}: no EOF");
        let (status, _) = server.terminate(Duration::from_secs(2));
        assert!(status.success(), "{model}: {status}");
        let stderr = server.final_stderr();
        assert_eq!(
            stderr.lines().collect::<Vec<_>>(),
            [format!(
                "{}: unclean endings: {RUDE} reset, 0 broken pipe, 0 eof mid-message, 0 other",
                program(&model)
            )],
            "{model}"
        );
    }
}

#[test]
fn a_server_started_under_a_low_soft_limit_raises_it_and_holds_more_clients() {
    const SOFT: u32 = 64;
    const CLIENTS: usize = 200;
    for model in models() {
        let server = Server::start_with_soft_nofile(&model, SOFT);
        let (soft, hard) = nofile_limits(server.pid()).unwrap();
        assert_eq!(soft, hard, "{model}: soft limit left at {soft}");
        if !holds_every_client_in_one_process(&model)
            || clients_at_once(&model) != ClientsAtOnce::Any
            || hard < 2 * CLIENTS as u64
        {
            // Each client in its own process, or a few at a time: no one process holds them.
            continue;
        }
        let mut crowd: Vec<_> = (0..CLIENTS).map(|_| server.connect()).collect();
        for (i, client) in crowd.iter_mut().enumerate() {
            ping(client, format!("client {i}").as_bytes());
        }
        assert!(
            !server.stderr().contains("Too many open files"),
            "{model}: {}",
            server.stderr()
        );
    }
}

/// Connects to `server` through a proxy with these faults; the client has the usual timeouts.
fn through(server: &Server, faults: Faults) -> (FaultProxy, std::net::TcpStream) {
    let proxy = FaultProxy::start(server.addr, faults).unwrap();
    let client = std::net::TcpStream::connect_timeout(&proxy.addr, IO_TIMEOUT).unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    client.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    (proxy, client)
}

#[test]
fn every_model_echoes_byte_exact_through_sliced_stalled_and_held_back_streams() {
    let sliced = |slice, pace| Direction {
        slice,
        pace,
        stall: None,
    };
    let cases = [
        (
            "1-byte pieces both ways, paced",
            Faults {
                to_server: sliced(Slice::Bytes1, Duration::from_micros(50)),
                to_client: sliced(Slice::Bytes1, Duration::ZERO),
                ..Faults::default()
            },
            2 * 1024,
        ),
        (
            "random pieces both ways",
            Faults {
                to_server: sliced(Slice::Random { max: 700 }, Duration::from_micros(20)),
                to_client: sliced(Slice::Random { max: 1500 }, Duration::ZERO),
                ..Faults::default()
            },
            64 * 1024,
        ),
        (
            "a 200 ms stall mid-stream",
            Faults {
                to_server: Direction {
                    stall: Some((10 * 1024, Duration::from_millis(200))),
                    ..Direction::default()
                },
                ..Faults::default()
            },
            32 * 1024,
        ),
        (
            "answers held back 300 ms behind a 4 KiB window (the server's writes come back short)",
            Faults {
                hold_answers: Some(Duration::from_millis(300)),
                ..Faults::default()
            },
            256 * 1024,
        ),
    ];
    for model in models() {
        let server = Server::start(&model, &[]);
        for (i, (what, faults, size)) in cases.iter().enumerate() {
            let (_proxy, client) = through(&server, *faults);
            let data = Arc::new(Rng::new(40 + i as u64).bytes(*size));
            let echo = exchange(client, Arc::clone(&data), 16 * 1024, i as u64);
            assert!(echo == *data, "{model}, {what}: echo differs");
        }
    }
}

#[test]
fn a_connection_reset_mid_stream_by_the_network_is_counted_and_service_goes_on() {
    for model in models() {
        let mut server = Server::start(&model, &[]);
        server.wait_for_workers();
        let faults = Faults {
            reset_after: Some(8 * 1024),
            ..Faults::default()
        };
        let (proxy, mut client) = through(&server, faults);
        ping(&mut client, b"served first");
        let serving = tree_sockets(server.pid());
        // The proxy passes 8 KiB, then resets both sides.
        let _ = client.write_all(&[5u8; 32 * 1024]);
        let closed = wait_until(IO_TIMEOUT, || {
            (tree_sockets(server.pid()) < serving).then_some(())
        });
        assert!(
            closed.is_some(),
            "{model}: never closed the reset connection"
        );
        assert_eq!(proxy.resets(), 1);
        ping(&mut server.connect(), b"after the reset");
        let (status, _) = server.terminate(Duration::from_secs(2));
        assert!(status.success(), "{model}: {status}");
        assert_eq!(
            server.final_stderr().lines().collect::<Vec<_>>(),
            [format!(
                "{}: unclean endings: 1 reset, 0 broken pipe, 0 eof mid-message, 0 other",
                program(&model)
            )],
            "{model}"
        );
    }
}

#[test]
fn sigterm_exits_zero_within_two_seconds_with_a_client_connected() {
    for model in models() {
        let mut server = Server::start(&model, &[]);
        let mut client = server.connect();
        ping(&mut client, b"hello");
        let (status, took) = server.terminate(Duration::from_secs(2));
        assert!(
            status.success(),
            "{model}: exit status {status} after SIGTERM"
        );
        assert!(
            took <= Duration::from_secs(2),
            "{model}: took {took:?} to exit"
        );
        // The connection was closed: EOF or reset, never a hang.
        let mut buf = [0u8; 16];
        match client.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("{model}: client saw {other:?} after the server exited"),
        }
    }
}

#[test]
fn sigint_exits_zero_while_idle() {
    for model in models() {
        let mut server = Server::start(&model, &[]);
        nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGINT).unwrap();
        let status = wait_until(Duration::from_secs(2), || {
            (!server.is_running()).then_some(())
        });
        assert!(status.is_some(), "{model}: still running 2 s after SIGINT");
    }
}

/// The models that fork a child for every client: `fork-per-client`, `py-multiprocessing`.
fn forking_per_client() -> Vec<String> {
    models()
        .into_iter()
        .filter(|m| forks(m) && clients_at_once(m) == ClientsAtOnce::Any)
        .collect()
}

#[test]
fn a_process_per_client_reaps_every_child_after_fifty_connections() {
    for model in forking_per_client() {
        let server = Server::start(&model, &[]);
        for i in 0..50u32 {
            let mut client = server.connect();
            ping(&mut client, &i.to_be_bytes());
            // A child that has just exited is a zombie until the parent's SIGCHLD wake-up; a
            // few at once can be in that window on a busy machine, never a growing pile.
            let states = child_states(server.pid());
            assert!(
                states.iter().filter(|(_, s)| s == "Z").count() <= 4,
                "{model}: zombies piling up: {states:?}"
            );
        }
        // The last children are exiting as their clients leave; each must be reaped.
        let settled = wait_until(Duration::from_secs(5), || {
            children(server.pid()).is_empty().then_some(())
        });
        assert!(
            settled.is_some(),
            "{model}: children left behind: {:?}",
            child_states(server.pid())
        );
    }
}

#[test]
fn a_process_per_client_ends_and_reaps_children_on_sigterm() {
    for model in forking_per_client() {
        let mut server = Server::start(&model, &[]);
        let mut clients: Vec<_> = (0..5).map(|_| server.connect()).collect();
        for client in &mut clients {
            ping(client, b"hold");
        }
        let kids = children(server.pid());
        assert_eq!(kids.len(), 5, "{model}: one child per connected client");
        let (status, took) = server.terminate(Duration::from_secs(2));
        assert!(status.success(), "{model}: exit status {status}");
        assert!(took <= Duration::from_secs(2), "{model}: took {took:?}");
        // The clients are still connected, so a child still alive here was never ended.
        let alive: Vec<_> = kids.into_iter().filter(|&pid| is_alive(pid)).collect();
        assert!(
            alive.is_empty(),
            "{model}: children outlived the server: {alive:?}"
        );
    }
}

#[test]
fn a_thread_per_client_returns_to_its_baseline_thread_count() {
    let python = python_models(Transport::Tcp)
        .into_iter()
        .filter(|m| m == "py-threading");
    for model in std::iter::once("thread-per-client".to_owned()).chain(python) {
        let server = Server::start(&model, &[]);
        let baseline = proc_status(server.pid(), "Threads").unwrap();
        let mut clients: Vec<_> = (0..20).map(|_| server.connect()).collect();
        for client in &mut clients {
            ping(client, b"x");
        }
        let busy = proc_status(server.pid(), "Threads").unwrap();
        assert!(
            busy >= baseline + 20,
            "{model}: {busy} threads for 20 clients over {baseline}"
        );
        drop(clients);
        let settled = wait_until(Duration::from_secs(5), || {
            (proc_status(server.pid(), "Threads") == Some(baseline)).then_some(())
        });
        assert!(
            settled.is_some(),
            "{model}: threads stayed at {:?}, baseline {baseline}",
            proc_status(server.pid(), "Threads")
        );
    }
}

#[test]
fn running_out_of_descriptors_is_survived_and_service_resumes() {
    const NOFILE: u32 = 32;
    for model in models() {
        let mut server = Server::start_with_nofile(&model, NOFILE);
        // Twice as many clients as the server may hold descriptors: accept fails with EMFILE
        // for the rest, which wait in the backlog.
        let mut crowd: Vec<_> = (0..2 * NOFILE).map(|_| server.connect()).collect();
        for client in &mut crowd {
            client.write_all(b"x").unwrap();
        }
        if holds_every_client_in_one_process(&model) {
            let exhausted = wait_until(IO_TIMEOUT, || {
                server
                    .stderr()
                    .contains("Too many open files")
                    .then_some(())
            });
            assert!(exhausted.is_some(), "{model}: never ran out of descriptors");
        }
        // (The iterative server holds one client at a time, and where each client lives in a
        // process of its own no process runs out here; they must still serve after.)
        drop(crowd);
        ping(&mut server.connect(), b"served again");
        assert!(server.is_running(), "{model}: died when out of descriptors");
    }
}

#[test]
fn a_client_that_never_reads_is_back_pressured_with_bounded_memory() {
    const CEILING: usize = 64 << 20;
    let chunk = Rng::new(5).bytes(64 * 1024);
    for model in models() {
        let server = Server::start(&model, &[]);
        let mut hog = server.connect();
        // Served and warmed up: the thread, process or task exists before the baseline.
        ping(&mut hog, b"warm");
        // Anonymous memory: what unsent echo would grow. (RSS also counts the program's pages
        // a forked worker touches for the first time: 1.4 MiB of them seen for prefork.)
        let before = tree_anon_kib(server.pid());
        hog.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut sent = 0;
        while sent < CEILING {
            match hog.write(&chunk) {
                Ok(n) => sent += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => panic!("{model}: write failed after {sent} bytes: {e}"),
            }
        }
        assert_back_pressured(&server, sent < CEILING, before);
        // Still serving others (in series for the iterative server: after this client leaves).
        if serves_one_at_a_time(&model) {
            drop(hog);
        }
        ping(&mut server.connect(), b"others still served");
    }
}

#[test]
fn max_conns_closes_connections_beyond_the_cap_at_once() {
    for model in models() {
        if serves_one_at_a_time(&model) {
            // One connection at a time by design: the others wait in the backlog, never over
            // a cap.
            continue;
        }
        // (prefork serves at most --workers clients at once; the cap of 2 is below the tests'
        // 4 workers, so it applies there too.)
        let server = Server::start(&model, &["--max-conns", "2"]);
        let mut first = server.connect();
        let mut second = server.connect();
        ping(&mut first, b"1");
        ping(&mut second, b"2");
        let mut third = server.connect();
        let mut buf = [0u8; 8];
        match third.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("{model}: third connection over a cap of 2 saw {other:?}"),
        }
        ping(&mut second, b"still served");
        drop(first);
        // The freed slot is reused once the server has seen the first client leave.
        let served = wait_until(IO_TIMEOUT, || {
            let mut next = server.connect();
            next.write_all(b"in").ok()?;
            let mut echo = [0u8; 2];
            next.read_exact(&mut echo).ok().filter(|()| &echo == b"in")
        });
        assert!(
            served.is_some(),
            "{model}: the slot of a closed connection was not reused"
        );
    }
}

#[test]
fn prefork_restarts_a_dead_worker_and_ends_all_on_sigterm() {
    let mut server = Server::start("prefork", &[]);
    // The workers are forked right after the `listening on` line.
    let workers = wait_until(IO_TIMEOUT, || {
        let workers = children(server.pid());
        (workers.len() == 4).then_some(workers)
    })
    .expect("--workers 4 forks 4 workers up front");
    nix::sys::signal::kill(workers[0], nix::sys::signal::Signal::SIGKILL).unwrap();
    let restarted = wait_until(IO_TIMEOUT, || {
        let now = children(server.pid());
        (now.len() == 4 && !now.contains(&workers[0])).then_some(now)
    });
    let now = restarted.expect("the dead worker was not replaced");
    ping(&mut server.connect(), b"served after a restart");
    let (status, took) = server.terminate(Duration::from_secs(2));
    assert!(
        status.success() && took <= Duration::from_secs(2),
        "{status} after {took:?}"
    );
    let alive: Vec<_> = now.into_iter().filter(|&pid| is_alive(pid)).collect();
    assert!(alive.is_empty(), "workers outlived the server: {alive:?}");
}

#[test]
fn thread_pool_serves_at_most_its_workers_at_once_and_queues_the_rest() {
    let server = Server::start("thread-pool", &["--workers", "2"]);
    let mut first = server.connect();
    let mut second = server.connect();
    ping(&mut first, b"1");
    ping(&mut second, b"2");
    // Both workers are busy: a third client is accepted but waits in the pool's queue.
    let mut third = server.connect();
    third.write_all(b"3").unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut echo = [0u8; 1];
    match third.read(&mut echo) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a third client was served by a pool of 2: {other:?}"),
    }
    // When a worker is free, the queued client is served.
    drop(first);
    third.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    third.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"3");
}

#[test]
fn mio_multi_runs_one_loop_thread_per_worker() {
    let server = Server::start("mio-multi", &["--workers", "3"]);
    // The main thread waits for the stop signal; each worker is a loop with its own listener.
    let threads = wait_until(IO_TIMEOUT, || {
        (proc_status(server.pid(), "Threads") == Some(4)).then_some(())
    });
    assert!(
        threads.is_some(),
        "{:?} threads for 3 workers",
        proc_status(server.pid(), "Threads")
    );
    let mut clients: Vec<_> = (0..12).map(|_| server.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        ping(client, format!("client {i}").as_bytes());
    }
}
