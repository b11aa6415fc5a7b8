//! The first stage: what a comparison will do. From the options (servers, profile, CPUs) to
//! the matrix of runs, each with its timing and its loadgen options; [`external`]: the servers
//! echobench does not build, as the user gives them; [`python`]: the tutorials' Python servers,
//! run as external servers; [`hosts`]: load agents and a server on other hosts.

pub mod external;
pub mod hosts;
pub mod python;
pub mod settings;

pub use hosts::Hosts;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use echo_server::{Model, Transport};

use crate::schema::{ExternalServer, Profile, PythonRun, RunSpec, ServerSpec, Timing, Workload};
use crate::workload::{Servers, POOL_WORKERS, TLS_MIXED_ROUNDS};
use loadgen::rng::Rng;

/// What a comparison is asked to do.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Servers to run, in report order: built-in models, then the external servers by name.
    pub servers: Vec<ServerSpec>,
    /// The definitions of the external servers among `servers`.
    pub external: Vec<ExternalServer>,
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
    /// Passes over the matrix; `None`: the profile's ([`repeats`]).
    pub repeats: Option<u32>,
    /// Seed of the runs' shuffle within each pass and of the bootstrap.
    pub seed: u64,
    /// Only these workloads, in this order; `None`: the profile's ([`workloads`]).
    pub workloads: Option<Vec<Workload>>,
    /// Warm-up and measured time of every run; `None`: the profile's ([`timing`]).
    pub timing: Option<Timing>,
    /// The number of the first pass: 1, or one more than the passes already in `out` when
    /// adding to a comparison (`--append`).
    pub first_repeat: u32,
    /// Whether the UDP workloads run too (`--udp`; the full profile always runs them).
    pub udp: bool,
    /// Whether the TLS workloads run too (`--tls`; the full profile always runs them).
    pub tls: bool,
    /// Whether the workloads of requests with a cost run too (`--work`; the full profile
    /// always runs them).
    pub work: bool,
    /// Whether the chat room's workloads run too (`--chat`; the full profile always runs
    /// them).
    pub chat: bool,
    /// Whether the hostile clients' workloads run too (`--attack`; the full profile always
    /// runs them).
    pub attack: bool,
    /// The capacity search's latency target, where it runs (`--slo`; the full profile always
    /// runs it, at `p99=1ms` unless given).
    pub slo: Option<loadgen::Slo>,
    /// The Python models' interpreter and which of them run (`--python`); their definitions
    /// are among `external`.
    pub python: Option<PythonRun>,
    /// Load agents and a server on other hosts (`--agents`, `--server-host`); the default:
    /// all here, loadgen inside echobench.
    pub hosts: Hosts,
}

impl CompareOptions {
    /// The external server of this name, if `name` is one.
    pub fn external(&self, name: &str) -> Option<&ExternalServer> {
        self.external.iter().find(|e| e.name == name)
    }

    /// Passes over the matrix.
    pub fn repeats(&self) -> u32 {
        self.repeats.unwrap_or_else(|| repeats(self.profile))
    }

    /// The workloads to run, in report order: the profile's TCP ones, then with `udp` its
    /// UDP ones.
    pub fn workloads(&self) -> Vec<Workload> {
        self.workloads.clone().unwrap_or_else(|| {
            let mut all = Workload::of_profile(self.profile);
            if self.udp {
                all.extend(Workload::udp_of_profile(self.profile));
            }
            if self.tls {
                all.extend(Workload::tls());
            }
            if self.work {
                all.extend(Workload::work());
            }
            if self.chat {
                all.extend(Workload::chat());
            }
            if self.attack {
                all.extend(Workload::attack());
            }
            if self.slo.is_some() {
                all.extend(Workload::slo(self.profile));
            }
            all
        })
    }

    /// Every run, pass by pass: see [`runs`].
    pub fn runs(&self) -> Vec<RunSpec> {
        let repeats = self.first_repeat..=self.first_repeat + self.repeats() - 1;
        runs(&self.servers, &self.workloads(), repeats, self.seed)
    }

