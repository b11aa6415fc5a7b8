//! `--hlog`: HdrHistogram's standard interval log (V2 + deflate), one histogram per interval
//! (`--hlog-interval`) and tag, with the run's JSON report in a trailing comment so that a log
//! describes itself; and `loadgen merge`, which adds the histograms of several logs (never
//! averages percentiles).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::report::{
    new_histogram, Datagrams, Handshakes, KernelDrops, Latency, Mode, Report, SATURATION,
};
use crate::work::CLASS_TAGS;

/// The comment line that carries the run's report.
const REPORT_PREFIX: &str = "#loadgen-report ";

/// The cookie of an uncompressed V2 histogram (HdrHistogram's encoding).
const V2_COOKIE: u32 = 0x1c84_9313;

/// The cookie of a V2 histogram compressed with deflate (zlib).
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;

/// An uncompressed V2 histogram's header: cookie, payload length, normalizing offset,
/// significant digits, lowest and highest trackable values, integer-to-double ratio.
const V2_HEADER: usize = 40;

/// The largest payload a histogram of a log may hold once inflated: loadgen's own (three
/// digits, 1 ns to an hour) take at most 300 KiB; this leaves room for finer ones, and keeps a
/// log that claims more from being decoded at all.
const MAX_PAYLOAD: usize = 16 << 20;

/// One interval of the log.
pub struct Interval {
    /// Start, from the end of warm-up.
    pub start: Duration,
    /// Length.
    pub length: Duration,
    /// `latency`, `uncorrected`, `connect` or `send-late`.
    pub tag: String,
    /// Latencies in nanoseconds.
    pub histogram: Histogram<u64>,
}

/// Writes an interval log whose base time is `measure_start` (the end of warm-up).
pub fn write(
    path: &Path,
    measure_start: SystemTime,
    intervals: &[Interval],
    report: &Report,
) -> anyhow::Result<()> {
    let text = encode(measure_start, intervals, report)?;
    std::fs::write(path, text).with_context(|| format!("cannot write --hlog {}", path.display()))
}

/// The interval log [`write`] writes, in memory.
pub fn encode(
    measure_start: SystemTime,
    intervals: &[Interval],
    report: &Report,
) -> anyhow::Result<Vec<u8>> {
    let mut text = Vec::new();
    {
        let mut serializer = V2DeflateSerializer::new();
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment("loadgen interval log: latency in nanoseconds")
            .add_comment(
                "tags: latency (open loop: from the intended send time), uncorrected, connect, \
                 send-late (open loop: how late sends were on the schedule), class-N (--work: \
                 the latency of the spec's class N)",
            )
            .with_start_time(measure_start)
            .with_base_time(measure_start)
            .begin_log_with(&mut text, &mut serializer)
            .context("cannot start the interval log")?;
        for interval in intervals {
            log.write_histogram(
                &interval.histogram,
                interval.start,
                interval.length,
                Tag::new(&interval.tag),
            )
            .map_err(|e| anyhow::anyhow!("cannot write an interval: {e}"))?;
        }
    }
    let json = serde_json::to_string(report).context("cannot encode the report")?;
    writeln!(text, "{REPORT_PREFIX}{json}")?;
    Ok(text)
}

/// A log read back: its intervals' histograms added up per tag, and its report.
pub struct Log {
    /// Sum of every interval's histogram, per tag.
    pub totals: BTreeMap<String, Histogram<u64>>,
    /// Number of intervals read.
    pub intervals: usize,
    /// The report from the trailing comment.
    pub report: Report,
}

/// Reads an interval log written by [`write()`].
pub fn read(path: &Path) -> anyhow::Result<Log> {
    let mut totals: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut intervals = 0;
    let report = visit(path, |interval| {
        totals
            .entry(interval.tag.clone())
            .or_insert_with(new_histogram)
            .add(&interval.histogram)
            .map_err(|e| anyhow::anyhow!("{}: cannot add histograms: {e:?}", path.display()))?;
        intervals += 1;
        Ok(())
    })?;
    Ok(Log {
        totals,
        intervals,
        report,
    })
}

