//! The third stage: from a comparison's raw records to its figures. Medians and spreads per
//! model and workload with their confidence intervals ([`bootstrap`]), memory per connection,
//! the headline, and the merged latency histograms the plots draw. Everything here is computed
//! from `raw/` and `environment.json` alone, with the seed recorded there, so `echobench
//! report` re-renders the same figures.

pub mod attack;
pub mod bootstrap;
mod cell;
pub mod chat;
pub mod claims;
pub mod findings;
mod headline;
mod load;
pub mod memory;
mod parallel;
pub mod samples;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::schema::{
    Environment, Resampling, RunSpec, ServerSpec, Summary, Workload, SCHEMA_VERSION,
};
use bootstrap::{Bootstrap, CellSamples};
pub use load::{load_records, load_runs, RunData};
use loadgen::rng::Rng;
pub use memory::slope;

/// What the summary stage hands to rendering: `summary.json`'s figures and, for the latency
/// plots, every cell's histogram.
pub struct Analysis {
    /// The figures, as written to `summary.json`.
    pub summary: Summary,
    /// Latency (ns) of each cell, keyed by (model, workload label): its runs' histograms added
    /// up, failed runs left out.
    pub latency: BTreeMap<(String, String), Histogram<u64>>,
    /// Each cell's bootstrap, keyed as `latency`; cells without samples have none.
    pub bootstraps: BTreeMap<(String, String), Bootstrap>,
}

/// Reads `dir`'s environment and raw records and computes their figures, resampling with the
/// seed `environment.json` records.
pub fn analyze(dir: &Path) -> anyhow::Result<Analysis> {
    analyze_seeded(dir, None)
}

/// As [`analyze`], resampling with `seed` when given (`echobench diff` resamples both sides
/// with one seed).
pub fn analyze_seeded(dir: &Path, seed: Option<u64>) -> anyhow::Result<Analysis> {
    let env = Environment::read(&dir.join("environment.json"))?;
    let runs = load_runs(dir)?;
    let seed = seed.unwrap_or_else(|| env.seed.unwrap_or(0));
    let (summary, bootstraps) = summarize(&env, &runs, seed);
    Ok(Analysis {
        summary,
        latency: merged_latency(&runs),
        bootstraps,
    })
}

/// A cell's runs: its server label, its workload and the runs of both.
type Group<'a> = (String, Workload, Vec<&'a RunData>);

/// Bootstraps by (model, workload label).
type Bootstraps = BTreeMap<(String, String), Bootstrap>;

/// Writes `summary.json`.
pub fn write(dir: &Path, summary: &Summary) -> anyhow::Result<()> {
    let path = dir.join("summary.json");
    let json = serde_json::to_string_pretty(summary)? + "\n";
    std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))
}

