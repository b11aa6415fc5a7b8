//! `echobench compare --python` through the real binary: the tutorials' Python servers run
//! beside their Rust counterparts from the scripts the binary carries, the interpreter is
//! recorded, and the report answers the tutorials' question; without an interpreter, one line
//! and the rest of the comparison runs. Skips with one line where no Python 3.9 or later is
//! found; `ECHOBENCH_REQUIRE=python` makes that a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_echobench");

/// The interpreter to run the Python models with (`$ECHOBENCH_PYTHON`, or `python3`), or
/// `None` after a one-line skip.
fn python(test: &str) -> Option<String> {
    let program = std::env::var("ECHOBENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    match echo_server::python::interpreter(&program) {
        Ok(_) => Some(program),
        Err(why) => {
            testkit::skip(test, "python", &why);
            None
        }
    }
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("echobench-python-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn compare(out: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["compare", "--profile", "tiny"])
        .args(["--server-cpus", "0", "--loadgen-cpus", "1", "--out"])
        .arg(out)
        .args(args)
        .output()
        .unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn python_servers_run_beside_their_rust_counterparts_and_answer_the_tutorials_question() {
    let Some(program) = python("python_servers_run_beside_their_rust_counterparts") else {
        return;
    };
    let out = tempdir("beside");
    let run = compare(
        &out,
        &[
            &format!("--python={program}"),
            "--models",
            "thread-per-client,py-threading,py-multiprocessing,py-asyncio,py-twisted",
            "--workloads",
            "pingpong-c16,churn",
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    let env = json(&out.join("environment.json"));
    let py = &env["python"];
    assert_eq!(py["start_method"], "fork");
    assert!(py["version"].as_str().unwrap().starts_with("3."), "{py}");
    let twisted = py["models"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "py-twisted");
    if !twisted {
        // Not importable here: said in one line, recorded, and not run.
        assert!(stderr.contains("py-twisted not run:"), "{stderr}");
        assert_eq!(py["skipped"][0]["model"], "py-twisted");
    }
    // The scripts that ran are kept with the results.
    assert!(out.join("python/py_threading.py").is_file());
    let summary = json(&out.join("summary.json"));
    for model in [
        "thread-per-client",
        "py-threading",
        "py-multiprocessing",
        "py-asyncio",
    ] {
        for label in ["pingpong-c16", "churn"] {
            let cell = summary["cells"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["model"] == model && c["label"] == label)
                .unwrap_or_else(|| panic!("no {model} {label} cell"));
            assert_eq!(cell["status"], "ok", "{model} {label}: {cell}");
            assert!(cell["throughput_msgs_per_s"]["median"].as_f64().unwrap() > 0.0);
        }
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("The tutorials' question"), "{report}");
    assert!(
        report.contains("`py-threading` against `thread-per-client`"),
        "{report}"
    );
    assert!(
        report.contains("(`fork-per-client` was not in this run)"),
        "{report}"
    );
    assert!(report.contains("the advantage processes have over the GIL cannot appear"));
    // They are echobench's own servers, not a user's.
    assert!(!report.contains("py-threading (external)"), "{report}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn python_servers_take_requests_with_a_cost_and_py_asyncio_also_its_process_pool() {
    let Some(program) = python("python_servers_take_requests_with_a_cost") else {
        return;
    };
    let out = tempdir("work");
    let run = compare(
        &out,
        &[
            &format!("--python={program}"),
            "--models",
            "py-threading,py-asyncio",
            "--work",
            "--workloads",
            "cpu-1ms-c16,wait-1ms-c16",
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    let summary = json(&out.join("summary.json"));
    let cells = summary["cells"].as_array().unwrap();
    let ran = common::cells_ran(&summary);
    assert_eq!(
        ran,
        [
            "py-threading cpu-1ms-c16",
            "py-threading wait-1ms-c16",
            "py-asyncio cpu-1ms-c16",
            "py-asyncio wait-1ms-c16",
            "py-asyncio+pool cpu-1ms-c16",
        ]
    );
    for c in cells {
        assert_eq!(c["status"], "ok", "{c}");
        assert!(
            c["throughput_msgs_per_s"]["median"].as_f64().unwrap() > 0.0,
            "{c}"
        );
    }
    // Started with --work (and the pool's --offload pool), ready at the probe it speaks.
    let record = json(&out.join("raw/py-asyncio_offload_pool.cpu-1ms-c16.r1.run.json"));
    assert_eq!(record["server_cpus"], "0-1", "{record}");
    assert_eq!(record["spec"]["server_args"][1], "pool");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn python_servers_serve_the_chat_room_each_sharing_its_own_way() {
    let Some(program) = python("python_servers_serve_the_chat_room") else {
        return;
    };
    let out = tempdir("chat");
    let run = compare(
        &out,
        &[
            &format!("--python={program}"),
            "--models",
            "py-threading,py-multiprocessing,py-selectors",
            "--chat",
            "--workloads",
            "chat-r16-c64,chat-slow",
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["cells"].as_array().unwrap().len(), 6, "{summary}");
    for c in summary["cells"].as_array().unwrap() {
        assert_eq!(c["status"], "ok", "{c}");
        assert!(
            c["throughput_msgs_per_s"]["median"].as_f64().unwrap() > 0.0,
            "{c}"
        );
        if c["label"] == "chat-r16-c64" {
            assert_eq!(c["chat"]["lost"], 0, "{c}");
        }
    }
    let sharing: Vec<(String, String)> = summary["chat_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            // Dropped, the rooms going on; on a busy machine a reader a whole queue behind
            // may be dropped with them, and the verdict says so.
            let verdict = m["slow"]["verdict"].as_str().unwrap();
            assert!(["dropped", "dropped_readers"].contains(&verdict), "{m}");
            assert!(m["slow"]["dropped"].as_u64().unwrap() >= 4, "{m}");
            (
                m["model"].as_str().unwrap().to_owned(),
                m["sharing"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("py-threading", "lock"),
        ("py-multiprocessing", "IPC"),
        ("py-selectors", "single owner"),
    ];
    assert_eq!(sharing, expected.map(|(m, s)| (m.to_owned(), s.to_owned())));
    // Started with --chat, ready at its `listening on` line.
    let record = json(&out.join("raw/py-multiprocessing.chat-slow.r1.run.json"));
    assert_eq!(record["status"], "ok", "{record}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn without_a_python_interpreter_one_line_says_so_and_the_rest_runs() {
    let out = tempdir("missing");
    let run = compare(
        &out,
        &[
            "--python=/no/such/python3",
            "--models",
            "mio",
            "--workloads",
            "pingpong-c1",
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let said: Vec<&str> = stderr.lines().filter(|l| l.contains("--python")).collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(said[0].contains("/no/such/python3"), "{stderr}");
    let env = json(&out.join("environment.json"));
    assert!(env.get("python").is_none(), "{env}");
    assert_eq!(env["models"], serde_json::json!(["mio"]));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_python_model_named_without_python_is_refused_in_one_line() {
    let out = tempdir("refused");
    let run = compare(&out, &["--models", "mio,py-asyncio"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("py-asyncio") && stderr.contains("--python"),
        "{stderr}"
    );
    let run = compare(&out, &["--python", "--models", "py-asyncio(4)"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("takes no workers"), "{stderr}");
    assert!(!out.join("raw").exists());
}
