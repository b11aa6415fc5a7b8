//! The report's top, the answer first: which model to pick for which situation on this
//! machine, each a sentence with its figure and its verdict, then who leads each workload as
//! a table. Every word comes from the summary's figures and rankings; a situation whose
//! workloads did not run is left out.

use super::block::{titled, Block};
use super::format::{at_least, bytes, compact, int, interval_words, percent, target, us, DASH};
use crate::schema::{Ci, Margin, MarginVerdict, Ranking, Standing, Summary};
use crate::summary::attack::KEPT;

/// The section: the situations that ran, then the leaders' table; nothing when the summary
/// has no rankings (one written before they were).
pub fn answer(s: &Summary) -> Vec<Block> {
    let mut blocks = Vec::new();
    let picks = picks(s);
    if !picks.is_empty() {
        blocks.push(Block::Heading(
            2,
            "Which model for what, on this machine".to_owned(),
        ));
        blocks.push(Block::Para(format!(
            "Generated from the figures below, medians of {}. *Clearly ahead*: the {:.0} % interval of the margin to the next lies above 0; *no clear difference*: it holds 0.",
            passes(s),
            s.resampling.confidence * 100.0,
        )));
        blocks.push(Block::List(picks));
    }
    blocks.extend(leaders(s));
    blocks
}

/// `2 passes`, `1 pass`: the comparison's passes over its matrix (where it did not record
/// them, the most repeats of a cell).
pub fn passes(s: &Summary) -> String {
    let most = s.cells.iter().map(|c| c.repeats as u32).max().unwrap_or(1);
    let n = s.environment.repeats.unwrap_or(most);
    format!("{n} pass{}", if n == 1 { "" } else { "es" })
}

/// One sentence per situation whose workloads ran, in the order people ask.
fn picks(s: &Summary) -> Vec<String> {
    [
        idle_clients(s),
        throughput(s),
        tail_latency(s),
        cpu_bound(s),
        slow_backends(s),
        shared_state(s),
        hostile_clients(s),
        python(s),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A Python model, which has its own sentence.
fn is_python(model: &str) -> bool {
    model.starts_with("py-")
}

/// The ranking of `workload` by its own figure (`bound`: the one of the servers loadgen
/// limited, by CPU per message).
fn ranking<'a>(s: &'a Summary, workload: &str, bound: bool) -> Option<&'a Ranking> {
    s.findings
        .rankings
        .iter()
        .find(|r| r.workload == workload && r.loadgen_bound == bound)
}

/// A ranked figure with its unit: `190.1k msgs/s`, `p99 330 µs`, `3.8 µs of CPU a message`.
fn value(r: &Ranking, st: &Standing, unit: &str) -> String {
    match r.figure.as_str() {
        "latency_p99_us" => format!("p99 {}", us(st.value)),
        "server_cpu_us_per_msg" => format!("{} of CPU a message", us(st.value)),
        _ => format!("{} {unit}", compact(st.value)),
    }
}

/// The verdict on the first of two standings over the second: the ranking's margin where they
/// are its first two, else whether their intervals overlap.
fn verdict(r: &Ranking, first: &Standing, second: &Standing) -> MarginVerdict {
    let top_two =
        r.order.len() >= 2 && r.order[0].model == first.model && r.order[1].model == second.model;
    if let (true, Some(m)) = (top_two, r.margin) {
        return m.verdict;
    }
    let bounds = |c: Option<Ci>| c.and_then(|c| c.low.zip(c.high));
    match (bounds(first.ci), bounds(second.ci)) {
        (Some((fl, fh)), Some((sl, sh))) => {
            let apart = match r.higher_is_better {
                true => fl > sh,
                false => fh < sl,
            };
            match apart {
                true => MarginVerdict::Clear,
                false => MarginVerdict::NoClearDifference,
            }
        }
        _ => MarginVerdict::NoInterval,
    }
}

