//! How figures read in the report: whole numbers with separators, microseconds, bytes, spreads
//! and the marks of a cell.

use std::fmt::Write as _;

use crate::schema::{Cell, Ci, Spread, Summary};

/// What a missing figure reads as.
pub const DASH: &str = "—";

/// A server's name as tables show it: its label, marked `(external)` for a server echobench
/// does not build.
pub fn server_name(s: &Summary, label: &str) -> String {
    match s.environment.external(label) {
        Some(_) => format!("{label} (external)"),
        None => label.to_owned(),
    }
}

/// `f` of the value, or a dash.
pub fn or_dash<T>(value: Option<T>, f: impl FnOnce(T) -> String) -> String {
    value.map_or_else(|| DASH.to_owned(), f)
}

/// The cell's text with its marks: `L` loadgen-bound, `S n/m` starved, `E n` errors; `failed`
/// or `not run` alone when the cell has no figures.
pub fn mark(c: &Cell, text: String) -> String {
    if !c.status.has_figures() {
        return c.status.name().to_owned();
    }
    let mut t = text;
    if c.loadgen_saturated {
        t += " L";
    }
    if c.connections_starved > 0 {
        let _ = write!(t, " S {}/{}", c.connections_starved, c.connections);
    }
    if c.errors > 0 {
        let _ = write!(t, " E {}", c.errors);
    }
    t
}

/// The spread with every value multiplied by `k`.
pub fn scale(s: Spread, k: f64) -> Spread {
    Spread {
        median: s.median * k,
        min: s.min * k,
        max: s.max * k,
        ci: s.ci.map(|ci| ci.scaled(k)),
    }
}

/// The median with its interval and samples (`148,180 ± 2,300 [3×20]`) where it has an
/// interval; otherwise with the range (min–max) when the repeats differ.
pub fn spread(s: Option<Spread>, f: impl Fn(f64) -> String) -> String {
    match s {
        None => DASH.to_owned(),
        Some(Spread {
            median,
            ci: Some(ci),
            ..
        }) => with_ci(median, Some(ci), f),
        Some(s) if s.min == s.max => f(s.median),
        Some(s) => format!("{} ({}–{})", f(s.median), f(s.min), f(s.max)),
    }
}

/// `value ± half`, the distances from the value to the interval's bounds to two significant
/// digits: one `±` when they are within 1.5× of each other, else `value (−down, +up)` (a tail
/// interval is often lopsided); `± n/a` when too few samples stand behind the value for an
/// interval; the value alone when it has no interval at all.
pub fn plus_minus(value: f64, ci: Option<Ci>, f: impl Fn(f64) -> String) -> String {
    let Some(ci) = ci else {
        return f(value);
    };
    match (ci.low, ci.high) {
        (Some(low), Some(high)) => {
            let (down, up) = ((value - low).max(0.0), (high - value).max(0.0));
            let alike = f(two_digits(down)) == f(two_digits(up));
            if alike || down.max(up) <= 1.5 * down.min(up) {
                format!("{} ± {}", f(value), f(two_digits(down.max(up))))
            } else {
                format!(
                    "{} (−{}, +{})",
                    f(value),
                    f(two_digits(down)),
                    f(two_digits(up))
                )
            }
        }
        _ => format!("{} ± n/a", f(value)),
    }
}

/// [`plus_minus`] with the samples behind the interval (`57.2 µs ± 1.1 µs [3×20]`); the value
/// alone when it has no interval.
pub fn with_ci(value: f64, ci: Option<Ci>, f: impl Fn(f64) -> String) -> String {
    match ci {
        Some(c) => format!("{} {}", plus_minus(value, ci, f), samples(c)),
        None => f(value),
    }
}

/// The samples behind an interval: `[repeats×intervals per repeat]`, or `[n runs]` for one
/// from repeats only.
pub fn samples(ci: Ci) -> String {
    if ci.intervals == 0 {
        let runs = if ci.repeats == 1 { "run" } else { "runs" };
        format!("[{} {runs}]", ci.repeats)
    } else {
        format!("[{}×{}]", ci.repeats, ci.intervals / ci.repeats.max(1))
    }
}

