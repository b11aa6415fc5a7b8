//! The findings the report opens with, generated from the figures: per workload the leader and its margin
//! to the next, judged by the confidence interval of that margin; the servers that starved
//! connections or failed; memory per connection from least to most. Nothing here is written
//! by hand: every statement is a ranking of the cells' figures.

use std::collections::BTreeMap;

use super::bootstrap::{change_interval, figure, Bootstrap};
use crate::schema::run::NOT_TRIED;
use crate::schema::{
    Cell, Findings, LeftOut, Margin, MarginVerdict, MemoryPerConnection, Ranking, Spread, Standing,
    Status, Trouble, Workload,
};
use crate::workload::Ranked;

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

/// A UDP cell that lost more than this share of its datagrams is not ranked.
const LOSS_RANKED: f64 = 0.01;

/// The findings of a comparison's cells, in the order of `servers` and `workloads`.
pub fn findings(
    servers: &[String],
    workloads: &[Workload],
    cells: &[Cell],
    memory: &[MemoryPerConnection],
    bootstraps: &Bootstraps,
) -> Findings {
    let mut rankings = Vec::new();
    // The capacity search is judged by the rate it found, over the passes: the report's
    // leaders table and headline read it from the cells' `capacity`, not from a ranking of the
    // highest step's figures.
    for w in workloads
        .iter()
        .filter(|w| !matches!(w, Workload::Slo { .. }))
    {
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

/// The figure a workload is judged by: [`Workload::ranked_by`].
fn figure_of(w: &Workload) -> Figure {
    match w.ranked_by() {
        Ranked::Throughput => THROUGHPUT,
        Ranked::P99 => P99,
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
            Status::NotRun => Some(
                c.notes
                    .iter()
                    .map(|n| bare(n))
                    .find(|n| n.starts_with("not run"))
                    .unwrap_or("not run")
                    .to_owned(),
            ),
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
    match rankings.first_mut() {
        Some(first) => first.left_out = left_out,
        // Every server was left out: say so, and why.
        None if !left_out.is_empty() => {
            let f = figure_of(w);
            rankings.push(Ranking {
                workload: w.label(),
                figure: f.key.to_owned(),
                higher_is_better: f.higher_is_better,
                loadgen_bound: false,
                order: Vec::new(),
                margin: None,
                left_out,
            });
        }
        None => {}
    }
    rankings
}

/// Why a cell is not ranked though it has figures: a UDP cell that lost more than
/// [`LOSS_RANKED`] of its datagrams (a server that drops what it cannot serve in time would
/// look fast), a rate cell that did not achieve the offered rate.
fn rate_shortfall(w: &Workload, c: &Cell) -> Option<String> {
    let loss = c.loss_ratio.map_or(0.0, |l| l.median);
    if loss > LOSS_RANKED {
        return Some(format!("lost {:.1} % of its datagrams", loss * 100.0));
    }
    let (Workload::Rate { .. } | Workload::UdpRate { .. } | Workload::Mixed) = w else {
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

/// A cell's note without the repeat it came from: `r2: server did not start` → `server did not
/// start`.
fn bare(note: &str) -> &str {
    match note.split_once(": ") {
        Some((r, rest))
            if r.len() > 1 && r.starts_with('r') && r[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            rest
        }
        _ => note,
    }
}

/// The most reasons a server's failures are given with.
const MAX_REASONS: usize = 3;

/// `… against 127.0.0.1:38099 …` → `… against its address …`: a run's port says nothing of
/// why it failed.
fn without_addresses(note: &str) -> String {
    let is_address = |w: &str| {
        w.split_once(':').is_some_and(|(ip, port)| {
            ip.parse::<std::net::Ipv4Addr>().is_ok()
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
        })
    };
    note.split(' ')
        .map(|w| if is_address(w) { "its address" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The starved, failed and not-run workloads of `server`; `None` when it has none.
fn trouble(server: &str, cells: &[Cell]) -> Option<Trouble> {
    let own = || cells.iter().filter(|c| c.model == server);
    let starved: Vec<(String, usize, usize)> = own()
        .filter(|c| c.status == Status::Starved)
        .map(|c| (c.label.clone(), c.connections_starved, c.connections))
        .collect();
    let labels = |status: Status| -> Vec<String> {
        own()
            .filter(|c| c.status == status)
            .map(|c| c.label.clone())
            .collect()
    };
    let (failed, not_run) = (labels(Status::Failed), labels(Status::NotRun));
    // Why they failed, each reason once (runs differ only in the port); a run not tried
    // repeats an earlier run's reason.
    let mut reasons: Vec<String> = Vec::new();
    let mut not_tried = false;
    for note in own()
        .filter(|c| c.status == Status::Failed)
        .flat_map(|c| &c.notes)
        .map(|n| bare(n))
    {
        let note = without_addresses(note);
        if note.starts_with(NOT_TRIED) {
            not_tried = true;
        } else if !reasons.contains(&note) {
            reasons.push(note);
        }
    }
    if reasons.len() > MAX_REASONS {
        let more = reasons.len() - MAX_REASONS;
        reasons.truncate(MAX_REASONS);
        reasons.push(format!(
            "{more} other reason{}",
            if more == 1 { "" } else { "s" }
        ));
    }
    if not_tried {
        reasons.push("its later runs were not tried".to_owned());
    }
    (!starved.is_empty() || !failed.is_empty() || !not_run.is_empty()).then(|| Trouble {
        model: server.to_owned(),
        starved,
        failed,
        reasons,
        not_run,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Ci;

    fn spread(median: f64) -> Option<Spread> {
        Some(Spread {
            median,
            min: median,
            max: median,
            ci: None,
        })
    }

    fn cell(model: &str, w: &Workload, throughput: f64, cpu: f64) -> Cell {
        Cell {
            model: model.to_owned(),
            workload: w.name().to_owned(),
            label: w.label(),
            repeats: 3,
            status: Status::Ok,
            notes: Vec::new(),
            throughput_msgs_per_s: spread(throughput),
            latency_p50_us: spread(1e6 / throughput),
            latency_p99_us: spread(5e6 / throughput),
            latency_p99_9_us: None,
            latency_uncorrected_p99_us: None,
            achieved_rate_ratio: spread(1.0),
            connect_p50_us: None,
            server_cpu_us_per_msg: spread(cpu),
            loadgen_cpu_us_per_msg: None,
            peak_rss_kib: None,
            peak_pss_kib: None,
            peak_threads: None,
            peak_processes: None,
            peak_fds: None,
            voluntary_switches_per_msg: None,
            involuntary_switches_per_msg: None,
            errors: 0,
            connections_starved: 0,
            connections: 16,
            loadgen_saturated: false,
            loss_ratio: None,
            datagrams: None,
            loadgen_cpu_us_per_handshake: None,
            resumed_ratio: None,
            handshake_rate: None,
            arrivals_achieved_ratio: None,
            send_late_p99_us: None,
            agents: Vec::new(),
            work_classes: Vec::new(),
            server_cpus: None,
            loadgen_cpu_ratio: None,
            chat: None,
            attack: None,
            capacity: None,
        }
    }

    /// A bootstrap whose resamples put the throughput evenly from `low` to `high`, in that
    /// order, and CPU per message at `cpu`.
    fn bootstrap(low: f64, high: f64, cpu: f64) -> Bootstrap {
        let n = 1000;
        Bootstrap {
            resamples: (0..n)
                .map(|i| {
                    let t = low + (high - low) * i as f64 / (n - 1) as f64;
                    [t, 1e6 / t, 5e6 / t, f64::NAN, cpu]
                })
                .collect(),
            repeats: 3,
            intervals: 60,
            block_intervals: [1; 5],
            blocks: [60; 5],
        }
    }

    fn keyed(c: &Cell, b: Bootstrap) -> ((String, String), Bootstrap) {
        ((c.model.clone(), c.label.clone()), b)
    }

    #[test]
    fn the_leader_and_its_margin_are_judged_by_the_margins_interval() {
        let w = Workload::Pingpong { connections: 16 };
        let a = cell("a", &w, 120.0, 5.0);
        let b = cell("b", &w, 100.0, 6.0);
        let c = cell("c", &w, 99.0, 6.0);
        let servers: Vec<String> = ["c", "b", "a"].map(str::to_owned).to_vec();
        // a's resamples all lie above b's: clearly ahead.
        let apart = BTreeMap::from([
            keyed(&a, bootstrap(115.0, 125.0, 5.0)),
            keyed(&b, bootstrap(95.0, 105.0, 6.0)),
        ]);
        let cells = [a.clone(), b.clone(), c.clone()];
        let f = findings(&servers, &[w], &cells, &[], &apart);
        let r = &f.rankings[0];
        let order: Vec<&str> = r.order.iter().map(|s| s.model.as_str()).collect();
        assert_eq!(order, ["a", "b", "c"]);
        let m = r.margin.unwrap();
        assert!((m.value - 0.2).abs() < 1e-9, "{m:?}");
        assert_eq!(m.verdict, MarginVerdict::Clear);
        assert!(m.low.unwrap() > 0.0 && m.high.unwrap() > m.value);
        // Overlapping resamples (b's drawn in the other order, as independent resamples
        // pair up at random): no clear difference, whatever the medians say.
        let close = BTreeMap::from([
            keyed(&a, bootstrap(80.0, 160.0, 5.0)),
            keyed(&b, bootstrap(120.0, 80.0, 6.0)),
        ]);
        let f = findings(&servers, &[w], &cells, &[], &close);
        let m = f.rankings[0].margin.unwrap();
        assert_eq!(m.verdict, MarginVerdict::NoClearDifference);
        assert!(m.low.unwrap() < 0.0);
        // No bootstraps: a margin, but no verdict.
        let f = findings(&servers, &[w], &cells, &[], &BTreeMap::new());
        assert_eq!(
            f.rankings[0].margin.unwrap().verdict,
            MarginVerdict::NoInterval
        );
    }

    #[test]
    fn loadgen_bound_servers_are_ranked_by_cpu_and_starved_ones_left_out() {
        let w = Workload::Pingpong { connections: 16 };
        let mut fast = cell("fast", &w, 150.0, 6.0);
        fast.loadgen_saturated = true;
        let mut lean = cell("lean", &w, 140.0, 4.0);
        lean.loadgen_saturated = true;
        let free = cell("free", &w, 90.0, 9.0);
        let mut starved = cell("starved", &w, 10.0, 20.0);
        starved.status = Status::Starved;
        starved.connections_starved = 15;
        let servers: Vec<String> = ["fast", "lean", "free", "starved"]
            .map(str::to_owned)
            .to_vec();
        let cells = [fast, lean, free, starved];
        let f = findings(&servers, &[w], &cells, &[], &BTreeMap::new());
        assert_eq!(f.rankings.len(), 2);
        let (by_throughput, by_cpu) = (&f.rankings[0], &f.rankings[1]);
        assert!(!by_throughput.loadgen_bound);
        assert_eq!(by_throughput.order[0].model, "free");
        assert_eq!(by_throughput.left_out[0].model, "starved");
        assert!(by_throughput.left_out[0].why.contains("15 of 16"));
        assert!(by_cpu.loadgen_bound && by_cpu.figure == "server_cpu_us_per_msg");
        let order: Vec<&str> = by_cpu.order.iter().map(|s| s.model.as_str()).collect();
        assert_eq!(order, ["lean", "fast"], "less CPU per message first");
        assert!((by_cpu.margin.unwrap().value - (1.0 - 4.0 / 6.0)).abs() < 1e-9);
        assert_eq!(f.troubles.len(), 1);
        assert_eq!(f.troubles[0].starved, [("pingpong-c16".to_owned(), 15, 16)]);
    }

    #[test]
    fn latency_is_ranked_only_where_the_rate_was_met_and_memory_least_first() {
        let w = Workload::Rate { rate: 10_000.0 };
        let low = cell("low", &w, 100.0, 5.0); // p99 50,000 µs
        let high = cell("high", &w, 50.0, 5.0); // p99 100,000 µs
        let mut short = cell("short", &w, 1000.0, 5.0);
        short.achieved_rate_ratio = spread(0.8);
        let servers: Vec<String> = ["high", "short", "low"].map(str::to_owned).to_vec();
        let f = findings(&servers, &[w], &[low, high, short], &[], &BTreeMap::new());
        let r = &f.rankings[0];
        assert_eq!(r.figure, "latency_p99_us");
        assert_eq!(r.order[0].model, "low");
        assert!((r.margin.unwrap().value - 0.5).abs() < 1e-9, "50 % lower");
        assert_eq!(r.left_out[0].model, "short");
        assert!(r.left_out[0].why.contains("80 %"));

        let memory = |model: &str, bytes: Option<f64>| MemoryPerConnection {
            model: model.to_owned(),
            pss_bytes_per_connection: bytes,
            rss_bytes_per_connection: bytes,
            points: Vec::new(),
            not_accepted: bytes.is_none().then(|| "left in the backlog".to_owned()),
            pss_ci: Some(Ci::default()),
        };
        let mem = [
            memory("thread", Some(25_000.0)),
            memory("loop", Some(70.0)),
            memory("iterative", None),
        ];
        let f = findings(&[], &[], &[], &mem, &BTreeMap::new());
        let order: Vec<&str> = f.memory.iter().map(|s| s.model.as_str()).collect();
        assert_eq!(order, ["loop", "thread"]);
        assert_eq!(f.memory_unknown[0].model, "iterative");
        assert_eq!(f.memory_unknown[0].why, "left in the backlog");
    }

    #[test]
    fn failures_are_given_with_their_reasons_once_and_caps_with_the_workloads() {
        let c1 = Workload::Pingpong { connections: 1 };
        let c16 = Workload::Pingpong { connections: 16 };
        let idle = Workload::Idle { idle: 5000 };
        let mut a = cell("s", &c1, 1.0, 1.0);
        a.status = Status::Failed;
        a.notes = vec![
            "r1: no message completed against 127.0.0.1:38099 (0 errors)".to_owned(),
            "r2: no message completed against 127.0.0.1:40001 (0 errors)".to_owned(),
        ];
        let mut b = cell("s", &c16, 1.0, 1.0);
        b.status = Status::Failed;
        b.notes = vec![format!(
            "r1: {NOT_TRIED}in s.pingpong-c1.r2, it ignored SIGTERM"
        )];
        let mut c = cell("s", &idle, 1.0, 1.0);
        c.status = Status::NotRun;
        c.notes = vec!["r1: not run: needs about 5000 idle connections".to_owned()];
        let t = trouble("s", &[a, b, c.clone()]).expect("trouble");
        assert_eq!(t.failed, ["pingpong-c1", "pingpong-c16"]);
        assert_eq!(
            t.reasons,
            [
                "no message completed against its address (0 errors)",
                "its later runs were not tried"
            ]
        );
        assert_eq!(t.not_run, ["idle-5000"]);
        assert!(t.starved.is_empty());
        let ranked = rank_workload(&idle, &[&c], &BTreeMap::new());
        let left = &ranked[0].left_out[0];
        assert_eq!(left.why, "not run: needs about 5000 idle connections");
        assert_eq!(bare("r12: x: y"), "x: y");
        assert_eq!(bare("rate: x"), "rate: x");
    }
}
