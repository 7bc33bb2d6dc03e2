//! The heap's statistics: what is allocated, in use, resident and mapped.
//!
//! Nothing is counted on the fast paths. What they change, a page's `used`
//! count, is the owner's to write (a relaxed load and store: plain moves)
//! and any thread's to read, so a reader walks every small segment
//! ([`SEGMENTS`]) and sums the pages. Blocks freed by other threads count
//! in their page until its owner collects them, so two per-thread counters
//! settle the difference, both on slow paths: blocks a thread freed into
//! others' pages (after the CAS it makes anyway) and blocks it collected.
//! A thread's counters are folded into [`RETIRED`] when it exits, and
//! remote frees by threads without a record go to [`STRAY_FREES`].
//! Large blocks and resident bytes change per mapping or per 64 KiB page:
//! process-wide atomics.
//!
//! # Invariants
//! - [`SEGMENTS`] lists every small segment; a segment leaves it (under its
//!   lock) before it is unmapped, so the walk only reads mapped headers,
//!   and only their atomic fields.
//! - [`RECORDS`] lists every thread record ever made (records are reused,
//!   never unmapped); the fold of an exiting thread's counters is under its
//!   lock, so a reader never counts a thread twice or not at all.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::segment::{PAGE_SIZE, PAGES, Page, SMALL_CLASSES, Segment};
use super::thread::ThreadHeap;
use crate::classes::class_size;

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

/// Bytes the heap has touched and not handed back (see [`HeapStats::resident`]).
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

/// Every thread record, linked through `ThreadHeap::next_record`.
pub(super) struct Records(pub(super) *mut ThreadHeap);
// SAFETY: the records are plain memory that lives for the whole process.
unsafe impl Send for Records {}
pub(super) static RECORDS: Mutex<Records> = Mutex::new(Records(ptr::null_mut()));

pub(super) fn records() -> MutexGuard<'static, Records> {
    RECORDS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every small segment, linked through `Segment::all_next`/`all_prev`.
struct Segments(*mut Segment);
// SAFETY: as for `Records`; the links are only touched under the lock.
unsafe impl Send for Segments {}
static SEGMENTS: Mutex<Segments> = Mutex::new(Segments(ptr::null_mut()));

fn segments() -> MutexGuard<'static, Segments> {
    SEGMENTS.lock().unwrap_or_else(PoisonError::into_inner)
}

type Held = (MutexGuard<'static, Records>, MutexGuard<'static, Segments>);
static FORK: super::fork::ForkSlot<Held> = super::fork::ForkSlot::new();

/// Holds the lists' locks across a `fork()` (see `fork.rs`): the records,
/// then the segments (innermost of all the heap's locks).
pub(super) fn fork_hold() {
    let records = records();
    FORK.hold((records, segments()));
}

pub(super) fn fork_release() {
    FORK.release();
}

/// Lists a new small segment.
///
/// # Safety
/// `seg` is a small segment not listed yet.
pub(super) unsafe fn list_segment(seg: *mut Segment) {
    let mut all = segments();
    // SAFETY: the links are ours under the lock.
    unsafe {
        (*seg).all_prev = ptr::null_mut();
        (*seg).all_next = all.0;
        if !all.0.is_null() {
            (*all.0).all_prev = seg;
        }
    }
    all.0 = seg;
}

/// Takes a small segment off the list, before it is unmapped.
///
/// # Safety
/// `seg` is a listed small segment.
pub(super) unsafe fn unlist_segment(seg: *mut Segment) {
    let mut all = segments();
    // SAFETY: the links are ours under the lock.
    unsafe {
        let (prev, next) = ((*seg).all_prev, (*seg).all_next);
        if prev.is_null() {
            all.0 = next;
        } else {
            (*prev).all_next = next;
        }
        if !next.is_null() {
            (*next).all_prev = prev;
        }
    }
}

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
#[non_exhaustive]
pub struct HeapStats {
    /// Bytes in live blocks, each counted at its size class's size (small
    /// blocks) or page-rounded size (large blocks).
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
#[non_exhaustive]
pub struct HeapClassStats {
    /// The class's block size; for the last entry (large blocks), 0.
    pub size: usize,
    /// Blocks of the class live now.
    pub live: usize,
    /// Bytes of the pages holding the class's live blocks (64 KiB each; for
    /// large blocks, their page-rounded sizes). Far above `live * size`:
    /// the class is fragmented.
    pub active: usize,
}

/// Entries of [`Heap::class_stats`](super::Heap::class_stats): one per
/// small size class, and one for the large blocks last.
pub const HEAP_CLASS_COUNT: usize = SMALL_CLASSES + 1;

/// Per-class counts (see [`HEAP_CLASS_COUNT`]).
pub(super) fn class_stats() -> [HeapClassStats; HEAP_CLASS_COUNT] {
    let mut stats = [HeapClassStats::default(); HEAP_CLASS_COUNT];
    // Blocks counted in their pages, and pages with blocks.
    let mut in_pages = [(0usize, 0usize); SMALL_CLASSES];
    {
        let all = segments();
        let mut seg = all.0;
        while !seg.is_null() {
            for index in 1..PAGES {
                // SAFETY: a listed segment is mapped until it is unlisted,
                // which waits for this lock; only atomic fields are read.
                let page = unsafe { (&raw const (*seg).pages).cast::<Page>().add(index) };
                // SAFETY: as above.
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
            // SAFETY: as above; the link changes only under the lock.
            seg = unsafe { (*seg).all_next };
        }
    }
    // Remote frees not collected yet: freed, but still in their pages. The
    // exited threads' totals are read under the records' lock, as an
    // exiting thread moves its counts there under it: seen once, either way.
    let mut remote = [(0usize, 0usize); SMALL_CLASSES];
    {
        let records = records();
        for (class, (frees, back)) in remote.iter_mut().enumerate() {
            *frees = RETIRED[class].0.load(Ordering::Relaxed).wrapping_add(STRAY_FREES[class].load(Ordering::Relaxed));
            *back = RETIRED[class].1.load(Ordering::Relaxed);
        }
        let mut record = records.0;
        while !record.is_null() {
            // SAFETY: records live for the whole process; their counters
            // are atomics, and `next_record` does not change once listed.
            unsafe {
                ThreadHeap::add_counts(record, &mut remote);
                record = ThreadHeap::next_record(record);
            }
        }
    }
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
