//! The thread-caching general heap: [`Heap`].
//!
//! # Design
//! Memory comes from the OS in 4 MiB segments aligned to their size
//! (`segment.rs`), cut into 64 KiB pages; each page serves one size class
//! (the pools' classes: steps of 8 bytes to 128, then four per doubling, so
//! internal waste stays under 25%; blocks up to 32 KiB). Each thread has a
//! heap (`thread.rs`) with a queue of pages per class and the segments it
//! owns.
//!
//! - **Allocate** (fast path): the thread's record, the head page of the
//!   class, pop its free list. No lock, no atomic read-modify-write.
//! - **Free by the owner**: the block's segment is its address rounded down
//!   to 4 MiB; one relaxed load of the segment's owner, equal to the
//!   thread's record, and the block is pushed onto its page's free list.
//! - **Free by another thread**: one CAS pushes the block onto the page's
//!   `thread_free` list; the owner takes the whole list with one swap when
//!   the page runs dry, so a producer/consumer pair recycles blocks instead
//!   of growing the heap.
//! - **Medium blocks** (over 32 KiB, or aligned beyond 4 KiB, up to 512
//!   KiB and aligned to at most 64 KiB) take whole consecutive pages of one
//!   of the thread's segments (a *span*: `segment.rs`, `SPAN_HEAD`). Their
//!   pages go back to the segment when the block is freed, and are reused
//!   and purged like any free page; a free from another thread parks the
//!   block in its first page, and the owner takes such spans back when it
//!   next allocates a medium block (or gives the segment up, or adopts it).
//! - **Large blocks** (over 512 KiB, or aligned beyond 64 KiB) get a
//!   mapping of their own, with the header in front and room to grow in
//!   place; freed mappings wait in a small cache for reuse until they
//!   decay (`large.rs`).
//! - **Thread exit**: empty segments go back to the OS, the others are
//!   abandoned to a global list with their live blocks and adopted by the
//!   next thread that needs a page. After its thread-locals are destroyed,
//!   a thread allocates from one shared *orphan* heap behind a lock.
//! - **Reentrancy**: the heap's metadata lives in segment headers and
//!   OS-mapped records; nothing here calls the global allocator.
//! - **Returning memory**: a page whose blocks are all free goes back to
//!   its segment and stays resident for reuse; a thread's slow path runs a
//!   decay pass every second or so, which purges (`MADV_DONTNEED`) the free
//!   pages that were free at the previous pass too, and moves an unused
//!   spare segment to the shared cache of empty segments, which unmaps after
//!   its own decay. A thread keeps at most 16 MiB of free pages resident;
//!   [`Heap::purge`] hands back what it can at once. The shared caches are
//!   sized by the CPUs the process may use ([`Heap::cpus`]).
//! - **Stats and limits** (`stats.rs`, `limit.rs`): nothing is counted on
//!   the fast paths; [`Heap::stats`] walks the page records. New memory is
//!   charged against an optional soft limit (purge first) and hard limit
//!   (fail the allocation).
//!
//! # Invariants
//! - A page's `free` list, `used` count and queue links are touched only by
//!   the thread owning its segment (the `owner` pointer), or under the
//!   orphan heap's lock for its segments, or by the single thread that
//!   abandons or adopts the segment (under the abandoned list's lock for
//!   the hand-over).
//! - `thread_free` is the only field other threads write: a lock-free
//!   Treiber push (CAS with release) whose only consumer is the owner's
//!   swap (acquire), so no ABA: the consumer never pops single nodes.
//! - A block counts in its page's `used` until the owner frees it or
//!   collects it from `thread_free`; so `used == 0` means no block of the
//!   page is live or in flight, and only then is a page reused for another
//!   class, or its segment unmapped. A remote free therefore always finds
//!   its segment mapped.
//! - The owner of a segment changes only from a live thread to null (at
//!   exit, before the record is reused) and from null to an adopter, so a
//!   thread's relaxed read of `owner` equals its own record exactly when it
//!   owns the segment.
//!
//! - Locks are taken in one order, outermost first: the profiler's (held
//!   while it records a sample, which allocates), the orphan heap, the
//!   unused records, the abandoned segments, the empty segments, the cache
//!   of large blocks, the soft limit's clock, the records list, the
//!   segments list. `limit::charge` never purges: when the limit wants a
//!   purge first, the allocation unwinds to the top (`with_purge`), which
//!   purges holding no lock and tries again. `fork_prepare` below takes
//!   them all in this order.
//! - Modules form layers, lowest first: `geometry`, `counters`, `fork`
//!   (the slot), `guard`, `segment_map`; `guarded`; `secure` (the mode and
//!   the quarantine's ring; its free path is here, at the top); `limit`;
//!   `segment`; `large`; `thread`; `stats`; this module. None names a
//!   module above it.
//!
//! Why no loom model: the one lock-free structure is the `thread_free`
//! push/swap pair above, a multi-producer single-consumer stack whose
//! consumer takes everything at once; every other shared structure is under
//! a `Mutex`. The list's length rides in the same word as its head (the
//! bits above 48, `segment.rs`), so one CAS publishes both and one swap
//! takes both: no state is split across two locations. On a weakly ordered
//! CPU (AArch64) the pusher's release CAS orders its writes of the block's
//! link and mark before the block becomes reachable, and the owner's
//! acquire swap makes them visible before it reads them; a failed CAS only
//! retries with the value it saw. The stress tests (`tests/heap_threads`)
//! run under TSan.
//!
//! Under Miri the OS layer backs segments with `std::alloc::System`, so the
//! same code runs there.

mod counters;
mod fork;
mod geometry;
mod guard;
#[cfg(all(unix, not(miri)))]
mod guarded;
#[cfg(not(all(unix, not(miri))))]
mod guarded {
    //! Sampled guarded allocations need page protection and a fault
    //! handler: none where the OS layer cannot protect pages (and Miri).
    pub(super) fn rate() -> usize {
        0
    }
    pub(super) fn sample(_size: usize, _class: usize) -> Option<core::ptr::NonNull<u8>> {
        None
    }
    pub(super) fn holds(_ptr: *const u8) -> bool {
        false
    }
    pub(super) fn free(_ptr: *mut u8) {}
    pub(super) fn usable(_ptr: *const u8) -> usize {
        0
    }
    pub(super) fn is_live(_ptr: *const u8) -> bool {
        false
    }
}
mod large;
mod limit;
mod secure;
mod segment;
mod segment_map;
mod stats;
mod thread;

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator};

use crate::resource::MemoryResource;
use guard::Misuse;
use segment::{Kind, MIN_CLASS, SMALL_MAX, Segment, segment_of};
use thread::{Popped, ThreadHeap};

