//! `compare --python`: the tutorials' own Python servers beside the Rust models. The scripts
//! ship inside this binary ([`echo_server::python`]); a comparison writes them into its own
//! directory (`DIR/python/`, so the results keep the code that was measured) and runs each as
//! an external server: `PYTHON -B DIR/python/SCRIPT --addr {addr}`, measured exactly as the
//! built-in models are.

use std::path::Path;
use std::time::Duration;

use echo_server::python::{self, Interpreter, PythonModel};
use echo_server::Transport;

use crate::schema::{ExternalServer, PythonRun, ServerSpec, Skipped};

/// `py-multiprocessing`'s start method, fixed in its script.
pub const START_METHOD: &str = "fork";

/// How long a Python server may take to print its `listening on` line: an interpreter that
/// starts cold, importing Twisted, takes about a second.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long it may take to end after SIGTERM before it is killed. Generous: the handler runs
/// only in the main thread, which must first win the GIL, and when loadgen closes 5,000 idle
/// connections at the end of a run, `py-threading`'s 5,000 threads all want it to finish
/// (0.8–2.7 s measured on one core, once over 5 s inside a comparison). A stop over 2 s is
/// still noted in the run's record.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// The Python models a comparison is asked for: those among `servers` (as `--models` named
/// them), or every one when it names none, the UDP one only when the UDP workloads run.
pub fn asked(servers: &[ServerSpec], udp: bool) -> Vec<&'static PythonModel> {
    let named: Vec<&'static PythonModel> = servers
        .iter()
        .filter_map(|s| python::find(&s.model))
        .collect();
    if !named.is_empty() {
        return named;
    }
    python::MODELS
        .iter()
        .filter(|m| udp || m.transport == Transport::Tcp)
        .collect()
}

/// Makes the Python models ready to run with `program`: asks the interpreter what it is,
/// writes the scripts into `dir`, and gives each model that can run its definition as an
/// external server. `Err` (one line) when the interpreter cannot run them at all.
pub fn prepare(
    program: &str,
    dir: &Path,
    models: &[&'static PythonModel],
) -> Result<(PythonRun, Vec<ExternalServer>), String> {
    let interpreter = python::interpreter(program)?;
    python::write_scripts(dir).map_err(|e| {
        format!(
            "cannot write the Python scripts into {}: {e}",
            dir.display()
        )
    })?;
    let mut run = PythonRun {
        program: program.to_owned(),
        executable: interpreter.executable.clone(),
        implementation: interpreter.implementation.clone(),
        version: interpreter.version.clone(),
        start_method: START_METHOD.to_owned(),
        scripts: dir.display().to_string(),
        models: Vec::new(),
        skipped: Vec::new(),
    };
    let mut servers = Vec::new();
    for model in models {
        match model.needs.filter(|m| !python::importable(&interpreter, m)) {
            Some(module) => run.skipped.push(Skipped {
                model: model.name.to_owned(),
                why: format!(
                    "not run: {} cannot import {module} (scripts/python-models.sh makes a virtual environment that can; then --python=VENV/bin/python)",
                    interpreter.executable
                ),
            }),
            None => {
                run.models.push(model.name.to_owned());
                servers.push(server(model, &interpreter, dir));
            }
        }
    }
    Ok((run, servers))
}

/// One Python model as an external server.
fn server(model: &PythonModel, interpreter: &Interpreter, dir: &Path) -> ExternalServer {
    let script = dir.join(model.file);
    let quoted = |s: &str| shlex::try_quote(s).map_or_else(|_| s.to_owned(), |q| q.into_owned());
    ExternalServer {
        name: model.name.to_owned(),
        command: format!(
            "{} -B {} --addr {{addr}}",
            quoted(&interpreter.executable),
            quoted(&script.display().to_string())
        ),
        transport: model.transport.name().to_owned(),
        family: Some(model.family.name().to_owned()),
        notes: Some(format!(
            "{} {}; {}; its Rust counterpart is `{}`",
            interpreter.implementation, interpreter.version, model.summary, model.counterpart
        )),
        tls_command: None,
        max_idle: None,
        max_connections: None,
        ready_timeout: READY_TIMEOUT,
        stop_grace: STOP_GRACE,
        bytes_per_client: model.bytes_per_client,
        work: false,
        chat: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_naming_none_asks_for_every_tcp_model_and_the_udp_one_with_udp() {
        let names = |v: Vec<&PythonModel>| v.iter().map(|m| m.name).collect::<Vec<_>>();
        let tcp = names(asked(&[ServerSpec::model("mio")], false));
        assert!(
            tcp.contains(&"py-threading") && !tcp.contains(&"py-udp"),
            "{tcp:?}"
        );
        assert!(names(asked(&[], true)).contains(&"py-udp"));
        let listed = [ServerSpec::model("mio"), ServerSpec::model("py-asyncio")];
        assert_eq!(names(asked(&listed, false)), ["py-asyncio"]);
    }

    #[test]
    fn a_missing_interpreter_is_one_line_naming_it() {
        let dir = std::env::temp_dir().join(format!("echobench-nopy-{}", std::process::id()));
        let err = prepare("/no/such/python3", &dir, &asked(&[], false)).unwrap_err();
        assert!(err.contains("/no/such/python3"), "{err}");
        assert_eq!(err.lines().count(), 1);
        assert!(
            !dir.exists(),
            "scripts written for an interpreter that cannot run them"
        );
    }
}
