//! The first stage: what a comparison will do. From the options (servers, profile, CPUs) to
//! the matrix of runs, each with its timing and its loadgen options.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use echo_server::Model;

use crate::schema::{Profile, RunSpec, ServerSpec, Timing, Workload, BULK_SIZE, SIXTEEN};

/// What a comparison is asked to do.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Servers to run, in report order.
    pub servers: Vec<ServerSpec>,
    /// Profile.
    pub profile: Profile,
    /// Output directory.
    pub out: PathBuf,
    /// CPUs for the server.
    pub server_cpus: Vec<usize>,
    /// CPUs for loadgen (disjoint from the server's).
    pub loadgen_cpus: Vec<usize>,
    /// Show a progress bar on a terminal.
    pub progress: bool,
}

/// The servers `--models` names: a comma-separated list of models, or `all`, each with its
/// defaults. The error names the unknown model and the known ones.
pub fn parse_models(list: &str) -> Result<Vec<ServerSpec>, String> {
    if list == "all" {
        return Ok(Model::ALL
            .iter()
            .map(|m| ServerSpec::model(m.name()))
            .collect());
    }
    list.split(',')
        .map(str::trim)
        .map(|name| match Model::from_name(name) {
            Some(_) => Ok(ServerSpec::model(name)),
            None => {
                let known: Vec<&str> = Model::ALL.iter().map(|m| m.name()).collect();
                Err(format!(
                    "--models: unknown model '{name}' (known: {}, or all)",
                    known.join(", ")
                ))
            }
        })
        .collect()
}

/// The default split of the CPUs this process may use: on 2 CPUs, server 0 and loadgen 1; on
/// more, the first half for the server and the second for loadgen.
pub fn default_cpus(available: &[usize]) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
    if available.len() < 2 {
        bail!(
            "the server and loadgen need disjoint CPUs, and only {} is available; \
             pass --server-cpus and --loadgen-cpus",
            loadgen::format_cpus(available)
        );
    }
    let half = available.len() / 2;
    Ok((available[..half].to_vec(), available[half..].to_vec()))
}

/// The workloads of a profile, in report order.
pub fn workloads(profile: Profile) -> Vec<Workload> {
    let (connections, rates, idles): (&[usize], &[f64], &[usize]) = match profile {
        Profile::Quick => (&[1, 16, 128, 1024], &[10_000.0, 50_000.0], &[0, 1000, 5000]),
        Profile::Full => (
            &[1, 16, 128, 1024],
            &[5_000.0, 20_000.0, 50_000.0, 100_000.0],
            &[0, 1000, 5000, 10_000],
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

/// How many times each run of a profile is repeated.
pub fn repeats(profile: Profile) -> u32 {
    match profile {
        Profile::Full => 3,
        Profile::Quick | Profile::Tiny => 1,
    }
}

/// Warm-up and measured time per run. Quick fits its whole matrix, whatever the number of
/// models, into about four minutes of load (idle runs' longer warm-ups included).
pub fn timing(profile: Profile, runs: usize) -> Timing {
    match profile {
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

/// Every run of the matrix for these servers, repeats interleaved so that a slow spell of a
/// shared machine does not fall on one server's repeats only.
pub fn runs(profile: Profile, servers: &[ServerSpec]) -> Vec<RunSpec> {
    let mut runs = Vec::new();
    for repeat in 1..=repeats(profile) {
        for server in servers {
            for workload in workloads(profile) {
                runs.push(RunSpec {
                    model: server.model.clone(),
                    server_args: server.args.clone(),
                    workload,
                    repeat,
                });
            }
        }
    }
    runs
}

/// The timing of one workload's runs: idle runs warm up until the server can have taken every
/// idle connection (a forking server makes about a thousand processes a second on one core),
/// so that memory is measured with all of them held.
pub fn workload_timing(workload: &Workload, profile: Timing) -> Timing {
    match *workload {
        Workload::Idle { idle } => Timing {
            warmup: profile
                .warmup
                .max(Duration::from_secs_f64(idle as f64 / 1000.0)),
            duration: profile.duration,
        },
        _ => profile,
    }
}

/// Loadgen options for a workload against `addr`.
pub fn loadgen_options(workload: &Workload, addr: SocketAddr, timing: Timing) -> loadgen::Options {
    let mut o = loadgen::Options::new(addr);
    o.duration = timing.duration;
    o.warmup = timing.warmup;
    o.progress = false;
    match *workload {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: usize) -> Vec<ServerSpec> {
        (0..n)
            .map(|i| ServerSpec::model(&format!("m{i}")))
            .collect()
    }

    #[test]
    fn quick_fits_five_minutes_for_twelve_models() {
        let runs = runs(Profile::Quick, &servers(12));
        let t = timing(Profile::Quick, runs.len());
        let load: f64 = runs
            .iter()
            .map(|r| workload_timing(&r.workload, t))
            .map(|t| (t.warmup + t.duration).as_secs_f64())
            .sum();
        assert!(load <= 270.0, "{load} s of load for {} runs", runs.len());
    }

    #[test]
    fn run_ids_are_unique() {
        let mut both = servers(2);
        both.push(ServerSpec {
            model: "m0".to_owned(),
            args: vec!["--workers".to_owned(), "64".to_owned()],
        });
        let runs = runs(Profile::Full, &both);
        let mut ids: Vec<_> = runs.iter().map(RunSpec::id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), runs.len());
    }

    #[test]
    fn server_arguments_reach_every_run_of_their_server() {
        let pool = ServerSpec {
            model: "thread-pool".to_owned(),
            args: vec!["--workers".to_owned(), "64".to_owned()],
        };
        let runs = runs(Profile::Tiny, &[ServerSpec::model("mio"), pool.clone()]);
        assert!(runs
            .iter()
            .filter(|r| r.model == "thread-pool")
            .all(|r| r.server() == pool));
        assert!(runs
            .iter()
            .filter(|r| r.model == "mio")
            .all(|r| r.server_args.is_empty()));
    }

    #[test]
    fn models_are_parsed_by_name_or_all() {
        assert_eq!(parse_models("all").unwrap().len(), Model::ALL.len());
        let two = parse_models("mio, tokio").unwrap();
        assert_eq!(two, [ServerSpec::model("mio"), ServerSpec::model("tokio")]);
        let err = parse_models("mio,nope").unwrap_err();
        assert!(err.contains("--models") && err.contains("'nope'"), "{err}");
    }
}
