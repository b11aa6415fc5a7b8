//! The tutorials' claims, tested: each a ratio of one figure between two servers in one
//! workload of requests with a cost, its 95 % interval from the two cells' bootstraps
//! resample by resample, and a verdict read off the interval. A claim whose two servers did
//! not both run the workload is left out; one whose servers ran but gave no interval says why.

use std::collections::BTreeMap;

use super::bootstrap::{change_interval, figure, Bootstrap};
use crate::schema::{Cell, Claim, ClaimGroup, Expected, Spread, Verdict, Workload};
use crate::workload::SIXTEEN;

/// Within this of 1, a ratio is *alike*: 0.9 to 1.1.
pub const ALIKE: f64 = 0.1;

/// What a claim compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Figure {
    /// Requests per second.
    Throughput,
    /// The light requests' (class 0's) p99.
    LightP99,
}

impl Figure {
    fn key(self) -> &'static str {
        match self {
            Figure::Throughput => "throughput_msgs_per_s",
            Figure::LightP99 => "light latency_p99_us",
        }
    }

    /// The cell's figure (median over repeats).
    fn of(self, c: &Cell) -> Option<Spread> {
        match self {
            Figure::Throughput => c.throughput_msgs_per_s,
            Figure::LightP99 => c.work_classes.first()?.latency_p99_us,
        }
    }

    /// The bootstrap the figure's resamples are in, and the figure's index there.
    fn bootstrap<'a>(
        self,
        key: &(String, String),
        cells: &'a BTreeMap<(String, String), Bootstrap>,
        classes: &'a BTreeMap<(String, String), Vec<Bootstrap>>,
    ) -> Option<(&'a Bootstrap, usize)> {
        match self {
            Figure::Throughput => Some((cells.get(key)?, figure::THROUGHPUT)),
            Figure::LightP99 => Some((classes.get(key)?.first()?, figure::P99)),
        }
    }
}

/// One claim to test: `other` against `base` by `figure` in `workload`.
struct Test {
    group: ClaimGroup,
    claim: String,
    workload: Workload,
    figure: Figure,
    base: String,
    other: String,
    expected: Expected,
}

/// The claims the tutorials make that these workloads can test, over the servers that ran.
fn tests(cells: &[Cell]) -> Vec<Test> {
    let wait = |connections| Workload::Wait { connections };
    let cpu = Workload::Cpu {
        connections: SIXTEEN,
    };
    let test = |group, workload, figure, base: &str, other: &str, expected, claim: &str| Test {
        group,
        claim: claim.to_owned(),
        workload,
        figure,
        base: base.to_owned(),
        other: other.to_owned(),
        expected,
    };
    use ClaimGroup::*;
    use Expected::*;
    use Figure::*;
    let mut all = vec![
        test(IoBound, wait(SIXTEEN), Throughput, "blocking", "thread-per-client", Higher,
            "Threads for I/O-bound work: a thread per client keeps 16 clients that wait going, where the iterative server waits with one at a time"),
        test(IoBound, wait(SIXTEEN), Throughput, "py-iterative", "py-threading", Higher,
            "The same in Python: threads wait in parallel, the GIL is released while they sleep"),
        test(IoBound, wait(1024), Throughput, "thread-per-client", "mio", Higher,
            "An event loop for many waiting clients: one thread and a timer list serve 1,024 clients that wait faster than 1,024 threads"),
        test(IoBound, wait(1024), Throughput, "py-threading", "py-asyncio", Higher,
            "The same in Python: asyncio against a thread per client"),
        test(CpuBound, cpu, Throughput, "thread-per-client", "fork-per-client", Alike,
            "CPU-bound work in Rust, with no GIL: threads and processes use both cores alike"),
        test(CpuBound, cpu, Throughput, "py-threading", "py-multiprocessing", Higher,
            "Processes get past the GIL: a process per client computes on both cores, threads take turns on one"),
    ];
    // Every event loop that ran both ways: its light requests with the CPU work on a pool
    // against inline, where each heavy request holds the loop.
    let mixed = Workload::Mixed.label();
    for c in cells.iter().filter(|c| c.label == mixed) {
        let Some(model) = c.model.strip_suffix(echo_server::models::POOLED) else {
            continue;
        };
        all.push(test(BlockedLoop, Workload::Mixed, LightP99, model, &c.model, Lower,
            &format!("A CPU-heavy request blocks an event loop unless the work is offloaded: `{model}`'s light requests, the heavy ones' CPU work on a pool against inline")));
    }
    all.push(test(BlockedLoop, Workload::Mixed, LightP99, "mio", "thread-per-client", Lower,
        "Threads are preempted: a heavy request holds up the light requests of an event loop that computes inline (`mio`), not those of a thread per client"));
    all
}