/// Builds the summary from the runs of a comparison, with each cell's bootstrap.
pub fn summarize(env: &Environment, runs: &[RunData], seed: u64) -> (Summary, Bootstraps) {
    // Each run's server label, once: runs are grouped into cells by it.
    let labels: Vec<String> = runs.iter().map(|r| r.record.spec.server_label()).collect();
    let models = models_in_order(env, runs);
    let workloads = workloads_in_order(env, runs);
    let mut groups: Vec<Group> = Vec::new();
    for model in &models {
        for w in &workloads {
            let group: Vec<&RunData> = runs
                .iter()
                .zip(&labels)
                .filter(|(r, label)| *label == model && r.record.spec.workload == *w)
                .map(|(r, _)| r)
                .collect();
            if !group.is_empty() {
                groups.push((model.clone(), *w, group));
            }
        }
    }
    let bootstraps = bootstrap_cells(&groups, seed);
    let classes = bootstrap_classes(&groups, seed);
    let fanout = bootstrap_fanout(&groups, seed);
    let cells: Vec<_> = groups
        .iter()
        .map(|(m, w, g)| {
            let key = (m.clone(), w.label());
            let own = classes.get(&key).map_or(&[][..], Vec::as_slice);
            cell::cell(m, w, g, bootstraps.get(&key), own, fanout.get(&key))
        })
        .collect();
    let ran = |m: &String, kind: &dyn Fn(&Workload) -> bool| {
        runs.iter()
            .zip(&labels)
            .any(|(r, label)| label == m && kind(&r.record.spec.workload))
    };
    let memory_per_connection: Vec<_> = models
        .iter()
        .filter(|m| ran(m, &|w| matches!(w, Workload::Idle { .. })))
        .map(|m| {
            let mut memory = memory::memory_slope(m, &cells, &workloads);
            let own: Vec<&RunData> = runs
                .iter()
                .zip(&labels)
                .filter(|(_, label)| *label == m)
                .map(|(r, _)| r)
                .collect();
            if memory.pss_bytes_per_connection.is_some() {
                memory.pss_ci = Some(memory::slope_ci(&memory::repeat_slopes(&own)));
            }
            memory
        })
        .collect();
    let rate_for_p99 = workloads.iter().find_map(|w| match w {
        Workload::Rate { rate } => Some(*rate),
        _ => None,
    });
    // The servers only the pool sweep ran have no headline row: their figures are in its
    // table; nor have the UDP models, whose figures are in the UDP section, nor the servers
    // only the requests with a cost (`MODEL+pool`) or the chat room ran.
    let headline = models
        .iter()
        .filter(|m| {
            ran(m, &|w| {
                !matches!(w, Workload::Pool { .. })
                    && !w.is_udp()
                    && !w.is_work()
                    && !w.is_chat()
                    && !w.is_attack()
            })
        })
        .map(|m| headline::headline(m, &cells, &workloads, rate_for_p99, &memory_per_connection))
        .collect();
    let findings = findings::findings(
        &models,
        &workloads,
        &cells,
        &memory_per_connection,
        &bootstraps,
    );
    let claims = claims::claims(&cells, &bootstraps, &classes);
    let chat_models = chat::models(&models, &cells);
    let sharing_costs = chat::sharing_costs(&cells, &bootstraps);
    let attack_models = attack::models(&models, &cells);
    let summary = Summary {
        schema_version: SCHEMA_VERSION,
        environment: env.clone(),
        models,
        workloads: workloads.iter().map(Workload::label).collect(),
        rate_for_p99,
        headline,
        cells,
        memory_per_connection,
        resampling: resampling(seed),
        findings,
        claims,
        chat_models,
        sharing_costs,
        attack_models,
    };
    (summary, bootstraps)
}

/// How the intervals are computed, for `summary.json`.
fn resampling(seed: u64) -> Resampling {
    Resampling {
        seed,
        resamples: bootstrap::RESAMPLES,
        confidence: bootstrap::CONFIDENCE,
        interval_s: crate::workload::INTERVAL.as_secs_f64(),
        min_blocks: bootstrap::MIN_BLOCKS,
        min_repeats_memory: memory::MIN_REPEATS,
        method: "hierarchical bootstrap: repeats drawn with replacement, then within each a moving-block bootstrap over its intervals (block length per figure, from its intervals' series (throughput, mean latency, CPU per echo): 1 when their lag-1 autocorrelation ρ is inside ±2/√n, else the shortest block that reproduces 85 % of Σρ^k; with 3 repeats or more, shortened as needed to leave 20 blocks); each resample's figure is the median over its repeats, percentiles from added histograms; percentile interval. Memory per connection: Student's t over the repeats' slopes.".to_owned(),
    }
}

/// Every cell's bootstrap, on all the machine's CPUs; each cell draws from its own stream of
/// `seed`, so the result does not depend on the order or the number of threads.
fn bootstrap_cells(groups: &[Group], seed: u64) -> Bootstraps {
    bootstrap_of(groups, seed, |r| &r.samples, "")
}

/// Each chat cell's bootstrap of its fan-out latency (a cell without fan-out intervals has
/// none); drawn from a stream of its own.
fn bootstrap_fanout(groups: &[Group], seed: u64) -> Bootstraps {
    bootstrap_of(groups, seed, |r| &r.fanout, " fanout")
}