/// `` `a` 190.1k msgs/s, clearly ahead of `b` 164.9k msgs/s ``: the leader among the
/// standings `keep` admits, against the next.
fn lead(r: &Ranking, unit: &str, keep: impl Fn(&str) -> bool) -> Option<String> {
    let mut kept = r.order.iter().filter(|st| keep(&st.model));
    let first = kept.next()?;
    let a = format!("`{}` {}", first.model, value(r, first, unit));
    let Some(second) = kept.next() else {
        return Some(a);
    };
    let b = format!("`{}` {}", second.model, value(r, second, unit));
    Some(match verdict(r, first, second) {
        MarginVerdict::Clear => format!("{a}, clearly ahead of {b}"),
        MarginVerdict::NoClearDifference => format!("{a}, no clear difference from {b}"),
        MarginVerdict::NoInterval => {
            format!("{a}, then {b} (too few samples for a verdict)")
        }
    })
}

/// The models a ranking left out because they starved connections.
fn starved(r: &Ranking) -> Vec<String> {
    r.left_out
        .iter()
        .filter(|l| l.why.contains("starved"))
        .map(|l| format!("`{}`", l.model))
        .collect()
}

/// `a`, `a and b`, `a, b and c`.
fn and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn idle_clients(s: &Summary) -> Option<String> {
    let memory: Vec<&Standing> = s.findings.memory.iter().collect();
    let first = *memory.first()?;
    let mut text = format!(
        "*Many idle clients*: `{}`, {} per idle connection",
        first.model,
        bytes(first.value)
    );
    if let Some(second) = memory.get(1) {
        let apart = match (first.ci.and_then(|c| c.high), second.ci.and_then(|c| c.low)) {
            (Some(h), Some(l)) if h < l => "clearly less than",
            (Some(_), Some(_)) => "no clear difference from",
            _ => "then",
        };
        text += &format!(" ({apart} `{}` {})", second.model, bytes(second.value));
    }
    if let Some(last) = memory.last().filter(|_| memory.len() > 2) {
        text += &format!("; the most, `{}` {}", last.model, bytes(last.value));
    }
    let widest = s
        .findings
        .rankings
        .iter()
        .filter(|r| r.workload.starts_with("pingpong-c") && !r.loadgen_bound)
        .max_by_key(|r| {
            r.workload
                .trim_start_matches("pingpong-c")
                .parse::<usize>()
                .unwrap_or(0)
        });
    if let Some(r) = widest {
        let left = starved(r);
        if !left.is_empty() {
            let at = r.workload.trim_start_matches("pingpong-c");
            let at = at.parse::<f64>().map_or_else(|_| at.to_owned(), int);
            text += &format!(
                "; at {at} connections {} left clients without an echo",
                and(&left)
            );
        }
    }
    Some(text + ".")
}

/// A capacity search's result for one model: its median rate, whether loadgen limited it,
/// the least and most of its passes.
struct Held<'a> {
    model: &'a str,
    rate: f64,
    at_least: bool,
    min: f64,
    max: f64,
}

/// The capacity search's results of workload `label`, highest rate first, and its target
/// (`p99 ≤ 1ms`); the models that held at no rate tried.
fn capacities<'a>(s: &'a Summary, label: &str) -> Option<(String, Vec<Held<'a>>, Vec<&'a str>)> {
    let cells: Vec<_> = s
        .cells
        .iter()
        .filter(|c| c.label == label)
        .filter_map(|c| Some((c, c.capacity.as_ref()?)))
        .collect();
    let slo = target(&cells.first()?.1.slo);
    let mut held: Vec<Held> = cells
        .iter()
        .filter_map(|(c, cap)| {
            let r = cap.rate?;
            Some(Held {
                model: &c.model,
                rate: r.median,
                at_least: cap.at_least,
                min: r.min,
                max: r.max,
            })
        })
        .collect();
    held.sort_by(|a, b| b.rate.total_cmp(&a.rate));
    let none = cells
        .iter()
        .filter(|(_, cap)| cap.rate.is_none())
        .map(|(c, _)| c.model.as_str())
        .collect();
    Some((slo, held, none))
}

/// `` `mio` ≥ 80.0k msgs/s ``.
fn held_rate(h: &Held) -> String {
    let mark = at_least(h.at_least);
    format!("`{}` {mark}{} msgs/s", h.model, compact(h.rate))
}