    /// Warm-up and measured time of a run (before [`Workload::timing`]): as given, or the
    /// profile's for one pass over the TCP matrix (each further pass takes as long again). The
    /// UDP and the Python models' runs take the TCP runs' timing: `--udp` and `--python` add
    /// their own time and change nothing of the Rust models' runs; nor do `--tls`, `--work`
    /// `--chat`, `--attack` and `--slo`, whose workloads have their own.
    pub fn timing(&self) -> Timing {
        let per_pass = self
            .workloads()
            .iter()
            .filter(|w| {
                !w.is_udp() && !w.is_tls() && !w.is_work() && !w.is_chat() && !w.is_attack()
            })
            .filter(|w| !w.is_slo())
            .map(|w| {
                servers_of(&self.servers, w)
                    .iter()
                    .filter(|s| echo_server::python::find(&s.model).is_none())
                    .count()
            })
            .sum();
        self.timing
            .unwrap_or_else(|| timing(self.profile, per_pass))
    }
}

/// Why two servers of `opts` would write the same raw files, if two would: different servers
/// whose runs have the same file name ([`RunSpec::id`]), such as an external server named
/// `thread-pool_workers_64` and the model `thread-pool(64)`. Checked over every run of a pass,
/// so that whatever names later models, arguments and flags bring, a clash is refused rather
/// than one server's figures overwriting another's.
pub fn clashing_file_names(opts: &CompareOptions) -> Option<String> {
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    for run in runs(&opts.servers, &opts.workloads(), 1..=1, 0) {
        let label = run.server_label();
        let id = run.id();
        match seen.get(&id) {
            Some(other) if *other != label => {
                let mut both = [other.as_str(), label.as_str()];
                both.sort_unstable();
                let [first, second] = both;
                let external = both.into_iter().find(|name| opts.external(name).is_some());
                let flag = if external.is_some() {
                    "--server"
                } else {
                    "--models"
                };
                return Some(format!(
                    "{flag}: {first} and {second} would write the same raw files (raw/{id}.*); {}",
                    match external {
                        Some(name) => format!("give the server '{name}' another name"),
                        None => "run them in separate comparisons".to_owned(),
                    }
                ));
            }
            Some(_) => {}
            None => {
                seen.insert(id, label);
            }
        }
    }
    None
}

/// The servers `--models` names: a comma-separated list of models, `all`, or `none` (only the
/// external servers), each as a comparison runs it ([`server`]); `NAME(N)` runs the model with
/// `--workers N`. The error names the unknown model and the known ones.
pub fn parse_models(list: &str) -> Result<Vec<ServerSpec>, String> {
    match list {
        "all" => return Ok(Model::ALL.iter().map(|m| server(*m)).collect()),
        "none" => return Ok(Vec::new()),
        _ => {}
    }
    list.split(',').map(str::trim).map(parse_model).collect()
}

/// One entry of `--models`: `NAME` or `NAME(N)`.
fn parse_model(entry: &str) -> Result<ServerSpec, String> {
    let (name, workers) = match entry.strip_suffix(')').and_then(|e| e.split_once('(')) {
        Some((name, n)) => match n.parse::<usize>() {
            Ok(n) if n > 0 => (name, Some(n)),
            _ => {
                return Err(format!(
                    "--models: '{entry}': the workers in NAME(N) must be a whole number above 0"
                ))
            }
        },
        None => (entry, None),
    };
    if let Some(py) = echo_server::python::find(name) {
        return match workers {
            Some(_) => Err(format!(
                "--models: '{entry}': {name} is a Python model and takes no workers"
            )),
            None => Ok(ServerSpec::model(py.name)),
        };
    }
    let Some(model) = Model::from_name(name) else {
        let known: Vec<&str> = Model::ALL.iter().map(|m| m.name()).collect();
        let python: Vec<&str> = echo_server::python::MODELS.iter().map(|m| m.name).collect();
        return Err(format!(
            "--models: unknown model '{name}' (known: {}, or all, or none; with --python: {})",
            known.join(", "),
            python.join(", ")
        ));
    };
    Ok(match workers {
        Some(n) => ServerSpec::with_workers(model.name(), n),
        None => server(model),
    })
}

