//! The report formats, pinned on fixture data: `report.md` and `summary.json` by snapshot,
//! and the promise that rendering the same raw data twice gives byte-identical files.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use echobench::schema::{
    Environment, Profile, RunRecord, RunSpec, ServerUsage, Status, Timing, Workload, SCHEMA_VERSION,
};
use echobench::workload::Hostile;
use hdrhistogram::Histogram;
use loadgen::report::ChatReport;
use loadgen::{Errors, Latency, Mode, Report};

const MODELS: [&str; 2] = ["blocking", "mio"];

/// UDP models, run through [`udp_workloads`] only: `udp-mmsg` loses 2 % of its datagrams in
/// the open loop.
const UDP_MODELS: [&str; 2] = ["udp-mio", "udp-mmsg"];

fn udp_workloads() -> Vec<Workload> {
    vec![
        Workload::UdpPingpong {
            connections: 16,
            pipeline: 8,
        },
        Workload::UdpRate { rate: 10_000.0 },
    ]
}

fn workloads() -> Vec<Workload> {
    vec![
        Workload::Pingpong { connections: 1 },
        Workload::Pingpong { connections: 16 },
        Workload::Rate { rate: 10_000.0 },
        Workload::Churn,
        Workload::Idle { idle: 0 },
        Workload::Idle { idle: 1000 },
        Workload::Bulk,
        Workload::Chat {
            room: 16,
            connections: 64,
        },
        Workload::ChatSlow,
        Workload::Attack {
            attack: Hostile::Nobody,
            defended: false,
        },
        Workload::Attack {
            attack: Hostile::Slowloris,
            defended: true,
        },
    ]
}

fn environment() -> Environment {
    Environment {
        schema_version: 1,
        started_utc: "2026-01-02T03:04:05Z".to_owned(),
        hostname: "fixture".to_owned(),
        cpu_model: "Fixture CPU".to_owned(),
        cores: 2,
        memory_kib: 24 * 1024 * 1024,
        kernel: "6.0.0".to_owned(),
        rustc: "rustc 1.0.0".to_owned(),
        echobench_version: "0.0.0".to_owned(),
        git_commit: Some("0123456789abcdef".to_owned()),
        server_cpus: "0".to_owned(),
        loadgen_cpus: "1".to_owned(),
        profile: Profile::Quick,
        models: MODELS
            .iter()
            .chain(&UDP_MODELS)
            .map(|m| (*m).to_owned())
            .collect(),
        nofile_limit: Some([1024, 524_288]),
        ephemeral_ports: Some("32768-60999".to_owned()),
        source_addrs: Some("127.1.0.1-127.1.0.254 (254 addresses)".to_owned()),
        repeats: None,
        seed: None,
        external: Vec::new(),
        udp: true,
        python: None,
        hosts: None,
        slo: None,
    }
}

/// Writes a comparison's raw data with made-up, deterministic figures: the blocking model
/// starves 15 of 16 connections and misses the rate, mio does not.
fn fixture(dir: &Path) {
    std::fs::create_dir_all(dir.join("raw")).unwrap();
    environment().write(&dir.join("environment.json")).unwrap();
    let tcp = MODELS.iter().map(|m| (m, workloads()));
    let udp = UDP_MODELS.iter().map(|m| (m, udp_workloads()));
    for (m, (model, workloads)) in tcp.enumerate().chain(udp.enumerate()) {
        for (k, workload) in workloads.into_iter().enumerate() {
            let spec = RunSpec {
                model: (*model).to_owned(),
                server_args: Vec::new(),
                workload,
                repeat: 1,
            };
            write_run(dir, &FixtureRun { spec, m, k });
        }
    }
}

/// One run of the fixture: the `m`-th model (the higher, the faster) under the `k`-th workload.
struct FixtureRun {
    spec: RunSpec,
    m: usize,
    k: usize,
}

/// Intervals of 100 ms in a fixture run's log (2 s).
const INTERVALS: usize = 20;

const TIMING: Timing = Timing {
    warmup: Duration::from_millis(500),
    duration: Duration::from_secs(2),
};

impl FixtureRun {
    fn options(&self) -> loadgen::Options {
        let addr = "127.0.0.1:7".parse().unwrap();
        self.spec.workload.loadgen_options(addr, TIMING)
    }

