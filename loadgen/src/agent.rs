//! Agent mode: loadgen run by a coordinator on another host (through a launcher such as
//! `ssh {host} --`), or on this one by direct exec, with the same protocol either way.
//!
//! - `loadgen agent-hello` answers the coordinator's checks before a run: a `hello` frame
//!   (protocol, version, report schema, the host's clock), then a `clock` frame with the
//!   host's clock for every line the coordinator writes, so that it can measure the clock
//!   offset against the round trip; it ends at stdin's end.
//! - `loadgen --agent ...` runs the load (usually `--start-at`, `--conn-offset`,
//!   `--conn-total`) and writes nothing on stdout but two frames: the JSON report and the
//!   interval log. It stops at once when its stdin ends: ssh without a terminal delivers no
//!   signal when the coordinator goes, but the connection's end closes stdin.
//!
//! A frame is a header line, `echobench-agent PROTOCOL KIND LENGTH`, then LENGTH bytes and a
//! newline: a body may hold any bytes, and nothing else a launcher prints is taken for one.

use std::io::{self, BufRead, Read, Write};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::report::SCHEMA_VERSION;

/// The version of the frames and of the agent's flags.
pub const PROTOCOL: u32 = 1;

/// What every frame's header line starts with.
const HEADER: &str = "echobench-agent";

/// Exit status of an agent whose stdin ended before its run did.
pub const EXIT_STDIN_CLOSED: u8 = 3;

/// The largest frame body read (an interval log of a long run is a few MiB).
const MAX_FRAME: usize = 256 << 20;

/// The `hello` frame: who answers, and its clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// loadgen's version.
    pub version: String,
    /// The JSON report's schema.
    pub schema_version: u32,
    /// The host's wall clock, ns since the Unix epoch.
    pub now_ns: u64,
    /// The host's name as it knows itself: agents on one machine share its CPUs.
    #[serde(default)]
    pub machine: String,
}

impl Hello {
    /// This build's hello, now.
    pub fn now() -> Hello {
        Hello {
            protocol: PROTOCOL,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            schema_version: SCHEMA_VERSION,
            now_ns: crate::report::unix_ns(SystemTime::now()),
            machine: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    /// Why this agent cannot work with this coordinator (a different protocol, version or
    /// schema); `None` when it can.
    pub fn mismatch(&self) -> Option<String> {
        let mine = Hello::now();
        if (self.protocol, &self.version, self.schema_version)
            == (mine.protocol, &mine.version, mine.schema_version)
        {
            return None;
        }
        Some(format!(
            "it runs loadgen {} (agent protocol {}, report schema {}), this is {} ({}, {})",
            self.version,
            self.protocol,
            self.schema_version,
            mine.version,
            mine.protocol,
            mine.schema_version
        ))
    }
}

/// Writes one frame and flushes it.
pub fn write_frame(out: &mut impl Write, kind: &str, body: &[u8]) -> io::Result<()> {
    writeln!(out, "{HEADER} {PROTOCOL} {kind} {}", body.len())?;
    out.write_all(body)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Reads the next frame: `(kind, body)`, or `None` at the end of the stream. Lines before a
/// header (a launcher's banner) are skipped; a header of another protocol is an error.
pub fn read_frame(input: &mut impl BufRead) -> io::Result<Option<(String, Vec<u8>)>> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    loop {
        // Any bytes, any length: what a launcher prints is read past, never taken for a frame.
        let Some(bytes) = crate::lines::read_capped(input, crate::lines::MAX_LINE)? else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&bytes);
        let Some(rest) = line.trim_end().strip_prefix(HEADER) else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let [protocol, kind, length] = words[..] else {
            return Err(bad(format!("a bad frame header: {:?}", line.trim_end())));
        };
        if protocol != PROTOCOL.to_string() {
            return Err(bad(format!(
                "agent protocol {protocol}, this coordinator speaks {PROTOCOL}"
            )));
        }
        let length: usize = length
            .parse()
            .ok()
            .filter(|&n| n <= MAX_FRAME)
            .ok_or_else(|| bad(format!("a bad frame length: {length:?}")))?;
        let mut body = vec![0; length + 1];
        input.read_exact(&mut body)?;
        body.pop();
        return Ok(Some((kind.to_owned(), body)));
    }
}

/// From now on, the end of stdin ends this process at once, exit status
/// [`EXIT_STDIN_CLOSED`], with one line on stderr.
pub fn stop_on_stdin_eof() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 512];
        let mut stdin = io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        // Not `eprintln!`: with the coordinator gone stderr may be a broken pipe too (ssh's),
        // and `eprintln!` would panic this thread instead of ending the process.
        let _ = writeln!(
            io::stderr(),
            "loadgen: agent: stdin closed (the coordinator is gone); stopping"
        );
        std::process::exit(i32::from(EXIT_STDIN_CLOSED));
    });
}

/// `loadgen agent-hello`: a `hello` frame, then a `clock` frame for every line read, until
/// stdin ends.
pub fn hello() -> io::Result<()> {
    let mut out = io::stdout().lock();
    let body = serde_json::to_vec(&Hello::now())?;
    write_frame(&mut out, "hello", &body)?;
    for line in io::stdin().lock().lines() {
        line?;
        let now = crate::report::unix_ns(SystemTime::now()).to_string();
        write_frame(&mut out, "clock", now.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_any_bytes_and_skip_what_a_launcher_prints_before_them() {
        let mut stream = b"Welcome to host b\n".to_vec();
        write_frame(&mut stream, "report", b"{\"a\":1}\nsecond line").expect("written");
        write_frame(&mut stream, "hlog", b"").expect("written");
        let mut input = &stream[..];
        let first = read_frame(&mut input).expect("read").expect("a frame");
        assert_eq!(first.0, "report");
        assert_eq!(first.1, b"{\"a\":1}\nsecond line");
        let second = read_frame(&mut input).expect("read").expect("a frame");
        assert_eq!((second.0.as_str(), second.1.len()), ("hlog", 0));
        assert!(read_frame(&mut input).expect("read").is_none());
    }

    #[test]
    fn a_banner_that_is_not_utf8_or_has_no_end_is_read_past() {
        let mut stream = b"Welcome \xff\xfe to host b\n".to_vec();
        stream.extend(std::iter::repeat_n(b'x', 3 * crate::lines::MAX_LINE));
        stream.push(b'\n');
        write_frame(&mut stream, "report", b"{}").expect("written");
        let mut input = &stream[..];
        let frame = read_frame(&mut input).expect("read").expect("a frame");
        assert_eq!((frame.0.as_str(), &frame.1[..]), ("report", &b"{}"[..]));
    }

    #[test]
    fn a_frame_of_another_protocol_or_cut_short_is_an_error() {
        let mut input = &b"echobench-agent 2 report 3\nabc\n"[..];
        let e = read_frame(&mut input).expect_err("protocol 2");
        assert!(e.to_string().contains("protocol 2"), "{e}");
        let mut input = &b"echobench-agent 1 report 30\nabc\n"[..];
        assert!(read_frame(&mut input).is_err());
    }

    #[test]
    fn a_hello_of_another_version_says_both() {
        let mut other = Hello::now();
        assert_eq!(other.mismatch(), None);
        other.version = "0.0.1".to_owned();
        let why = other.mismatch().expect("a mismatch");
        assert!(
            why.contains("0.0.1") && why.contains(env!("CARGO_PKG_VERSION")),
            "{why}"
        );
    }
}
