//! From the raw results of a comparison to its figures: medians and spreads per model and
//! workload, memory per connection, and the headline. Everything here is computed from
//! `raw/` alone, so `echobench report` re-renders the same figures.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::runner::{RunRecord, Status, SCHEMA_VERSION};
use crate::workload::Workload;

/// One run read back from `raw/`.
pub struct RunData {
    /// The runner's record.
    pub record: RunRecord,
    /// loadgen's report; `None` when loadgen never reported.
    pub report: Option<loadgen::Report>,
    /// Latency histogram (ns), from the interval log.
    pub latency: Option<Histogram<u64>>,
}

/// Reads every run under `dir/raw`, in a stable order.
pub fn load_runs(dir: &Path) -> anyhow::Result<Vec<RunData>> {
    let raw = dir.join("raw");
    let mut paths: Vec<_> = std::fs::read_dir(&raw)
        .with_context(|| format!("cannot read {}", raw.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".run.json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("{} holds no runs (*.run.json)", raw.display());
    }
    let mut runs = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        let record: RunRecord = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a run record", path.display()))?;
        let id = record.spec.id();
        let report = std::fs::read_to_string(raw.join(format!("{id}.json")))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let latency = loadgen::hlog::read(&raw.join(format!("{id}.hlog")))
            .ok()
            .and_then(|mut log| log.totals.remove("latency"));
        runs.push(RunData {
            record,
            report,
            latency,
        });
    }
    Ok(runs)
}

/// Median with the smallest and largest value over repeats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median over repeats.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// The figures of one model under one workload, over its repeats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    /// Model name.
    pub model: String,
    /// Workload name.
    pub workload: String,
    /// Workload with its parameter, e.g. `pingpong-c16`.
    pub label: String,
    /// Repeats run.
    pub repeats: usize,
    /// Worst status over the repeats.
    pub status: Status,
    /// Notes of the runs (failures, starvation, slow stops).
    pub notes: Vec<String>,
    /// Echoes per second.
    pub throughput_msgs_per_s: Option<Spread>,
    /// Median latency, µs (open loop: corrected).
    pub latency_p50_us: Option<Spread>,
    /// 99th percentile latency, µs (open loop: corrected).
    pub latency_p99_us: Option<Spread>,
    /// Open loop: uncorrected 99th percentile, µs.
    pub latency_uncorrected_p99_us: Option<Spread>,
    /// Open loop: throughput over the offered rate.
    pub achieved_rate_ratio: Option<Spread>,
    /// Churn: median connect time, µs.
    pub connect_p50_us: Option<Spread>,
    /// Server CPU per echoed message, µs (churn: per connection, as each carries one).
    pub server_cpu_us_per_msg: Option<Spread>,
    /// Peak resident memory of the server tree, KiB (median over repeats).
    pub peak_rss_kib: Option<f64>,
    /// Peak proportional set size of the server tree, KiB (median over repeats).
    pub peak_pss_kib: Option<f64>,
    /// Most server threads at once.
    pub peak_threads: Option<u64>,
    /// Most server processes at once.
    pub peak_processes: Option<u64>,
    /// Most open descriptors in the server tree (median over repeats).
    pub peak_fds: Option<f64>,
    /// Voluntary context switches per message (threads alive at the end of the run).
    pub voluntary_switches_per_msg: Option<f64>,
    /// Involuntary context switches per message (threads alive at the end of the run).
    pub involuntary_switches_per_msg: Option<f64>,
    /// Errors of all kinds, summed over repeats.
    pub errors: u64,
    /// Most connections starved in a repeat.
    pub connections_starved: usize,
    /// Connections of the workload.
    pub connections: usize,
    /// Whether loadgen was saturated in any repeat.
    pub loadgen_saturated: bool,
}

/// Memory per connection of one model: the slope of memory over idle connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryPerConnection {
    /// Model name.
    pub model: String,
    /// Least-squares slope of peak PSS over idle connections, bytes per connection.
    pub pss_bytes_per_connection: Option<f64>,
    /// The same for peak RSS (shared pages counted once per process).
    pub rss_bytes_per_connection: Option<f64>,
    /// (idle connections, peak PSS KiB) points the slope was fitted to.
    pub points: Vec<(usize, f64)>,
    /// Set when the server did not take the idle connections (they waited in the listen
    /// backlog, as with an iterative server or a pool smaller than the crowd): then there is
    /// no memory per connection to speak of, and no slope is given.
    pub not_accepted: Option<String>,
}

