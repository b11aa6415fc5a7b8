//! The comparison matrix: profiles, workloads, and the loadgen options of each run.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How thorough a comparison is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Every workload once, short runs: within 5 minutes on 2 cores.
    Quick,
    /// Longer runs, more rates, each run repeated 3 times (median and spread).
    Full,
    /// A smoke test of the whole pipeline in seconds (for tests, not for conclusions).
    #[value(hide = true)]
    Tiny,
}

/// One workload of the matrix, with its parameter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "workload", rename_all = "lowercase")]
pub enum Workload {
    /// Closed loop, 64 B, this many connections.
    Pingpong {
        /// Concurrent connections.
        connections: usize,
    },
    /// Open loop at this total rate over 16 connections, 64 B.
    Rate {
        /// Offered messages per second.
        rate: f64,
    },
    /// One connection per message, 16 at a time.
    Churn,
    /// One active connection (closed loop) beside this many idle ones.
    Idle {
        /// Idle connections held open.
        idle: usize,
    },
    /// 64 KiB messages, 16 connections, closed loop.
    Bulk,
}

/// Connections of the rate, churn and bulk workloads.
pub const SIXTEEN: usize = 16;

/// Message size of the bulk workload.
pub const BULK_SIZE: usize = 64 * 1024;

impl Workload {
    /// The workload's name, as in DESIGN.md's table.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Pingpong { .. } => "pingpong",
            Workload::Rate { .. } => "rate",
            Workload::Churn => "churn",
            Workload::Idle { .. } => "idle",
            Workload::Bulk => "bulk",
        }
    }

    /// A short label with the parameter, e.g. `pingpong-c16`, `rate-20000`, `idle-1000`.
    pub fn label(&self) -> String {
        match self {
            Workload::Pingpong { connections } => format!("pingpong-c{connections}"),
            Workload::Rate { rate } => format!("rate-{rate:.0}"),
            Workload::Churn => "churn".to_owned(),
            Workload::Idle { idle } => format!("idle-{idle}"),
            Workload::Bulk => "bulk".to_owned(),
        }
    }

    /// The timing of this workload's runs: idle runs warm up until the server can have taken
    /// every idle connection (a forking server makes about a thousand processes a second on
    /// one core), so that memory is measured with all of them held.
    pub fn timing(&self, profile: Timing) -> Timing {
        match *self {
            Workload::Idle { idle } => Timing {
                warmup: profile
                    .warmup
                    .max(Duration::from_secs_f64(idle as f64 / 1000.0)),
                duration: profile.duration,
            },
            _ => profile,
        }
    }

    /// Loadgen options for this workload against `addr`.
    pub fn loadgen_options(&self, addr: std::net::SocketAddr, timing: Timing) -> loadgen::Options {
        let mut o = loadgen::Options::new(addr);
        o.duration = timing.duration;
        o.warmup = timing.warmup;
        o.progress = false;
        match *self {
            Workload::Pingpong { connections } => o.connections = connections,
            Workload::Rate { rate } => {
                o.connections = SIXTEEN;
                o.rate = Some(rate);
            }
            Workload::Churn => {
                o.connections = SIXTEEN;
                o.churn = true;
            }
            Workload::Idle { idle } => {
                o.connections = 1;
                o.idle = idle;
            }
            Workload::Bulk => {
                o.connections = SIXTEEN;
                o.size = BULK_SIZE;
            }
        }
        o
    }
}

/// Warm-up and measured time of every run of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Warm-up, excluded from every figure.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
}

/// One run of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Model name.
    pub model: String,
    /// Workload and parameter.
    pub workload: Workload,
    /// Repeat number, from 1.
    pub repeat: u32,
}

impl RunSpec {
    /// The run's file name stem under `raw/`, e.g. `mio.pingpong-c16.r1`.
    pub fn id(&self) -> String {
        format!("{}.{}.r{}", self.model, self.workload.label(), self.repeat)
    }
}

impl Profile {
    /// The workloads of this profile, in report order.
    pub fn workloads(self) -> Vec<Workload> {
        let (connections, rates, idles): (&[usize], &[f64], &[usize]) = match self {
            Profile::Quick => (&[1, 16, 128, 1024], &[10_000.0, 50_000.0], &[0, 1000, 5000]),
            Profile::Full => (
                &[1, 16, 128, 1024],
                &[5_000.0, 20_000.0, 50_000.0, 100_000.0],
                &[0, 1000, 5000],
            ),
            Profile::Tiny => (&[1, 16], &[2_000.0], &[0, 50]),
        };
        let mut all: Vec<Workload> = connections
            .iter()
            .map(|&c| Workload::Pingpong { connections: c })
            .collect();
        all.extend(rates.iter().map(|&rate| Workload::Rate { rate }));
        all.push(Workload::Churn);
        all.extend(idles.iter().map(|&idle| Workload::Idle { idle }));
        all.push(Workload::Bulk);
        all
    }

    /// How many times each run is repeated.
    pub fn repeats(self) -> u32 {
        match self {
            Profile::Full => 3,
            Profile::Quick | Profile::Tiny => 1,
        }
    }

    /// Warm-up and measured time per run. Quick fits its whole matrix, whatever the number of
    /// models, into about four minutes of load (idle runs' longer warm-ups included).
    pub fn timing(self, runs: usize) -> Timing {
        match self {
            Profile::Full => Timing {
                warmup: Duration::from_secs(2),
                duration: Duration::from_secs(10),
            },
            Profile::Quick => {
                let budget = Duration::from_secs(180).as_secs_f64() / runs.max(1) as f64;
                let duration = (budget * 0.75).clamp(1.0, 2.0);
                Timing {
                    warmup: Duration::from_secs_f64((budget * 0.25).clamp(0.3, 0.5)),
                    duration: Duration::from_secs_f64(duration),
                }
            }
            Profile::Tiny => Timing {
                warmup: Duration::from_millis(100),
                duration: Duration::from_millis(300),
            },
        }
    }

    /// Every run of the matrix for these models, repeats interleaved so that a slow spell of
    /// a shared machine does not fall on one model's repeats only.
    pub fn plan(self, models: &[String]) -> Vec<RunSpec> {
        let mut runs = Vec::new();
        for repeat in 1..=self.repeats() {
            for model in models {
                for workload in self.workloads() {
                    runs.push(RunSpec {
                        model: model.clone(),
                        workload,
                        repeat,
                    });
                }
            }
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_fits_five_minutes_for_twelve_models() {
        let models: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
        let runs = Profile::Quick.plan(&models);
        let t = Profile::Quick.timing(runs.len());
        let load: f64 = runs
            .iter()
            .map(|r| r.workload.timing(t))
            .map(|t| (t.warmup + t.duration).as_secs_f64())
            .sum();
        assert!(load <= 270.0, "{load} s of load for {} runs", runs.len());
    }

    #[test]
    fn run_ids_are_unique() {
        let runs = Profile::Full.plan(&["a".into(), "b".into()]);
        let mut ids: Vec<_> = runs.iter().map(RunSpec::id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), runs.len());
    }
}
