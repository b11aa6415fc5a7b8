//! `echobench diff OLD NEW`: what changed between two comparisons, and how sure the change is.
//!
//! Per model and workload the change in throughput, p50, p99 and server CPU per message, and
//! per model in memory per connection; each with a 95 % interval for the change and a verdict.
//! Both sides are resampled with one seed (OLD's), each by its own hierarchical bootstrap
//! ([`crate::summary::bootstrap`]); the change's interval is the 2.5th–97.5th percentile of
//! NEW's resample over OLD's, less one. Memory per connection's comes from the two sides'
//! intervals over repeats: from NEW's low over OLD's high to NEW's high over OLD's low.
//!
//! Verdicts, with a threshold t: *no change* when the interval lies within ±t, or excludes
//! zero with the change itself within ±t; *improved* or *regressed* when the interval excludes
//! zero and the change is beyond ±t; *inconclusive* otherwise. With fewer than 3 repeats on
//! either side (or too few samples for an interval) the verdict is threshold-only and marked
//! "no CI": within ±t is *no change*, beyond it *inconclusive*; it is never a regression.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::render::format::{bytes, int, us, DASH};
use crate::render::{text_table, Block};
use crate::schema::{Cell, Environment, Spread, Summary, SCHEMA_VERSION};
use crate::summary::bootstrap::{change_interval, figure, Bootstrap, CONFIDENCE};
use crate::summary::{self, memory, Analysis};

/// Fewest repeats on each side for a change's interval.
pub use crate::summary::bootstrap::MIN_REPEATS;

/// The verdict on one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Better beyond the threshold, and the interval excludes no change.
    Improved,
    /// Worse beyond the threshold, and the interval excludes no change.
    Regressed,
    /// Within the threshold.
    NoChange,
    /// The data cannot tell.
    Inconclusive,
    /// A side has no figure (failed, or not run).
    NotComparable,
}

impl Verdict {
    /// The verdict as reports write it.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Regressed => "regressed",
            Verdict::NoChange => "no change",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotComparable => "not comparable",
        }
    }
}

/// One figure of one cell (or of one model, for memory per connection), old against new.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Server label.
    pub model: String,
    /// Workload label; `idle` for memory per connection.
    pub workload: String,
    /// `throughput`, `p50`, `p99`, `cpu_per_msg` or `memory_per_connection`.
    pub figure: String,
    /// Unit of `old` and `new`: `msgs/s`, `us` or `bytes`.
    pub unit: String,
    /// OLD's figure (median over repeats).
    pub old: Option<f64>,
    /// NEW's figure.
    pub new: Option<f64>,
    /// Relative change, NEW / OLD − 1.
    pub change: Option<f64>,
    /// 95 % interval of the relative change; `null` without one ("no CI").
    pub change_ci: Option<[f64; 2]>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why there is no interval, or what else differs (a side failed or starved).
    pub note: Option<String>,
}

/// `diff.json`: the whole comparison of two comparisons.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The baseline directory.
    pub old: String,
    /// The directory judged against it.
    pub new: String,
    /// Relative threshold below which a change is no change.
    pub threshold: f64,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// Seed both sides were resampled with.
    pub seed: u64,
    /// How the two comparisons' settings or machines differ.
    pub warnings: Vec<String>,
    /// Every figure compared.
    pub rows: Vec<Row>,
}

impl Diff {
    /// Whether any figure regressed.
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Verdict::Regressed)
    }

    /// How many rows have each verdict, in [`Verdict`] order.
    pub fn counts(&self) -> Vec<(Verdict, usize)> {
        let mut counts = std::collections::BTreeMap::new();
        for r in &self.rows {
            *counts.entry(r.verdict).or_insert(0) += 1;
        }
        counts.into_iter().collect()
    }
}