/// Reads an interval log written by [`write()`], handing each interval to `each` in the order
/// written (one at a time, so that a long log never holds all its histograms at once), and
/// returns the log's report.
pub fn visit(
    path: &Path,
    mut each: impl FnMut(Interval) -> anyhow::Result<()>,
) -> anyhow::Result<Report> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&text) {
        let entry =
            entry.map_err(|e| anyhow::anyhow!("{}: not an interval log: {e:?}", path.display()))?;
        let LogEntry::Interval(interval) = entry else {
            continue;
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(interval.encoded_histogram())
            .with_context(|| format!("{}: bad base64 in an interval", path.display()))?;
        let histogram = decode(&mut deserializer, &bytes)
            .map_err(|e| anyhow::anyhow!("{}: bad histogram: {e}", path.display()))?;
        if !interval_fits(interval.start_timestamp(), interval.duration()) {
            bail!(
                "{}: an interval starts or lasts beyond a year ({:?} for {:?})",
                path.display(),
                interval.start_timestamp(),
                interval.duration()
            );
        }
        each(Interval {
            start: interval.start_timestamp(),
            length: interval.duration(),
            tag: interval.tag().map_or("latency", |t| t.as_str()).to_owned(),
            histogram,
        })?;
    }
    let text = String::from_utf8_lossy(&text);
    let Some(json) = text.lines().find_map(|l| l.strip_prefix(REPORT_PREFIX)) else {
        bail!(
            "{}: no loadgen report in the log (was it written by loadgen --hlog?)",
            path.display()
        );
    };
    let report: Report = serde_json::from_str(json)
        .with_context(|| format!("{}: unreadable loadgen report", path.display()))?;
    report
        .implausible()
        .map_or(Ok(report), |why| bail!("{}: {why}", path.display()))
}

/// Whether an interval of a log starts and lasts within a year (of its log's start): what
/// loadgen writes, and what times can be computed with.
fn interval_fits(start: Duration, length: Duration) -> bool {
    start <= crate::report::MAX_RUN && length <= crate::report::MAX_RUN
}

/// Decodes one histogram of a log (V2, deflated or not), checking the lengths its headers
/// claim against the bytes there are before anything is allocated for them: HdrHistogram's
/// deserializer allocates the claimed payload first, so a short line claiming a gigabyte would
/// take a gigabyte.
fn decode(deserializer: &mut Deserializer, bytes: &[u8]) -> Result<Histogram<u64>, String> {
    let too_short = |n: usize| format!("{n} bytes are too few for a histogram");
    let inflated;
    let plain = match be_u32(bytes, 0) {
        Some(V2_COOKIE) => bytes,
        Some(V2_DEFLATE_COOKIE) => {
            let claimed = be_u32(bytes, 4).ok_or_else(|| too_short(bytes.len()))? as usize;
            let follow = bytes.len() - 8;
            if claimed > follow {
                return Err(format!(
                    "it claims {claimed} compressed bytes, and {follow} follow"
                ));
            }
            inflated = inflate(&bytes[8..8 + claimed])?;
            &inflated[..]
        }
        Some(other) => return Err(format!("an unknown encoding (cookie {other:#x})")),
        None => return Err(too_short(bytes.len())),
    };
    if plain.len() < V2_HEADER || be_u32(plain, 0) != Some(V2_COOKIE) {
        return Err(format!(
            "no V2 histogram in its {} bytes once inflated",
            plain.len()
        ));
    }
    let claimed = be_u32(plain, 4).unwrap_or(u32::MAX) as usize;
    let held = plain.len() - V2_HEADER;
    if claimed > held {
        return Err(format!(
            "it claims a payload of {claimed} bytes, and holds {held}"
        ));
    }
    deserializer
        .deserialize(&mut &plain[..])
        .map_err(|e| e.to_string())
}

/// The big-endian u32 at `at` of `bytes`, if they hold one there.
fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// A deflated histogram inflated, at most [`MAX_PAYLOAD`] and its header.
fn inflate(compressed: &[u8]) -> Result<Vec<u8>, String> {
    let limit = (MAX_PAYLOAD + V2_HEADER) as u64;
    let mut plain = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(limit + 1)
        .read_to_end(&mut plain)
        .map_err(|e| format!("cannot inflate it: {e}"))?;
    if plain.len() as u64 > limit {
        return Err(format!("it inflates to more than {MAX_PAYLOAD} bytes"));
    }
    Ok(plain)
}

