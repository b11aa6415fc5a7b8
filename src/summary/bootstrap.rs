//! Confidence intervals by a hierarchical bootstrap over a cell's repeats and the intervals
//! within each.
//!
//! A cell's figure is the median over its repeats of each repeat's figure (throughput: echoes
//! over time; percentiles: from the repeat's histogram; CPU per message: CPU over echoes). One
//! bootstrap resample redoes that estimate on resampled data: draw the repeats with
//! replacement; within each drawn repeat, draw blocks of consecutive intervals with
//! replacement (a moving-block bootstrap, which keeps what neighbouring intervals share);
//! add the drawn intervals' histograms, echoes, time and CPU; compute the repeat's figures;
//! take their median. Percentiles always come from added histograms, never from averaged
//! percentiles. The 2.5th and 97.5th percentiles of [`RESAMPLES`] resamples bound the 95 %
//! interval.
//!
//! The block length is read from the data, per figure, from the series of that figure's
//! intervals (throughput; mean latency for the percentiles; CPU per echo): 1 when its lag-1
//! autocorrelation ρ lies inside ±2/√n (no evidence of dependence); otherwise the shortest
//! block that reproduces 85 % of the dependence Σ ρ^k of an AR(1) process with that ρ, at most
//! half the shortest repeat. With 3 repeats or more, where resampling the repeats carries what
//! differs from run to run, the block is shortened as far as needed to leave [`MIN_BLOCKS`]
//! blocks (to one interval at most). Fewer than [`MIN_BLOCKS`] blocks over all repeats give no
//! interval ("n/a"): too few to resample.

use crate::schema::Ci;
use loadgen::rng::Rng;

use super::samples::IntervalSample;

/// Bootstrap resamples per cell.
pub const RESAMPLES: usize = 1000;

/// Confidence level.
pub const CONFIDENCE: f64 = 0.95;

/// Fewest blocks, over all repeats, for an interval.
pub const MIN_BLOCKS: usize = 20;

/// Fewest repeats on each side for the interval of a change between two cells
/// ([`change_interval`]): with fewer, what runs share is not resampled.
pub const MIN_REPEATS: usize = 3;

/// Repeats from which blocks are shortened to leave [`MIN_BLOCKS`]: the repeats' own spread
/// then carries what runs (and neighbouring intervals within them) share.
pub const SHORTEN_WITH_REPEATS: usize = 3;

/// The figures resampled, as indices of a [`Figures`] array.
pub mod figure {
    /// Echoes per second.
    pub const THROUGHPUT: usize = 0;
    /// Median latency, µs.
    pub const P50: usize = 1;
    /// 99th percentile latency, µs.
    pub const P99: usize = 2;
    /// 99.9th percentile latency, µs.
    pub const P99_9: usize = 3;
    /// Server CPU per echo, µs.
    pub const CPU_PER_MESSAGE: usize = 4;
}

/// The quantiles of [`figure::P50`], [`figure::P99`] and [`figure::P99_9`].
const QUANTILES: [f64; 3] = [0.5, 0.99, 0.999];

/// One value per figure; NaN where the data hold none (no echoes, no CPU series).
pub type Figures = [f64; 5];

/// One interval, its latency bins as indices into the cell's sorted values.
#[derive(Debug, Clone)]
struct Interval {
    length_s: f64,
    count: u64,
    cpu_s: f64,
    bins: Vec<(u32, u64)>,
}

/// A cell's samples: its repeats' intervals over one table of latency values.
#[derive(Debug, Clone)]
pub struct CellSamples {
    /// Every latency value (ns) any interval used, ascending.
    values: Vec<u64>,
    /// Each repeat's intervals, in time order.
    repeats: Vec<Vec<Interval>>,
}

