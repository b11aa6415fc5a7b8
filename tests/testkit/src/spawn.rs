//! Starting a server and waiting for its `listening on` line: the one way the servers' tests,
//! the root tests and the benches start a server, so none of them sleeps for readiness and
//! none parses the line on its own.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Starts `cmd` with its stdout piped and waits at most `limit` for its first line, which must
/// be a `listening on` line ([`echo_server::listen::parse_listening`]); returns the child and
/// the address. stdout is drained after that line, so that a chatty server never blocks on a
/// full pipe; stdin and stderr are as `cmd` set them. On failure the child is killed and
/// reaped, and the error says what came instead of the line.
pub fn spawn_listening(cmd: &mut Command, limit: Duration) -> Result<(Child, SocketAddr), String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let Some(stdout) = child.stdout.take() else {
        return Err("no stdout to read".to_owned());
    };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next().and_then(Result::ok));
        for _ in lines {}
    });
    let failed = |child: &mut Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        Err(why)
    };
    match rx.recv_timeout(limit) {
        Ok(Some(line)) => match echo_server::listen::parse_listening(&line) {
            Some(addr) => Ok((child, addr)),
            None => failed(
                &mut child,
                format!("first line {line:?}, not `listening on`"),
            ),
        },
        Ok(None) => failed(
            &mut child,
            "stdout ended before a `listening on` line".to_owned(),
        ),
        Err(_) => failed(
            &mut child,
            format!("no `listening on` line within {limit:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_line_gives_the_address_and_anything_else_an_error() {
        let (mut child, addr) = spawn_listening(
            Command::new("sh").args(["-c", "echo 'listening on 127.0.0.1:7'; echo more"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(addr, "127.0.0.1:7".parse().unwrap());
        assert!(child.wait().unwrap().success());
        let err = spawn_listening(
            Command::new("sh").args(["-c", "echo hello"]),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(err.contains("\"hello\""), "{err}");
        let err = spawn_listening(
            Command::new("sh").args(["-c", "exec sleep 30"]),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(err.contains("within"), "{err}");
    }
}