/// The logs' whole-run histograms added up, by tag.
fn add_totals(logs: &[Log]) -> anyhow::Result<BTreeMap<String, Histogram<u64>>> {
    let mut totals: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for log in logs {
        for (tag, h) in &log.totals {
            totals
                .entry(tag.clone())
                .or_insert_with(new_histogram)
                .add(h)
                .map_err(|e| anyhow::anyhow!("cannot add histograms: {e:?}"))?;
        }
    }
    Ok(totals)
}

/// Merges logs of runs made at the same time (from several machines or processes against one
/// target): histograms are added, counts and rates summed.
pub fn merge(paths: &[impl AsRef<Path>]) -> anyhow::Result<Report> {
    let mut logs = Vec::new();
    for path in paths {
        logs.push(read(path.as_ref())?);
    }
    merge_logs(&logs)
}

/// [`merge`] of logs already read.
pub fn merge_logs(logs: &[Log]) -> anyhow::Result<Report> {
    let Some(first) = logs.first() else {
        bail!("merge needs at least one log");
    };
    let base = first.report.clone();
    for log in &logs[1..] {
        let r = &log.report;
        if (r.mode, r.size, r.pipeline) != (base.mode, base.size, base.pipeline) {
            bail!(
                "cannot merge runs of different workloads ({:?}/{} B/pipeline {} and {:?}/{} B/pipeline {})",
                base.mode, base.size, base.pipeline, r.mode, r.size, r.pipeline
            );
        }
        let work = |r: &Report| r.work.as_ref().map(|w| (w.spec.clone(), w.seed));
        if work(r) != work(&base) {
            bail!(
                "cannot merge runs of different requests (--work and --seed: {:?} and {:?})",
                work(&base),
                work(r)
            );
        }
    }
    let totals = add_totals(logs)?;
    let latency = |tag: &str| totals.get(tag).map(Latency::from_histogram);
    let mut targets: Vec<&str> = logs.iter().map(|l| l.report.target.as_str()).collect();
    targets.dedup();
    let sum = |f: fn(&Report) -> f64| logs.iter().map(|l| f(&l.report)).sum::<f64>();
    let mut merged = Report {
        target: targets.join(","),
        connections: logs.iter().map(|l| l.report.connections).sum(),
        idle: logs.iter().map(|l| l.report.idle).sum(),
        rate: (base.mode == Mode::Open).then(|| sum(|r| r.rate.unwrap_or(0.0))),
        duration_s: logs.iter().map(|l| l.report.duration_s).fold(0.0, f64::max),
        warmup_s: logs.iter().map(|l| l.report.warmup_s).fold(0.0, f64::max),
        messages: totals.get("latency").map_or(0, Histogram::len),
        bytes: logs.iter().map(|l| l.report.bytes).sum(),
        throughput_msgs_per_s: sum(|r| r.throughput_msgs_per_s),
        achieved_rate_ratio: None,
        connections_starved: logs.iter().map(|l| l.report.connections_starved).sum(),
        latency_us: latency("latency").unwrap_or_default(),
        latency_uncorrected_us: latency("uncorrected").filter(|_| base.mode == Mode::Open),
        // Only when every log has it (logs of loadgens before it have no `send-late`).
        send_late_us: latency("send-late").filter(|_| {
            base.mode == Mode::Open && logs.iter().all(|l| l.totals.contains_key("send-late"))
        }),
        connect_us: latency("connect").filter(|_| base.mode == Mode::Churn),
        loadgen_cpu_ratio: logs
            .iter()
            .map(|l| l.report.loadgen_cpu_ratio)
            .fold(0.0, f64::max),
        loadgen_saturated: false,
        // Every agent's CPU: their sum (`null` when one did not say).
        loadgen_cpu_s: logs.iter().map(|l| l.report.loadgen_cpu_s).sum(),
        first_error: None,
        started_at_ns: logs.iter().filter_map(|l| l.report.started_at_ns).min(),
        // The merged runs are the whole plan again.
        conn_offset: None,
        conn_total: None,
        ..base
    };
    merged.errors = Default::default();
    for log in logs {
        merged.errors.add(&log.report.errors);
    }
    merged.achieved_rate_ratio = merged.rate.map(|rate| merged.throughput_msgs_per_s / rate);
    merged.work = merged.work.take().map(|mut work| {
        for (class, tag) in work.classes.iter_mut().zip(CLASS_TAGS) {
            class.messages = totals.get(tag).map_or(0, Histogram::len);
            class.latency_us = latency(tag).unwrap_or_default();
        }
        work
    });
    add_datagrams(&mut merged, logs);
    add_handshakes(&mut merged, logs);
    merged.loadgen_saturated = merged.loadgen_cpu_ratio > SATURATION;
    Ok(merged)
}

