//! Starting a server and waiting for its `listening on` line: the one way the servers' tests,
//! the root tests and the benches start a server, so none of them sleeps for readiness and
//! none parses the line on its own.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A server that said where it listens.
#[derive(Debug)]
pub struct Listening {
    /// The server process.
    pub child: Child,
    /// The address of its `listening on` line.
    pub addr: SocketAddr,
    /// What it has written to stderr so far, where the command piped stderr (drained from the
    /// start, so that a chatty server never blocks on a full pipe); empty otherwise.
    pub stderr: Arc<Mutex<String>>,
    /// The thread draining stderr, until the pipe's end.
    drain: Option<JoinHandle<()>>,
}

impl Listening {
    /// Everything the server wrote to stderr: waits for the pipe's end, so call it once the
    /// server (and every process it started) has exited.
    pub fn stderr_to_end(&mut self) -> String {
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Starts `cmd` with its stdout piped and waits at most `limit` for its first line, which must
/// be a `listening on` line ([`echo_server::listen::parse_listening`]). stdout is drained after
/// that line, and stderr from the start where `cmd` pipes it; stdin is as `cmd` sets it. On
/// failure the child is killed and reaped, and the error says what came instead of the line.
pub fn spawn_listening(cmd: &mut Command, limit: Duration) -> Result<Listening, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let stderr = Arc::new(Mutex::new(String::new()));
    let drain = child.stderr.take().map(|mut pipe| {
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                if let Ok(mut sink) = sink.lock() {
                    sink.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        })
    });
    let (tx, rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
    }
    // Without stdout (never: it is piped above) the sender is gone, and that reads as stdout
    // ended: the child is then ended below like any other that did not say where it listens.
    let why = match rx.recv_timeout(limit) {
        Ok(Some(line)) => match echo_server::listen::parse_listening(&line) {
            Some(addr) => {
                return Ok(Listening {
                    child,
                    addr,
                    stderr,
                    drain,
                })
            }
            None => format!("first line {line:?}, not `listening on`"),
        },
        Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            "stdout ended before a `listening on` line".to_owned()
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            format!("no `listening on` line within {limit:?}")
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let said = stderr
        .lock()
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    match said.is_empty() {
        true => Err(why),
        false => Err(format!("{why}; stderr: {said}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]).stderr(Stdio::piped());
        cmd
    }

    #[test]
    fn a_listening_line_gives_the_address_and_stderr_is_kept() {
        let mut server = spawn_listening(
            &mut sh("echo said >&2; echo 'listening on 127.0.0.1:7'; echo more; echo end >&2"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(server.addr, "127.0.0.1:7".parse().unwrap());
        assert!(server.child.wait().unwrap().success());
        assert_eq!(server.stderr_to_end(), "said\nend\n");
    }

    #[test]
    fn anything_but_a_listening_line_is_an_error_that_says_what_came() {
        let err = spawn_listening(
            &mut sh("echo oops >&2; echo hello"),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(err.contains("\"hello\""), "{err}");
        let err = spawn_listening(&mut sh("exit 3"), Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("stdout ended"), "{err}");
        let err =
            spawn_listening(&mut sh("exec sleep 30"), Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("within"), "{err}");
    }
}
