//! The report's content, section by section, as [`Block`]s that [`super::markup`] writes as
//! Markdown and as HTML alike.

use super::block::Block;
use super::format::{
    bytes, int, kib, mark, median_us, or_dash, pair, percent, plus_minus, scale, server_name,
    spread, us, with_ci, DASH,
};
use super::headline::headline_table;
use super::plots::Plot;
use crate::schema::{Cell, DatagramCounts, Environment, ExternalServer, ServerSpec, Summary};
use crate::workload::{
    Section, Table, Workload, BULK_SIZE, TLS_MIXED_RATE, TLS_MIXED_ROUNDS, UDP_TIMEOUT,
};

/// The whole report, in reading order.
pub fn document(s: &Summary, plots: &[Plot]) -> Vec<Block> {
    let mut doc = title(s);
    doc.extend(super::answer::answer(s));
    doc.extend(super::python::python_beside_rust(s));
    doc.extend(headline(s));
    doc.extend(super::findings::what_this_run_shows(s));
    doc.extend(models(s));
    doc.extend(plot_figures(plots));
    doc.extend(results_by_workload(s));
    doc.extend(udp(s));
    doc.extend(tls(s));
    doc.extend(requests_with_a_cost(s));
    doc.extend(memory_per_connection(s));
    doc.extend(chat_room(s));
    doc.extend(hostile_clients(s));
    doc.extend(server_resources(s));
    doc.extend(super::agents::load_agents(s));
    doc.extend(notes(s));
    doc.extend(setup(s));
    doc.push(Block::Para(
        "Raw data: `raw/` holds every run's loadgen report (`.json`), interval log (`.hlog`, HdrHistogram V2 + deflate, mergeable with `loadgen merge`), server record (`.run.json`) and any server log; `echobench report DIR` re-renders these files from it.".to_owned(),
    ));
    doc
}

/// The title and, in a line, the machine and the run; [`setup`] gives the whole of it.
fn title(s: &Summary) -> Vec<Block> {
    let e = &s.environment;
    vec![
        Block::Heading(1, "echobench: concurrency models compared".to_owned()),
        Block::Para(format!(
            "Profile `{}`, {}, started {} on `{}`: {} CPUs, {} GiB, servers on CPUs {} and loadgen on CPUs {}. The whole setup is under *Setup* at the end.",
            e.profile.name(),
            super::answer::passes(s),
            e.started_utc,
            e.hostname,
            e.cores,
            e.memory_kib / (1024 * 1024),
            e.server_cpus,
            e.loadgen_cpus,
        )),
    ]
}

/// The machine the comparison ran on, and how.
fn setup(s: &Summary) -> Vec<Block> {
    let e = &s.environment;
    vec![
        Block::Heading(2, "Setup".to_owned()),
        Block::Para(format!(
            "`{}`: {} ({} CPUs, {} GiB), Linux {}, {}. Servers pinned to CPUs {}, loadgen to CPUs {}. echobench {} at commit `{}`.",
            e.hostname,
            e.cpu_model,
            e.cores,
            e.memory_kib / (1024 * 1024),
            e.kernel,
            e.rustc,
            e.server_cpus,
            e.loadgen_cpus,
            e.echobench_version,
            e.git_commit.as_deref().unwrap_or("unknown"),
        ) + &limits(e)),
    ]
}

/// The limits on connections the machine had, where the run recorded them.
fn limits(e: &Environment) -> String {
    let mut text = String::new();
    if let Some([soft, hard]) = e.nofile_limit {
        text += &format!(" Descriptor limit {soft} soft, {hard} hard (raised to {hard} for loadgen and the servers echobench builds).");
    }
    if let Some(ports) = &e.ephemeral_ports {
        text += &format!(" Ephemeral ports {ports}.");
    }
    if let Some(sources) = &e.source_addrs {
        text += &format!(" loadgen's connections came from {sources} in turn (`--source-addrs`), so that a churn of connections does not search one address's ports, all in TIME_WAIT, for a free one.");
    }
    text
}

