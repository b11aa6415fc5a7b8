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
//! [`report`] ([`pipeline`]) put the stages together; [`cli`], last, is the command line.
//! [`soak`] (`echobench soak`) stands beside them: a long run of every concurrent model at
//! once that looks for leaks, using the run stage's servers and the render stage's charts.

pub mod cli;
pub mod diff;
pub mod pipeline;
pub mod plan;
pub mod render;
pub mod run;
pub mod schema;
pub mod soak;
pub mod summary;
pub mod workload;

pub use pipeline::{compare, report};

#[cfg(test)]
mod tests {
    /// The stages, in the order data flows through them.
    /// The comparison's stages; `soak` stands beside them and may use any.
    const STAGES: [&[&str]; 10] = [
        &["workload"],
        &["schema"],
        &["plan"],
        &["run"],
        &["summary"],
        &["render"],
        &["pipeline"],
        &["diff"],
        &["soak"],
        &["cli"],
    ];

    #[test]
    fn modules_import_one_way() {
        testkit::modgraph::assert_one_way(env!("CARGO_MANIFEST_DIR"), &STAGES);
    }
}