/// `v` rounded to two significant digits.
fn two_digits(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 0.0;
    }
    let scale = 10_f64.powi(v.log10().floor() as i32 - 1);
    (v / scale).round() * scale
}

/// The median of an optional spread, in µs, with its interval where it has one.
pub fn median_us(s: Option<Spread>) -> String {
    or_dash(s, |s| with_ci(s.median, s.ci, us))
}

/// Two medians in µs, `a / b`, with their intervals and the samples once.
pub fn pair(a: Option<Spread>, b: Option<Spread>) -> String {
    let bare = |s: Option<Spread>| or_dash(s, |s| plus_minus(s.median, s.ci, us));
    let tag = a
        .or(b)
        .and_then(|s| s.ci)
        .map_or_else(String::new, |ci| format!(" {}", samples(ci)));
    format!("{} / {}{tag}", bare(a), bare(b))
}

/// A figure as a person scans it: four significant digits at most, `k` and `M` for
/// thousands and millions (`189.6k`, `1.82M`), separators below them (`1,055`).
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 999_950.0 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 9_999.5 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 99.95 {
        int(v)
    } else if a >= 9.995 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// How sure a figure is, compactly: `±1 %`, the larger side of its interval as a share of
/// the value (`±0.4 %` under 1 %); nothing without an interval.
pub fn certainty(value: f64, ci: Option<Ci>) -> String {
    let Some((low, high)) = ci.and_then(|c| c.low.zip(c.high)) else {
        return String::new();
    };
    side_share(value, low, high)
}

/// `±3 %`: the larger distance from `value` to `low` or `high`, as a share of `value`.
pub fn side_share(value: f64, low: f64, high: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return String::new();
    }
    let share = (value - low).abs().max((high - value).abs()) / value.abs() * 100.0;
    if share < 0.95 {
        format!("±{share:.1} %")
    } else {
        format!("±{share:.0} %")
    }
}

/// A figure's whole interval in words, for a tooltip: `95 % interval 187.9k–190.6k over 2
/// passes × 10 intervals`, or why it has none.
pub fn interval_words(ci: Option<Ci>, f: impl Fn(f64) -> String) -> String {
    match ci {
        None => "no interval (a figure without samples behind it)".to_owned(),
        Some(c) => match (c.low, c.high) {
            (Some(low), Some(high)) => {
                format!("95 % interval {}–{} {}", f(low), f(high), over(c))
            }
            _ => format!(
                "no interval: too few samples ({}; 3 repeats or 20 blocks needed)",
                over(c).trim_start_matches("over ")
            ),
        },
    }
}

/// `over 2 passes × 10 intervals`, or `over 3 runs` for an interval from repeats only.
fn over(c: Ci) -> String {
    let passes = if c.repeats == 1 { "pass" } else { "passes" };
    if c.intervals == 0 {
        format!(
            "over {} {}",
            c.repeats,
            if c.repeats == 1 { "run" } else { "runs" }
        )
    } else {
        format!(
            "over {} {passes} × {} intervals",
            c.repeats,
            c.intervals / c.repeats.max(1)
        )
    }
}

/// The mark before a figure loadgen limited, which the server may exceed: `≥ `.
pub fn at_least(limited: bool) -> &'static str {
    if limited {
        "≥ "
    } else {
        ""
    }
}

/// A latency target as tables write it: `p99=1ms` reads `p99 ≤ 1ms`.
pub fn target(slo: &str) -> String {
    slo.replacen('=', " ≤ ", 1)
}

/// A share as a whole percentage: `93 %`.
pub fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// Whole number with thousands separators.
pub fn int(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// Microseconds, 3 significant digits, in µs or ms.
pub fn us(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} µs")
    } else {
        format!("{v:.1} µs")
    }
}

