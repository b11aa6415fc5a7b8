//! The headline table: one row per model, in the report and at the end of `compare`.

use super::format::{bytes, int, or_dash, server_name, us, with_ci, DASH};
use crate::schema::{Headline, Spread, Summary};
use crate::workload::{Workload, SIXTEEN, UDP_PIPELINE};

/// The headline table's header and rows.
pub fn headline_table(s: &Summary) -> (Vec<String>, Vec<Vec<String>>) {
    let rate = s
        .rate_for_p99
        .map_or_else(|| "p99".to_owned(), |r| format!("p99 @ {} msgs/s", int(r)));
    let mut header = [
        "model",
        "peak msgs/s (conns)",
        &rate,
        "churn conn/s",
        "memory / idle conn",
        "server CPU / msg (16 conns)",
        "bulk MB/s",
        "findings",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut rows: Vec<Vec<String>> = s.headline.iter().map(|h| row(s, h)).collect();
    // With the capacity search, the rate held under its target, before the findings.
    if let Some(slo) = slo_target(s) {
        let at = header.len() - 1;
        header.insert(at, format!("rate at {slo} (16 conns)"));
        for (row, h) in rows.iter_mut().zip(&s.headline) {
            row.insert(
                at,
                or_dash(h.slo_rate, |r| capacity_rate(r, h.slo_at_least)),
            );
        }
    }
    // With TLS, its handshakes per second before the findings.
    if s.headline.iter().any(|h| h.tls_handshakes_per_s.is_some()) {
        header.insert(7, "TLS handshakes/s".to_owned());
        for (row, h) in rows.iter_mut().zip(&s.headline) {
            let ci = h.ci.get("tls_handshakes_per_s").copied();
            row.insert(7, or_dash(h.tls_handshakes_per_s, |t| with_ci(t, ci, int)));
        }
    }
    (header, rows)
}

/// The capacity search's target as the header writes it, `p99 ≤ 1ms`, where it ran.
fn slo_target(s: &Summary) -> Option<String> {
    let slo = s.cells.iter().find_map(|c| c.capacity.as_ref())?;
    Some(slo.slo.replacen('=', " ≤ ", 1))
}

/// A capacity search's rate: its median with its range over the repeats, `≥` where loadgen
/// was the limit: `≥ 75,000 (70,000–77,500)`.
pub fn capacity_rate(r: Spread, at_least: bool) -> String {
    let mark = if at_least { "≥ " } else { "" };
    match r.min < r.max {
        true => format!("{mark}{} ({}–{})", int(r.median), int(r.min), int(r.max)),
        false => format!("{mark}{}", int(r.median)),
    }
}

fn row(s: &Summary, h: &Headline) -> Vec<String> {
    // A figure with its interval and samples, where the summary gives one.
    let figure = |key: &str, value: f64, f: &dyn Fn(f64) -> String| {
        with_ci(value, h.ci.get(key).copied(), f)
    };
    let peak = match (h.peak_msgs_per_s, h.peak_at_connections) {
        (Some(t), Some(c)) => {
            let with = figure("peak_msgs_per_s", t, &int);
            match with.split_once(" [") {
                Some((value, tag)) => format!("{value} ({c}) [{tag}"),
                None => format!("{with} ({c})"),
            }
        }
        _ => DASH.to_owned(),
    };
    let p99 = or_dash(h.p99_us_at_rate, |p| {
        let unmet = if h.rate_achieved {
            ""
        } else {
            " (rate not met)"
        };
        format!("{}{unmet}", figure("p99_us_at_rate", p, &us))
    });
    let findings = if h.flags.is_empty() {
        DASH.to_owned()
    } else {
        h.flags.join("; ")
    };
    let mb = |m: f64| format!("{m:.0}");
    vec![
        server_name(s, &h.model),
        peak,
        p99,
        or_dash(h.churn_conns_per_s, |c| {
            figure("churn_conns_per_s", c, &int)
        }),
        or_dash(h.bytes_per_idle_connection, |b| {
            figure("bytes_per_idle_connection", b, &bytes)
        }),
        or_dash(h.cpu_us_per_msg, |c| figure("cpu_us_per_msg", c, &us)),
        or_dash(h.bulk_mb_per_s, |m| figure("bulk_mb_per_s", m, &mb)),
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
    let all: Vec<&[String]> = std::iter::once(header)
        .chain(rows.iter().map(Vec::as_slice))
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
