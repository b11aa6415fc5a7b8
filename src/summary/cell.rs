//! The figures of one model under one workload, over its repeats.

use loadgen::{Report, WorkClass};

use super::bootstrap::{figure, Bootstrap};
use super::load::RunData;
use crate::schema::{
    AgentFigures, AgentRun, AttackFigures, Capacity, Cell, ChatFigures, DatagramCounts,
    ServerUsage, Spread, Status, WorkClassFigures, Workload,
};

/// The runs of a cell its figures come from: those that did not fail.
pub fn counted<'a>(group: &[&'a RunData]) -> Vec<&'a RunData> {
    group
        .iter()
        .copied()
        .filter(|r| r.record.status.has_figures())
        .collect()
}

/// What a run's per-message figures count: its messages, or a chat run's deliveries.
fn units(r: &Report) -> u64 {
    r.chat
        .as_ref()
        .map_or(r.messages, |c| c.deliveries_received)
}

/// The cell of `model` (a server label) under `workload` from its runs, with the confidence
/// intervals of its bootstrap where it has one, of each request class's (`classes`, by
/// class; empty without classes) and of a chat run's fan-out latency (`fanout`).
pub fn cell(
    model: &str,
    workload: &Workload,
    group: &[&RunData],
    bootstrap: Option<&Bootstrap>,
    classes: &[Bootstrap],
    fanout: Option<&Bootstrap>,
) -> Cell {
    // Figures come from the runs that did not fail; counts of trouble from every run.
    let counted = counted(group);
    let reports: Vec<&Report> = counted.iter().filter_map(|r| r.report.as_ref()).collect();
    let spread =
        |f: &dyn Fn(&Report) -> Option<f64>| Spread::of(reports.iter().filter_map(|r| f(r)));
    let all_reports = || group.iter().filter_map(|r| r.report.as_ref());
    let usages = || group.iter().filter_map(|r| r.record.server.as_ref());
    let mut cell = Cell {
        model: model.to_owned(),
        workload: workload.name().to_owned(),
        label: workload.label(),
        repeats: group.len(),
        status: group
            .iter()
            .map(|r| r.record.status)
            .max()
            .unwrap_or(Status::Failed),
        notes: notes(group),
        throughput_msgs_per_s: spread(&|r| {
            Some(
                r.chat
                    .as_ref()
                    .map_or(r.throughput_msgs_per_s, |c| c.deliveries_per_s),
            )
        }),
        latency_p50_us: spread(&|r| (units(r) > 0).then_some(r.latency_us.p50)),
        latency_p99_us: spread(&|r| (units(r) > 0).then_some(r.latency_us.p99)),
        latency_p99_9_us: spread(&|r| (units(r) > 0).then_some(r.latency_us.p99_9)),
        latency_uncorrected_p99_us: spread(&|r| {
            let uncorrected = r.latency_uncorrected_us.as_ref();
            uncorrected.filter(|_| r.messages > 0).map(|l| l.p99)
        }),
        achieved_rate_ratio: spread(&|r| r.achieved_rate_ratio),
        connect_p50_us: spread(&|r| {
            r.connect_us
                .as_ref()
                .filter(|_| r.messages > 0)
                .map(|l| l.p50)
        }),
        server_cpu_us_per_msg: per_message(&counted, |u| u.cpu_s * 1e6),
        loadgen_cpu_us_per_msg: spread(&|r| {
            let cpu_s = r.loadgen_cpu_s?;
            (units(r) > 0).then(|| cpu_s * 1e6 / units(r) as f64)
        }),
        peak_rss_kib: median(usages().map(|u| u.peak_rss_kib as f64)),
        peak_pss_kib: median(usages().map(|u| u.peak_pss_kib as f64)),
        peak_threads: usages().map(|u| u.peak_threads).max(),
        peak_processes: usages().map(|u| u.peak_processes).max(),
        peak_fds: median(usages().map(|u| u.peak_fds as f64)),
        voluntary_switches_per_msg: per_message(&counted, |u| u.voluntary_switches as f64)
            .map(|s| s.median),
        involuntary_switches_per_msg: per_message(&counted, |u| u.involuntary_switches as f64)
            .map(|s| s.median),
        errors: all_reports().map(|r| r.errors.total()).sum(),
        connections_starved: all_reports()
            .map(|r| r.connections_starved)
            .max()
            .unwrap_or(0),
        connections: all_reports().map(|r| r.connections).max().unwrap_or(0),
        loadgen_saturated: all_reports().any(|r| r.loadgen_saturated),
        loss_ratio: spread(&|r| r.loss_ratio.filter(|_| r.datagrams_sent > Some(0))),
        datagrams: datagrams(&reports),
        loadgen_cpu_us_per_handshake: spread(&|r| {
            r.handshakes.as_ref()?.loadgen_cpu_us_per_handshake
        }),
        resumed_ratio: spread(&|r| r.handshakes.as_ref()?.resumed_ratio),
        handshake_rate: spread(&|r| Some(r.handshake_arrivals.as_ref()?.rate)),
        arrivals_achieved_ratio: spread(&|r| {
            Some(r.handshake_arrivals.as_ref()?.achieved_rate_ratio)
        }),
        send_late_p99_us: spread(&|r| Some(r.send_late_us.as_ref()?.p99)),
        agents: agents(group),
        work_classes: work_classes(&reports, classes),
        server_cpus: group.iter().find_map(|r| r.record.server_cpus.clone()),
        loadgen_cpu_ratio: None,
        chat: chat(group, &reports, fanout),
        attack: attack(&reports),
        capacity: capacity(&reports),
    };
    if cell.server_cpus.is_some() {
        cell.loadgen_cpu_ratio = spread(&|r| Some(r.loadgen_cpu_ratio));
    }
    if let Some(b) = bootstrap {
        with_intervals(&mut cell, b);
    }
    cell
}

