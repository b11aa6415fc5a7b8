//! echobench: runs every echo-server model through the same workloads and reports how they
//! compare: throughput, latency, CPU and memory per connection, threads, processes, context
//! switches, connection-setup cost.
//!
//! Data flows one way, through four stages that share one schema:
//!
//! ```text
//! plan ──▶ run ──▶ raw/ on disk ──▶ summary ──▶ render
//!   (what to run)  (records)         (figures)   (report.md, report.html, SVG)
//! ```
//!
//! - [`workload`]: every fact about each workload, in one place: its name and label, the
//!   servers it runs, its connections, timing and loadgen options, its report tables and the
//!   figure findings rank it by;
//! - [`schema`]: the records on disk (`raw/*.run.json`, `environment.json`, `summary.json`);
//!   every stage imports it, none owns it.
//! - [`plan`]: options → the matrix of runs, their timing and loadgen options.
//! - [`run`]: starts, loads, samples and stops each server; writes `raw/`.
//! - [`summary`]: reads only `raw/` and `environment.json`; computes the figures.
//! - [`render`]: reads only the summary; writes the report files.
//!
//! No stage imports a later one (a unit test reads the imports and checks). [`compare`] and
//! [`report`] put the stages together. [`soak`] (`echobench soak`) stands beside them: a long run
//! of every concurrent model at once that looks for leaks, using the run stage's servers and
//! the render stage's charts.

pub mod cli;
pub mod diff;
pub mod plan;
pub mod render;
pub mod run;
pub mod schema;
pub mod soak;
pub mod summary;
pub mod workload;

use std::path::Path;

use plan::CompareOptions;
use schema::Summary;

/// Runs the whole comparison of `opts` into `opts.out`, then summarizes and renders it.
pub fn compare(opts: &CompareOptions) -> anyhow::Result<Summary> {
    run::run(opts)?;
    report(&opts.out)
}

/// Re-computes `summary.json` from `dir`'s raw data and renders the report files from it.
pub fn report(dir: &Path) -> anyhow::Result<Summary> {
    let analysis = summary::analyze(dir)?;
    summary::write(dir, &analysis.summary)?;
    render::write_reports(dir, &analysis)?;
    Ok(analysis.summary)
}

#[cfg(test)]
mod tests {
    /// The stages, in the order data flows through them.
    /// The comparison's stages; `soak` stands beside them and may use any.
    const STAGES: [&[&str]; 9] = [
        &["workload"],
        &["schema"],
        &["plan"],
        &["run"],
        &["summary"],
        &["render"],
        &["diff"],
        &["soak"],
        &["cli"],
    ];

    #[test]
    fn modules_import_one_way() {
        testkit::modgraph::assert_one_way(env!("CARGO_MANIFEST_DIR"), &STAGES);
    }
}
