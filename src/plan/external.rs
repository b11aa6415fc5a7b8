//! External servers as `compare` is told of them: `--server NAME=COMMAND` and the entries of
//! `--server-file FILE` (TOML), checked before anything runs, and their command lines with
//! the placeholders filled in.
//!
//! ```toml
//! [[server]]
//! name = "go-echo"                          # letters, digits, `.`, `_`, `-`
//! command = "./go-echo -listen {addr}"      # {port}, {addr} (127.0.0.1:PORT), {host}
//! transport = "tcp"                         # the default, and the only one yet
//! family = "runtimes"                       # optional; the registry's families or your own
//! notes = "Go 1.23, a goroutine per connection"
//! tls_command = "./go-echo -listen {addr} -cert {cert} -key {key}"
//! max_idle = 1000                           # idle workloads above it are not run
//! max_connections = 2000                    # nor workloads needing more at once
//! ready_timeout = "20s"                     # to its `listening on` line or a probe's echo
//! stop_grace = "5s"                         # after SIGTERM, before SIGKILL
//! ```

use std::path::Path;
use std::time::Duration;

use echo_server::{Family, Model};
use serde::Deserialize;

use crate::schema::external::TRANSPORTS;
use crate::schema::{ExternalServer, Workload};

/// How long an external server may take to be ready, unless its file says otherwise.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long an external server may take to end after SIGTERM, unless its file says otherwise.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// The placeholders a command line may hold.
const PLACEHOLDERS: [&str; 3] = ["port", "addr", "host"];

/// Those a TLS command line may hold besides.
const TLS_PLACEHOLDERS: [&str; 2] = ["cert", "key"];

/// `--server NAME=COMMAND`.
pub fn parse_flag(text: &str) -> Result<ExternalServer, String> {
    let Some((name, command)) = text.split_once('=') else {
        return Err(format!(
            "--server '{text}': give NAME=COMMAND, e.g. mine='./my-echo --port {{port}}'"
        ));
    };
    let server = ExternalServer {
        name: name.trim().to_owned(),
        command: command.trim().to_owned(),
        transport: "tcp".to_owned(),
        family: None,
        notes: None,
        tls_command: None,
        max_idle: None,
        max_connections: None,
        ready_timeout: READY_TIMEOUT,
        stop_grace: STOP_GRACE,
        bytes_per_client: None,
        work: false,
        chat: false,
    };
    check(&server).map_err(|e| format!("--server {}: {e}", server.name))?;
    Ok(server)
}

/// One `[[server]]` of a server file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    command: String,
    transport: Option<String>,
    family: Option<String>,
    notes: Option<String>,
    tls_command: Option<String>,
    max_idle: Option<usize>,
    max_connections: Option<usize>,
    ready_timeout: Option<String>,
    stop_grace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    #[serde(default)]
    server: Vec<Entry>,
}

/// The servers of `--server-file FILE`, each checked; errors name the file and the server.
pub fn read_file(path: &Path) -> Result<Vec<ExternalServer>, String> {
    let whence = format!("--server-file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| format!("{whence}: {e}"))?;
    let file: ServerFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let message = e.message().lines().next().unwrap_or("not a server file");
        match line {
            Some(n) => format!("{whence}: line {n}: {message}"),
            None => format!("{whence}: {message}"),
        }
    })?;
    if file.server.is_empty() {
        return Err(format!(
            "{whence}: no servers; give each as a [[server]] table with name and command"
        ));
    }
    file.server
        .into_iter()
        .map(|entry| {
            let name = entry.name.clone();
            server_of(entry).map_err(|e| format!("{whence}: server {name}: {e}"))
        })
        .collect()
}

fn server_of(entry: Entry) -> Result<ExternalServer, String> {
    let duration = |key: &str, text: Option<String>, default: Duration| match text {
        None => Ok(default),
        Some(t) => humantime::parse_duration(&t)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{key} '{t}' is not a duration above 0, e.g. 20s")),
    };
    let server = ExternalServer {
        name: entry.name,
        command: entry.command,
        transport: entry.transport.unwrap_or_else(|| "tcp".to_owned()),
        family: entry.family.map(|f| family_name(&f)),
        notes: entry.notes,
        tls_command: entry.tls_command,
        max_idle: entry.max_idle,
        max_connections: entry.max_connections,
        ready_timeout: duration("ready_timeout", entry.ready_timeout, READY_TIMEOUT)?,
        stop_grace: duration("stop_grace", entry.stop_grace, STOP_GRACE)?,
        bytes_per_client: None,
        work: false,
        chat: false,
    };
    check(&server)?;
    Ok(server)
}

