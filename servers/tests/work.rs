//! Echo with a cost (`--work`), checked against every TCP model, the Python ones included,
//! through the real `echo-server` binary or script with a plain client of its own (loadgen's
//! `--work` drives them in the root tests): requests come back byte-exact, pipelined requests
//! in order, a bad header closes its connection only, a millisecond of CPU costs the server a
//! millisecond, waits are served together by every model but the iterative ones, SIGTERM ends
//! work and waits in progress; and with `--offload pool` the loops stay free.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use echo_server::python;
use echo_server::work::{header, HEADER, MAX_CPU_NS, MAX_LEN, MAX_WAIT_US};
use nix::unistd::Pid;

use common::{
    assert_refused, models, program, serves_one_at_a_time, tree, Rng, Server, IO_TIMEOUT,
};

/// A request of `len` bytes in all asking for `cpu_ns` of CPU and a wait of `wait_us`, its
/// payload random from `seed`.
fn request(len: usize, cpu_ns: u32, wait_us: u32, seed: u64) -> Vec<u8> {
    let mut r = header(len as u32, cpu_ns, wait_us).to_vec();
    r.extend(Rng::new(seed).bytes(len.saturating_sub(HEADER)));
    r
}

/// Sends `requests` in one write and reads exactly their bytes back.
fn round_trip(stream: &mut TcpStream, requests: &[u8]) {
    let mut writer = stream.try_clone().unwrap();
    let sent = requests.to_vec();
    let sender = thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut back = vec![0u8; requests.len()];
    stream.read_exact(&mut back).unwrap();
    sender.join().unwrap();
    assert!(back == requests, "the answer differs from the requests");
}

/// Whether the server closed `stream` (EOF or reset) before it answered anything.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Err(e) => matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        Ok(_) => false,
    }
}

/// CPU time of `pid` and its descendants so far, children already reaped included.
fn tree_cpu(pid: Pid) -> Duration {
    let ticks = |pid: Pid, fields: &[usize]| -> u64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return 0;
        };
        // The fields after the command's closing parenthesis, counted from `state` (3).
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields_after: Vec<&str> = rest.split_whitespace().collect();
        fields
            .iter()
            .filter_map(|&f| fields_after.get(f - 3)?.parse::<u64>().ok())
            .sum()
    };
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    let own: u64 = tree(pid).into_iter().map(|p| ticks(p, &[14, 15])).sum();
    let reaped = ticks(pid, &[16, 17]);
    Duration::from_secs_f64((own + reaped) as f64 / hz as f64)
}

#[test]
fn requests_come_back_byte_exact_and_pipelined_requests_in_order() {
    for model in models() {
        let server = Server::start(&model, &["--work"]);
        let mut client = server.connect();
        // The smallest request, one past a read buffer, and the largest, pipelined.
        let mut requests = request(HEADER, 0, 0, 1);
        requests.extend(request(100, 10_000, 0, 2));
        requests.extend(request(70_000, 0, 500, 3));
        requests.extend(request(MAX_LEN, 0, 0, 4));
        round_trip(&mut client, &requests);
        // Then one at a time, and a half-close: the server closes after its answers.
        for seed in 5..25 {
            round_trip(&mut client, &request(64, 0, 0, seed));
        }
        client.shutdown(Shutdown::Write).unwrap();
        assert!(
            closed_by_server(&mut client),
            "{model}: no EOF after half-close"
        );
    }
}

#[test]
fn each_bad_header_closes_its_connection_only_and_is_counted() {
    let mut bad_magic = request(64, 0, 0, 1);
    bad_magic[3] = b'2';
    let bad = [
        bad_magic,
        request(HEADER - 1, 0, 0, 2)[..HEADER].to_vec(),
        request(MAX_LEN + 1, 0, 0, 3)[..HEADER].to_vec(),
        request(64, MAX_CPU_NS + 1, 0, 4),
        request(64, 0, MAX_WAIT_US + 1, 5),
    ];
    for model in models() {
        let mut server = Server::start(&model, &["--work"]);
        // The iterative server serves one connection at a time: no bystander can stay open.
        let mut bystander = (!serves_one_at_a_time(&model)).then(|| server.connect());
        for (i, header) in bad.iter().enumerate() {
            let mut offender = server.connect();
            offender.write_all(header).unwrap();
            assert!(
                closed_by_server(&mut offender),
                "{model}: bad header {i} kept open"
            );
            let mut fresh = server.connect();
            let client = bystander.as_mut().unwrap_or(&mut fresh);
            round_trip(client, &request(80, 0, 0, 10 + i as u64));
        }
        drop(bystander);
        let (status, _) = server.terminate(Duration::from_secs(2));
        assert!(status.success(), "{model}: {status}");
        let said = server.final_stderr();
        assert!(
            said.contains(&format!(
                "{}: work: 1 bad magic, 2 length out of range, 2 cost over the caps",
                program(&model)
            )),
            "{model}: {said}"
        );
        assert!(said.contains("work: 1 ms of CPU = "), "{model}: {said}");
    }
}