    fn starved(&self) -> usize {
        let opts = self.options();
        let blocking_starves = self.spec.model == "blocking" && opts.connections > 1 && !opts.churn;
        // A chat run's slow members never read: they are not counted starved.
        let slow = opts
            .chat
            .map_or(0, |room| opts.connections / room * opts.chat_slow);
        if blocking_starves {
            opts.connections - slow - 1
        } else {
            0
        }
    }

    fn latency(&self) -> Histogram<u64> {
        let fast = self.m as f64 + 1.0;
        let base_us = 50.0 * (self.k as f64 + 1.0) / fast;
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        let messages = (20_000.0 * fast) as u64 + self.k as u64 * 100;
        for i in 0..messages {
            h.record((base_us * 1000.0) as u64 + (i % 97) * 500)
                .unwrap();
        }
        h
    }

    /// The run's latencies in [`INTERVALS`] intervals of 100 ms, dealt out in turn.
    fn intervals(&self) -> Vec<loadgen::hlog::Interval> {
        let all = self.latency();
        let mut hs: Vec<Histogram<u64>> = (0..INTERVALS)
            .map(|_| Histogram::new_with_bounds(1, 3_600_000_000_000, 3).unwrap())
            .collect();
        let mut i = 0;
        for v in all.iter_recorded() {
            for _ in 0..v.count_at_value() {
                hs[i % INTERVALS].record(v.value_iterated_to()).unwrap();
                i += 1;
            }
        }
        hs.into_iter()
            .enumerate()
            .map(|(k, histogram)| loadgen::hlog::Interval {
                start: Duration::from_millis(100 * k as u64),
                length: Duration::from_millis(100),
                tag: "latency".to_owned(),
                histogram,
            })
            .collect()
    }

    fn report(&self, h: &Histogram<u64>) -> Report {
        let opts = self.options();
        let latency = Latency::from_histogram(h);
        let messages = h.len();
        let throughput = messages as f64 / 2.0;
        let saturated = self.spec.model == "mio" && self.k == 1;
        let mut report = Report {
            schema_version: 1,
            target: "127.0.0.1:7".to_owned(),
            mode: opts.mode(),
            connections: opts.connections,
            idle: opts.idle,
            size: opts.size,
            pipeline: 1,
            rate: opts.rate,
            duration_s: 2.0,
            warmup_s: 0.5,
            messages,
            bytes: messages * opts.size as u64,
            throughput_msgs_per_s: throughput,
            achieved_rate_ratio: opts.rate.map(|r| throughput / r),
            errors: Errors::default(),
            connections_starved: self.starved(),
            latency_us: latency.clone(),
            latency_uncorrected_us: (opts.mode() == Mode::Open).then(|| latency.clone()),
            connect_us: (opts.mode() == Mode::Churn).then(|| latency.clone()),
            loadgen_cpu_ratio: if saturated { 0.97 } else { 0.5 },
            loadgen_saturated: saturated,
            first_error: None,
            datagrams_sent: None,
            datagrams_lost: None,
            datagrams_late: None,
            datagrams_reordered: None,
            datagrams_duplicated: None,
            loss_ratio: None,
            udp_kernel_drops: None,
            tls: None,
            handshakes: None,
            handshake_us: None,
            send_late_us: None,
            handshake_arrivals: None,
            started_at_ns: None,
            start_at_ns: None,
            conn_offset: None,
            conn_total: None,
            source_addrs: Some(loadgen::source::SourceReport {
                spec: loadgen::source::LOOPBACK_SPREAD.to_owned(),
                count: 254,
            }),
            // One loadgen core, half busy (saturated: nearly all) over the 2 s.
            loadgen_cpu_s: Some(if saturated { 1.94 } else { 1.0 }),
            work: None,
            chat: opts
                .chat
                .map(|room| self.chat(room, messages, throughput, &latency)),
            attack: opts.attack.as_ref().map(|a| self.attack(&a.text)),
            find_rate: None,
            send_late_own_us: None,
        };
        if self.options().udp {
            self.add_datagrams(&mut report);
        }
        report
    }