/// Every claim whose two servers ran its workload, tested.
pub fn claims(
    cells: &[Cell],
    bootstraps: &BTreeMap<(String, String), Bootstrap>,
    classes: &BTreeMap<(String, String), Vec<Bootstrap>>,
) -> Vec<Claim> {
    let find =
        |model: &str, label: &str| cells.iter().find(|c| c.model == model && c.label == label);
    tests(cells)
        .into_iter()
        .filter_map(|t| {
            let label = t.workload.label();
            let (base, other) = (find(&t.base, &label)?, find(&t.other, &label)?);
            let boot = |c: &Cell| {
                t.figure
                    .bootstrap(&(c.model.clone(), label.clone()), bootstraps, classes)
            };
            let (base_value, other_value) = (t.figure.of(base), t.figure.of(other));
            let ratio = match (base_value, other_value) {
                (Some(b), Some(o)) if b.median > 0.0 => Some(o.median / b.median),
                _ => None,
            };
            let bound = loadgen_bound(&t, base, other);
            let interval = match (unseen(base, other), boot(base), boot(other)) {
                (Some(why), _, _) => Err(why),
                (None, Some((b, k)), Some((o, _))) => change_interval(b, o, k)
                    .map(|[low, high]| [1.0 + low, 1.0 + high])
                    .map_err(|why| why.replacen("no CI: ", "no interval: ", 1)),
                _ => Err("no interval: a cell has no samples".to_owned()),
            };
            let (verdict, why) = match (&interval, &bound) {
                (Ok(ci), Bound::Neither) => verdict(t.expected, *ci),
                // The ratio is a bound: only a claim it proves stands.
                (Ok(ci), Bound::Proves(model)) => match verdict(t.expected, *ci) {
                    (Verdict::Holds, _) => (Verdict::Holds, Some(format!(
                        "loadgen was the limit against `{model}`, whose own figure is higher still: the ratio is at least as far from 1"
                    ))),
                    _ => (Verdict::CannotBeSeen, Some(saturated(model))),
                },
                (Ok(_), Bound::Hides(model)) => (Verdict::CannotBeSeen, Some(saturated(model))),
                (Err(why), _) => (Verdict::CannotBeSeen, Some(why.clone())),
            };
            Some(Claim {
                group: t.group,
                claim: t.claim,
                workload: label,
                figure: t.figure.key().to_owned(),
                base: t.base,
                other: t.other,
                expected: t.expected,
                base_value: base_value.map(|v| v.median),
                other_value: other_value.map(|v| v.median),
                ratio,
                ratio_ci: interval.ok(),
                verdict,
                why,
            })
        })
        .collect()
}

