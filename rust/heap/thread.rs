//! Thread heaps: each thread's page queues, found through a thread-local.
//!
//! A thread's first allocation takes a [`ThreadHeap`] record (reused from
//! threads that exited, or mapped from the OS: never from the global
//! allocator) and registers a thread-local destructor. When the thread
//! exits, its segments are *abandoned*: their owner is cleared and they go
//! to a global list, with whatever blocks are still live in them, and the
//! next thread that needs a page adopts one. Until then, frees into them
//! (from any thread) are atomic pushes, like every free from a thread that
//! does not own the segment. After its thread-locals are gone a thread
//! allocates from the *orphan* heap, one shared heap behind a lock.
//!
//! `LOCAL` always points at a valid record: [`EMPTY`] (no pages; owns no
//! segment) before the first allocation and after the thread's teardown,
//! so the fast paths need no null check: an allocation finds no page and
//! takes the slow path, a free finds that its segment is not `EMPTY`'s.
//!
//! # Invariants
//! - `EMPTY` is never written: its queues are empty and its `owned_hint`
//!   is [`NO_HINT`], and every slow path checks for it first.
//! - A record's queues hold only pages in use of segments on its
//!   `segments` list (whose `owner` is the record), each page in one queue
//!   at most, and each queue's `len` is its number of pages.
//! - `spare` is an empty segment owned by the record and not on its list;
//!   `owned_hint` and each entry of `owned` are [`NO_HINT`] or the header
//!   address of a segment on its list (cleared before a segment leaves the
//!   list); an entry of `owned` names only a segment whose address maps to
//!   it (see [`owned_way`]).
//! - Records are never unmapped: an exiting thread's record is reset and
//!   goes to `UNUSED`; the orphan heap's record is used only under
//!   `ORPHAN`'s lock.
//! - Segments on `ABANDONED` have no owner and are touched only under its
//!   lock (an adopter takes one off first); segments in `IDLE` hold no
//!   block. Locks nest in the order given in `heap/mod.rs`.

use core::cell::{Cell, UnsafeCell};
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};

use std::time::{Duration, Instant};

use super::counters::{self, Counter, LARGE_BYTES, LARGE_LIVE, RESIDENT, RETIRED, STRAY_FREES};
use super::fork::ForkSlot;
use super::guard::{self, Misuse};
use super::limit::{self, Short};
use super::segment::Owner;
use super::segment::{Block, PAGE_SIZE, Page, SMALL_CLASSES, SPAN_HEAD, SPAN_TAIL, Segment};
use crate::os;

/// A queue of the pages of one class; the head is where allocation looks.
/// `#[repr(C)]` for foreign fast paths (see `Heap::fast_path`).
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct Queue {
    head: *mut Page,
    tail: *mut Page,
    len: usize,
}

/// One thread's heap: a page queue per class and the segments it owns.
#[repr(C)]
pub(crate) struct ThreadHeap {
    queues: [Queue; SMALL_CLASSES],
    /// Per class: blocks this thread freed into pages it does not own, and
    /// blocks it collected from its pages' remote lists, since the record
    /// was last folded into the totals (see `stats.rs`).
    remote_frees: [Counter; SMALL_CLASSES],
    collected: [Counter; SMALL_CLASSES],
    /// Small segments this heap owns (linked through `Segment::next`).
    segments: *mut Segment,
    /// One empty segment kept for reuse instead of a map/unmap pair.
    spare: *mut Segment,
    /// The spare was already spare at the last decay pass.
    spare_stale: bool,
    /// Slow-path events (refills, retired pages), to pace the decay passes.
    events: u32,
    /// When the next decay pass is due.
    next_pass: Option<Instant>,
    /// The last purge request (`limit::PURGE_REQUESTS`) this heap served.
    purge_seen: usize,
    /// The registry's list of unused records.
    next_unused: *mut ThreadHeap,
    /// The list of every record ([`RECORDS`]); set once, when made.
    next_record: *mut ThreadHeap,
    /// A small segment on this heap's list, where it last freed a block
    /// ([`NO_HINT`]: none), with its mapping's provenance. Set only by a
    /// free into a page in use, and cleared before the segment leaves the
    /// list (`segment_emptied`; `abandon` resets the record), so a free that
    /// finds its block's header here may skip the segment map and the owner
    /// check.
    owned_hint: *mut Segment,
    /// More segments of this heap's list, direct-mapped by address
    /// ([`owned_way`]; [`NO_HINT`]: none), set and cleared with
    /// `owned_hint`: a free the hint misses looks here before the segment
    /// map (a thread whose live blocks span a few segments frees into all of
    /// them in turn). Never set in secure mode (whose frees never set the
    /// hint either).
    owned: [*mut Segment; OWNED_WAYS],
    /// The double-free mark's key (`guard::mark(0)`), copied here when the
    /// record is made so the fast paths read it beside the record's other
    /// fields rather than through the global's address (0 in `EMPTY`,
    /// whose queues are empty and which frees nothing locally).
    mark: usize,
    /// Bytes this thread may still take from its pages' lists before the
    /// profiler's next sample (see `crate::profile`): the inline paths
    /// count each block they pop down from it, and step aside for the slow
    /// path when it goes below zero, without popping. While the profiler is
    /// off it runs down from `profile::LOOK_EVERY`, and the slow path then
    /// only looks whether the profiler has been started. Only the owner
    /// touches it (never in `EMPTY`, whose queues have no page).
    sample_left: isize,
}

/// Where a record's `sample_left` lies (for C++'s inline path).
pub(super) const SAMPLE_LEFT_OFFSET: usize = core::mem::offset_of!(ThreadHeap, sample_left);

/// `owned_hint` when it names no segment: not a multiple of the segment
/// size, so no pointer's segment address equals it (0 would: a wild
/// pointer below 4 MiB would be taken for a block of a segment at 0).
pub(super) const NO_HINT: *mut Segment = ptr::without_provenance_mut(1);

/// Entries of a record's `owned` segments.
const OWNED_WAYS: usize = 8;

/// The entry of `owned` that may name the segment holding `addr` (the
/// segment's address bits just above the offset within it).
#[inline(always)]
fn owned_way(addr: usize) -> usize {
    (addr / super::segment::SEGMENT_SIZE) % OWNED_WAYS
}

// Foreign fast paths find the queues at the start of the record.
const _: () = assert!(core::mem::offset_of!(ThreadHeap, queues) == 0 && core::mem::offset_of!(Queue, head) == 0);

/// How long a free page stays resident unused (between one and two of
/// these, at the thread's next slow path) before it is purged.
const DECAY: Duration = Duration::from_secs(1);
/// Free pages a thread keeps resident at most; past it they are purged at
/// once (checked every [`PACE`] slow-path events).
const THREAD_CACHE_CAP: usize = 16 << 20;
/// Slow-path events between looks at the clock and the cache size.
const PACE: u32 = 32;

/// The record of a thread without a heap (see the module doc).
/// Transparent: its address is the record's (the initial-exec slot below
/// starts out holding it).
#[repr(transparent)]
struct Empty(UnsafeCell<ThreadHeap>);
// SAFETY: nothing ever writes to `EMPTY`: its queues are empty, so no fast
// path writes through it, and slow paths check for it first.
unsafe impl Sync for Empty {}
static EMPTY: Empty = Empty(UnsafeCell::new(ThreadHeap::new()));

fn empty() -> *mut ThreadHeap {
    EMPTY.0.get()
}

std::thread_local! {
    /// 0: no heap yet; 1: a heap; 2: torn down.
    static STATE: Cell<u8> = const { Cell::new(0) };
    /// Dropped at thread exit: abandons the heap.
    static EXIT: Exit = const { Exit };
    /// When secure mode samples allocations, this thread's record (see
    /// [`set_local`]).
    static SECURE_RECORD: Cell<*mut ThreadHeap> = const { Cell::new(EMPTY.0.get()) };
}

/// The thread's heap record for the fast paths (`EMPTY` if it has none).
#[inline(always)]
pub(super) fn local() -> *mut ThreadHeap {
    slot::get()
}

/// Makes `heap` this thread's record (`empty()` for none). When secure
/// mode samples allocations, the fast paths' slot keeps `EMPTY`, so every
/// allocation and free takes a slow path where secure mode's work is done
/// (`secure.rs`); the record itself is in `SECURE_RECORD`, for [`current`].
fn set_local(heap: *mut ThreadHeap) {
    if super::secure::divert_allocations() {
        SECURE_RECORD.with(|r| r.set(heap));
    } else {
        slot::set(heap);
    }
}

/// The thread's record for the slow paths, taken now if the thread has
/// none yet (a thread that only frees), so that its exit runs: `EMPTY` only
/// once its thread-locals are gone, or if no record can be had. Keeps
/// `errno` (a C `free` may be the caller).
pub(super) fn current_or_attach() -> *mut ThreadHeap {
    let heap = current();
    if heap != empty() || STATE.with(Cell::get) != 0 {
        return heap;
    }
    let saved = os::errno();
    let heap = attach().unwrap_or(empty());
    os::set_errno(saved);
    heap
}

/// Whether `heap` is the record of a thread without one.
pub(super) fn is_empty(heap: *mut ThreadHeap) -> bool {
    heap == empty()
}

