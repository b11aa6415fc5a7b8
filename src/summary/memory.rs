//! Memory per connection: the slope of the server's memory over idle connections, not a single
//! division.

use crate::schema::{Cell, MemoryPerConnection, Status, Workload};

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
        if cell.status == Status::Failed || cell.errors > 0 {
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
}