impl CellSamples {
    /// The samples of a cell's repeats; repeats without intervals are left out.
    pub fn new(repeats: &[&[IntervalSample]]) -> CellSamples {
        let mut values: Vec<u64> = repeats
            .iter()
            .flat_map(|r| r.iter().flat_map(|i| i.bins.iter().map(|b| b.0)))
            .collect();
        values.sort_unstable();
        values.dedup();
        let index = |v: u64| values.partition_point(|&x| x < v) as u32;
        let repeats = repeats
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| {
                r.iter()
                    .map(|i| Interval {
                        length_s: i.length_s,
                        count: i.count,
                        cpu_s: i.cpu_s.unwrap_or(f64::NAN),
                        bins: i.bins.iter().map(|&(v, c)| (index(v), c)).collect(),
                    })
                    .collect()
            })
            .collect();
        CellSamples { values, repeats }
    }

    /// About how much work resampling it is: the latency bins it adds up.
    pub fn cost(&self) -> u64 {
        self.repeats
            .iter()
            .flatten()
            .map(|i| i.bins.len() as u64)
            .sum()
    }

    /// Intervals over all repeats.
    pub fn intervals(&self) -> usize {
        self.repeats.iter().map(Vec::len).sum()
    }

    /// The figures of the whole data: the median over repeats of each repeat's figures.
    pub fn estimate(&self) -> Figures {
        let mut counts = vec![0; self.values.len()];
        let per_repeat: Vec<Figures> = self
            .repeats
            .iter()
            .map(|r| self.figures(r, &vec![1; r.len()], &mut counts, true))
            .collect();
        median_each(&per_repeat)
    }

    /// The figures of a repeat's intervals taken together, each `weights` times (a resample
    /// draws an interval any number of times); the percentiles only when `latency`.
    fn figures(
        &self,
        repeat: &[Interval],
        weights: &[u32],
        counts: &mut [u64],
        latency: bool,
    ) -> Figures {
        if latency {
            counts.fill(0);
        }
        let (mut time, mut echoes, mut cpu) = (0.0, 0_u64, 0.0);
        for (i, &w) in repeat.iter().zip(weights).filter(|(_, &w)| w > 0) {
            let (wf, wu) = (f64::from(w), u64::from(w));
            time += i.length_s * wf;
            echoes += i.count * wu;
            cpu += i.cpu_s * wf;
            if latency {
                for &(bin, n) in &i.bins {
                    counts[bin as usize] += n * wu;
                }
            }
        }
        let mut f = [f64::NAN; 5];
        if time > 0.0 {
            f[figure::THROUGHPUT] = echoes as f64 / time;
        }
        if echoes > 0 {
            f[figure::CPU_PER_MESSAGE] = cpu / echoes as f64 * 1e6;
            if latency {
                let quantiles = self.quantiles(counts, echoes);
                f[figure::P50..=figure::P99_9].copy_from_slice(&quantiles);
            }
        }
        f
    }

    /// [`QUANTILES`] of the counts in µs, as `Histogram::value_at_quantile` gives them: the
    /// value of the first bin whose running count reaches ⌈q × total⌉.
    fn quantiles(&self, counts: &[u64], total: u64) -> [f64; 3] {
        let mut out = [f64::NAN; 3];
        let targets = QUANTILES.map(|q| ((q * total as f64).ceil() as u64).max(1));
        let (mut running, mut next) = (0, 0);
        for (bin, &n) in counts.iter().enumerate() {
            running += n;
            while next < targets.len() && running >= targets[next] {
                out[next] = self.values[bin] as f64 / 1000.0;
                next += 1;
            }
            if next == targets.len() {
                break;
            }
        }
        out
    }

    /// The block length each figure's own series calls for (see the module's
    /// documentation): throughput from the intervals' throughput, the percentiles from their
    /// mean latency, CPU per message from their CPU per echo.
    pub fn block_lens(&self) -> [usize; 5] {
        let series = |f: &dyn Fn(&Interval) -> f64| -> Vec<Vec<f64>> {
            self.repeats
                .iter()
                .map(|r| r.iter().map(f).filter(|x| x.is_finite()).collect())
                .collect()
        };
        let throughput = self.block_len(&series(&|i| i.count as f64 / i.length_s));
        let latency = self.block_len(&series(&|i| self.mean_latency(i)));
        let cpu = self.block_len(&series(&|i| i.cpu_s / i.count as f64));
        let mut lens = [latency; 5];
        lens[figure::THROUGHPUT] = throughput;
        lens[figure::CPU_PER_MESSAGE] = cpu;
        if self.repeats.len() >= SHORTEN_WITH_REPEATS {
            lens = lens.map(|mut block| {
                while block > 1 && self.blocks(block) < MIN_BLOCKS {
                    block -= 1;
                }
                block
            });
        }
        lens
    }

    /// Blocks of `block` intervals over all repeats.
    fn blocks(&self, block: usize) -> usize {
        self.repeats.iter().map(|r| r.len() / block).sum()
    }

    /// The block length for one figure's series, one per repeat.
    fn block_len(&self, series: &[Vec<f64>]) -> usize {
        let n: usize = series.iter().map(Vec::len).sum();
        let shortest = self.repeats.iter().map(Vec::len).min().unwrap_or(0);
        let longest_block = (shortest / 2).max(1);
        if n < 4 {
            return 1;
        }
        let bound = 2.0 / (n as f64).sqrt();
        let lag1 = autocorrelation(series, 1);
        if lag1 < bound {
            return 1;
        }
        (1..longest_block)
            .find(|&block| captured(lag1, block) >= CAPTURED)
            .unwrap_or(longest_block)
    }

    /// Mean latency of an interval, ns; NaN when it echoed nothing.
    fn mean_latency(&self, i: &Interval) -> f64 {
        let sum: f64 = i
            .bins
            .iter()
            .map(|&(bin, n)| self.values[bin as usize] as f64 * n as f64)
            .sum();
        sum / i.count as f64
    }
}