/// The registry's name of a family given loosely (`Event-Loops` → `event loops`); any other
/// family as given.
fn family_name(given: &str) -> String {
    let loose = |s: &str| s.to_lowercase().replace(['-', '_'], " ");
    Family::ALL
        .iter()
        .map(|f| f.name())
        .find(|name| loose(name) == loose(given.trim()))
        .map_or_else(|| given.trim().to_owned(), str::to_owned)
}

/// Whether one server's definition can run: a name of its own, a command line whose program
/// exists and whose placeholders are known, a known transport, caps above 0.
fn check(server: &ExternalServer) -> Result<(), String> {
    check_name(&server.name)?;
    if !TRANSPORTS.contains(&server.transport.as_str()) {
        return Err(format!(
            "transport '{}' is not one echobench serves yet ({})",
            server.transport,
            TRANSPORTS.join(", ")
        ));
    }
    check_command("command", &server.command, &[])?;
    if let Some(tls) = &server.tls_command {
        check_command("tls_command", tls, &TLS_PLACEHOLDERS)?;
        for p in TLS_PLACEHOLDERS {
            if !tls.contains(&format!("{{{p}}}")) {
                return Err(format!("tls_command has no {{{p}}}"));
            }
        }
    }
    for (key, cap) in [
        ("max_idle", server.max_idle),
        ("max_connections", server.max_connections),
    ] {
        if cap == Some(0) {
            return Err(format!("{key} must be above 0 (leave it out for no cap)"));
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty()
        || name.len() > 40
        || !name.chars().all(fine)
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "the name '{name}' must be 1 to 40 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ));
    }
    let python = echo_server::python::find(name).is_some();
    if Model::from_name(name).is_some() || python || name == "all" || name == "none" {
        return Err(format!(
            "the name '{name}' is taken by a built-in model or a --models keyword; choose another"
        ));
    }
    Ok(())
}

/// A command line splits into words, holds `{port}` or `{addr}`, no unknown placeholder, and
/// names a program that exists.
fn check_command(key: &str, command: &str, more: &[&str]) -> Result<(), String> {
    let values: Vec<(&str, String)> = PLACEHOLDERS
        .iter()
        .chain(more)
        .map(|p| (*p, String::new()))
        .collect();
    let invocation = invocation(command, &values).map_err(|e| format!("{key}: {e}"))?;
    if !command.contains("{port}") && !command.contains("{addr}") {
        return Err(format!(
            "{key} '{command}' has neither {{port}} nor {{addr}}: echobench picks a free port for each run and the server must listen on it"
        ));
    }
    let program = &invocation.argv[0];
    if !program_exists(program) {
        return Err(format!(
            "{key}: program '{program}' is not found (a path, or a name on PATH)"
        ));
    }
    Ok(())
}

/// A command line made ready to run: its environment settings and its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `NAME=value` words that came before the program.
    pub env: Vec<(String, String)>,
    /// The program and its arguments.
    pub argv: Vec<String>,
}

/// `command` split into words as a shell would (quotes and backslashes, no expansion), each
/// placeholder `{name}` replaced by its value from `values` (`{{` and `}}` stand for braces),
/// and leading `NAME=value` words taken as environment settings.
pub fn invocation(command: &str, values: &[(&str, String)]) -> Result<Invocation, String> {
    let words =
        shlex::split(command).ok_or_else(|| format!("'{command}' has an unclosed quote"))?;
    let mut filled = words
        .iter()
        .map(|w| fill(w, values))
        .collect::<Result<Vec<String>, String>>()?
        .into_iter()
        .peekable();
    let mut env = Vec::new();
    while let Some((name, value)) = filled.peek().and_then(|w| assignment(w)) {
        env.push((name, value));
        filled.next();
    }
    let argv: Vec<String> = filled.collect();
    if argv.is_empty() {
        return Err(format!("'{command}' names no program"));
    }
    Ok(Invocation { env, argv })
}

