//! The `--max-conns` cap, shared by the threads or tasks that serve connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A count of live connections with a cap, shared by the threads or tasks that serve them.
#[derive(Clone)]
pub struct ConnLimit {
    live: Arc<AtomicUsize>,
    max: usize,
}

/// Holds one slot of a [`ConnLimit`]; the slot is freed when this is dropped.
pub struct ConnSlot(Arc<AtomicUsize>);

impl ConnLimit {
    /// A limit of `max` connections at once.
    pub fn new(max: usize) -> ConnLimit {
        ConnLimit {
            live: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Takes a slot, or `None` when `max` connections are already being served.
    pub fn try_acquire(&self) -> Option<ConnSlot> {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnSlot(Arc::clone(&self.live)))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
