//! Requests with a cost (`compare --work`): how they were made, and the tutorials' claims
//! tested on them, each with its ratio, interval and verdict, generated from the figures. The
//! section's tables are `render::document`'s, as every workload's.

use super::block::Block;
use super::format::{bytes, int, mark, or_dash, server_name, us, DASH};
use crate::schema::{Cell, Claim, ClaimGroup, Expected, Summary, Verdict};
use crate::summary::claims::ALIKE;
use crate::summary::slope;
use crate::workload::{Workload, MIXED_RATE, MIXED_SPEC, SIXTEEN, WORK_COST};

/// The section's heading and how its workloads were made.
pub fn about(s: &Summary) -> Vec<Block> {
    let cost = humantime::format_duration(WORK_COST);
    let spaced = cost_in_words();
    let mut blocks = vec![
        Block::Heading(2, "Requests with a cost".to_owned()),
        Block::Para(format!(
            "Each request (`--work`) carries what it costs the server: a 16-byte header (`EBW1`, length, CPU ns, wait µs), then payload; the server computes (a calibrated loop, never a clock), then waits (its paradigm's own sleep or timer), then echoes it. `cpu-{cost}-c16`: closed loop, 16 connections, {spaced} of CPU each. `wait-{cost}-c16` and `-c1024`: a {spaced} wait each (the 1,024 clients warm up as idle runs do: some models fork or spawn a worker per client). `mixed-c{SIXTEEN}`: an open loop at {} requests/s over 16 connections of `{MIXED_SPEC}` (99 % light, 1 % heavy), each class's latency measured apart, from the intended send time. The event loops that can hand the CPU work to a pool run the CPU-bound workloads twice: inline, and as `MODEL+pool` (`--offload pool`).",
            int(MIXED_RATE)
        )),
    ];
    blocks.extend(shared_cpus(s));
    blocks
}

