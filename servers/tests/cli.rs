//! The command-line contract of `echo-server`: names, errors, exit codes.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_refused, ping, run, Server};
use echo_server::models::{Model, Transport};

#[test]
fn list_names_the_five_required_models() {
    let (code, stdout, _) = run(&["--list"]);
    assert_eq!(code, Some(0));
    let names: Vec<_> = stdout.lines().collect();
    for required in [
        "blocking",
        "thread-per-client",
        "fork-per-client",
        "mio",
        "tokio",
    ] {
        assert!(
            names.contains(&required),
            "{required} missing from {names:?}"
        );
    }
}

#[test]
fn bad_arguments_give_one_line_naming_the_argument_and_exit_2() {
    for (args, names) in [
        (&["no-such-model"][..], "MODEL"),
        (&[][..], "MODEL"),
        (&["mio", "--workers", "0"][..], "--workers"),
        (&["mio", "--max-conns", "lots"][..], "--max-conns"),
        (&["mio", "--addr", "localhost"][..], "--addr"),
        (&["mio", "--frobnicate"][..], "--frobnicate"),
    ] {
        assert_refused(args, names);
    }
}

#[test]
fn an_address_in_use_is_one_line_naming_addr_and_exit_1() {
    let server = Server::start("mio", &[]);
    let (code, _, stderr) = run(&["mio", "--addr", &server.addr.to_string()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.contains("--addr") && stderr.contains("in use"),
        "{stderr:?}"
    );
    // The first server is untouched.
    ping(&mut server.connect(), b"still mine");
}

#[test]
fn io_uring_refusal_is_one_line_and_exit_1() {
    if common::io_uring_allowed() {
        // The kernel allows io_uring here: the models serve, as the echo tests check.
        let server = Server::start("io-uring", &[]);
        ping(&mut server.connect(), b"completion-based");
        let server = Server::start("udp-io-uring", &[]);
        let client = server.udp_client();
        client.send(b"completion-based").unwrap();
        assert_eq!(client.recv(&mut [0u8; 32]).unwrap(), 16);
        return;
    }
    for model in ["io-uring", "udp-io-uring"] {
        let (code, _, stderr) = run(&[model, "--addr", "127.0.0.1:0"]);
        assert_eq!(code, Some(1), "{model}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{model}: {stderr:?}");
        assert!(
            stderr.contains("io_uring is not available"),
            "{model}: {stderr:?}"
        );
    }
}

#[test]
fn tls_arguments_that_cannot_work_are_one_line_naming_the_flag_and_exit_2() {
    let dir = std::env::temp_dir().join(format!("echobench-cli-tls-{}", std::process::id()));
    let (code, stdout, stderr) = run(&["--gen-cert", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("cert.pem") && stdout.contains("key.pem"),
        "{stdout}"
    );
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let no_tls: Vec<&str> = echo_server::Model::ALL
        .iter()
        .filter(|m| !m.supports_tls())
        .map(|m| m.name())
        .collect();
    assert!(no_tls.contains(&"io-uring") && no_tls.contains(&"udp-mio"));
    let mut cases: Vec<(Vec<&str>, &str)> = no_tls
        .iter()
        .map(|&m| {
            (
                vec![m, "--tls", "--tls-cert", cert, "--tls-key", key],
                "--tls",
            )
        })
        .collect();
    cases.extend([
        (vec!["mio", "--tls"], "--gen-cert"),
        (vec!["mio", "--tls", "--tls-cert", cert], "--tls-key"),
        (
            vec![
                "mio",
                "--tls",
                "--tls-cert",
                "/no/such.pem",
                "--tls-key",
                key,
            ],
            "--gen-cert",
        ),
        (
            vec![
                "mio",
                "--tls",
                "--tls-cert",
                cert,
                "--tls-key",
                "/no/such.pem",
            ],
            "--tls-key",
        ),
        // A certificate where the key should be: no key in the file.
        (
            vec!["mio", "--tls", "--tls-cert", cert, "--tls-key", cert],
            "--tls-key",
        ),
        (
            vec!["mio", "--tls", "--tls-cert", key, "--tls-key", key],
            "--tls-cert",
        ),
        (vec!["mio", "--tls-cert", cert], "--tls"),
        (
            vec!["mio", "--tls", "--tls-handshake-timeout", "soon"],
            "--tls-handshake-timeout",
        ),
        (
            vec!["--gen-cert", dir.to_str().unwrap(), "--san", "ünïcode"],
            "--san",
        ),
        (vec!["--san", "x.test"], "--gen-cert"),
    ]);
    for (args, names) in cases {
        assert_refused(&args, names);
    }
    // A directory that cannot be made: exit 1, one line naming --gen-cert.
    let (code, _, stderr) = run(&["--gen-cert", &format!("{cert}/sub")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("--gen-cert"), "{stderr:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sockets bound to 127.0.0.1:`port` in `/proc/net/tcp` (listening ones) or
/// `/proc/net/udp`.
fn bound_on(port: u16, transport: Transport) -> usize {
    let (table, listening) = match transport {
        Transport::Tcp => ("/proc/net/tcp", Some("0A")),
        Transport::Udp => ("/proc/net/udp", None),
    };
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string(table)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 3 && f[1] == local)
        .filter(|f| listening.is_none_or(|state| f[3] == state))
        .count()
}

#[test]
fn reuseport_siblings_are_all_bound_when_the_listening_line_appears() {
    // A client that connects as soon as the line appears must find every sibling: one bound
    // later never gets the connections made before it (mio-multi then served 16 clients on
    // one loop of two).
    for model in Model::ALL.iter().filter(|m| m.reuses_port()) {
        let server = Server::start(model.name(), &["--workers", "3"]);
        let bound = bound_on(server.addr.port(), model.transport());
        assert_eq!(
            bound,
            3,
            "{}: sockets bound at its listening line",
            model.name()
        );
    }
}