/// Share of the dependence between intervals (Σ ρ^k over lags k ≥ 1) that blocks of a length
/// must see for the bootstrap's spread to be near the truth.
const CAPTURED: f64 = 0.85;

/// The share of Σ ρ^k (k ≥ 1) of an AR(1) process with lag-1 autocorrelation `rho` that a
/// moving-block bootstrap with blocks of `block` intervals reproduces: Σ (1 − k/block) ρ^k
/// over k < block.
fn captured(rho: f64, block: usize) -> f64 {
    if rho >= 1.0 {
        return 0.0;
    }
    let whole = rho / (1.0 - rho);
    let seen: f64 = (1..block)
        .map(|k| (1.0 - k as f64 / block as f64) * rho.powi(k as i32))
        .sum();
    seen / whole
}

/// Autocorrelation at `lag` of several series pooled (each about its own mean); 0 when they
/// do not vary.
fn autocorrelation(series: &[Vec<f64>], lag: usize) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for s in series.iter().filter(|s| !s.is_empty()) {
        let mean = s.iter().sum::<f64>() / s.len() as f64;
        den += s.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
        num += s
            .iter()
            .zip(s.iter().skip(lag))
            .map(|(a, b)| (a - mean) * (b - mean))
            .sum::<f64>();
    }
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// The median of each figure over several, NaNs left out.
fn median_each(all: &[Figures]) -> Figures {
    let mut out = [f64::NAN; 5];
    for (k, slot) in out.iter_mut().enumerate() {
        let mut v: Vec<f64> = all.iter().map(|f| f[k]).filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n > 0 {
            *slot = if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            };
        }
    }
    out
}

/// A cell's bootstrap: its resampled estimates and what they rest on.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The estimate of each resample (each figure resampled with its own block length).
    pub resamples: Vec<Figures>,
    /// Repeats resampled.
    pub repeats: usize,
    /// Intervals over all repeats.
    pub intervals: usize,
    /// Intervals per block, per figure.
    pub block_intervals: [usize; 5],
    /// Blocks over all repeats, per figure.
    pub blocks: [usize; 5],
}

/// Resamples `cell` [`RESAMPLES`] times with `rng`.
pub fn bootstrap(cell: &CellSamples, rng: &mut Rng) -> Bootstrap {
    bootstrap_with(cell, rng, RESAMPLES)
}

/// Resamples `cell` `resamples` times with `rng`: once per distinct block length its figures
/// call for, each figure taken from the resampling with its own.
pub fn bootstrap_with(cell: &CellSamples, rng: &mut Rng, resamples: usize) -> Bootstrap {
    let lens = cell.block_lens();
    let mut all = vec![[f64::NAN; 5]; resamples];
    let mut distinct = lens.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    for block in distinct {
        let latency = lens[figure::P50..=figure::P99_9].contains(&block);
        let drawn = resample(cell, rng, resamples, block, latency);
        for (k, _) in lens.iter().enumerate().filter(|(_, &l)| l == block) {
            for (slot, f) in all.iter_mut().zip(&drawn) {
                slot[k] = f[k];
            }
        }
    }
    Bootstrap {
        resamples: all,
        repeats: cell.repeats.len(),
        intervals: cell.intervals(),
        block_intervals: lens,
        blocks: lens.map(|block| cell.blocks(block)),
    }
}

/// `resamples` estimates from resampled repeats and blocks of `block` intervals; the
/// percentiles only when `latency`.
fn resample(
    cell: &CellSamples,
    rng: &mut Rng,
    resamples: usize,
    block: usize,
    latency: bool,
) -> Vec<Figures> {
    let mut counts = vec![0; cell.values.len()];
    let mut weights: Vec<u32> = Vec::new();
    let mut per_repeat: Vec<Figures> = Vec::with_capacity(cell.repeats.len());
    (0..resamples)
        .map(|_| {
            per_repeat.clear();
            for _ in 0..cell.repeats.len() {
                let repeat = &cell.repeats[rng.below(cell.repeats.len())];
                let (n, block) = (repeat.len(), block.min(repeat.len()));
                weights.clear();
                weights.resize(n, 0);
                let mut drawn = 0;
                while drawn < n {
                    let start = rng.below(n - block + 1);
                    for w in &mut weights[start..(start + block).min(start + n - drawn)] {
                        *w += 1;
                    }
                    drawn += block;
                }
                per_repeat.push(cell.figures(repeat, &weights, &mut counts, latency));
            }
            median_each(&per_repeat)
        })
        .collect()
}