/// The thread's record for the slow paths: the fast paths' [`local`], or
/// when secure mode samples allocations the record that slot does not show
/// (`EMPTY` if none).
pub(super) fn current() -> *mut ThreadHeap {
    if super::secure::divert_allocations() { SECURE_RECORD.with(Cell::get) } else { local() }
}

/// Where this thread keeps its record pointer: valid, and always pointing
/// at a valid record, until the thread ends (the slot has no destructor).
pub(super) fn local_slot() -> *mut *mut ThreadHeap {
    slot::address()
}

/// `LOCAL`, the thread's record pointer: a plain `thread_local!`, or with
/// the `initial-exec-tls` feature on x86-64 Linux, a slot of the
/// initial-exec TLS model. In a shared object (`libmemres_malloc.so`) the
/// default model reaches a thread-local through a call to `__tls_get_addr`
/// on every malloc and free; initial-exec reads it at a fixed offset from
/// the thread pointer (`fs`), as glibc's own malloc reads its tcache. The
/// price is 8 bytes of the static TLS that glibc reserves for libraries
/// loaded with initial-exec variables, so such an object may fail to
/// `dlopen` late in a process that has used that reserve up; preloaded or
/// linked at start-up, it always loads. Executables get the fast model from
/// the linker anyway.
#[cfg(not(all(feature = "initial-exec-tls", target_os = "linux", target_arch = "x86_64", not(miri))))]
mod slot {
    use super::{Cell, EMPTY, ThreadHeap};

    std::thread_local! {
        /// This thread's heap (or `EMPTY`).
        static LOCAL: Cell<*mut ThreadHeap> = const { Cell::new(EMPTY.0.get()) };
    }

    #[inline(always)]
    pub(super) fn get() -> *mut ThreadHeap {
        LOCAL.with(Cell::get)
    }

    pub(super) fn set(heap: *mut ThreadHeap) {
        LOCAL.with(|l| l.set(heap));
    }

    pub(super) fn address() -> *mut *mut ThreadHeap {
        LOCAL.with(Cell::as_ptr)
    }
}

#[cfg(all(feature = "initial-exec-tls", target_os = "linux", target_arch = "x86_64", not(miri)))]
mod slot {
    use super::{EMPTY, ThreadHeap};
    use core::arch::{asm, global_asm};

    // One pointer in the TLS initialization image (`.tdata`), starting out
    // as `EMPTY`'s address (the dynamic linker relocates the image before
    // it copies it for any thread). Global so every codegen unit of the
    // crate reaches it, hidden so it stays out of the dynamic symbol table.
    global_asm!(
        ".pushsection .tdata,\"awT\",@progbits",
        ".p2align 3",
        ".globl memres_heap_local_record",
        ".hidden memres_heap_local_record",
        ".type memres_heap_local_record, @object",
        ".size memres_heap_local_record, 8",
        "memres_heap_local_record:",
        ".quad {empty}",
        ".popsection",
        empty = sym EMPTY,
    );

    /// The slot's offset from the thread pointer, from the GOT entry the
    /// linker fills (`R_X86_64_TPOFF64`).
    #[inline(always)]
    fn offset() -> isize {
        let offset: isize;
        // SAFETY: reads the GOT entry of the slot above, which holds the
        // slot's (constant) offset from the thread pointer.
        unsafe {
            asm!(
                "mov {o}, qword ptr [rip + memres_heap_local_record@GOTTPOFF]",
                o = out(reg) offset,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        offset
    }

    #[inline(always)]
    pub(super) fn get() -> *mut ThreadHeap {
        let heap: *mut ThreadHeap;
        // SAFETY: `fs:[offset]` is this thread's slot, always a valid
        // pointer (EMPTY's address until `set`).
        unsafe {
            asm!(
                "mov {h}, qword ptr fs:[{o}]",
                h = out(reg) heap,
                o = in(reg) offset(),
                options(nostack, readonly, preserves_flags),
            );
        }
        heap
    }

    pub(super) fn set(heap: *mut ThreadHeap) {
        // SAFETY: writes this thread's slot (see `get`).
        unsafe {
            asm!(
                "mov qword ptr fs:[{o}], {h}",
                h = in(reg) heap,
                o = in(reg) offset(),
                options(nostack, preserves_flags),
            );
        }
    }

    pub(super) fn address() -> *mut *mut ThreadHeap {
        let base: usize;
        // SAFETY: `fs:[0]` holds the thread pointer itself (the x86-64 TLS
        // ABI), from which the slot lies at `offset()`.
        unsafe {
            asm!(
                "mov {b}, qword ptr fs:[0]",
                b = out(reg) base,
                options(nostack, readonly, preserves_flags),
            );
        }
        core::ptr::with_exposed_provenance_mut(base.wrapping_add_signed(offset()))
    }
}

/// The owner address of `heap`, as segments record it.
#[inline(always)]
pub(super) fn as_owner(heap: *mut ThreadHeap) -> *mut Owner {
    heap.cast()
}

/// Every thread record ever made, linked through `next_record`.
struct Records(*mut ThreadHeap);
// SAFETY: the records are plain memory that lives for the whole process.
unsafe impl Send for Records {}
static RECORDS: Mutex<Records> = Mutex::new(Records(ptr::null_mut()));

fn records() -> std::sync::MutexGuard<'static, Records> {
    RECORDS.lock().unwrap_or_else(PoisonError::into_inner)
}

static FORK_RECORDS: ForkSlot<std::sync::MutexGuard<'static, Records>> = ForkSlot::new();

/// Holds the records list's lock across a `fork()` (after the limit's, before
/// the segment list's; see `fork.rs`).
pub(super) fn fork_hold_records() {
    FORK_RECORDS.hold(records());
}

pub(super) fn fork_release_records() {
    FORK_RECORDS.release();
}

/// Adds to `remote` (per class: blocks freed into pages their freer did
/// not own, and such blocks collected by the owners) the counts of every
/// record and of the exited threads. Under the records' lock, as an exiting
/// thread folds its counts into the totals under it: each seen once.
pub(super) fn sum_remote(remote: &mut [(usize, usize); SMALL_CLASSES]) {
    let records = records();
    for (class, (frees, back)) in remote.iter_mut().enumerate() {
        *frees = frees
            .wrapping_add(RETIRED[class].0.load(Ordering::Relaxed))
            .wrapping_add(STRAY_FREES[class].load(Ordering::Relaxed));
        *back = back.wrapping_add(RETIRED[class].1.load(Ordering::Relaxed));
    }
    let mut record = records.0;
    while !record.is_null() {
        // SAFETY: records live for the whole process; their counters are
        // atomics, and `next_record` is written once, before listing.
        unsafe {
            ThreadHeap::add_counts(record, remote);
            record = (*record).next_record;
        }
    }
}

/// Collects `page`'s remote frees, counting them in `heap`'s stats.
///
/// # Safety
/// `heap` owns the page and the caller has exclusive use of it.
unsafe fn collect(heap: *mut ThreadHeap, page: *mut Page) {
    // SAFETY: the caller's contract.
    unsafe {
        let n = Segment::collect(page);
        if n > 0 {
            (*heap).collected[(*page).class.load(Ordering::Relaxed) as usize].add(n as usize);
        }
    }
}

/// Records of exited threads, for reuse.
struct Unused(*mut ThreadHeap);
// SAFETY: the records are plain memory handed between threads under the lock.
unsafe impl Send for Unused {}
static UNUSED: Mutex<Unused> = Mutex::new(Unused(ptr::null_mut()));

/// Segments whose thread exited while blocks in them were live.
struct Abandoned(*mut Segment);
// SAFETY: as for `Unused`.
unsafe impl Send for Abandoned {}
static ABANDONED: Mutex<Abandoned> = Mutex::new(Abandoned(ptr::null_mut()));

/// Empty small segments kept for the next thread that needs pages (so
/// short-lived threads do not map and fault in fresh segments each time),
/// newest first. Kept at most [`empty_keep`]; unmapped after [`EMPTY_DECAY`]
/// idle.
struct IdleSegments {
    head: *mut Segment,
    len: usize,
}
// SAFETY: as for `Unused`.
unsafe impl Send for IdleSegments {}
static IDLE: Mutex<IdleSegments> = Mutex::new(IdleSegments { head: ptr::null_mut(), len: 0 });
/// Two empty segments per CPU the process may use (by its container's
/// quota, see `os::cpus`), at least 4 and at most 64.
fn empty_keep() -> usize {
    os::cpus().saturating_mul(2).clamp(4, 64)
}
const EMPTY_DECAY: std::time::Duration = std::time::Duration::from_secs(1);

impl IdleSegments {
    /// Unmaps the segments idle past the decay (all, if `all`); returns the bytes.
    fn expire(&mut self, all: bool) -> usize {
        let now = std::time::Instant::now();
        let mut released = 0;
        let mut link = &raw mut self.head;
        // SAFETY: the list's segments are the cache's own, under its lock.
        unsafe {
            while !(*link).is_null() {
                let seg = *link;
                let old = (*seg).idle_since.is_none_or(|t| now.duration_since(t) >= EMPTY_DECAY);
                if all || old {
                    *link = (*seg).next;
                    self.len -= 1;
                    released += Segment::free(seg);
                } else {
                    link = &raw mut (*seg).next;
                }
            }
        }
        released
    }