/// The one exception to disjoint CPUs, said where it applied, with loadgen's CPU.
fn shared_cpus(s: &Summary) -> Vec<Block> {
    let shared: Vec<&Cell> = s.cells.iter().filter(|c| c.server_cpus.is_some()).collect();
    let Some(first) = shared.first() else {
        return Vec::new();
    };
    let cpus = first.server_cpus.as_deref().unwrap_or_default();
    let busiest = shared
        .iter()
        .filter_map(|c| Some((c.loadgen_cpu_ratio?.max, *c)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let loadgen = match busiest {
        Some((ratio, c)) => format!(
            " loadgen's CPU there: at most {:.0} % of its CPUs (`{}` {}), so it took little of the server's.",
            ratio * 100.0,
            c.model,
            c.label
        ),
        None => String::new(),
    };
    let labels: Vec<String> = Workload::work()
        .iter()
        .filter(|w| w.shares_cpus())
        .map(|w| format!("`{}`", w.label()))
        .collect();
    vec![Block::Para(format!(
        "**CPUs shared:** in {} the server ran on CPUs {cpus} (the server's and loadgen's, {} and {} elsewhere), so that a model that can compute on two cores has them: the one exception to disjoint CPUs, recorded in each run (`server_cpus`). loadgen, sending a few thousand requests a second, shares one of them.{loadgen}",
        labels.join(" and "),
        s.environment.server_cpus,
        s.environment.loadgen_cpus,
    ))]
}

/// "The tutorials' claims, tested": the verdicts, group by group, and the figures behind the
/// first group's.
pub fn claims(s: &Summary) -> Vec<Block> {
    if s.claims.is_empty() {
        return Vec::new();
    }
    let mut blocks = vec![
        Block::Heading(2, "The tutorials' claims, tested".to_owned()),
        Block::Para(format!(
            "Each claim is a ratio of one figure between two servers in one run, with its 95 % interval from the two cells' bootstraps resample by resample (3 repeats or more on each side). *holds*: the interval excludes 1 in the claimed direction (a claim that two are alike: it lies within {:.1}–{:.1}); *alike*: it lies within {:.1}–{:.1} where the claim says they differ; *the opposite holds*: it excludes 1 the other way; *cannot be seen here*: none of these, and why.",
            1.0 - ALIKE, 1.0 + ALIKE, 1.0 - ALIKE, 1.0 + ALIKE
        )),
    ];
    for (group, title) in [
        (
            ClaimGroup::IoBound,
            "I/O-bound: threads, and an event loop for many waiting clients",
        ),
        (ClaimGroup::CpuBound, "CPU-bound: threads against processes"),
        (
            ClaimGroup::BlockedLoop,
            "The blocked event loop: light requests beside heavy ones",
        ),
    ] {
        let own: Vec<&Claim> = s.claims.iter().filter(|c| c.group == group).collect();
        if own.is_empty() {
            continue;
        }
        blocks.push(Block::Heading(3, title.to_owned()));
        blocks.push(Block::List(own.iter().map(|c| claim_line(s, c)).collect()));
        if group == ClaimGroup::IoBound {
            blocks.extend(who_keeps_up(s));
        }
    }
    blocks
}

/// One claim: its verdict, the claim, the ratio with its interval and the two figures.
fn claim_line(s: &Summary, c: &Claim) -> String {
    let verdict = match c.verdict {
        Verdict::Holds if c.expected == Expected::Alike => "holds (alike)",
        Verdict::Holds => "holds",
        Verdict::Alike => "alike",
        Verdict::Opposite if c.expected == Expected::Alike => "does not hold: they differ",
        Verdict::Opposite => "the opposite holds",
        Verdict::CannotBeSeen => "cannot be seen here",
    };
    let light = c.figure.starts_with("light");
    let value = |v: Option<f64>| {
        or_dash(v, |v| match light {
            true => format!("light p99 {}", us(v)),
            false => format!("{} requests/s", int(v)),
        })
    };
    let ratio = or_dash(c.ratio, |r| format!("{r:.2}×"));
    let interval = c.ratio_ci.map_or_else(String::new, |[low, high]| {
        format!(" (95 % interval {low:.2}–{high:.2})")
    });
    let why = c
        .why
        .as_ref()
        .map_or_else(String::new, |why| format!("; {why}"));
    // What each paid per request, where moving the work is the question.
    let cpu = match c.group {
        ClaimGroup::BlockedLoop => {
            let per_request = |m: &str| {
                let cell = s
                    .cells
                    .iter()
                    .find(|x| x.model == m && x.label == c.workload);
                or_dash(cell.and_then(|x| x.server_cpu_us_per_msg), |v| us(v.median))
            };
            format!(
                "; server CPU per request {} against {}",
                per_request(&c.other),
                per_request(&c.base)
            )
        }
        ClaimGroup::IoBound | ClaimGroup::CpuBound => String::new(),
    };
    format!(
        "**{verdict}**: {}. In `{}`, `{}` over `{}`: {ratio}{interval}: {} against {}{cpu}{why}.",
        c.claim,
        c.workload,
        c.other,
        c.base,
        value(c.other_value),
        value(c.base_value),
    )
}

/// [`WORK_COST`] as prose writes it: `1 ms`.
fn cost_in_words() -> String {
    format!("{} ms", WORK_COST.as_secs_f64() * 1e3)
}

/// The many waiting clients of the I/O-bound claims' second workload.
const MANY: usize = 1024;

/// Every server at `wait-1ms` with 16 and 1,024 clients: requests/s, the share of what the
/// wait allows, and memory per client (the slope of PSS from 16 to 1,024 clients).
fn who_keeps_up(s: &Summary) -> Vec<Block> {
    let few = Workload::Wait {
        connections: SIXTEEN,
    };
    let many = Workload::Wait { connections: MANY };
    let (few_label, many_label) = (few.label(), many.label());
    let ideal = |connections: usize| connections as f64 / WORK_COST.as_secs_f64();
    let figure = |c: Option<&&Cell>, connections: usize| {
        or_dash(c, |c| {
            let text = or_dash(c.throughput_msgs_per_s, |t| {
                format!(
                    "{} ({:.0} %)",
                    int(t.median),
                    100.0 * t.median / ideal(connections)
                )
            });
            mark(c, text)
        })
    };
    let rows: Vec<Vec<String>> = s
        .models
        .iter()
        .filter_map(|m| {
            let cells = s.cells_of(m);
            let (a, b) = (
                cells.get(few_label.as_str()),
                cells.get(many_label.as_str()),
            );
            if a.is_none() && b.is_none() {
                return None;
            }
            let per_client = match (a, b) {
                (Some(a), Some(b)) if b.errors == 0 && b.connections_starved == 0 => {
                    let point = |c: &Cell, n: usize| Some((n as f64, c.peak_pss_kib? * 1024.0));
                    let points = [point(a, SIXTEEN)?, point(b, MANY)?];
                    slope(&points).map(|v| bytes(v.max(0.0)))
                }
                _ => None,
            };
            Some(vec![
                server_name(s, m),
                figure(a, SIXTEEN),
                figure(b, MANY),
                per_client.unwrap_or_else(|| DASH.to_owned()),
            ])
        })
        .collect();
    if rows.is_empty() {
        return Vec::new();
    }
    vec![
        Block::Para(format!(
            "Who keeps up with clients that wait: requests/s, and in brackets the share of what the wait allows (each client one request per {}, so 16 clients at most {} a second, 1,024 at most {}). Memory per client: the slope of the server's PSS from 16 to 1,024 waiting clients (left out where a client starved or erred at 1,024).",
            cost_in_words(),
            int(ideal(SIXTEEN)),
            int(ideal(MANY))
        )),
        Block::Table(
            vec![
                "model".to_owned(),
                few_label.clone(),
                many_label.clone(),
                "memory per client".to_owned(),
            ],
            rows,
        ),
    ]
}