fn throughput(s: &Summary) -> Option<String> {
    if let Some((slo, held, _)) = capacities(s, "slo-c16") {
        let held: Vec<&Held> = held.iter().filter(|h| !is_python(h.model)).collect();
        let Some(first) = held.first() else {
            return Some(format!(
                "*Throughput under a latency target*: no model held {slo} at any rate tried."
            ));
        };
        let mut text = format!("*Throughput under a latency target* ({slo}, 16 connections): ");
        // Models loadgen capped at the top rate are tied there: it, not they, was the limit.
        let capped: Vec<String> = held
            .iter()
            .filter(|h| h.at_least && h.rate >= first.rate)
            .map(|h| format!("`{}`", h.model))
            .collect();
        if first.at_least && capped.len() > 1 {
            text += &format!(
                "{} held at least {} msgs/s, where loadgen on its CPUs was the limit (the servers may hold more)",
                and(&capped),
                compact(first.rate)
            );
            let below = held.iter().find(|h| !(h.at_least && h.rate >= first.rate));
            if let Some(next) = below {
                text += &format!("; next {}", held_rate(next));
            }
        } else {
            text += &held_rate(first);
            if let Some(second) = held.get(1) {
                let how = match first.min > second.max {
                    true => "ahead in every pass of",
                    false => "its passes overlap with",
                };
                text += &format!(", {how} {}", held_rate(second));
            }
            if first.at_least {
                text += " (≥: loadgen was the limit, the server may hold more)";
            }
        }
        let spread: Vec<String> = held
            .iter()
            .filter(|h| h.min > 0.0 && h.max / h.min >= 1.5)
            .map(|h| format!("`{}` {}–{}", h.model, compact(h.min), compact(h.max)))
            .collect();
        if !spread.is_empty() {
            text += &format!("; the passes disagreed for {}", and(&spread));
        }
        return Some(text + ".");
    }
    let r = ranking(s, "pingpong-c16", false)?;
    let mut text = format!(
        "*Throughput* (16 connections): {}",
        lead(r, "msgs/s", |m| !is_python(m))?
    );
    if let Some(bound) = ranking(s, "pingpong-c16", true) {
        let first = bound.order.iter().find(|st| !is_python(&st.model));
        if let Some(first) = first {
            text += &format!(
                "; loadgen was the limit under {} more, of which `{}` spends the least CPU a message ({})",
                bound.order.len(),
                first.model,
                us(first.value)
            );
        }
    }
    Some(text + ".")
}

fn tail_latency(s: &Summary) -> Option<String> {
    let r = s
        .findings
        .rankings
        .iter()
        .filter(|r| !r.loadgen_bound)
        .filter_map(|r| {
            let rate: f64 = r.workload.strip_prefix("rate-")?.parse().ok()?;
            Some((rate, r))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    Some(format!(
        "*Tail latency under load* (an open loop of {} msgs/s over 16 connections): {}.",
        int(r.0),
        lead(r.1, "", |m| !is_python(m))?
    ))
}

/// The first of `workloads` that was ranked by its own figure.
fn first_ranked<'a>(s: &'a Summary, workloads: &[&str]) -> Option<&'a Ranking> {
    workloads.iter().find_map(|w| ranking(s, w, false))
}

fn cpu_bound(s: &Summary) -> Option<String> {
    let r = first_ranked(s, &["cpu-1ms-c16"])?;
    Some(format!(
        "*CPU-bound requests* (1 ms of CPU each, 16 clients): {}.",
        lead(r, "requests/s", |m| !is_python(m))?
    ))
}

fn slow_backends(s: &Summary) -> Option<String> {
    let r = first_ranked(s, &["wait-1ms-c1024", "wait-1ms-c16"])?;
    let clients = r.workload.rsplit("-c").next().unwrap_or("16");
    let clients = clients.parse::<f64>().map_or(DASH.to_owned(), int);
    Some(format!(
        "*Many clients waiting on a slow backend* (a 1 ms wait each, {clients} clients): {}.",
        lead(r, "requests/s", |m| !is_python(m))?
    ))
}

fn shared_state(s: &Summary) -> Option<String> {
    let r = first_ranked(s, &["chat-r16-c64", "chat-r128-c128"])?;
    Some(format!(
        "*Shared state, a chat room* (`{}`): {}.",
        r.workload,
        lead(r, "deliveries/s", |m| !is_python(m))?
    ))
}