/// `compare --agents`: each agent's figures over the runs of the cell, by its place in
/// `--agents`.
fn agents(group: &[&RunData]) -> Vec<AgentFigures> {
    let most = group
        .iter()
        .filter_map(|r| r.record.agents.as_ref().map(Vec::len))
        .max()
        .unwrap_or(0);
    (0..most)
        .map(|i| {
            let runs: Vec<&AgentRun> = group
                .iter()
                .filter_map(|r| r.record.agents.as_ref()?.get(i))
                .collect();
            let first = runs[0];
            AgentFigures {
                host: first.host.clone(),
                machine: first.machine.clone(),
                cpus: first.cpus.clone(),
                connections: first.connections,
                throughput_msgs_per_s: Spread::of(
                    runs.iter().filter_map(|a| a.throughput_msgs_per_s),
                ),
                loadgen_cpu_ratio: Spread::of(runs.iter().filter_map(|a| a.loadgen_cpu_ratio)),
                saturated_repeats: runs
                    .iter()
                    .filter(|a| a.loadgen_saturated == Some(true))
                    .count(),
                start_late_ms_max: runs.iter().filter_map(|a| a.start_late_ms).reduce(f64::max),
            }
        })
        .collect()
}

/// Requests with a cost: each class's figures over the reports, its p99 with the interval of
/// its own bootstrap (`classes`, by class, where there is one); empty for a workload of one
/// class, whose figures are the cell's own.
fn work_classes(reports: &[&Report], classes: &[Bootstrap]) -> Vec<WorkClassFigures> {
    let most = reports
        .iter()
        .filter_map(|r| Some(r.work.as_ref()?.classes.len()))
        .max()
        .unwrap_or(0);
    if most < 2 {
        return Vec::new();
    }
    (0..most)
        .map(|k| {
            let of = |r: &&Report| r.work.as_ref()?.classes.get(k).cloned();
            let runs: Vec<WorkClass> = reports.iter().filter_map(of).collect();
            let measured = || runs.iter().filter(|c| c.messages > 0);
            let mut p99 = Spread::of(measured().map(|c| c.latency_us.p99));
            if let (Some(s), Some(b)) = (&mut p99, classes.get(k)) {
                s.ci = Some(b.ci(figure::P99));
            }
            WorkClassFigures {
                spec: runs.first().map(|c| c.spec.clone()).unwrap_or_default(),
                share: runs.first().map_or(0.0, |c| c.share),
                messages: Spread::of(runs.iter().map(|c| c.messages as f64)),
                latency_p50_us: Spread::of(measured().map(|c| c.latency_us.p50)),
                latency_p99_us: p99,
            }
        })
        .collect()
}

/// The chat room: a cell's own figures over its reports, the fan-out p99 with the interval of
/// its bootstrap (`fanout`, where there is one); `None` when no report is a chat run's.
fn chat(
    group: &[&RunData],
    reports: &[&Report],
    fanout: Option<&Bootstrap>,
) -> Option<ChatFigures> {
    let chats: Vec<&loadgen::report::ChatReport> =
        reports.iter().filter_map(|r| r.chat.as_ref()).collect();
    let first = chats.first()?;
    let all = || {
        group
            .iter()
            .filter_map(|r| r.report.as_ref()?.chat.as_ref())
    };
    let mut fanout_p99 = Spread::of(
        chats
            .iter()
            .filter(|c| c.deliveries_received > 0)
            .map(|c| c.fanout_latency_us.p99),
    );
    if let (Some(s), Some(b)) = (&mut fanout_p99, fanout) {
        s.ci = Some(b.ci(figure::P99));
    }
    Some(ChatFigures {
        room: first.room,
        slow_per_room: first.slow_per_room,
        fanout_p99_us: fanout_p99,
        messages_per_s: Spread::of(reports.iter().map(|r| r.throughput_msgs_per_s)),
        members_dropped: all().map(|c| c.members_dropped).max().unwrap_or(0),
        lost: all().map(|c| c.lost).sum(),
        deliveries_expected: all().map(|c| c.deliveries_expected).sum(),
    })
}