impl Bootstrap {
    /// The percentile interval of one figure; bounds `None` below [`MIN_BLOCKS`] blocks, or
    /// when most resamples hold no value for it.
    pub fn ci(&self, figure: usize) -> Ci {
        let v: Vec<f64> = self
            .resamples
            .iter()
            .map(|f| f[figure])
            .filter(|x| !x.is_nan())
            .collect();
        let enough = self.blocks[figure] >= MIN_BLOCKS && v.len() * 2 > self.resamples.len();
        let (low, high) = if enough {
            let [low, high] = percentile_interval(v);
            (Some(low), Some(high))
        } else {
            (None, None)
        };
        Ci {
            low,
            high,
            repeats: self.repeats,
            intervals: self.intervals,
            block_intervals: self.block_intervals[figure],
            blocks: self.blocks[figure],
        }
    }
}

/// The interval of B / A − 1 for one figure from two bootstraps, resample by resample (drawn
/// with one seed, as `echobench diff` does, or independently, as two cells of one run are);
/// why there is none otherwise: fewer than [`MIN_REPEATS`] repeats or [`MIN_BLOCKS`] blocks
/// on a side, or too few resamples that hold the figure.
pub fn change_interval(a: &Bootstrap, b: &Bootstrap, index: usize) -> Result<[f64; 2], String> {
    let repeats = a.repeats.min(b.repeats);
    if repeats < MIN_REPEATS {
        return Err(format!("no CI: {repeats} repeat(s), {MIN_REPEATS} needed"));
    }
    let blocks = a.blocks[index].min(b.blocks[index]);
    if blocks < MIN_BLOCKS {
        return Err(format!("no CI: {blocks} blocks, {MIN_BLOCKS} needed"));
    }
    let ratios: Vec<f64> = a
        .resamples
        .iter()
        .zip(&b.resamples)
        .map(|(x, y)| y[index] / x[index] - 1.0)
        .filter(|r| r.is_finite())
        .collect();
    if ratios.len() * 2 <= a.resamples.len() {
        return Err("no CI: too few resamples hold the figure".to_owned());
    }
    Ok(percentile_interval(ratios))
}

/// The [`CONFIDENCE`] percentile interval of resampled values (not empty).
fn percentile_interval(mut values: Vec<f64>) -> [f64; 2] {
    values.sort_by(f64::total_cmp);
    [
        percentile(&values, (1.0 - CONFIDENCE) / 2.0),
        percentile(&values, (1.0 + CONFIDENCE) / 2.0),
    ]
}

/// The `p` quantile of sorted values, by nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::samples::IntervalSample;

    #[test]
    fn the_whole_data_gives_the_figures_a_histogram_gives() {
        // Two intervals of one repeat; their sum is the run's histogram.
        let mut whole = loadgen::new_histogram();
        let mut parts = [loadgen::new_histogram(), loadgen::new_histogram()];
        for i in 0..5_000_u64 {
            let v = 40_000 + (i * 7919) % 900_000;
            whole.record(v).unwrap();
            parts[(i % 2) as usize].record(v).unwrap();
        }
        let intervals: Vec<IntervalSample> = parts
            .iter()
            .enumerate()
            .map(|(k, h)| {
                let mut i = IntervalSample::new(k as f64 * 0.1, 0.1, h);
                i.cpu_s = Some(0.01);
                i
            })
            .collect();
        let f = CellSamples::new(&[&intervals]).estimate();
        assert_eq!(f[figure::THROUGHPUT], 5_000.0 / 0.2);
        assert!((f[figure::CPU_PER_MESSAGE] - 0.02 / 5_000.0 * 1e6).abs() < 1e-9);
        for (k, q) in [
            (figure::P50, 0.5),
            (figure::P99, 0.99),
            (figure::P99_9, 0.999),
        ] {
            assert_eq!(
                f[k],
                whole.value_at_quantile(q) as f64 / 1000.0,
                "quantile {q}"
            );
        }
    }
}