fn hostile_clients(s: &Summary) -> Option<String> {
    // Each model's share of its rate kept beside slowloris, without or with the defences.
    let slowloris = |defended: bool| -> Vec<(&str, f64)> {
        s.attack_models
            .iter()
            .filter_map(|m| {
                let k = m
                    .kept
                    .iter()
                    .find(|k| k.defended == defended && k.workload.starts_with("slowloris"))?;
                Some((m.model.as_str(), k.rate_share?))
            })
            .collect()
    };
    let lost = |shares: &[(&str, f64)]| -> Vec<String> {
        shares
            .iter()
            .filter(|(_, share)| *share < KEPT)
            .map(|(m, share)| format!("`{m}` ({})", percent(*share)))
            .collect()
    };
    // How many kept their rate, and who did not: `defended` names the runs it counts.
    let tally = |shares: &[(&str, f64)], defended: bool| {
        let (servers, without) = match defended {
            true => (", the servers defended", ""),
            false => ("", " without defences"),
        };
        let lost = lost(shares);
        let mut text = format!(
            "*Hostile clients* (64 slowloris connections beside 16 legitimate ones{servers}): {} of {} models kept at least {} of their rate{without}",
            shares.len() - lost.len(),
            shares.len(),
            percent(KEPT)
        );
        if !lost.is_empty() {
            text += &format!("; {} kept less", and(&lost));
        }
        text
    };
    let undefended = slowloris(false);
    let defended = slowloris(true);
    if undefended.is_empty() {
        // Only the defended runs: what the models kept with their defences.
        return (!defended.is_empty()).then(|| tally(&defended, true) + ".");
    }
    let mut text = tally(&undefended, false);
    let denied: Vec<&str> = undefended
        .iter()
        .filter(|(_, share)| *share < KEPT)
        .map(|(m, _)| *m)
        .collect();
    if !denied.is_empty() {
        let with = |keep: fn(f64) -> bool| -> Vec<(&str, f64)> {
            defended
                .iter()
                .filter(|(m, share)| denied.contains(m) && keep(*share))
                .copied()
                .collect()
        };
        let given_back: Vec<String> = with(|share| share >= KEPT)
            .iter()
            .map(|(m, _)| format!("`{m}`"))
            .collect();
        if !given_back.is_empty() {
            text += &format!(", and the defences gave {} back", and(&given_back));
        }
        let still = lost(&with(|share| share < KEPT));
        if !still.is_empty() {
            text += &format!(" (not {})", and(&still));
        }
    }
    Some(text + ".")
}

fn python(s: &Summary) -> Option<String> {
    let asks = [
        ("CPU-bound", "cpu-1ms-c16", "requests/s"),
        ("many waiting clients", "wait-1ms-c1024", "requests/s"),
        ("a chat room", "chat-r16-c64", "deliveries/s"),
        ("plain echo", "pingpong-c16", "msgs/s"),
    ];
    let answers: Vec<String> = asks
        .iter()
        .filter_map(|(what, workload, unit)| {
            let r = ranking(s, workload, false)?;
            Some(format!("{what}: {}", lead(r, unit, is_python)?))
        })
        .collect();
    if answers.is_empty() {
        return None;
    }
    Some(format!("*Python*: {}.", answers.join("; ")))
}