    /// Keeps an empty segment, or unmaps it if the cache is full.
    ///
    /// # Safety
    /// `seg` is an empty small segment nobody else holds.
    unsafe fn keep(&mut self, seg: *mut Segment) {
        self.expire(false);
        if self.len >= empty_keep() {
            // SAFETY: the caller's contract: an empty segment nobody else
            // holds, so nothing points into its mapping.
            unsafe { Segment::free(seg) };
            return;
        }
        // SAFETY: as above: its header is ours to write; from here on the
        // cache holds it (under the lock the caller has).
        unsafe {
            (*seg).owner.store(ptr::null_mut(), Ordering::Relaxed);
            (*seg).idle_since = Some(std::time::Instant::now());
            (*seg).next = self.head;
        }
        self.head = seg;
        self.len += 1;
    }

    /// Takes a kept segment for `owner`.
    fn take(&mut self, owner: *mut Owner) -> Option<*mut Segment> {
        self.expire(false);
        let seg = self.head;
        if seg.is_null() {
            return None;
        }
        // SAFETY: ours under the lock; no block lives in it.
        unsafe {
            self.head = (*seg).next;
            (*seg).next = ptr::null_mut();
            (*seg).idle_since = None;
            (*seg).owner.store(owner, Ordering::Relaxed);
        }
        self.len -= 1;
        Some(seg)
    }
}

fn idle() -> std::sync::MutexGuard<'static, IdleSegments> {
    IDLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Unmaps the kept empty segments; returns the bytes.
pub(super) fn purge_idle_segments() -> usize {
    idle().expire(true)
}

/// Hands the free pages of abandoned segments back to the OS; returns the
/// bytes. (Their pages with blocks freed by other threads are collected
/// only when a thread adopts the segment.)
pub(super) fn purge_abandoned() -> usize {
    let abandoned = ABANDONED.lock().unwrap_or_else(PoisonError::into_inner);
    let mut released = 0;
    let mut seg = abandoned.0;
    while !seg.is_null() {
        // SAFETY: a segment on the list has no owner and is only touched
        // under the list's lock (adoption takes it off first).
        unsafe {
            released += Segment::purge_free_pages(seg);
            seg = (*seg).next;
        }
    }
    released
}

/// The heap of threads whose thread-locals are gone.
struct Orphan(*mut ThreadHeap);
// SAFETY: used only under its lock.
unsafe impl Send for Orphan {}
static ORPHAN: Mutex<Orphan> = Mutex::new(Orphan(ptr::null_mut()));

type Held = (
    std::sync::MutexGuard<'static, Orphan>,
    std::sync::MutexGuard<'static, Unused>,
    std::sync::MutexGuard<'static, Abandoned>,
    std::sync::MutexGuard<'static, IdleSegments>,
);
static FORK: ForkSlot<Held> = ForkSlot::new();

/// Holds this module's locks across a `fork()` (see `fork.rs`), outermost
/// first: the orphan heap, the unused records, the abandoned segments, the
/// empty segments.
pub(super) fn fork_hold() {
    let orphan = ORPHAN.lock().unwrap_or_else(PoisonError::into_inner);
    let unused = UNUSED.lock().unwrap_or_else(PoisonError::into_inner);
    let abandoned = ABANDONED.lock().unwrap_or_else(PoisonError::into_inner);
    FORK.hold((orphan, unused, abandoned, idle()));
}

pub(super) fn fork_release() {
    FORK.release();
}

struct Exit;

impl Drop for Exit {
    fn drop(&mut self) {
        // Blocks held back from reuse go back first, while the record is
        // still this thread's.
        flush_quarantine();
        let heap = current();
        set_local(empty());
        STATE.with(|s| s.set(2));
        if heap != empty() {
            // SAFETY: the record was this thread's, and the thread is done
            // with it (LOCAL no longer names it).
            unsafe { abandon(heap) };
        }
    }
}

impl ThreadHeap {
    const fn new() -> Self {
        ThreadHeap {
            queues: [Queue { head: ptr::null_mut(), tail: ptr::null_mut(), len: 0 }; SMALL_CLASSES],
            remote_frees: [const { Counter::new() }; SMALL_CLASSES],
            collected: [const { Counter::new() }; SMALL_CLASSES],
            segments: ptr::null_mut(),
            spare: ptr::null_mut(),
            spare_stale: false,
            events: 0,
            next_pass: None,
            purge_seen: 0,
            next_unused: ptr::null_mut(),
            next_record: ptr::null_mut(),
            owned_hint: NO_HINT,
            owned: [NO_HINT; OWNED_WAYS],
            mark: 0,
            sample_left: 0,
        }
    }

    /// Sets the bytes to the next sample (`profile::countdown`).
    ///
    /// # Safety
    /// `heap` is this thread's record (not `EMPTY`).
    pub(super) unsafe fn arm_sampling(heap: *mut ThreadHeap, interval: usize) {
        // SAFETY: the caller's contract: the owner's field.
        unsafe { (*heap).sample_left = crate::profile::countdown(interval) };
    }

    /// The slow path's share of the count: counts `size` bytes if the
    /// inline path did not (it counts only blocks it pops, so a count below
    /// zero is one it ran out), and says whether the count has run out.
    ///
    /// # Safety
    /// `heap` is this thread's record (not `EMPTY`).
    pub(super) unsafe fn sample_due(heap: *mut ThreadHeap, size: usize) -> bool {
        // SAFETY: the caller's contract: the owner's field.
        unsafe {
            if (*heap).sample_left >= 0 {
                (*heap).sample_left = (*heap).sample_left.wrapping_sub(size as isize);
            }
            (*heap).sample_left < 0
        }
    }

    /// See the `owned_hint` field.
    ///
    /// # Safety
    /// `heap` is this thread's record (or `EMPTY`, whose hint is `NO_HINT`).
    #[inline(always)]
    pub(super) unsafe fn owned_hint(heap: *mut ThreadHeap) -> *mut Segment {
        // SAFETY: the caller's contract.
        unsafe { (*heap).owned_hint }
    }

    /// Notes that `heap` owns the small segment `seg` (just checked), in
    /// the hint and in `owned`.
    ///
    /// # Safety
    /// `heap` is this thread's record and has `seg` on its list.
    #[inline(always)]
    pub(super) unsafe fn set_owned_hint(heap: *mut ThreadHeap, seg: *mut Segment) {
        // SAFETY: the caller's contract (never `EMPTY`, which owns nothing);
        // `owned_way` is below `OWNED_WAYS`.
        unsafe {
            (*heap).owned_hint = seg;
            *(*heap).owned.get_unchecked_mut(owned_way(seg.addr())) = seg;
        }
    }

    /// The segment of `owned` that holds `ptr`, if one does: a small
    /// segment on this heap's list.
    ///
    /// # Safety
    /// `heap` is this thread's record (or `EMPTY`, whose entries are all
    /// `NO_HINT`).
    #[inline(always)]
    pub(super) unsafe fn owned_segment_of(heap: *mut ThreadHeap, ptr: *mut u8) -> Option<*mut Segment> {
        let seg_addr = ptr.addr() & !(super::segment::SEGMENT_SIZE - 1);
        // SAFETY: the caller's contract; `owned_way` is below `OWNED_WAYS`.
        let seg = unsafe { *(*heap).owned.get_unchecked(owned_way(seg_addr)) };
        (seg.addr() == seg_addr).then_some(seg)
    }

    /// Adds this record's remote-free and collected counts to `counts`.
    ///
    /// # Safety
    /// `heap` is a record (records are never unmapped).
    unsafe fn add_counts(heap: *mut ThreadHeap, counts: &mut [(usize, usize); SMALL_CLASSES]) {
        // SAFETY: the counters are atomics; the record lives forever.
        let (remote, collected) = unsafe { (&(*heap).remote_frees, &(*heap).collected) };
        for (class, (frees, back)) in counts.iter_mut().enumerate() {
            *frees = frees.wrapping_add(remote[class].get());
            *back = back.wrapping_add(collected[class].get());
        }
    }

    /// Pops a block of `class` from the head page: the allocation fast path.
    /// The block must carry the free mark, its link is checked before it is
    /// followed, and the mark is cleared (see `guard.rs`); a corrupt list is
    /// reported and the rest of it dropped.
    ///
    /// # Safety
    /// `heap` is this thread's record (or `EMPTY`).
    #[inline(always)]
    pub(super) unsafe fn pop(heap: *mut ThreadHeap, class: usize) -> Option<NonNull<u8>> {
        // SAFETY: the caller's contract. The slow paths that call this have
        // counted the bytes for the profiler (`sample_due`).
        match unsafe { ThreadHeap::try_pop::<false>(heap, class, 0) } {
            Popped::Block(block) => Some(block),
            Popped::Empty => None,
            // SAFETY: `try_pop` found the page in this thread's queue.
            Popped::Corrupt(page, block) => unsafe { corrupt_list(page, block) },
        }
    }