use crate::misuse::OnMisuse;
pub use limit::HeapLimits;

/// The heap's size class for `layout`, or `None` for a large block: the
/// pools' classes up to 32 KiB, from 16 bytes up (see `segment::MIN_CLASS`).
#[inline(always)]
fn class_of(layout: Layout) -> Option<usize> {
    crate::classes::class_of(layout, SMALL_MAX)
}
pub use stats::{HEAP_CLASS_COUNT, HeapClassStats, HeapReport, HeapStats};

/// The process-wide thread-caching heap, usable as `#[global_allocator]`,
/// as an allocator-api2 [`Allocator`] and as a [`MemoryResource`].
///
/// ```
/// use allocator_api2::vec::Vec;
/// use memres::Heap;
///
/// let mut v = Vec::new_in(Heap);
/// v.extend(0..1000u32);
/// assert_eq!(v.iter().sum::<u32>(), 499_500);
/// ```
///
/// As the global allocator:
///
/// ```no_run
/// #[global_allocator]
/// static ALLOCATOR: memres::Heap = memres::Heap;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heap;

impl Heap {
    /// The heap's totals now: allocated, active, resident, mapped and
    /// retained bytes (see [`HeapStats`] for what each means and how to
    /// read them). Walks every segment's page records under the lock that
    /// segments take to be unmapped: for monitoring, not for a hot loop.
    pub fn stats() -> HeapStats {
        stats::stats()
    }

    /// Per size class: block size, live blocks and the bytes of the pages
    /// holding them; one entry per small class, then one for the large
    /// blocks. Walks every segment's page records: for diagnosis, not for
    /// a hot loop.
    ///
    /// ```
    /// use memres::Heap;
    ///
    /// let classes = Heap::class_stats();
    /// let busiest = classes.iter().max_by_key(|c| c.live).unwrap();
    /// println!("{} live blocks of {} bytes", busiest.live, busiest.size);
    /// ```
    pub fn class_stats() -> [HeapClassStats; HEAP_CLASS_COUNT] {
        stats::class_stats()
    }

    /// [`stats`](Self::stats) and the classes of
    /// [`class_stats`](Self::class_stats) in use, in one value: with the
    /// `serde` feature, what a monitoring system scrapes as JSON.
    ///
    /// ```
    /// let report = memres::Heap::report();
    /// assert!(report.classes.iter().all(|c| c.live > 0 || c.active > 0));
    /// ```
    pub fn report() -> HeapReport {
        let classes = Heap::class_stats().into_iter().filter(|c| c.live > 0 || c.active > 0).collect();
        HeapReport { totals: Heap::stats(), classes }
    }

    /// Sets the memory limits (see [`HeapLimits`]), replacing those from
    /// the environment (`MEMRES_HEAP_LIMIT`, `MEMRES_HEAP_SOFT_LIMIT`).
    /// Memory already held is not taken back by a lower limit, but no more
    /// is taken past it.
    ///
    /// ```
    /// use memres::{Heap, HeapLimits};
    ///
    /// let before = Heap::limits();
    /// Heap::set_limits(HeapLimits { soft: Some(1 << 30), hard: Some(2 << 30) });
    /// assert_eq!(Heap::limits().hard, Some(2 << 30));
    /// Heap::set_limits(before);
    /// ```
    pub fn set_limits(limits: HeapLimits) {
        limit::set(limits);
    }

    /// The memory limits in force.
    pub fn limits() -> HeapLimits {
        limit::get()
    }

    /// Installs the heap's `fork()` handlers (`pthread_atfork`), once: the
    /// forking thread takes every heap lock before the fork and releases
    /// them after, so the child never finds one held by a thread it does not
    /// have. Done at a thread's first allocation anyway; a library that
    /// makes the heap the process allocator calls it when it is loaded, so
    /// the heap's handlers run closest to the fork (handlers installed
    /// earlier prepare later).
    pub fn install_fork_handlers() {
        fork::register_once(fork_prepare, fork_after);
    }

    /// The CPUs the heap sizes its shared caches for: `MEMRES_HEAP_CPUS` if
    /// set, else the fewer of the CPUs this process may run on and its
    /// container's CPU quota (cgroup v2 `cpu.max`), so a container limited
    /// to 2 CPUs on a 64-CPU host does not keep caches for 64.
    pub fn cpus() -> usize {
        crate::os::cpus()
    }

    /// What the heap does when it detects a misuse (a double free, a free
    /// of a pointer that does not start a block it handed out, a corrupted
    /// free list): [`OnMisuse::Abort`] by default, or as
    /// `MEMRES_ON_MISUSE=report` says. Either way it prints one line naming
    /// the misuse and the address first.
    ///
    /// ```
    /// use memres::{Heap, OnMisuse};
    /// Heap::set_on_misuse(OnMisuse::Report);
    /// assert_eq!(Heap::on_misuse(), OnMisuse::Report);
    /// Heap::set_on_misuse(OnMisuse::Abort);
    /// ```
    pub fn set_on_misuse(on_misuse: OnMisuse) {
        crate::misuse::set_mode(on_misuse);
    }

    /// The misuse policy in force (see [`set_on_misuse`](Self::set_on_misuse)).
    pub fn on_misuse() -> OnMisuse {
        crate::misuse::mode()
    }

    /// How many misuses the heap has detected since the process started
    /// (under [`OnMisuse::Report`], the process goes on after each).
    pub fn misuses() -> usize {
        crate::misuse::misuses()
    }

    /// Whether the heap runs in secure mode: guard pages after small pages
    /// and large blocks, free lists in a random order, freed small blocks
    /// zeroed and held back from reuse for a while (a thread's last 256
    /// frees, up to 1 MiB), freed large mappings made inaccessible and not
    /// reused, and with `MEMRES_GUARDED_SAMPLE_RATE=N` about one small
    /// allocation in `N` placed between guard pages, so that an overflow or
    /// a use after free faults at once with a report of where the block was
    /// allocated and freed.
    ///
    /// On with the cargo feature `secure`, or when `MEMRES_SECURE=1` is in
    /// the environment at the heap's first use (the malloc shim too); fixed
    /// from then on. It costs speed and memory that the default mode, whose
    /// misuse checks are always on, does not pay (see BENCHMARKS.md).
    pub fn secure() -> bool {
        secure::on()
    }

    /// Returns free memory to the OS now: the calling thread's pages that
    /// hold no block (they stay mapped and fault back in as zero pages when
    /// reused), its spare segment, the empty segments kept for other
    /// threads, and the cache of freed large blocks.
    /// Returns the resident bytes handed back (not address space that was
    /// never touched). Other threads' free pages are theirs to purge.
    pub fn purge() -> usize {
        thread::flush_quarantine();
        purge_shared()
    }