/// A capacity search's cell: the rates its repeats found, and every step; `None` where no
/// run searched.
fn capacity(reports: &[&Report]) -> Option<Capacity> {
    let found: Vec<&loadgen::FindRate> = reports
        .iter()
        .filter_map(|r| r.find_rate.as_ref())
        .collect();
    let first = found.first()?;
    let mut steps: Vec<[f64; 2]> = found
        .iter()
        .flat_map(|f| f.steps.iter().map(|s| [s.offered, s.p99_us]))
        .collect();
    steps.sort_by(|a, b| a[0].total_cmp(&b[0]));
    Some(Capacity {
        slo: first.slo.clone(),
        rate: Spread::of(found.iter().filter_map(|f| f.rate)),
        at_least: found.iter().any(|f| f.at_least),
        held_none: found.iter().filter(|f| f.rate.is_none()).count(),
        limited_by: found.iter().map(|f| f.limited_by.clone()).collect(),
        steps,
    })
}

/// An attack cell's attackers, the median of each count over the runs with figures; `None`
/// where no run had attackers.
fn attack(reports: &[&Report]) -> Option<AttackFigures> {
    let attacks: Vec<&loadgen::AttackReport> =
        reports.iter().filter_map(|r| r.attack.as_ref()).collect();
    let first = attacks.first()?;
    let median = |f: fn(&loadgen::AttackReport) -> u64| {
        Spread::of(attacks.iter().map(|a| f(a) as f64)).map_or(0.0, |s| s.median)
    };
    Some(AttackFigures {
        spec: first.spec.clone(),
        attempts: median(|a| a.attempts),
        connected: median(|a| a.connected),
        refused: median(|a| a.refused),
        closed_by_server: median(|a| a.closed_by_server),
        blocked_lines: median(|a| a.blocked_lines),
        open_at_end: median(|a| a.open_at_end),
    })
}

/// Gives the cell's resampled figures their intervals from its bootstrap.
fn with_intervals(cell: &mut Cell, b: &Bootstrap) {
    for (spread, k) in [
        (&mut cell.throughput_msgs_per_s, figure::THROUGHPUT),
        (&mut cell.latency_p50_us, figure::P50),
        (&mut cell.latency_p99_us, figure::P99),
        (&mut cell.latency_p99_9_us, figure::P99_9),
        (&mut cell.server_cpu_us_per_msg, figure::CPU_PER_MESSAGE),
    ] {
        if let Some(s) = spread {
            s.ci = Some(b.ci(k));
        }
    }
}

/// The notes of the runs, each marked with its repeat (`r2: ...`).
fn notes(group: &[&RunData]) -> Vec<String> {
    let mut notes: Vec<String> = group
        .iter()
        .filter_map(|r| {
            let note = r.record.note.as_ref()?;
            Some(format!("r{}: {note}", r.record.spec.repeat))
        })
        .collect();
    notes.dedup();
    notes
}

/// A server figure per echoed message, over the runs that echoed any.
fn per_message(runs: &[&RunData], f: impl Fn(&ServerUsage) -> f64) -> Option<Spread> {
    Spread::of(runs.iter().filter_map(|r| {
        let (usage, report) = (r.record.server.as_ref()?, r.report.as_ref()?);
        (units(report) > 0).then(|| f(usage) / units(report) as f64)
    }))
}

/// UDP: the datagram counts of the reports added up, with the loss ratio's interval; `None`
/// when no report is a UDP one.
fn datagrams(reports: &[&Report]) -> Option<DatagramCounts> {
    let udp: Vec<&Report> = reports
        .iter()
        .copied()
        .filter(|r| r.datagrams_sent.is_some())
        .collect();
    if udp.is_empty() {
        return None;
    }
    let sum = |f: fn(&Report) -> Option<u64>| udp.iter().filter_map(|r| f(r)).sum::<u64>();
    let (sent, lost) = (sum(|r| r.datagrams_sent), sum(|r| r.datagrams_lost));
    let (loss_low, loss_high) = DatagramCounts::wilson(lost, sent);
    let drops = || udp.iter().filter_map(|r| r.udp_kernel_drops);
    Some(DatagramCounts {
        sent,
        lost,
        late: sum(|r| r.datagrams_late),
        reordered: sum(|r| r.datagrams_reordered),
        duplicated: sum(|r| r.datagrams_duplicated),
        loss_low,
        loss_high,
        kernel_drops_loadgen: drops().map(|d| d.loadgen).sum(),
        kernel_drops_server: drops().map(|d| d.server).sum(),
    })
}

fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    Spread::of(values).map(|s| s.median)
}