    /// [`pop`](Self::pop), leaving a corrupt list for the caller to hand to
    /// [`corrupt_list`]: a caller that does so as the last thing it does
    /// (and takes its slow path the same way) saves no registers on its
    /// fast path. With `COUNT` (the inline paths), a block about to be
    /// popped counts `size` bytes down from the profiler's `sample_left`;
    /// when that goes below zero it is left on the list and `Empty` sends
    /// the caller to its slow path, which takes the sample.
    ///
    /// # Safety
    /// As for `pop`.
    #[inline(always)]
    pub(super) unsafe fn try_pop<const COUNT: bool>(heap: *mut ThreadHeap, class: usize, size: usize) -> Popped {
        // SAFETY: the thread's own record; pages in its queues are its own,
        // and their free blocks are the heap's to read and write.
        unsafe {
            let page = (*heap).queues.get_unchecked(class).head;
            if page.is_null() {
                return Popped::Empty;
            }
            let block = (*page).free;
            if block.is_null() {
                return Popped::Empty;
            }
            // Every free block carries the mark: a block without it was
            // reached through a link that a write after free or an overflow
            // bent towards a live block.
            if guard::ON && (*block).mark != (*heap).mark ^ block.addr() {
                return Popped::Corrupt(page, block);
            }
            let next = match Segment::next_free(page, block) {
                Ok(next) => next.unwrap_or(ptr::null_mut()),
                Err(()) => return Popped::Corrupt(page, block),
            };
            if COUNT {
                let left = (*heap).sample_left.wrapping_sub(size as isize);
                (*heap).sample_left = left;
                if left < 0 {
                    return Popped::Empty;
                }
            }
            (*page).free = next;
            if guard::ON {
                (*block).mark = 0;
            }
            let used = (*page).used.load(Ordering::Relaxed);
            (*page).used.store(used + 1, Ordering::Relaxed);
            Popped::Block(NonNull::new_unchecked(block.cast()))
        }
    }
}

/// What [`ThreadHeap::try_pop`] found.
pub(super) enum Popped {
    Block(NonNull<u8>),
    /// No page, or the head page has no free block.
    Empty,
    /// The head page's list is corrupt at `block` (not reported yet).
    Corrupt(*mut Page, *mut Block),
}

/// A page's free list has a corrupt link after `block`: report it, and drop
/// the list (its blocks are lost until the page is emptied and reused).
///
/// # Safety
/// The caller owns `page`.
#[cold]
#[inline(never)]
pub(super) unsafe fn corrupt_list(page: *mut Page, block: *mut Block) -> Option<NonNull<u8>> {
    guard::report(Misuse::CorruptFreeList, block.addr());
    // SAFETY: the caller's contract.
    unsafe { (*page).free = ptr::null_mut() };
    None
}

/// Allocates a block of `class` when the head page has none; `Err` if the
/// OS or the memory limit says no (`PurgeFirst`: the caller purges and
/// tries again, see `limit.rs`).
///
/// # Safety
/// `heap` is this thread's record (or `EMPTY`).
#[inline(never)]
pub(super) unsafe fn allocate_slow(heap: *mut ThreadHeap, class: usize) -> Result<NonNull<u8>, Short> {
    // SAFETY: the caller's contract; `refill` gets a record used exclusively.
    unsafe { with_record(heap, |heap| refill(heap, class)) }
}

/// Runs `f` with a record the caller may use exclusively: `heap`, this
/// thread's; or, for `EMPTY`, the record this thread takes now, or (once
/// its thread-locals are gone) the orphan heap, under its lock.
///
/// # Safety
/// `heap` is this thread's record (or `EMPTY`).
unsafe fn with_record<T>(
    heap: *mut ThreadHeap,
    f: impl FnOnce(*mut ThreadHeap) -> Result<T, Short>,
) -> Result<T, Short> {
    if heap != empty() {
        return f(heap);
    }
    if STATE.with(Cell::get) == 0 {
        return f(attach().ok_or(Short::Refused)?);
    }
    let mut orphan = ORPHAN.lock().unwrap_or_else(PoisonError::into_inner);
    if orphan.0.is_null() {
        orphan.0 = new_record().ok_or(Short::Refused)?;
    }
    f(orphan.0)
}

/// Makes this thread's heap record.
fn attach() -> Option<*mut ThreadHeap> {
    let heap = {
        let mut unused = UNUSED.lock().unwrap_or_else(PoisonError::into_inner);
        let heap = unused.0;
        if !heap.is_null() {
            // SAFETY: a record on the unused list is ours to take.
            unused.0 = unsafe { (*heap).next_unused };
        }
        heap
    };
    let heap = if heap.is_null() { new_record()? } else { heap };
    // SAFETY: the record is this thread's now. Purge requests made before
    // it came are not its to serve.
    unsafe { (*heap).purge_seen = limit::PURGE_REQUESTS.load(Ordering::Relaxed) };
    // SAFETY: as above.
    unsafe { ThreadHeap::arm_sampling(heap, crate::profile::interval()) };
    set_local(heap);
    STATE.with(|s| s.set(1));
    // Registering the destructor may allocate (through this heap: LOCAL is
    // set, so that is an ordinary allocation).
    EXIT.with(|_| ());
    Some(heap)
}

/// Maps a fresh, empty record and lists it for the stats.
fn new_record() -> Option<*mut ThreadHeap> {
    let size = size_of::<ThreadHeap>().next_multiple_of(os::page_size());
    let record = os::map(size, os::page_size())?.cast::<ThreadHeap>().as_ptr();
    counters::add(&RESIDENT, size);
    let mut records = records();
    guard::init(); // the mark the record copies is fixed from here on
    // SAFETY: fresh memory, large and aligned enough; listed under the lock.
    unsafe {
        record.write(ThreadHeap::new());
        (*record).mark = guard::mark(0);
        (*record).next_record = records.0;
    }
    records.0 = record;
    Some(record)
}

/// Counts a free of a block of `class` by a thread that does not own its
/// segment, in that thread's record (or, if it has none, the shared count).
///
/// # Safety
/// `heap` is this thread's record (or `EMPTY`).
#[inline]
pub(super) unsafe fn count_remote_free(heap: *mut ThreadHeap, class: usize) {
    if heap == empty() {
        return count_stray_free(class);
    }
    // SAFETY: this thread's own record.
    unsafe { (*heap).remote_frees[class].add(1) };
}

/// A remote free by a thread without a record. Before its thread-locals
/// are torn down, the thread takes its record now, as its first allocation
/// would: a thread that only frees (the consumer of a producer/consumer
/// pair) would otherwise count every free on one shared atomic, a cache
/// line its peers fight over.
/// Taking the record may wait on a lock or map memory, inside a C `free`
/// that must leave `errno` alone: it is put back.
#[cold]
#[inline(never)]
fn count_stray_free(class: usize) {
    let saved = os::errno();
    let heap = if STATE.with(Cell::get) == 0 { attach() } else { None };
    match heap {
        // SAFETY: this thread's own record, just made.
        Some(heap) => unsafe { (*heap).remote_frees[class].add(1) },
        None => {
            STRAY_FREES[class].fetch_add(1, Ordering::Relaxed);
        }
    }
    os::set_errno(saved);
}

/// Finds a block for `class`: collects frees into the head page, tries a
/// few more pages of the class, then takes a fresh page.
///
/// # Safety
/// The caller has exclusive use of `heap`.
unsafe fn refill(heap: *mut ThreadHeap, class: usize) -> Result<NonNull<u8>, Short> {
    /// Pages looked at before a fresh one is taken.
    const SCAN: usize = 8;
    // SAFETY: the caller has exclusive use of `heap`, and no page is half
    // taken here.
    unsafe { tick(heap) };
    // SAFETY: `heap` is a valid record; a place, not a reference.
    let queue = unsafe { &raw mut (*heap).queues[class] };
    // SAFETY: the queue is the heap's, which the caller uses exclusively.
    let scan = SCAN.min(unsafe { (*queue).len });
    for _ in 0..scan {
        // SAFETY: as above; the queue is not empty (`scan <= len`), and its
        // pages are in use, of segments this heap owns (module invariants).
        let page = unsafe { (*queue).head };
        // SAFETY: the heap owns the page and is used exclusively.
        unsafe { collect(heap, page) };
        // SAFETY: `free` is the owner's field, and the heap owns the page.
        if unsafe { (*page).free.is_null() } {
            // SAFETY: a page in use of a live segment the heap owns.
            unsafe { Segment::carve(segment_of_page(page), page) };
        }
        // SAFETY: the caller's record, used exclusively.
        if let Some(block) = unsafe { ThreadHeap::pop(heap, class) } {
            return Ok(block);
        }
        // Full: to the back, and look at the next.
        // SAFETY: the page is in the queue, both the heap's.
        unsafe {
            if (*queue).len > 1 {
                unlink(queue, page);
                push_back(queue, page);
            }
        }
    }
    // SAFETY: the caller's exclusive use of `heap`.
    let page = unsafe { fresh_page(heap, class) }?;
    // SAFETY: a fresh page is in no queue; the queue is the heap's.
    unsafe { push_front(queue, page) };
    // SAFETY: a page in use of a live segment the heap owns.
    unsafe { Segment::carve(segment_of_page(page), page) };
    // A fresh page's first block: `None` only if its list was reported
    // corrupt, which leaves nothing to hand out.
    // SAFETY: the caller's record, used exclusively.
    unsafe { ThreadHeap::pop(heap, class) }.ok_or(Short::Refused)
}

/// The segment a page metadata record belongs to.
fn segment_of_page(page: *mut Page) -> *mut Segment {
    // The page records live in the segment's header page.
    page.with_addr(page.addr() & !(super::segment::SEGMENT_SIZE - 1)).cast()
}

/// A free page for `class` from the heap's segments, its spare, an
/// abandoned segment (adopted), or a new segment.
///
/// # Safety
/// The caller has exclusive use of `heap`.
unsafe fn fresh_page(heap: *mut ThreadHeap, class: usize) -> Result<*mut Page, Short> {
    // SAFETY: the caller's exclusive use of the record.
    let mut seg = unsafe { (*heap).segments };
    while !seg.is_null() {
        // SAFETY: segments on the heap's list are the heap's own.
        if let Some(page) = unsafe { take_charged(seg, class) }? {
            return Ok(page);
        }
        // SAFETY: as above; the list links are the heap's.
        seg = unsafe { (*seg).next };
    }
    // Only an adopted segment can come full, and then the next source is
    // tried (the abandoned list shrinks each time, and a new segment always
    // has a free page).
    loop {
        // SAFETY: the caller's exclusive use of `heap`.
        let seg = unsafe { another_segment(heap) }?;
        // SAFETY: the heap owns the segment now.
        if let Some(page) = unsafe { take_charged(seg, class) }? {
            return Ok(page);
        }
    }
}

/// One more segment for `heap`, on its list: its spare, an abandoned
/// segment (adopted, which may come full), a kept empty one, or a new one,
/// in order of cheapness.
///
/// # Safety
/// The caller has exclusive use of `heap`.
unsafe fn another_segment(heap: *mut ThreadHeap) -> Result<*mut Segment, Short> {
    // SAFETY: the caller's exclusive use of the record (its `spare`).
    let spare = unsafe { core::mem::replace(&mut (*heap).spare, ptr::null_mut()) };
    let seg = if !spare.is_null() {
        spare
    // SAFETY: the caller's exclusive use of `heap`.
    } else if let Some(seg) = unsafe { adopt(heap) } {
        seg
    } else {
        let kept = idle().take(as_owner(heap));
        match kept {
            Some(seg) => seg,
            None => Segment::new_small(as_owner(heap))?.as_ptr(),
        }
    };
    // SAFETY: the segment is the heap's now (its spare, adopted, taken from
    // the idle ones or new, each with `heap` as owner); it joins the heap's
    // list, which the caller uses exclusively.
    unsafe {
        (*seg).next = (*heap).segments;
        (*heap).segments = seg;
    }
    Ok(seg)
}

/// Allocates a medium block of `pages` whole pages (see `segment.rs`,
/// `SPAN_HEAD`): consecutive free pages of one of the thread's segments,
/// after taking back the medium blocks other threads freed. Also says
/// whether the block's memory is known to be zero (all its pages clean).
/// `Err` as for [`allocate_slow`].
///
/// # Safety
/// `heap` is this thread's record (or `EMPTY`).
#[inline(never)]
pub(super) unsafe fn allocate_medium(heap: *mut ThreadHeap, pages: usize) -> Result<(NonNull<u8>, bool), Short> {
    // SAFETY: the caller's contract; `medium_in` gets a record used exclusively.
    unsafe { with_record(heap, |heap| medium_in(heap, pages)) }
}

/// [`allocate_medium`]'s body.
///
/// # Safety
/// The caller has exclusive use of `heap`.
unsafe fn medium_in(heap: *mut ThreadHeap, pages: usize) -> Result<(NonNull<u8>, bool), Short> {
    // SAFETY: the caller has exclusive use of `heap`, no page is half taken.
    unsafe { tick(heap) };
    // SAFETY: the heap's own segments; taking parked spans back relinks no
    // segment (an emptied one stays on the list, to be used next). Only the
    // segments whose hint says another thread parked a block are scanned.
    for seg in unsafe { owned_segments(heap) }.filter(|&seg| unsafe { Segment::take_parked_hint(seg) }) {
        for page in Segment::pages(seg) {
            // SAFETY: owner-only fields of the heap's segment; a block taken
            // from `thread_free` was freed (and uncounted) by another thread.
            unsafe {
                if (*page).in_use && (*page).class.load(Ordering::Relaxed) == SPAN_HEAD && Segment::take_parked(page) {
                    Segment::release_span(seg, page);
                }
            }
        }
    }
    // SAFETY: as above.
    for seg in unsafe { owned_segments(heap) } {
        // SAFETY: the heap owns the segment.
        if let Some(run) = unsafe { Segment::find_span(seg, pages) } {
            // SAFETY: as above.
            return unsafe { claim_charged(seg, run, pages) };
        }
    }
    loop {
        // SAFETY: the caller's exclusive use of `heap`.
        let seg = unsafe { another_segment(heap) }?;
        // SAFETY: the heap owns the segment now.
        if let Some(run) = unsafe { Segment::find_span(seg, pages) } {
            // SAFETY: as above.
            return unsafe { claim_charged(seg, run, pages) };
        }
    }
}

/// Claims the free run `(first, clean)` of `seg` for a medium block of
/// `pages` pages, charging its clean pages to the memory limit first.
///
/// # Safety
/// The caller owns `seg`; the run is free (from `find_span`).
unsafe fn claim_charged(
    seg: *mut Segment,
    (first, clean): (usize, usize),
    pages: usize,
) -> Result<(NonNull<u8>, bool), Short> {
    if clean > 0 {
        limit::charge(clean * PAGE_SIZE)?;
    }
    // SAFETY: the caller's contract.
    let head = unsafe { Segment::claim_span(seg, first, pages) };
    counters::add(&LARGE_LIVE, 1);
    counters::add(&LARGE_BYTES, pages * PAGE_SIZE);
    let block = Segment::page_start(seg, head);
    // SAFETY: a page's memory inside a live segment: not null.
    Ok((unsafe { NonNull::new_unchecked(block) }, clean == pages))
}

/// Grows the live medium block at `ptr` in place to `pages` pages, if it
/// is this thread's and the pages after its span are free (and the memory
/// limit takes the new ones); false otherwise (the caller moves it).
///
/// # Safety
/// `heap` is this thread's record (or `EMPTY`); `ptr` is a live block of
/// the heap in a small segment, with a pointer carrying its segment's
/// provenance.
pub(super) unsafe fn grow_span(heap: *mut ThreadHeap, seg: *mut Segment, ptr: *mut u8, pages: usize) -> bool {
    // SAFETY: the caller's contract; the owner check comes first, so the
    // page records read after it are this thread's own.
    unsafe {
        if heap == empty() || (*seg).owner.load(Ordering::Relaxed) != as_owner(heap) {
            return false;
        }
        let head = Segment::page_of(seg, ptr);
        if !Segment::starts_span(seg, head, ptr) || Segment::span_parked(head) {
            return false;
        }
        let have = Segment::span_pages(head);
        let Some(extra) = pages.checked_sub(have).filter(|&n| n > 0) else { return false };
        let Some(clean) = Segment::room_after_span(seg, head, have, extra) else { return false };
        if clean > 0 && limit::charge(clean * PAGE_SIZE).is_err() {
            return false;
        }
        Segment::extend_span(seg, head, have, extra);
        counters::add(&LARGE_BYTES, extra * PAGE_SIZE);
        true
    }
}

/// Takes a free page of `seg` for `class` (`Ok(None)`: the segment is
/// full), charging it to the memory limit if it is new memory (`Err`: the
/// limit said no, and the page is back).
///
/// # Safety
/// The caller owns `seg`.
unsafe fn take_charged(seg: *mut Segment, class: usize) -> Result<Option<*mut Page>, Short> {
    // SAFETY: the caller owns the small segment.
    let Some((page, clean)) = (unsafe { Segment::take_page(seg, class) }) else { return Ok(None) };
    if clean {
        if let Err(short) = limit::charge(PAGE_SIZE) {
            // SAFETY: the page was just taken, clean, and nothing touched it.
            unsafe { Segment::unwind_take(seg, page) };
            return Err(short);
        }
    }
    Ok(Some(page))
}

/// Takes an abandoned segment, makes `heap` its owner and queues its pages.
///
/// # Safety
/// The caller has exclusive use of `heap`.
unsafe fn adopt(heap: *mut ThreadHeap) -> Option<*mut Segment> {
    let seg = {
        let mut abandoned = ABANDONED.lock().unwrap_or_else(PoisonError::into_inner);
        let seg = abandoned.0;
        if seg.is_null() {
            return None;
        }
        // SAFETY: segments on the list are ours to take under the lock.
        abandoned.0 = unsafe { (*seg).next };
        seg
    };
    // SAFETY: the segment is now only ours: off the list, no thread owns
    // it, and frees from others only push to `thread_free`.
    unsafe {
        (*seg).owner.store(as_owner(heap), Ordering::Relaxed);
        (*seg).next = ptr::null_mut();
    }
    for page in Segment::pages(seg) {
        // SAFETY: a page record of the segment, which is ours (above).
        if !unsafe { (*page).in_use } {
            continue;
        }
        // A medium block's span: taken back if another thread freed it,
        // else left live (it is in no queue).
        // SAFETY: as above.
        if unsafe { span_kept(seg, page) } {
            continue;
        }
        // SAFETY: the heap owns the page now and is used exclusively.
        unsafe { collect(heap, page) };
        // SAFETY: owner-only fields of our page.
        let (used, class) =
            unsafe { ((*page).used.load(Ordering::Relaxed), (*page).class.load(Ordering::Relaxed) as usize) };
        if used == 0 {
            // SAFETY: no block of the page is live, and it is in no queue.
            unsafe { Segment::release_page(seg, page) };
        } else {
            // SAFETY: the page is in no queue yet; the queue is the heap's.
            unsafe { push_back(&raw mut (*heap).queues[class], page) };
        }
    }
    Some(seg)
}

/// For a page in use of `seg` that belongs to a medium block's span (not a
/// small page): takes the block back if another thread freed it, and says
/// true (the caller skips the page: a span is in no queue).
///
/// # Safety
/// The caller owns `seg` and `page` is one of its pages in use.
unsafe fn span_kept(seg: *mut Segment, page: *mut Page) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        match (*page).class.load(Ordering::Relaxed) {
            SPAN_TAIL => true,
            SPAN_HEAD => {
                if Segment::take_parked(page) {
                    Segment::release_span(seg, page);
                }
                true
            }
            _ => false,
        }
    }
}