    /// Allocates a block for `layout` (a zero size is served as one byte).
    #[inline(always)]
    fn alloc_block(layout: Layout) -> Option<NonNull<u8>> {
        if let Some(class) = class_of(layout) {
            let heap = thread::local();
            // SAFETY: `heap` is this thread's record. Every call here is the
            // last thing done (see `ThreadHeap::try_pop`).
            unsafe {
                match ThreadHeap::try_pop::<true>(heap, class, layout.size()) {
                    Popped::Block(block) => Some(block),
                    Popped::Empty => Heap::allocate_slow(heap, class, layout.size()),
                    Popped::Corrupt(page, block) => {
                        Heap::allocate_past_corrupt(heap, class, layout.size(), page, block)
                    }
                }
            }
        } else {
            Heap::alloc_big(layout).map(|(block, _)| block)
        }
    }

    /// Allocates a block too big for a size class: a medium block (whole
    /// pages of a small segment, up to `MEDIUM_MAX` and aligned to at most
    /// a page) or a large one (a mapping of its own). Also says whether its
    /// memory is known to be zero.
    #[cold]
    #[inline(never)]
    fn alloc_big(layout: Layout) -> Option<(NonNull<u8>, bool)> {
        let heap = thread::current();
        // SAFETY: `current()` is this thread's record (or `EMPTY`, which
        // counts nothing).
        if !thread::is_empty(heap) && unsafe { ThreadHeap::sample_due(heap, layout.size()) } {
            // SAFETY: as above.
            if let Some(sampled) = unsafe { Heap::take_sample(heap, layout, layout.size()) } {
                return Some(sampled);
            }
        }
        if layout.size() <= segment::MEDIUM_MAX && layout.align() <= segment::PAGE_SIZE {
            fork::register_once(fork_prepare, fork_after);
            let pages = layout.size().div_ceil(segment::PAGE_SIZE);
            // SAFETY: `current()` is this thread's record (or `EMPTY`).
            return with_purge(|| unsafe { thread::allocate_medium(thread::current(), pages) });
        }
        with_purge(|| large::allocate(layout))
    }

    /// Reports the corrupt free list `try_pop` found (dropping it), then
    /// allocates on the slow path.
    ///
    /// # Safety
    /// `heap` is this thread's record; `page` is a page in its queue for
    /// `class`, whose list is corrupt at `block`.
    #[cold]
    #[inline(never)]
    unsafe extern "C" fn allocate_past_corrupt(
        heap: *mut ThreadHeap,
        class: usize,
        size: usize,
        page: *mut segment::Page,
        block: *mut segment::Block,
    ) -> Option<NonNull<u8>> {
        // SAFETY: the caller's contract.
        unsafe {
            thread::corrupt_list(page, block);
            Heap::allocate_slow(heap, class, size)
        }
    }

    /// The small-block slow path (for a request of `size` bytes). A
    /// thread's first allocation goes through here, so the fork handlers
    /// are in place before it holds a heap lock. So does every allocation in
    /// secure mode (`secure.rs`).
    ///
    /// # Safety
    /// `heap` is this thread's record (or `EMPTY`).
    #[cold]
    #[inline(never)]
    unsafe extern "C" fn allocate_slow(heap: *mut ThreadHeap, class: usize, size: usize) -> Option<NonNull<u8>> {
        fork::register_once(fork_prepare, fork_after);
        // The profiler's count (the inline path counts only what it pops;
        // in secure mode it sees no record at all).
        let counting = if secure::divert_allocations() { thread::current() } else { heap };
        // SAFETY: `counting` is this thread's record (or `EMPTY`, which
        // counts nothing).
        if !thread::is_empty(counting) && unsafe { ThreadHeap::sample_due(counting, size) } {
            // A block at least the class's size, aligned to 16 as C's are (a
            // large block starts at a page, aligned far more anyway).
            let layout = Layout::from_size_align(crate::classes::class_size(class), 16).ok()?;
            // SAFETY: as above.
            if let Some((block, _)) = unsafe { Heap::take_sample(counting, layout, size) } {
                return Some(block);
            }
        }
        let heap = if secure::divert_allocations() {
            // Secure mode with sampling: a guarded block now and then, else
            // the thread's own (whose record the fast path did not see).
            if let Some(block) = guarded::sample(size, class) {
                return Some(block);
            }
            let heap = thread::current();
            // SAFETY: `current()` is this thread's record (or `EMPTY`, which
            // has no page to pop).
            if let Some(block) = unsafe { ThreadHeap::pop(heap, class) } {
                return Some(block);
            }
            heap
        } else {
            heap
        };
        let mut first = true;
        with_purge(|| {
            // After a purge the thread may have a record it lacked before.
            let heap = if core::mem::take(&mut first) { heap } else { thread::current() };
            // SAFETY: the caller's contract; `current()` is this thread's record.
            unsafe { thread::allocate_slow(heap, class) }
        })
    }

    /// The thread's count to the profiler's next sample ran out on an
    /// allocation of `size` bytes, to be served as `layout`: arms the next
    /// count, and if the profiler is on serves this one as a sample, from a
    /// mapping of its own (a large block, whose free tells the profiler; see
    /// `crate::profile`). `None` if the profiler is off, or the thread is in
    /// it, or no mapping could be had (then the sample is taken but not
    /// tracked): the caller serves the allocation as usual.
    ///
    /// # Safety
    /// `heap` is this thread's record (not `EMPTY`).
    #[cold]
    #[inline(never)]
    unsafe fn take_sample(heap: *mut ThreadHeap, layout: Layout, size: usize) -> Option<(NonNull<u8>, bool)> {
        let interval = crate::profile::interval();
        // SAFETY: the caller's contract.
        unsafe { ThreadHeap::arm_sampling(heap, interval) };
        if interval == 0 || !crate::profile::may_record() {
            return None;
        }
        let Some((block, zero)) = with_purge(|| large::allocate(layout)) else {
            crate::profile::record(size, interval, "Heap".into(), false);
            return None;
        };
        let id = crate::profile::record(size, interval, "Heap".into(), true);
        // SAFETY: a large block just made, not handed out yet: its header
        // is this thread's to write.
        unsafe { large::set_sample(segment_of(block.as_ptr()), id) };
        Some((block, zero))
    }

    /// The profiler was started or stopped: the calling thread's count to
    /// its next sample starts over (other threads notice within
    /// `profile::LOOK_EVERY` bytes of their allocations).
    pub(crate) fn profiler_changed() {
        let heap = thread::current();
        if !thread::is_empty(heap) {
            // SAFETY: this thread's own record.
            unsafe { ThreadHeap::arm_sampling(heap, crate::profile::interval()) };
        }
    }

