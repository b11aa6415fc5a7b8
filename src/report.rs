//! `echobench report DIR`: renders `summary.json`, `report.md`, `report.html` and the SVG plots
//! from `DIR/raw/` and `DIR/environment.json`. Rendering is deterministic: the same raw data
//! gives byte-identical files.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::environment::Environment;
use crate::plots::{self, Series};
use crate::runner::Status;
use crate::summary::{self, Cell, RunData, Summary};
use crate::workload::Workload;

/// Renders every report file of `dir` from its raw data.
pub fn render(dir: &Path) -> anyhow::Result<Summary> {
    let env = Environment::read(&dir.join("environment.json"))?;
    let runs = summary::load_runs(dir)?;
    let summary = summary::summarize(&env, &runs);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write(
        "summary.json",
        &(serde_json::to_string_pretty(&summary)? + "\n"),
    )?;
    let plots = make_plots(&summary, &runs);
    for (name, _, svg) in &plots {
        write(name, svg)?;
    }
    let doc = document(&summary, &plots);
    write("report.md", &markdown(&doc))?;
    write("report.html", &html(&doc, &plots, &summary))?;
    Ok(summary)
}

/// A piece of the report, rendered to Markdown and to HTML alike.
pub enum Block {
    /// A heading of this level.
    Heading(u8, String),
    /// A paragraph (may hold `code` spans).
    Para(String),
    /// A table: header and rows.
    Table(Vec<String>, Vec<Vec<String>>),
    /// A plot: its file name and caption.
    Plot(String, String),
    /// A bulleted list.
    List(Vec<String>),
}

/// The headline table, as printed at the end of `compare`.
pub fn headline_table(s: &Summary) -> (Vec<String>, Vec<Vec<String>>) {
    let rate = s
        .rate_for_p99
        .map_or_else(|| "p99".to_owned(), |r| format!("p99 @ {} msgs/s", int(r)));
    let header = vec![
        "model".to_owned(),
        "peak msgs/s (conns)".to_owned(),
        rate,
        "churn conn/s".to_owned(),
        "memory / idle conn".to_owned(),
        "server CPU / msg (16 conns)".to_owned(),
        "bulk MB/s".to_owned(),
        "findings".to_owned(),
    ];
    let rows = s
        .headline
        .iter()
        .map(|h| {
            vec![
                h.model.clone(),
                match (h.peak_msgs_per_s, h.peak_at_connections) {
                    (Some(t), Some(c)) => format!("{} ({c})", int(t)),
                    _ => "—".to_owned(),
                },
                h.p99_us_at_rate.map_or_else(
                    || "—".to_owned(),
                    |p| {
                        format!(
                            "{}{}",
                            us(p),
                            if h.rate_achieved {
                                ""
                            } else {
                                " (rate not met)"
                            }
                        )
                    },
                ),
                h.churn_conns_per_s.map_or_else(|| "—".to_owned(), int),
                h.bytes_per_idle_connection
                    .map_or_else(|| "—".to_owned(), bytes),
                h.cpu_us_per_msg.map_or_else(|| "—".to_owned(), us),
                h.bulk_mb_per_s
                    .map_or_else(|| "—".to_owned(), |m| format!("{m:.0}")),
                if h.flags.is_empty() {
                    "—".to_owned()
                } else {
                    h.flags.join("; ")
                },
            ]
        })
        .collect();
    (header, rows)
}

/// The headline table as aligned plain text, for the terminal.
pub fn headline_text(s: &Summary) -> String {
    let (header, rows) = headline_table(s);
    let all: Vec<&Vec<String>> = std::iter::once(&header).chain(rows.iter()).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| all.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in all {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out += line.join("  ").trim_end();
        out.push('\n');
    }
    out
}