/// Frees every block of the calling thread's quarantine (secure mode; at
/// its exit, and before a purge).
pub(super) fn flush_quarantine() {
    while let Some(block) = super::secure::take_oldest() {
        // SAFETY: a quarantined block is a live block of the heap, which the
        // thread freed (the quarantine holds it once).
        unsafe { free_in::<false>(current(), block, |_| {}, false) };
    }
}

/// Frees a block of the heap's small or large segments from any thread:
/// the checked free that `Heap::free_elsewhere` and secure mode end in.
/// `foreign` is called instead, with nothing touched, for a pointer outside
/// the heap's memory; `C` keeps `errno` where the OS may be called.
/// `hint`: a block of a segment `heap` owns makes that segment its
/// owned-segment hint (never in secure mode, whose frees must all come to
/// `Heap::free_secure`: its callers pass false).
///
/// # Safety
/// `heap` is this thread's record (or `EMPTY`); `ptr` is a live block of
/// the heap, or memory the heap does not hold (the checks catch other
/// misuses as far as they can).
#[inline(always)]
pub(super) unsafe fn free_in<const C: bool>(heap: *mut ThreadHeap, ptr: *mut u8, foreign: fn(*mut u8), hint: bool) {
    let seg = super::segment_map::get(super::segment::header_addr(ptr.addr())).cast::<Segment>();
    if seg.is_null() {
        return foreign(ptr);
    }
    let ptr = super::segment::in_segment(seg, ptr);
    // SAFETY: the map says a header lives there, mapped while its entry
    // is set; `kind` and `owner` are readable by any thread.
    unsafe {
        if (*seg).kind == super::segment::Kind::Large {
            return os::keeping_errno::<C>(|| super::large::free(seg, ptr));
        }
        let page = Segment::page_of(seg, ptr);
        if (*seg).owner.load(Ordering::Relaxed) == as_owner(heap) {
            // Only a segment on the heap's list may become the hint (its
            // invariant): a page in use says so. A stray free into the
            // heap's spare (empty, off the list) must not name it, or the
            // hint would outlive the segment and take the next mapping at
            // its address (another thread's segment, a large block) for one
            // of this thread's.
            if hint && (*page).in_use {
                ThreadHeap::set_owned_hint(heap, seg);
            }
            free_local::<C>(heap, seg, page, ptr);
        } else {
            let class = (*page).class.load(Ordering::Relaxed) as usize;
            if class < SMALL_CLASSES {
                count_remote_free(heap, class);
                Segment::free_remote(page, ptr.cast());
            } else {
                Segment::free_remote_span(seg, page, ptr);
            }
        }
    }
}

