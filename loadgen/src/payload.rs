//! Payload bytes that are not constant, and the check of every echoed byte against them.
//!
//! Each connection's byte stream is a window onto one fixed pseudo-random pattern, starting at
//! an offset chosen by the connection's index: byte `o` of connection `c`'s stream is
//! `PATTERN[(start(c) + o) % PERIOD]`. A lost, duplicated, reordered or foreign byte shows as a
//! mismatch, and neither sending nor checking costs more than a slice of a static table.

use std::sync::OnceLock;

use crate::rng::Rng;

/// Length of the pattern's period: a prime, so message boundaries of any size drift through it.
pub const PERIOD: usize = 65_537;

/// The pattern twice over, so that any window of up to `PERIOD` bytes is one contiguous slice.
fn pattern() -> &'static [u8] {
    static PATTERN: OnceLock<Vec<u8>> = OnceLock::new();
    PATTERN.get_or_init(|| Rng::new(0x853c_49e6_748f_ea9b).bytes(PERIOD).repeat(2))
}

/// Where connection `index`'s stream starts in the pattern.
pub fn stream_start(index: usize) -> u64 {
    (index as u64).wrapping_mul(7_919) % PERIOD as u64
}

/// Up to `len` bytes of the stream at absolute stream position `pos` (start included), as one
/// slice; shorter than `len` only when `len` exceeds `PERIOD`.
pub fn window(pos: u64, len: usize) -> &'static [u8] {
    let at = (pos % PERIOD as u64) as usize;
    &pattern()[at..at + len.min(PERIOD)]
}

/// Whether `received` is exactly the stream's bytes from position `pos` on.
pub fn matches(pos: u64, received: &[u8]) -> bool {
    let mut pos = pos;
    let mut rest = received;
    while !rest.is_empty() {
        let expected = window(pos, rest.len());
        if rest[..expected.len()] != *expected {
            return false;
        }
        pos += expected.len() as u64;
        rest = &rest[expected.len()..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_not_constant_and_windows_wrap_around_the_period() {
        let w = window(0, 256);
        assert!(w.iter().any(|&b| b != w[0]));
        let across = window(PERIOD as u64 - 10, 20);
        assert_eq!(&across[..10], window(PERIOD as u64 - 10, 10));
        assert_eq!(&across[10..], window(0, 10));
    }

    #[test]
    fn a_shifted_or_corrupted_echo_does_not_match() {
        let pos = stream_start(3) + 1000;
        let good = window(pos, 64).to_vec();
        assert!(matches(pos, &good));
        assert!(!matches(pos + 1, &good));
        let mut bad = good.clone();
        bad[17] ^= 1;
        assert!(!matches(pos, &bad));
        assert_ne!(window(stream_start(1), 64), window(stream_start(2), 64));
    }

    #[test]
    fn matches_checks_echoes_longer_than_one_period() {
        let long: Vec<u8> = (0..3 * PERIOD as u64)
            .map(|i| window(5 + i, 1)[0])
            .collect();
        assert!(matches(5, &long));
        assert!(!matches(6, &long));
    }
}