fn document(s: &Summary, plots: &[(String, String, String)]) -> Vec<Block> {
    let e = &s.environment;
    let mut doc = vec![
        Block::Heading(1, "echobench: concurrency models compared".to_owned()),
        Block::Para(format!(
            "Profile `{:?}`, started {} on `{}`: {} ({} CPUs, {} GiB), Linux {}, {}. Servers pinned to CPUs {}, loadgen to CPUs {}. echobench {} at commit `{}`.",
            e.profile,
            e.started_utc,
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
        ).replace("Quick", "quick").replace("Full", "full").replace("Tiny", "tiny")),
        Block::Heading(2, "Headline".to_owned()),
    ];
    let (header, rows) = headline_table(s);
    doc.push(Block::Table(header, rows));
    doc.push(Block::List(vec![
        "*peak msgs/s*: best closed-loop throughput over the pingpong connection counts (64 B).".to_owned(),
        format!(
            "*p99*: 99th percentile latency in the open loop at {} msgs/s offered over 16 connections, coordinated-omission corrected; latency is compared only at the same offered rate.",
            s.rate_for_p99.map_or_else(|| "—".to_owned(), int)
        ),
        "*churn*: connect, echo 64 B, close, 16 at a time: what accepting a connection costs each model (a thread, a process, a task).".to_owned(),
        "*memory / idle conn*: slope of the server's memory (PSS) over idle connections held beside one active one, not a single division.".to_owned(),
        "*server CPU / msg*: user + system time of the whole server process tree per echoed message, at 16 connections.".to_owned(),
        "*findings*: starved connections (an iterative server serves one client; the rest wait: a finding, not a crash), runs where loadgen used over 90 % of its CPUs (the load generator, not the server, may have been the limit), errors, failures.".to_owned(),
    ]));
    doc.push(Block::Heading(2, "Models".to_owned()));
    doc.push(Block::List(
        s.models
            .iter()
            .map(|m| {
                let how = echo_server::Model::from_name(m).map_or("", |model| model.summary());
                format!("`{m}`: {how}")
            })
            .collect(),
    ));
    doc.push(Block::Heading(2, "Plots".to_owned()));
    for (name, caption, _) in plots {
        doc.push(Block::Plot(name.clone(), caption.clone()));
    }
    let labels = |prefix: &str| -> Vec<String> {
        s.workloads
            .iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect()
    };
    let table = |title: &str, prefix: &str, f: &dyn Fn(&Cell) -> String| -> Vec<Block> {
        let cols = labels(prefix);
        if cols.is_empty() {
            return Vec::new();
        }
        let mut header = vec!["model".to_owned()];
        header.extend(cols.iter().cloned());
        let rows = s
            .models
            .iter()
            .map(|m| {
                let cells = summary::by_label(s, m);
                let mut row = vec![m.clone()];
                row.extend(cols.iter().map(|l| {
                    cells
                        .get(l.as_str())
                        .map_or_else(|| "—".to_owned(), |c| f(c))
                }));
                row
            })
            .collect();
        vec![
            Block::Heading(3, title.to_owned()),
            Block::Table(header, rows),
        ]
    };
    doc.push(Block::Heading(2, "Results by workload".to_owned()));
    doc.push(Block::Para(
        "Medians over repeats, with the range (min–max) when a run was repeated. Marks: `L` loadgen used over 90 % of its CPUs in this run; `S n/m` n of m connections completed no message; `E n` errors counted; `failed` no figures (see notes).".to_owned(),
    ));
    doc.extend(table("Pingpong: throughput (msgs/s)", "pingpong", &|c| {
        mark(c, spread(c.throughput_msgs_per_s, int))
    }));
    doc.extend(table(
        "Pingpong: latency p50 / p99 (µs)",
        "pingpong",
        &|c| mark(c, pair(c.latency_p50_us, c.latency_p99_us)),
    ));
    doc.extend(table(
        "Rate: p99 corrected / uncorrected (µs), achieved share of the rate",
        "rate",
        &|c| {
            mark(
                c,
                format!(
                    "{} / {}, {}",
                    c.latency_p99_us
                        .map_or_else(|| "—".to_owned(), |s| us(s.median)),
                    c.latency_uncorrected_p99_us
                        .map_or_else(|| "—".to_owned(), |s| us(s.median)),
                    c.achieved_rate_ratio
                        .map_or_else(|| "—".to_owned(), |s| format!("{:.0} %", s.median * 100.0)),
                ),
            )
        },
    ));
    doc.extend(table(
        "Churn: connections/s, latency p50, connect p50 (µs)",
        "churn",
        &|c| {
            mark(
                c,
                format!(
                    "{}, {}, {}",
                    spread(c.throughput_msgs_per_s, int),
                    c.latency_p50_us
                        .map_or_else(|| "—".to_owned(), |s| us(s.median)),
                    c.connect_p50_us
                        .map_or_else(|| "—".to_owned(), |s| us(s.median)),
                ),
            )
        },
    ));
    doc.extend(table(
        "Idle: server memory PSS / RSS, and the active connection's p99",
        "idle",
        &|c| {
            mark(
                c,
                format!(
                    "{} / {}, p99 {}",
                    c.peak_pss_kib
                        .map_or_else(|| "—".to_owned(), |k| bytes(k * 1024.0)),
                    c.peak_rss_kib
                        .map_or_else(|| "—".to_owned(), |k| bytes(k * 1024.0)),
                    c.latency_p99_us
                        .map_or_else(|| "—".to_owned(), |s| us(s.median)),
                ),
            )
        },
    ));
    doc.extend(table("Bulk (64 KiB): MB/s echoed", "bulk", &|c| {
        mark(
            c,
            spread(
                c.throughput_msgs_per_s
                    .map(|t| scale(t, crate::workload::BULK_SIZE as f64 / 1e6)),
                |v| format!("{v:.0}"),
            ),
        )
    }));
    doc.push(Block::Heading(3, "Memory per connection".to_owned()));
    doc.push(Block::Table(
        vec![
            "model".to_owned(),
            "PSS slope".to_owned(),
            "RSS slope".to_owned(),
            "points (idle conns: PSS)".to_owned(),
            "note".to_owned(),
        ],
        s.memory_per_connection
            .iter()
            .map(|m| {
                vec![
                    m.model.clone(),
                    m.pss_bytes_per_connection
                        .map_or_else(|| "—".to_owned(), bytes),
                    m.rss_bytes_per_connection
                        .map_or_else(|| "—".to_owned(), bytes),
                    m.points
                        .iter()
                        .map(|(n, k)| format!("{n}: {}", bytes(k * 1024.0)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    m.not_accepted.clone().unwrap_or_else(|| "—".to_owned()),
                ]
            })
            .collect(),
    ));
    doc.push(Block::Heading(2, "Server resources".to_owned()));
    doc.push(Block::Para(
        "Over the whole server process tree, from `/proc`: CPU (user + system) per message in the measured time; peak RSS and PSS; most threads and processes at once; context switches per message (voluntary / involuntary; threads that exited during the run are not seen). RSS and PSS count user-space pages only: socket buffers, page tables and the kernel's thread and process structures are not in them.".to_owned(),
    ));
    let mut header = vec![
        "model".to_owned(),
        "workload".to_owned(),
        "CPU µs/msg".to_owned(),
        "RSS".to_owned(),
        "PSS".to_owned(),
        "threads".to_owned(),
        "processes".to_owned(),
        "switches/msg".to_owned(),
    ];
    header.shrink_to_fit();
    let rows = s
        .cells
        .iter()
        .map(|c| {
            vec![
                c.model.clone(),
                c.label.clone(),
                c.server_cpu_us_per_msg
                    .map_or_else(|| "—".to_owned(), |s| format!("{:.2}", s.median)),
                c.peak_rss_kib
                    .map_or_else(|| "—".to_owned(), |k| bytes(k * 1024.0)),
                c.peak_pss_kib
                    .map_or_else(|| "—".to_owned(), |k| bytes(k * 1024.0)),
                c.peak_threads
                    .map_or_else(|| "—".to_owned(), |t| t.to_string()),
                c.peak_processes
                    .map_or_else(|| "—".to_owned(), |p| p.to_string()),
                match (c.voluntary_switches_per_msg, c.involuntary_switches_per_msg) {
                    (Some(v), Some(i)) => format!("{v:.2} / {i:.2}"),
                    _ => "—".to_owned(),
                },
            ]
        })
        .collect();
    doc.push(Block::Table(header, rows));
    let notes: Vec<String> = s
        .cells
        .iter()
        .flat_map(|c| {
            c.notes
                .iter()
                .map(move |n| format!("`{}` {}: {n}", c.model, c.label))
        })
        .collect();
    if !notes.is_empty() {
        doc.push(Block::Heading(2, "Notes from the runs".to_owned()));
        doc.push(Block::List(notes));
    }
    doc.push(Block::Para(
        "Raw data: `raw/` holds every run's loadgen report (`.json`), interval log (`.hlog`, HdrHistogram V2 + deflate, mergeable with `loadgen merge`), server record (`.run.json`) and any server log; `echobench report DIR` re-renders these files from it.".to_owned(),
    ));
    doc
}

fn mark(c: &Cell, text: String) -> String {
    if c.status == Status::Failed {
        return "failed".to_owned();
    }
    let mut t = text;
    if c.loadgen_saturated {
        t += " L";
    }
    if c.connections_starved > 0 {
        let _ = write!(t, " S {}/{}", c.connections_starved, c.connections);
    }
    if c.errors > 0 {
        let _ = write!(t, " E {}", c.errors);
    }
    t
}

fn scale(s: summary::Spread, k: f64) -> summary::Spread {
    summary::Spread {
        median: s.median * k,
        min: s.min * k,
        max: s.max * k,
    }
}

fn spread(s: Option<summary::Spread>, f: impl Fn(f64) -> String) -> String {
    match s {
        None => "—".to_owned(),
        Some(s) if s.min == s.max => f(s.median),
        Some(s) => format!("{} ({}–{})", f(s.median), f(s.min), f(s.max)),
    }
}

fn pair(a: Option<summary::Spread>, b: Option<summary::Spread>) -> String {
    let f = |s: Option<summary::Spread>| s.map_or_else(|| "—".to_owned(), |s| us(s.median));
    format!("{} / {}", f(a), f(b))
}

/// Whole number with thousands separators.
fn int(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// Microseconds, 3 significant digits, in µs or ms.
fn us(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} µs")
    } else {
        format!("{v:.1} µs")
    }
}

/// Bytes in B, KiB or MiB.
fn bytes(v: f64) -> String {
    let a = v.abs();
    if a >= 10.0 * 1024.0 * 1024.0 {
        format!("{:.0} MiB", v / 1024.0 / 1024.0)
    } else if a >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", v / 1024.0 / 1024.0)
    } else if a >= 1024.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else {
        format!("{v:.0} B")
    }
}

