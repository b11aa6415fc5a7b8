//! Flag resolution: from what clap parsed ([`super::args`]) to each command's options, with
//! every rule that spans flags. A refusal is a [`UsageError`] (exit 2) whose one line names
//! the flag; the unit tests below call these functions with parsed arguments, no binary.

use std::path::{Path, PathBuf};

use crate::plan::{self, CompareOptions};
use crate::run::machine;
use crate::schema::{Environment, ExternalServer, Profile, ServerSpec, Timing, Workload};
use crate::soak;
use crate::workload::INTERVAL;

use super::args::{CompareFlags, External, Passes, Pinning, Remote};

/// An argument error found after parsing: the command line asks for something that cannot be
/// done (exit 2). Its text is the one line to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `text` as a usage error inside an `anyhow::Error` (found by `is::<UsageError>()`).
pub fn usage(text: String) -> anyhow::Error {
    UsageError(text).into()
}

/// The comparison `compare`'s flags ask for; `None` when only Python models were asked for
/// and none can run (said on stderr, not a failure). With `--python` it writes the Python
/// scripts into the output directory.
pub fn compare_options(flags: CompareFlags) -> anyhow::Result<Option<CompareOptions>> {
    let CompareFlags {
        models,
        external,
        profile,
        out,
        pinning,
        passes,
        remote,
    } = flags;
    let hosts = hosts(*remote, &pinning).map_err(usage)?;
    let workloads = passes
        .workloads
        .as_deref()
        .map(Workload::parse_list)
        .transpose()
        .map_err(usage)?;
    let udp =
        passes.udp || profile == Profile::Full || workloads.iter().flatten().any(|w| w.is_udp());
    let tls =
        passes.tls || profile == Profile::Full || workloads.iter().flatten().any(|w| w.is_tls());
    let work =
        passes.work || profile == Profile::Full || workloads.iter().flatten().any(|w| w.is_work());
    let chat =
        passes.chat || profile == Profile::Full || workloads.iter().flatten().any(|w| w.is_chat());
    let attack = passes.attack
        || profile == Profile::Full
        || workloads.iter().flatten().any(|w| w.is_attack());
    let default_slo = || loadgen::Slo::parse(crate::workload::DEFAULT_SLO).ok();
    let slo = passes.slo.clone().or_else(|| {
        let asked = profile == Profile::Full || workloads.iter().flatten().any(|w| w.is_slo());
        asked.then(default_slo).flatten()
    });
    let mut servers = plan::parse_models(&models).map_err(usage)?;
    udp_servers(&mut servers, &models, udp).map_err(usage)?;
    let asked_python = python_asked(&mut servers, passes.python.is_some(), udp)?;
    let mut external = external_servers(&external).map_err(usage)?;
    let timing = timing(profile, &passes).map_err(usage)?;
    let (server_cpus, loadgen_cpus) = cpus(pinning)?;
    let out = out.unwrap_or_else(|| default_out(""));
    let held = out.join("raw").exists()
        && std::fs::read_dir(out.join("raw")).is_ok_and(|mut d| d.next().is_some());
    if held && !passes.append {
        // Not a usage error: the directory, not the command line, is in the way (exit 1).
        anyhow::bail!(
            "--out {} already holds a comparison; choose another directory, or add passes to it with --append",
            out.display()
        );
    }
    let python = match &passes.python {
        Some(program) => python_servers(program, &out, &asked_python, &mut external),
        None => None,
    };
    servers.extend(external.iter().map(|e| ServerSpec::model(&e.name)));
    if servers.is_empty() && passes.python.is_some() {
        // Only Python models were asked for, and none can run: said above, not a failure.
        return Ok(None);
    }
    if servers.is_empty() {
        return Err(usage(
            "--models none and no --server or --server-file: nothing to compare".to_owned(),
        ));
    }
    plan::state_workers(&mut servers, server_cpus.len());
    let mut opts = CompareOptions {
        servers,
        profile,
        out,
        server_cpus,
        loadgen_cpus,
        progress: true,
        repeats: passes.repeat,
        seed: passes.seed.unwrap_or_else(clock_seed),
        workloads,
        timing,
        first_repeat: 1,
        external,
        udp,
        tls,
        work,
        chat,
        attack,
        slo,
        python,
        hosts,
    };
    if let Some(why) = plan::clashing_file_names(&opts) {
        return Err(usage(why));
    }
    if passes.append {
        opts.first_repeat = appended_from(&opts)?;
    }
    Ok(Some(opts))
}

