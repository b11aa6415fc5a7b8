//! Hostile clients (`compare --attack`): how the workloads were made, what each model's
//! legitimate clients kept beside each attack without and with the defences, and what the
//! attackers met, generated from the figures. The section's tables of figures are
//! `render::document`'s, as every workload's.

use super::block::Block;
use super::format::{int, mark, or_dash, pair, percent, server_name, spread, us};
use crate::schema::{AttackModel, Cell, Kept, Summary};
use crate::summary::attack::{DENIED, KEPT};
use crate::workload::{
    Workload, ATTACK_RATE, ATTACK_TIMING, DEFENCES, FLOOD_RATE, SLOWLORIS_CONNECTIONS,
};

/// The section's heading and how its workloads were made.
pub fn about() -> Vec<Block> {
    vec![
        Block::Heading(2, "Hostile clients: who keeps serving".to_owned()),
        Block::Para(format!(
            "The legitimate clients: 16 connections in an open loop at {} requests/s in all (`--work cpu=0`: the framed protocol at no cost, so that a request has an end), measured over {:.1} s after {:.1} s of warm-up. Beside them, from 127.0.0.2, the attackers start a second earlier: `slowloris-{SLOWLORIS_CONNECTIONS}` keeps {SLOWLORIS_CONNECTIONS} connections open, each sending one byte of a request a second and never finishing it (the Apache-against-nginx lesson); `flood-{FLOOD_RATE}` opens {} connections a second, each reading what the server says for 100 ms, then closing. `attack-control` is the same load without attackers. Each attack runs twice: against the server without defences, then (`-defended`) with `{}`: a connection must finish a request within 2 s of its first byte and send one within 2 s when none is in flight; an address holds at most 4 connections, below the smallest pool compared (else the attackers still hold every worker); the 200th attempt from one address within a second blocks it for a minute, and a blocked client is told `You have been blocked due to too many attempts.` (the tutorial's `IPBlocker`). What the legitimate clients *kept* is their requests/s over the same model's `attack-control`: {}, *kept*; under {}, *denied*; between, *degraded*.",
            int(ATTACK_RATE),
            ATTACK_TIMING.duration.as_secs_f64(),
            ATTACK_TIMING.warmup.as_secs_f64(),
            int(f64::from(FLOOD_RATE)),
            DEFENCES.join(" "),
            percent(KEPT),
            percent(DENIED),
        )),
    ]
}

/// The cell of `Table::AttackRate`: the legitimate requests/s, and the achieved share of the
/// offered rate.
pub fn rate_figure(c: &Cell) -> String {
    let achieved = or_dash(c.achieved_rate_ratio, |s| percent(s.median));
    mark(
        c,
        format!("{}, {achieved}", spread(c.throughput_msgs_per_s, int)),
    )
}

/// The cell of `Table::AttackLatency`: the legitimate p50 / p99.
pub fn latency_figures(c: &Cell) -> String {
    mark(c, pair(c.latency_p50_us, c.latency_p99_us))
}

/// "What the legitimate clients kept", one row per model, then what the attackers met.
pub fn kept(s: &Summary) -> Vec<Block> {
    if s.attack_models.is_empty() {
        return Vec::new();
    }
    let attacks = attacks_run(s);
    let mut header = vec![
        "model".to_owned(),
        "attack-control: requests/s, p99".to_owned(),
    ];
    header.extend(attacks.iter().map(|l| format!("{l}: kept, p99")));
    let rows = s
        .attack_models
        .iter()
        .map(|m| {
            let control = format!(
                "{}, {}",
                or_dash(m.control_rate, int),
                or_dash(m.control_p99_us, us)
            );
            let mut row = vec![server_name(s, &m.model), control];
            row.extend(attacks.iter().map(|l| {
                let k = m.kept.iter().find(|k| k.workload == *l);
                or_dash(k, kept_words)
            }));
            row
        })
        .collect();
    let mut blocks = vec![
        Block::Heading(3, "What the legitimate clients kept".to_owned()),
        Block::Table(header, rows),
    ];
    blocks.extend(summary_lines(s));
    blocks.extend(attackers(s));
    blocks
}