/// `NAME=value` with a shell variable's name.
fn assignment(word: &str) -> Option<(String, String)> {
    let (name, value) = word.split_once('=')?;
    let first = name.chars().next()?;
    let fine = (first.is_ascii_alphabetic() || first == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    fine.then(|| (name.to_owned(), value.to_owned()))
}

/// One word with its placeholders filled in.
fn fill(word: &str, values: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        let name = tail[1..]
            .find('}')
            .map(|end| &tail[1..=end])
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        match name {
            Some(name) if !tail.starts_with('}') => {
                let value = values
                    .iter()
                    .find(|(n, _)| *n == name)
                    .ok_or_else(|| format!("unknown placeholder {{{name}}}"))?;
                out.push_str(&value.1);
                rest = &tail[name.len() + 2..];
            }
            _ => {
                out.push_str(&tail[..1]);
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `program` is a file that can be run: a path, or a name found on `PATH`.
fn program_exists(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return runnable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| runnable(&dir.join(program))))
}

/// The most memory a server with a process per client is asked to fill: half the machine's,
/// and never more than this (10,000 processes of an interpreter are not a run).
pub const MEMORY_CAP: u64 = 16_000_000_000;

/// Why `server` is not run under `workload` (its caps, or more memory than half of
/// `memory_bytes`, the machine's, or [`MEMORY_CAP`]), or `None`.
pub fn not_run(server: &ExternalServer, workload: &Workload, memory_bytes: u64) -> Option<String> {
    let (at_once, idle) = workload.connections_needed();
    if let Some(each) = server.bytes_per_client {
        let needed = at_once as u64 * each;
        let cap = (memory_bytes / 2).min(MEMORY_CAP);
        if needed > cap {
            let gb = |b: u64| b as f64 / 1e9;
            return Some(format!(
                "not run: needs about {:.1} GB ({at_once} clients of about {:.1} MB each), over {:.1} GB (half of this machine's {:.1} GB, at most {:.0} GB)",
                gb(needed),
                each as f64 / 1e6,
                gb(cap),
                gb(memory_bytes),
                gb(MEMORY_CAP)
            ));
        }
    }
    if let Some(cap) = server.max_idle.filter(|&cap| idle > cap) {
        return Some(format!(
            "not run: needs about {idle} idle connections; its max_idle is {cap}"
        ));
    }
    if let Some(cap) = server.max_connections.filter(|&cap| at_once > cap) {
        return Some(format!(
            "not run: needs about {at_once} connections at once; its max_connections is {cap}"
        ));
    }
    None
}

/// The names in `names` that appear twice.
pub fn duplicate(names: &[String]) -> Option<&String> {
    names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(port: u16) -> Vec<(&'static str, String)> {
        vec![
            ("port", port.to_string()),
            ("addr", format!("127.0.0.1:{port}")),
            ("host", "127.0.0.1".to_owned()),
        ]
    }

    #[test]
    fn placeholders_are_filled_word_by_word_without_a_shell() {
        let inv = invocation(
            "GOMAXPROCS=1 ./srv --listen {addr} -p{port} 'a b' '{{\"x\": 1}}' \"$HOME\"",
            &values(7007),
        )
        .unwrap();
        assert_eq!(inv.env, [("GOMAXPROCS".to_owned(), "1".to_owned())]);
        assert_eq!(
            inv.argv,
            [
                "./srv",
                "--listen",
                "127.0.0.1:7007",
                "-p7007",
                "a b",
                "{\"x\": 1}",
                "$HOME"
            ]
        );
        let err = invocation("srv --port {prot}", &values(1)).unwrap_err();
        assert!(err.contains("{prot}"), "{err}");
        assert!(invocation("srv 'open", &values(1))
            .unwrap_err()
            .contains("quote"));
        assert!(invocation("A=1", &values(1))
            .unwrap_err()
            .contains("no program"));
        // A brace that is not a placeholder stays.
        assert_eq!(
            invocation("srv {} }{", &values(1)).unwrap().argv[1..],
            ["{}", "}{"]
        );
    }

    #[test]
    fn a_process_per_client_is_not_run_where_its_clients_need_over_half_the_memory() {
        let mut s = parse_flag("s=sh {port}").unwrap();
        s.bytes_per_client = Some(5 << 19);
        const MEMORY: u64 = 24 << 30;
        let why = not_run(&s, &Workload::Idle { idle: 10_000 }, MEMORY).unwrap();
        assert_eq!(
            why,
            "not run: needs about 26.2 GB (10001 clients of about 2.6 MB each), over 12.9 GB (half of this machine's 25.8 GB, at most 16 GB)"
        );
        assert!(not_run(&s, &Workload::Idle { idle: 5000 }, MEMORY).is_some());
        assert_eq!(not_run(&s, &Workload::Idle { idle: 1000 }, MEMORY), None);
        let many = Workload::Pingpong { connections: 1024 };
        assert_eq!(not_run(&s, &many, MEMORY), None);
        // However large the machine, no 10,000 processes.
        let idle = Workload::Idle { idle: 10_000 };
        assert!(not_run(&s, &idle, 1 << 40)
            .unwrap()
            .contains("at most 16 GB"));
        assert_eq!(not_run(&s, &Workload::Idle { idle: 5000 }, 1 << 40), None);
    }

    #[test]
    fn a_flag_is_checked_before_anything_runs() {
        let ok = parse_flag("mine=sh -c 'exec my-echo' {port}").unwrap();
        assert_eq!(ok.name, "mine");
        assert_eq!(ok.command, "sh -c 'exec my-echo' {port}");
        assert_eq!(
            (ok.ready_timeout, ok.stop_grace),
            (READY_TIMEOUT, STOP_GRACE)
        );
        for (bad, says) in [
            ("no-equals", "NAME=COMMAND"),
            ("mio=sh {port}", "taken"),
            ("py-asyncio=sh {port}", "taken"),
            ("all=sh {port}", "taken"),
            ("a b=sh {port}", "the name"),
            ("x=sh -c true", "neither {port} nor {addr}"),
            ("x=/no/such/echo {port}", "not found"),
            ("x=no-such-echo-program {port}", "not found"),
            ("x=sh {port} {cert}", "{cert}"),
        ] {
            let err = parse_flag(bad).unwrap_err();
            assert!(err.starts_with("--server "), "{err}");
            assert!(err.contains(says), "{bad}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }

    fn file(text: &str) -> Result<Vec<ExternalServer>, String> {
        let path = std::env::temp_dir().join(format!(
            "echobench-server-file-{}-{}.toml",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&path, text).unwrap();
        let read = read_file(&path);
        std::fs::remove_file(&path).unwrap();
        read
    }

    #[test]
    fn a_server_file_gives_every_setting_and_names_its_mistakes() {
        let servers = file(
            r#"
[[server]]
name = "a"
command = "sh -c 'exec a' {addr}"
family = "Event-Loops"
notes = "hand-written"
tls_command = "sh -c 'exec a' {addr} {cert} {key}"
max_idle = 1000
max_connections = 2000
ready_timeout = "30s"
stop_grace = "1s"

[[server]]
name = "b"
command = "sh {port}"
family = "actors"
"#,
        )
        .unwrap();
        assert_eq!(servers.len(), 2);
        let a = &servers[0];
        assert_eq!(a.family.as_deref(), Some("event loops"));
        assert_eq!((a.max_idle, a.max_connections), (Some(1000), Some(2000)));
        assert_eq!(a.ready_timeout, Duration::from_secs(30));
        assert_eq!(a.stop_grace, Duration::from_secs(1));
        assert_eq!(a.transport, "tcp");
        assert_eq!(servers[1].family.as_deref(), Some("actors"));
        assert_eq!(servers[1].stop_grace, STOP_GRACE);

        for (text, says) in [
            ("[[server]]\nname = \"a\"\n", "line 1"),
            ("[[server]]\nname = \"a\"\ncommand = \"sh {port}\"\ncolour = 1\n", "line 4"),
            ("[[server]]\nname = \"a\"\ncommand = \"sh {port}\"\ntransport = \"sctp\"\n", "sctp"),
            ("[[server]]\nname = \"a\"\ncommand = \"sh {port}\"\nmax_idle = 0\n", "max_idle"),
            ("[[server]]\nname = \"a\"\ncommand = \"sh {port}\"\nstop_grace = \"soon\"\n", "stop_grace"),
            ("[[server]]\nname = \"a\"\ncommand = \"sh {port}\"\ntls_command = \"sh {port} {cert}\"\n", "{key}"),
            ("", "no servers"),
        ] {
            let err = file(text).unwrap_err();
            assert!(err.starts_with("--server-file "), "{err}");
            assert!(err.contains(says), "{says}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        let err = read_file(Path::new("/no/such/servers.toml")).unwrap_err();
        assert!(err.contains("/no/such/servers.toml"), "{err}");
    }

    #[test]
    fn caps_leave_out_the_workloads_above_them() {
        const MEMORY: u64 = 24 << 30;
        let mut s = parse_flag("s=sh {port}").unwrap();
        let idle = Workload::Idle { idle: 5000 };
        assert_eq!(not_run(&s, &idle, MEMORY), None);
        s.max_idle = Some(1000);
        let why = not_run(&s, &idle, MEMORY).unwrap();
        assert!(why.starts_with("not run: needs about 5000"), "{why}");
        assert_eq!(not_run(&s, &Workload::Idle { idle: 1000 }, MEMORY), None);
        s.max_connections = Some(128);
        let big = Workload::Pingpong { connections: 1024 };
        assert!(not_run(&s, &big, MEMORY)
            .unwrap()
            .contains("1024 connections at once"));
        let fine = Workload::Pingpong { connections: 128 };
        assert_eq!(not_run(&s, &fine, MEMORY), None);
        assert_eq!(
            duplicate(&["a".to_owned(), "b".to_owned(), "a".to_owned()]),
            Some(&"a".to_owned())
        );
    }
}