/// The headline table and how to read its columns.
fn headline(s: &Summary) -> Vec<Block> {
    if s.headline.is_empty() {
        return Vec::new();
    }
    let (header, rows) = headline_table(s);
    let mut notes = Vec::new();
    if s.headline.iter().any(|h| h.slo_rate.is_some()) {
        notes.push("*rate at p99 ≤ target*: the highest open-loop rate the server held with that percentile within the target over 16 connections, by the capacity search (`±`: the farther of the passes' least and most).".to_owned());
    }
    notes.extend([
        "*peak*: best closed-loop throughput over the pingpong connection counts (64 B), and the connections it was reached *at*.".to_owned(),
        format!(
            "*p99*: 99th percentile latency in the open loop at {} msgs/s offered over 16 connections, coordinated-omission corrected; latency is compared only at the same offered rate.",
            or_dash(s.rate_for_p99, int)
        ),
        "*churn*: connect, echo 64 B, close, 16 at a time: what accepting a connection costs each model (a thread, a process, a task).".to_owned(),
        "*memory / idle conn*: slope of the server's memory (PSS) over idle connections held beside one active one, not a single division.".to_owned(),
        "*server CPU / msg*: user + system time of the whole server process tree per echoed message, at 16 connections.".to_owned(),
        confidence(s),
        "*findings*: in how many workloads the server starved connections (an iterative server serves one client; the rest wait: a finding, not a crash) or failed, and in how many loadgen used over 90 % of its CPUs (the load generator, not the server, may have been the limit); idle connections it left in the backlog; errors. *Who leads each workload* above names the workloads.".to_owned(),
    ]);
    vec![
        Block::Heading(2, "Headline".to_owned()),
        Block::Table(header, rows),
        Block::Para(super::headline::HEADLINE_MARKS.to_owned()),
        Block::List(notes),
    ]
}

/// How to read `± n [R×N]`, with the resampling's settings.
fn confidence(s: &Summary) -> String {
    let r = &s.resampling;
    format!(
        "*± n [R×N]*: the figure (median over R repeats) with the distances to the bounds of its {:.0} % confidence interval (`± n` when they are alike, `(−a, +b)` when lopsided), from {} resamples of a hierarchical bootstrap (repeats, then blocks of consecutive {} ms intervals within each; percentiles from added histograms; seed {}), with R repeats of N intervals behind it. `± n/a`: fewer than {} blocks, too few for an interval. Memory per connection: Student's t over the repeats' slopes (`[R runs]`, n/a below {}).",
        r.confidence * 100.0,
        r.resamples,
        (r.interval_s * 1000.0).round(),
        r.seed,
        r.min_blocks,
        r.min_repeats_memory,
    )
}

