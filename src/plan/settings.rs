//! What a pass of a comparison measures, flag by flag: the settings `--append` requires to be
//! the same as the comparison's it adds passes to.
//!
//! [`of`] names every field of [`CompareOptions`]: a field added later does not compile there
//! until it is placed among the settings or said not to change what a pass measures. [`recorded`]
//! reads the same settings back from what a comparison wrote (`environment.json` and its run
//! records); a unit test checks that the two agree, so a setting that is not recorded cannot be
//! added either.

use std::collections::BTreeMap;

use super::CompareOptions;
use crate::schema::{Environment, ExternalServer, PythonRun, Workload};

/// Every setting that changes what a pass measures: its value in words, by the flag that sets
/// it.
pub type Settings = BTreeMap<&'static str, String>;

/// The settings of a comparison with `opts`.
pub fn of(opts: &CompareOptions) -> Settings {
    let CompareOptions {
        servers,
        external,
        profile,
        // Where the files go, the progress bar, how many passes and their order (the seed
        // shuffles runs within a pass, and resamples): not what a pass measures.
        out: _,
        progress: _,
        repeats: _,
        seed: _,
        first_repeat: _,
        server_cpus,
        loadgen_cpus,
        // Resolved with the profile, --udp, --tls, --work, --chat and --attack: the workloads a
        // pass runs.
        workloads: _,
        tls: _,
        work: _,
        chat: _,
        attack: _,
        slo,
        // Checked run by run against the comparison's records (each workload its own).
        timing: _,
        udp,
        python,
        hosts,
    } = opts;
    let remote = hosts.has_agents() || hosts.server_host.is_some();
    let labels: Vec<String> = servers.iter().map(|s| s.label()).collect();
    // The workloads of a pass's runs: those that some server runs, as the records hold them.
    let workloads: Vec<Workload> = super::runs(servers, &opts.workloads(), 1..=1, 0)
        .into_iter()
        .map(|r| r.workload)
        .collect();
    settings(Recorded {
        models: &labels,
        profile: profile.name(),
        external,
        workloads: &workloads,
        server_cpus: &loadgen::format_cpus(server_cpus),
        loadgen_cpus: &loadgen::format_cpus(loadgen_cpus),
        udp: *udp,
        python: python.as_ref(),
        agents: &hosts.agents,
        server_host: hosts.server_host.as_deref(),
        server_addr: hosts.server_addr.as_deref(),
        launcher: remote.then(|| hosts.launcher_text()),
        agent_bin: remote.then_some(hosts.bin.as_str()),
        slo: slo.as_ref().map(loadgen::Slo::text),
    })
}

/// The settings the comparison that wrote `env` ran with, its records' `workloads` among them.
pub fn recorded(env: &Environment, workloads: &[Workload]) -> Settings {
    let hosts = env.hosts.as_ref();
    let agents = hosts.map(|h| h.agents.clone()).unwrap_or_default();
    let server_host = hosts.and_then(|h| h.server_host.as_deref());
    let remote = !agents.is_empty() || server_host.is_some();
    settings(Recorded {
        models: &env.models,
        profile: env.profile.name(),
        external: &env.external,
        workloads,
        server_cpus: &env.server_cpus,
        loadgen_cpus: &env.loadgen_cpus,
        udp: env.udp,
        python: env.python.as_ref(),
        agents: &agents,
        server_host,
        server_addr: hosts.and_then(|h| h.server_addr.as_deref()),
        launcher: hosts.filter(|_| remote).map(|h| h.launcher.clone()),
        agent_bin: hosts.filter(|_| remote).map(|h| h.agent_bin.as_str()),
        slo: env.slo.clone(),
    })
}

