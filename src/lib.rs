//! echobench: runs every echo-server model through the same workloads and reports how they
//! compare: throughput, latency, CPU and memory per connection, threads, processes, context
//! switches, connection-setup cost.
//!
//! [`runner::compare`] runs the matrix of a [`workload::Profile`] and writes raw results;
//! [`report::render`] turns a result directory's raw data into `summary.json`, `report.md`,
//! `report.html` and SVG plots.

pub mod environment;
pub mod plots;
pub mod procfs;
pub mod report;
pub mod runner;
pub mod summary;
pub mod workload;