#[test]
fn a_millisecond_of_cpu_per_request_costs_the_server_a_millisecond() {
    const REQUESTS: u32 = 200;
    for model in models() {
        let server = Server::start(&model, &["--work"]);
        let mut client = server.connect();
        // The connection is being served (a forked child exists) before the count starts.
        round_trip(&mut client, &request(64, 0, 0, 0));
        let before = tree_cpu(server.pid());
        let requests: Vec<u8> = (0..REQUESTS)
            .flat_map(|i| request(64, 1_000_000, 0, u64::from(i)))
            .collect();
        round_trip(&mut client, &requests);
        let spent = tree_cpu(server.pid()) - before;
        let asked = Duration::from_millis(u64::from(REQUESTS));
        let ratio = spent.as_secs_f64() / asked.as_secs_f64();
        assert!(
            (0.7..=1.3).contains(&ratio),
            "{model}: {REQUESTS} requests of 1 ms of CPU cost the server {spent:?} ({})",
            server
                .stderr()
                .lines()
                .find(|l| l.starts_with("work:"))
                .unwrap_or("")
        );
    }
}

#[test]
fn waits_are_served_together_except_by_the_iterative_server() {
    const CLIENTS: usize = 8;
    const WAIT: Duration = Duration::from_millis(20);
    for model in models() {
        let server = Server::start(&model, &["--work", "--workers", "8"]);
        let clients: Vec<TcpStream> = (0..CLIENTS).map(|_| server.connect()).collect();
        let answered: Vec<Instant> = thread::scope(|s| {
            let handles: Vec<_> = clients
                .into_iter()
                .enumerate()
                .map(|(i, mut client)| {
                    s.spawn(move || {
                        round_trip(
                            &mut client,
                            &request(64, 0, WAIT.as_micros() as u32, i as u64),
                        );
                        Instant::now()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // A request's wait ends before its answer arrives: answers that arrive less than a
        // wait apart were waited on together. Three quarters of it leave room for the clients'
        // own scheduling.
        let together = answered
            .iter()
            .map(|&first| {
                let window = first..first + WAIT * 3 / 4;
                answered.iter().filter(|&&t| window.contains(&t)).count()
            })
            .max()
            .unwrap_or(0);
        if serves_one_at_a_time(&model) {
            assert_eq!(
                together, 1,
                "{model}: waits of one client at a time overlapped"
            );
        } else {
            assert!(
                together >= CLIENTS / 2,
                "{model}: at most {together} of {CLIENTS} waits overlapped"
            );
        }
    }
}

#[test]
fn sigterm_ends_the_server_within_2_s_during_cpu_work_and_during_a_wait() {
    let long_cpu = request(64, MAX_CPU_NS, 0, 2);
    let long_wait = request(64, 0, MAX_WAIT_US, 3);
    for model in models() {
        for long in [&long_cpu, &long_wait] {
            let mut server = Server::start(&model, &["--work"]);
            let mut client = server.connect();
            // A quick request and the long one behind it: once the quick one is answered,
            // the long one is being served.
            let quick = request(32, 0, 0, 1);
            let mut both = quick.clone();
            both.extend_from_slice(long);
            client.write_all(&both).unwrap();
            let mut back = vec![0u8; quick.len()];
            client.read_exact(&mut back).unwrap();
            assert_eq!(back, quick, "{model}");
            let (status, took) = server.terminate(Duration::from_secs(2));
            assert!(status.success(), "{model}: {status} after {took:?}");
        }
    }
}

#[test]
fn work_is_refused_with_tls_and_by_udp_models() {
    for args in [
        &[
            "mio",
            "--work",
            "--tls",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
        ][..],
        &["udp-mio", "--work"][..],
    ] {
        assert_refused(&[args, &["--addr", "127.0.0.1:0"]].concat(), "--work");
    }
}

/// The models that can hand their CPU work to a pool (`--offload pool`).
fn offloading_models() -> Vec<String> {
    models()
        .into_iter()
        .filter(|m| match python::find(m) {
            Some(python) => python.offloads,
            None => echo_server::Model::from_name(m).is_some_and(|m| m.offloads()),
        })
        .collect()
}

#[test]
fn with_a_pool_every_loop_answers_byte_exact_and_in_order() {
    let models = offloading_models();
    assert!(models.len() >= 6, "{models:?}");
    for model in models {
        let mut server = Server::start(&model, &["--work", "--offload", "pool"]);
        let mut client = server.connect();
        let mut requests = request(100, 50_000, 0, 1);
        requests.extend(request(70_000, 200_000, 500, 2));
        requests.extend(request(HEADER, 0, 0, 3));
        requests.extend(request(64, 100_000, 0, 4));
        round_trip(&mut client, &requests);
        for seed in 5..25 {
            round_trip(&mut client, &request(64, 20_000, 0, seed));
        }
        client.shutdown(Shutdown::Write).unwrap();
        assert!(
            closed_by_server(&mut client),
            "{model}: no EOF after half-close"
        );
        let (status, _) = server.terminate(Duration::from_secs(2));
        assert!(status.success(), "{model}: {status}");
        let said = server.final_stderr();
        let pool = format!(" ({model}+pool)");
        assert!(
            said.contains("work: CPU work on a pool of ") && said.contains(&pool),
            "{model}: {said}"
        );
    }
}

/// Whether `stream` has bytes to read within `limit`.
fn readable_within(stream: &TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let ready = matches!(stream.peek(&mut [0u8; 1]), Ok(n) if n > 0);
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    ready
}

#[test]
fn a_heavy_request_holds_up_the_loop_inline_and_not_with_a_pool() {
    for model in offloading_models() {
        for pooled in [false, true] {
            let mut args = vec!["--work", "--workers", "1"];
            if pooled {
                args.extend(["--offload", "pool", "--offload-threads", "1"]);
            }
            let server = Server::start(&model, &args);
            let (mut heavy, mut light) = (server.connect(), server.connect());
            round_trip(&mut light, &request(32, 0, 0, 1));
            round_trip(&mut heavy, &request(32, 0, 0, 2));
            // A quick request and 400 ms of CPU behind it: once the quick one is answered, the
            // heavy one is being worked on.
            let quick = request(32, 0, 0, 3);
            let long = request(48, 400_000_000, 0, 4);
            heavy
                .write_all(&[quick.clone(), long.clone()].concat())
                .unwrap();
            let mut back = vec![0u8; quick.len()];
            heavy.read_exact(&mut back).unwrap();
            // Meanwhile a request of no cost on the other connection. Inline, the heavy answer
            // was written before the light one (it is at most in the kernel's queues when the
            // light one arrives); with a pool, the heavy work goes on for hundreds of ms.
            round_trip(&mut light, &request(32, 0, 0, 5));
            let heavy_done = readable_within(&heavy, Duration::from_millis(100));
            let label = if pooled {
                format!("{model}+pool")
            } else {
                model.clone()
            };
            if pooled {
                assert!(
                    !heavy_done,
                    "{label}: the light request waited for the heavy one"
                );
            } else {
                assert!(
                    heavy_done,
                    "{label}: the light request overtook inline CPU work"
                );
            }
            let mut back = vec![0u8; long.len()];
            heavy.read_exact(&mut back).unwrap();
            assert_eq!(back, long, "{label}");
        }
    }
}

#[test]
fn sigterm_ends_the_server_within_2_s_while_the_pool_works() {
    for model in offloading_models() {
        let mut server = Server::start(&model, &["--work", "--offload", "pool"]);
        let mut client = server.connect();
        let quick = request(32, 0, 0, 1);
        let long = request(64, MAX_CPU_NS, 0, 2);
        client.write_all(&[quick.clone(), long].concat()).unwrap();
        let mut back = vec![0u8; quick.len()];
        client.read_exact(&mut back).unwrap();
        let (status, took) = server.terminate(Duration::from_secs(2));
        assert!(status.success(), "{model}: {status} after {took:?}");
    }
}

#[test]
fn offload_is_refused_without_work_without_a_loop_and_threads_without_a_pool() {
    for args in [
        &["mio", "--offload", "pool"][..],
        &["thread-per-client", "--work", "--offload", "pool"][..],
        &["blocking", "--work", "--offload", "inline"][..],
        &["mio", "--work", "--offload-threads", "2"][..],
        &[
            "mio",
            "--work",
            "--offload",
            "inline",
            "--offload-threads",
            "2",
        ][..],
        &["mio", "--work", "--offload", "elsewhere"][..],
    ] {
        assert_refused(&[args, &["--addr", "127.0.0.1:0"]].concat(), "--offload");
    }
}
