//! The headline table: one row per model, in the report and at the end of `compare`.

use super::format::{bytes, int, or_dash, server_name, us, with_ci, DASH};
use crate::schema::{Headline, Summary};

/// The headline table's header and rows.
pub fn headline_table(s: &Summary) -> (Vec<String>, Vec<Vec<String>>) {
    let rate = s
        .rate_for_p99
        .map_or_else(|| "p99".to_owned(), |r| format!("p99 @ {} msgs/s", int(r)));
    let header = [
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
    (header, s.headline.iter().map(|h| row(s, h)).collect())
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

/// The headline table as aligned plain text, for the terminal.
pub fn headline_text(s: &Summary) -> String {
    let (header, rows) = headline_table(s);
    text_table(&header, &rows)
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