/// Each server and how it works, from the registry (an external server: its command and what
/// its server file says): the servers of the headline, then the pool sweep's in one line.
fn models(s: &Summary) -> Vec<Block> {
    let line = |m: &String| {
        if let Some(e) = s.environment.external(m) {
            return external_line(e);
        }
        if let (Some(py), Some(run)) = (echo_server::python::find(m), &s.environment.python) {
            return format!(
                "`{m}` ({} {}, `servers/python/{}`): {}; its Rust counterpart is `{}`",
                run.implementation, run.version, py.file, py.summary, py.counterpart
            );
        }
        let model = echo_server::Model::from_name(ServerSpec::model_of(m));
        let started = &s.environment.started_utc;
        let how = model.map_or("", |model| model.summary_as_of(started));
        let sized = match model.and_then(|model| model.pool_workers()) {
            Some(n) if ServerSpec::workers_of(m) == Some(n) => format!(
                "; run with `--workers {n}`: a pool of blocking workers serves one client per worker, so it is sized for the clients it must serve at once, not for cores"
            ),
            _ => String::new(),
        };
        format!("`{m}`: {how}{sized}")
    };
    let mut items: Vec<String> = s.headline.iter().map(|h| line(&h.model)).collect();
    let is_udp = |m: &String| crate::plan::serves_udp(ServerSpec::model_of(m));
    items.extend(s.models.iter().filter(|m| is_udp(m)).map(line));
    // The servers of no headline row: a comparison of requests with a cost alone lists them
    // here; otherwise, those only the pool sweep ran, and `MODEL+pool`.
    let unlisted = |m: &&String| s.headline.iter().all(|h| &h.model != *m) && !is_udp(m);
    let only = |m: &String, kind: fn(&Workload) -> bool| {
        s.cells
            .iter()
            .filter(|c| &c.model == m)
            .all(|c| Workload::from_label(&c.label).is_some_and(|w| kind(&w)))
    };
    let pooled = |m: &String| m.ends_with(echo_server::models::POOLED);
    items.extend(
        s.models
            .iter()
            .filter(unlisted)
            .filter(|m| only(m, Workload::is_work) && !pooled(m))
            .map(line),
    );
    let offloaded: Vec<String> = s
        .models
        .iter()
        .filter(|m| pooled(m))
        .map(|m| format!("`{m}`"))
        .collect();
    if !offloaded.is_empty() {
        items.push(format!(
            "In the CPU-bound workloads of requests with a cost, the event loops also hand each request's CPU work to a pool and wait for it without blocking (`--offload pool`: rayon for the hand-written loops, `spawn_blocking` for tokio, the `blocking` crate for async-std and smol, a process pool for `py-asyncio`): {}",
            offloaded.join(", ")
        ));
    }
    let sweep: Vec<&String> = s
        .models
        .iter()
        .filter(unlisted)
        .filter(|m| only(m, |w| matches!(w, Workload::Pool { .. })))
        .collect();
    if !sweep.is_empty() {
        let names: Vec<String> = sweep.iter().map(|m| format!("`{m}`")).collect();
        items.push(format!(
            "Only in the pool workloads, pools of blocking workers at every size of the sweep: {}",
            names.join(", ")
        ));
    }
    vec![Block::Heading(2, "Models".to_owned()), Block::List(items)]
}

/// `mio2` (external): `COMMAND`; family; notes; caps.
fn external_line(e: &ExternalServer) -> String {
    let mut parts = vec![format!(
        "`{}` (external, not built by echobench): `{}`, run in a session of its own and measured as the built-in models are",
        e.name, e.command
    )];
    parts.extend(e.family.as_ref().map(|f| format!("family: {f}")));
    parts.extend(e.notes.clone());
    let caps: Vec<String> = [
        ("max_idle", e.max_idle),
        ("max_connections", e.max_connections),
    ]
    .iter()
    .filter_map(|(key, cap)| cap.map(|c| format!("{key} {c}")))
    .collect();
    if !caps.is_empty() {
        parts.push(format!(
            "capped at {} (workloads above are not run)",
            caps.join(", ")
        ));
    }
    parts.join("; ")
}

fn plot_figures(plots: &[Plot]) -> Vec<Block> {
    if plots.is_empty() {
        return Vec::new();
    }
    let mut blocks = vec![Block::Heading(2, "Plots".to_owned())];
    blocks.extend(
        plots
            .iter()
            .map(|p| Block::Plot(p.file.clone(), p.caption.clone())),
    );
    blocks
}

/// Every workload table of `section` ([`Workload::tables`]), in the report's order.
fn section_tables(s: &Summary, section: Section) -> Vec<Block> {
    let columns = workload_columns(s);
    Table::ALL
        .into_iter()
        .filter(|t| t.section() == section)
        .flat_map(|t| {
            let labels: Vec<&str> = columns
                .iter()
                .filter(|(_, w)| w.tables().contains(&t))
                .map(|(l, _)| *l)
                .collect();
            columns_table(s, t.title(), &labels, &cell_figure(t))
        })
        .collect()
}

/// The workloads that ran, as table columns go: in the profile's order, then those only this
/// comparison ran, in its order.
fn workload_columns(s: &Summary) -> Vec<(&str, Workload)> {
    let known: Vec<String> = Workload::all_of_profile(s.environment.profile)
        .iter()
        .map(Workload::label)
        .collect();
    let mut ran: Vec<&String> = known
        .iter()
        .filter_map(|k| s.workloads.iter().find(|l| *l == k))
        .collect();
    ran.extend(s.workloads.iter().filter(|l| !known.contains(l)));
    ran.into_iter()
        .filter_map(|l| Some((l.as_str(), Workload::from_label(l)?)))
        .collect()
}