/// A model as a comparison runs it: pools of blocking workers with their stated size
/// ([`Model::pool_workers`]), every other model with its defaults.
pub fn server(model: Model) -> ServerSpec {
    match model.pool_workers() {
        Some(n) => ServerSpec::with_workers(model.name(), n),
        None => ServerSpec::model(model.name()),
    }
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

/// How many times each run of a profile is repeated.
pub fn repeats(profile: Profile) -> u32 {
    match profile {
        Profile::Full => 3,
        Profile::Quick | Profile::Tiny => 1,
    }
}

/// Warm-up and measured time per run, for `runs` runs in a pass. Quick fits a pass over its
/// whole matrix, whatever the number of models, into about four minutes of load (idle runs'
/// longer warm-ups included).
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

/// Every run of the matrix, pass by pass: each pass runs every server under every workload
/// once, in its own seeded shuffle, so that a slow spell of a shared machine falls on the
/// models alike rather than on whichever runs last. The `pool` workloads run, instead of the
/// servers as given, each pool of blocking workers among them at every size of
/// [`POOL_WORKERS`].
pub fn runs(
    servers: &[ServerSpec],
    workloads: &[Workload],
    repeats: std::ops::RangeInclusive<u32>,
    seed: u64,
) -> Vec<RunSpec> {
    let mut rng = Rng::for_key(seed, &format!("run order from {}", repeats.start()));
    let mut runs = Vec::new();
    for repeat in repeats {
        let mut pass = Vec::new();
        let mut mixed = Vec::new();
        for workload in workloads {
            for server in servers_of(servers, workload) {
                let spec = |repeat| RunSpec {
                    model: server.model.clone(),
                    server_args: server.args.clone(),
                    workload: *workload,
                    repeat,
                };
                match workload {
                    // Pass p's rounds are numbered (p - 1) × rounds + 1 to p × rounds.
                    Workload::TlsMixed { .. } => mixed.extend(
                        (1..=TLS_MIXED_ROUNDS).map(|r| spec((repeat - 1) * TLS_MIXED_ROUNDS + r)),
                    ),
                    _ => pass.push(spec(repeat)),
                }
            }
        }
        rng.shuffle(&mut pass);
        // tls-mixed's rates come from the pass's tls-churn runs: after them.
        rng.shuffle(&mut mixed);
        runs.extend(pass);
        runs.extend(mixed);
    }
    runs
}

/// The servers a workload runs: see [`runs`]. A UDP workload runs the UDP models, the TLS
/// ones the models that serve TLS, those of requests with a cost the TCP models and Python
/// models (which speak `--work`; other external servers do not), each that offloads also as
/// `MODEL+pool` where the workload is CPU-bound; every other workload runs the rest (external
/// servers serve TCP).
fn servers_of(servers: &[ServerSpec], workload: &Workload) -> Vec<ServerSpec> {
    let kept =
        |keep: fn(&ServerSpec) -> bool| servers.iter().filter(|s| keep(s)).cloned().collect();
    match workload.servers() {
        Servers::Tls => kept(|s| Model::from_name(&s.model).is_some_and(Model::supports_tls)),
        Servers::Work | Servers::Chat => kept(speaks_protocols),
        Servers::Attack => {
            kept(|s| Model::from_name(&s.model).is_some_and(|m| m.transport() == Transport::Tcp))
        }
        Servers::WorkOffload => servers
            .iter()
            .filter(|s| speaks_protocols(s))
            .flat_map(|s| {
                let pooled =
                    (s.args.is_empty() && offloads(&s.model)).then(|| ServerSpec::pooled(&s.model));
                std::iter::once(s.clone()).chain(pooled)
            })
            .collect(),
        Servers::Tcp => kept(|s| !serves_udp(&s.model)),
        Servers::Udp => kept(|s| serves_udp(&s.model)),
        Servers::PoolSweep => {
            let mut pools: Vec<Model> = Vec::new();
            for model in servers.iter().filter_map(|s| Model::from_name(&s.model)) {
                let tcp = model.transport() == Transport::Tcp;
                if tcp && model.pool_workers().is_some() && !pools.contains(&model) {
                    pools.push(model);
                }
            }
            pools
                .iter()
                .flat_map(|&model| POOL_WORKERS.map(|n| ServerSpec::with_workers(model.name(), n)))
                .collect()
        }
    }
}

/// Whether the server speaks requests with a cost (`--work`) and serves the chat room
/// (`--chat`): a TCP model of the registry or a Python TCP model.
fn speaks_protocols(s: &ServerSpec) -> bool {
    let python = echo_server::python::find(&s.model).is_some_and(|m| m.transport == Transport::Tcp);
    python || Model::from_name(&s.model).is_some_and(|m| m.transport() == Transport::Tcp)
}

/// Whether the model called `model` can hand `--work`'s CPU work to a pool: a model of the
/// registry or a Python model.
fn offloads(model: &str) -> bool {
    let python = echo_server::python::find(model).is_some_and(|m| m.offloads);
    python || Model::from_name(model).is_some_and(Model::offloads)
}

/// Whether the server called `model` is a UDP model of the registry, or `py-udp`.
pub fn serves_udp(model: &str) -> bool {
    Model::from_name(model).is_some_and(|m| m.transport() == Transport::Udp)
        || echo_server::python::find(model).is_some_and(|m| m.transport == Transport::Udp)
}

/// Gives every model that runs `--workers` threads whatever its clients (`udp-reuseport`,
/// `udp-tokio`) an explicit `--workers`, one per server CPU, unless the list gave it one: a
/// comparison states the worker counts it ran.
pub fn state_workers(servers: &mut [ServerSpec], server_cpus: usize) {
    for s in servers.iter_mut() {
        let per_cpu = Model::from_name(&s.model).is_some_and(|m| m.cpu_workers());
        if per_cpu && s.args.is_empty() {
            *s = ServerSpec::with_workers(&s.model, server_cpus.max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{TLS_MIXED_RATE, TLS_MIXED_SHARES, TLS_TIMING, UDP_TIMEOUT};

    fn servers(n: usize) -> Vec<ServerSpec> {
        (0..n)
            .map(|i| ServerSpec::model(&format!("m{i}")))
            .collect()
    }

    fn options(servers: Vec<ServerSpec>, profile: Profile) -> CompareOptions {
        CompareOptions {
            servers,
            profile,
            out: PathBuf::new(),
            server_cpus: vec![0],
            loadgen_cpus: vec![1],
            progress: false,
            repeats: None,
            seed: 1,
            workloads: None,
            timing: None,
            first_repeat: 1,
            external: Vec::new(),
            udp: false,
            tls: false,
            work: false,
            chat: false,
            attack: false,
            slo: None,
            python: None,
            hosts: Hosts::default(),
        }
    }

    #[test]
    fn quick_fits_five_minutes_for_twelve_models() {
        let opts = options(servers(12), Profile::Quick);
        let runs = opts.runs();
        let t = opts.timing();
        let load: f64 = runs
            .iter()
            .map(|r| r.workload.timing(t))
            .map(|t| (t.warmup + t.duration).as_secs_f64())
            .sum();
        assert!(load <= 270.0, "{load} s of load for {} runs", runs.len());
    }

    #[test]
    fn udp_workloads_run_the_udp_models_alone_and_leave_the_tcp_timing_alone() {
        let both = vec![ServerSpec::model("mio"), ServerSpec::model("udp-mio")];
        let mut opts = options(both, Profile::Quick);
        let tcp_only = opts.timing();
        assert!(opts.runs().iter().all(|r| r.model == "mio"));
        opts.udp = true;
        assert_eq!(
            opts.timing(),
            tcp_only,
            "--udp changes nothing of the TCP runs"
        );
        let runs = opts.runs();
        assert_eq!(
            runs.iter().filter(|r| r.workload.is_udp()).count(),
            Workload::udp_of_profile(Profile::Quick).len()
        );
        for r in &runs {
            assert_eq!(r.workload.is_udp(), r.model == "udp-mio", "{}", r.id());
        }
        for w in Workload::udp_of_profile(Profile::Full) {
            assert_eq!(Workload::from_label(&w.label()), Some(w), "{}", w.label());
            let o = w.loadgen_options("127.0.0.1:7".parse().unwrap(), tcp_only);
            assert!(o.udp && o.timeout == UDP_TIMEOUT, "{}", w.label());
        }
        assert_eq!(
            Workload::from_label("udp-pingpong-c16-p8"),
            Some(Workload::UdpPingpong {
                connections: 16,
                pipeline: 8
            })
        );
        assert_eq!(Workload::from_label("udp-pingpong-c16-p1"), None);
    }

    #[test]
    fn tls_runs_the_tls_models_with_mixed_rounds_after_each_pass_churn() {
        let servers = parse_models("mio,blocking,udp-mio").unwrap();
        let mut opts = options(servers, Profile::Quick);
        opts.tls = true;
        opts.repeats = Some(2);
        opts.workloads = Some(Workload::tls());
        let runs = opts.runs();
        assert!(
            runs.iter().all(|r| r.model != "udp-mio"),
            "UDP models serve no TLS"
        );
        for w in Workload::tls() {
            assert_eq!(Workload::from_label(&w.label()), Some(w), "{}", w.label());
        }
        let per_pass = 2 * (4 + TLS_MIXED_SHARES.len() * TLS_MIXED_ROUNDS as usize);
        assert_eq!(runs.len(), 2 * per_pass);
        for (p, pass) in runs.chunks(per_pass).enumerate() {
            let first_mixed = pass
                .iter()
                .position(|r| matches!(r.workload, Workload::TlsMixed { .. }))
                .unwrap();
            assert!(pass[first_mixed..]
                .iter()
                .all(|r| matches!(r.workload, Workload::TlsMixed { .. })));
            let rounds: Vec<u32> = pass[first_mixed..].iter().map(|r| r.repeat).collect();
            let p = p as u32;
            assert!(
                rounds.iter().all(|&r| r > p * 3 && r <= (p + 1) * 3),
                "{rounds:?}"
            );
        }
        let t = Workload::TlsMixed { share: 25 }.timing(opts.timing());
        assert!(t.duration >= TLS_TIMING.duration && t.warmup >= TLS_TIMING.warmup);
        let mixed = Workload::TlsMixed { share: 50 };
        let mut o = mixed.loadgen_options("127.0.0.1:7".parse().unwrap(), t);
        mixed.tls_options(&mut o, std::path::Path::new("c.pem"), Some(4000.0));
        assert_eq!(
            (o.rate, o.handshake_rate),
            (Some(TLS_MIXED_RATE), Some(2000.0))
        );
        let resumed = Workload::TlsChurn { resumed: true };
        let mut o = resumed.loadgen_options("127.0.0.1:7".parse().unwrap(), t);
        resumed.tls_options(&mut o, std::path::Path::new("c.pem"), None);
        assert!(o.churn && o.tls.unwrap().resume && o.handshake_rate.is_none());
    }

    /// Every model of the registry and every Python model, and an external server.
    fn every_server() -> Vec<ServerSpec> {
        let mut servers = parse_models("all").unwrap();
        servers.extend(
            echo_server::python::MODELS
                .iter()
                .map(|m| ServerSpec::model(m.name)),
        );
        servers.push(ServerSpec::model("own"));
        servers
    }

    #[test]
    fn chat_runs_every_tcp_and_python_model_once_and_leaves_the_tcp_timing_alone() {
        let mut opts = options(every_server(), Profile::Quick);
        let tcp_only = opts.timing();
        opts.chat = true;
        assert_eq!(
            opts.timing(),
            tcp_only,
            "--chat changes nothing of the TCP runs"
        );
        let runs = opts.runs();
        let tcp_models = Model::ALL
            .iter()
            .filter(|m| m.transport() == Transport::Tcp)
            .count();
        let python_tcp = echo_server::python::MODELS
            .iter()
            .filter(|m| m.transport == Transport::Tcp)
            .count();
        for w in Workload::chat() {
            let ran: Vec<String> = runs
                .iter()
                .filter(|r| r.workload == w)
                .map(RunSpec::server_label)
                .collect();
            assert_eq!(ran.len(), tcp_models + python_tcp, "{ran:?}");
            for absent in ["own", "py-udp", "udp-mio", "mio+pool"] {
                assert!(!ran.contains(&absent.to_owned()), "{absent}: {ran:?}");
            }
            assert!(ran.contains(&"thread-pool(64)".to_owned()), "{ran:?}");
        }
    }

    #[test]
    fn attack_runs_the_rust_tcp_models_only_and_leaves_the_tcp_timing_alone() {
        let mut opts = options(every_server(), Profile::Quick);
        let tcp_only = opts.timing();
        opts.attack = true;
        assert_eq!(
            opts.timing(),
            tcp_only,
            "--attack changes nothing of the TCP runs"
        );
        let runs = opts.runs();
        let tcp_models = Model::ALL
            .iter()
            .filter(|m| m.transport() == Transport::Tcp)
            .count();
        for w in Workload::attack() {
            let ran: Vec<String> = runs
                .iter()
                .filter(|r| r.workload == w)
                .map(RunSpec::server_label)
                .collect();
            assert_eq!(ran.len(), tcp_models, "{}: {ran:?}", w.label());
            for absent in ["own", "py-threading", "udp-mio", "mio+pool"] {
                assert!(!ran.contains(&absent.to_owned()), "{absent}: {ran:?}");
            }
            assert!(ran.contains(&"prefork(16)".to_owned()), "{ran:?}");
        }
    }

    #[test]
    fn slo_runs_every_tcp_server_and_leaves_the_tcp_timing_alone() {
        let mut opts = options(every_server(), Profile::Quick);
        let tcp_only = opts.timing();
        opts.slo = loadgen::Slo::parse("p99=1ms").ok();
        assert_eq!(
            opts.timing(),
            tcp_only,
            "--slo changes nothing of the TCP runs"
        );
        let ran: Vec<String> = opts
            .runs()
            .iter()
            .filter(|r| r.workload.is_slo())
            .map(|r| format!("{} {}", r.server_label(), r.workload.label()))
            .collect();
        assert!(ran.iter().all(|r| r.ends_with("slo-c16")), "{ran:?}");
        for present in ["mio slo-c16", "own slo-c16", "py-threading slo-c16"] {
            assert!(ran.contains(&present.to_owned()), "{present}: {ran:?}");
        }
        assert!(!ran.iter().any(|r| r.starts_with("udp-")), "{ran:?}");
    }

    #[test]
    fn work_runs_the_tcp_and_python_models_and_the_event_loops_pooled_where_cpu_bound() {
        let mut servers = parse_models("all").unwrap();
        servers.retain(|s| !serves_udp(&s.model));
        let python: Vec<ServerSpec> = echo_server::python::MODELS
            .iter()
            .filter(|m| m.transport == Transport::Tcp)
            .map(|m| ServerSpec::model(m.name))
            .collect();
        servers.extend(python.iter().cloned());
        servers.push(ServerSpec::model("own"));
        let mut opts = options(servers, Profile::Quick);
        let tcp_only = opts.timing();
        opts.work = true;
        assert_eq!(
            opts.timing(),
            tcp_only,
            "--work changes nothing of the TCP runs"
        );
        let runs = opts.runs();
        let labels = |w: Workload| -> Vec<String> {
            runs.iter()
                .filter(|r| r.workload == w)
                .map(RunSpec::server_label)
                .collect()
        };
        let tcp_models = Model::ALL
            .iter()
            .filter(|m| m.transport() == Transport::Tcp)
            .count();
        let offloading = Model::ALL.iter().filter(|m| m.offloads()).count();
        let pooled_python = echo_server::python::MODELS
            .iter()
            .filter(|m| m.offloads)
            .count();
        for w in Workload::work() {
            let ran = labels(w);
            assert!(
                !ran.contains(&"own".to_owned()),
                "an external server speaks no --work"
            );
            assert!(ran.contains(&"py-threading".to_owned()), "{ran:?}");
            let pooled: Vec<&String> = ran.iter().filter(|l| l.ends_with("+pool")).collect();
            match w.shares_cpus() {
                true => {
                    assert_eq!(pooled.len(), offloading + pooled_python, "{ran:?}");
                    assert!(ran.contains(&"mio+pool".to_owned()));
                    assert!(ran.contains(&"py-asyncio+pool".to_owned()));
                    assert!(!ran.contains(&"thread-per-client+pool".to_owned()));
                }
                false => assert!(pooled.is_empty(), "{ran:?}"),
            }
            let plain = ran.len() - pooled.len();
            assert_eq!(plain, tcp_models + python.len(), "{}: {ran:?}", w.label());
        }
        // A pass of the work runs fits 5 minutes of load on 2 cores, Python included (a
        // second or so more per run for starting and stopping servers: within 6 minutes).
        let load: f64 = runs
            .iter()
            .filter(|r| r.workload.is_work())
            .map(|r| r.workload.timing(opts.timing()))
            .map(|t| (t.warmup + t.duration).as_secs_f64())
            .sum();
        assert!(load <= 270.0, "{load} s of load");
    }

    #[test]
    fn models_with_a_worker_per_cpu_run_with_their_count_stated() {
        let mut servers = vec![
            ServerSpec::model("udp-tokio"),
            ServerSpec::with_workers("udp-reuseport", 3),
            ServerSpec::model("udp-mio"),
        ];
        state_workers(&mut servers, 2);
        let labels: Vec<String> = servers.iter().map(ServerSpec::label).collect();
        assert_eq!(labels, ["udp-tokio(2)", "udp-reuseport(3)", "udp-mio"]);
    }

    #[test]
    fn run_ids_are_unique() {
        let mut both = servers(2);
        both.push(ServerSpec {
            model: "m0".to_owned(),
            args: vec!["--workers".to_owned(), "64".to_owned()],
        });
        let runs = options(both, Profile::Full).runs();
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
        let runs = options(vec![ServerSpec::model("mio"), pool.clone()], Profile::Tiny).runs();
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
    fn each_pass_runs_the_whole_matrix_in_its_own_seeded_order() {
        let mut opts = options(servers(3), Profile::Quick);
        opts.repeats = Some(3);
        let runs = opts.runs();
        let per_pass = 3 * Workload::of_profile(Profile::Quick).len();
        assert_eq!(runs.len(), 3 * per_pass);
        let pass = |n: usize| runs[n * per_pass..(n + 1) * per_pass].to_vec();
        let ids = |runs: Vec<RunSpec>| {
            runs.iter()
                .map(|r| r.server_label() + &r.workload.label())
                .collect::<Vec<_>>()
        };
        for n in 0..3 {
            assert!(pass(n).iter().all(|r| r.repeat == n as u32 + 1));
            let mut sorted = ids(pass(n));
            sorted.sort();
            let mut first = ids(pass(0));
            first.sort();
            assert_eq!(sorted, first, "pass {n} runs the whole matrix once");
        }
        assert_ne!(ids(pass(0)), ids(pass(1)), "passes are shuffled apart");
        assert_eq!(opts.runs(), runs, "the same seed gives the same order");
        opts.seed = 2;
        assert_ne!(opts.runs(), runs);
        // A pass takes as long whatever the number of passes.
        let one = options(servers(3), Profile::Quick).timing();
        assert_eq!(opts.timing(), one);
        // Passes added to a comparison go on from its last.
        opts.first_repeat = 4;
        opts.repeats = Some(2);
        let more = opts.runs();
        assert_eq!(more.len(), 2 * per_pass);
        assert!(more.iter().all(|r| r.repeat == 4 || r.repeat == 5));
    }

    #[test]
    fn workloads_are_parsed_by_label() {
        let w = Workload::parse_list("pingpong-c16, rate-10000,bulk").unwrap();
        assert_eq!(
            w,
            [
                Workload::Pingpong { connections: 16 },
                Workload::Rate { rate: 10_000.0 },
                Workload::Bulk
            ]
        );
        let err = Workload::parse_list("pingpong-c16,fast").unwrap_err();
        assert!(
            err.contains("--workloads") && err.contains("'fast'"),
            "{err}"
        );
    }

    #[test]
    fn models_are_parsed_by_name_or_all() {
        assert_eq!(parse_models("all").unwrap().len(), Model::ALL.len());
        let two = parse_models("mio, tokio").unwrap();
        assert_eq!(two, [ServerSpec::model("mio"), ServerSpec::model("tokio")]);
        let err = parse_models("mio,nope").unwrap_err();
        assert!(err.contains("--models") && err.contains("'nope'"), "{err}");
        let sized = parse_models("thread-pool(8),mio-multi(2)").unwrap();
        let labels: Vec<String> = sized.iter().map(ServerSpec::label).collect();
        assert_eq!(labels, ["thread-pool(8)", "mio-multi(2)"]);
        for bad in ["thread-pool(0)", "thread-pool(x)", "nope(4)"] {
            let err = parse_models(bad).unwrap_err();
            assert!(err.contains("--models"), "{err}");
        }
    }

    #[test]
    fn pools_run_with_their_stated_workers_and_others_with_their_defaults() {
        let labels: Vec<String> = parse_models("all")
            .unwrap()
            .iter()
            .map(ServerSpec::label)
            .collect();
        for m in Model::ALL {
            let expected = match m.pool_workers() {
                Some(n) => format!("{}({n})", m.name()),
                None => m.name().to_owned(),
            };
            assert!(labels.contains(&expected), "{expected} in {labels:?}");
        }
        assert!(labels.contains(&"thread-pool(64)".to_owned()));
        assert!(labels.contains(&"prefork(16)".to_owned()));
    }

    #[test]
    fn the_pool_workload_sweeps_every_pool_size_of_the_pools_only() {
        let servers = parse_models("blocking,thread-pool,mio,prefork").unwrap();
        let mut opts = options(servers, Profile::Full);
        opts.repeats = Some(1);
        let runs = opts.runs();
        let pool_runs: Vec<&RunSpec> = runs
            .iter()
            .filter(|r| matches!(r.workload, Workload::Pool { .. }))
            .collect();
        // 2 pools × 5 sizes × 2 client counts.
        assert_eq!(pool_runs.len(), 2 * POOL_WORKERS.len() * 2);
        let mut labels: Vec<String> = pool_runs.iter().map(|r| r.server_label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), 10);
        for n in POOL_WORKERS {
            assert!(labels.contains(&format!("thread-pool({n})")), "{labels:?}");
            assert!(labels.contains(&format!("prefork({n})")), "{labels:?}");
        }
        let clients: Vec<usize> = pool_runs
            .iter()
            .filter(|r| r.server_label() == "prefork(4)")
            .map(|r| {
                r.workload
                    .loadgen_options("127.0.0.1:1".parse().unwrap(), opts.timing())
                    .connections
            })
            .collect();
        assert_eq!(clients.len(), 2);
        assert!(clients.contains(&16) && clients.contains(&128));
        // Quick has no pool workload unless asked for.
        assert!(Workload::of_profile(Profile::Quick)
            .iter()
            .all(|w| !matches!(w, Workload::Pool { .. })));
        let mut asked = options(parse_models("mio,thread-pool").unwrap(), Profile::Quick);
        asked.workloads = Some(Workload::parse_list("pool-c16").unwrap());
        assert_eq!(asked.runs().len(), POOL_WORKERS.len());
    }
}
