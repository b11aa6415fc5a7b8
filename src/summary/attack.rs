//! Hostile clients (`compare --attack`): what each model's legitimate clients kept beside each
//! attack, without and with defences, against the same model's run without an attack.

use crate::schema::{AttackModel, Cell, Kept, Workload};
use crate::workload::Hostile;

/// At or above this share of the control's rate, the legitimate clients kept their service.
pub const KEPT: f64 = 0.9;

/// Below this share, the attack denied them service.
pub const DENIED: f64 = 0.1;

/// Each server that ran an attack workload, in `models`' order, with what its legitimate
/// clients kept in each.
pub fn models(models: &[String], cells: &[Cell]) -> Vec<AttackModel> {
    let attacks: Vec<Workload> = Workload::attack();
    let find = |model: &str, w: &Workload| {
        let label = w.label();
        cells.iter().find(|c| c.model == model && c.label == label)
    };
    let control = Workload::Attack {
        attack: Hostile::Nobody,
        defended: false,
    };
    models
        .iter()
        .filter(|m| attacks.iter().any(|w| find(m, w).is_some()))
        .map(|m| {
            let base = find(m, &control);
            let control_rate = base.and_then(|c| c.throughput_msgs_per_s).map(|s| s.median);
            let kept = attacks
                .iter()
                .filter(|w| **w != control)
                .filter_map(|w| Some((w, find(m, w)?)))
                .map(|(w, cell)| kept(w, cell, control_rate))
                .collect();
            AttackModel {
                model: m.clone(),
                control_rate,
                control_p99_us: base.and_then(|c| c.latency_p99_us).map(|s| s.median),
                kept,
            }
        })
        .collect()
}

/// What the legitimate clients of `cell` (workload `w`) kept against `control_rate`.
fn kept(w: &Workload, cell: &Cell, control_rate: Option<f64>) -> Kept {
    let rate = cell.throughput_msgs_per_s.map(|s| s.median);
    let rate_share = match (rate, control_rate) {
        (Some(r), Some(c)) if c > 0.0 => Some(r / c),
        // Nothing completed at all: none of the control's rate was kept.
        (None, Some(c)) if c > 0.0 && cell.status.has_figures() => Some(0.0),
        _ => None,
    };
    Kept {
        workload: w.label(),
        defended: matches!(w, Workload::Attack { defended: true, .. }),
        rate_share,
        p99_us: cell.latency_p99_us.map(|s| s.median),
        verdict: verdict(rate_share).to_owned(),
    }
}

/// The verdict on a share of the control's rate kept.
pub fn verdict(share: Option<f64>) -> &'static str {
    match share {
        None => "no data",
        Some(s) if s >= KEPT => "kept",
        Some(s) if s < DENIED => "denied",
        Some(_) => "degraded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_follows_the_share_kept() {
        assert_eq!(verdict(Some(0.95)), "kept");
        assert_eq!(verdict(Some(0.9)), "kept");
        assert_eq!(verdict(Some(0.5)), "degraded");
        assert_eq!(verdict(Some(0.05)), "denied");
        assert_eq!(verdict(None), "no data");
    }
}