/// One model's row of the headline table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Headline {
    /// Model name.
    pub model: String,
    /// Best pingpong throughput, messages/s.
    pub peak_msgs_per_s: Option<f64>,
    /// Connections at which it was reached.
    pub peak_at_connections: Option<usize>,
    /// p99 latency at `rate_for_p99`, µs.
    pub p99_us_at_rate: Option<f64>,
    /// Whether that rate was achieved (≥ 95 %).
    pub rate_achieved: bool,
    /// Churn: connections per second.
    pub churn_conns_per_s: Option<f64>,
    /// Memory per idle connection, bytes (PSS slope).
    pub bytes_per_idle_connection: Option<f64>,
    /// Server CPU per message at 16 connections, µs.
    pub cpu_us_per_msg: Option<f64>,
    /// Bulk bandwidth (echoed payload), MB/s.
    pub bulk_mb_per_s: Option<f64>,
    /// Findings and caveats: starvation, loadgen-bound runs, errors, failures.
    pub flags: Vec<String>,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Schema version.
    pub schema_version: u32,
    /// The environment the comparison ran in.
    pub environment: Environment,
    /// Models, in report order.
    pub models: Vec<String>,
    /// Workload labels, in report order.
    pub workloads: Vec<String>,
    /// The offered rate at which the headline compares p99 latency.
    pub rate_for_p99: Option<f64>,
    /// Headline rows, one per model.
    pub headline: Vec<Headline>,
    /// Every model × workload cell.
    pub cells: Vec<Cell>,
    /// Memory per connection, one per model.
    pub memory_per_connection: Vec<MemoryPerConnection>,
}

/// Builds the summary from the runs of a comparison.
pub fn summarize(env: &Environment, runs: &[RunData]) -> Summary {
    let mut models = env.models.clone();
    for run in runs {
        if !models.contains(&run.record.spec.model) {
            models.push(run.record.spec.model.clone());
        }
    }
    let mut workloads: Vec<Workload> = Vec::new();
    for w in env.profile.workloads() {
        if runs.iter().any(|r| r.record.spec.workload == w) {
            workloads.push(w);
        }
    }
    for r in runs {
        if !workloads.contains(&r.record.spec.workload) {
            workloads.push(r.record.spec.workload);
        }
    }
    let mut cells = Vec::new();
    for model in &models {
        for w in &workloads {
            let group: Vec<&RunData> = runs
                .iter()
                .filter(|r| &r.record.spec.model == model && &r.record.spec.workload == w)
                .collect();
            if !group.is_empty() {
                cells.push(cell(model, w, &group));
            }
        }
    }
    let memory_per_connection = models
        .iter()
        .map(|m| memory_slope(m, &cells, &workloads))
        .collect::<Vec<_>>();
    let rate_for_p99 = workloads.iter().find_map(|w| match w {
        Workload::Rate { rate } => Some(*rate),
        _ => None,
    });
    let headline = models
        .iter()
        .map(|m| headline(m, &cells, &workloads, rate_for_p99, &memory_per_connection))
        .collect();
    Summary {
        schema_version: SCHEMA_VERSION,
        environment: env.clone(),
        models,
        workloads: workloads.iter().map(Workload::label).collect(),
        rate_for_p99,
        headline,
        cells,
        memory_per_connection,
    }
}