/// (file name, caption, SVG) of every plot.
fn make_plots(s: &Summary, runs: &[RunData]) -> Vec<(String, String, String)> {
    let index = |m: &str| s.models.iter().position(|x| x == m).unwrap_or(0);
    let series = |prefix: &str,
                  x: &dyn Fn(&Workload) -> Option<f64>,
                  y: &dyn Fn(&Cell) -> Option<f64>|
     -> Vec<Series> {
        s.models
            .iter()
            .map(|m| {
                let mut points: Vec<(f64, f64)> = s
                    .cells
                    .iter()
                    .filter(|c| {
                        &c.model == m && c.label.starts_with(prefix) && c.status != Status::Failed
                    })
                    .filter_map(|c| {
                        let w = runs.iter().find(|r| {
                            r.record.spec.model == c.model
                                && r.record.spec.workload.label() == c.label
                        })?;
                        Some((x(&w.record.spec.workload)?, y(c)?))
                    })
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series {
                    name: m.clone(),
                    index: index(m),
                    points,
                }
            })
            .collect()
    };
    let mut plots = Vec::new();
    let mut push = |name: &str, caption: &str, svg: Result<String, String>| {
        let svg = svg.unwrap_or_else(|e| format!("<svg xmlns=\"http://www.w3.org/2000/svg\"><text x=\"10\" y=\"20\">{caption}: {e}</text></svg>"));
        plots.push((name.to_owned(), caption.to_owned(), svg));
    };
    let connections = |w: &Workload| match w {
        Workload::Pingpong { connections } => Some(*connections as f64),
        _ => None,
    };
    push(
        "throughput-vs-connections.svg",
        "Pingpong: throughput against connections (closed loop, 64 B)",
        plots::lines(
            "Throughput vs connections",
            "connections",
            "msgs/s",
            &series("pingpong", &connections, &|c| {
                c.throughput_msgs_per_s.map(|t| t.median)
            }),
            true,
            false,
        ),
    );
    let rate = |w: &Workload| match w {
        Workload::Rate { rate } => Some(*rate),
        _ => None,
    };
    push(
        "p99-vs-rate.svg",
        "Rate: p99 latency (corrected) against offered load",
        plots::lines(
            "p99 latency vs offered rate",
            "offered msgs/s",
            "p99 (µs)",
            &series("rate", &rate, &|c| c.latency_p99_us.map(|l| l.median)),
            false,
            true,
        ),
    );
    let idle = |w: &Workload| match w {
        Workload::Idle { idle } => Some(*idle as f64),
        _ => None,
    };
    push(
        "memory-per-connection.svg",
        "Idle: server memory (PSS) against idle connections; the slope is memory per connection",
        plots::lines(
            "Server memory vs idle connections",
            "idle connections",
            "PSS (MiB)",
            &series("idle", &idle, &|c| {
                (c.errors == 0).then_some(c.peak_pss_kib? / 1024.0)
            }),
            false,
            false,
        ),
    );
    let categories = [
        "pingpong-c16",
        "churn (per connection)",
        "bulk (per 64 KiB)",
    ];
    let rows: Vec<(String, usize, Vec<Option<f64>>)> = s
        .models
        .iter()
        .map(|m| {
            let cells = summary::by_label(s, m);
            let v = |label: &str| {
                cells
                    .get(label)
                    .filter(|c| c.status != Status::Failed)
                    .and_then(|c| c.server_cpu_us_per_msg)
                    .map(|x| x.median)
            };
            (
                m.clone(),
                index(m),
                vec![v("pingpong-c16"), v("churn"), v("bulk")],
            )
        })
        .collect();
    push(
        "cpu-per-message.svg",
        "Server CPU per message (µs, whole process tree)",
        plots::bars("Server CPU per message", "µs", &categories, &rows),
    );
    // One latency spectrum per workload: at 16 connections, the lowest rate, churn, the most
    // idle connections, bulk.
    let spectra: Vec<String> = {
        let mut picks = Vec::new();
        let first = |prefix: &str| s.workloads.iter().find(|l| l.starts_with(prefix)).cloned();
        let last = |prefix: &str| {
            s.workloads
                .iter()
                .rev()
                .find(|l| l.starts_with(prefix))
                .cloned()
        };
        picks.extend(
            s.workloads
                .iter()
                .find(|l| *l == "pingpong-c16")
                .cloned()
                .or_else(|| first("pingpong")),
        );
        picks.extend(first("rate"));
        picks.extend(first("churn"));
        picks.extend(last("idle"));
        picks.extend(first("bulk"));
        picks
    };
    for label in spectra {
        let merged: Vec<(String, usize, Histogram<u64>)> = s
            .models
            .iter()
            .filter_map(|m| {
                let mut h: Option<Histogram<u64>> = None;
                for r in runs.iter().filter(|r| {
                    &r.record.spec.model == m
                        && r.record.spec.workload.label() == label
                        && r.record.status != Status::Failed
                }) {
                    if let Some(l) = &r.latency {
                        match &mut h {
                            Some(acc) => {
                                let _ = acc.add(l);
                            }
                            None => h = Some(l.clone()),
                        }
                    }
                }
                Some((m.clone(), index(m), h?))
            })
            .collect();
        let refs: Vec<(String, usize, &Histogram<u64>)> =
            merged.iter().map(|(m, i, h)| (m.clone(), *i, h)).collect();
        push(
            &format!("latency-{label}.svg"),
            &format!("Latency percentile spectrum, {label}"),
            plots::spectrum(&format!("Latency spectrum: {label}"), &refs),
        );
    }
    plots
}

