//! The tutorials' own servers, in Python: the registry of the Python models, their scripts
//! (shipped inside the binaries, so that an installed echobench finds them), and the checks of
//! an interpreter that runs them.
//!
//! The scripts live in `servers/python/`, standard library only but for the optional
//! `py-twisted` and `py-gevent`. Each keeps `echo-server`'s contract (`--addr`, `--max-conns`,
//! the `listening on` line, `TCP_NODELAY`, partial reads and half-close, back-pressure, exit 0
//! on SIGTERM with children ended, one line of unclean endings at exit). They are not
//! `echo-server` models: `echobench compare --python` writes them out and runs them through
//! the path it runs external servers by.

use std::io;
use std::path::Path;
use std::process::Command;

use crate::chat::Sharing;
use crate::models::{ClientsAtOnce, Family, Transport};

/// The oldest Python the scripts are written for.
pub const MIN_VERSION: (u32, u32) = (3, 9);

/// What the registry knows of one Python model.
#[derive(Debug, Clone, Copy)]
pub struct PythonModel {
    /// Name in reports and on `--models`.
    pub name: &'static str,
    /// The script's file name.
    pub file: &'static str,
    /// The script.
    pub source: &'static str,
    /// Family, as the Rust models'.
    pub family: Family,
    /// Transport.
    pub transport: Transport,
    /// Clients served at the same time.
    pub clients_at_once: ClientsAtOnce,
    /// Whether clients are served in child processes.
    pub forks: bool,
    /// The Rust model built the same way, which reports set it against.
    pub counterpart: &'static str,
    /// The package it needs beyond the standard library, by its import name.
    pub needs: Option<&'static str>,
    /// What one client costs in memory where that is megabytes (a process per client): a
    /// comparison does not run a workload whose clients would need over half the machine's
    /// memory.
    pub bytes_per_client: Option<u64>,
    /// One line on how it works, for reports.
    pub summary: &'static str,
    /// Whether it hands `--work`'s CPU work to a pool with `--offload pool`, as the Rust event
    /// loops do.
    pub offloads: bool,
    /// How it shares its chat rooms (`--chat`), and one line on the way it does; `None` for
    /// `py-udp`, which serves no chat room.
    pub sharing: Option<(Sharing, &'static str)>,
}

/// The module every script imports: command line, listener, signals, counts.
pub const COMMON: (&str, &str) = ("echo_common.py", include_str!("../python/echo_common.py"));

/// A forked CPython child's own memory: 1.9 MB of private pages measured (PSS of 200 children
/// of Python 3.11 on x86-64, each echoing), plus its kernel task, page tables and socket.
const PYTHON_PROCESS_BYTES: u64 = 5 << 19;

const fn tcp(
    name: &'static str,
    file: &'static str,
    source: &'static str,
    family: Family,
    counterpart: &'static str,
    summary: &'static str,
    sharing: (Sharing, &'static str),
) -> PythonModel {
    PythonModel {
        name,
        file,
        source,
        family,
        transport: Transport::Tcp,
        clients_at_once: ClientsAtOnce::Any,
        forks: false,
        counterpart,
        needs: None,
        bytes_per_client: None,
        summary,
        offloads: false,
        sharing: Some(sharing),
    }
}

/// The Python models, in the order reports list them: the tutorials' path, then the optional
/// ones, then UDP.
pub const MODELS: [PythonModel; 8] = {
    use Family::{EventLoops, IterativeAndPools, Runtimes, ThreadsAndProcesses};
    [
        PythonModel {
            clients_at_once: ClientsAtOnce::One,
            ..tcp("py-iterative", "py_iterative.py", include_str!("../python/py_iterative.py"),
                IterativeAndPools, "blocking",
                "CPython, iterative: one client at a time, served to EOF with blocking socket calls",
                (Sharing::Alone, "one member at a time, alone in its room"))
        },
        tcp("py-threading", "py_threading.py", include_str!("../python/py_threading.py"),
            ThreadsAndProcesses, "thread-per-client",
            "CPython, a threading.Thread per connection, blocking socket calls (one thread runs Python at a time: the GIL)",
                (Sharing::Lock, "a threading.Lock per room, held by the sender's thread while it fills each member's mailbox")),
        PythonModel {
            forks: true,
            bytes_per_client: Some(PYTHON_PROCESS_BYTES),
            ..tcp("py-multiprocessing", "py_multiprocessing.py",
                include_str!("../python/py_multiprocessing.py"), ThreadsAndProcesses,
                "fork-per-client",
                "CPython, a multiprocessing.Process per connection, start method fork, blocking socket calls (a GIL per process)",
                (Sharing::Ipc, "a hub process owns the rooms; members' processes reach it over Unix sockets"))
        },
        PythonModel {
            offloads: true,
            ..tcp("py-asyncio", "py_asyncio.py", include_str!("../python/py_asyncio.py"), Runtimes,
                "tokio-current-thread",
                "CPython, asyncio streams on one event loop, a coroutine per connection",
                (Sharing::Owner, "the one event loop owns every room, a set of its members' writers"))
        },
        tcp("py-selectors", "py_selectors.py", include_str!("../python/py_selectors.py"),
            EventLoops, "mio",
            "CPython, a hand-written reactor over selectors (epoll), non-blocking sockets: the shape of Twisted's reactor",
                (Sharing::Owner, "the reactor's one thread owns every room")),
        PythonModel {
            needs: Some("twisted"),
            ..tcp("py-twisted", "py_twisted.py", include_str!("../python/py_twisted.py"),
                EventLoops, "mio",
                "CPython, a Twisted echo protocol on Twisted's epoll reactor",
                (Sharing::Owner, "the reactor's one thread owns every room"))
        },
        PythonModel {
            needs: Some("gevent"),
            ..tcp("py-gevent", "py_gevent.py", include_str!("../python/py_gevent.py"),
                Runtimes, "tokio-current-thread",
                "CPython, gevent: blocking-style code in a greenlet per connection on one hub",
                (Sharing::Lock, "a lock per room (gevent's), held by the sender's greenlet while it fills each member's mailbox"))
        },
        PythonModel {
            transport: Transport::Udp,
            sharing: None,
            ..tcp("py-udp", "py_udp.py", include_str!("../python/py_udp.py"), IterativeAndPools,
                "udp-blocking",
                "CPython, UDP, iterative: one blocking socket, receive a datagram, send it back",
                (Sharing::Alone, "no chat room"))
        },
    ]
};

/// The Python model called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static PythonModel> {
    MODELS.iter().find(|m| m.name == name)
}

/// Writes every script and the module they share into `dir` (made if missing).
pub fn write_scripts(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (file, source) in MODELS.iter().map(|m| (m.file, m.source)).chain([COMMON]) {
        std::fs::write(dir.join(file), source)?;
    }
    Ok(())
}

/// A Python interpreter found fit to run the scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// The interpreter's own path (`sys.executable`): a launcher or a shim resolved.
    pub executable: String,
    /// `CPython`, `PyPy`, ...
    pub implementation: String,
    /// `3.11.7`.
    pub version: String,
}