/// Where loadgen was the limit of a claim's cells (it used over 90 % of its CPUs), and what
/// that does to the ratio.
enum Bound<'a> {
    /// Of neither.
    Neither,
    /// Of this one, whose throughput is then a floor of its own: a floor that moves the
    /// ratio away from the claim's direction, so a claim that holds on it holds (the other
    /// cell is not loadgen-bound).
    Proves(&'a str),
    /// Of this one, in a way that hides what the ratio would be.
    Hides(&'a str),
}

/// See [`Bound`].
fn loadgen_bound<'a>(t: &Test, base: &'a Cell, other: &'a Cell) -> Bound<'a> {
    match (base.loadgen_saturated, other.loadgen_saturated) {
        (false, false) => Bound::Neither,
        (false, true) if t.figure == Figure::Throughput && t.expected == Expected::Higher => {
            Bound::Proves(&other.model)
        }
        (true, false) if t.figure == Figure::Throughput && t.expected == Expected::Lower => {
            Bound::Proves(&base.model)
        }
        (true, _) => Bound::Hides(&base.model),
        (false, true) => Bound::Hides(&other.model),
    }
}

/// Why a loadgen-bound cell hides the claim.
fn saturated(model: &str) -> String {
    format!("loadgen used over 90 % of its CPUs against `{model}`: the figure may be loadgen's")
}

/// Why two cells' figures cannot be set against each other at all: a cell failed.
fn unseen(base: &Cell, other: &Cell) -> Option<String> {
    [base, other].iter().find_map(|c| {
        (!c.status.has_figures())
            .then(|| format!("`{}` has no figures ({})", c.model, c.status.name()))
    })
}

/// The verdict of a claim on the ratio's interval `[low, high]`, and why when it cannot be
/// seen.
pub fn verdict(expected: Expected, [low, high]: [f64; 2]) -> (Verdict, Option<String>) {
    let alike = low >= 1.0 - ALIKE && high <= 1.0 + ALIKE;
    let excludes_one = low > 1.0 || high < 1.0;
    let verdict = match expected {
        Expected::Higher if low > 1.0 => Verdict::Holds,
        Expected::Lower if high < 1.0 => Verdict::Holds,
        Expected::Alike if alike => Verdict::Holds,
        Expected::Higher | Expected::Lower if alike => Verdict::Alike,
        Expected::Higher | Expected::Lower | Expected::Alike if excludes_one => Verdict::Opposite,
        _ => Verdict::CannotBeSeen,
    };
    let why = (verdict == Verdict::CannotBeSeen).then(|| {
        format!(
            "the interval {low:.2}–{high:.2} spans 1 and leaves {:.1}–{:.1}: the runs vary more than the two differ",
            1.0 - ALIKE,
            1.0 + ALIKE
        )
    });
    (verdict, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::WorkClassFigures;

    /// A cell of `model` in `w` with this throughput (and, for `mixed`, a light class with
    /// this p99), loadgen-bound or not.
    fn cell(model: &str, w: Workload, value: f64, saturated: bool) -> Cell {
        let mut c: Cell = serde_json::from_value(serde_json::json!({
            "model": model, "workload": w.name(), "label": w.label(), "repeats": 3,
            "status": "ok", "notes": [], "errors": 0, "connections_starved": 0,
            "connections": 16, "loadgen_saturated": saturated,
            "throughput_msgs_per_s": {"median": value, "min": value, "max": value},
        }))
        .unwrap();
        if w == Workload::Mixed {
            let p99 = c.throughput_msgs_per_s;
            c.work_classes = vec![WorkClassFigures {
                spec: "cpu=20us".to_owned(),
                share: 0.99,
                latency_p99_us: p99,
                ..WorkClassFigures::default()
            }];
        }
        c
    }

    /// A bootstrap whose resamples put every figure evenly from `low` to `high`.
    fn spread(low: f64, high: f64) -> Bootstrap {
        let n = 1000;
        Bootstrap {
            resamples: (0..n)
                .map(|i| [low + (high - low) * i as f64 / (n - 1) as f64; 5])
                .collect(),
            repeats: 3,
            intervals: 60,
            block_intervals: [1; 5],
            blocks: [60; 5],
        }
    }

    type Keyed = BTreeMap<(String, String), Bootstrap>;

    fn tested(cells: &[(Cell, Bootstrap)]) -> Vec<Claim> {
        let key = |c: &Cell| (c.model.clone(), c.label.clone());
        let boots: Keyed = cells.iter().map(|(c, b)| (key(c), b.clone())).collect();
        let classes = cells
            .iter()
            .filter(|(c, _)| !c.work_classes.is_empty())
            .map(|(c, b)| (key(c), vec![b.clone(), b.clone()]))
            .collect();
        let only: Vec<Cell> = cells.iter().map(|(c, _)| c.clone()).collect();
        claims(&only, &boots, &classes)
    }

    #[test]
    fn a_claim_is_tested_where_both_servers_ran_and_judged_by_its_interval() {
        let wait = Workload::Wait { connections: 16 };
        let claims = tested(&[
            (cell("blocking", wait, 900.0, false), spread(880.0, 920.0)),
            (
                cell("thread-per-client", wait, 13_000.0, false),
                spread(12_800.0, 13_200.0),
            ),
        ]);
        assert_eq!(claims.len(), 1, "only the pair that ran: {claims:?}");
        let c = &claims[0];
        assert_eq!(
            (c.base.as_str(), c.other.as_str()),
            ("blocking", "thread-per-client")
        );
        assert_eq!(c.verdict, Verdict::Holds);
        let [low, high] = c.ratio_ci.unwrap();
        assert!(low > 13.0 && high < 15.5 && low < c.ratio.unwrap(), "{c:?}");
    }

    #[test]
    fn a_loadgen_bound_floor_proves_only_a_claim_it_moves_away_from() {
        let many = Workload::Wait { connections: 1024 };
        let threads = cell("thread-per-client", many, 50_000.0, false);
        // mio's figure is loadgen's, a floor of its own: 4× is at least 4×.
        let claims = tested(&[
            (threads.clone(), spread(49_000.0, 51_000.0)),
            (
                cell("mio", many, 200_000.0, true),
                spread(198_000.0, 202_000.0),
            ),
        ]);
        assert_eq!(claims[0].verdict, Verdict::Holds);
        assert!(
            claims[0].why.as_ref().unwrap().contains("loadgen"),
            "{claims:?}"
        );
        // A floor alike with the other proves nothing.
        let claims = tested(&[
            (threads, spread(49_000.0, 51_000.0)),
            (
                cell("mio", many, 50_000.0, true),
                spread(49_000.0, 51_000.0),
            ),
        ]);
        assert_eq!(claims[0].verdict, Verdict::CannotBeSeen);
        assert!(
            claims[0].why.as_ref().unwrap().contains("`mio`"),
            "{claims:?}"
        );
    }

    #[test]
    fn every_event_loop_run_both_ways_is_set_against_its_pool_by_the_light_p99() {
        let m = Workload::Mixed;
        let claims = tested(&[
            (
                cell("tokio", m, 16_000.0, false),
                spread(15_000.0, 17_000.0),
            ),
            (
                cell("tokio+pool", m, 9_000.0, false),
                spread(8_500.0, 9_500.0),
            ),
            (cell("smol", m, 16_000.0, false), spread(15_000.0, 17_000.0)),
        ]);
        assert_eq!(claims.len(), 1, "{claims:?}");
        let c = &claims[0];
        assert_eq!((c.base.as_str(), c.other.as_str()), ("tokio", "tokio+pool"));
        assert_eq!((c.expected, c.verdict), (Expected::Lower, Verdict::Holds));
        assert_eq!(c.figure, "light latency_p99_us");
    }

    #[test]
    fn verdicts_follow_the_interval() {
        let v = |e, ci| verdict(e, ci).0;
        assert_eq!(v(Expected::Higher, [1.2, 1.8]), Verdict::Holds);
        assert_eq!(v(Expected::Higher, [0.95, 1.05]), Verdict::Alike);
        assert_eq!(v(Expected::Higher, [0.5, 0.8]), Verdict::Opposite);
        assert_eq!(v(Expected::Higher, [0.8, 1.3]), Verdict::CannotBeSeen);
        assert_eq!(v(Expected::Lower, [0.2, 0.4]), Verdict::Holds);
        assert_eq!(v(Expected::Lower, [1.2, 1.4]), Verdict::Opposite);
        assert_eq!(v(Expected::Alike, [0.97, 1.04]), Verdict::Holds);
        assert_eq!(v(Expected::Alike, [1.3, 1.5]), Verdict::Opposite);
        assert_eq!(v(Expected::Alike, [0.7, 1.2]), Verdict::CannotBeSeen);
        let (_, why) = verdict(Expected::Lower, [0.7, 1.2]);
        assert!(why.unwrap().contains("0.70–1.20"));
    }
}