/// The report as Markdown.
pub fn markdown(doc: &[Block]) -> String {
    let mut out = String::new();
    for block in doc {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "{} {text}\n", "#".repeat(*level as usize));
            }
            Block::Para(text) => {
                let _ = writeln!(out, "{text}\n");
            }
            Block::Table(header, rows) => {
                let _ = writeln!(out, "| {} |", header.join(" | "));
                let _ = writeln!(out, "|{}", " --- |".repeat(header.len()));
                for row in rows {
                    let _ = writeln!(
                        out,
                        "| {} |",
                        row.iter()
                            .map(|c| c.replace('|', "\\|"))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    );
                }
                out.push('\n');
            }
            Block::Plot(file, caption) => {
                let _ = writeln!(out, "![{caption}]({file})\n");
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(out, "- {item}");
                }
                out.push('\n');
            }
        }
    }
    out
}

/// The report as one self-contained HTML file, SVGs inline.
pub fn html(doc: &[Block], plots: &[(String, String, String)], s: &Summary) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>echobench: {} profile on {}</title>\n<style>\n{}\n</style>\n</head>\n<body>\n",
        esc(&format!("{:?}", s.environment.profile).to_lowercase()),
        esc(&s.environment.hostname),
        CSS
    );
    for block in doc {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "<h{level}>{}</h{level}>", inline(text));
            }
            Block::Para(text) => {
                let _ = writeln!(out, "<p>{}</p>", inline(text));
            }
            Block::Table(header, rows) => {
                out += "<table>\n<thead><tr>";
                for h in header {
                    let _ = write!(out, "<th>{}</th>", inline(h));
                }
                out += "</tr></thead>\n<tbody>\n";
                for row in rows {
                    out += "<tr>";
                    for c in row {
                        let _ = write!(out, "<td>{}</td>", inline(c));
                    }
                    out += "</tr>\n";
                }
                out += "</tbody>\n</table>\n";
            }
            Block::Plot(file, caption) => {
                let svg = plots
                    .iter()
                    .find(|p| &p.0 == file)
                    .map_or("", |p| p.2.as_str());
                let _ = writeln!(
                    out,
                    "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>",
                    inline(caption)
                );
            }
            Block::List(items) => {
                out += "<ul>\n";
                for item in items {
                    let _ = writeln!(out, "<li>{}</li>", inline(item));
                }
                out += "</ul>\n";
            }
        }
    }
    out += "</body>\n</html>\n";
    out
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}\
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}\
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:right}\
th:first-child,td:first-child{text-align:left}\
th{background:#f3f3f3}\
code{background:#f3f3f3;padding:0 .2rem}\
figure{margin:1.5rem 0}figcaption{font-size:.9rem;color:#555}\
svg{max-width:100%;height:auto}";

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Escapes text and turns `code` and *emphasis* spans into HTML.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(text).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            for (j, piece) in part.split('*').enumerate() {
                if j % 2 == 1 {
                    let _ = write!(out, "<em>{piece}</em>");
                } else {
                    out += piece;
                }
            }
        }
    }
    out
}