    /// Frees a block. A pointer that is not a live block of this heap is
    /// reported (see `guard.rs`) and left alone; one outside the heap's
    /// memory is never read.
    ///
    /// # Safety
    /// `ptr` is a live block of this heap (anything else is a misuse that
    /// the checks catch as far as they can; none is guaranteed).
    #[inline(always)]
    unsafe fn free_block(ptr: *mut u8) {
        // SAFETY: the caller's contract.
        unsafe { Heap::free_as::<false>(ptr, report_foreign) }
    }

    /// `free_block`'s body. Calls `foreign` instead, with nothing touched,
    /// if `ptr` is outside the heap's memory (always looked up for `C`, else
    /// only with the misuse checks on). For `C` (C's `free`), the parts that
    /// may call the OS or wait on a lock keep `errno` as it was; the common
    /// path, a block of a page this thread owns, makes no call at all.
    ///
    /// Every function the inline fast paths (here, `alloc_block`,
    /// `malloc_c`) call is reached as the last thing they do, and is
    /// `extern "C"`: such a function cannot unwind, so the compiler may make
    /// the call a jump even from the malloc shim's `extern "C"` functions
    /// (a call that may unwind out of one needs a landing pad, hence a
    /// frame), and the inline paths save no registers. (Nothing on these
    /// paths panics; if it did, the process would abort, as it must in an
    /// allocator.)
    ///
    /// # Safety
    /// As for `free_block`.
    #[inline(always)]
    unsafe fn free_as<const C: bool>(ptr: *mut u8, foreign: fn(*mut u8)) {
        let heap = thread::local();
        // The segment this thread last freed into as its owner: still its
        // own small segment (see `ThreadHeap::owned_hint`), so the map and
        // the header need no look. (`ptr` at the segment's very start is its
        // header page, which holds no block: reported as invalid.)
        // SAFETY: this thread's record.
        let seg = unsafe { ThreadHeap::owned_hint(heap) };
        if ptr.addr() & !(segment::SEGMENT_SIZE - 1) != seg.addr() {
            // SAFETY: the caller's contract.
            return unsafe { Heap::free_elsewhere::<C>(heap, ptr, foreign) };
        }
        let ptr = segment::block_of_caller::<C>(seg, ptr);
        // SAFETY: a small segment this thread owns holds `ptr`.
        let page = unsafe { Segment::page_of(seg, ptr) };
        // SAFETY: as above.
        unsafe { thread::free_local::<C>(heap, seg, page, ptr) }
    }

    /// `free_as` for a block outside the segment of the thread's hint: a
    /// block of another segment the record names as its own (see
    /// `ThreadHeap::owned_segment_of`) is freed here, with no frame of its
    /// own; anything else goes to `free_looked_up`.
    ///
    /// # Safety
    /// As for `free_block`; `heap` is this thread's record.
    #[inline(never)]
    // Only ever called from Rust (`extern "C"` for the reason in `free_as`).
    #[allow(improper_ctypes_definitions)]
    unsafe extern "C" fn free_elsewhere<const C: bool>(heap: *mut ThreadHeap, ptr: *mut u8, foreign: fn(*mut u8)) {
        // SAFETY: this thread's record.
        let Some(seg) = (unsafe { ThreadHeap::owned_segment_of(heap, ptr) }) else {
            // SAFETY: the caller's contract.
            return unsafe { Heap::free_looked_up::<C>(heap, ptr, foreign) };
        };
        let ptr = segment::block_of_caller::<C>(seg, ptr);
        // SAFETY: a small segment on this thread's list holds `ptr` (the
        // `owned` entries' invariant), so it may be the hint, and its page
        // records are this thread's.
        unsafe {
            ThreadHeap::set_owned_hint(heap, seg);
            let page = Segment::page_of(seg, ptr);
            thread::free_local::<C>(heap, seg, page, ptr)
        }
    }

    /// `free_elsewhere` past the record's own segments: look the block's
    /// segment up (the map first, unless the checks are off and `C` is not
    /// asked for), then free it as a large block, a block of a segment the
    /// thread owns, or a remote free.
    ///
    /// # Safety
    /// As for `free_block`; `heap` is this thread's record.
    #[inline(never)]
    // Only ever called from Rust (`extern "C"` for the reason in `free_as`).
    #[allow(improper_ctypes_definitions)]
    unsafe extern "C" fn free_looked_up<const C: bool>(heap: *mut ThreadHeap, ptr: *mut u8, foreign: fn(*mut u8)) {
        if secure::on() {
            // SAFETY: the caller's contract.
            return unsafe { Heap::free_secure::<C>(ptr, foreign) };
        }
        // SAFETY: the caller's contract.
        unsafe { thread::free_in::<C>(heap, ptr, foreign, true) }
    }

    /// Secure mode's `free` (every free comes here in secure mode, see
    /// `secure.rs`): a guarded block goes back to its slot; a small block is
    /// checked, zeroed and quarantined, and the block that leaves the
    /// quarantine for it is freed; anything else takes the checked path.
    ///
    /// # Safety
    /// As for `free_block`.
    #[cold]
    unsafe fn free_secure<const C: bool>(ptr: *mut u8, foreign: fn(*mut u8)) {
        if guarded::holds(ptr) {
            return crate::os::keeping_errno::<C>(|| guarded::free(ptr));
        }
        let heap = thread::current_or_attach();
        let seg = segment_map::get(segment::header_addr(ptr.addr())).cast::<Segment>();
        if seg.is_null() {
            return foreign(ptr);
        }
        let ptr = segment::in_segment(seg, ptr);
        // SAFETY: the map says a header lives there (as in
        // `thread::free_in`); a small block start lies in its page's carved
        // memory, which the caller may write (its block, being freed).
        unsafe {
            if (*seg).kind == Kind::Large {
                return thread::free_in::<C>(heap, ptr, foreign, false);
            }
            let page = Segment::page_of(seg, ptr);
            let class = (*page).class.load(core::sync::atomic::Ordering::Relaxed) as usize;
            // Medium blocks, pointers that start no block, and blocks that
            // carry the free mark (a double free to confirm): the checked path.
            if class >= segment::SMALL_CLASSES
                || !Segment::starts_block(page, ptr)
                || guard::carries_mark(ptr, guard::mark(ptr.addr()))
            {
                return thread::free_in::<C>(heap, ptr, foreign, false);
            }
            if secure::quarantined(ptr) {
                return guard::report(Misuse::DoubleFree, ptr.addr());
            }
            if thread::is_empty(heap) {
                // No exit to empty a quarantine (the thread's thread-locals
                // are gone, or it could get no record): freed at once.
                return thread::free_in::<C>(heap, ptr, foreign, false);
            }
            let size = crate::classes::class_size(class);
            ptr.write_bytes(0, size);
            ptr.cast::<usize>().add(1).write(secure::quarantine_mark(ptr.addr()));
            secure::hold(ptr, size);
            while let Some(old) = secure::overflow() {
                thread::free_in::<C>(heap, old, foreign, false);
            }
        }
    }