/// The servers `soak --models` names: `all` (those that serve any number of clients at
/// once), or a list of those.
pub fn soak_servers(models: &str) -> Result<Vec<ServerSpec>, UsageError> {
    let soakable = soak::soak_models();
    if models == "all" {
        return Ok(soakable);
    }
    let asked = plan::parse_models(models).map_err(UsageError)?;
    if let Some(s) = asked
        .iter()
        .find(|s| soakable.iter().all(|ok| ok.model != s.model))
    {
        if plan::serves_udp(&s.model) {
            return Err(UsageError(format!(
                "--models: {} serves UDP; soak runs the TCP models",
                s.model
            )));
        }
        return Err(UsageError(format!(
            "--models: {} serves only one client or its workers at a time; soak runs models \
             that serve any number at once",
            s.model
        )));
    }
    Ok(asked)
}

/// Where the load and the servers run (`--agents`, `--server-host`...); the error is the usage
/// line.
fn hosts(remote: Remote, pinning: &Pinning) -> Result<plan::Hosts, String> {
    if let Some(addr) = &remote.server_addr {
        addr.parse::<std::net::SocketAddr>()
            .map_err(|_| format!("--server-addr: '{addr}' is not IP:PORT"))?;
    }
    if let Some(bad) = remote.agents.iter().find(|h| h.trim().is_empty()) {
        return Err(format!("--agents: an empty host name in {bad:?}"));
    }
    for (flag, host) in remote
        .agents
        .iter()
        .map(|h| ("--agents", h))
        .chain(remote.server_host.iter().map(|h| ("--server-host", h)))
    {
        if let Some(why) = plan::hosts::not_a_host(host) {
            return Err(format!("{flag}: {why}"));
        }
    }
    let template = remote
        .launcher
        .as_deref()
        .unwrap_or(plan::hosts::DEFAULT_LAUNCHER);
    let launcher =
        shlex::split(template).ok_or_else(|| format!("--launcher: cannot split {template:?}"))?;
    let bin = match remote.agent_bin {
        Some(bin) => bin,
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find the echobench binary: {e}"))?
            .to_string_lossy()
            .into_owned(),
    };
    let hosts = plan::Hosts {
        agents: remote.agents,
        launcher,
        bin,
        agent_cpus: pinning.loadgen_cpus.as_ref().map(|c| c.0.clone()),
        server_host: remote.server_host,
        server_addr: remote.server_addr,
        server_cpus: pinning.server_cpus.as_ref().map(|c| c.0.clone()),
    };
    match hosts.refusal() {
        Some(why) => Err(why),
        None => Ok(hosts),
    }
}

/// Keeps the UDP models among `servers` only when the UDP workloads run (`udp`): `all` drops
/// them without; a list that names one without is refused, as is `--udp` with a list that
/// names none.
fn udp_servers(servers: &mut Vec<ServerSpec>, list: &str, udp: bool) -> Result<(), String> {
    let named_udp: Vec<String> = servers
        .iter()
        .filter(|s| plan::serves_udp(&s.model))
        .map(|s| s.model.clone())
        .collect();
    match (udp, list) {
        (false, "all") => servers.retain(|s| !plan::serves_udp(&s.model)),
        (false, _) if !named_udp.is_empty() => {
            return Err(format!(
                "--models: {} serves UDP; add --udp to run the UDP workloads",
                named_udp.join(", ")
            ))
        }
        (true, "none") => {}
        (true, _) if named_udp.is_empty() => {
            let models: Vec<&str> = echo_server::Model::of(echo_server::Transport::Udp)
                .map(echo_server::Model::name)
                .collect();
            return Err(format!(
                "--udp: --models names no UDP model ({})",
                models.join(", ")
            ));
        }
        _ => {}
    }
    Ok(())
}

