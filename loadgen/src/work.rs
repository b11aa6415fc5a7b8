//! `--work SPEC`: requests with a cost, in `echo-server --work`'s protocol. Each request is a
//! 16-byte header (`EBW1`, total length u32 big-endian, CPU work in ns u32, wait in µs u32)
//! and then payload from the connection's pattern ([`crate::payload`]); the server pays the
//! cost and sends the request back unchanged, header included, and every byte is verified.
//!
//! A spec names one class (`cpu=1ms`, `wait=20ms`, `cpu=100us,wait=1ms`, `cpu=0` for the
//! protocol at no cost) or a mix, `SPEC;P%:SPEC[;...]`: each further class takes its share of
//! the requests and the first takes the rest (`cpu=20us;1%:cpu=10ms`). Which class a request
//! is of is a function of (`--seed`, the connection's number in the whole plan, the request's
//! number on that connection), so every model and every agent sees the same sequence.

use crate::payload;

/// Bytes of a request's header.
pub const HEADER: usize = 16;

/// The header of a request of `len` bytes in all (header included) asking for `cpu_ns` of CPU
/// and a wait of `wait_us`: `EBW1`, then the three as u32 big-endian.
pub fn header(len: u32, cpu_ns: u32, wait_us: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(b"EBW1");
    h[4..8].copy_from_slice(&len.to_be_bytes());
    h[8..12].copy_from_slice(&cpu_ns.to_be_bytes());
    h[12..].copy_from_slice(&wait_us.to_be_bytes());
    h
}

/// The longest request the server takes, header included.
pub const MAX_LEN: usize = 1 << 20;

/// The most CPU work one request may ask for.
pub const MAX_CPU: std::time::Duration = std::time::Duration::from_secs(1);

/// The longest wait one request may ask for.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The most classes one mix may have.
pub const MAX_CLASSES: usize = 8;

/// `--seed` unless given.
pub const DEFAULT_SEED: u64 = 1;

/// The interval log's tag of each class's latency, by class.
pub const CLASS_TAGS: [&str; MAX_CLASSES] = [
    "class-0", "class-1", "class-2", "class-3", "class-4", "class-5", "class-6", "class-7",
];

/// Shares are counted in parts per million.
const MILLION: u32 = 1_000_000;

/// One class of requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// The class as a spec, in a canonical form (`cpu=20us`, `cpu=1ms,wait=2ms`, `cpu=0`).
    pub spec: String,
    /// Its share of the requests, parts per million.
    pub share_ppm: u32,
    /// CPU work per request, ns.
    pub cpu_ns: u32,
    /// Wait per request, µs.
    pub wait_us: u32,
}

impl Class {
    /// What one request of this class costs the server at least: its CPU and its wait.
    pub fn cost(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::from(self.cpu_ns))
            + std::time::Duration::from_micros(u64::from(self.wait_us))
    }
}

/// `--work`: the spec as given and its classes, the first taking the rest of the shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkSpec {
    /// The spec as given.
    pub spec: String,
    /// Its classes, in the order given.
    pub classes: Vec<Class>,
}

impl WorkSpec {
    /// Parses `--work`; the error says what is wrong with which part.
    pub fn parse(text: &str) -> Result<WorkSpec, String> {
        let mut parts = text.split(';');
        let base = parse_class(parts.next().unwrap_or_default())?;
        let mut classes = vec![base];
        let mut others: u32 = 0;
        for part in parts {
            let Some((share, spec)) = part.split_once(':') else {
                return Err(format!(
                    "'{part}': a class after the first is P%:SPEC (e.g. 1%:cpu=10ms)"
                ));
            };
            let ppm = parse_share(share)?;
            let mut class = parse_class(spec)?;
            class.share_ppm = ppm;
            others = others.saturating_add(ppm);
            classes.push(class);
        }
        if classes.len() > MAX_CLASSES {
            return Err(format!("at most {MAX_CLASSES} classes in a mix"));
        }
        if others >= MILLION {
            return Err(
                "the shares add up to 100 % or more; the first class takes the rest".into(),
            );
        }
        classes[0].share_ppm = MILLION - others;
        Ok(WorkSpec {
            spec: text.to_owned(),
            classes,
        })
    }

    /// The costliest class's cost.
    pub fn longest(&self) -> std::time::Duration {
        self.classes
            .iter()
            .map(Class::cost)
            .max()
            .unwrap_or_default()
    }
}

