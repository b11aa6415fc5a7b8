//! The report's plots, one function each, drawn from the summary (and, for the latency
//! spectra, the cells' merged histograms) with the chart kinds of [`super::chart`].

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::chart::{self, Series, XAxis};
use super::format::{bytes, int, interval_words, us};
use super::palette::{self, Style};
use crate::schema::{Cell, ServerSpec, Spread, Summary, Workload};

/// One plot of the report.
pub struct Plot {
    /// File name under the report's directory, e.g. `p99-vs-rate.svg`.
    pub file: String,
    /// Caption under it.
    pub caption: String,
    /// The SVG document.
    pub svg: String,
}

/// Every plot, in report order.
pub fn plots(s: &Summary, latency: &BTreeMap<(String, String), Histogram<u64>>) -> Vec<Plot> {
    let mut plots = vec![
        throughput_vs_connections(s),
        p99_vs_rate(s),
        memory_vs_idle_connections(s),
        cpu_per_message(s),
    ];
    let pool = |l: &String| matches!(Workload::from_label(l), Some(Workload::Pool { .. }));
    if s.workloads.iter().any(pool) {
        plots.push(pool_sizes(s));
    }
    if let Some(cell) = s.cells.iter().find(|c| c.capacity.is_some()) {
        plots.push(capacity_knee(s, &cell.label));
    }
    for label in spectrum_workloads(s) {
        plots.push(latency_spectrum(s, latency, &label));
        plots.push(latency_spectrum_by_family(s, latency, &label));
    }
    // A plot of workloads that did not run, or whose runs all failed, is left out.
    plots.retain(|p| !p.svg.contains(chart::NO_DATA));
    plots
}

/// A plot, or where it cannot be drawn an SVG that says why.
fn plot(file: &str, caption: &str, svg: Result<String, String>) -> Plot {
    let svg = svg.unwrap_or_else(|e| {
        format!("<svg xmlns=\"http://www.w3.org/2000/svg\"><text x=\"10\" y=\"20\">{caption}: {e}</text></svg>")
    });
    Plot {
        file: file.to_owned(),
        caption: caption.to_owned(),
        svg,
    }
}

/// One series per model: (x of the workload, y of the cell, its median) over the cells that did
/// not fail of the workloads that have an x; each point's tip names the model, the workload,
/// the figure (`unit` writes it) and its interval.
fn series(
    s: &Summary,
    x: fn(&Workload) -> Option<f64>,
    y: &dyn Fn(&Cell) -> Option<Spread>,
    unit: fn(f64) -> String,
) -> Vec<Series> {
    s.models
        .iter()
        .map(|m| {
            let mut points: Vec<(f64, f64, String)> = s
                .cells
                .iter()
                .filter(|c| &c.model == m)
                .filter(|c| c.status.has_figures())
                .filter_map(|c| {
                    let at = x(&Workload::from_label(&c.label)?)?;
                    let v = y(c)?;
                    let tip = format!(
                        "{m} · {}: {} ({})",
                        c.label,
                        unit(v.median),
                        interval_words(v.ci, unit)
                    );
                    Some((at, v.median, tip))
                })
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let tips = points.iter().map(|p| p.2.clone()).collect();
            Series::new(
                m.clone(),
                palette::style(m),
                points.iter().map(|p| (p.0, p.1)).collect(),
            )
            .with_tips(tips)
        })
        .collect()
}

/// A figure without an interval, as [`series`] takes it.
fn bare(v: f64) -> Spread {
    Spread {
        median: v,
        min: v,
        max: v,
        ci: None,
    }
}

/// msgs/s as a tip says them.
fn per_s(v: f64) -> String {
    format!("{} msgs/s", int(v))
}

fn throughput_vs_connections(s: &Summary) -> Plot {
    let connections = |w: &Workload| match w {
        Workload::Pingpong { connections } => Some(*connections as f64),
        _ => None,
    };
    let series = series(s, connections, &|c| c.throughput_msgs_per_s, per_s);
    plot(
        "throughput-vs-connections.svg",
        "Pingpong: throughput against connections (closed loop, 64 B)",
        chart::lines(
            "Throughput vs connections",
            "connections (log scale)",
            "msgs/s",
            &series,
            XAxis::PowersOfTwo,
        ),
    )
}