    /// The chat room's counts: every delivery received; `mio` drops the slow members of
    /// `chat-slow`, the iterative server never lets them in.
    fn chat(&self, room: usize, deliveries: u64, rate: f64, latency: &Latency) -> ChatReport {
        let opts = self.options();
        let rooms = opts.connections / room;
        ChatReport {
            room,
            rooms,
            slow_per_room: opts.chat_slow,
            deliveries_expected: deliveries,
            deliveries_received: deliveries,
            lost: 0,
            duplicated: 0,
            out_of_order: 0,
            deliveries_per_s: rate,
            delivery_latency_us: latency.clone(),
            fanout_latency_us: latency.clone(),
            members_dropped: match self.spec.model == "mio" {
                true => (rooms * opts.chat_slow) as u64,
                false => 0,
            },
            members_starved: self.starved() as u64,
        }
    }

    /// The attackers' counts: `mio` holds 4 of them (the cap per address) and closes the rest;
    /// the iterative server holds the one it serves.
    fn attack(&self, spec: &str) -> loadgen::AttackReport {
        let held = if self.spec.model == "mio" { 4 } else { 1 };
        loadgen::AttackReport {
            spec: spec.to_owned(),
            from: "127.0.0.2".to_owned(),
            interval_s: 1.0,
            duration_s: 3.5,
            attempts: 64 + 60 * 3,
            connected: 64 + 60 * 3,
            refused: 0,
            closed_by_server: 60 * 3,
            blocked_lines: 0,
            open_at_end: held,
        }
    }

    /// Over UDP, the datagram counts: `udp-mmsg` loses 2 % in the open loop, and a few echoes
    /// come late, reordered or twice.
    fn add_datagrams(&self, r: &mut Report) {
        let messages = r.messages;
        let lost = if self.spec.model == "udp-mmsg" && self.options().rate.is_some() {
            messages / 49
        } else {
            0
        };
        r.datagrams_sent = Some(messages + lost);
        r.datagrams_lost = Some(lost);
        r.datagrams_late = Some(lost / 10);
        r.datagrams_reordered = Some(self.k as u64 * 3);
        r.datagrams_duplicated = Some(self.m as u64);
        r.loss_ratio = Some(lost as f64 / (messages + lost) as f64);
        r.udp_kernel_drops = Some(loadgen::KernelDrops {
            loadgen: 0,
            server: Some(lost / 2),
            rcvbuf_errors: lost / 2,
        });
    }

    fn record(&self, messages: u64) -> RunRecord {
        let (m, idle, starved) = (self.m as u64, self.options().idle as u64, self.starved());
        RunRecord {
            schema_version: SCHEMA_VERSION,
            spec: self.spec.clone(),
            timing: TIMING,
            status: if starved > 0 {
                Status::Starved
            } else {
                Status::Ok
            },
            note: (starved > 0).then(|| {
                let opts = self.options();
                let connections = opts.connections;
                match opts.chat {
                    Some(_) => {
                        format!("{starved} of {connections} members were never let into their room")
                    }
                    None => format!("{starved} of {connections} connections completed no message"),
                }
            }),
            server: Some(ServerUsage {
                cpu_s: messages as f64 * 6e-6 * (2.0 - m as f64),
                peak_rss_kib: 4000 + idle * (10 + 20 * (2 - m)),
                peak_pss_kib: 3000 + idle * (8 + 20 * (2 - m)),
                peak_threads: 1,
                peak_processes: 1,
                // The iterative server never takes the idle connections.
                peak_fds: if self.spec.model == "blocking" {
                    9
                } else {
                    8 + idle
                },
                voluntary_switches: messages / 10,
                involuntary_switches: messages / 100,
                cpu_series: cpu_series(messages as f64 * 6e-6 * (2.0 - m as f64)),
            }),
            agents: None,
            server_cpus: None,
        }
    }
}

/// A CPU series that ends at `cpu_s`, its odd points a little ahead of a straight line.
fn cpu_series(cpu_s: f64) -> Vec<[f64; 2]> {
    (0..=INTERVALS)
        .map(|k| {
            let ahead = if k % 2 == 1 && k < INTERVALS {
                0.2
            } else {
                0.0
            };
            [
                k as f64 * 0.1,
                cpu_s * (k as f64 + ahead) / INTERVALS as f64,
            ]
        })
        .collect()
}