    /// Allocates as C's `malloc` does: `size` bytes (a unique block for 0)
    /// aligned to 16 (`alignof(max_align_t)` on the 64-bit targets), or null
    /// with `errno` set to `ENOMEM`. The common case, a block from the
    /// calling thread's cache, is inline and makes no call.
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use memres::Heap;
    ///
    /// let p = Heap::malloc_c(24);
    /// assert!(!p.is_null() && p.addr() % 16 == 0);
    /// // SAFETY: a live block of the heap, freed once.
    /// unsafe { Heap::free_c(NonNull::new(p).unwrap(), |_| unreachable!("the heap's own block")) };
    ///
    /// let mut local = 0u64;
    /// let stack = NonNull::from(&mut local).cast::<u8>();
    /// // SAFETY: memory the heap does not hold: only `foreign` sees it.
    /// unsafe { Heap::free_c(stack, |p| eprintln!("not ours: {p:p}")) };
    /// ```
    #[inline(always)]
    pub fn malloc_c(size: usize) -> *mut u8 {
        if size <= C_SMALL_MAX {
            let class = C_CLASSES[size.div_ceil(C_ALIGN)] as usize;
            let heap = thread::local();
            // SAFETY: `heap` is this thread's record; every call is the last
            // thing done (see `ThreadHeap::try_pop`).
            match unsafe { ThreadHeap::try_pop::<true>(heap, class, size) } {
                Popped::Block(block) => return block.as_ptr(),
                Popped::Empty => {}
                // SAFETY: as above.
                Popped::Corrupt(page, block) => return unsafe { Heap::malloc_c_past_corrupt(size, page, block) },
            }
        }
        Heap::malloc_c_slow(size)
    }

    /// `malloc_c`'s inline part alone: a block of `size` bytes from the
    /// calling thread's cache, or null if it has none at hand (then
    /// `malloc_c` serves the request, and reports a corrupt list if that is
    /// why). For a caller whose own slow path does more than `malloc_c`'s
    /// (C++'s `operator new`: the new-handler), so that its inline path
    /// keeps nothing for after a call.
    ///
    /// ```
    /// use memres::Heap;
    ///
    /// let mut p = Heap::malloc_c_cached(40);
    /// if p.is_null() {
    ///     p = Heap::malloc_c(40);
    /// }
    /// assert!(!p.is_null() && p.addr() % 16 == 0);
    /// // SAFETY: a live block of the heap, freed once.
    /// unsafe { Heap::free_c(core::ptr::NonNull::new(p).unwrap(), |_| unreachable!()) };
    /// ```
    #[inline(always)]
    pub fn malloc_c_cached(size: usize) -> *mut u8 {
        if size <= C_SMALL_MAX {
            let class = C_CLASSES[size.div_ceil(C_ALIGN)] as usize;
            // SAFETY: `local()` is this thread's record. A corrupt list is
            // left as found, for `malloc_c` to find and report.
            if let Popped::Block(block) = unsafe { ThreadHeap::try_pop::<true>(thread::local(), class, size) } {
                return block.as_ptr();
            }
        }
        core::ptr::null_mut()
    }

    /// Reports the corrupt free list `try_pop` found, then serves `size` on
    /// `malloc_c`'s slow path.
    ///
    /// # Safety
    /// `page` is a page in this thread's queue, its list corrupt at `block`.
    #[cold]
    #[inline(never)]
    unsafe extern "C" fn malloc_c_past_corrupt(
        size: usize,
        page: *mut segment::Page,
        block: *mut segment::Block,
    ) -> *mut u8 {
        // SAFETY: the caller's contract.
        unsafe { thread::corrupt_list(page, block) };
        Heap::malloc_c_slow(size)
    }

    /// `malloc_c` past the thread's cache: a fresh page, a large block, a
    /// size no layout holds (null and `ENOMEM`).
    #[cold]
    #[inline(never)]
    extern "C" fn malloc_c_slow(size: usize) -> *mut u8 {
        let block = Layout::from_size_align(size.max(1), C_ALIGN).ok().and_then(Heap::alloc_block);
        block.map_or_else(
            || {
                crate::os::set_errno(crate::os::ENOMEM);
                core::ptr::null_mut()
            },
            NonNull::as_ptr,
        )
    }

    /// Frees a block as C's `free` does: `errno` is left as it was (as
    /// POSIX.1-2024 and glibc promise), and for a pointer outside the
    /// heap's memory (see [`Heap::owns`]) `foreign` is called instead, with
    /// nothing touched, for the caller to report in its own words. Other
    /// misuses are reported (see [`Heap::set_on_misuse`]). The common case,
    /// a block of a page the calling thread owns, is inline and makes no
    /// call.
    ///
    /// # Safety
    /// `ptr` is a live block of this heap, or memory the heap does not
    /// hold; freed once. A block keeps the provenance `malloc_c` returned
    /// it with (as a pointer C code holds does): the fast path writes the
    /// block through `ptr` itself, so a pointer narrowed since (a Rust
    /// reference's or a `Box`'s) is not allowed here (use
    /// [`Heap::free`](Heap::free) or `Allocator::deallocate`).
    #[inline(always)]
    pub unsafe fn free_c(ptr: NonNull<u8>, foreign: fn(*mut u8)) {
        // SAFETY: the caller's contract.
        unsafe { Heap::free_as::<true>(ptr.as_ptr(), foreign) }
    }

    /// The checks `free_block` makes, for a block about to be resized in
    /// place: in the heap's memory, the start of a block, not freed (a
    /// small block's mark, a large block's live flag).
    ///
    /// # Safety
    /// As for `free_block`.
    unsafe fn looks_live(ptr: *mut u8) -> bool {
        if guarded::holds(ptr) {
            return guarded::is_live(ptr);
        }
        let seg = segment_map::get(segment::header_addr(ptr.addr())).cast::<Segment>();
        if seg.is_null() {
            return false;
        }
        let ptr = segment::in_segment(seg, ptr);
        // SAFETY: the map says a header lives there; a small block start
        // lies in the page's carved memory, readable.
        unsafe {
            if (*seg).kind == Kind::Large {
                return large::is_live_start(seg, ptr);
            }
            let page = Segment::page_of(seg, ptr);
            if Segment::starts_span(seg, page, ptr) {
                return !Segment::span_parked(page);
            }
            Segment::starts_block(page, ptr)
                && !guard::carries_mark(ptr, guard::mark(ptr.addr()))
                && !secure::quarantined(ptr)
        }
    }