fn p99_vs_rate(s: &Summary) -> Plot {
    let rate = |w: &Workload| match w {
        Workload::Rate { rate } => Some(*rate),
        _ => None,
    };
    let series = series(s, rate, &|c| c.latency_p99_us, |v| format!("p99 {}", us(v)));
    plot(
        "p99-vs-rate.svg",
        "Rate: p99 latency (corrected) against offered load",
        chart::lines(
            "p99 latency vs offered rate",
            "offered msgs/s",
            "p99 (µs)",
            &series,
            XAxis::Linear,
        ),
    )
}

/// The capacity search's steps (of workload `label`) as p99 against the offered rate, one line
/// per model: where each one's knee is.
fn capacity_knee(s: &Summary, label: &str) -> Plot {
    let series: Vec<Series> = s
        .models
        .iter()
        .map(|m| {
            let cell = s.cells.iter().find(|c| &c.model == m && c.label == label);
            let points: Vec<(f64, f64)> = cell
                .and_then(|c| c.capacity.as_ref())
                .map(|cap| cap.steps.iter().map(|&[x, y]| (x, y)).collect())
                .unwrap_or_default();
            let tips = points
                .iter()
                .map(|&(x, y)| format!("{m} · offered {} requests/s: p99 {}", int(x), us(y)))
                .collect();
            Series::new(m.clone(), palette::style(m), points).with_tips(tips)
        })
        .collect();
    let slo = s
        .cells
        .iter()
        .find_map(|c| c.capacity.as_ref())
        .map_or_else(String::new, |c| c.slo.clone());
    plot(
        &format!("capacity-{label}.svg"),
        &format!("Capacity search ({label}, target {slo}): p99 against the offered rate, every step of every search"),
        chart::lines(
            "p99 latency vs offered rate, capacity search",
            "offered requests/s",
            "p99 (µs)",
            &series,
            XAxis::Linear,
        ),
    )
}

fn memory_vs_idle_connections(s: &Summary) -> Plot {
    let idle = |w: &Workload| match w {
        Workload::Idle { idle } => Some(*idle as f64),
        _ => None,
    };
    // Runs with errors did not hold every idle connection: their memory is not drawn.
    let series = series(
        s,
        idle,
        &|c| (c.errors == 0).then_some(bare(c.peak_pss_kib? / 1024.0)),
        |mib| format!("PSS {}", bytes(mib * 1024.0 * 1024.0)),
    );
    plot(
        "memory-per-connection.svg",
        "Idle: server memory (PSS) against idle connections; memory per connection is the slope (see the table under Memory per connection)",
        chart::lines(
            "Server memory vs idle connections",
            "idle connections",
            "PSS (MiB)",
            &series,
            XAxis::Linear,
        ),
    )
}

fn cpu_per_message(s: &Summary) -> Plot {
    let categories = [
        "pingpong-c16",
        "churn (per connection)",
        "bulk (per 64 KiB)",
    ];
    let rows: Vec<(String, Style, Vec<Option<f64>>)> = s
        .models
        .iter()
        .map(|m| {
            let cells = s.cells_of(m);
            let v = |label: &str| {
                let cell = cells.get(label).filter(|c| c.status.has_figures());
                cell.and_then(|c| c.server_cpu_us_per_msg).map(|x| x.median)
            };
            (
                m.clone(),
                palette::style(m),
                vec![v("pingpong-c16"), v("churn"), v("bulk")],
            )
        })
        .collect();
    plot(
        "cpu-per-message.svg",
        "Server CPU per message (µs, whole process tree)",
        chart::bars("Server CPU per message", "µs", &categories, &rows),
    )
}

