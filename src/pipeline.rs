//! The stages put together: [`compare`] runs a comparison and reports it, [`report`] re-runs
//! the last two stages over what is on disk.

use std::path::Path;

use crate::plan::CompareOptions;
use crate::schema::Summary;
use crate::{render, run, summary};

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