    /// The room at `ptr` for growing in place: its class size, or a large
    /// block's mapping up to its end.
    ///
    /// # Safety
    /// `ptr` is a live block of this heap.
    unsafe fn room(ptr: *mut u8) -> usize {
        // SAFETY: as in `free_block`; a small page's class is fixed while
        // any of its blocks is live.
        unsafe {
            let seg = segment_of(ptr);
            if (*seg).kind == Kind::Large {
                (*seg).large_size
            } else {
                let page = Segment::page_of(seg, ptr);
                match (*page).class.load(core::sync::atomic::Ordering::Relaxed) {
                    segment::SPAN_HEAD => Segment::span_pages(page) * segment::PAGE_SIZE,
                    class => crate::classes::class_size(class as usize),
                }
            }
        }
    }

    /// Whether `ptr` points into the heap's memory (its segments and large
    /// mappings, while it holds them): false for null, for other
    /// allocators' memory, for the stack and statics. It reads only the
    /// heap's own bookkeeping, never the memory at `ptr`, so any address the
    /// caller can hold may be asked about. It is not a liveness check: for a
    /// block that was freed and whose memory the heap still holds, it says
    /// true.
    ///
    /// ```
    /// use allocator_api2::boxed::Box;
    /// use memres::Heap;
    ///
    /// let ours = Box::new_in(7u64, Heap);
    /// let theirs = std::boxed::Box::new(7u64);
    /// assert!(Heap::owns(&*ours as *const u64 as *const u8));
    /// assert!(!Heap::owns(&*theirs as *const u64 as *const u8));
    /// ```
    pub fn owns(ptr: *const u8) -> bool {
        if guarded::holds(ptr) {
            return true;
        }
        let addr = ptr.addr();
        let base = segment::header_addr(addr);
        let seg = segment_map::get(base).cast::<Segment>();
        if addr == 0 || seg.is_null() {
            return false;
        }
        // SAFETY: the map says a header lives at `base`, mapped until its
        // entry is cleared, and its whole region is the heap's (segment_map.rs),
        // so `ptr` (which the caller holds) cannot be another mapping's while
        // the entry is set; `kind`, `map` and `map_size` do not change after
        // the header is published.
        unsafe {
            match (*seg).kind {
                Kind::Small => addr - base >= segment::PAGE_SIZE && addr - base < segment::SEGMENT_SIZE,
                Kind::Large => {
                    let start = (*seg).map.as_ptr().addr();
                    addr >= start && addr - start < (*seg).map_size
                }
            }
        }
    }

    /// The bytes usable in a live block: its size class's size, or a
    /// large block's size rounded up to whole OS pages. At least the size
    /// it was allocated or last resized with (`malloc_usable_size`).
    ///
    /// # Safety
    /// `ptr` is a live block of this heap.
    pub unsafe fn usable_size(ptr: NonNull<u8>) -> usize {
        // SAFETY: the caller's contract; as in `free_block`.
        unsafe {
            if guarded::holds(ptr.as_ptr()) {
                return guarded::usable(ptr.as_ptr());
            }
            let seg = segment_of(ptr.as_ptr());
            if (*seg).kind == Kind::Large { (*seg).block_size } else { Heap::room(ptr.as_ptr()) }
        }
    }

    /// Frees a live block without its layout (C's `free`).
    ///
    /// # Safety
    /// `ptr` is a live block of this heap, freed once.
    pub unsafe fn free(ptr: NonNull<u8>) {
        // SAFETY: the caller's contract.
        unsafe { Heap::free_block(ptr.as_ptr()) }
    }

    /// Resizes a live block without its old layout (C's `realloc`): in
    /// place where it fits, else moved with its usable bytes. The new block
    /// is aligned to `align` (which the old block must have been aligned
    /// to as well). `None` if the heap cannot serve `new_size`; the old
    /// block is then untouched.
    ///
    /// # Safety
    /// `ptr` is a live block of this heap, aligned to `align`; `new_size`
    /// is not zero; `align` is a power of two.
    pub unsafe fn realloc_unsized(ptr: NonNull<u8>, new_size: usize, align: usize) -> Option<NonNull<u8>> {
        let new = Layout::from_size_align(new_size, align).ok()?;
        // SAFETY: the caller's contract; the usable bytes are the block's.
        unsafe {
            let old = Layout::from_size_align_unchecked(Heap::usable_size(ptr), align);
            Heap::resize(ptr, old, new).ok().map(NonNull::cast)
        }
    }
}

// SAFETY: blocks are at least `layout.size()` bytes, aligned to
// `layout.align()` (a class size is a multiple of the alignment it serves;
// large blocks are placed at their alignment), and stay valid until freed.
unsafe impl GlobalAlloc for Heap {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Heap::alloc_block(layout).map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller's contract: a live block of this allocator.
        unsafe { Heap::free_block(ptr) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class_of(layout).is_none() {
            // A fresh mapping (or clean pages) is zero already: touching it
            // would only fault its pages in.
            return match Heap::alloc_big(layout) {
                Some((block, true)) => block.as_ptr(),
                Some((block, false)) => {
                    // SAFETY: a block of at least `layout.size()` bytes.
                    unsafe { block.as_ptr().write_bytes(0, layout.size()) };
                    block.as_ptr()
                }
                None => core::ptr::null_mut(),
            };
        }
        // SAFETY: forwarded contract.
        let ptr = unsafe { self.alloc(layout) };
        if !ptr.is_null() {
            // SAFETY: a fresh block of at least `layout.size()` bytes.
            unsafe { ptr.write_bytes(0, layout.size()) };
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        // SAFETY: the caller's contract: a live, non-null block of `layout`
        // (GlobalAlloc sizes are never zero).
        unsafe { Heap::resize(NonNull::new_unchecked(ptr), layout, new) }
            .map_or(core::ptr::null_mut(), |block| block.cast::<u8>().as_ptr())
    }
}

// SAFETY: as for `GlobalAlloc`; every copy of `Heap` is the same heap, so a
// block may be freed through any of them.
unsafe impl Allocator for Heap {
    #[inline(always)]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(NonNull::slice_from_raw_parts(crate::resource::dangling_for(layout), 0));
        }
        let block = Heap::alloc_block(layout).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(block, layout.size()))
    }

    #[inline(always)]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: the caller's contract: a live block of this heap.
            unsafe { Heap::free_block(ptr.as_ptr()) }
        }
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(NonNull::slice_from_raw_parts(crate::resource::dangling_for(layout), 0));
        }
        // SAFETY: a non-zero size.
        let block = NonNull::new(unsafe { GlobalAlloc::alloc_zeroed(self, layout) }).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(block, layout.size()))
    }

    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract (`new.size() >= old.size()`).
        unsafe { Heap::resize(ptr, old, new) }
    }

    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { Heap::resize(ptr, old, new) }
    }
}

