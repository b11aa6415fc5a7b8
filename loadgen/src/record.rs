//! What a worker records, whatever the transport: the latency histograms of the whole run and
//! of the current `--hlog` interval, serialized interval by interval, and the count of
//! measured messages that the progress line shows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::report::{new_histogram, Mode};
use crate::work::CLASS_TAGS;

/// One interval of the `--hlog` log, serialized (V2 + deflate) to keep memory small.
pub struct EncodedInterval {
    /// Interval number since the end of warm-up.
    pub index: u32,
    /// Length of the interval (the last one may be short).
    pub length: Duration,
    /// `latency`, `uncorrected`, `connect`, `send-late`, or a `--work` class's `class-N`.
    pub tag: &'static str,
    /// The serialized histogram.
    pub bytes: Vec<u8>,
}

/// The interval log's tags, in the order an interval's histograms are written.
pub const INTERVAL_TAGS: [&str; 4] = ["latency", "uncorrected", "connect", "send-late"];

/// A worker's histograms and intervals.
pub struct Recorder<'a> {
    mode: Mode,
    progress: &'a AtomicU64,
    /// Latency of measured messages, ns (open loop: from the intended send time).
    pub latency: Histogram<u64>,
    /// Open loop: latency from the actual send time, ns.
    pub uncorrected: Histogram<u64>,
    /// Churn: connect time, ns.
    pub connect: Histogram<u64>,
    /// TLS: handshake time, ns.
    pub handshake: Histogram<u64>,
    /// Open loop and arrivals: how late sends were on their schedule, ns.
    pub send_late: Histogram<u64>,
    /// Open loop: how much of each send's lateness was loadgen's own (a timer that fired
    /// late), ns; a send late because its connection's last echo came late counts 0 here.
    pub own_late: Histogram<u64>,
    /// `--work`: latency of each class's measured requests, ns (as `latency`).
    pub classes: Vec<Histogram<u64>>,
    interval: [Histogram<u64>; 4],
    /// `--work`: the current interval's latency of each class.
    class_interval: Vec<Histogram<u64>>,
    interval_index: u32,
    /// The intervals closed so far.
    pub intervals: Vec<EncodedInterval>,
    /// Messages completed in the measured time.
    pub measured: u64,
}

impl<'a> Recorder<'a> {
    /// An empty recorder for a run in `mode` with `classes` classes of `--work` requests (0
    /// without it), publishing its measured count to `progress`.
    pub fn new(mode: Mode, classes: usize, progress: &'a AtomicU64) -> Recorder<'a> {
        Recorder {
            mode,
            progress,
            latency: new_histogram(),
            uncorrected: new_histogram(),
            connect: new_histogram(),
            handshake: new_histogram(),
            send_late: new_histogram(),
            own_late: new_histogram(),
            classes: (0..classes).map(|_| new_histogram()).collect(),
            class_interval: (0..classes).map(|_| new_histogram()).collect(),
            interval: [
                new_histogram(),
                new_histogram(),
                new_histogram(),
                new_histogram(),
            ],
            interval_index: 0,
            intervals: Vec::new(),
            measured: 0,
        }
    }

    /// Records an echo that completed at `now` of a message meant for `intended` and handed
    /// to the socket at `sent` (recorded per interval only; the totals are their sum).
    pub fn echo(&mut self, intended: Instant, sent: Instant, now: Instant) {
        self.interval[0].saturating_record(nanos(now - intended));
        if self.mode == Mode::Open {
            self.interval[1].saturating_record(nanos(now - sent));
        }
    }

    /// `--work`: records the echo of a request of class `class` as [`Recorder::echo`] does, in
    /// its class's histogram as well.
    pub fn echo_of_class(&mut self, class: usize, intended: Instant, sent: Instant, now: Instant) {
        self.echo(intended, sent, now);
        if let Some(h) = self.class_interval.get_mut(class) {
            h.saturating_record(nanos(now - intended));
        }
    }

    /// Records a connect that took `took` (churn).
    pub fn connect_took(&mut self, took: Duration) {
        self.interval[2].saturating_record(nanos(took));
    }

    /// Records a TLS handshake that took `took` (from the TCP connection to its end).
    pub fn handshake_took(&mut self, took: Duration) {
        self.handshake.saturating_record(nanos(took));
    }

    /// Records a send (an arrival's connect) made `late` after its scheduled time: in the
    /// whole run's histogram, and (open loop) in the interval's, so that the logs of agents
    /// add up to the whole plan's lateness.
    pub fn late_by(&mut self, late: Duration) {
        // Zero is recorded as the smallest value the histogram holds.
        let ns = nanos(late).max(1);
        self.send_late.saturating_record(ns);
        self.interval[3].saturating_record(ns);
    }

    /// Records how much of a send's lateness was loadgen's own.
    pub fn own_late_by(&mut self, late: Duration) {
        self.own_late.saturating_record(nanos(late).max(1));
    }

    /// Counts a message completed in the measured window, for the progress line.
    pub fn count(&mut self) {
        self.measured += 1;
        self.progress.store(self.measured, Ordering::Relaxed);
    }

    /// Serializes the current interval's histograms and starts the next interval.
    pub fn close_interval(&mut self, length: Duration) {
        let mut serializer = V2DeflateSerializer::new();
        // Send lateness is added to its total as it is recorded.
        let totals = [
            Some(&mut self.latency),
            Some(&mut self.uncorrected),
            Some(&mut self.connect),
            None,
        ];
        for ((tag, h), total) in INTERVAL_TAGS
            .iter()
            .zip(self.interval.iter_mut())
            .zip(totals)
        {
            let applies = match *tag {
                "uncorrected" | "send-late" => self.mode == Mode::Open,
                "connect" => self.mode == Mode::Churn,
                _ => true,
            };
            if applies {
                if let Some(total) = total {
                    // Same bounds on both sides: adding cannot fail.
                    let _ = total.add(&*h);
                }
                let mut bytes = Vec::new();
                // Serializing into memory cannot fail for a valid histogram.
                if serializer.serialize(h, &mut bytes).is_ok() {
                    self.intervals.push(EncodedInterval {
                        index: self.interval_index,
                        length,
                        tag,
                        bytes,
                    });
                }
            }
            h.reset();
        }
        for ((tag, h), total) in CLASS_TAGS
            .iter()
            .zip(self.class_interval.iter_mut())
            .zip(self.classes.iter_mut())
        {
            let _ = total.add(&*h);
            let mut bytes = Vec::new();
            if serializer.serialize(h, &mut bytes).is_ok() {
                self.intervals.push(EncodedInterval {
                    index: self.interval_index,
                    length,
                    tag,
                    bytes,
                });
            }
            h.reset();
        }
        self.interval_index += 1;
    }
}

/// `d` in whole nanoseconds, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
