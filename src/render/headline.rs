//! The headline table: one row per model, in the report and at the end of `compare`.

use super::format::{bytes, int, or_dash, us, DASH};
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
    (header, s.headline.iter().map(row).collect())
}

fn row(h: &Headline) -> Vec<String> {
    let peak = match (h.peak_msgs_per_s, h.peak_at_connections) {
        (Some(t), Some(c)) => format!("{} ({c})", int(t)),
        _ => DASH.to_owned(),
    };
    let p99 = or_dash(h.p99_us_at_rate, |p| {
        let unmet = if h.rate_achieved {
            ""
        } else {
            " (rate not met)"
        };
        format!("{}{unmet}", us(p))
    });
    let findings = if h.flags.is_empty() {
        DASH.to_owned()
    } else {
        h.flags.join("; ")
    };
    vec![
        h.model.clone(),
        peak,
        p99,
        or_dash(h.churn_conns_per_s, int),
        or_dash(h.bytes_per_idle_connection, bytes),
        or_dash(h.cpu_us_per_msg, us),
        or_dash(h.bulk_mb_per_s, |m| format!("{m:.0}")),
        findings,
    ]
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