/// Writes the interval log of runs made at the same time: the logs' histograms added interval
/// by interval (the intervals of each log counted from its own end of warm-up, which the runs
/// share within an interval) and tag by tag, with `report` (theirs merged, [`merge`]).
pub fn write_merged(paths: &[impl AsRef<Path>], out: &Path, report: &Report) -> anyhow::Result<()> {
    let mut added: BTreeMap<(u64, String), Interval> = BTreeMap::new();
    for path in paths {
        visit(path.as_ref(), |interval| {
            let length = interval.length.as_nanos().max(1);
            let index = (interval.start.as_nanos() + length / 2) / length;
            let key = (
                u64::try_from(index).unwrap_or(u64::MAX),
                interval.tag.clone(),
            );
            match added.get_mut(&key) {
                Some(sum) => sum
                    .histogram
                    .add(&interval.histogram)
                    .map_err(|e| anyhow::anyhow!("cannot add histograms: {e:?}"))?,
                None => {
                    added.insert(key, interval);
                }
            }
            Ok(())
        })?;
    }
    let started = report
        .started_at_ns
        .map_or_else(SystemTime::now, crate::report::from_unix_ns);
    let measure_start = started + Duration::from_secs_f64(report.warmup_s);
    let intervals: Vec<Interval> = added.into_values().collect();
    write(out, measure_start, &intervals, report)
}

/// TLS: the handshake counts of the logs added up. Handshake times and the arrivals are not in
/// the interval logs: they are left out of a merge (`null`).
fn add_handshakes(merged: &mut Report, logs: &[Log]) {
    let counts: Option<Vec<&Handshakes>> =
        logs.iter().map(|l| l.report.handshakes.as_ref()).collect();
    merged.handshakes = counts.map(|c| {
        let sum = |f: fn(&Handshakes) -> u64| c.iter().map(|h| f(h)).sum::<u64>();
        let (full, resumed, priming) = (sum(|h| h.full), sum(|h| h.resumed), sum(|h| h.priming));
        // The priming handshakes' kinds are not kept: the ratio is the logs' own, weighted.
        let of_load = (full + resumed).saturating_sub(priming);
        let resumed_of_load: f64 = c
            .iter()
            .map(|h| h.resumed_ratio.unwrap_or(0.0) * (h.full + h.resumed - h.priming) as f64)
            .sum();
        Handshakes {
            full,
            resumed,
            priming,
            resumed_ratio: (of_load > 0).then(|| resumed_of_load / of_load as f64),
            measured: sum(|h| h.measured),
            loadgen_cpu_us_per_handshake: None,
        }
    });
    merged.handshake_us = None;
    merged.handshake_arrivals = None;
}

/// UDP: the datagram counts of the logs added up; the kernel's drops at loadgen's sockets
/// added, and at the server's and of the machine the largest (agents on one machine see the
/// same counters).
fn add_datagrams(merged: &mut Report, logs: &[Log]) {
    let sum = |f: fn(&Report) -> Option<u64>| logs.iter().map(|l| f(&l.report)).sum();
    merged.datagrams_sent = sum(|r| r.datagrams_sent);
    merged.datagrams_lost = sum(|r| r.datagrams_lost);
    merged.datagrams_late = sum(|r| r.datagrams_late);
    merged.datagrams_reordered = sum(|r| r.datagrams_reordered);
    merged.datagrams_duplicated = sum(|r| r.datagrams_duplicated);
    merged.loss_ratio = merged
        .datagrams_sent
        .zip(merged.datagrams_lost)
        .map(|(sent, lost)| {
            let counts = Datagrams {
                sent,
                lost,
                ..Datagrams::default()
            };
            counts.loss_ratio()
        });
    let drops: Option<Vec<KernelDrops>> = logs.iter().map(|l| l.report.udp_kernel_drops).collect();
    merged.udp_kernel_drops = drops.map(|d| KernelDrops {
        loadgen: d.iter().map(|k| k.loadgen).sum(),
        server: d.iter().filter_map(|k| k.server).max(),
        rcvbuf_errors: d.iter().map(|k| k.rcvbuf_errors).max().unwrap_or(0),
    });
}