/// Compares the comparisons in `old` and `new`.
pub fn diff(old: &Path, new: &Path, threshold: f64) -> anyhow::Result<Diff> {
    let before = summary::analyze(old).with_context(|| format!("OLD {}", old.display()))?;
    let seed = before.summary.resampling.seed;
    let after = summary::analyze_seeded(new, Some(seed))
        .with_context(|| format!("NEW {}", new.display()))?;
    let mut rows = Vec::new();
    for a in &before.summary.cells {
        let Some(b) = after
            .summary
            .cells
            .iter()
            .find(|b| b.model == a.model && b.label == a.label)
        else {
            continue;
        };
        let key = (a.model.clone(), a.label.clone());
        let pair = (before.bootstraps.get(&key), after.bootstraps.get(&key));
        rows.extend(cell_rows(a, b, pair, threshold));
    }
    rows.extend(memory_rows(&before, &after, threshold));
    Ok(Diff {
        schema_version: SCHEMA_VERSION,
        old: old.display().to_string(),
        new: new.display().to_string(),
        threshold,
        confidence: CONFIDENCE,
        seed,
        warnings: warnings(&before.summary, &after.summary),
        rows,
    })
}

/// A figure of a cell: its name, unit, whether more is better, where it is in a cell and in
/// a bootstrap's figures.
struct Figure {
    name: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    of: fn(&Cell) -> Option<Spread>,
    index: usize,
}

const FIGURES: [Figure; 4] = [
    Figure {
        name: "throughput",
        unit: "msgs/s",
        higher_is_better: true,
        of: |c| c.throughput_msgs_per_s,
        index: figure::THROUGHPUT,
    },
    Figure {
        name: "p50",
        unit: "us",
        higher_is_better: false,
        of: |c| c.latency_p50_us,
        index: figure::P50,
    },
    Figure {
        name: "p99",
        unit: "us",
        higher_is_better: false,
        of: |c| c.latency_p99_us,
        index: figure::P99,
    },
    Figure {
        name: "cpu_per_msg",
        unit: "us",
        higher_is_better: false,
        of: |c| c.server_cpu_us_per_msg,
        index: figure::CPU_PER_MESSAGE,
    },
];

/// The rows of one cell present on both sides.
fn cell_rows(
    a: &Cell,
    b: &Cell,
    (boot_a, boot_b): (Option<&Bootstrap>, Option<&Bootstrap>),
    threshold: f64,
) -> Vec<Row> {
    let status_note = match (a.status, b.status) {
        (x, y) if x == y => None,
        (x, y) => Some(format!("{} in OLD, {} in NEW", x.name(), y.name())),
    };
    FIGURES
        .iter()
        .map(|f| {
            let failed = !a.status.has_figures() || !b.status.has_figures();
            let (old, new) = ((f.of)(a).map(|s| s.median), (f.of)(b).map(|s| s.median));
            let interval = match (boot_a, boot_b) {
                (Some(x), Some(y)) => change_interval(x, y, f.index),
                _ => Err("no interval logs".to_owned()),
            };
            let mut row = judge(
                old.filter(|_| !failed),
                new.filter(|_| !failed),
                interval,
                threshold,
                f.higher_is_better,
            );
            row.model.clone_from(&a.model);
            row.workload.clone_from(&a.label);
            row.figure = f.name.to_owned();
            row.unit = f.unit.to_owned();
            row.note = join_notes(status_note.clone(), row.note);
            row
        })
        .collect()
}

