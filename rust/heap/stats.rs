//! The heap's statistics: what is allocated, in use, resident and mapped.
//!
//! Nothing is counted on the fast paths. What they change, a page's `used`
//! count, is the owner's to write (a relaxed load and store: plain moves)
//! and any thread's to read, so a reader walks every small segment
//! (`segment::for_each_small`) and sums the pages. Blocks freed by other threads count
//! in their page until its owner collects them, so two per-thread counters
//! settle the difference, both on slow paths: blocks a thread freed into
//! others' pages (after the CAS it makes anyway) and blocks it collected.
//! A thread's counters are folded into `counters::RETIRED` when it exits,
//! and remote frees by threads without a record go to
//! `counters::STRAY_FREES`.
//! Large blocks and resident bytes change per mapping or per 64 KiB page:
//! process-wide atomics.
//!
//! This module only reads: the lists it walks belong to `segment.rs`
//! (every small segment) and `thread.rs` (every thread record), the
//! counters to `counters.rs`.
//!
//! # Invariants
//! - The segment list holds every small segment; a segment leaves it
//!   (under its lock) before it is unmapped, so the walk only reads mapped
//!   headers, and only their atomic fields.
//! - The record list holds every thread record ever made (records are
//!   reused, never unmapped); the fold of an exiting thread's counters is
//!   under its lock, so a reader never counts a thread twice or not at all.

use core::sync::atomic::Ordering;

use super::counters::{LARGE_BYTES, LARGE_LIVE, RESIDENT};
use super::segment::{self, PAGE_SIZE, SMALL_CLASSES, Segment};
use super::thread;
use crate::classes::class_size;

/// A snapshot of the heap, in the spirit of jemalloc's `stats.*`.
///
/// Telling a leak from fragmentation: sample the stats over time.
/// - `allocated` keeps growing under a steady load: blocks are not freed
///   (a leak, or a cache without a bound). The size class whose `live`
///   count grows in [`Heap::class_stats`](super::Heap::class_stats) says
///   which allocation site to look at.
/// - `allocated` is steady but `active` is far above it: fragmentation,
///   pages kept alive by a few live blocks each.
/// - `resident` far above `active`: free pages not handed back yet. They
///   go after a second of disuse (while the thread keeps allocating) or at
///   once with [`Heap::purge`](super::Heap::purge); a [memory
///   limit](super::HeapLimits) purges too.
/// - `retained` (`mapped - resident`) is address space only: it costs no
///   memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct HeapStats {
    /// Bytes in live blocks, each counted at its size class's size (small
    /// blocks), its whole 64 KiB pages (medium blocks, 32 to 512 KiB), or
    /// its page-rounded size (large blocks).
    pub allocated: usize,
    /// Bytes of the pages that hold live blocks: 64 KiB per small page with
    /// a live block, plus the large blocks. At least `allocated` while no
    /// other thread is allocating (a snapshot reads the pages one by one).
    pub active: usize,
    /// Bytes the heap has touched and not handed back to the OS: pages in
    /// use, free pages not purged yet, large blocks and the cache of freed
    /// ones, and metadata. Counted per 64 KiB page, so an upper bound of the
    /// heap's resident memory.
    pub resident: usize,
    /// Bytes mapped from the OS and not yet unmapped (segments, large
    /// blocks and their room to grow, thread records, and the 8 MiB map of
    /// segment regions, touched only where bits are set).
    pub mapped: usize,
    /// Mapped but not resident: address space kept for reuse.
    pub retained: usize,
}

/// Counts for one size class of [`Heap`](super::Heap) (from
/// [`Heap::class_stats`](super::Heap::class_stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct HeapClassStats {
    /// The class's block size; for the last entry (medium and large
    /// blocks), 0.
    pub size: usize,
    /// Blocks of the class live now.
    pub live: usize,
    /// Bytes of the pages holding the class's live blocks (64 KiB each; for
    /// medium and large blocks, what `allocated` counts them at). Far above
    /// `live * size`: the class is fragmented.
    pub active: usize,
}

/// The heap's totals and the classes in use, in one value, from
/// [`Heap::report`](super::Heap::report). With the `serde` feature it
/// serializes flat: the fields of [`HeapStats`], then `classes`, as
/// `MEMRES_STATS=json` prints it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct HeapReport {
    /// The totals, as [`Heap::stats`](super::Heap::stats) gives them.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub totals: HeapStats,
    /// The entries of [`Heap::class_stats`](super::Heap::class_stats) with
    /// a live block or an active page, smallest class first (the medium and
    /// large blocks last, as size 0).
    pub classes: Vec<HeapClassStats>,
}

/// Entries of [`Heap::class_stats`](super::Heap::class_stats): one per
/// small size class, and one for the medium and large blocks last.
pub const HEAP_CLASS_COUNT: usize = SMALL_CLASSES + 1;

/// Per-class counts (see [`HEAP_CLASS_COUNT`]).
pub(super) fn class_stats() -> [HeapClassStats; HEAP_CLASS_COUNT] {
    let mut stats = [HeapClassStats::default(); HEAP_CLASS_COUNT];
    // Blocks counted in their pages, and pages with blocks.
    let mut in_pages = [(0usize, 0usize); SMALL_CLASSES];
    segment::for_each_small(|seg| {
        for page in Segment::pages(seg) {
            // SAFETY: a listed segment is mapped while `for_each_small`
            // holds the list (see there); only atomic fields are read.
            let used = unsafe { (*page).used.load(Ordering::Relaxed) } as usize;
            if used > 0 {
                // SAFETY: as above.
                let class = unsafe { (*page).class.load(Ordering::Relaxed) } as usize;
                if let Some(slot) = in_pages.get_mut(class) {
                    slot.0 += used;
                    slot.1 += 1;
                }
            }
        }
    });
    // Remote frees not collected yet: freed, but still in their pages.
    let mut remote = [(0usize, 0usize); SMALL_CLASSES];
    thread::sum_remote(&mut remote);
    for class in 0..SMALL_CLASSES {
        let (used, pages) = in_pages[class];
        let (frees, back) = remote[class];
        // In flight = freed remotely - collected; a snapshot taken while
        // threads run may see a free before the allocation it undoes.
        let in_flight = frees.wrapping_sub(back) as isize;
        let live = (used as isize).saturating_sub(in_flight).max(0) as usize;
        stats[class] = HeapClassStats { size: class_size(class), live, active: pages * PAGE_SIZE };
    }
    stats[SMALL_CLASSES] = HeapClassStats {
        size: 0,
        live: LARGE_LIVE.load(Ordering::Relaxed),
        active: LARGE_BYTES.load(Ordering::Relaxed),
    };
    stats
}

/// The totals.
pub(super) fn stats() -> HeapStats {
    let classes = class_stats();
    let allocated =
        classes[..SMALL_CLASSES].iter().map(|c| c.live * c.size).sum::<usize>() + LARGE_BYTES.load(Ordering::Relaxed);
    let active = classes.iter().map(|c| c.active).sum();
    let mapped = crate::os::MAPPED.load(Ordering::Relaxed);
    let resident = RESIDENT.load(Ordering::Relaxed).min(mapped);
    HeapStats { allocated, active, resident, mapped, retained: mapped - resident }
}
