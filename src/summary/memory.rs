//! Memory per connection: the slope of the server's memory over idle connections, not a single
//! division.

use std::collections::BTreeMap;

use super::load::RunData;
use crate::schema::{Cell, Ci, MemoryPerConnection, Workload};

/// Fewest repeats for memory per connection's interval.
pub const MIN_REPEATS: usize = 3;

/// Least-squares slope of `y` over `x`; `None` with fewer than two distinct `x`.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (points.len() >= 2 && sxx > 0.0).then(|| sxy / sxx)
}

/// Memory per connection of `model` from its idle cells.
pub fn memory_slope(model: &str, cells: &[Cell], workloads: &[Workload]) -> MemoryPerConnection {
    let (mut pss, mut rss, mut fds) = (Vec::new(), Vec::new(), Vec::new());
    for w in workloads {
        let Workload::Idle { idle } = w else { continue };
        let Some(cell) = cells
            .iter()
            .find(|c| c.model == model && c.label == w.label())
        else {
            continue;
        };
        // Memory of a run whose idle connections were not all accepted says nothing per
        // connection; a failed run says nothing at all.
        if !cell.status.has_figures() || cell.errors > 0 {
            continue;
        }
        let x = *idle as f64;
        pss.extend(cell.peak_pss_kib.map(|p| (x, p)));
        rss.extend(cell.peak_rss_kib.map(|r| (x, r)));
        fds.extend(cell.peak_fds.map(|f| (x, f)));
    }
    let points = pss.iter().map(|&(x, y)| (x as usize, y)).collect();
    // Every connection the server took costs it at least one descriptor.
    let not_accepted = slope(&fds).filter(|taken| *taken < 0.9).map(|taken| {
        format!(
            "the server took about {:.0} % of the idle connections; the rest waited in the backlog",
            (taken * 100.0).clamp(0.0, 100.0)
        )
    });
    // Connections left in the backlog cost the server nothing: no slope to speak of.
    let per_connection = |points: &[(f64, f64)]| match not_accepted {
        Some(_) => None,
        None => slope(points).map(|s| s * 1024.0),
    };
    MemoryPerConnection {
        model: model.to_owned(),
        pss_bytes_per_connection: per_connection(&pss),
        rss_bytes_per_connection: per_connection(&rss),
        points,
        not_accepted,
        pss_ci: None,
    }
}

/// The PSS slope (bytes per connection) of each repeat of a model's idle runs that has two
/// idle counts or more, by repeat; runs that failed or counted errors are left out, as in
/// [`memory_slope`].
pub fn repeat_slopes(runs: &[&RunData]) -> Vec<f64> {
    let mut points: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
    for run in runs {
        let Workload::Idle { idle } = run.record.spec.workload else {
            continue;
        };
        let clean = run.record.status.has_figures()
            && run.report.as_ref().is_some_and(|r| r.errors.total() == 0);
        if let (true, Some(usage)) = (clean, &run.record.server) {
            points
                .entry(run.record.spec.repeat)
                .or_default()
                .push((idle as f64, usage.peak_pss_kib as f64));
        }
    }
    points
        .values()
        .filter_map(|p| slope(p))
        .map(|s| s * 1024.0)
        .collect()
}

/// The 95 % interval of the mean of the repeats' slopes by Student's t; bounds `None` with
/// fewer than [`MIN_REPEATS`].
pub fn slope_ci(slopes: &[f64]) -> Ci {
    let n = slopes.len();
    let bounds = (n >= MIN_REPEATS).then(|| {
        let mean = slopes.iter().sum::<f64>() / n as f64;
        let var = slopes.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = t_975(n - 1) * (var / n as f64).sqrt();
        (mean - half, mean + half)
    });
    Ci {
        low: bounds.map(|b| b.0),
        high: bounds.map(|b| b.1),
        repeats: n,
        ..Ci::default()
    }
}

/// Student's t quantile 0.975 for `df` degrees of freedom (tabled to 10, then within 0.5 %).
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::INFINITY,
        1..=10 => TABLE[df - 1],
        _ => 1.96 + 2.4 / df as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_is_least_squares() {
        let s = slope(&[(0.0, 100.0), (1000.0, 120.0), (5000.0, 200.0)]).unwrap();
        assert!((s - 0.02).abs() < 1e-9, "{s}");
        assert!(slope(&[(1.0, 2.0)]).is_none());
    }

    #[test]
    fn the_slope_interval_comes_from_three_repeats_or_more() {
        let ci = slope_ci(&[100.0, 110.0, 120.0]);
        // mean 110, s = 10, t(2) = 4.303: 110 ± 24.84.
        assert!((ci.low.unwrap() - 85.16).abs() < 0.01, "{ci:?}");
        assert!((ci.high.unwrap() - 134.84).abs() < 0.01, "{ci:?}");
        assert_eq!(ci.repeats, 3);
        let two = slope_ci(&[100.0, 110.0]);
        assert_eq!((two.low, two.high, two.repeats), (None, None, 2));
        assert!((t_975(30) - 2.042).abs() < 0.01);
    }
}
