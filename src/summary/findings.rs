//! "What this run shows", generated from the figures: per workload the leader and its margin
//! to the next, judged by the confidence interval of that margin; the servers that starved
//! connections or failed; memory per connection from least to most. Nothing here is written
//! by hand: every statement is a ranking of the cells' figures.

use std::collections::BTreeMap;

use super::bootstrap::{change_interval, figure, Bootstrap};
use crate::schema::{
    Cell, Findings, LeftOut, Margin, MarginVerdict, MemoryPerConnection, Ranking, Spread, Standing,
    Status, Trouble, Workload,
};

/// Bootstraps by (server label, workload label).
type Bootstraps = BTreeMap<(String, String), Bootstrap>;

/// A figure a workload's servers are ranked by.
#[derive(Clone, Copy)]
struct Figure {
    key: &'static str,
    higher_is_better: bool,
    index: usize,
    get: fn(&Cell) -> Option<Spread>,
}

const THROUGHPUT: Figure = Figure {
    key: "throughput_msgs_per_s",
    higher_is_better: true,
    index: figure::THROUGHPUT,
    get: |c| c.throughput_msgs_per_s,
};

const P99: Figure = Figure {
    key: "latency_p99_us",
    higher_is_better: false,
    index: figure::P99,
    get: |c| c.latency_p99_us,
};

const CPU: Figure = Figure {
    key: "server_cpu_us_per_msg",
    higher_is_better: false,
    index: figure::CPU_PER_MESSAGE,
    get: |c| c.server_cpu_us_per_msg,
};

/// Offered load a rate run must achieve to have its latency ranked.
const RATE_MET: f64 = 0.95;

/// The findings of a comparison's cells, in the order of `servers` and `workloads`.
pub fn findings(
    servers: &[String],
    workloads: &[Workload],
    cells: &[Cell],
    memory: &[MemoryPerConnection],
    bootstraps: &Bootstraps,
) -> Findings {
    let mut rankings = Vec::new();
    for w in workloads {
        let label = w.label();
        let own: Vec<&Cell> = servers
            .iter()
            .filter_map(|m| cells.iter().find(|c| &c.model == m && c.label == label))
            .collect();
        rankings.extend(rank_workload(w, &own, bootstraps));
    }
    Findings {
        rankings,
        troubles: servers.iter().filter_map(|m| trouble(m, cells)).collect(),
        memory: memory_order(memory),
        memory_unknown: memory
            .iter()
            .filter(|m| m.pss_bytes_per_connection.is_none())
            .map(|m| LeftOut {
                model: m.model.clone(),
                why: m.not_accepted.clone().unwrap_or_else(|| {
                    "too few idle runs with every connection held for a slope".to_owned()
                }),
            })
            .collect(),
    }
}

/// The figure a workload is judged by: throughput for closed loops and churn, p99 latency
/// for the open loop and beside idle connections.
fn figure_of(w: &Workload) -> Figure {
    match w {
        Workload::Rate { .. } | Workload::Idle { .. } => P99,
        Workload::Pingpong { .. } | Workload::Churn | Workload::Bulk | Workload::Pool { .. } => {
            THROUGHPUT
        }
    }
}

/// The rankings of one workload's cells: the servers loadgen did not limit by the workload's
/// figure, those it did by server CPU per message. Starved and failed cells, and rate cells
/// that fell short of the offered rate, are left out (and said to be).
fn rank_workload(w: &Workload, cells: &[&Cell], bootstraps: &Bootstraps) -> Vec<Ranking> {
    let mut left_out = Vec::new();
    let mut free = Vec::new();
    let mut bound = Vec::new();
    for &c in cells {
        let why = match c.status {
            Status::Failed => Some("failed".to_owned()),
            Status::Starved => Some(format!(
                "{} of {} connections starved",
                c.connections_starved, c.connections
            )),
            Status::Ok => rate_shortfall(w, c),
        };
        match why {
            Some(why) => left_out.push(LeftOut {
                model: c.model.clone(),
                why,
            }),
            None if c.loadgen_saturated => bound.push(c),
            None => free.push(c),
        }
    }
    let mut rankings: Vec<Ranking> = [(free, figure_of(w), false), (bound, CPU, true)]
        .into_iter()
        .filter_map(|(group, f, loadgen_bound)| rank(w, &group, f, loadgen_bound, bootstraps))
        .collect();
    if let Some(first) = rankings.first_mut() {
        first.left_out = left_out;
    }
    rankings
}