/// What a table's cells show; every table's own.
fn cell_figure(table: Table) -> fn(&Cell) -> String {
    match table {
        Table::PingpongThroughput | Table::Pool | Table::UdpThroughput | Table::TlsThroughput => {
            throughput_figure
        }
        Table::PingpongLatency | Table::UdpLatency => latency_figures,
        Table::Rate | Table::UdpRate => rate_figures,
        Table::Churn => churn_figures,
        Table::Idle => idle_figures,
        Table::Bulk => bulk_figure,
        Table::UdpLoss => |c| mark(c, or_dash(c.datagrams, loss)),
        Table::TlsHandshakeCpu => handshake_cpu_figures,
        Table::TlsMixed => tls_mixed_figures,
        Table::WorkThroughput => throughput_figure,
        Table::WorkLatency => latency_figures,
        Table::Mixed => mixed_figures,
        Table::ChatDeliveries => super::chat::deliveries_figure,
        Table::ChatLatency => super::chat::latency_figures,
        Table::ChatCost => super::chat::cost_figures,
        Table::AttackRate => super::attack::rate_figure,
        Table::AttackLatency => super::attack::latency_figures,
        Table::Slo => capacity_figure,
    }
}

/// Whether any workload with a table in `section` ran.
fn section_ran(s: &Summary, section: Section) -> bool {
    s.workloads
        .iter()
        .filter_map(|l| Workload::from_label(l))
        .any(|w| w.tables().iter().any(|t| t.section() == section))
}

/// Every TCP workload's own table.
fn results_by_workload(s: &Summary) -> Vec<Block> {
    let tables = section_tables(s, Section::Results);
    if tables.is_empty() {
        return Vec::new();
    }
    let mut blocks = vec![
        Block::Heading(2, "Results by workload".to_owned()),
        Block::Para(
            "Medians over repeats, each with the half-width of its 95 % confidence interval and the samples behind it (see *± n* above); figures without an interval show the range (min–max) when a run was repeated. Marks: `L` loadgen used over 90 % of its CPUs in this run; `S n/m` n of m connections completed no message; `E n` errors counted; `failed` no figures (see notes).".to_owned(),
        ),
    ];
    blocks.extend(tables);
    blocks
}

fn throughput_figure(c: &Cell) -> String {
    mark(c, spread(c.throughput_msgs_per_s, int))
}

fn latency_figures(c: &Cell) -> String {
    mark(c, pair(c.latency_p50_us, c.latency_p99_us))
}

fn bulk_figure(c: &Cell) -> String {
    let mb = c
        .throughput_msgs_per_s
        .map(|t| scale(t, BULK_SIZE as f64 / 1e6));
    mark(c, spread(mb, |v| format!("{v:.0}")))
}

fn handshake_cpu_figures(c: &Cell) -> String {
    let server = c
        .server_cpu_us_per_msg
        .map_or(DASH.to_owned(), |v| with_ci(v.median, v.ci, us));
    let client = spread(c.loadgen_cpu_us_per_handshake, us);
    mark(c, format!("{server} / {client}"))
}

fn tls_mixed_figures(c: &Cell) -> String {
    let p99 = c
        .latency_p99_us
        .map_or(DASH.to_owned(), |v| with_ci(v.median, v.ci, us));
    let rate = c
        .handshake_rate
        .map_or("control".to_owned(), |r| format!("{} /s", int(r.median)));
    mark(c, format!("{p99} at {rate}"))
}

fn rate_figures(c: &Cell) -> String {
    let achieved = or_dash(c.achieved_rate_ratio, |s| percent(s.median));
    let p99 = median_us(c.latency_p99_us);
    let uncorrected = median_us(c.latency_uncorrected_p99_us);
    mark(c, format!("{p99} / {uncorrected}, {achieved}"))
}

fn churn_figures(c: &Cell) -> String {
    let rate = spread(c.throughput_msgs_per_s, int);
    let latency = or_dash(c.latency_p50_us, |s| plus_minus(s.median, s.ci, us));
    let connect = median_us(c.connect_p50_us);
    mark(c, format!("{rate}, {latency}, {connect}"))
}

