//! Test support shared by the tests of every echobench crate; a dev-dependency only.
//!
//! [`modgraph`] reads a crate's modules and the modules each one imports, so that every crate
//! can assert in one unit test that its modules import one way (no circle). [`faultproxy`] is a
//! TCP proxy that slices, stalls, resets and back-pressures, and [`netns`] a network namespace
//! with real packet loss and a rate limit, for tests of echo through a network that misbehaves;
//! [`lab`] the hosts lab of `scripts/netns-lab.sh`.
//! [`spawn_listening`] starts a server and waits for its `listening on` line; [`Rng`] is the
//! one seeded generator. [`wait_until`] polls for what no event announces; [`required`] reads
//! `ECHOBENCH_REQUIRE`; [`io_uring_allowed`] whether the kernel lets tests run the io-uring
//! models.

use std::time::{Duration, Instant};

pub use loadgen::rng::Rng;

pub mod faultproxy;
pub mod lab;
pub mod modgraph;
pub mod netns;
pub mod spawn;

pub use spawn::{spawn_listening, Listening};

/// Whether the kernel allows io_uring to every process (`kernel.io_uring_disabled` is 0, or 1
/// and we are root). Where it does not, the io-uring models' only duty is to say so and exit 1,
/// which the servers' own tests check instead.
pub fn io_uring_allowed() -> bool {
    match std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        Ok(v) => match v.trim() {
            "0" => true,
            "1" => nix::unistd::geteuid().is_root(),
            _ => false,
        },
        // Older kernels have no switch: io_uring is on.
        Err(_) => true,
    }
}

/// A test that needs something this machine may lack (`netns`, `python`) skips with one line
/// where it is missing; this says whether `ECHOBENCH_REQUIRE` (comma-separated) asks that
/// `what` be there, which turns the skip into a failure.
pub fn required(what: &str) -> bool {
    std::env::var("ECHOBENCH_REQUIRE").is_ok_and(|v| v.split(',').any(|r| r.trim() == what))
}

/// `test` cannot have `what` (`netns`, `python`) here, because of `why`: prints the one-line
/// skip, or fails the test where `ECHOBENCH_REQUIRE` asks for `what`.
pub fn skip(test: &str, what: &str, why: &str) {
    assert!(
        !required(what),
        "{test}: ECHOBENCH_REQUIRE={what}, but {why}"
    );
    eprintln!("skipped {test}: {why}");
}

/// Polls `probe` every few milliseconds until it returns `Some`, for at most `limit`. For
/// conditions that no event announces (a process exiting, a thread count settling, a server
/// reading its last FIN).
pub fn wait_until<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
