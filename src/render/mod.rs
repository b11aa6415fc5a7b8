//! The last stage: from the summary to `report.md`, `report.html` and the SVG plots. It reads
//! only what the summary stage hands it, never `raw/`; rendering is deterministic, so the same
//! summary gives byte-identical files.
//!
//! [`document`] lays out the report as [`Block`]s, section by section; [`markup`] writes them
//! as Markdown and as HTML; [`plots`] draws each plot with the chart kinds of [`chart`];
//! [`format`](mod@format) says how figures read; [`headline`] is the table `compare` also prints;
//! [`python`] answers the tutorials' question where Python models ran.

pub mod agents;
pub mod answer;
pub mod attack;
pub mod block;
pub mod chart;
pub mod chat;
pub mod document;
pub mod findings;
pub mod format;
pub mod headline;
pub mod markup;
pub mod palette;
pub mod plots;
pub mod python;
pub mod work;

use std::path::Path;

use anyhow::Context;

use crate::summary::Analysis;
pub use block::Block;
pub use headline::{headline_table, headline_text, text_table};
pub use plots::Plot;

/// Writes the plots, `report.md` and `report.html` of `analysis` into `dir`.
pub fn write_reports(dir: &Path, analysis: &Analysis) -> anyhow::Result<()> {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    let summary = &analysis.summary;
    let plots = plots::plots(summary, &analysis.latency);
    for plot in &plots {
        write(&plot.file, &plot.svg)?;
    }
    let doc = document::document(summary, &plots);
    write("report.md", &markup::markdown(&doc))?;
    write("report.html", &markup::html(&doc, &plots, summary))
}