fn cell(model: &str, w: &Workload, group: &[&RunData]) -> Cell {
    let reports: Vec<&loadgen::Report> = group
        .iter()
        .filter(|r| r.record.status != Status::Failed)
        .filter_map(|r| r.report.as_ref())
        .collect();
    let spread = |f: &dyn Fn(&loadgen::Report) -> Option<f64>| {
        Spread::of(reports.iter().filter_map(|r| f(r)))
    };
    let usages: Vec<(&crate::procfs::ServerUsage, &loadgen::Report)> = group
        .iter()
        .filter(|r| r.record.status != Status::Failed)
        .filter_map(|r| Some((r.record.server.as_ref()?, r.report.as_ref()?)))
        .collect();
    let per_msg = |f: &dyn Fn(&crate::procfs::ServerUsage) -> f64| {
        Spread::of(
            usages
                .iter()
                .filter(|(_, r)| r.messages > 0)
                .map(|(u, r)| f(u) / r.messages as f64),
        )
    };
    let median_of = |f: &dyn Fn(&crate::procfs::ServerUsage) -> f64| {
        Spread::of(group.iter().filter_map(|r| r.record.server.as_ref()).map(f)).map(|s| s.median)
    };
    let status = group
        .iter()
        .map(|r| r.record.status)
        .max_by_key(|s| match s {
            Status::Ok => 0,
            Status::Starved => 1,
            Status::Failed => 2,
        })
        .unwrap_or(Status::Failed);
    let mut notes: Vec<String> = group
        .iter()
        .filter_map(|r| {
            r.record
                .note
                .as_ref()
                .map(|n| format!("r{}: {n}", r.record.spec.repeat))
        })
        .collect();
    notes.dedup();
    Cell {
        model: model.to_owned(),
        workload: w.name().to_owned(),
        label: w.label(),
        repeats: group.len(),
        status,
        notes,
        throughput_msgs_per_s: spread(&|r| Some(r.throughput_msgs_per_s)),
        latency_p50_us: spread(&|r| (r.messages > 0).then_some(r.latency_us.p50)),
        latency_p99_us: spread(&|r| (r.messages > 0).then_some(r.latency_us.p99)),
        latency_uncorrected_p99_us: spread(&|r| {
            r.latency_uncorrected_us
                .as_ref()
                .filter(|_| r.messages > 0)
                .map(|l| l.p99)
        }),
        achieved_rate_ratio: spread(&|r| r.achieved_rate_ratio),
        connect_p50_us: spread(&|r| {
            r.connect_us
                .as_ref()
                .filter(|_| r.messages > 0)
                .map(|l| l.p50)
        }),
        server_cpu_us_per_msg: per_msg(&|u| u.cpu_s * 1e6),
        peak_rss_kib: median_of(&|u| u.peak_rss_kib as f64),
        peak_pss_kib: median_of(&|u| u.peak_pss_kib as f64),
        peak_threads: group
            .iter()
            .filter_map(|r| r.record.server.as_ref())
            .map(|u| u.peak_threads)
            .max(),
        peak_processes: group
            .iter()
            .filter_map(|r| r.record.server.as_ref())
            .map(|u| u.peak_processes)
            .max(),
        peak_fds: median_of(&|u| u.peak_fds as f64),
        voluntary_switches_per_msg: per_msg(&|u| u.voluntary_switches as f64).map(|s| s.median),
        involuntary_switches_per_msg: per_msg(&|u| u.involuntary_switches as f64).map(|s| s.median),
        errors: group
            .iter()
            .filter_map(|r| r.report.as_ref())
            .map(|r| r.errors.total())
            .sum(),
        connections_starved: group
            .iter()
            .filter_map(|r| r.report.as_ref())
            .map(|r| r.connections_starved)
            .max()
            .unwrap_or(0),
        connections: group
            .iter()
            .filter_map(|r| r.report.as_ref())
            .map(|r| r.connections)
            .max()
            .unwrap_or(0),
        loadgen_saturated: group
            .iter()
            .filter_map(|r| r.report.as_ref())
            .any(|r| r.loadgen_saturated),
    }
}

/// Least-squares slope of `y` over `x`; `None` with fewer than two distinct `x`.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (points.len() >= 2 && sxx > 0.0).then(|| sxy / sxx)
}

fn memory_slope(model: &str, cells: &[Cell], workloads: &[Workload]) -> MemoryPerConnection {
    let mut pss = Vec::new();
    let mut rss = Vec::new();
    let mut fds = Vec::new();
    for w in workloads {
        let Workload::Idle { idle } = w else { continue };
        let Some(cell) = cells
            .iter()
            .find(|c| c.model == model && c.label == w.label())
        else {
            continue;
        };
        // Memory of a run whose idle connections were not all accepted says nothing per
        // connection; a failed run says nothing at all.
        if cell.status == Status::Failed || cell.errors > 0 {
            continue;
        }
        if let Some(p) = cell.peak_pss_kib {
            pss.push((*idle as f64, p));
        }
        if let Some(r) = cell.peak_rss_kib {
            rss.push((*idle as f64, r));
        }
        if let Some(f) = cell.peak_fds {
            fds.push((*idle as f64, f));
        }
    }
    let points = pss.iter().map(|&(x, y)| (x as usize, y)).collect();
    // Every connection the server took costs it at least one descriptor.
    let not_accepted = slope(&fds).filter(|taken| *taken < 0.9).map(|taken| {
        format!(
            "the server took about {:.0} % of the idle connections; the rest waited in the backlog",
            (taken * 100.0).clamp(0.0, 100.0)
        )
    });
    if not_accepted.is_some() {
        return MemoryPerConnection {
            model: model.to_owned(),
            pss_bytes_per_connection: None,
            rss_bytes_per_connection: None,
            points,
            not_accepted,
        };
    }
    MemoryPerConnection {
        model: model.to_owned(),
        pss_bytes_per_connection: slope(&pss).map(|s| s * 1024.0),
        rss_bytes_per_connection: slope(&rss).map(|s| s * 1024.0),
        points,
        not_accepted: None,
    }
}