/// Why a rate cell's latency is not ranked: it did not achieve the offered rate.
fn rate_shortfall(w: &Workload, c: &Cell) -> Option<String> {
    let Workload::Rate { .. } = w else {
        return None;
    };
    let achieved = c.achieved_rate_ratio.map_or(0.0, |r| r.median);
    (achieved < RATE_MET).then(|| {
        format!(
            "achieved {:.0} % of the offered rate",
            (achieved * 100.0).floor()
        )
    })
}

/// One group of cells ranked by `f`, best first, with the margin of the first over the
/// second; `None` when no cell has the figure.
fn rank(
    w: &Workload,
    cells: &[&Cell],
    f: Figure,
    loadgen_bound: bool,
    bootstraps: &Bootstraps,
) -> Option<Ranking> {
    let mut order: Vec<(&Cell, Spread)> = cells
        .iter()
        .filter_map(|c| Some((*c, (f.get)(c)?)))
        .collect();
    if order.is_empty() {
        return None;
    }
    order.sort_by(|a, b| {
        let (x, y) = (a.1.median, b.1.median);
        let better = if f.higher_is_better {
            y.total_cmp(&x)
        } else {
            x.total_cmp(&y)
        };
        better.then_with(|| a.0.model.cmp(&b.0.model))
    });
    let margin = match order.as_slice() {
        [(first, a), (second, b), ..] => Some(margin(first, a, second, b, f, bootstraps)),
        _ => None,
    };
    Some(Ranking {
        workload: w.label(),
        figure: f.key.to_owned(),
        higher_is_better: f.higher_is_better,
        loadgen_bound,
        order: order
            .iter()
            .map(|(c, s)| Standing {
                model: c.model.clone(),
                value: s.median,
                ci: s.ci,
            })
            .collect(),
        margin,
        left_out: Vec::new(),
    })
}

/// How much better `first` (figure `a`) is than `second` (`b`), as a fraction of the
/// second's figure, with the interval of that fraction over the two cells' bootstraps.
fn margin(
    first: &Cell,
    a: &Spread,
    second: &Cell,
    b: &Spread,
    f: Figure,
    bs: &Bootstraps,
) -> Margin {
    // first / second − 1 for a figure where higher is better; 1 − first / second where lower
    // is: change_interval gives first / second − 1, so the latter is its negation.
    let sign = if f.higher_is_better { 1.0 } else { -1.0 };
    let value = sign * (a.median / b.median - 1.0);
    let key = |c: &Cell| (c.model.clone(), c.label.clone());
    let interval = match (bs.get(&key(second)), bs.get(&key(first))) {
        (Some(b_boot), Some(a_boot)) => change_interval(b_boot, a_boot, f.index).ok(),
        _ => None,
    };
    match interval {
        Some([low, high]) => {
            let (low, high) = if f.higher_is_better {
                (low, high)
            } else {
                (-high, -low)
            };
            let verdict = if low > 0.0 {
                MarginVerdict::Clear
            } else {
                MarginVerdict::NoClearDifference
            };
            Margin {
                value,
                low: Some(low),
                high: Some(high),
                verdict,
            }
        }
        None => Margin {
            value,
            low: None,
            high: None,
            verdict: MarginVerdict::NoInterval,
        },
    }
}

/// The starved and failed workloads of `server`; `None` when it has neither.
fn trouble(server: &str, cells: &[Cell]) -> Option<Trouble> {
    let own = cells.iter().filter(|c| c.model == server);
    let starved: Vec<(String, usize, usize)> = own
        .clone()
        .filter(|c| c.status == Status::Starved)
        .map(|c| (c.label.clone(), c.connections_starved, c.connections))
        .collect();
    let failed: Vec<String> = own
        .filter(|c| c.status == Status::Failed)
        .map(|c| c.label.clone())
        .collect();
    (!starved.is_empty() || !failed.is_empty()).then(|| Trouble {
        model: server.to_owned(),
        starved,
        failed,
    })
}

/// Memory per connection of the servers that have one, least first.
fn memory_order(memory: &[MemoryPerConnection]) -> Vec<Standing> {
    let mut order: Vec<Standing> = memory
        .iter()
        .filter_map(|m| {
            Some(Standing {
                model: m.model.clone(),
                value: m.pss_bytes_per_connection?,
                ci: m.pss_ci,
            })
        })
        .collect();
    order.sort_by(|a, b| {
        a.value
            .total_cmp(&b.value)
            .then_with(|| a.model.cmp(&b.model))
    });
    order
}