/// Asks `program` (a name on `PATH` or a path) what it is; an error says, in one line, why it
/// cannot run the scripts: not found, not Python, or older than [`MIN_VERSION`].
pub fn interpreter(program: &str) -> Result<Interpreter, String> {
    const ASK: &str = "import platform, sys; print(sys.executable); \
                       print(platform.python_implementation()); \
                       print('%d.%d.%d' % sys.version_info[:3])";
    let out = Command::new(program)
        .args(["-c", ASK])
        .output()
        .map_err(|e| format!("{program} cannot be run ({e})"))?;
    let said = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = said.lines().collect();
    let [executable, implementation, version] = lines[..] else {
        return Err(format!(
            "{program} did not answer as a Python interpreter does"
        ));
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < MIN_VERSION {
        return Err(format!(
            "{program} is Python {version}; the Python models need {}.{} or later",
            MIN_VERSION.0, MIN_VERSION.1
        ));
    }
    Ok(Interpreter {
        executable: executable.to_owned(),
        implementation: implementation.to_owned(),
        version: version.to_owned(),
    })
}

/// Whether `interpreter` can import `module`.
pub fn importable(interpreter: &Interpreter, module: &str) -> bool {
    Command::new(&interpreter.executable)
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The interpreter the tests and `compare --python` use unless told otherwise.
pub const DEFAULT_PROGRAM: &str = "python3";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_is_shipped_and_names_itself_and_its_counterpart() {
        for m in MODELS {
            assert!(
                m.source.contains(&format!("MODEL = \"{}\"", m.name)),
                "{}",
                m.name
            );
            assert!(m.name.starts_with("py-"), "{}", m.name);
            let rust = crate::Model::from_name(m.counterpart)
                .unwrap_or_else(|| panic!("{}: no Rust model {}", m.name, m.counterpart));
            assert_eq!(rust.transport(), m.transport, "{}", m.name);
            assert!(
                m.source.contains("import echo_common as common"),
                "{}",
                m.name
            );
        }
        let dir = std::env::temp_dir().join(format!("echobench-py-{}", std::process::id()));
        write_scripts(&dir).unwrap();
        let written = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(written, MODELS.len() + 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_interpreter_that_is_missing_or_not_python_is_refused_in_one_line() {
        let missing = interpreter("/no/such/python3").unwrap_err();
        assert!(missing.contains("/no/such/python3"), "{missing}");
        let not_python = interpreter("true").unwrap_err();
        assert!(not_python.contains("did not answer"), "{not_python}");
        for e in [missing, not_python] {
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
}
