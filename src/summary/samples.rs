//! A run's samples: each interval's latency histogram, kept sparse (only the bins it used),
//! with the echoes it counted, its length and the server CPU time it took. The bootstrap
//! resamples them.

use hdrhistogram::Histogram;

/// One interval of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalSample {
    /// Start, seconds since the end of warm-up.
    pub start_s: f64,
    /// Length, seconds.
    pub length_s: f64,
    /// Echoes measured in it.
    pub count: u64,
    /// Server CPU seconds in it (from the CPU series); `None` when the run kept no series.
    pub cpu_s: Option<f64>,
    /// Latency bins: (the bin's highest equivalent value in ns, count), ascending.
    pub bins: Vec<(u64, u64)>,
}

impl IntervalSample {
    /// The interval of a histogram.
    pub fn new(start_s: f64, length_s: f64, h: &Histogram<u64>) -> IntervalSample {
        IntervalSample {
            start_s,
            length_s,
            count: h.len(),
            cpu_s: None,
            bins: h
                .iter_recorded()
                .map(|v| {
                    (
                        h.highest_equivalent(v.value_iterated_to()),
                        v.count_at_value(),
                    )
                })
                .collect(),
        }
    }

    /// Adds `other` (the next interval) into this one.
    fn absorb(&mut self, other: IntervalSample) {
        self.length_s += other.length_s;
        self.count += other.count;
        self.cpu_s = self.cpu_s.zip(other.cpu_s).map(|(a, b)| a + b);
        let mut bins = std::mem::take(&mut self.bins);
        bins.extend(other.bins);
        bins.sort_unstable_by_key(|b| b.0);
        for (value, count) in bins {
            match self.bins.last_mut() {
                Some(last) if last.0 == value => last.1 += count,
                _ => self.bins.push((value, count)),
            }
        }
    }
}

/// A run's intervals in order, a last one shorter than half the others (the few echoes of
/// the end-of-run drain) folded into the one before, so no interval's rate rests on a
/// sliver of time.
pub fn tidy(mut intervals: Vec<IntervalSample>) -> Vec<IntervalSample> {
    if intervals.len() >= 2 {
        let full = intervals[0].length_s;
        if intervals[intervals.len() - 1].length_s < full / 2.0 {
            if let Some(last) = intervals.pop() {
                if let Some(before) = intervals.last_mut() {
                    before.absorb(last);
                }
            }
        }
    }
    intervals
}

/// Gives every interval its server CPU time from the CPU series (`[seconds, cumulative CPU
/// seconds]`), linearly interpolated between the samples; nothing when the series has fewer
/// than two points.
pub fn attach_cpu(intervals: &mut [IntervalSample], series: &[[f64; 2]]) {
    if series.len() < 2 {
        return;
    }
    for i in intervals {
        let cpu = cpu_at(series, i.start_s + i.length_s) - cpu_at(series, i.start_s);
        i.cpu_s = Some(cpu.max(0.0));
    }
}

/// The series' cumulative CPU at `t`: interpolated between its points, and along its first
/// or last segment beyond its ends.
fn cpu_at(series: &[[f64; 2]], t: f64) -> f64 {
    let after = series
        .partition_point(|p| p[0] <= t)
        .clamp(1, series.len() - 1);
    let ([t0, c0], [t1, c1]) = (series[after - 1], series[after]);
    if t1 <= t0 {
        return c0;
    }
    c0 + (c1 - c0) * (t - t0) / (t1 - t0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values: &[u64]) -> Histogram<u64> {
        let mut h = loadgen::new_histogram();
        for &v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn an_interval_keeps_its_bins_sparse_and_exact() {
        let h = histogram(&[1000, 1000, 2_000_000, 5]);
        let i = IntervalSample::new(0.0, 0.1, &h);
        assert_eq!(i.count, 4);
        assert_eq!(i.bins.len(), 3);
        assert_eq!(i.bins[1], (h.highest_equivalent(1000), 2));
        assert_eq!(i.bins[2].0, h.value_at_quantile(1.0));
    }

    #[test]
    fn a_sliver_at_the_end_joins_the_interval_before() {
        let a = IntervalSample::new(0.0, 0.1, &histogram(&[1000, 2000]));
        let b = IntervalSample::new(0.1, 0.1, &histogram(&[1000]));
        let sliver = IntervalSample::new(0.2, 0.01, &histogram(&[1000, 3000]));
        let t = tidy(vec![a, b, sliver]);
        assert_eq!(t.len(), 2);
        assert!((t[1].length_s - 0.11).abs() < 1e-12);
        assert_eq!(t[1].count, 3);
        assert_eq!(t[1].bins.len(), 2);
        assert_eq!(t[1].bins[0].1, 2, "equal bins are added");
    }

    #[test]
    fn cpu_is_interpolated_between_samples_and_extended_past_the_ends() {
        let series = [[0.01, 0.0], [0.11, 0.05], [0.21, 0.05]];
        let mut intervals = vec![
            IntervalSample::new(0.0, 0.1, &histogram(&[1])),
            IntervalSample::new(0.1, 0.1, &histogram(&[1])),
            IntervalSample::new(0.2, 0.1, &histogram(&[1])),
        ];
        attach_cpu(&mut intervals, &series);
        let cpu: Vec<f64> = intervals.iter().map(|i| i.cpu_s.unwrap()).collect();
        assert!(
            (cpu[0] - 0.05).abs() < 1e-9,
            "the first segment extended back: {cpu:?}"
        );
        assert!((cpu[1] - 0.005).abs() < 1e-9, "{cpu:?}");
        assert!(cpu[2].abs() < 1e-9, "{cpu:?}");
        let mut none = vec![IntervalSample::new(0.0, 0.1, &histogram(&[1]))];
        attach_cpu(&mut none, &[[0.0, 0.0]]);
        assert_eq!(none[0].cpu_s, None);
    }
}
