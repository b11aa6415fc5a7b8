//! "What this run shows": the summary's findings in words, at the top of the report.

use super::block::Block;
use super::format::{bytes, int, plus_minus, samples, server_name, us, with_ci, DASH};
use crate::schema::{
    Cell, Findings, Margin, MarginVerdict, Ranking, ServerSpec, Standing, Status, Summary, Trouble,
};
use crate::workload::Workload;
use echo_server::models::{Family, Model};

/// The section, or nothing when the summary has no findings (one written before they were).
pub fn what_this_run_shows(s: &Summary) -> Vec<Block> {
    let f = &s.findings;
    if f == &Findings::default() {
        return Vec::new();
    }
    let mut blocks = vec![
        Block::Heading(2, "What this run shows".to_owned()),
        Block::Para(format!(
            "Generated from the figures below, not written by hand. Per workload, the leader and its margin to the next, with the {:.0} % confidence interval of that margin (both cells' bootstraps, resample by resample): *clearly ahead* when the interval lies above 0, *no clear difference* when it holds 0. Where loadgen used over 90 % of its CPUs, throughput and latency are the load generator's as much as the server's: those servers are ranked apart, by server CPU per message. Starved, failed and (open loop) rate-missing runs are not ranked.",
            s.resampling.confidence * 100.0
        )),
    ];
    let items: Vec<String> = f.rankings.iter().map(ranking).collect();
    if !items.is_empty() {
        blocks.push(Block::Heading(3, "Who leads each workload".to_owned()));
        blocks.push(Block::List(items));
    }
    blocks.push(Block::Heading(3, "Starved or failed".to_owned()));
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

/// One ranking in a sentence: who leads, by how much, and whether the interval says so.
fn ranking(r: &Ranking) -> String {
    let value = |st: &Standing| format!("`{}` {}", st.model, figure(r, st));
    let basis = match (r.loadgen_bound, r.figure.as_str()) {
        (true, _) => format!(
            ", where loadgen was the limit ({}; throughput and latency are then partly loadgen's), by server CPU per message",
            servers(r.order.len())
        ),
        (false, "latency_p99_us") => " by p99 latency".to_owned(),
        _ if Workload::from_label(&r.workload).is_some_and(|w| w.is_chat()) => {
            " by deliveries/s".to_owned()
        }
        _ => " by throughput (msgs/s)".to_owned(),
    };
    let mut text = format!("`{}`{basis}: ", r.workload);
    match (r.order.as_slice(), r.margin) {
        ([first, second, ..], Some(m)) => {
            text += &format!("{} leads {}: {}", value(first), value(second), margin(r, m));
            if r.order.len() > 2 {
                text += &format!("; {} ranked", r.order.len());
            }
            text.push('.');
        }
        ([only, ..], _) => text += &format!("only {} is ranked.", value(only)),
        ([], _) => text += "nothing to rank.",
    }
    if !r.left_out.is_empty() {
        let left: Vec<String> = r
            .left_out
            .iter()
            .map(|l| format!("`{}` ({})", l.model, l.why))
            .collect();
        text += &format!(" Not ranked: {}.", left.join(", "));
    }
    text
}

/// `1 server`, `8 servers`.
fn servers(n: usize) -> String {
    format!("{n} server{}", if n == 1 { "" } else { "s" })
}

/// A standing's figure with its interval: msgs/s without their unit (the ranking names it),
/// microseconds with theirs.
fn figure(r: &Ranking, st: &Standing) -> String {
    match r.figure.as_str() {
        "throughput_msgs_per_s" => with_ci(st.value, st.ci, int),
        _ => with_ci(st.value, st.ci, us),
    }
}

/// `12.0 % more (95 % CI +4.0 % to +21.0 %), clearly ahead`.
fn margin(r: &Ranking, m: Margin) -> String {
    let what = if r.higher_is_better { "more" } else { "lower" };
    let interval = match (m.low, m.high) {
        (Some(low), Some(high)) => format!(" (95 % CI {} to {})", percent(low), percent(high)),
        _ => String::new(),
    };
    let verdict = match m.verdict {
        MarginVerdict::Clear => "clearly ahead",
        MarginVerdict::NoClearDifference => "no clear difference",
        MarginVerdict::NoInterval => {
            "no interval to judge by (fewer than 3 repeats or 20 blocks), so no verdict"
        }
    };
    format!("{:.1} % {what}{interval}, {verdict}", m.value * 100.0)
}

/// A signed percentage: `+4.1 %`, `−2.0 %`.
fn percent(v: f64) -> String {
    let sign = if v < 0.0 { "−" } else { "+" };
    format!("{sign}{:.1} %", v.abs() * 100.0)
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