fn idle_figures(c: &Cell) -> String {
    let (pss, rss) = (or_dash(c.peak_pss_kib, kib), or_dash(c.peak_rss_kib, kib));
    mark(
        c,
        format!("{pss} / {rss}, p99 {}", median_us(c.latency_p99_us)),
    )
}

/// The UDP models through the UDP workloads, when they ran: throughput, latency and loss, and
/// what became of the datagrams.
fn udp(s: &Summary) -> Vec<Block> {
    if !section_ran(s, Section::Udp) {
        return Vec::new();
    }
    let cpus = &s.environment.server_cpus;
    let workers = loadgen::parse_cpus(cpus).map_or(1, |c| c.len());
    let mut blocks = vec![
        Block::Heading(2, "UDP".to_owned()),
        Block::Para(format!(
            "RFC 862 over UDP: each datagram (64 B, its first 8 bytes a sequence number) goes back to its sender; there is no accept, and one socket serves every client (`udp-reuseport`: one per worker). loadgen sends from one connected socket per client; a datagram not echoed within {} ms is lost, an echo after that is late (and stays lost). `udp-reuseport` and `udp-tokio` run `--workers` threads whatever the clients: one per server CPU ({workers} here: CPUs {cpus}), as their names show. Loss: lost over sent, of the datagrams sent in the measured windows, with its 95 % Wilson interval over the datagrams of every repeat; cells that lost more than 1 % are not ranked. CPU per datagram: *Server resources* below.",
            UDP_TIMEOUT.as_millis()
        )),
    ];
    if let Some((header, rows)) = super::headline::udp_headline_table(s) {
        blocks.push(Block::Table(header, rows));
    }
    blocks.extend(section_tables(s, Section::Udp));
    blocks.extend(datagram_fates(s));
    blocks
}

/// The TLS-capable models over TLS, when they ran: throughput, the cost of a handshake on
/// both sides, and `tls-mixed`'s head-of-line verdict per model.
fn tls(s: &Summary) -> Vec<Block> {
    if !section_ran(s, Section::Tls) {
        return Vec::new();
    }
    let mut blocks = vec![
        Block::Heading(2, "TLS".to_owned()),
        Block::Para(format!(
            "The TLS-capable models with a self-signed ECDSA P-256 certificate (TLS 1.3, the server's choice of suite; rustls and ring on both sides). `tls-pingpong` and `tls-bulk`: 16 connections, closed loop, 64 B and 64 KiB. `tls-churn`: 16 at a time, each connection a full handshake, one 64 B echo and `close_notify` both ways, so its throughput is handshakes per second and its server CPU per message is server CPU per handshake; `tls-churn-resumed` the same with session tickets (loadgen collects one per connection first). loadgen pays more per handshake than the server (it verifies the certificate): on 2 cores these cells are loadgen-bound (`L`), and the server's CPU per handshake is the figure to read. `tls-mixed-N`: 16 long-lived connections in an open loop at {} msgs/s beside new connections (full handshake, one echo, close) arriving at N % of the model's `tls-churn` rate in the same pass, from a loadgen thread at `SCHED_IDLE`; {} rounds each, control (0 %) and loaded runs alternating. Each verdict below sets a loaded run's p99 against the control's 95 % interval and says how late the long-lived sends went out on their plan at p99: loadgen's own delay, or a connection still waiting for its previous echo (one in flight per connection), so a figure near the p99 itself means the server, not loadgen, held them. With the server on one core, a cooperative server runs each handshake's crypto inline, and a preemptive one shares the same core between its clients' threads: neither has a second core to move handshakes to.",
            int(TLS_MIXED_RATE),
            TLS_MIXED_ROUNDS
        )),
    ];
    blocks.extend(section_tables(s, Section::Tls));
    blocks.push(Block::List(super::findings::tls_mixed_verdicts(s)));
    blocks
}

/// Requests with a cost, when they ran: how, their tables, and the tutorials' claims tested
/// on them.
fn requests_with_a_cost(s: &Summary) -> Vec<Block> {
    if !section_ran(s, Section::Work) {
        return Vec::new();
    }
    let mut blocks = super::work::about(s);
    blocks.extend(section_tables(s, Section::Work));
    blocks.extend(super::work::claims(s));
    blocks
}