/// The bootstraps of the cells over the intervals `of` picks from each run, each cell's
/// drawn from the stream of `seed` named by its model, its workload and `stream`.
fn bootstrap_of(
    groups: &[Group],
    seed: u64,
    of: fn(&RunData) -> &Vec<samples::IntervalSample>,
    stream: &str,
) -> Bootstraps {
    let jobs: Vec<(&Group, CellSamples)> = groups
        .iter()
        .filter_map(|g| {
            let repeats: Vec<&[samples::IntervalSample]> = cell::counted(&g.2)
                .iter()
                .map(|r| of(r).as_slice())
                .filter(|s| !s.is_empty())
                .collect();
            (!repeats.is_empty()).then(|| (g, CellSamples::new(&repeats)))
        })
        .collect();
    let done = parallel::map(
        &jobs,
        |(_, cell)| cell.cost(),
        |((model, workload, _), cell)| {
            let key = (model.clone(), workload.label());
            let mut rng = Rng::for_key(seed, &format!("{} {}{stream}", key.0, key.1));
            (key, bootstrap::bootstrap(cell, &mut rng))
        },
    );
    done.into_iter().collect()
}

/// Each request class's bootstrap, by class, of the cells whose runs measured more than one
/// class apart (`mixed`: the light and the heavy requests).
fn bootstrap_classes(groups: &[Group], seed: u64) -> BTreeMap<(String, String), Vec<Bootstrap>> {
    let mut done = BTreeMap::new();
    for (model, workload, group) in groups {
        let counted = cell::counted(group);
        let most = counted.iter().map(|r| r.classes.len()).max().unwrap_or(0);
        if most < 2 {
            continue;
        }
        let key = (model.clone(), workload.label());
        let each: Option<Vec<Bootstrap>> = (0..most)
            .map(|k| {
                let repeats: Vec<&[samples::IntervalSample]> = counted
                    .iter()
                    .filter_map(|r| r.classes.get(k))
                    .map(Vec::as_slice)
                    .filter(|s| !s.is_empty())
                    .collect();
                let mut rng = Rng::for_key(seed, &format!("{} {} class {k}", key.0, key.1));
                (!repeats.is_empty())
                    .then(|| bootstrap::bootstrap(&CellSamples::new(&repeats), &mut rng))
            })
            .collect();
        // A class that no repeat measured: no class has an interval.
        if let Some(each) = each {
            done.insert(key, each);
        }
    }
    done
}

/// The servers that ran: the comparison's in its order, then any others (the pool sweep's) by
/// model in the registry's order and by workers.
fn models_in_order(env: &Environment, runs: &[RunData]) -> Vec<String> {
    let mut others: Vec<&RunSpec> = runs
        .iter()
        .map(|r| &r.record.spec)
        .filter(|spec| !env.models.contains(&spec.server_label()))
        .collect();
    let registry_index = |model: &str| {
        echo_server::Model::ALL
            .iter()
            .position(|m| m.name() == model)
            .unwrap_or(usize::MAX)
    };
    let workers =
        |spec: &RunSpec| ServerSpec::workers_of(&spec.server_label()).unwrap_or(usize::MAX);
    others.sort_by_key(|spec| {
        (
            registry_index(&spec.model),
            workers(spec),
            spec.server_label(),
        )
    });
    let mut models = env.models.clone();
    for spec in others {
        let label = spec.server_label();
        if !models.contains(&label) {
            models.push(label);
        }
    }
    models
}

/// The workloads that ran: the profile's in its order, then any others in the order met.
fn workloads_in_order(env: &Environment, runs: &[RunData]) -> Vec<Workload> {
    let ran = |w: &Workload| runs.iter().any(|r| r.record.spec.workload == *w);
    let mut workloads: Vec<Workload> = Workload::of_profile(env.profile)
        .into_iter()
        .chain(Workload::udp_of_profile(env.profile))
        .chain(Workload::work())
        .chain(Workload::chat())
        .chain(Workload::attack())
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
    for run in runs.iter().filter(|r| r.record.status.has_figures()) {
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
