//! What `compare` shows while it runs. On a terminal: a progress bar with the run under way,
//! its server and workload, and the time left. Elsewhere (a log, CI): one line per server
//! whose runs are all done, saying how they ended, and one per finished pass when there are
//! several. The time left comes from the runs' planned load time, scaled by how long the
//! runs so far took against theirs.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::schema::{RunSpec, Status, Timing};

/// What a run costs beyond its load: starting and stopping the server, writing its records.
const RUN_OVERHEAD: Duration = Duration::from_millis(300);

/// How the runs of one server ended so far.
struct Tally {
    label: String,
    left: usize,
    /// By how runs ended: how many did, and their workloads.
    ended: BTreeMap<Status, (usize, Vec<String>)>,
}

impl Tally {
    /// Runs done.
    fn runs(&self) -> usize {
        self.ended.values().map(|(runs, _)| runs).sum()
    }
}

/// The progress of a comparison's runs.
pub struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
    started: Instant,
    planned: Vec<Duration>,
    planned_done: Duration,
    done: usize,
    tallies: Vec<Tally>,
    /// Runs per pass, and the passes, when there are several.
    passes: Option<(usize, u32)>,
}

impl Progress {
    /// Progress over `runs` (in the order they run), each timed by
    /// [`Workload::timing`](crate::schema::Workload::timing) of `timing`; shown only when `show`.
    pub fn new(runs: &[RunSpec], timing: Timing, repeats: u32, show: bool) -> Progress {
        let terminal = show && std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(runs.len() as u64);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos}/{len} runs · {elapsed} · {msg}",
            ) {
                bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
            }
            bar.enable_steady_tick(Duration::from_secs(1));
            bar
        });
        let mut tallies: Vec<Tally> = Vec::new();
        for spec in runs {
            let label = spec.server_label();
            match tallies.iter_mut().find(|t| t.label == label) {
                Some(t) => t.left += 1,
                None => tallies.push(Tally {
                    label,
                    left: 1,
                    ended: BTreeMap::new(),
                }),
            }
        }
        let planned = runs
            .iter()
            .map(|r| {
                let t = r.workload.timing(timing);
                t.warmup + t.duration + RUN_OVERHEAD
            })
            .collect();
        Progress {
            bar,
            lines: show && !terminal,
            started: Instant::now(),
            planned,
            planned_done: Duration::ZERO,
            done: 0,
            tallies,
            passes: (repeats > 1).then(|| (runs.len() / repeats as usize, repeats)),
        }
    }

    /// A run starts.
    pub fn start(&self, spec: &RunSpec) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} × {} (pass {}) · about {} left",
                spec.server_label(),
                spec.workload.label(),
                spec.repeat,
                short(self.left()),
            ));
        }
    }

    /// A run ended with `status`.
    pub fn finish(&mut self, spec: &RunSpec, status: Status) {
        self.planned_done += self.planned.get(self.done).copied().unwrap_or_default();
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        let label = spec.server_label();
        let Some(tally) = self.tallies.iter_mut().find(|t| t.label == label) else {
            return;
        };
        tally.left = tally.left.saturating_sub(1);
        let (runs, workloads) = tally.ended.entry(status).or_default();
        *runs += 1;
        if !workloads.contains(&spec.workload.label()) {
            workloads.push(spec.workload.label());
        }
        if tally.left == 0 && self.lines {
            eprintln!("{}; {}", server_line(tally), self.when());
        }
        if let Some((per_pass, passes)) = self.passes {
            if self.lines && per_pass > 0 && self.done % per_pass == 0 {
                let pass = self.done / per_pass;
                eprintln!(
                    "echobench: pass {pass} of {passes} done ({per_pass} runs); {}",
                    self.times()
                );
            }
        }
    }

    /// All runs are done.
    pub fn end(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }

    /// The planned time of the runs not yet done, scaled by how the runs so far kept to
    /// their plan.
    fn left(&self) -> Duration {
        let planned_left: Duration = self.planned.iter().skip(self.done).sum();
        if self.planned_done.is_zero() {
            return planned_left;
        }
        let pace = self.started.elapsed().as_secs_f64() / self.planned_done.as_secs_f64();
        planned_left.mul_f64(pace.clamp(0.5, 10.0))
    }

    /// Servers whose runs are all done.
    fn servers_done(&self) -> usize {
        self.tallies.iter().filter(|t| t.left == 0).count()
    }

    fn when(&self) -> String {
        format!(
            "{} of {} servers done, {}",
            self.servers_done(),
            self.tallies.len(),
            self.times()
        )
    }

    fn times(&self) -> String {
        if self.done == self.planned.len() {
            return format!("{} elapsed", short(self.started.elapsed()));
        }
        format!(
            "{} elapsed, about {} left",
            short(self.started.elapsed()),
            short(self.left())
        )
    }
}

/// `echobench: mio: 13 runs done (12 ok, 1 starved: pingpong-c1024)`.
fn server_line(t: &Tally) -> String {
    let ended: Vec<String> = t
        .ended
        .iter()
        .map(|(status, (runs, workloads))| match status {
            Status::Ok => format!("{runs} ok"),
            _ => format!("{runs} {}: {}", status.name(), workloads.join(", ")),
        })
        .collect();
    let runs = t.runs();
    let noun = if runs == 1 { "run" } else { "runs" };
    format!(
        "echobench: {}: {runs} {noun} done ({})",
        t.label,
        ended.join(", ")
    )
}

/// A duration to the second, as `3m 10s`.
fn short(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Workload;

    fn spec(model: &str, workload: Workload, repeat: u32) -> RunSpec {
        RunSpec {
            model: model.to_owned(),
            server_args: Vec::new(),
            workload,
            repeat,
        }
    }

    #[test]
    fn a_finished_server_reads_as_words_with_its_workloads() {
        let runs = [
            spec("blocking", Workload::Pingpong { connections: 16 }, 1),
            spec("blocking", Workload::Churn, 1),
            spec("mio", Workload::Churn, 1),
            spec("blocking", Workload::Pingpong { connections: 16 }, 2),
            spec("blocking", Workload::Churn, 2),
            spec("mio", Workload::Churn, 2),
        ];
        let timing = Timing {
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(300),
        };
        let mut p = Progress::new(&runs, timing, 2, false);
        let statuses = [
            Status::Starved,
            Status::Ok,
            Status::Ok,
            Status::Starved,
            Status::Failed,
            Status::Ok,
        ];
        for (r, s) in runs.iter().zip(statuses) {
            p.finish(r, s);
        }
        assert_eq!(p.servers_done(), 2);
        assert_eq!(
            server_line(&p.tallies[0]),
            "echobench: blocking: 4 runs done (1 ok, 2 starved: pingpong-c16, 1 failed: churn)"
        );
        assert_eq!(
            server_line(&p.tallies[1]),
            "echobench: mio: 2 runs done (2 ok)"
        );
        assert!(p.left().is_zero());
        assert_eq!(short(Duration::from_millis(190_700)), "3m 10s");
    }
}
