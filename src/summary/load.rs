//! Reading a comparison's raw records back from `raw/`.

use std::path::Path;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;

use crate::schema::RunRecord;

/// One run read back from `raw/`.
pub struct RunData {
    /// The runner's record.
    pub record: RunRecord,
    /// loadgen's report; `None` when loadgen never reported.
    pub report: Option<loadgen::Report>,
    /// Latency histogram (ns), from the interval log.
    pub latency: Option<Histogram<u64>>,
}

/// Reads every run under `dir/raw`, in a stable order.
pub fn load_runs(dir: &Path) -> anyhow::Result<Vec<RunData>> {
    let raw = dir.join("raw");
    let mut paths: Vec<_> = std::fs::read_dir(&raw)
        .with_context(|| format!("cannot read {}", raw.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".run.json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("{} holds no runs (*.run.json)", raw.display());
    }
    let mut runs = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        let record: RunRecord = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a run record", path.display()))?;
        let id = record.spec.id();
        let report = std::fs::read_to_string(raw.join(format!("{id}.json")))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let latency = loadgen::hlog::read(&raw.join(format!("{id}.hlog")))
            .ok()
            .and_then(|mut log| log.totals.remove("latency"));
        runs.push(RunData {
            record,
            report,
            latency,
        });
    }
    Ok(runs)
}