/// Bytes in B, KiB or MiB.
pub fn bytes(v: f64) -> String {
    let a = v.abs();
    if a >= 10.0 * 1024.0 * 1024.0 {
        format!("{:.0} MiB", v / 1024.0 / 1024.0)
    } else if a >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", v / 1024.0 / 1024.0)
    } else if a >= 1024.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else {
        format!("{v:.0} B")
    }
}

/// KiB as [`bytes`].
pub fn kib(k: f64) -> String {
    bytes(k * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(int(1_234_567.4), "1,234,567");
        assert_eq!(int(-1000.0), "-1,000");
        assert_eq!(us(57.24), "57.2 µs");
        assert_eq!(us(457.0), "457 µs");
        assert_eq!(us(12_500.0), "12.5 ms");
        assert_eq!(bytes(103.0), "103 B");
        assert_eq!(bytes(25.6 * 1024.0), "25.6 KiB");
        assert_eq!(kib(30.0 * 1024.0), "30 MiB");
        let s = Spread::of([1.0, 2.0, 3.0]);
        assert_eq!(spread(s, |v| format!("{v:.0}")), "2 (1–3)");
        assert_eq!(spread(None, int), DASH);
        let ci = Ci {
            low: Some(145_000.0),
            high: Some(150_521.0),
            repeats: 3,
            intervals: 60,
            block_intervals: 1,
            blocks: 60,
        };
        let with = Spread::of([148_180.0]).map(|s| Spread { ci: Some(ci), ..s });
        assert_eq!(spread(with, int), "148,180 ± 3,200 [3×20]");
        let lopsided = Ci {
            low: Some(480.0),
            high: Some(2050.0),
            ..ci
        };
        assert_eq!(
            plus_minus(751.0, Some(lopsided), us),
            "751 µs (−270 µs, +1300 µs)"
        );
        let na = Ci {
            low: None,
            high: None,
            repeats: 1,
            intervals: 10,
            ..ci
        };
        let without = Spread::of([57.24]).map(|s| Spread { ci: Some(na), ..s });
        assert_eq!(median_us(without), "57.2 µs ± n/a [1×10]");
        assert_eq!(
            pair(without, without),
            "57.2 µs ± n/a / 57.2 µs ± n/a [1×10]"
        );
        let memory = Ci { intervals: 0, ..ci };
        assert_eq!(samples(memory), "[3 runs]");
    }

    #[test]
    fn a_headline_figure_reads_compactly_with_its_certainty() {
        assert_eq!(compact(189_604.0), "189.6k");
        assert_eq!(compact(15_104.0), "15.1k");
        assert_eq!(compact(1_820_000.0), "1.82M");
        assert_eq!(compact(1_055.0), "1,055");
        assert_eq!(compact(29.6), "29.6");
        assert_eq!(compact(3.84), "3.84");
        let ci = Ci {
            low: Some(187_904.0),
            high: Some(191_500.0),
            repeats: 2,
            intervals: 20,
            block_intervals: 1,
            blocks: 20,
        };
        assert_eq!(certainty(189_604.0, Some(ci)), "±1 %");
        assert_eq!(side_share(1000.0, 996.0, 1002.0), "±0.4 %");
        assert_eq!(
            certainty(
                100.0,
                Some(Ci {
                    low: Some(97.0),
                    high: Some(101.0),
                    ..ci
                })
            ),
            "±3 %"
        );
        assert_eq!(
            certainty(
                100.0,
                Some(Ci {
                    low: None,
                    high: None,
                    ..ci
                })
            ),
            ""
        );
        assert_eq!(certainty(100.0, None), "");
        assert_eq!(
            interval_words(Some(ci), compact),
            "95 % interval 187.9k–191.5k over 2 passes × 10 intervals"
        );
        assert!(interval_words(Some(Ci { low: None, ..ci }), compact)
            .starts_with("no interval: too few samples (2 passes"));
    }
}