/// `cpu=DUR`, `wait=DUR` or both, comma-separated.
fn parse_class(text: &str) -> Result<Class, String> {
    let (mut cpu, mut wait) = (None, None);
    for field in text.split(',') {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("'{field}': expected cpu=DURATION or wait=DURATION"))?;
        let d = humantime::parse_duration(value.trim())
            .map_err(|e| format!("'{field}': {e} (e.g. 20us, 1ms)"))?;
        let slot = match key.trim() {
            "cpu" => &mut cpu,
            "wait" => &mut wait,
            other => return Err(format!("'{other}': a class has cpu= and wait= only")),
        };
        if slot.replace(d).is_some() {
            return Err(format!("'{text}': {} given twice", key.trim()));
        }
    }
    let (cpu, wait) = (cpu.unwrap_or_default(), wait.unwrap_or_default());
    if cpu > MAX_CPU {
        return Err(format!("'{text}': CPU work is at most 1s a request"));
    }
    if wait > MAX_WAIT {
        return Err(format!("'{text}': a wait is at most 10s a request"));
    }
    if wait.subsec_nanos() % 1_000 != 0 {
        return Err(format!(
            "'{text}': a wait is a whole number of microseconds"
        ));
    }
    let named = |name: &str, d: std::time::Duration| {
        (!d.is_zero()).then(|| format!("{name}={}", humantime::format_duration(d)))
    };
    let spec: Vec<String> = [named("cpu", cpu), named("wait", wait)]
        .into_iter()
        .flatten()
        .collect();
    Ok(Class {
        spec: if spec.is_empty() {
            "cpu=0".to_owned()
        } else {
            spec.join(",")
        },
        share_ppm: 0,
        cpu_ns: cpu.as_nanos() as u32,
        wait_us: wait.as_micros() as u32,
    })
}

/// `P%` as parts per million; from 0.0001 % up.
fn parse_share(text: &str) -> Result<u32, String> {
    let number = text
        .trim()
        .strip_suffix('%')
        .ok_or_else(|| format!("'{text}': a share is a percentage (1%, 0.5%)"))?;
    let percent: f64 = number
        .parse()
        .map_err(|_| format!("'{text}': not a percentage"))?;
    let ppm = (percent * 10_000.0).round();
    if !(1.0..f64::from(MILLION)).contains(&ppm) {
        return Err(format!("'{text}': a share is above 0 % and below 100 %"));
    }
    Ok(ppm as u32)
}

/// The requests of a run: the classes, the seed that deals them out, and each class's header
/// for the run's `--size`.
#[derive(Debug, Clone)]
pub struct Mix {
    /// The classes.
    pub spec: WorkSpec,
    /// `--seed`.
    pub seed: u64,
    /// Bytes of every request, header included.
    pub size: usize,
    /// Each class's header.
    headers: Vec<[u8; HEADER]>,
    /// Cumulative shares, parts per million, class by class.
    bounds: Vec<u32>,
}

impl Mix {
    /// The requests of `spec` at `size` bytes each (at least [`HEADER`]).
    pub fn new(spec: &WorkSpec, seed: u64, size: usize) -> Mix {
        let headers = spec
            .classes
            .iter()
            .map(|c| header(size as u32, c.cpu_ns, c.wait_us))
            .collect();
        let bounds = spec
            .classes
            .iter()
            .scan(0u32, |sum, c| {
                *sum += c.share_ppm;
                Some(*sum)
            })
            .collect();
        Mix {
            spec: spec.clone(),
            seed,
            size,
            headers,
            bounds,
        }
    }

    /// The class of request number `request` of connection number `conn` of the plan.
    pub fn class_of(&self, conn: usize, request: u64) -> usize {
        if self.bounds.len() == 1 {
            return 0;
        }
        let h = splitmix(splitmix(self.seed ^ splitmix(conn as u64)) ^ request);
        let draw = (h % u64::from(MILLION)) as u32;
        self.bounds
            .iter()
            .position(|&bound| draw < bound)
            .unwrap_or(0)
    }

    /// The byte stream of connection `conn` whose first request is number `first` and whose
    /// payload starts at `start` in the pattern: `out` gets `len` bytes from position `pos`.
    pub fn fill(
        &self,
        conn: usize,
        first: u64,
        start: u64,
        pos: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) {
        out.clear();
        let end = pos + len as u64;
        let mut at = pos;
        while at < end {
            let piece = self.piece(conn, first, start, at, end - at);
            out.extend_from_slice(piece);
            at += piece.len() as u64;
        }
    }

    /// Whether `received` is exactly what connection `conn` (as [`Mix::fill`] has it) sent
    /// from position `pos` on.
    pub fn matches(&self, conn: usize, first: u64, start: u64, pos: u64, received: &[u8]) -> bool {
        let mut at = pos;
        let mut rest = received;
        while !rest.is_empty() {
            let expected = self.piece(conn, first, start, at, rest.len() as u64);
            if rest[..expected.len()] != *expected {
                return false;
            }
            at += expected.len() as u64;
            rest = &rest[expected.len()..];
        }
        true
    }

