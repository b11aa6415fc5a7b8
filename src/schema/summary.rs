//! `summary.json`: the figures of a comparison, computed from `raw/` alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::environment::Environment;
use super::run::Status;

/// Median with the smallest and largest value over repeats, and the figure's confidence
/// interval where one is computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median over repeats.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// 95 % confidence interval of the median (see [`Resampling`]); absent for figures that
    /// get none (uncorrected latency, connect time, achieved rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<Ci>,
}

/// A 95 % confidence interval and the samples behind it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Ci {
    /// Lower bound, in the figure's unit; `null` when too few samples stand behind the figure
    /// for an interval ("n/a").
    pub low: Option<f64>,
    /// Upper bound, in the figure's unit; `null` as `low`.
    pub high: Option<f64>,
    /// Repeats (runs) behind the figure.
    pub repeats: usize,
    /// Intervals behind it, over all repeats (0 for figures that come from repeats only).
    pub intervals: usize,
    /// Intervals per resampled block (0 for figures that come from repeats only).
    pub block_intervals: usize,
    /// Blocks the bootstrap resampled, over all repeats.
    pub blocks: usize,
}

impl Ci {
    /// The interval with both bounds multiplied by `k` (> 0).
    pub fn scaled(self, k: f64) -> Ci {
        Ci {
            low: self.low.map(|v| v * k),
            high: self.high.map(|v| v * k),
            ..self
        }
    }
}

/// How the confidence intervals were computed, as `summary.json` states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resampling {
    /// Seed of the bootstrap (from `environment.json`; 0 when it recorded none).
    pub seed: u64,
    /// Bootstrap resamples per cell.
    pub resamples: usize,
    /// Confidence level of every interval.
    pub confidence: f64,
    /// Length of the intervals a run's histograms and server CPU are kept in, seconds.
    pub interval_s: f64,
    /// Fewest blocks (over all repeats) for an interval; below it the interval is "n/a".
    pub min_blocks: usize,
    /// Fewest repeats for memory per connection's interval, which comes from repeats only.
    pub min_repeats_memory: usize,
    /// The method, in words.
    pub method: String,
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
            ci: None,
        })
    }
}

/// The figures of one model under one workload, over its repeats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    /// Server: the model name, with its arguments when its runs had any (`thread-pool(64)`).
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
    /// 99.9th percentile latency, µs (open loop: corrected).
    #[serde(default)]
    pub latency_p99_9_us: Option<Spread>,
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
    /// Server: the model name, with its arguments when its runs had any (`thread-pool(64)`).
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
    /// 95 % confidence interval of the PSS slope, bytes per connection, from the slopes of the
    /// repeats alone (Student's t); absent when no slope is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pss_ci: Option<Ci>,
}

/// One model's row of the headline table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Headline {
    /// Server: the model name, with its arguments when its runs had any (`thread-pool(64)`).
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
    /// Confidence intervals of the figures above, by their key (e.g. `peak_msgs_per_s`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ci: BTreeMap<String, Ci>,
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
    /// How the confidence intervals were computed.
    pub resampling: Resampling,
}

impl Summary {
    /// The cells of one model (server label), by workload label.
    pub fn cells_of(&self, model: &str) -> BTreeMap<&str, &Cell> {
        self.cells
            .iter()
            .filter(|c| c.model == model)
            .map(|c| (c.label.as_str(), c))
            .collect()
    }
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
}
