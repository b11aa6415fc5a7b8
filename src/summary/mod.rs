//! The third stage: from a comparison's raw records to its figures. Medians and spreads per
//! model and workload, memory per connection, the headline, and the merged latency histograms
//! the plots draw. Everything here is computed from `raw/` and `environment.json` alone, so
//! `echobench report` re-renders the same figures.

mod cell;
mod headline;
mod load;
pub mod memory;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::plan;
use crate::schema::{Environment, Status, Summary, Workload, SCHEMA_VERSION};
pub use load::{load_runs, RunData};
pub use memory::slope;

/// What the summary stage hands to rendering: `summary.json`'s figures and, for the latency
/// plots, every cell's histogram.
pub struct Analysis {
    /// The figures, as written to `summary.json`.
    pub summary: Summary,
    /// Latency (ns) of each cell, keyed by (model, workload label): its runs' histograms added
    /// up, failed runs left out.
    pub latency: BTreeMap<(String, String), Histogram<u64>>,
}

/// Reads `dir`'s environment and raw records and computes their figures.
pub fn analyze(dir: &Path) -> anyhow::Result<Analysis> {
    let env = Environment::read(&dir.join("environment.json"))?;
    let runs = load_runs(dir)?;
    Ok(Analysis {
        summary: summarize(&env, &runs),
        latency: merged_latency(&runs),
    })
}

/// Writes `summary.json`.
pub fn write(dir: &Path, summary: &Summary) -> anyhow::Result<()> {
    let path = dir.join("summary.json");
    let json = serde_json::to_string_pretty(summary)? + "\n";
    std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))
}

/// Builds the summary from the runs of a comparison.
pub fn summarize(env: &Environment, runs: &[RunData]) -> Summary {
    // Each run's server label, once: runs are grouped into cells by it.
    let labels: Vec<String> = runs.iter().map(|r| r.record.spec.server_label()).collect();
    let mut models = env.models.clone();
    for label in &labels {
        if !models.contains(label) {
            models.push(label.clone());
        }
    }
    let workloads = workloads_in_order(env, runs);
    let mut cells = Vec::new();
    for model in &models {
        for w in &workloads {
            let group: Vec<&RunData> = runs
                .iter()
                .zip(&labels)
                .filter(|(r, label)| *label == model && r.record.spec.workload == *w)
                .map(|(r, _)| r)
                .collect();
            if !group.is_empty() {
                cells.push(cell::cell(model, w, &group));
            }
        }
    }
    let memory_per_connection: Vec<_> = models
        .iter()
        .map(|m| memory::memory_slope(m, &cells, &workloads))
        .collect();
    let rate_for_p99 = workloads.iter().find_map(|w| match w {
        Workload::Rate { rate } => Some(*rate),
        _ => None,
    });
    let headline = models
        .iter()
        .map(|m| headline::headline(m, &cells, &workloads, rate_for_p99, &memory_per_connection))
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

/// The workloads that ran: the profile's in its order, then any others in the order met.
fn workloads_in_order(env: &Environment, runs: &[RunData]) -> Vec<Workload> {
    let ran = |w: &Workload| runs.iter().any(|r| r.record.spec.workload == *w);
    let mut workloads: Vec<Workload> = plan::workloads(env.profile)
        .into_iter()
        .filter(ran)
        .collect();
    for r in runs {
        if !workloads.contains(&r.record.spec.workload) {
            workloads.push(r.record.spec.workload);
        }
    }
    workloads
}

/// Every cell's latency histogram, its runs' added up (failed runs left out).
fn merged_latency(runs: &[RunData]) -> BTreeMap<(String, String), Histogram<u64>> {
    let mut merged: BTreeMap<(String, String), Histogram<u64>> = BTreeMap::new();
    for run in runs.iter().filter(|r| r.record.status != Status::Failed) {
        let Some(latency) = &run.latency else {
            continue;
        };
        let key = (
            run.record.spec.server_label(),
            run.record.spec.workload.label(),
        );
        match merged.get_mut(&key) {
            // loadgen records every histogram with the same bounds; one that did not fit would
            // be left out.
            Some(sum) => {
                let _ = sum.add(latency);
            }
            None => {
                merged.insert(key, latency.clone());
            }
        }
    }
    merged
}