    /// The stream's bytes at position `at`, at most `most` of them (at least one): the rest of
    /// a request's header, or of its payload from the pattern.
    fn piece(&self, conn: usize, first: u64, start: u64, at: u64, most: u64) -> &[u8] {
        let size = self.size as u64;
        let offset = at % size;
        if offset < HEADER as u64 {
            let header = &self.headers[self.class_of(conn, first + at / size)];
            let take = (HEADER as u64 - offset).min(most) as usize;
            &header[offset as usize..offset as usize + take]
        } else {
            payload::window(start + at, (size - offset).min(most) as usize)
        }
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `x`.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_names_classes_with_their_costs_and_shares() {
        let one = WorkSpec::parse("cpu=1ms").unwrap();
        assert_eq!(one.classes.len(), 1);
        assert_eq!(one.classes[0].cpu_ns, 1_000_000);
        assert_eq!(one.classes[0].share_ppm, MILLION);
        let both = WorkSpec::parse("wait=20ms,cpu=100us").unwrap();
        assert_eq!(both.classes[0].spec, "cpu=100us,wait=20ms");
        assert_eq!(both.classes[0].wait_us, 20_000);
        assert_eq!(WorkSpec::parse("cpu=0").unwrap().classes[0].spec, "cpu=0");
        let mix = WorkSpec::parse("cpu=20us;1%:cpu=10ms;0.5%:wait=1s").unwrap();
        let shares: Vec<u32> = mix.classes.iter().map(|c| c.share_ppm).collect();
        assert_eq!(shares, [985_000, 10_000, 5_000]);
        assert_eq!(mix.longest(), std::time::Duration::from_secs(1));
        for bad in [
            "",
            "cpu",
            "cpu=fast",
            "gpu=1ms",
            "cpu=2s",
            "wait=11s",
            "wait=1500ns",
            "cpu=1ms,cpu=2ms",
            "cpu=1ms;cpu=2ms",
            "cpu=1ms;100%:cpu=2ms",
            "cpu=1ms;0%:cpu=2ms",
            "cpu=1ms;1:cpu=2ms",
        ] {
            assert!(WorkSpec::parse(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn classes_are_dealt_by_seed_connection_and_request_in_their_shares() {
        let spec = WorkSpec::parse("cpu=20us;10%:cpu=10ms").unwrap();
        let mix = Mix::new(&spec, 7, 64);
        let heavy = (0..100_000).filter(|&r| mix.class_of(3, r) == 1).count();
        assert!((9_000..11_000).contains(&heavy), "{heavy} of 100,000 heavy");
        let again = Mix::new(&spec, 7, 64);
        assert!((0..1000).all(|r| mix.class_of(5, r) == again.class_of(5, r)));
        let other_seed = Mix::new(&spec, 8, 64);
        assert!((0..1000).any(|r| mix.class_of(5, r) != other_seed.class_of(5, r)));
        assert!((0..1000).any(|r| mix.class_of(5, r) != mix.class_of(6, r)));
    }

    #[test]
    fn the_stream_is_headers_and_pattern_and_only_it_matches() {
        let spec = WorkSpec::parse("cpu=0;50%:wait=1ms").unwrap();
        let mix = Mix::new(&spec, 1, 40);
        let (conn, first, start) = (2, 10, payload::stream_start(2));
        let mut whole = Vec::new();
        mix.fill(conn, first, start, 0, 400, &mut whole);
        assert_eq!(whole.len(), 400);
        for r in 0..10 {
            let request = &whole[r * 40..(r + 1) * 40];
            assert_eq!(&request[..4], b"EBW1");
            assert_eq!(u32::from_be_bytes(request[4..8].try_into().unwrap()), 40);
            let wait = u32::from_be_bytes(request[12..16].try_into().unwrap());
            let class = mix.class_of(conn, first + r as u64);
            assert_eq!(wait, [0, 1000][class]);
        }
        let mut piece = Vec::new();
        mix.fill(conn, first, start, 37, 50, &mut piece);
        assert_eq!(piece, whole[37..87]);
        assert!(mix.matches(conn, first, start, 37, &whole[37..300]));
        assert!(
            !mix.matches(conn, first + 1, start, 0, &whole[..80]) || {
                // Both requests of the other numbering may fall in the same classes.
                (0..2).all(|r| mix.class_of(conn, first + r) == mix.class_of(conn, first + 1 + r))
            }
        );
        let mut bad = whole.clone();
        bad[41] ^= 1;
        assert!(!mix.matches(conn, first, start, 0, &bad));
    }
}