/// Why a pass with `asked` cannot be added to a comparison made with `had`: each setting that
/// differs, named by its flag, with both values when they are short.
pub fn differences(had: &Settings, asked: &Settings) -> Vec<String> {
    let none = String::new();
    let said = |v: &String| match v.as_str() {
        "" => "none".to_owned(),
        v => v.to_owned(),
    };
    had.keys()
        .chain(asked.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter_map(|flag| {
            let (was, now) = (
                had.get(flag).unwrap_or(&none),
                asked.get(flag).unwrap_or(&none),
            );
            (was != now).then(|| match LISTS.contains(flag) {
                true => format!("{flag} ({})", list_difference(was, now)),
                false if was.len() + now.len() > 80 => format!("{flag} (other values)"),
                false => format!("{flag} ({} there, {} now)", said(was), said(now)),
            })
        })
        .collect()
}

/// The settings whose values are comma-separated lists.
const LISTS: [&str; 3] = ["--models", "--workloads", "--agents"];

/// How two comma-separated lists differ: what only one holds, or their order.
fn list_difference(was: &str, now: &str) -> String {
    let items = |s: &str| -> Vec<String> {
        s.split(',')
            .filter(|i| !i.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (was, now) = (items(was), items(now));
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|i| !b.contains(i)).cloned().collect()
    };
    let (gone, new) = (only(&was, &now), only(&now, &was));
    let mut said = Vec::new();
    if !gone.is_empty() {
        said.push(format!("{} only there", gone.join(", ")));
    }
    if !new.is_empty() {
        said.push(format!("{} only now", new.join(", ")));
    }
    if said.is_empty() {
        said.push("the same, in another order".to_owned());
    }
    said.join("; ")
}

/// The settings as both sides know them.
struct Recorded<'a> {
    models: &'a [String],
    profile: &'static str,
    external: &'a [ExternalServer],
    workloads: &'a [Workload],
    server_cpus: &'a str,
    loadgen_cpus: &'a str,
    udp: bool,
    python: Option<&'a PythonRun>,
    agents: &'a [String],
    server_host: Option<&'a str>,
    server_addr: Option<&'a str>,
    launcher: Option<String>,
    agent_bin: Option<&'a str>,
    slo: Option<String>,
}

fn settings(r: Recorded) -> Settings {
    let mut workloads: Vec<String> = r.workloads.iter().map(Workload::label).collect();
    workloads.sort();
    workloads.dedup();
    let python = r.python.map_or_else(String::new, |p| {
        format!(
            "{} {} ({}, {})",
            p.implementation, p.version, p.executable, p.start_method
        )
    });
    let or_none = |v: Option<&str>| v.unwrap_or_default().to_owned();
    // The Python models run as external servers whose commands name the scripts' directory
    // under `--out` (however it was spelled): they are `--python`'s, not `--server`'s.
    let python_models = r.python.map(|p| p.models.as_slice()).unwrap_or_default();
    let own: Vec<&ExternalServer> = r
        .external
        .iter()
        .filter(|e| !python_models.contains(&e.name))
        .collect();
    let mut settings = Settings::from([
        ("--models", r.models.join(",")),
        ("--profile", r.profile.to_owned()),
        (
            "--server/--server-file",
            serde_json::to_string(&own).unwrap_or_default(),
        ),
        ("--workloads", workloads.join(",")),
        (
            "--tls",
            r.workloads.iter().any(Workload::is_tls).to_string(),
        ),
        (
            "--work",
            r.workloads.iter().any(Workload::is_work).to_string(),
        ),
        (
            "--chat",
            r.workloads.iter().any(Workload::is_chat).to_string(),
        ),
        ("--server-cpus", r.server_cpus.to_owned()),
        ("--loadgen-cpus", r.loadgen_cpus.to_owned()),
        ("--udp", r.udp.to_string()),
        ("--python", python),
        ("--agents", r.agents.join(",")),
        ("--server-host", or_none(r.server_host)),
        ("--server-addr", or_none(r.server_addr)),
        ("--launcher", r.launcher.unwrap_or_default()),
        ("--agent-bin", or_none(r.agent_bin)),
    ]);
    // Recorded where it ran only, so that comparisons made before the flag existed still
    // take passes without it.
    if r.workloads.iter().any(Workload::is_attack) {
        settings.insert("--attack", "true".to_owned());
    }
    // The target, where the capacity search ran.
    if let Some(slo) = r.slo.filter(|_| r.workloads.iter().any(Workload::is_slo)) {
        settings.insert("--slo", slo);
    }
    settings
}
