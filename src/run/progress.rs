//! What `compare` shows while it runs. On a terminal: a progress bar with the run under way,
//! its server and workload, and the time left. Elsewhere (a log, CI): one line per server
//! whose runs are all done, saying how they ended, one per finished pass when there are
//! several, and between them a heartbeat at least every [`BEAT`] (runs done, the run under
//! way, the time left), so that a log never goes quiet for minutes while the runs of every
//! server are still in flight. The time left comes from the runs' planned load time, scaled
//! by how long the runs so far took against theirs.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::schema::{RunSpec, Status, Timing};

/// What a run costs beyond its load: starting and stopping the server, writing its records.
const RUN_OVERHEAD: Duration = Duration::from_millis(300);

/// Longest a log goes without a line from `compare` while runs are under way.
pub const BEAT: Duration = Duration::from_secs(30);

/// What the heartbeat says, kept up to date by [`Progress`] and read by its thread.
struct Beat {
    /// When the last line was printed, by the heartbeat or by [`Progress`].
    last_line: Instant,
    done: usize,
    total: usize,
    /// The run under way: `mio × churn (pass 2)`.
    current: String,
    /// The time left as estimated at `estimated`.
    left: Duration,
    estimated: Instant,
}

impl Beat {
    /// `echobench: 37 of 260 runs done; now mio × churn (pass 1); 3m 2s elapsed, about 9m left`.
    fn line(&self, started: Instant) -> String {
        let left = self.left.saturating_sub(self.estimated.elapsed());
        format!(
            "echobench: {} of {} runs done; now {}; {} elapsed, about {} left",
            self.done,
            self.total,
            self.current,
            short(started.elapsed()),
            short(left)
        )
    }
}

/// The heartbeat's thread: prints [`Beat::line`] whenever [`BEAT`] has passed without a line,
/// until its sender is dropped.
struct Heart {
    beat: Arc<Mutex<Beat>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Heart {
    fn start(total: usize, started: Instant) -> Heart {
        let beat = Arc::new(Mutex::new(Beat {
            last_line: Instant::now(),
            done: 0,
            total,
            current: "starting".to_owned(),
            left: Duration::ZERO,
            estimated: Instant::now(),
        }));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = Arc::clone(&beat);
        let thread = std::thread::spawn(move || loop {
            let wait = {
                let beat = shared.lock().unwrap_or_else(PoisonError::into_inner);
                BEAT.saturating_sub(beat.last_line.elapsed())
            };
            match stopped.recv_timeout(wait.max(Duration::from_millis(100))) {
                Err(RecvTimeoutError::Timeout) => {
                    let mut beat = shared.lock().unwrap_or_else(PoisonError::into_inner);
                    if beat.last_line.elapsed() >= BEAT {
                        eprintln!("{}", beat.line(started));
                        beat.last_line = Instant::now();
                    }
                }
                _ => return,
            }
        });
        Heart {
            beat,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Beat)) {
        f(&mut self.beat.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

impl Drop for Heart {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

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
    /// The heartbeat, where lines are printed.
    heart: Option<Heart>,
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
        let lines = show && !terminal;
        let started = Instant::now();
        Progress {
            bar,
            lines,
            heart: lines.then(|| Heart::start(runs.len(), started)),
            started,
            planned,
            planned_done: Duration::ZERO,
            done: 0,
            tallies,
            passes: (repeats > 1).then(|| (runs.len() / repeats as usize, repeats)),
        }
    }

    /// A run starts.
    pub fn start(&self, spec: &RunSpec) {
        let current = format!(
            "{} × {} (pass {})",
            spec.server_label(),
            spec.workload.label(),
            spec.repeat
        );
        if let Some(heart) = &self.heart {
            let left = self.left();
            heart.update(|beat| {
                beat.done = self.done;
                beat.current.clone_from(&current);
                beat.left = left;
                beat.estimated = Instant::now();
            });
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{current} · about {} left", short(self.left())));
        }
    }

    /// Prints a line of the log, which the heartbeat counts as one.
    fn say(&self, line: &str) {
        eprintln!("{line}");
        if let Some(heart) = &self.heart {
            heart.update(|beat| beat.last_line = Instant::now());
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
            let line = format!("{}; {}", server_line(tally), self.when());
            self.say(&line);
        }
        if let Some((per_pass, passes)) = self.passes {
            if self.lines && per_pass > 0 && self.done % per_pass == 0 {
                let pass = self.done / per_pass;
                let line = format!(
                    "echobench: pass {pass} of {passes} done ({per_pass} runs); {}",
                    self.times()
                );
                self.say(&line);
            }
        }
    }

    /// All runs are done.
    pub fn end(mut self) {
        self.heart.take();
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

    #[test]
    fn the_heartbeat_says_runs_done_the_run_under_way_and_the_time_left() {
        let started = Instant::now();
        let beat = Beat {
            last_line: started,
            done: 37,
            total: 260,
            current: "mio × churn (pass 1)".to_owned(),
            left: Duration::from_secs(600),
            estimated: Instant::now(),
        };
        let line = beat.line(started);
        assert!(
            line.starts_with(
                "echobench: 37 of 260 runs done; now mio × churn (pass 1); 0s elapsed, about 9m"
            ),
            "{line}"
        );
    }
}