/// The labels of the attack workloads that ran (the control left out), in report order.
fn attacks_run(s: &Summary) -> Vec<String> {
    Workload::attack()[1..]
        .iter()
        .map(Workload::label)
        .filter(|l| s.workloads.contains(l))
        .collect()
}

/// A kept share, its verdict and the p99: `4 % denied, 1.2 s`.
fn kept_words(k: &Kept) -> String {
    let share = or_dash(k.rate_share, percent);
    let p99 = or_dash(k.p99_us, us);
    format!("{share} {}, {p99}", k.verdict)
}

/// One line per attack: which models kept their clients' service without defences and with
/// them.
fn summary_lines(s: &Summary) -> Vec<Block> {
    let mut lines = Vec::new();
    for w in &Workload::attack()[1..] {
        let label = w.label();
        let by_verdict = |verdict: &str| -> Vec<String> {
            s.attack_models
                .iter()
                .filter(|m| verdict_of(m, &label) == Some(verdict))
                .map(|m| format!("`{}`", m.model))
                .collect()
        };
        let (kept, degraded, denied) = (
            by_verdict("kept"),
            by_verdict("degraded"),
            by_verdict("denied"),
        );
        if kept.len() + degraded.len() + denied.len() == 0 {
            continue;
        }
        let list = |names: &[String]| match names.is_empty() {
            true => "none".to_owned(),
            false => names.join(", "),
        };
        lines.push(format!(
            "`{label}`: kept by {}; degraded for {}; denied to {}.",
            list(&kept),
            list(&degraded),
            list(&denied)
        ));
    }
    match lines.is_empty() {
        true => Vec::new(),
        false => vec![Block::List(lines)],
    }
}

fn verdict_of<'a>(m: &'a AttackModel, label: &str) -> Option<&'a str> {
    m.kept
        .iter()
        .find(|k| k.workload == label)
        .map(|k| k.verdict.as_str())
}

/// What the attackers met, per model and attack: connections open at the end, closed by the
/// server, and blocked lines.
fn attackers(s: &Summary) -> Vec<Block> {
    let attacks = attacks_run(s);
    if attacks.is_empty() {
        return Vec::new();
    }
    let mut header = vec!["model".to_owned()];
    header.extend(attacks.iter().cloned());
    let rows = s
        .attack_models
        .iter()
        .map(|m| {
            let cells = s.cells_of(&m.model);
            let mut row = vec![server_name(s, &m.model)];
            row.extend(attacks.iter().map(|l| {
                let a = cells.get(l.as_str()).and_then(|c| c.attack.as_ref());
                or_dash(a, |a| {
                    format!(
                        "{} attempts, {} open at the end, {} closed by the server, {} blocked",
                        int(a.attempts),
                        int(a.open_at_end),
                        int(a.closed_by_server),
                        int(a.blocked_lines)
                    )
                })
            }));
            row
        })
        .collect();
    vec![
        Block::Heading(3, "What the attackers met".to_owned()),
        Block::Para("Medians over the repeats of each attack run: connection attempts, attack connections still open when the load ended (served, or waiting in the listen backlog), connections the server closed first (an idle timeout, the cap per address, a block), and connections told they were blocked.".to_owned()),
        Block::Table(header, rows),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_share_reads_with_its_verdict_and_p99() {
        let k = Kept {
            workload: "slowloris-64".to_owned(),
            defended: false,
            rate_share: Some(0.04),
            p99_us: Some(1_200_000.0),
            verdict: "denied".to_owned(),
        };
        let words = kept_words(&k);
        assert!(words.starts_with("4 % denied, "), "{words}");
    }
}