/// The chat room: how it was made, its tables, how each model shares and what it costs.
fn chat_room(s: &Summary) -> Vec<Block> {
    if !section_ran(s, Section::Chat) {
        return Vec::new();
    }
    let mut blocks = super::chat::about();
    blocks.extend(section_tables(s, Section::Chat));
    blocks.extend(super::chat::sharing(s));
    blocks
}

/// The capacity search's cell: the highest rate held under the target over the repeats
/// (`≥` where loadgen was the limit), and its steps.
fn capacity_figure(c: &Cell) -> String {
    let Some(cap) = &c.capacity else {
        return mark(c, DASH.to_owned());
    };
    let rate = match cap.rate {
        Some(r) => super::headline::capacity_range(r, cap.at_least),
        None => "holds at no rate tried".to_owned(),
    };
    let repeats = c.repeats.max(1);
    mark(
        c,
        format!("{rate}, {} steps in {repeats} search(es)", cap.steps.len()),
    )
}

/// Hostile clients: how the attacks were made, their tables, what each model kept.
fn hostile_clients(s: &Summary) -> Vec<Block> {
    if !section_ran(s, Section::Attack) {
        return Vec::new();
    }
    let mut blocks = super::attack::about();
    blocks.extend(section_tables(s, Section::Attack));
    blocks.extend(super::attack::kept(s));
    blocks
}

/// `mixed`'s cell: the light requests' p99 with its interval, the heavy ones', the share of
/// the offered rate achieved.
fn mixed_figures(c: &Cell) -> String {
    let p99 = |k: usize| median_us(c.work_classes.get(k).and_then(|w| w.latency_p99_us));
    let achieved = or_dash(c.achieved_rate_ratio, |s| percent(s.median));
    mark(c, format!("{} / {}, {achieved}", p99(0), p99(1)))
}

/// A table of the cells of `labels` that ran, one column each, one row per model with any.
fn columns_table(
    s: &Summary,
    title: &str,
    labels: &[&str],
    f: &dyn Fn(&Cell) -> String,
) -> Vec<Block> {
    let cols: Vec<&str> = labels
        .iter()
        .copied()
        .filter(|l| s.workloads.iter().any(|w| w == l))
        .collect();
    if cols.is_empty() {
        return Vec::new();
    }
    let mut header = vec!["model".to_owned()];
    header.extend(cols.iter().map(|l| (*l).to_owned()));
    let rows = s
        .models
        .iter()
        .filter(|m| cols.iter().any(|l| s.cells_of(m).contains_key(l)))
        .map(|m| {
            let cells = s.cells_of(m);
            let mut row = vec![server_name(s, m)];
            row.extend(cols.iter().map(|l| or_dash(cells.get(l), |c| f(c))));
            row
        })
        .collect();
    vec![
        Block::Heading(3, title.to_owned()),
        Block::Table(header, rows),
    ]
}

/// `0.012 % (0.008–0.020)`: the loss ratio of pooled counts with its interval, in percent.
fn loss(d: DatagramCounts) -> String {
    let pct = |v: f64| format!("{:.3}", v * 100.0);
    format!(
        "{} % ({}–{})",
        pct(d.loss_ratio()),
        pct(d.loss_low),
        pct(d.loss_high)
    )
}

/// Every UDP cell's datagram counts and the kernel's receive drops.
fn datagram_fates(s: &Summary) -> Vec<Block> {
    let header = [
        "model",
        "workload",
        "sent",
        "lost",
        "late",
        "reordered",
        "duplicated",
        "kernel drops (loadgen / server)",
    ];
    let rows = s
        .cells
        .iter()
        .filter_map(|c| Some((c, c.datagrams?)))
        .map(|(c, d)| {
            vec![
                server_name(s, &c.model),
                c.label.clone(),
                int(d.sent as f64),
                int(d.lost as f64),
                int(d.late as f64),
                int(d.reordered as f64),
                int(d.duplicated as f64),
                format!(
                    "{} / {}",
                    d.kernel_drops_loadgen,
                    or_dash(d.kernel_drops_server, |n| n.to_string())
                ),
            ]
        })
        .collect();
    vec![
        Block::Heading(3, "What became of the datagrams (all repeats)".to_owned()),
        Block::Table(header.map(str::to_owned).to_vec(), rows),
    ]
}

