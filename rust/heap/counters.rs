//! The heap's process-wide counters, kept on slow paths only (see
//! `stats.rs` for how they are read). A leaf: it names no other heap module
//! but the geometry.

use core::sync::atomic::{AtomicUsize, Ordering};

use super::geometry::SMALL_CLASSES;

/// A counter written by one thread at a time and read by any.
pub(super) struct Counter(AtomicUsize);

impl Counter {
    pub(super) const fn new() -> Self {
        Counter(AtomicUsize::new(0))
    }

    /// Adds `n`. Only the counter's writer calls this (its thread, or the
    /// holder of the lock that guards its record), so a load and a store
    /// suffice.
    #[inline]
    pub(super) fn add(&self, n: usize) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bytes the heap has touched and not handed back (see `HeapStats::resident`).
pub(super) static RESIDENT: AtomicUsize = AtomicUsize::new(0);
/// Live large blocks, and their bytes.
pub(super) static LARGE_LIVE: AtomicUsize = AtomicUsize::new(0);
pub(super) static LARGE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Remote frees and collected blocks of exited threads, per class.
pub(super) static RETIRED: [(AtomicUsize, AtomicUsize); SMALL_CLASSES] =
    [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; SMALL_CLASSES];
/// Remote frees by threads that had no record (before their first
/// allocation, or after their thread-locals were destroyed), per class.
pub(super) static STRAY_FREES: [AtomicUsize; SMALL_CLASSES] = [const { AtomicUsize::new(0) }; SMALL_CLASSES];

/// Adds `bytes` to a process-wide counter.
#[inline]
pub(super) fn add(counter: &AtomicUsize, bytes: usize) {
    counter.fetch_add(bytes, Ordering::Relaxed);
}

/// Takes `bytes` from a process-wide counter.
#[inline]
pub(super) fn sub(counter: &AtomicUsize, bytes: usize) {
    counter.fetch_sub(bytes, Ordering::Relaxed);
}