/// The workloads that get a latency spectrum, one of each kind: 16 connections (or the first
/// pingpong), the lowest rate, churn, the most idle connections, bulk.
fn spectrum_workloads(s: &Summary) -> Vec<String> {
    let kind = |l: &String| Workload::from_label(l).map(|w| w.name());
    let first = |name: &str| s.workloads.iter().find(|l| kind(l) == Some(name)).cloned();
    let last = |name: &str| {
        s.workloads
            .iter()
            .rev()
            .find(|l| kind(l) == Some(name))
            .cloned()
    };
    let pingpong = s
        .workloads
        .iter()
        .find(|l| *l == "pingpong-c16")
        .cloned()
        .or_else(|| first("pingpong"));
    [
        pingpong,
        first("rate"),
        first("churn"),
        last("idle"),
        first("bulk"),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Each model's merged latency histogram of workload `label`, with its look.
fn histograms<'a>(
    s: &Summary,
    latency: &'a BTreeMap<(String, String), Histogram<u64>>,
    label: &str,
) -> Vec<(String, Style, &'a Histogram<u64>)> {
    s.models
        .iter()
        .filter_map(|m| {
            let h = latency.get(&(m.clone(), label.to_owned()))?;
            Some((m.clone(), palette::style(m), h))
        })
        .collect()
}

/// The spectrum of `label` as small multiples, a panel per family.
fn latency_spectrum_by_family(
    s: &Summary,
    latency: &BTreeMap<(String, String), Histogram<u64>>,
    label: &str,
) -> Plot {
    plot(
        &format!("latency-{label}-by-family.svg"),
        &format!("Latency by percentile, {label}, a panel per family on the same axes"),
        chart::spectrum_by_family(
            &format!("Latency by percentile by family: {label}"),
            &histograms(s, latency, label),
        ),
    )
}

fn latency_spectrum(
    s: &Summary,
    latency: &BTreeMap<(String, String), Histogram<u64>>,
    label: &str,
) -> Plot {
    let histograms = histograms(s, latency, label);
    plot(
        &format!("latency-{label}.svg"),
        &format!(
            "Latency by percentile, {label} (HdrHistogram's spectrum: x = 1/(1−p) on a log scale)"
        ),
        chart::spectrum(&format!("Latency by percentile: {label}"), &histograms),
    )
}

/// The pool sweep: throughput against workers, one line per pool and client count (dashed:
/// the larger count). A pool serves as many clients as it has workers; the rest wait.
fn pool_sizes(s: &Summary) -> Plot {
    let mut series: Vec<Series> = Vec::new();
    let clients: Vec<(usize, &String)> = s
        .workloads
        .iter()
        .filter_map(|l| match Workload::from_label(l)? {
            Workload::Pool { connections } => Some((connections, l)),
            _ => None,
        })
        .collect();
    let pools: Vec<&str> = echo_server::Model::ALL
        .iter()
        .filter(|m| m.pool_workers().is_some())
        .map(|m| m.name())
        .collect();
    for pool in pools {
        for (k, (n, label)) in clients.iter().enumerate() {
            let mut points: Vec<(f64, f64)> = s
                .cells
                .iter()
                .filter(|c| &c.label == *label && ServerSpec::model_of(&c.model) == pool)
                .filter(|c| c.status.has_figures())
                .filter_map(|c| {
                    let workers = ServerSpec::workers_of(&c.model)? as f64;
                    Some((workers, c.throughput_msgs_per_s?.median))
                })
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            if points.is_empty() {
                continue;
            }
            let style = Style {
                dashed: k > 0,
                ..palette::style(pool)
            };
            let tips = points
                .iter()
                .map(|&(w, t)| format!("{pool}({w}), {n} clients: {}", per_s(t)))
                .collect();
            series.push(
                Series::new(format!("{pool}, {n} clients"), style, points)
                    .of_model(pool)
                    .with_tips(tips),
            );
        }
    }
    plot(
        "pool-sizes.svg",
        "Pool: throughput against pool size (closed loop, 64 B); dashed: more clients",
        chart::lines(
            "Throughput vs pool size",
            "workers (log scale)",
            "msgs/s",
            &series,
            XAxis::PowersOfTwo,
        ),
    )
}
