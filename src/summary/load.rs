//! Reading a comparison's raw records back from `raw/`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;

use super::parallel;
use super::samples::{self, IntervalSample};
use crate::schema::RunRecord;
use loadgen::chat::FANOUT_TAG;
use loadgen::work::CLASS_TAGS;

/// One run read back from `raw/`.
pub struct RunData {
    /// The runner's record.
    pub record: RunRecord,
    /// loadgen's report; `None` when loadgen never reported.
    pub report: Option<loadgen::Report>,
    /// Latency histogram (ns), from the interval log.
    pub latency: Option<Histogram<u64>>,
    /// The interval log's latency intervals, with the server CPU of each.
    pub samples: Vec<IntervalSample>,
    /// Requests with a cost: each class's latency intervals (`class-N` in the log), by class;
    /// empty otherwise.
    pub classes: Vec<Vec<IntervalSample>>,
    /// The chat room: the fan-out latency's intervals (`fanout` in the log); empty otherwise.
    pub fanout: Vec<IntervalSample>,
}

/// Reads every run under `dir/raw`, in a stable order.
pub fn load_runs(dir: &Path) -> anyhow::Result<Vec<RunData>> {
    let (raw, paths) = record_paths(dir)?;
    // The biggest interval logs first.
    let size = |p: &PathBuf| {
        let log = p.to_string_lossy().replace(".run.json", ".hlog");
        std::fs::metadata(log).map_or(0, |m| m.len())
    };
    parallel::map(&paths, size, |path| read_run(&raw, path))
        .into_iter()
        .collect()
}

/// Reads only the runner's records under `dir/raw`, in a stable order: what was run, when
/// the figures are not needed.
pub fn load_records(dir: &Path) -> anyhow::Result<Vec<RunRecord>> {
    let (_, paths) = record_paths(dir)?;
    paths.iter().map(|p| read_record(p)).collect()
}

/// `dir/raw` and its run records' paths, sorted; an error when it holds none.
fn record_paths(dir: &Path) -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
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
    Ok((raw, paths))
}

fn read_record(path: &Path) -> anyhow::Result<RunRecord> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a run record", path.display()))
}

/// One run: its record, and beside it loadgen's report and interval log.
fn read_run(raw: &Path, path: &Path) -> anyhow::Result<RunData> {
    let record = read_record(path)?;
    let id = record.spec.id();
    // A report that cannot be read, or that no run can have, is as good as missing.
    let report = std::fs::read_to_string(raw.join(format!("{id}.json")))
        .ok()
        .and_then(|t| serde_json::from_str::<loadgen::Report>(&t).ok())
        .filter(|r| r.implausible().is_none());
    let log = read_latency(&raw.join(format!("{id}.hlog")));
    let mut samples = log.samples;
    if let Some(server) = &record.server {
        samples::attach_cpu(&mut samples, &server.cpu_series);
    }
    Ok(RunData {
        record,
        report,
        latency: log.total,
        samples,
        classes: log.classes,
        fanout: log.fanout,
    })
}

/// What a run's interval log holds.
#[derive(Default)]
struct LatencyLog {
    /// The whole run's histogram.
    total: Option<Histogram<u64>>,
    /// Its intervals.
    samples: Vec<IntervalSample>,
    /// Each request class's intervals, by class.
    classes: Vec<Vec<IntervalSample>>,
    /// The chat room's fan-out latency intervals.
    fanout: Vec<IntervalSample>,
}

/// The whole-run latency histogram of an interval log, its intervals and each request
/// class's; nothing when the log is missing or unreadable (the run is then reported without
/// latency).
fn read_latency(path: &Path) -> LatencyLog {
    let mut log = LatencyLog::default();
    let read = loadgen::hlog::visit(path, |interval| {
        let sample = || {
            IntervalSample::new(
                interval.start.as_secs_f64(),
                interval.length.as_secs_f64(),
                &interval.histogram,
            )
        };
        if interval.tag == "latency" {
            // loadgen records every histogram with the same bounds: adding cannot fail.
            let _ = log
                .total
                .get_or_insert_with(loadgen::new_histogram)
                .add(&interval.histogram);
            log.samples.push(sample());
        } else if let Some(class) = CLASS_TAGS.iter().position(|t| *t == interval.tag) {
            if log.classes.len() <= class {
                log.classes.resize(class + 1, Vec::new());
            }
            log.classes[class].push(sample());
        } else if interval.tag == FANOUT_TAG {
            log.fanout.push(sample());
        }
        Ok(())
    });
    match read {
        Ok(_) => LatencyLog {
            samples: samples::tidy(log.samples),
            classes: log.classes.into_iter().map(samples::tidy).collect(),
            fanout: samples::tidy(log.fanout),
            total: log.total,
        },
        Err(_) => LatencyLog::default(),
    }
}