/// Memory per connection: the slopes and the points they were fitted to.
fn memory_per_connection(s: &Summary) -> Vec<Block> {
    if s.memory_per_connection.is_empty() {
        return Vec::new();
    }
    let header = [
        "model",
        "PSS slope",
        "RSS slope",
        "points (idle conns: PSS)",
        "note",
    ];
    let rows = s
        .memory_per_connection
        .iter()
        .map(|m| {
            let points: Vec<String> = m
                .points
                .iter()
                .map(|(n, k)| format!("{n}: {}", kib(*k)))
                .collect();
            let pss = or_dash(m.pss_bytes_per_connection, |b| with_ci(b, m.pss_ci, bytes));
            vec![
                server_name(s, &m.model),
                pss,
                or_dash(m.rss_bytes_per_connection, bytes),
                points.join(", "),
                m.not_accepted.clone().unwrap_or_else(|| DASH.to_owned()),
            ]
        })
        .collect();
    vec![
        Block::Heading(3, "Memory per connection".to_owned()),
        Block::Table(header.map(str::to_owned).to_vec(), rows),
    ]
}

/// CPU, memory, threads, processes and context switches of every cell; loadgen's CPU per
/// message beside the server's, where the runs recorded it.
fn server_resources(s: &Summary) -> Vec<Block> {
    if s.cells.is_empty() {
        return Vec::new();
    }
    let with_loadgen = s.cells.iter().any(|c| c.loadgen_cpu_us_per_msg.is_some());
    let mut header = vec!["model", "workload", "CPU µs/msg"];
    if with_loadgen {
        header.push("loadgen CPU µs/msg");
    }
    header.extend(["RSS", "PSS", "threads", "processes", "switches/msg"]);
    let rows = s
        .cells
        .iter()
        .map(|c| {
            let mut row = vec![
                server_name(s, &c.model),
                c.label.clone(),
                or_dash(c.server_cpu_us_per_msg, |s| {
                    with_ci(s.median, s.ci, |v| format!("{v:.2}"))
                }),
            ];
            if with_loadgen {
                row.push(or_dash(c.loadgen_cpu_us_per_msg, |l| {
                    format!("{:.2}", l.median)
                }));
            }
            row.extend([
                or_dash(c.peak_rss_kib, kib),
                or_dash(c.peak_pss_kib, kib),
                or_dash(c.peak_threads, |t| t.to_string()),
                or_dash(c.peak_processes, |p| p.to_string()),
                match (c.voluntary_switches_per_msg, c.involuntary_switches_per_msg) {
                    (Some(v), Some(i)) => format!("{v:.2} / {i:.2}"),
                    _ => DASH.to_owned(),
                },
            ]);
            row
        })
        .collect();
    let mut about = "Over the whole server process tree, from `/proc`: CPU (user + system) per message in the measured time; peak RSS and PSS; most threads and processes at once; context switches per message (voluntary / involuntary; threads that exited during the run are not seen). RSS and PSS count user-space pages only: socket buffers, page tables and the kernel's thread and process structures are not in them.".to_owned();
    if with_loadgen {
        about += " *loadgen CPU µs/msg*: loadgen's own CPU (user + system, all its threads) per message in the measured time, median over the repeats (churn: per connection). On loopback the connecting side's share of each handshake and of each segment's delivery is charged to loadgen; where it is near the server's, the server may not be the limit.";
    }
    vec![
        Block::Heading(2, "Server resources".to_owned()),
        Block::Para(about),
        Block::Table(header.into_iter().map(str::to_owned).collect(), rows),
    ]
}

/// What the runs noted (failures, starvation, slow stops), when any did.
fn notes(s: &Summary) -> Vec<Block> {
    let notes: Vec<String> = s
        .cells
        .iter()
        .flat_map(|c| {
            c.notes
                .iter()
                .map(move |n| format!("`{}` {}: {n}", c.model, c.label))
        })
        .collect();
    if notes.is_empty() {
        return Vec::new();
    }
    vec![
        Block::Heading(2, "Notes from the runs".to_owned()),
        Block::List(notes),
    ]
}
