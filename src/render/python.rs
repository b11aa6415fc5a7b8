//! The tutorials' question, answered from the figures: threads, processes or an event loop in
//! CPython, and each Python server against the Rust model built the same way.

use super::block::Block;
use super::format::{bytes, int, spread, us, DASH};
use crate::schema::{Cell, Spread, Status, Summary};
use echo_server::python::{self, PythonModel};

/// The workloads whose throughput answers the question: a few clients and many.
const ASKED_AT: [&str; 2] = ["pingpong-c16", "pingpong-c128"];

/// The section, or nothing when the comparison ran no Python model.
pub fn python_beside_rust(s: &Summary) -> Vec<Block> {
    let Some(run) = &s.environment.python else {
        return Vec::new();
    };
    // Its figures are plain echo's; requests with a cost have their own section.
    let echo_ran = s
        .workloads
        .iter()
        .filter_map(|l| crate::schema::Workload::from_label(l))
        .any(|w| !w.is_work());
    if !echo_ran {
        return Vec::new();
    }
    let mut blocks = vec![
        Block::Heading(
            3,
            "The tutorials' question: threads, processes or an event loop in CPython".to_owned(),
        ),
        Block::Para(format!(
            "{} {} (`{}`) ran the tutorials' servers from `servers/python/` (as run: `{}`); `py-multiprocessing` starts each client's process with `{}`. Each against the Rust model built the same way, in the same run (× is Python over Rust):",
            run.implementation, run.version, run.executable, run.scripts, run.start_method
        )),
    ];
    let ran: Vec<&PythonModel> = python::MODELS
        .iter()
        .filter(|m| run.models.iter().any(|r| r == m.name))
        .collect();
    blocks.push(Block::List(
        ran.iter().map(|m| counterpart_line(s, m)).collect(),
    ));
    blocks.push(Block::Para(question(s, &ran)));
    blocks.push(Block::Para(gil(s)));
    if !run.skipped.is_empty() {
        blocks.push(Block::List(
            run.skipped
                .iter()
                .map(|k| format!("`{}` {}", k.model, k.why))
                .collect(),
        ));
    }
    blocks
}