/// Writes the run's loadgen report, interval log and record under `dir/raw`.
fn write_run(dir: &Path, run: &FixtureRun) {
    let raw = dir.join("raw");
    let id = run.spec.id();
    let h = run.latency();
    let report = run.report(&h);
    std::fs::write(
        raw.join(format!("{id}.json")),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045);
    let log = raw.join(format!("{id}.hlog"));
    loadgen::hlog::write(&log, base, &run.intervals(), &report).unwrap();
    std::fs::write(
        raw.join(format!("{id}.run.json")),
        serde_json::to_string_pretty(&run.record(report.messages)).unwrap(),
    )
    .unwrap();
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("echobench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn report_md_and_summary_json_are_pinned() {
    let dir = tempdir("snapshot");
    fixture(&dir);
    echobench::report(&dir).unwrap();
    insta::assert_snapshot!(
        "report.md",
        std::fs::read_to_string(dir.join("report.md")).unwrap()
    );
    insta::assert_snapshot!(
        "summary.json",
        std::fs::read_to_string(dir.join("summary.json")).unwrap()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rendering_the_same_raw_data_twice_is_byte_identical() {
    let dir = tempdir("twice");
    fixture(&dir);
    echobench::report(&dir).unwrap();
    let first = common::files(&dir, false);
    echobench::report(&dir).unwrap();
    assert_eq!(common::files(&dir, false), first);
    let names: Vec<&str> = first.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "report.md",
        "report.html",
        "summary.json",
        "throughput-vs-connections.svg",
        "p99-vs-rate.svg",
        "memory-per-connection.svg",
        "cpu-per-message.svg",
        "latency-pingpong-c16.svg",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let html = String::from_utf8(
        first
            .iter()
            .find(|(n, _)| n == "report.html")
            .unwrap()
            .1
            .clone(),
    )
    .unwrap();
    assert!(html.matches("<svg").count() >= 5, "plots are not inline");
    assert!(
        !html.contains("src=\"http"),
        "report.html must not load anything"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn memory_per_connection_is_the_slope_over_idle_connections() {
    let dir = tempdir("slope");
    fixture(&dir);
    let summary = echobench::report(&dir).unwrap();
    let memory = |model: &str| {
        summary
            .memory_per_connection
            .iter()
            .find(|m| m.model == model)
            .unwrap()
    };
    // PSS grows by 28 KiB per idle connection for mio in the fixture.
    assert_eq!(memory("mio").pss_bytes_per_connection, Some(28.0 * 1024.0));
    // The iterative server leaves them in the backlog: no memory per connection is claimed.
    assert_eq!(memory("blocking").pss_bytes_per_connection, None);
    assert!(memory("blocking")
        .not_accepted
        .as_deref()
        .unwrap()
        .contains("backlog"));
    let flags = |model: &str| {
        summary
            .headline
            .iter()
            .find(|h| h.model == model)
            .unwrap()
            .flags
            .join("; ")
    };
    assert!(
        flags("mio").contains("loadgen-bound in 1 workload"),
        "{}",
        flags("mio")
    );
    assert!(
        flags("blocking").contains("starved in 5 workloads"),
        "{}",
        flags("blocking")
    );
    assert!(
        flags("blocking").contains("backlog"),
        "{}",
        flags("blocking")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn runs_with_server_arguments_are_reported_as_their_own_server() {
    let dir = tempdir("server-args");
    fixture(&dir);
    for (k, workload) in workloads().into_iter().enumerate() {
        let spec = RunSpec {
            model: "mio".to_owned(),
            server_args: vec!["--workers".to_owned(), "4".to_owned()],
            workload,
            repeat: 1,
        };
        write_run(&dir, &FixtureRun { spec, m: 1, k });
    }
    let record = std::fs::read_to_string(dir.join("raw/mio_workers_4.churn.r1.run.json")).unwrap();
    assert!(record.contains("\"server_args\""), "{record}");
    // Records without arguments say nothing of them, as before they existed.
    let plain = std::fs::read_to_string(dir.join("raw/mio.churn.r1.run.json")).unwrap();
    assert!(!plain.contains("server_args"), "{plain}");

    let summary = echobench::report(&dir).unwrap();
    assert_eq!(
        summary.models,
        ["blocking", "mio", "udp-mio", "udp-mmsg", "mio(4)"]
    );
    let cells = summary.cells_of("mio(4)");
    assert_eq!(cells.len(), workloads().len());
    let figures =
        |c: &echobench::schema::Cell| c.throughput_msgs_per_s.map(|t| (t.median, t.min, t.max));
    assert_eq!(
        figures(cells["pingpong-c16"]),
        figures(summary.cells_of("mio")["pingpong-c16"]),
        "the same figures, in a row of their own"
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("- `mio(4)`: one thread, one epoll loop"),
        "the model's line comes from the registry"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The committed reference runs of the newest date (`results/<date>-<machine>/`).
fn reference_runs() -> Vec<PathBuf> {
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("raw").is_dir() && p.join("summary.json").is_file())
        .collect();
    dirs.sort();
    let date = |p: &Path| p.file_name().unwrap().to_string_lossy()[..10].to_owned();
    let newest = dirs
        .iter()
        .map(|p| date(p))
        .max()
        .expect("no reference run in results/");
    dirs.retain(|p| date(p) == newest);
    dirs
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_committed_reference_run_re_renders_byte_for_byte() {
    for reference in reference_runs() {
        let name = reference
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let dir = tempdir(&format!("reference-{name}"));
        copy_dir(&reference, &dir);
        echobench::report(&dir).unwrap();
        for (file, bytes) in common::files(&reference, true) {
            let again = std::fs::read(dir.join(&file)).unwrap();
            assert!(
                again == bytes,
                "results/{name}/{file} re-renders differently: the report's output changed \
                 (re-run the comparison and commit it as the newest reference run)"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn a_raw_report_that_no_run_can_have_is_left_out_not_reported() {
    let dir = tempdir("implausible");
    fixture(&dir);
    let raw = dir.join("raw");
    let json = std::fs::read_dir(&raw)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("mio.pingpong-c16.")
                && name.ends_with(".json")
                && !name.ends_with(".run.json")
        })
        .expect("a raw report of mio's pingpong-c16");
    let mut report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    report["throughput_msgs_per_s"] = serde_json::json!(-1.0e12);
    std::fs::write(&json, report.to_string()).unwrap();
    echobench::report(&dir).unwrap();
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    assert!(
        !summary.contains("-1000000000000"),
        "a negative throughput was reported"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The tick labels of an SVG plot, axis by axis: in its frame and in each of its panels
/// (`<g class="panel">`), the labels sharing an x (a y axis) and those sharing a y (an x axis).
fn axes(svg: &str) -> Vec<Vec<String>> {
    let mut sections = vec![svg.split("<g class=").next().unwrap_or("")];
    sections.extend(
        svg.split("<g class=\"panel\">")
            .skip(1)
            .map(|p| p.split("</g>").next().unwrap_or("")),
    );
    let mut axes = Vec::new();
    for section in sections {
        let mut texts: Vec<(String, String, String)> = Vec::new();
        for piece in section.split("<text ").skip(1) {
            let attr = |name: &str| {
                piece
                    .split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("")
                    .to_owned()
            };
            let label = piece
                .split_once('>')
                .map(|(_, rest)| rest.split("</text>").next().unwrap_or("").trim())
                .unwrap_or("")
                .to_owned();
            if !label.is_empty() {
                texts.push((attr("x"), attr("y"), label));
            }
        }
        for by_x in [true, false] {
            let mut groups: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
            for (x, y, label) in &texts {
                let key = if by_x { x.as_str() } else { y.as_str() };
                groups.entry(key).or_default().push(label.clone());
            }
            axes.extend(groups.into_values().filter(|g| g.len() > 1));
        }
    }
    axes
}

#[test]
fn no_axis_prints_a_tick_label_twice() {
    let twice =
        "<svg><text x=\"84\" y=\"10\">\n1k\n</text><text x=\"84\" y=\"30\">\n1k\n</text></svg>";
    assert_eq!(
        axes(twice),
        [["1k", "1k"]],
        "the check sees a label printed twice"
    );
    let dir = tempdir("ticks");
    fixture(&dir);
    echobench::report(&dir).unwrap();
    let mut dirs = vec![dir.clone()];
    dirs.extend(reference_runs());
    let mut plots = 0;
    for d in &dirs {
        for (name, bytes) in common::files(d, false) {
            if !name.ends_with(".svg") {
                continue;
            }
            plots += 1;
            let svg = String::from_utf8(bytes).unwrap();
            for axis in axes(&svg) {
                let mut seen = std::collections::BTreeSet::new();
                for label in &axis {
                    assert!(
                        seen.insert(label),
                        "{}/{name}: the label {label} is printed twice on one axis: {axis:?}",
                        d.display()
                    );
                }
            }
        }
    }
    assert!(plots > 5, "{plots} plots read");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_report_opens_with_the_answer_then_the_leaders_table() {
    let dir = tempdir("answer");
    fixture(&dir);
    echobench::report(&dir).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let answer = md
        .find("## Which model for what, on this machine")
        .expect("the answer section");
    let leaders = md.find("### Who leads each workload").expect("the leaders");
    let headline = md.find("## Headline").expect("the headline");
    assert!(
        answer < leaders && leaders < headline,
        "answer, leaders, then the headline"
    );
    let top = &md[answer..leaders];
    assert!(
        top.contains("*Many idle clients*: `mio`"),
        "the idle-clients pick names the model with the least memory per connection:\n{top}"
    );
    assert!(top.contains("*Hostile clients*"), "{top}");
    let table = &md[leaders..headline];
    assert!(
        table.contains("| workload | ranked by | leader | runner-up | margin (95 % interval) | verdict | not ranked |"),
        "{table}"
    );
    assert!(
        table.contains("`blocking` (15 of 16 connections starved)"),
        "a model left out is named with why:\n{table}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("<div class=\"tall\">"),
        "the leaders scroll in a box"
    );
    assert!(
        html.contains("<td title=\"95 % interval"),
        "a headline or leader figure's interval is its tooltip"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Chromium, where this machine has it.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// What a page's script wrote into `<pre id="result">`, once Chromium has loaded `page` and
/// run its scripts: Chromium's `--dump-dom`, bounded to a minute.
fn run_in_chromium(chromium: &Path, page: &Path) -> String {
    let profile = tempdir("chromium-profile");
    let mut child = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let ended = testkit::wait_until(Duration::from_secs(60), || child.try_wait().ok().flatten());
    if ended.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let dom = reader.join().unwrap();
    let _ = std::fs::remove_dir_all(profile);
    assert!(ended.is_some(), "chromium did not finish within a minute");
    dom.split("<pre id=\"result\">")
        .nth(1)
        .and_then(|r| r.split("</pre>").next())
        .unwrap_or_else(|| panic!("no result in the page chromium rendered: {dom:.300}"))
        .to_owned()
}

#[test]
fn a_click_on_a_legend_entry_hides_the_models_series_in_a_browser() {
    let test = "a_click_on_a_legend_entry_hides_the_models_series_in_a_browser";
    let Some(chromium) = chromium() else {
        testkit::skip(test, "chromium", "chromium is not installed");
        return;
    };
    let dir = tempdir("browser");
    fixture(&dir);
    echobench::report(&dir).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    // After the report's own script: click mio's legend entry in the first plot twice, then
    // its family's heading, and say after each whether mio's line is displayed.
    let probe = r#"<script>
(function () {
  var out = [];
  var series = document.querySelector('svg g.series[data-model="mio"]');
  var data = series.querySelector('g.data');
  var click = function (el) { el.dispatchEvent(new MouseEvent('click', {bubbles: true})); };
  var shown = function () { return getComputedStyle(data).display !== 'none'; };
  out.push('before ' + shown());
  click(series.querySelector('g.key text'));
  out.push('one click ' + shown());
  click(series.querySelector('g.key text'));
  out.push('two clicks ' + shown());
  var svg = series.closest('svg');
  var family = svg.querySelector('g.family[data-family="' + series.getAttribute('data-family') + '"]');
  click(family.querySelector('text'));
  out.push('family ' + shown());
  var pre = document.createElement('pre');
  pre.id = 'result';
  pre.textContent = out.join(', ');
  document.body.appendChild(pre);
})();
</script>
</body>"#;
    let page = dir.join("probe.html");
    std::fs::write(&page, html.replace("</body>", probe)).unwrap();
    let result = run_in_chromium(&chromium, &page);
    assert_eq!(
        result, "before true, one click false, two clicks true, family false",
        "what chromium showed of mio's series"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