/// A page of a segment `heap` owns has no live block left. The only page
/// of its class stays where it is (a loop that frees its last block and
/// allocates again must not retire and re-carve a page each time); that
/// test comes first, before this function sets up a frame.
///
/// # Safety
/// `heap` is this thread's record and owns `seg`, which holds `page`; the
/// page has no live block.
#[inline(never)]
pub(super) unsafe extern "C" fn page_emptied<const C: bool>(heap: *mut ThreadHeap, seg: *mut Segment, page: *mut Page) {
    // SAFETY: the caller's contract; a page in use has a small class (set
    // when the page was taken), which indexes the queues.
    let sole = unsafe {
        let class = (*page).class.load(Ordering::Relaxed) as usize;
        debug_assert!(class < (*heap).queues.len());
        (*heap).queues.get_unchecked(class).len <= 1
    };
    if sole {
        return;
    }
    // SAFETY: the caller's contract, and the page is not its class's only one.
    os::keeping_errno::<C>(|| unsafe { release_empty_page(heap, seg, page) });
}

/// Frees a block of `seg`, a segment this thread owns, after the checks of
/// `guard.rs` (block start, the double-free mark, the live count); a misuse
/// is reported and the block left alone. A page left with no live block
/// goes to [`page_emptied`] (which keeps `errno` for `C`).
///
/// Every call out of here is the last thing it does, so the compiler can
/// make each a jump: the inline free then saves no registers of its own.
///
/// # Safety
/// `heap` is this thread's record and owns the small segment `seg`, which
/// holds `page`; `ptr` lies in `page`.
#[inline(always)]
pub(super) unsafe fn free_local<const C: bool>(
    heap: *mut ThreadHeap,
    seg: *mut Segment,
    page: *mut Page,
    ptr: *mut u8,
) {
    // SAFETY: the caller's contract: `page` is a page record of a segment
    // this thread owns.
    if !unsafe { Segment::starts_block(page, ptr) } {
        // SAFETY: as above; the heap owns the page's segment.
        return unsafe { unusual_free(heap, page, ptr) };
    }
    let block = ptr.cast::<Block>();
    // SAFETY: `used` is the owner's (atomic) count, and `mark` a field of
    // this thread's record.
    let (used, mark) = unsafe { ((*page).used.load(Ordering::Relaxed), (*heap).mark ^ block.addr()) };
    // SAFETY: a block start of a page of ours lies in the page's carved
    // memory, readable (`carries_mark` reads its words as raw bits).
    if guard::ON && (unsafe { guard::carries_mark(block.cast(), mark) } || used == 0) {
        // SAFETY: the caller's contract, and `block` starts a block of `page`.
        return unsafe { suspect_free::<C>(heap, seg, page, block) };
    }
    // SAFETY: a live block of our page (the checks above), with the mark
    // and count just read.
    if unsafe { push_free(page, block, mark, used) } {
        // SAFETY: the caller's contract; the page has no live block now.
        unsafe { page_emptied::<C>(heap, seg, page) };
    }
}

/// Pushes `block` onto its page's free list with its `mark`, and counts it
/// out of `used` (the page's count before); true if that left the page
/// empty.
///
/// # Safety
/// The caller owns `page`, of which `block` is a live block.
#[inline(always)]
unsafe fn push_free(page: *mut Page, block: *mut Block, mark: usize, used: u32) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        let key = Segment::key(page);
        (*block).link = guard::encode((*page).free.addr(), key, block.addr());
        if guard::ON {
            (*block).mark = mark;
        }
        (*page).free = block;
        (*page).used.store(used - 1, Ordering::Relaxed);
        used == 1
    }
}

/// A free of a pointer that starts no small block of `page`: a medium
/// block (its pages go back), or a misuse (reported).
///
/// # Safety
/// As for [`free_local`].
#[cold]
#[inline(never)]
unsafe extern "C" fn unusual_free(heap: *mut ThreadHeap, page: *mut Page, ptr: *mut u8) {
    let seg = segment_of_page(page);
    // SAFETY: the caller's contract: the heap owns the page's segment.
    unsafe {
        if !Segment::starts_span(seg, page, ptr) {
            return guard::report(Misuse::InvalidPointer, ptr.addr());
        }
        if Segment::span_parked(page) {
            // Freed by another thread already, and not taken back yet.
            return guard::report(Misuse::DoubleFree, ptr.addr());
        }
        Segment::span_uncounted(Segment::span_pages(page));
        if Segment::release_span(seg, page) {
            // A C `free` must leave `errno` alone; giving the segment up may
            // call the OS.
            let saved = os::errno();
            segment_emptied(heap, seg);
            os::set_errno(saved);
        }
    }
}