fn join_notes(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

/// The verdict on a change, its figures filled in; names and units are left to the caller.
fn judge(
    old: Option<f64>,
    new: Option<f64>,
    interval: Result<[f64; 2], String>,
    threshold: f64,
    higher_is_better: bool,
) -> Row {
    let mut row = Row {
        model: String::new(),
        workload: String::new(),
        figure: String::new(),
        unit: String::new(),
        old,
        new,
        change: None,
        change_ci: None,
        verdict: Verdict::NotComparable,
        note: None,
    };
    let (Some(o), Some(n)) = (old, new) else {
        row.note = Some("a side has no figure".to_owned());
        return row;
    };
    if o <= 0.0 {
        row.note = Some("OLD's figure is zero".to_owned());
        return row;
    }
    let change = n / o - 1.0;
    row.change = Some(change);
    let better = |c: f64| if higher_is_better { c > 0.0 } else { c < 0.0 };
    row.verdict = match interval {
        Err(why) => {
            row.note = Some(why);
            if change.abs() < threshold {
                Verdict::NoChange
            } else {
                Verdict::Inconclusive
            }
        }
        Ok([low, high]) => {
            row.change_ci = Some([low, high]);
            let excludes_zero = low > 0.0 || high < 0.0;
            if (low > -threshold && high < threshold) || (excludes_zero && change.abs() < threshold)
            {
                Verdict::NoChange
            } else if excludes_zero && better(change) {
                Verdict::Improved
            } else if excludes_zero {
                Verdict::Regressed
            } else {
                Verdict::Inconclusive
            }
        }
    };
    row
}

/// Memory per connection of every model on both sides.
fn memory_rows(before: &Analysis, after: &Analysis, threshold: f64) -> Vec<Row> {
    let mut rows = Vec::new();
    for a in &before.summary.memory_per_connection {
        let Some(b) = after
            .summary
            .memory_per_connection
            .iter()
            .find(|b| b.model == a.model)
        else {
            continue;
        };
        // Each side's interval over its repeats, as its summary gives it with its slope.
        let (ca, cb) = (a.pss_ci.unwrap_or_default(), b.pss_ci.unwrap_or_default());
        let interval = match (ca.low, ca.high, cb.low, cb.high) {
            (Some(al), Some(ah), Some(bl), Some(bh)) if al > 0.0 => {
                Ok([bl / ah - 1.0, bh / al - 1.0])
            }
            (Some(_), Some(_), Some(_), Some(_)) => {
                Err("no CI: OLD's interval reaches zero".to_owned())
            }
            _ => Err(format!(
                "no CI: {} repeat(s), {} needed",
                ca.repeats.min(cb.repeats),
                memory::MIN_REPEATS
            )),
        };
        let mut row = judge(
            a.pss_bytes_per_connection,
            b.pss_bytes_per_connection,
            interval,
            threshold,
            false,
        );
        row.model.clone_from(&a.model);
        row.workload = "idle".to_owned();
        row.figure = "memory_per_connection".to_owned();
        row.unit = "bytes".to_owned();
        rows.push(row);
    }
    rows
}

/// One setting of an environment, as text.
type Field = fn(&Environment) -> String;

/// How the two comparisons' machines and settings differ (the commit is what one diffs, and
/// is not warned about).
fn warnings(a: &Summary, b: &Summary) -> Vec<String> {
    let (x, y) = (&a.environment, &b.environment);
    let fields: [(&str, Field); 10] = [
        ("host", |e| e.hostname.clone()),
        ("CPU", |e| e.cpu_model.clone()),
        ("CPUs", |e| e.cores.to_string()),
        ("memory", |e| format!("{} KiB", e.memory_kib)),
        ("kernel", |e| e.kernel.clone()),
        ("rustc", |e| e.rustc.clone()),
        ("server CPUs", |e| e.server_cpus.clone()),
        ("loadgen CPUs", |e| e.loadgen_cpus.clone()),
        ("profile", |e| e.profile.name().to_owned()),
        ("repeats", |e| {
            e.repeats
                .map_or_else(|| "unrecorded".to_owned(), |r| r.to_string())
        }),
    ];
    let mut out: Vec<String> = fields
        .iter()
        .filter(|(_, f)| f(x) != f(y))
        .map(|(name, f)| {
            format!(
                "the environments differ: {name} {} (OLD) against {} (NEW)",
                f(x),
                f(y)
            )
        })
        .collect();
    let only = |from: &Summary, to: &Summary| -> Vec<String> {
        from.cells
            .iter()
            .filter(|c| {
                !to.cells
                    .iter()
                    .any(|d| d.model == c.model && d.label == c.label)
            })
            .map(|c| format!("{} {}", c.model, c.label))
            .collect()
    };
    for (side, cells) in [("OLD", only(a, b)), ("NEW", only(b, a))] {
        if !cells.is_empty() {
            out.push(format!(
                "only in {side} (not compared): {}",
                cells.join(", ")
            ));
        }
    }
    out
}

/// A figure in its unit.
fn value(unit: &str, v: Option<f64>) -> String {
    match (unit, v) {
        (_, None) => DASH.to_owned(),
        ("msgs/s", Some(v)) => int(v),
        ("bytes", Some(v)) => bytes(v),
        (_, Some(v)) => us(v),
    }
}

/// `+3.2 % [−1.0, +7.5]`, or `+3.2 % (no CI)`.
fn change_text(r: &Row) -> String {
    let pct = |c: f64| format!("{:+.1}", c * 100.0).replace('-', "−");
    match (r.change, r.change_ci) {
        (None, _) => DASH.to_owned(),
        (Some(c), Some([low, high])) => format!("{} % [{}, {}]", pct(c), pct(low), pct(high)),
        (Some(c), None) => format!("{} % (no CI)", pct(c)),
    }
}

fn table_row(r: &Row) -> Vec<String> {
    vec![
        r.model.clone(),
        r.workload.clone(),
        r.figure.clone(),
        value(&r.unit, r.old),
        value(&r.unit, r.new),
        change_text(r),
        r.verdict.text().to_owned(),
        r.note.clone().unwrap_or_else(|| DASH.to_owned()),
    ]
}

fn header() -> Vec<String> {
    [
        "model",
        "workload",
        "figure",
        "old",
        "new",
        "change [95 % CI]",
        "verdict",
        "note",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// One line of counts: `3 regressed, 40 no change, 1 inconclusive`.
fn counts_line(d: &Diff) -> String {
    let counts: Vec<String> = d
        .counts()
        .iter()
        .map(|(v, n)| format!("{n} {}", v.text()))
        .collect();
    format!(
        "{} figures compared (threshold ±{:.1} %): {}.",
        d.rows.len(),
        d.threshold * 100.0,
        counts.join(", ")
    )
}

/// The terminal's view: the counts, and a table of every figure that is not "no change".
pub fn text(d: &Diff) -> String {
    let rows: Vec<Vec<String>> = d
        .rows
        .iter()
        .filter(|r| r.verdict != Verdict::NoChange)
        .map(table_row)
        .collect();
    let mut out = counts_line(d) + "\n";
    if !rows.is_empty() {
        out += &text_table(&header(), &rows);
    }
    out
}

/// `diff.md`'s content.
pub fn document(d: &Diff) -> Vec<Block> {
    let mut doc = vec![
        Block::Heading(1, "echobench diff".to_owned()),
        Block::Para(format!(
            "OLD `{}`, NEW `{}`. Change = NEW / OLD − 1, with its {:.0} % interval (both sides resampled with seed {}). {}",
            d.old,
            d.new,
            d.confidence * 100.0,
            d.seed,
            counts_line(d)
        )),
        Block::Para("Verdicts: *no change* when the interval lies within the threshold, or excludes zero with the change within it; *improved* / *regressed* when the interval excludes zero and the change is beyond the threshold; *inconclusive* otherwise. Without an interval (fewer than 3 repeats on a side, or too few samples: \"no CI\") a change within the threshold is *no change* and one beyond it *inconclusive*.".to_owned()),
    ];
    if !d.warnings.is_empty() {
        doc.push(Block::Heading(2, "Warnings".to_owned()));
        doc.push(Block::List(d.warnings.clone()));
    }
    doc.push(Block::Heading(2, "Every figure".to_owned()));
    doc.push(Block::Table(
        header(),
        d.rows.iter().map(table_row).collect(),
    ));
    doc
}

/// Writes `diff.md` and `diff.json` into `dir`.
pub fn write(dir: &Path, d: &Diff) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let md = crate::render::markup::markdown(&document(d));
    let json = serde_json::to_string_pretty(d)? + "\n";
    for (name, text) in [("diff.md", md), ("diff.json", json)] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(change: f64, ci: Option<[f64; 2]>, higher_is_better: bool) -> Verdict {
        let interval = ci.ok_or_else(|| "no CI".to_owned());
        judge(
            Some(100.0),
            Some(100.0 * (1.0 + change)),
            interval,
            0.05,
            higher_is_better,
        )
        .verdict
    }

    #[test]
    fn verdicts_follow_the_interval_and_the_threshold() {
        use Verdict::*;
        assert_eq!(verdict(0.01, Some([-0.02, 0.04]), true), NoChange);
        assert_eq!(
            verdict(0.02, Some([0.01, 0.03]), true),
            NoChange,
            "real but small"
        );
        assert_eq!(verdict(-0.2, Some([-0.25, -0.15]), true), Regressed);
        assert_eq!(
            verdict(0.2, Some([0.15, 0.25]), false),
            Regressed,
            "more latency"
        );
        assert_eq!(verdict(-0.2, Some([-0.25, -0.15]), false), Improved);
        assert_eq!(verdict(0.08, Some([-0.01, 0.17]), true), Inconclusive);
        assert_eq!(verdict(0.02, None, true), NoChange);
        assert_eq!(
            verdict(-0.3, None, true),
            Inconclusive,
            "never a regression without a CI"
        );
    }
}