/// The Python models a comparison runs with `--python`, taken out of `servers` (they run as
/// external servers, after the Rust models): those `--models` names, or every one when it
/// names none (the UDP one with the UDP workloads). A list that names one without `--python`
/// is refused.
fn python_asked(
    servers: &mut Vec<ServerSpec>,
    python: bool,
    udp: bool,
) -> anyhow::Result<Vec<&'static echo_server::python::PythonModel>> {
    let named = servers
        .iter()
        .any(|s| echo_server::python::find(&s.model).is_some());
    // A list that names some asks for those alone.
    let asked = plan::python::asked(servers, udp);
    if !python && named {
        let names: Vec<&str> = asked.iter().map(|m| m.name).collect();
        return Err(usage(format!(
            "--models: {} is a Python model; add --python to run the Python models",
            names.join(", ")
        )));
    }
    servers.retain(|s| echo_server::python::find(&s.model).is_none());
    Ok(if python { asked } else { Vec::new() })
}

/// Writes the Python scripts into `out/python/` and puts the models that can run among
/// `external`, in the registry's order before the user's own; says in one line each what
/// cannot run, and in one line when no interpreter can run any (not a failure).
fn python_servers(
    program: &str,
    out: &Path,
    asked: &[&'static echo_server::python::PythonModel],
    external: &mut Vec<ExternalServer>,
) -> Option<crate::schema::PythonRun> {
    match plan::python::prepare(program, &out.join("python"), asked) {
        Ok((run, servers)) => {
            for skipped in &run.skipped {
                eprintln!("echobench: {} {}", skipped.model, skipped.why);
            }
            external.splice(0..0, servers);
            Some(run)
        }
        Err(why) => {
            eprintln!("echobench: --python: {why}; the Python models are not run");
            None
        }
    }
}

/// The first pass `--append` adds to the comparison in `opts.out`: one after its last, once
/// every setting that changes what a pass measures ([`plan::settings`]) and every run's timing
/// are found to be the ones asked for. The error names each flag that differs.
fn appended_from(opts: &CompareOptions) -> anyhow::Result<u32> {
    let env = Environment::read(&opts.out.join("environment.json"))
        .map_err(|e| usage(format!("--append: {e:#}")))?;
    let records = crate::summary::load_records(&opts.out)?;
    let workloads: Vec<Workload> = records.iter().map(|r| r.spec.workload).collect();
    let had = plan::settings::recorded(&env, &workloads);
    let differ = plan::settings::differences(&had, &plan::settings::of(opts));
    if !differ.is_empty() {
        return Err(usage(format!(
            "--append: {} was made with other settings: {}; give the same flags to add passes to it",
            opts.out.display(),
            differ.join(", ")
        )));
    }
    for record in &records {
        let asked = record.spec.workload.timing(opts.timing());
        if record.timing != asked {
            return Err(usage(format!(
                "--append: {} ran {} with other timing; give the same --duration and --warmup",
                opts.out.display(),
                record.spec.id()
            )));
        }
    }
    Ok(records.iter().map(|r| r.spec.repeat).max().unwrap_or(0) + 1)
}

/// The servers of `--server-file`, then of each `--server`, each checked, their names unique.
fn external_servers(given: &External) -> Result<Vec<ExternalServer>, String> {
    let mut servers = match &given.server_file {
        Some(file) => plan::external::read_file(file)?,
        None => Vec::new(),
    };
    for flag in &given.servers {
        servers.push(plan::external::parse_flag(flag)?);
    }
    let names: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
    if let Some(name) = plan::external::duplicate(&names) {
        return Err(format!(
            "--server: the name '{name}' is given twice; each server needs a name of its own"
        ));
    }
    Ok(servers)
}

/// `--duration` and `--warmup` over the profile's timing, when either is given.
fn timing(profile: Profile, passes: &Passes) -> Result<Option<Timing>, String> {
    if passes.duration.is_some_and(|d| d < INTERVAL * 2) {
        return Err(format!(
            "--duration must be at least {} (two sample intervals)",
            humantime::format_duration(INTERVAL * 2)
        ));
    }
    if passes.duration.is_none() && passes.warmup.is_none() {
        return Ok(None);
    }
    // The profile's timing for a one-model pass: a starting point the flags override.
    let base = plan::timing(profile, 1);
    Ok(Some(Timing {
        warmup: passes.warmup.unwrap_or(base.warmup),
        duration: passes.duration.unwrap_or(base.duration),
    }))
}

/// A seed from the clock, for a comparison that was given none.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The server's and loadgen's CPUs: both given, or the default split; disjoint, and available
/// to this process.
pub fn cpus(pinning: Pinning) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
    let available = loadgen::affinity_cpus();
    let (server, loadgen) = match (pinning.server_cpus, pinning.loadgen_cpus) {
        (Some(s), Some(l)) => (s.0, l.0),
        (None, None) => plan::default_cpus(&available).map_err(|e| usage(e.to_string()))?,
        _ => {
            return Err(usage(
                "--server-cpus and --loadgen-cpus go together".to_owned(),
            ))
        }
    };
    if let Some(cpu) = server.iter().find(|c| loadgen.contains(c)) {
        return Err(usage(format!(
            "--server-cpus and --loadgen-cpus share CPU {cpu}: they must be disjoint"
        )));
    }
    if let Some(cpu) = server
        .iter()
        .chain(&loadgen)
        .find(|c| !available.contains(c))
    {
        return Err(usage(format!(
            "CPU {cpu} of --server-cpus/--loadgen-cpus is not available (this process may use {})",
            loadgen::format_cpus(&available)
        )));
    }
    Ok((server, loadgen))
}