/// "Who leads each workload": a row per ranking.
fn leaders(s: &Summary) -> Vec<Block> {
    let rankings = &s.findings.rankings;
    if rankings.is_empty() {
        return Vec::new();
    }
    let header = [
        "workload",
        "ranked by",
        "leader",
        "runner-up",
        "margin (95 % interval)",
        "verdict",
        "not ranked",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut rows: Vec<Vec<String>> = rankings.iter().map(leader_row).collect();
    for label in ["slo-c16", "slo-c1024"] {
        rows.extend(capacity_row(s, label));
    }
    vec![
        Block::Heading(3, "Who leads each workload".to_owned()),
        Block::TallTable(header, rows),
        Block::Para("Where loadgen used over 90 % of its CPUs under some servers, their throughput and latency are partly loadgen's: those are ranked apart, by server CPU per message (a second row). Starved, failed and (open loop) rate-missing runs are not ranked.".to_owned()),
    ]
}

fn leader_row(r: &Ranking) -> Vec<String> {
    let by = match (r.loadgen_bound, r.figure.as_str()) {
        (true, _) => "server CPU / msg (µs), loadgen-bound".to_owned(),
        (false, "latency_p99_us") => "p99 (µs)".to_owned(),
        (false, "server_cpu_us_per_msg") => "server CPU / msg (µs)".to_owned(),
        _ if r.workload.starts_with("chat-") => "deliveries/s".to_owned(),
        _ if r.workload.starts_with("cpu-") || r.workload.starts_with("wait-") => {
            "requests/s".to_owned()
        }
        _ => "msgs/s".to_owned(),
    };
    // Every figure compact, its unit in the column `by` names.
    let figure = |st: &Standing| {
        titled(
            &format!("`{}` {}", st.model, compact(st.value)),
            &interval_words(st.ci, compact),
        )
    };
    let (margin, verdict) = match r.margin {
        Some(m) => (margin(r, m), verdict_words(m.verdict).to_owned()),
        None => (DASH.to_owned(), DASH.to_owned()),
    };
    vec![
        format!("`{}`", r.workload),
        format!("{by}, {} ranked", r.order.len()),
        r.order.first().map_or_else(|| DASH.to_owned(), figure),
        r.order.get(1).map_or_else(|| DASH.to_owned(), figure),
        margin,
        verdict,
        not_ranked(
            r.left_out
                .iter()
                .map(|l| format!("`{}` ({})", l.model, l.why)),
        ),
    ]
}

/// The leaders table's last cell: each model not ranked, with why, or a dash.
fn not_ranked(left: impl Iterator<Item = String>) -> String {
    let left: Vec<String> = left.collect();
    match left.is_empty() {
        true => DASH.to_owned(),
        false => left.join("; "),
    }
}

/// The capacity search's row: its leader and runner-up by the rate held, whether the leader
/// was ahead in every pass, and the models that held at no rate tried.
fn capacity_row(s: &Summary, label: &str) -> Option<Vec<String>> {
    let (slo, held, none) = capacities(s, label)?;
    let figure = |h: &Held| {
        let mark = at_least(h.at_least);
        titled(
            &format!("`{}` {mark}{}", h.model, compact(h.rate)),
            &format!("over the passes {}–{}", int(h.min), int(h.max)),
        )
    };
    let (margin, verdict) = match (held.first(), held.get(1)) {
        (Some(a), Some(b)) if a.at_least && b.at_least && a.rate <= b.rate => (
            DASH.to_owned(),
            "tied where loadgen was the limit".to_owned(),
        ),
        (Some(a), Some(b)) => (
            format!("+{:.1} % more", (a.rate / b.rate - 1.0) * 100.0),
            match a.min > b.max {
                true => "ahead in every pass".to_owned(),
                false => "the passes overlap".to_owned(),
            },
        ),
        _ => (DASH.to_owned(), DASH.to_owned()),
    };
    Some(vec![
        format!("`{label}`"),
        format!("rate at {slo} (msgs/s), {} held", held.len()),
        held.first().map_or_else(|| DASH.to_owned(), figure),
        held.get(1).map_or_else(|| DASH.to_owned(), figure),
        margin,
        verdict,
        not_ranked(
            none.iter()
                .map(|m| format!("`{m}` (held at no rate tried)")),
        ),
    ])
}

/// `+15.3 % (+4.0 % to +21.0 %)`: more throughput, or less latency or CPU.
fn margin(r: &Ranking, m: Margin) -> String {
    let what = if r.higher_is_better { "more" } else { "less" };
    let signed = |v: f64| {
        let sign = if v < 0.0 { "−" } else { "+" };
        format!("{sign}{:.1} %", v.abs() * 100.0)
    };
    match (m.low, m.high) {
        (Some(low), Some(high)) => format!(
            "{} {what} ({} to {})",
            signed(m.value),
            signed(low),
            signed(high)
        ),
        _ => format!("{} {what}", signed(m.value)),
    }
}

fn verdict_words(v: MarginVerdict) -> &'static str {
    match v {
        MarginVerdict::Clear => "clearly ahead",
        MarginVerdict::NoClearDifference => "no clear difference",
        MarginVerdict::NoInterval => "too few samples",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_words() {
        assert_eq!(and(&[]), "");
        assert_eq!(and(&["`a`".to_owned()]), "`a`");
        assert_eq!(
            and(&["`a`".to_owned(), "`b`".to_owned(), "`c`".to_owned()]),
            "`a`, `b` and `c`"
        );
    }
}