impl Heap {
    /// Moves a block to a new layout, in place when its block has room
    /// (and is not more than twice too big) and is aligned enough.
    ///
    /// # Safety
    /// `ptr` is a live block of this heap allocated with `old`.
    unsafe fn resize(ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // A zero-size block is no block (a dangling pointer): nothing to check.
        // SAFETY: as for `free_block`, whose checks these are.
        if guard::ON && old.size() != 0 && !unsafe { Heap::looks_live(ptr.as_ptr()) } {
            guard::report(Misuse::InvalidPointer, ptr.addr().get());
            return Err(AllocError);
        }
        // A guarded block (secure mode) always moves.
        let guarded = guarded::holds(ptr.as_ptr());
        if old.size() != 0 && new.size() != 0 && ptr.as_ptr().addr() % new.align() == 0 && !guarded {
            // SAFETY: a live block (the caller's contract).
            let usable = unsafe { Heap::room(ptr.as_ptr()) };
            // A small block stays if the new size has its class; a large
            // one while it fits its reserve and stays large (a block that
            // shrinks to a small size moves, so its mapping can go).
            // SAFETY: a live block's header is readable.
            let large = unsafe { (*segment_of(ptr.as_ptr())).kind == Kind::Large };
            if large {
                // In secure mode the mapping past the block is a guard.
                // SAFETY: a live block's header is readable.
                let usable = if secure::on() { unsafe { (*segment_of(ptr.as_ptr())).block_size } } else { usable };
                if new.size() <= usable && class_of(new).is_none() {
                    // SAFETY: a live large block, the caller's to resize,
                    // and the new size within its usable size.
                    if with_purge(|| unsafe { large::resize(segment_of(ptr.as_ptr()), new.size()) }).is_some() {
                        return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
                    }
                }
            } else if new.size() <= usable && new.size() > usable / 2 {
                return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
            } else if new.size() > usable && new.size() <= segment::MEDIUM_MAX && new.align() <= segment::PAGE_SIZE {
                // A medium block of this thread grows over free pages after it.
                let pages = new.size().div_ceil(segment::PAGE_SIZE);
                // SAFETY: a live block of a small segment (not large, above);
                // `in_segment` gives it the segment's provenance.
                if unsafe {
                    let seg = segment_of(ptr.as_ptr());
                    thread::grow_span(thread::current(), seg, segment::in_segment(seg, ptr.as_ptr()), pages)
                } {
                    return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
                }
            }
        }
        let block = Allocator::allocate(&Heap, new)?;
        // SAFETY: both blocks live and distinct; `old.size()` bytes are
        // initialised (the caller's contract).
        unsafe {
            core::ptr::copy_nonoverlapping(ptr.as_ptr(), block.cast::<u8>().as_ptr(), old.size().min(new.size()));
            Allocator::deallocate(&Heap, ptr, old);
        }
        Ok(block)
    }
}

/// The alignment of [`Heap::malloc_c`]'s blocks.
const C_ALIGN: usize = 16;
/// Sizes up to this find `malloc_c`'s class in [`C_CLASSES`].
const C_SMALL_MAX: usize = 1024;
/// The class of a `malloc_c` of `size` bytes, indexed by `ceil(size / 16)`:
/// [`class_of`] for `(size, 16)` (so 0 takes the smallest class), worked
/// out ahead so the fast path is one load.
static C_CLASSES: [u8; C_SMALL_MAX / C_ALIGN + 1] = {
    let mut table = [0; C_SMALL_MAX / C_ALIGN + 1];
    let mut i = 0;
    while i < table.len() {
        let size = if i == 0 { C_ALIGN } else { i * C_ALIGN };
        let class = crate::classes::class_of_size(size);
        table[i] = if class < MIN_CLASS { MIN_CLASS } else { class } as u8;
        i += 1;
    }
    table
};

/// `free_block`'s answer to a pointer outside the heap's memory.
#[cold]
fn report_foreign(ptr: *mut u8) {
    guard::report(Misuse::Foreign, ptr.addr());
}

/// What a foreign fast path (C++'s `heap_resource()`) needs to allocate and
/// free small blocks inline, on the calling thread only (from
/// [`Heap::fast_path`]). All offsets in bytes.
///
/// - **Allocate** a block of size class `c` (the classes of
///   [`Heap::class_stats`], at least `min_class`; requests over 32 KiB or
///   aligned beyond 4 KiB are never inline): `heap = *local_slot`;
///   `page = heap.queues[c].head` (queues at offset 0, `queue_stride`
///   apart, head first); if `page` is not null and its free list (first
///   word) is a block `b`: when `checks` is set, `b[1]` must equal `mark ^
///   b` (every free block carries the mark), and `b`'s link decodes as
///   `next = b[0] ^ key ^ b` (`key` the page's word at `page_key_offset`),
///   which must be 0 or a multiple of 8 in the same page (`(next ^ b) >>
///   page_shift == 0`) at an offset below the page's `u32` carved end
///   (`page_carved_offset`);
///   otherwise call the heap, which reports the corruption. Subtract the
///   bytes asked for from the record's `isize` at `sample_left_offset` (the
///   profiler's count, see [`profile`](crate::profile)); if it goes below
///   zero, leave the block and call the heap (which takes the sample).
///   Store `next` as the page's free list, `0` into `b[1]`, and `used + 1`
///   into the page's `u32` `used` (at `page_used_offset`, a relaxed atomic
///   store).
///   Otherwise call the heap. Without `checks`, links are plain and there
///   are no marks.
/// - **Free** a small block `p`: `seg = p & !(segment_size - 1)`; if the
///   pointer-sized atomic at `seg` (the owner, relaxed load) equals `heap`,
///   the page is `seg + pages_offset + ((p - seg) >> page_shift) *
///   page_stride`. With `checks`: `p`'s offset in its page must be below
///   the carved end (zero in a page not in use) and divisible by the class
///   size, and `p[1]` must not
///   equal `mark ^ p` (a freed block's mark); else call the heap, which
///   confirms and reports. If `used` is above 1, write `p[0] = free ^ key ^
///   p` (plain `free` without `checks`) and `p[1] = mark ^ p`, make `p` the
///   page's free list and store `used - 1`. Otherwise call the heap (which
///   also handles a page becoming empty).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct HeapFastPath {
    /// Where the calling thread's record pointer lives (valid until the
    /// thread ends; the pointer in it may change at any call into the heap).
    pub local_slot: NonNull<*mut u8>,
    /// Bytes from one class's queue to the next in a record.
    pub queue_stride: usize,
    /// Where a record's count to the profiler's next sample lies (an
    /// `isize`, the owner's alone).
    pub sample_left_offset: usize,
    /// Size and alignment of a small segment.
    pub segment_size: usize,
    /// Where a segment's page records start.
    pub pages_offset: usize,
    /// Bytes from one page record to the next.
    pub page_stride: usize,
    /// log2 of the bytes of memory one page record covers.
    pub page_shift: u32,
    /// Where a page record's `u32` count of used blocks lies.
    pub page_used_offset: usize,
    /// Where a page record's `u32` carved end (bytes from the page's start) lies.
    pub page_carved_offset: usize,
    /// Where a page record's `u64` divisibility constant lies.
    pub page_magic_offset: usize,
    /// Where a page record's pointer-sized link key lies.
    pub page_key_offset: usize,
    /// The largest size served from pages.
    pub small_max: usize,
    /// Small size classes.
    pub classes: usize,
    /// The smallest class the heap uses (smaller ones take it).
    pub min_class: usize,
    /// Whether links are encoded and freed blocks marked (the default-on
    /// misuse checks; off only in `unchecked-heap` builds).
    pub checks: bool,
    /// The double-free mark's key: a freed block `p` holds `mark ^ p` in its
    /// second word.
    pub mark: usize,
}