/// A free of a block that carries the free mark, or of a page with no live
/// block: a double free if the owner's look confirms it (reported), else
/// (a live block whose data happened to match the mark) an ordinary free.
///
/// # Safety
/// As for [`free_local`]; `block` starts a block of `page`.
#[cold]
#[inline(never)]
unsafe extern "C" fn suspect_free<const C: bool>(
    heap: *mut ThreadHeap,
    seg: *mut Segment,
    page: *mut Page,
    block: *mut Block,
) {
    // SAFETY: the caller's contract.
    unsafe {
        if freed_already(heap, page, block) {
            return guard::report(Misuse::DoubleFree, block.addr());
        }
        // The collection may have changed the count.
        if push_free(page, block, guard::mark(block.addr()), (*page).used.load(Ordering::Relaxed)) {
            page_emptied::<C>(heap, seg, page);
        }
    }
}

/// The owner's confirmation of a suspected double free: the block is in
/// the page's free list (after remote frees are collected into it), or the
/// page has no live block at all.
///
/// # Safety
/// As for [`free_local`].
unsafe fn freed_already(heap: *mut ThreadHeap, page: *mut Page, block: *mut Block) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        collect(heap, page);
        (*page).used.load(Ordering::Relaxed) == 0 || Segment::in_free_list(page, block)
    }
}

/// A page has no live block and is not the only page of its class: give
/// it back to its segment, and the segment back to the OS once it is empty
/// (keeping one spare).
///
/// # Safety
/// `heap` is this thread's record and owns `seg`, which holds `page`; the
/// page has no live block, and its class has another page.
#[inline(never)]
unsafe fn release_empty_page(heap: *mut ThreadHeap, seg: *mut Segment, page: *mut Page) {
    // SAFETY: the caller's contract: `heap` is this thread's record and the
    // page one of its pages in use, in its class's queue (the invariant of
    // the module doc), and the class indexes the queues.
    unsafe {
        let queue = &raw mut (*heap).queues[(*page).class.load(Ordering::Relaxed) as usize];
        unlink(queue, page);
    }
    // SAFETY: the heap owns `seg`, and the page, out of its queue now,
    // holds no live block.
    if unsafe { Segment::release_page(seg, page) } {
        // SAFETY: the heap owns the segment, which has no page in use left.
        unsafe { segment_emptied(heap, seg) };
    }
    // SAFETY: this thread's record, used exclusively here; no page is half
    // taken (the page was fully released above).
    unsafe { tick(heap) };
}

/// `seg`, one of `heap`'s segments, has no page in use any more: it leaves
/// the heap's list and becomes its spare, or goes to the kept empty ones.
///
/// # Safety
/// `heap` is this thread's record and owns the empty segment `seg`.
unsafe fn segment_emptied(heap: *mut ThreadHeap, seg: *mut Segment) {
    // SAFETY: the caller's contract: this thread's record, whose fields
    // only this thread touches; `owned_way` is below `OWNED_WAYS`.
    unsafe {
        if (*heap).owned_hint.addr() == seg.addr() {
            (*heap).owned_hint = NO_HINT;
        }
        let way = (*heap).owned.get_unchecked_mut(owned_way(seg.addr()));
        if way.addr() == seg.addr() {
            *way = NO_HINT;
        }
    }
    // Out of the heap's list (the segment is on it: the caller's contract).
    // SAFETY: the list's links are the heap's, and each segment on it is
    // mapped.
    unsafe {
        let mut link = &raw mut (*heap).segments;
        while *link != seg {
            link = &raw mut (**link).next;
        }
        *link = (*seg).next;
    }
    // SAFETY: the record is this thread's (as above).
    if unsafe { (*heap).spare.is_null() } {
        // SAFETY: as above.
        unsafe {
            (*heap).spare = seg;
            (*heap).spare_stale = false;
        }
    } else {
        // SAFETY: an empty small segment, off the heap's list: nobody else
        // holds it.
        unsafe { idle().keep(seg) };
    }
}

/// Counts a slow-path event; every [`PACE`] of them, serves a purge request
/// and keeps the thread's free pages under [`THREAD_CACHE_CAP`], and every
/// [`DECAY`] runs a decay pass: free pages (and a spare segment) unused
/// since the last pass are handed back.
///
/// # Safety
/// The caller has exclusive use of `heap`, and no page is half taken.
unsafe fn tick(heap: *mut ThreadHeap) {
    // SAFETY: the caller's exclusive use of the record.
    let events = unsafe {
        (*heap).events = (*heap).events.wrapping_add(1);
        (*heap).events
    };
    if events % PACE != 0 {
        return;
    }
    let requests = limit::PURGE_REQUESTS.load(Ordering::Relaxed);
    // SAFETY: the heap's segments are its own, mapped while on its list,
    // and `free_dirty` is an owner-only field.
    let free_dirty: usize = unsafe { owned_segments(heap) }.map(|seg| unsafe { (*seg).free_dirty }).sum();
    // SAFETY: the caller's exclusive use of the record.
    if requests != unsafe { (*heap).purge_seen } || free_dirty * PAGE_SIZE > THREAD_CACHE_CAP {
        // SAFETY: as above; and no page is half taken (the caller's contract).
        unsafe {
            (*heap).purge_seen = requests;
            purge_heap(heap);
        }
        return;
    }
    // A heap's first pass comes one interval after its first look: the
    // pages it took over (adopted, or from the idle segments) may be
    // marked stale by their last owner's pass a moment ago, and short
    // threads would purge, and fault in again, pages just freed.
    let now = Instant::now();
    // SAFETY: the caller's exclusive use of the record.
    let next_pass = unsafe { &mut (*heap).next_pass };
    match *next_pass {
        Some(due) if now >= due => {}
        Some(_) => return,
        None => {
            *next_pass = Some(now + DECAY);
            return;
        }
    }
    *next_pass = Some(now + DECAY);
    if free_dirty > 0 {
        // SAFETY: the heap's own segments (see above).
        for seg in unsafe { owned_segments(heap) } {
            // SAFETY: the heap owns the small segment.
            unsafe { Segment::decay(seg) };
        }
    }
    // The shared caches decay on their own use; a pass also expires them,
    // so a quiet cache does not keep its memory forever.
    idle().expire(false);
    super::large::expire();
    // SAFETY: the caller's exclusive use of the record; the spare is an
    // empty segment the heap owns and nobody else holds.
    unsafe {
        if !(*heap).spare.is_null() {
            if (*heap).spare_stale {
                idle().keep(core::mem::replace(&mut (*heap).spare, ptr::null_mut()));
            } else {
                (*heap).spare_stale = true;
            }
        }
    }
}

/// The segments on `heap`'s list, in order. Each link is read when the
/// walk moves on, so the caller must not relink the segment it was given.
///
/// # Safety
/// The caller has exclusive use of `heap` while it iterates, and does not
/// take the segment it was given off the list before the next step.
unsafe fn owned_segments(heap: *mut ThreadHeap) -> impl Iterator<Item = *mut Segment> {
    // SAFETY: the caller's contract.
    let first = unsafe { (*heap).segments };
    core::iter::successors((!first.is_null()).then_some(first), |&seg| {
        // SAFETY: as above: each segment on the list is mapped and its link
        // the heap's.
        let next = unsafe { (*seg).next };
        (!next.is_null()).then_some(next)
    })
}

/// Gives the calling thread's free pages back to the OS, and its spare
/// segment; returns the bytes.
pub(super) fn purge_local() -> usize {
    let heap = current();
    if heap == empty() {
        return 0;
    }
    // SAFETY: this thread's record, used only by this thread.
    unsafe { purge_heap(heap) }
}

/// Gives `heap`'s free pages back to the OS, and its spare segment;
/// returns the bytes.
///
/// # Safety
/// The caller has exclusive use of `heap`, and no page is half taken.
unsafe fn purge_heap(heap: *mut ThreadHeap) -> usize {
    let mut released = 0;
    // SAFETY: the caller's exclusive use of `heap`, whose segments are its own.
    for seg in unsafe { owned_segments(heap) } {
        // SAFETY: the heap owns the small segment.
        released += unsafe { Segment::purge_free_pages(seg) };
    }
    // SAFETY: the caller's exclusive use of the record.
    let spare = unsafe { core::mem::replace(&mut (*heap).spare, ptr::null_mut()) };
    if !spare.is_null() {
        // SAFETY: the spare is an empty segment only this heap held, and it
        // is off the record now.
        released += unsafe { Segment::purge_free_pages(spare) + Segment::free(spare) };
    }
    released
}

