//! The summary's findings in words: who starved or failed, memory per connection, and the
//! verdicts of tls-mixed.

use super::block::Block;
use super::format::{bytes, int, plus_minus, samples, server_name, us, DASH};
use crate::schema::{Cell, Findings, ServerSpec, Status, Summary, Trouble};
use echo_server::models::{Family, Model};

/// Who starved connections or failed, and memory per connection from least to most; nothing
/// when the summary has no findings (one written before they were). The rankings are the
/// report's top ([`super::answer`]).
pub fn what_this_run_shows(s: &Summary) -> Vec<Block> {
    let f = &s.findings;
    if f == &Findings::default() {
        return Vec::new();
    }
    let mut blocks = vec![Block::Heading(2, "Starved or failed".to_owned())];
    if f.troubles.is_empty() {
        blocks.push(Block::Para(
            "No server left a connection without an echo, and no run failed.".to_owned(),
        ));
    } else {
        blocks.push(Block::List(f.troubles.iter().map(trouble).collect()));
    }
    blocks.extend(memory(f));
    blocks
}

/// `blocking`: starved in pingpong-c16 (15/16), ...; failed in idle-5000.
fn trouble(t: &Trouble) -> String {
    let mut parts = Vec::new();
    if !t.starved.is_empty() {
        let each: Vec<String> = t
            .starved
            .iter()
            .map(|(w, n, of)| format!("{w} ({n} of {of} connections)"))
            .collect();
        parts.push(format!("starved in {}", each.join(", ")));
    }
    if !t.failed.is_empty() {
        let why = match t.reasons.as_slice() {
            [] => String::new(),
            reasons => format!(" ({})", reasons.join("; ")),
        };
        parts.push(format!("failed in {}{why}", t.failed.join(", ")));
    }
    if !t.not_run.is_empty() {
        parts.push(format!(
            "not run in {} (above the caps of its server file)",
            t.not_run.join(", ")
        ));
    }
    format!("`{}`: {}.", t.model, parts.join("; "))
}

/// Memory per connection, least first, and the servers without a figure.
fn memory(f: &Findings) -> Vec<Block> {
    if f.memory.is_empty() && f.memory_unknown.is_empty() {
        return Vec::new();
    }
    let mut blocks = vec![Block::Heading(
        3,
        "Memory per idle connection, least first".to_owned(),
    )];
    if !f.memory.is_empty() {
        let each: Vec<String> = f
            .memory
            .iter()
            .map(|st| {
                let ci = st
                    .ci
                    .map_or_else(String::new, |c| format!(" {}", samples(c)));
                format!("`{}` {}{ci}", st.model, plus_minus(st.value, st.ci, bytes))
            })
            .collect();
        blocks.push(Block::Para(each.join(", ") + "."));
    }
    if !f.memory_unknown.is_empty() {
        let each: Vec<String> = f
            .memory_unknown
            .iter()
            .map(|l| format!("`{}` ({})", l.model, l.why))
            .collect();
        blocks.push(Block::Para(format!("No figure for {}.", each.join("; "))));
    }
    blocks
}

/// tls-mixed, per model: whether arriving handshakes moved the long-lived connections' p99
/// beyond the control's 95 % interval, and why that is expected of its model: a cooperative
/// server (one event-loop thread, inline handshakes) makes every echo that arrives during a
/// handshake wait for it; a preemptive one (a thread or process per client, scheduled by the
/// kernel) lets the kernel run the echo's thread meanwhile, on one core only as far as the
/// scheduler preempts.
pub fn tls_mixed_verdicts(s: &Summary) -> Vec<String> {
    s.models
        .iter()
        .filter_map(|m| {
            let cells = s.cells_of(m);
            let control = cells.get("tls-mixed-0")?;
            Some(tls_mixed_verdict(s, m, control, &cells))
        })
        .collect()
}

fn tls_mixed_verdict(
    s: &Summary,
    model: &str,
    control: &Cell,
    cells: &std::collections::BTreeMap<&str, &Cell>,
) -> String {
    let name = server_name(s, model);
    let kind = match Model::from_name(ServerSpec::model_of(model)).map(Model::family) {
        Some(Family::EventLoops | Family::Runtimes) => {
            "cooperative: handshakes run inline on the loop's threads, and an echo that arrives during one waits for it"
        }
        Some(Family::ThreadsAndProcesses) => {
            "preemptive: each client has its own thread or process, and the kernel may run an echo's while another does a handshake"
        }
        Some(Family::IterativeAndPools) => {
            "blocking workers: a handshake holds its worker, the others go on (an iterative server serves one client at a time)"
        }
        None => "an external server",
    };
    let (Some(p99), true) = (control.latency_p99_us, control.status == Status::Ok) else {
        return format!(
            "{name} ({kind}): the control {} — no verdict.",
            control.status.name()
        );
    };
    let (low, high) = p99
        .ci
        .and_then(|c| c.low.zip(c.high))
        .unwrap_or((p99.min, p99.max));
    let parts: Vec<String> = crate::workload::TLS_MIXED_SHARES
        .iter()
        .skip(1)
        .filter_map(|share| {
            let c = cells.get(format!("tls-mixed-{share}").as_str())?;
            Some(format!("at {share} %{}", loaded_verdict(c, low, high)))
        })
        .collect();
    let cost = cells
        .get("tls-churn")
        .and_then(|c| c.server_cpu_us_per_msg)
        .map_or(String::new(), |c| {
            format!(
                " A full handshake costs this server {} of CPU.",
                us(c.median)
            )
        });
    format!(
        "{name} ({kind}): p99 {} in the control ({}–{}){}; {}.{cost}",
        us(p99.median),
        us(low),
        us(high),
        own_lateness(control),
        parts.join("; ")
    )
}

/// One loaded `tls-mixed` cell against the control's interval `low`–`high`: its rate, its
/// p99 and where it lies, or why there is no verdict.
fn loaded_verdict(c: &Cell, low: f64, high: f64) -> String {
    let rate = c.handshake_rate.map_or(String::new(), |r| {
        format!(" ({} handshakes/s)", int(r.median))
    });
    let kept = c.arrivals_achieved_ratio.is_some_and(|a| a.median >= 0.95);
    let text = match c.latency_p99_us.filter(|_| c.status == Status::Ok) {
        Some(_) if c.loadgen_saturated || !kept => format!(
            "no verdict: {} of the arrivals were served{}",
            c.arrivals_achieved_ratio
                .map_or(DASH.to_owned(), |a| super::format::percent(a.median)),
            if c.loadgen_saturated {
                " and loadgen's CPU was saturated"
            } else {
                " (the server left them waiting)"
            }
        ),
        Some(v) if v.median > high => {
            format!("{} — above the control's interval", us(v.median))
        }
        Some(v) if v.median < low => {
            format!("{} — below the control's interval", us(v.median))
        }
        Some(v) => format!("{} — within the control's interval", us(v.median)),
        None => c.status.name().to_owned(),
    };
    format!("{rate} {text}{}", own_lateness(c))
}

/// How late the long-lived connections' sends were on their plan at p99, where the cell
/// records it: loadgen's own delay, or a connection still waiting for its previous echo.
fn own_lateness(c: &Cell) -> String {
    c.send_late_p99_us.map_or(String::new(), |l| {
        format!(" (sends {} late on the plan at p99)", us(l.median))
    })
}