/// `results/<date>-<hostname><suffix>`, or with `-2`, `-3`, ... when that already exists (a second run
/// on the same day, or the committed reference run of this very machine).
pub fn default_out(suffix: &str) -> PathBuf {
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let base = format!("{}-{}{suffix}", &date[..10], machine::hostname());
    (1..)
        .map(|n| match n {
            1 => PathBuf::from("results").join(&base),
            n => PathBuf::from("results").join(format!("{base}-{n}")),
        })
        .find(|dir| !dir.exists())
        .unwrap_or_else(|| PathBuf::from("results").join(&base))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::cli::args::{cpu_list, percent, Cli, Command};

    /// `compare`'s flags from a command line (`echobench compare` and `words`).
    fn compare_flags(words: &[&str]) -> CompareFlags {
        let argv = ["echobench", "compare"].iter().chain(words);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Compare(flags) => flags,
            other => panic!("not compare: {other:?}"),
        }
    }

    /// The refusal `compare_options` gives `words`, which must be a usage error.
    fn refusal(words: &[&str]) -> String {
        let err = compare_options(compare_flags(words)).expect_err("refused");
        let usage = err.downcast_ref::<UsageError>();
        assert!(usage.is_some(), "not a usage error: {err:#}");
        err.to_string()
    }

    /// Two CPUs this process may use, as `--server-cpus` and `--loadgen-cpus` words.
    fn two_cpus() -> Option<[String; 2]> {
        let cpus = loadgen::affinity_cpus();
        (cpus.len() >= 2).then(|| [cpus[0].to_string(), cpus[cpus.len() - 1].to_string()])
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("echobench-resolve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_comparison_resolves_to_its_options() {
        let Some([server, client]) = two_cpus() else {
            return eprintln!("skipped: fewer than 2 CPUs to pin to");
        };
        let out = scratch("options");
        let out_word = out.to_string_lossy().into_owned();
        let opts = compare_options(compare_flags(&[
            "--workloads",
            "pingpong-c16,udp-rate-10000",
            "--models",
            "mio,thread-pool,udp-tokio",
            "--server-cpus",
            &server,
            "--loadgen-cpus",
            &client,
            "--duration",
            "1s",
            "--seed",
            "7",
            "--out",
            &out_word,
        ]))
        .expect("resolves")
        .expect("something to compare");
        let labels: Vec<String> = opts.servers.iter().map(ServerSpec::label).collect();
        // Pools take their stated size; a model with a worker per CPU states its count.
        assert_eq!(labels, ["mio", "thread-pool(64)", "udp-tokio(1)"]);
        assert!(opts.udp, "a UDP workload asked for turns the UDP models on");
        assert!(!opts.tls);
        assert_eq!(opts.seed, 7);
        assert_eq!(opts.out, out);
        assert_eq!(
            opts.timing.map(|t| t.duration),
            Some(Duration::from_secs(1))
        );
        assert_eq!(opts.server_cpus, [server.parse::<usize>().unwrap()]);
        assert_eq!(opts.loadgen_cpus, [client.parse::<usize>().unwrap()]);
    }

    #[test]
    fn flags_that_cannot_go_together_are_usage_errors_that_name_the_flag() {
        assert!(refusal(&["--models", "nope"]).contains("--models: unknown model 'nope'"));
        assert!(refusal(&["--workloads", "fast"]).contains("--workloads"));
        assert!(refusal(&["--models", "udp-mio"]).contains("add --udp"));
        let no_udp = refusal(&["--models", "mio", "--udp"]);
        assert!(
            no_udp.contains("--udp: --models names no UDP model (udp-blocking,"),
            "{no_udp}"
        );
        assert!(refusal(&["--models", "py-asyncio"]).contains("add --python"));
        assert!(refusal(&["--models", "none"]).contains("nothing to compare"));
        assert!(refusal(&["--duration", "100ms"]).contains("--duration must be at least"));
        assert!(refusal(&["--server-cpus", "0"]).contains("go together"));
        assert!(refusal(&["--server-cpus", "0", "--loadgen-cpus", "0"]).contains("share CPU 0"));
        assert!(refusal(&["--server-cpus", "0", "--loadgen-cpus", "4095"]).contains("CPU 4095"));
        assert!(refusal(&["--server-addr", "localhost"]).contains("--server-addr"));
        assert!(refusal(&["--agents", "a,,b"]).contains("--agents: an empty host name"));
        assert!(refusal(&["--launcher", "ssh '"]).contains("--launcher"));
        let option = refusal(&[
            "--agents=-oProxyCommand=touch /tmp/x",
            "--server-addr",
            "10.0.0.1:0",
        ]);
        assert_eq!(
            option,
            "--agents: '-oProxyCommand=touch /tmp/x' is not a host name, an IP address or user@host"
        );
        let shell = refusal(&["--server-host", "b;reboot", "--server-addr", "10.0.0.1:0"]);
        assert!(
            shell.starts_with("--server-host: 'b;reboot' is not"),
            "{shell}"
        );
    }

    #[test]
    fn servers_whose_raw_files_would_have_one_name_are_refused() {
        let clash = refusal(&[
            "--models",
            "thread-pool(64)",
            "--workloads",
            "pingpong-c16",
            "--server",
            "thread-pool_workers_64=sh -c true {addr}",
        ]);
        assert_eq!(
            clash,
            "--server: thread-pool(64) and thread-pool_workers_64 would write the same raw files \
             (raw/thread-pool_workers_64.pingpong-c16.r1.*); give the server \
             'thread-pool_workers_64' another name"
        );
        // Names that only look alike are not a clash.
        let out = scratch("no-clash");
        let out_word = out.to_string_lossy().into_owned();
        let fine = compare_options(compare_flags(&[
            "--models",
            "thread-pool(64)",
            "--workloads",
            "pingpong-c16",
            "--server",
            "thread-pool_workers_65=sh -c true {addr}",
            "--out",
            &out_word,
        ]));
        assert!(fine.is_ok(), "{:#}", fine.err().unwrap());
    }

    #[test]
    fn the_settings_read_back_from_a_comparison_are_those_it_ran_with() {
        let Some([server, client]) = two_cpus() else {
            return eprintln!("skipped: fewer than 2 CPUs to pin to");
        };
        let out = scratch("settings");
        let out_word = out.to_string_lossy().into_owned();
        let pinned = [
            "--server-cpus",
            &server,
            "--loadgen-cpus",
            &client,
            "--out",
            &out_word,
        ];
        for flags in [
            &["--models", "mio,thread-pool"][..],
            &["--models", "all", "--udp", "--tls"],
            &["--models", "mio", "--workloads", "pingpong-c16,churn"],
            &["--models", "mio,thread-pool", "--work"],
            &["--models", "mio,py-selectors", "--python", "--chat"],
            &["--models", "none", "--server", "own=sh -c true {addr}"],
            &["--models", "mio", "--agents", "local,local"],
            &[
                "--models",
                "mio",
                "--agents",
                "b1,bench@b2",
                "--launcher",
                "ssh -p 2222 {host} --",
                "--server-host",
                "s1",
                "--server-addr",
                "10.0.0.1:0",
                "--agent-bin",
                "/opt/echo bench",
            ],
            &["--models", "mio", "--server-addr", "127.0.0.1:0"],
        ] {
            let words: Vec<&str> = flags.iter().copied().chain(pinned).collect();
            let opts = compare_options(compare_flags(&words))
                .expect("resolves")
                .expect("something to compare");
            let env = machine::capture(&opts);
            let workloads: Vec<Workload> = opts.runs().iter().map(|r| r.workload).collect();
            let ran = plan::settings::of(&opts);
            assert_eq!(plan::settings::recorded(&env, &workloads), ran, "{flags:?}");
            // What differs is named by its flag.
            let mut other = opts.clone();
            other.loadgen_cpus = other.server_cpus.clone();
            other.udp = !other.udp;
            let differ = plan::settings::differences(&ran, &plan::settings::of(&other));
            assert!(differ[0].starts_with("--loadgen-cpus ("), "{differ:?}");
            assert!(differ[1].starts_with("--udp ("), "{differ:?}");
        }
    }

    #[test]
    fn an_output_directory_that_holds_a_comparison_is_refused_unless_appended_to() {
        let Some([server, client]) = two_cpus() else {
            return eprintln!("skipped: fewer than 2 CPUs to pin to");
        };
        let out = scratch("held");
        std::fs::create_dir_all(out.join("raw")).unwrap();
        std::fs::write(out.join("raw/mio.churn.r1.run.json"), "{}").unwrap();
        let out_word = out.to_string_lossy().into_owned();
        let pinned = ["--server-cpus", &server, "--loadgen-cpus", &client];
        let words: Vec<&str> = ["--models", "mio", "--out", &out_word]
            .into_iter()
            .chain(pinned)
            .collect();
        let err = compare_options(compare_flags(&words)).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_none(), "exit 1, not 2");
        assert!(
            err.to_string().contains("already holds a comparison"),
            "{err}"
        );
        // --append reads what the directory ran, and finds no environment.json here.
        let appended: Vec<&str> = words.iter().copied().chain(["--append"]).collect();
        let err = compare_options(compare_flags(&appended)).unwrap_err();
        assert!(err.to_string().starts_with("--append:"), "{err}");
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn soak_takes_the_models_that_serve_any_number_of_clients() {
        assert_eq!(soak_servers("all").unwrap(), soak::soak_models());
        assert_eq!(soak_servers("mio").unwrap(), [ServerSpec::model("mio")]);
        assert!(soak_servers("udp-mio")
            .unwrap_err()
            .0
            .contains("serves UDP"));
        assert!(soak_servers("blocking")
            .unwrap_err()
            .0
            .contains("one client"));
        assert!(soak_servers("nope")
            .unwrap_err()
            .0
            .contains("unknown model"));
    }

    #[test]
    fn the_default_output_directory_is_dated_and_never_one_that_exists() {
        let dir = default_out("-test-suffix");
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(dir.starts_with("results"), "{}", dir.display());
        assert!(name.contains(&machine::hostname()), "{name}");
        assert!(!dir.exists());
    }

    #[test]
    fn percentages_and_cpu_lists_parse_or_say_why() {
        assert_eq!(percent("5%"), Ok(0.05));
        assert_eq!(percent("5"), Ok(0.05));
        assert!(percent("150%").is_err());
        assert_eq!(cpu_list("0-2").unwrap().0, [0, 1, 2]);
        assert!(cpu_list("x").is_err());
    }
}