/// One Python model against its counterpart: throughput at 16 and 128 clients, CPU per
/// message, churn and memory per idle connection, each with the ratio where both have it.
fn counterpart_line(s: &Summary, m: &PythonModel) -> String {
    let rust = m.counterpart;
    let ran_rust = s.models.iter().any(|r| r == rust);
    let figures: Vec<String> = if m.transport == echo_server::Transport::Udp {
        vec![versus(
            s,
            m,
            "udp-pingpong-c16",
            "datagrams/s at 16 sockets",
            int,
            |c| c.throughput_msgs_per_s,
        )]
    } else {
        vec![
            versus(s, m, "pingpong-c16", "msgs/s at 16 connections", int, |c| {
                c.throughput_msgs_per_s
            }),
            versus(s, m, "pingpong-c128", "at 128", int, |c| {
                c.throughput_msgs_per_s
            }),
            versus(s, m, "pingpong-c16", "server CPU per message", us, |c| {
                c.server_cpu_us_per_msg
            }),
            versus(s, m, "churn", "churn conn/s", int, |c| {
                c.throughput_msgs_per_s
            }),
            memory_versus(s, m),
        ]
    };
    let against = if ran_rust {
        format!("against `{rust}`")
    } else {
        format!("(`{rust}` was not in this run)")
    };
    format!(
        "`{}` {against}: {}.",
        m.name,
        figures
            .into_iter()
            .filter(|f| !f.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    )
}

/// `what` of the Python model in `label`, written by `unit`, with its counterpart's and the
/// ratio; empty when the Python cell has no figure.
fn versus(
    s: &Summary,
    m: &PythonModel,
    label: &str,
    what: &str,
    unit: fn(f64) -> String,
    figure: fn(&Cell) -> Option<Spread>,
) -> String {
    let cell = |model: &str| s.cells_of(model).get(label).copied();
    let Some(py) = cell(m.name) else {
        return String::new();
    };
    let Some(value) = figure(py).filter(|_| py.status.has_figures()) else {
        return format!("{what} {}", py.status.name());
    };
    let ours = format!("{what} {}{}", spread(Some(value), unit), starved(py));
    match cell(m.counterpart).and_then(figure) {
        Some(r) if r.median > 0.0 => format!(
            "{ours} ({:.2}× `{}`'s {})",
            value.median / r.median,
            m.counterpart,
            unit(r.median)
        ),
        _ => ours,
    }
}

/// ` (starved n/m)` for a cell where connections completed no message.
fn starved(c: &Cell) -> String {
    match c.connections_starved {
        0 => String::new(),
        n => format!(" (starved {n}/{})", c.connections),
    }
}

/// Memory per idle connection, Python against Rust, where the run measured it.
fn memory_versus(s: &Summary, m: &PythonModel) -> String {
    let slope = |model: &str| {
        s.memory_per_connection
            .iter()
            .find(|p| p.model == model)
            .and_then(|p| p.pss_bytes_per_connection)
    };
    match (slope(m.name), slope(m.counterpart)) {
        (Some(py), Some(r)) if r > 0.0 => format!(
            "memory per idle connection {} ({:.1}× `{}`'s {})",
            bytes(py),
            py / r,
            m.counterpart,
            bytes(r)
        ),
        (Some(py), _) => format!("memory per idle connection {}", bytes(py)),
        _ => String::new(),
    }
}

/// Threads, processes and event loops ranked by throughput at a few clients and at many.
fn question(s: &Summary, ran: &[&PythonModel]) -> String {
    let contenders: Vec<&str> = ran
        .iter()
        .filter(|m| m.transport == echo_server::Transport::Tcp && m.name != "py-iterative")
        .map(|m| m.name)
        .collect();
    let at: Vec<String> = ASKED_AT
        .iter()
        .filter_map(|label| ranked(s, label, &contenders))
        .collect();
    if at.is_empty() {
        return "Threads, processes and event loops were not measured side by side in this run (no pingpong workload with two of them).".to_owned();
    }
    format!(
        "Threads (`py-threading`), processes (`py-multiprocessing`) and event loops (the rest), by throughput: {}.",
        at.join("; ")
    )
}

/// `at pingpong-c16: `a` 180,000 ± 2,000, `b` ...`, leader first, and whether the first two
/// are told apart by their intervals; `None` with fewer than two figures.
fn ranked(s: &Summary, label: &str, models: &[&str]) -> Option<String> {
    let cells: Vec<(&str, &Cell)> = models
        .iter()
        .filter_map(|m| Some((*m, *s.cells_of(m).get(label)?)))
        .collect();
    let mut figures: Vec<(&str, Spread)> = cells
        .iter()
        .filter_map(|(m, c)| {
            Some((
                *m,
                c.throughput_msgs_per_s.filter(|_| c.status == Status::Ok)?,
            ))
        })
        .collect();
    if figures.len() < 2 {
        return None;
    }
    let left_out: Vec<String> = cells
        .iter()
        .filter(|(_, c)| c.status != Status::Ok)
        .map(|(m, c)| match c.connections_starved {
            0 => format!("`{m}` ({})", c.status.name()),
            n => format!("`{m}` ({n} of {} connections starved)", c.connections),
        })
        .collect();
    figures.sort_by(|a, b| b.1.median.total_cmp(&a.1.median));
    let (first, second) = (figures[0].1, figures[1].1);
    let apart = match (bounds(first), bounds(second)) {
        (Some((low, _)), Some((_, high))) if low > high => "the first clearly ahead",
        (Some(_), Some(_)) => "no clear difference between the first two (their intervals overlap)",
        _ => "too few samples for intervals",
    };
    let list: Vec<String> = figures
        .iter()
        .map(|(m, t)| format!("`{m}` {}", spread(Some(*t), int)))
        .collect();
    let unranked = match left_out.is_empty() {
        true => String::new(),
        false => format!("; not ranked: {}", left_out.join(", ")),
    };
    Some(format!(
        "at `{label}` {} ({apart}{unranked})",
        list.join(", ")
    ))
}

fn bounds(s: Spread) -> Option<(f64, f64)> {
    s.ci.and_then(|c| c.low.zip(c.high))
}

/// What the server's cores allow the comparison to say about processes and the GIL.
fn gil(s: &Summary) -> String {
    let cores = loadgen::parse_cpus(&s.environment.server_cpus).map_or(0, |c| c.len());
    if cores <= 1 {
        // With requests that cost CPU the servers had the loadgen CPUs too: the claims test it.
        let tested = s.claims.iter().any(|c| c.other == "py-multiprocessing");
        let where_seen = match tested {
            true => "*The tutorials' claims, tested* below sets them against each other where the requests cost CPU and the servers had every CPU",
            false => "To see the benefit, give the servers several cores (`--server-cpus`)",
        };
        return format!(
            "The servers ran on one core (CPU {}). There the advantage processes have over the GIL cannot appear: one core runs one thread or process at a time, GIL or not, so `py-multiprocessing` pays for a fork and megabytes per client without the parallelism they buy, and its standing against `py-threading` here is the cost of processes, never their benefit. {where_seen}.",
            s.environment.server_cpus
        );
    }
    let at = |m: &str| {
        s.cells_of(m)
            .get("pingpong-c128")
            .and_then(|c| c.throughput_msgs_per_s)
    };
    match (at("py-multiprocessing"), at("py-threading")) {
        (Some(p), Some(t)) if t.median > 0.0 => {
            let ratio = p.median / t.median;
            let verdict = match (bounds(p), bounds(t)) {
                (Some((low, _)), Some((_, high))) if low > high => "processes ran Python in parallel, which threads under one GIL cannot",
                _ if ratio > 1.0 => "more, but not clearly (the intervals overlap)",
                _ => "processes gained nothing over threads here",
            };
            format!(
                "The servers had {cores} cores (CPUs {}): at 128 connections `py-multiprocessing` made {:.2}× `py-threading`'s throughput ({} against {}): {verdict}.",
                s.environment.server_cpus,
                ratio,
                int(p.median),
                int(t.median)
            )
        }
        _ => format!(
            "The servers had {cores} cores, but `py-multiprocessing` and `py-threading` were not both measured at 128 connections: {DASH}."
        ),
    }
}