fn headline(
    model: &str,
    cells: &[Cell],
    workloads: &[Workload],
    rate: Option<f64>,
    memory: &[MemoryPerConnection],
) -> Headline {
    let find = |w: &Workload| {
        cells
            .iter()
            .find(|c| c.model == model && c.label == w.label())
    };
    let ok = |c: &&Cell| c.status != Status::Failed;
    let mut best: Option<(f64, usize)> = None;
    for w in workloads {
        if let Workload::Pingpong { connections } = w {
            if let Some(t) = find(w).filter(ok).and_then(|c| c.throughput_msgs_per_s) {
                if best.is_none_or(|(b, _)| t.median > b) {
                    best = Some((t.median, *connections));
                }
            }
        }
    }
    let rate_cell = rate
        .and_then(|rate| find(&Workload::Rate { rate }))
        .filter(ok);
    let churn = find(&Workload::Churn).filter(ok);
    let sixteen = find(&Workload::Pingpong { connections: 16 }).filter(ok);
    let bulk = find(&Workload::Bulk).filter(ok);
    let mut flags = Vec::new();
    for c in cells.iter().filter(|c| c.model == model) {
        match c.status {
            Status::Failed => flags.push(format!("{} failed", c.label)),
            Status::Starved if c.workload == "pingpong" || c.workload == "rate" => {
                flags.push(format!(
                    "{}: {}/{} starved",
                    c.label, c.connections_starved, c.connections
                ))
            }
            _ => {}
        }
    }
    let bound: Vec<&str> = cells
        .iter()
        .filter(|c| c.model == model && c.loadgen_saturated)
        .map(|c| c.label.as_str())
        .collect();
    if !bound.is_empty() {
        flags.push(format!("loadgen-bound: {}", bound.join(", ")));
    }
    if memory
        .iter()
        .any(|m| m.model == model && m.not_accepted.is_some())
    {
        flags.push("idle connections left in the backlog".to_owned());
    }
    let errors: u64 = cells
        .iter()
        .filter(|c| c.model == model)
        .map(|c| c.errors)
        .sum();
    if errors > 0 {
        flags.push(format!("{errors} errors"));
    }
    Headline {
        model: model.to_owned(),
        peak_msgs_per_s: best.map(|b| b.0),
        peak_at_connections: best.map(|b| b.1),
        p99_us_at_rate: rate_cell.and_then(|c| c.latency_p99_us).map(|s| s.median),
        rate_achieved: rate_cell
            .and_then(|c| c.achieved_rate_ratio)
            .is_some_and(|r| r.median >= 0.95),
        churn_conns_per_s: churn
            .and_then(|c| c.throughput_msgs_per_s)
            .map(|s| s.median),
        bytes_per_idle_connection: memory
            .iter()
            .find(|m| m.model == model)
            .and_then(|m| m.pss_bytes_per_connection),
        cpu_us_per_msg: sixteen
            .and_then(|c| c.server_cpu_us_per_msg)
            .map(|s| s.median),
        bulk_mb_per_s: bulk
            .and_then(|c| c.throughput_msgs_per_s)
            .map(|s| s.median * crate::workload::BULK_SIZE as f64 / 1e6),
        flags,
    }
}

/// Cells by label, for a model: convenient for rendering.
pub fn by_label<'a>(summary: &'a Summary, model: &str) -> BTreeMap<&'a str, &'a Cell> {
    summary
        .cells
        .iter()
        .filter(|c| c.model == model)
        .map(|c| (c.label.as_str(), c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_median_of_odd_and_even_counts() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of([1.0, 2.0, 3.0, 10.0]).unwrap().median, 2.5);
        assert!(Spread::of([]).is_none());
    }

    #[test]
    fn slope_is_least_squares() {
        let s = slope(&[(0.0, 100.0), (1000.0, 120.0), (5000.0, 200.0)]).unwrap();
        assert!((s - 0.02).abs() < 1e-9, "{s}");
        assert!(slope(&[(1.0, 2.0)]).is_none());
    }
}