// The offsets `HeapFastPath` fixes at zero rather than reports.
const _: () = {
    assert!(core::mem::offset_of!(Segment, owner) == 0);
    assert!(core::mem::offset_of!(segment::Page, free) == 0);
};

impl Heap {
    /// The layout a foreign fast path relies on (see [`HeapFastPath`]).
    pub fn fast_path() -> HeapFastPath {
        guard::init(); // the mark is fixed from here on
        HeapFastPath {
            // SAFETY: the address of a thread-local is never null.
            local_slot: unsafe { NonNull::new_unchecked(thread::local_slot().cast()) },
            queue_stride: size_of::<thread::Queue>(),
            sample_left_offset: thread::SAMPLE_LEFT_OFFSET,
            segment_size: segment::SEGMENT_SIZE,
            pages_offset: core::mem::offset_of!(Segment, pages),
            page_stride: size_of::<segment::Page>(),
            page_shift: segment::PAGE_SHIFT,
            page_used_offset: core::mem::offset_of!(segment::Page, used),
            page_carved_offset: core::mem::offset_of!(segment::Page, carved_end),
            page_magic_offset: core::mem::offset_of!(segment::Page, magic),
            page_key_offset: core::mem::offset_of!(segment::Page, key),
            small_max: SMALL_MAX,
            classes: segment::SMALL_CLASSES,
            min_class: MIN_CLASS,
            checks: guard::ON,
            mark: guard::mark(0),
        }
    }
}

/// Runs `attempt`, and if the memory limit asks for a purge first
/// (`limit::Short::PurgeFirst`), purges what this thread may and runs it
/// once more, whose charge then decides without asking again (see
/// `limit.rs`). `None` if the OS or the limit refused.
fn with_purge<T>(mut attempt: impl FnMut() -> Result<T, limit::Short>) -> Option<T> {
    match attempt() {
        Ok(value) => Some(value),
        Err(limit::Short::Refused) => None,
        Err(limit::Short::PurgeFirst) => {
            purge_shared();
            limit::set_purged(true);
            let again = attempt().ok();
            limit::set_purged(false);
            again
        }
    }
}

/// Before a `fork()`: takes every heap lock, in the one lock order
/// (outermost first; see the module doc and `fork.rs`).
extern "C" fn fork_prepare() {
    // The environment is read under a `Once`: a fork in the middle of that
    // read would leave the child's `Once` running forever.
    limit::read_env();
    // The profiler's lock first: a thread holding it may allocate.
    PROFILE_FORK.hold(crate::profile::fork_hold());
    // The orphan heap's lock is held while records are taken and pages
    // found (which may purge: empty segments, large blocks); the caches of
    // empty segments and large blocks free segments, which leaves the
    // stats' segment list (innermost).
    thread::fork_hold();
    large::fork_hold();
    limit::fork_hold();
    thread::fork_hold_records();
    segment::fork_hold();
}

/// After a `fork()`, in the parent and in the child: releases them.
extern "C" fn fork_after() {
    segment::fork_release();
    thread::fork_release_records();
    limit::fork_release();
    large::fork_release();
    thread::fork_release();
    PROFILE_FORK.release();
}

/// Installs the heap's fork handlers (and the profiler's) as the program,
/// or the library memres is linked into, is loaded: before `main` and the
/// threads it starts. Installed lazily instead, at a thread's first
/// allocation, a fork by one thread while another was still installing
/// them would copy the heap's and the profiler's locks unprotected (seen:
/// a child that found the profile's lock held).
#[cfg(all(target_os = "linux", not(miri)))]
#[used]
#[unsafe(link_section = ".init_array")]
static INSTALL_AT_LOAD: extern "C" fn() = install_at_load;

#[cfg(all(target_os = "linux", not(miri)))]
extern "C" fn install_at_load() {
    Heap::install_fork_handlers();
    crate::profile::install_fork_handlers();
}

/// The profiler's lock, held across a `fork()` (see `fork_prepare`).
static PROFILE_FORK: fork::ForkSlot<crate::profile::ForkHold> = fork::ForkSlot::new();

/// Purges what the calling thread may: its own free pages and spare, the
/// shared empty segments and the cache of large blocks; returns the bytes.
fn purge_shared() -> usize {
    thread::purge_local() + thread::purge_idle_segments() + thread::purge_abandoned() + large::purge()
}

// SAFETY: as for `Allocator`.
unsafe impl MemoryResource for Heap {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        Allocator::allocate(self, layout)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { Allocator::deallocate(self, ptr, layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `malloc_c`'s table is the general rule for 16-byte alignment.
    #[test]
    fn the_malloc_table_agrees_with_class_of() {
        for size in 0..=C_SMALL_MAX {
            let layout = Layout::from_size_align(size.max(1), C_ALIGN).unwrap();
            assert_eq!(Some(C_CLASSES[size.div_ceil(C_ALIGN)] as usize), class_of(layout), "size {size}");
        }
    }
}
