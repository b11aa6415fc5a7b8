//! The headline table: one row per model, in the report and at the end of `compare`.

use super::block::{titled, untitled};
use super::format::{
    at_least, bytes, certainty, compact, int, interval_words, or_dash, server_name, side_share,
    target, us, DASH,
};
use crate::schema::{Headline, Spread, Summary};
use crate::workload::{Workload, SIXTEEN, UDP_PIPELINE};

/// The headline table's header and rows, as a person scans them: led by the rate each model
/// holds under the latency target where the capacity search ran, each figure its median with
/// a compact certainty (`189.6k ±1 %`, the larger side of its interval) and its whole interval
/// as the cell's tooltip; units in the header; `≥` where loadgen limited a throughput (the
/// server may do more), `L` where it limited a latency or CPU figure's run.
pub fn headline_table(s: &Summary) -> (Vec<String>, Vec<Vec<String>>) {
    let rate = s.rate_for_p99.map_or_else(
        || "p99 (µs)".to_owned(),
        |r| format!("p99 @ {} msgs/s (µs)", int(r)),
    );
    let mut header = [
        "model",
        "peak (msgs/s)",
        "at conns",
        &rate,
        "churn (conn/s)",
        "memory / idle conn",
        "server CPU / msg, 16 conns (µs)",
        "bulk (MB/s)",
        "findings",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut rows: Vec<Vec<String>> = s.headline.iter().map(|h| row(s, h)).collect();
    // With TLS, its handshakes per second before the findings.
    if s.headline.iter().any(|h| h.tls_handshakes_per_s.is_some()) {
        let at = header.len() - 1;
        header.insert(at, "TLS handshakes/s".to_owned());
        for (row, h) in rows.iter_mut().zip(&s.headline) {
            let cell = or_dash(h.tls_handshakes_per_s, |t| {
                figure(h, "tls_handshakes_per_s", t, int)
            });
            row.insert(at, cell);
        }
    }
    // With the capacity search, the rate held under its target leads.
    if let Some(slo) = slo_target(s) {
        header.insert(1, format!("rate at {slo}, 16 conns (msgs/s)"));
        for (row, h) in rows.iter_mut().zip(&s.headline) {
            row.insert(1, or_dash(h.slo_rate, |r| capacity_rate(r, h.slo_at_least)));
        }
    }
    (header, rows)
}

/// What the headline's marks mean, for the line under it.
pub const HEADLINE_MARKS: &str = "Each figure is the median of the passes with `±` the larger side of its 95 % interval (the whole interval in the HTML report's tooltip and in the tables below); `≥` marks a throughput loadgen limited (it used over 90 % of its CPUs, so the server may do more), `L` a latency or CPU figure from such a run.";

/// The capacity search's target as the header writes it, `p99 ≤ 1ms`, where it ran.
fn slo_target(s: &Summary) -> Option<String> {
    let slo = s.cells.iter().find_map(|c| c.capacity.as_ref())?;
    Some(target(&slo.slo))
}

/// A capacity search's rate as the headline shows it: its median, `±` the larger distance to
/// the least or most of the repeats, `≥` where loadgen was the limit (`≥ 75.0k ±7 %`); the
/// range itself in the tooltip.
pub fn capacity_rate(r: Spread, limited: bool) -> String {
    let mark = at_least(limited);
    let text = match r.min < r.max {
        true => format!(
            "{mark}{} {}",
            compact(r.median),
            side_share(r.median, r.min, r.max)
        ),
        false => format!("{mark}{}", compact(r.median)),
    };
    let mut title = match r.min < r.max {
        true => format!("range over the passes {}–{}", int(r.min), int(r.max)),
        false => format!("{} in every pass", int(r.median)),
    };
    if limited {
        title += "; loadgen was the limit in a pass, so the server holds at least this";
    }
    titled(text.trim_end(), &title)
}

/// A capacity search's rate with its whole range in words, for the detailed tables:
/// `≥ 75,000 (70,000–77,500)`.
pub fn capacity_range(r: Spread, limited: bool) -> String {
    let mark = at_least(limited);
    match r.min < r.max {
        true => format!("{mark}{} ({}–{})", int(r.median), int(r.min), int(r.max)),
        false => format!("{mark}{}", int(r.median)),
    }
}

/// One headline figure: compact, with its certainty, its loadgen mark, and its whole interval
/// (and `full`, the figure written out) in the tooltip.
fn figure(h: &Headline, key: &str, value: f64, full: impl Fn(f64) -> String) -> String {
    let bound = h.loadgen_bound.iter().any(|k| k == key);
    let throughput = matches!(
        key,
        "peak_msgs_per_s" | "churn_conns_per_s" | "bulk_mb_per_s" | "tls_handshakes_per_s"
    );
    let ci = h.ci.get(key).copied();
    let shown = match key {
        "bytes_per_idle_connection" => bytes(value),
        _ => compact(value),
    };
    let mut text = format!("{}{shown}", at_least(bound && throughput));
    let sure = certainty(value, ci);
    if !sure.is_empty() {
        text = format!("{text} {sure}");
    }
    if bound && !throughput {
        text += " L";
    }
    let mut title = format!("{}; {}", full(value), interval_words(ci, &full));
    if bound {
        title += "; loadgen used over 90 % of its CPUs in this run";
    }
    titled(&text, &title)
}

fn row(s: &Summary, h: &Headline) -> Vec<String> {
    let p99 = or_dash(h.p99_us_at_rate, |p| {
        let cell = figure(h, "p99_us_at_rate", p, us);
        if h.rate_achieved {
            return cell;
        }
        let (text, title) = untitled(&cell);
        titled(
            &format!("{text} (rate not met)"),
            &format!(
                "{}; loadgen sent under 95 % of the offered rate",
                title.unwrap_or_default()
            ),
        )
    });
    let findings = if h.flags.is_empty() {
        DASH.to_owned()
    } else {
        h.flags.join("; ")
    };
    let mb = |m: f64| format!("{m:.0} MB/s");
    vec![
        server_name(s, &h.model),
        or_dash(h.peak_msgs_per_s, |t| figure(h, "peak_msgs_per_s", t, int)),
        or_dash(h.peak_at_connections, |c| int(c as f64)),
        p99,
        or_dash(h.churn_conns_per_s, |c| {
            figure(h, "churn_conns_per_s", c, int)
        }),
        or_dash(h.bytes_per_idle_connection, |b| {
            figure(h, "bytes_per_idle_connection", b, bytes)
        }),
        or_dash(h.cpu_us_per_msg, |c| figure(h, "cpu_us_per_msg", c, us)),
        or_dash(h.bulk_mb_per_s, |m| figure(h, "bulk_mb_per_s", m, mb)),
        findings,
    ]
}

/// The UDP models' own headline, when they ran: one row per UDP model, from its cells.
pub fn udp_headline_table(s: &Summary) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let udp_models: Vec<&String> = s
        .models
        .iter()
        .filter(|m| {
            s.cells_of(m)
                .keys()
                .any(|l| Workload::from_label(l).is_some_and(|w| w.is_udp()))
        })
        .collect();
    if udp_models.is_empty() {
        return None;
    }
    let pipelined = format!("udp-pingpong-c{SIXTEEN}-p{}", UDP_PIPELINE);
    let header = [
        "model".to_owned(),
        "datagrams/s (1 socket)".to_owned(),
        "p50 (1 socket)".to_owned(),
        format!("datagrams/s ({SIXTEEN} × {} in flight)", UDP_PIPELINE),
        format!("server CPU / datagram ({SIXTEEN} × {})", UDP_PIPELINE),
        "worst loss".to_owned(),
    ]
    .to_vec();
    let rows = udp_models
        .iter()
        .map(|m| {
            let cells = s.cells_of(m);
            let one = cells.get("udp-pingpong-c1");
            let many = cells.get(pipelined.as_str());
            let worst = cells
                .values()
                .filter_map(|c| c.loss_ratio.map(|l| (l.median, &c.label)))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            vec![
                server_name(s, m),
                or_dash(one.and_then(|c| c.throughput_msgs_per_s), |t| int(t.median)),
                or_dash(one.and_then(|c| c.latency_p50_us), |l| us(l.median)),
                or_dash(
                    many.and_then(|c| c.throughput_msgs_per_s),
                    |t| int(t.median),
                ),
                or_dash(many.and_then(|c| c.server_cpu_us_per_msg), |c| us(c.median)),
                or_dash(worst, |(l, label)| format!("{:.3} % ({label})", l * 100.0)),
            ]
        })
        .collect();
    Some((header, rows))
}

/// The headline table as aligned plain text, for the terminal; the UDP models' after it.
pub fn headline_text(s: &Summary) -> String {
    let (header, rows) = headline_table(s);
    let mut text = if rows.is_empty() {
        String::new()
    } else {
        text_table(&header, &rows)
    };
    if let Some((header, rows)) = udp_headline_table(s) {
        if !text.is_empty() {
            text.push('\n');
        }
        text += &text_table(&header, &rows);
    }
    text
}

/// A table as aligned plain text, for the terminal.
pub fn text_table(header: &[String], rows: &[Vec<String>]) -> String {
    let bare =
        |row: &[String]| -> Vec<String> { row.iter().map(|c| untitled(c).0.to_owned()).collect() };
    let all: Vec<Vec<String>> = std::iter::once(bare(header))
        .chain(rows.iter().map(|r| bare(r)))
        .collect();
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
