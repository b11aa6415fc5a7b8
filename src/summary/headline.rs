//! One model's row of the headline table, and its findings.

use std::collections::BTreeMap;

use crate::schema::{Cell, Ci, Headline, MemoryPerConnection, Spread, Status, Workload};
use crate::workload::BULK_SIZE;

/// The headline row of `model` from its cells.
pub fn headline(
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
            .filter(|c| c.status.has_figures())
    };
    let median = |c: Option<&Cell>, f: fn(&Cell) -> Option<crate::schema::Spread>| {
        c.and_then(f).map(|s| s.median)
    };
    let best = best_pingpong(workloads, &find);
    let capacity = find(&Workload::Slo { connections: 16 }).and_then(|c| c.capacity.as_ref());
    let rate_cell = rate.and_then(|rate| find(&Workload::Rate { rate }));
    let memory = memory.iter().find(|m| m.model == model);
    let cpu_cell = find(&Workload::Pingpong { connections: 16 });
    let ci_of = |c: Option<&Cell>, f: fn(&Cell) -> Option<Spread>| c.and_then(f).and_then(|s| s.ci);
    let mut ci = BTreeMap::new();
    let mut put = |key: &str, value: Option<Ci>| {
        if let Some(value) = value {
            ci.insert(key.to_owned(), value);
        }
    };
    let best_cell = best.and_then(|(_, c)| find(&Workload::Pingpong { connections: c }));
    let loadgen_bound = [
        ("peak_msgs_per_s", best_cell),
        ("p99_us_at_rate", rate_cell),
        ("churn_conns_per_s", find(&Workload::Churn)),
        ("cpu_us_per_msg", cpu_cell),
        ("bulk_mb_per_s", find(&Workload::Bulk)),
        (
            "tls_handshakes_per_s",
            find(&Workload::TlsChurn { resumed: false }),
        ),
    ]
    .into_iter()
    .filter(|(_, c)| c.is_some_and(|c| c.loadgen_saturated))
    .map(|(key, _)| key.to_owned())
    .collect();
    put(
        "peak_msgs_per_s",
        ci_of(best_cell, |c| c.throughput_msgs_per_s),
    );
    put("p99_us_at_rate", ci_of(rate_cell, |c| c.latency_p99_us));
    put(
        "churn_conns_per_s",
        ci_of(find(&Workload::Churn), |c| c.throughput_msgs_per_s),
    );
    put("bytes_per_idle_connection", memory.and_then(|m| m.pss_ci));
    put(
        "cpu_us_per_msg",
        ci_of(cpu_cell, |c| c.server_cpu_us_per_msg),
    );
    put(
        "tls_handshakes_per_s",
        ci_of(find(&Workload::TlsChurn { resumed: false }), |c| {
            c.throughput_msgs_per_s
        }),
    );
    put(
        "bulk_mb_per_s",
        ci_of(find(&Workload::Bulk), |c| c.throughput_msgs_per_s)
            .map(|ci| ci.scaled(BULK_SIZE as f64 / 1e6)),
    );
    Headline {
        model: model.to_owned(),
        peak_msgs_per_s: best.map(|b| b.0),
        peak_at_connections: best.map(|b| b.1),
        p99_us_at_rate: median(rate_cell, |c| c.latency_p99_us),
        rate_achieved: rate_cell
            .and_then(|c| c.achieved_rate_ratio)
            .is_some_and(|r| r.median >= 0.95),
        churn_conns_per_s: median(find(&Workload::Churn), |c| c.throughput_msgs_per_s),
        bytes_per_idle_connection: memory.and_then(|m| m.pss_bytes_per_connection),
        cpu_us_per_msg: median(cpu_cell, |c| c.server_cpu_us_per_msg),
        bulk_mb_per_s: median(find(&Workload::Bulk), |c| c.throughput_msgs_per_s)
            .map(|t| t * BULK_SIZE as f64 / 1e6),
        tls_handshakes_per_s: median(find(&Workload::TlsChurn { resumed: false }), |c| {
            c.throughput_msgs_per_s
        }),
        slo_rate: capacity.and_then(|c| c.rate),
        slo_at_least: capacity.is_some_and(|c| c.at_least),
        flags: flags(model, cells, memory),
        loadgen_bound,
        ci,
    }
}

/// The best pingpong throughput and the connections it was reached at.
fn best_pingpong<'a>(
    workloads: &[Workload],
    find: &dyn Fn(&Workload) -> Option<&'a Cell>,
) -> Option<(f64, usize)> {
    let mut best: Option<(f64, usize)> = None;
    for w in workloads {
        if let Workload::Pingpong { connections } = w {
            if let Some(t) = find(w).and_then(|c| c.throughput_msgs_per_s) {
                if best.is_none_or(|(b, _)| t.median > b) {
                    best = Some((t.median, *connections));
                }
            }
        }
    }
    best
}

/// Findings and caveats, counted (the report's "Who leads each workload" names the workloads):
/// failed and starved workloads, loadgen-bound workloads, idle connections left in the
/// backlog, errors. The pool sweep's workloads are left to its own table, and the hostile
/// clients' to theirs (legitimate clients an attack starved are its finding, not the model's
/// trouble).
fn flags(model: &str, cells: &[Cell], memory: Option<&MemoryPerConnection>) -> Vec<String> {
    let attacked = |c: &Cell| Workload::from_label(&c.label).is_some_and(|w| w.is_attack());
    let own = || {
        cells
            .iter()
            .filter(|c| c.model == model && c.workload != "pool" && !attacked(c))
    };
    let workloads = |n: usize| format!("{n} workload{}", if n == 1 { "" } else { "s" });
    let count = |keep: &dyn Fn(&Cell) -> bool| own().filter(|c| keep(c)).count();
    let mut flags = Vec::new();
    let failed = count(&|c| c.status == Status::Failed);
    if failed > 0 {
        flags.push(format!("failed in {}", workloads(failed)));
    }
    let not_run = count(&|c| c.status == Status::NotRun);
    if not_run > 0 {
        flags.push(format!(
            "not run in {} (above its caps)",
            workloads(not_run)
        ));
    }
    let starved = count(&|c| c.status == Status::Starved);
    if starved > 0 {
        flags.push(format!("starved in {}", workloads(starved)));
    }
    let bound = count(&|c| c.loadgen_saturated);
    if bound > 0 {
        flags.push(format!("loadgen-bound in {}", workloads(bound)));
    }
    if memory.is_some_and(|m| m.not_accepted.is_some()) {
        flags.push("idle connections left in the backlog".to_owned());
    }
    let errors: u64 = own().map(|c| c.errors).sum();
    if errors > 0 {
        flags.push(format!("{errors} errors"));
    }
    flags
}