/// The thread is gone: free the empty segments, abandon the others, and
/// give the record back.
///
/// # Safety
/// `heap` was the exiting thread's record and nothing uses it any more.
unsafe fn abandon(heap: *mut ThreadHeap) {
    // SAFETY: the record and its segments are exclusively ours now (the
    // thread is done with them, and `LOCAL` no longer names the record).
    let mut next = unsafe { (*heap).segments };
    while !next.is_null() {
        let seg = next;
        // Read before the segment is relinked below (abandoned or idle).
        // SAFETY: as above.
        next = unsafe { (*seg).next };
        let mut live = false;
        for page in Segment::pages(seg) {
            // SAFETY: a page record of a segment we own.
            if unsafe { (*page).in_use } {
                // SAFETY: as above.
                if unsafe { span_kept(seg, page) } {
                    // A live medium block (its head page; its other pages
                    // follow it), unless it was just taken back.
                    // SAFETY: as above.
                    live |= unsafe { (*page).in_use };
                    continue;
                }
                // SAFETY: we own the page, and the record is ours.
                unsafe { collect(heap, page) };
                // SAFETY: as above.
                if unsafe { (*page).used.load(Ordering::Relaxed) } == 0 {
                    // SAFETY: no block of the page is live; the record and
                    // its queues are going away with it.
                    unsafe { Segment::release_page(seg, page) };
                } else {
                    live = true;
                }
            }
        }
        if live {
            // SAFETY: the segment is ours until it is on the abandoned list,
            // which owns it from then on (under its lock).
            unsafe {
                (*seg).owner.store(ptr::null_mut(), Ordering::Release);
                let mut abandoned = ABANDONED.lock().unwrap_or_else(PoisonError::into_inner);
                (*seg).next = abandoned.0;
                abandoned.0 = seg;
            }
        } else {
            // SAFETY: an empty small segment nobody else holds.
            unsafe { idle().keep(seg) };
        }
    }
    // SAFETY: the record is ours (above); its spare is empty and only ours.
    unsafe {
        if !(*heap).spare.is_null() {
            idle().keep((*heap).spare);
        }
    }
    // The counts go to the totals and the record is cleared under the
    // list's lock, so a reader sees them once.
    let records = records();
    // SAFETY: the record is ours (above); its counters are atomics others
    // read, and its `next_record` link is kept.
    unsafe {
        for (class, (frees, back)) in RETIRED.iter().enumerate() {
            frees.fetch_add((*heap).remote_frees[class].get(), Ordering::Relaxed);
            back.fetch_add((*heap).collected[class].get(), Ordering::Relaxed);
        }
        let (next_record, mark) = ((*heap).next_record, (*heap).mark);
        heap.write(ThreadHeap::new());
        (*heap).next_record = next_record;
        (*heap).mark = mark;
    }
    drop(records);
    let mut unused = UNUSED.lock().unwrap_or_else(PoisonError::into_inner);
    // SAFETY: the cleared record goes to the unused list, under its lock.
    unsafe { (*heap).next_unused = unused.0 };
    unused.0 = heap;
}

/// # Safety
/// `page` is in no queue; the caller has exclusive use of the queue.
unsafe fn push_front(queue: *mut Queue, page: *mut Page) {
    // SAFETY: the caller's contract.
    unsafe {
        (*page).prev = ptr::null_mut();
        (*page).next = (*queue).head;
        if (*queue).head.is_null() {
            (*queue).tail = page;
        } else {
            (*(*queue).head).prev = page;
        }
        (*queue).head = page;
        (*queue).len += 1;
    }
}

/// # Safety
/// As for [`push_front`].
unsafe fn push_back(queue: *mut Queue, page: *mut Page) {
    // SAFETY: the caller's contract.
    unsafe {
        (*page).next = ptr::null_mut();
        (*page).prev = (*queue).tail;
        if (*queue).tail.is_null() {
            (*queue).head = page;
        } else {
            (*(*queue).tail).next = page;
        }
        (*queue).tail = page;
        (*queue).len += 1;
    }
}

/// # Safety
/// `page` is in `queue`; the caller has exclusive use of it.
unsafe fn unlink(queue: *mut Queue, page: *mut Page) {
    // SAFETY: the caller's contract.
    unsafe {
        let (prev, next) = ((*page).prev, (*page).next);
        if prev.is_null() {
            (*queue).head = next;
        } else {
            (*prev).next = next;
        }
        if next.is_null() {
            (*queue).tail = prev;
        } else {
            (*next).prev = prev;
        }
        (*page).prev = ptr::null_mut();
        (*page).next = ptr::null_mut();
        (*queue).len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Heap, OnMisuse};

    #[test]
    fn a_stray_free_into_the_spare_segment_does_not_become_the_hint() {
        // Regression: a double free into the heap's spare segment (empty,
        // off its list) made the spare the owned hint; the spare was then
        // unmapped (purge) while the hint lived on, and the next mapping at
        // its address (a large block, in the fuzz target) had its blocks
        // taken for this thread's small ones: a valid free was reported as
        // an invalid pointer and the block leaked.
        std::thread::spawn(|| {
            let mode = Heap::on_misuse();
            Heap::set_on_misuse(OnMisuse::Report);
            let layout = core::alloc::Layout::new::<[u64; 4]>();
            let block = allocator_api2::alloc::Allocator::allocate(&Heap, layout).unwrap();
            let heap = local();
            assert_ne!(heap, empty(), "the allocation gave the thread a record");
            let spare = Segment::new_small(as_owner(heap)).expect("a segment").as_ptr();
            // SAFETY: this thread's record; the new segment is empty and
            // owned by it, a spare as `segment_emptied` leaves one.
            unsafe {
                assert!((*heap).spare.is_null(), "a fresh thread has no spare yet");
                (*heap).spare = spare;
            }
            // A block-aligned address in the spare's first page after the
            // header: no block was ever handed out there.
            let stray = Segment::page_start(spare, Segment::pages(spare).nth(1).unwrap());
            let before = Heap::misuses();
            // SAFETY: a deliberate misuse; the heap must report it and
            // leave the memory alone.
            unsafe { Heap::free(NonNull::new(stray).unwrap()) };
            assert_eq!(Heap::misuses(), before + 1, "the stray free was reported");
            // SAFETY: this thread's record.
            let hint = unsafe { ThreadHeap::owned_hint(heap) };
            assert_ne!(hint.addr(), spare.addr(), "the hint names a segment off the heap's list");
            // SAFETY: as above.
            let owned = unsafe { ThreadHeap::owned_segment_of(heap, stray) };
            assert_eq!(owned, None, "`owned` names a segment off the heap's list");
            // SAFETY: the block is live; freed once.
            unsafe { allocator_api2::alloc::Allocator::deallocate(&Heap, block.cast(), layout) };
            Heap::set_on_misuse(mode);
        })
        .join()
        .unwrap();
    }

    /// Every entry of `heap`'s `owned` is `NO_HINT` or a segment on its
    /// list, in the entry its address maps to.
    fn assert_owned_entries_hold(heap: *mut ThreadHeap) {
        // SAFETY: this thread's record, read by its own thread.
        let (owned, listed) = unsafe { ((*heap).owned, owned_segments(heap).collect::<Vec<_>>()) };
        for (way, seg) in owned.into_iter().enumerate() {
            if seg != NO_HINT {
                assert!(listed.contains(&seg), "entry {way} names a segment off the list");
                assert_eq!(owned_way(seg.addr()), way, "entry {way} holds a segment of another entry");
            }
        }
    }

    #[test]
    fn frees_across_several_segments_go_through_owned_and_leave_it_sound() {
        // Blocks counted live in the pages of `heap`'s segments: a free
        // taken for a misuse is reported and leaves its block counted.
        fn live_blocks(heap: *mut ThreadHeap) -> u32 {
            // SAFETY: this thread's record and its segments' page records.
            unsafe { owned_segments(heap) }
                .flat_map(Segment::pages)
                .map(|page| unsafe { (*page).used.load(Ordering::Relaxed) })
                .sum()
        }
        std::thread::spawn(|| {
            let layout = core::alloc::Layout::new::<[u8; 1024]>();
            let heap_alloc = |_| allocator_api2::alloc::Allocator::allocate(&Heap, layout).unwrap();
            // Three segments' worth of 1 KiB blocks.
            let per_segment = super::super::segment::SEGMENT_SIZE / 1024;
            let blocks: Vec<_> = (0..3 * per_segment).map(heap_alloc).collect();
            let heap = local();
            let segments = |blocks: &[NonNull<[u8]>]| {
                let mut segs: Vec<usize> = blocks
                    .iter()
                    .map(|b| b.cast::<u8>().as_ptr().addr() & !(super::super::segment::SEGMENT_SIZE - 1))
                    .collect();
                segs.sort_unstable();
                segs.dedup();
                segs.len()
            };
            assert!(segments(&blocks) >= 3, "the blocks span several segments");
            // Free from the two ends inwards, so consecutive frees fall in
            // different segments (the hint misses each time), checking the
            // entries as segments empty and leave the list.
            let (mut lo, mut hi) = (0, blocks.len());
            let mut turn = 0;
            while lo < hi {
                let block = if turn % 2 == 0 {
                    lo += 1;
                    blocks[lo - 1]
                } else {
                    hi -= 1;
                    blocks[hi]
                };
                turn += 1;
                // SAFETY: a live block of `layout`, freed once.
                unsafe { allocator_api2::alloc::Allocator::deallocate(&Heap, block.cast(), layout) };
                if turn % 512 == 0 {
                    assert_owned_entries_hold(heap);
                }
            }
            assert_owned_entries_hold(heap);
            // Again over the segments kept or made since: no block is taken
            // for another's, and nothing is reported.
            let again: Vec<_> = (0..2 * per_segment).map(heap_alloc).collect();
            for block in again.iter().rev() {
                // SAFETY: as above.
                unsafe { allocator_api2::alloc::Allocator::deallocate(&Heap, block.cast(), layout) };
            }
            assert_owned_entries_hold(heap);
            assert_eq!(live_blocks(heap), 0, "every free was taken (none was reported as a misuse)");
        })
        .join()
        .unwrap();
    }
}
