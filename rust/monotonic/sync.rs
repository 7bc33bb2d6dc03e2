//! The thread-safe arena: [`SyncMonotonic`], one arena that many threads
//! allocate from at once (a request whose work fans out to a thread pool),
//! reset or released as a whole when they are done.
//!
//! # Design
//! Each thread bumps in a *region* of its own: a block the thread carved
//! from the arena's chunks (a [`Monotonic`] behind a `Mutex`), 4 KiB at
//! first and twice the last one after that (up to 256 KiB). A thread finds
//! its region for an arena in a small thread-local table keyed by the
//! arena's *generation*: a number no other arena, and no earlier cycle of
//! this one, ever had (a process-wide counter; a new one at every
//! [`reset`](SyncMonotonic::reset) and [`release`](SyncMonotonic::release)).
//! The fast path is the table's first entry: one relaxed load of the
//! generation, one compare, and a bump, with no lock and no atomic
//! read-modify-write; threads touch only their own regions, so they share
//! no cache line but the generation's, which they only read. A request
//! bigger than a quarter of the largest region goes to the chunks directly,
//! under the lock.
//!
//! # Invariants
//! - A table entry whose generation equals an arena's current generation
//!   was made by this thread for this arena in this cycle: its `[cursor,
//!   end)` is the unused rest of a region carved by this thread, inside a
//!   chunk the arena holds, which no other thread and no live block uses.
//! - An entry of an older generation, or of an arena that is gone, matches
//!   no live arena ever again (generations are never reused), so its
//!   dangling pointers are never followed.
//! - Chunks go back to upstream, or are reused, only in `reset`, `release`
//!   and drop, which take `&mut self` or `self`: no thread is inside
//!   `allocate` then, and every block handed out in the cycle is dead.
//!
//! # Why relaxed ordering is enough, on weakly ordered CPUs too
//! The generation changes only under `&mut self`. Whatever gave the other
//! threads their `&SyncMonotonic` (a scoped spawn, a join, a channel, a
//! lock) orders that write before their reads, so each thread reads the
//! current generation with a plain load. The regions' memory is written only
//! by the thread that carved it; the carving itself happens under the
//! `Mutex`, whose acquire/release orders the chunk bookkeeping between
//! threads (on AArch64 as on x86-64).

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use allocator_api2::alloc::{AllocError, Allocator, Global};

use super::{Monotonic, MonotonicStats};
use crate::debug::{acquired, releasing};
use crate::resource::{MemoryResource, dangling_for};

/// The first region a thread carves in an arena's cycle.
const FIRST_REGION: usize = 4 << 10;
/// Regions stop doubling at this size.
const MAX_REGION: usize = 256 << 10;
/// Arenas a thread keeps a region for at once (the most recently used first).
const TABLE: usize = 4;

/// Generations handed out so far (0 is never one: empty table entries).
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

fn fresh_generation() -> u64 {
    GENERATIONS.fetch_add(1, Ordering::Relaxed)
}

/// A thread's region in one arena's cycle.
#[derive(Clone, Copy)]
struct Region {
    generation: u64,
    start: *mut u8,
    cursor: *mut u8,
    end: *mut u8,
    /// The size of the last region carved, to double for the next.
    last: usize,
}

const EMPTY: Region =
    Region { generation: 0, start: ptr::null_mut(), cursor: ptr::null_mut(), end: ptr::null_mut(), last: 0 };

std::thread_local! {
    /// This thread's regions, most recently used first (no destructor: the
    /// memory is the arenas', and stale entries are never matched).
    static REGIONS: UnsafeCell<[Region; TABLE]> = const { UnsafeCell::new([EMPTY; TABLE]) };
}

/// This thread's table. The caller keeps the reference to itself while it
/// lives (nothing it calls meanwhile reaches the table).
#[allow(clippy::mut_from_ref)]
#[inline(always)]
fn regions() -> &'static mut [Region; TABLE] {
    // SAFETY: the thread's own table, valid for the thread's life (no
    // destructor); exclusive by the caller's keeping it to itself.
    unsafe { &mut *REGIONS.with(UnsafeCell::get) }
}

/// A monotonic arena that many threads may allocate from at once.
///
/// Each thread bumps in a region of its own (4 KiB at first, doubling up to
/// 256 KiB), carved from the arena's chunks under a lock and found through
/// a thread-local table, so the common path takes no lock and no atomic
/// read-modify-write, and threads write no shared cache line. A thread's
/// newest block rolls back when freed and grows or shrinks in place; other
/// frees wait for [`reset`](Self::reset) or [`release`](Self::release),
/// which take `&mut self`: every thread is done by then. A block over 64
/// KiB is carved from the chunks directly. The rest of a thread's region is
/// unused when it needs a new one, or when it exits: at most one region per
/// thread and cycle.
///
/// ```
/// use allocator_api2::vec::Vec;
/// use memres::SyncMonotonic;
///
/// let mut arena = SyncMonotonic::new();
/// std::thread::scope(|s| {
///     for t in 0..4 {
///         let arena = &arena;
///         s.spawn(move || {
///             let mut v = Vec::new_in(arena);
///             v.extend(0..1000u32 * t);
///             v.len()
///         });
///     }
/// });
/// assert!(arena.stats().used > 0);
/// arena.reset(); // every thread is done: all of it goes at once
/// assert_eq!(arena.stats().used, 0);
/// ```
pub struct SyncMonotonic<U: MemoryResource = Global> {
    generation: AtomicU64,
    chunks: Mutex<Monotonic<'static, U>>,
}

// SAFETY: the chunks are behind a `Mutex` (a `Monotonic` is `Send` when its
// upstream is); the regions each thread carves are its own (module
// invariants), and the generation is atomic.
unsafe impl<U: MemoryResource + Send> Sync for SyncMonotonic<U> {}

impl SyncMonotonic<Global> {
    /// An empty arena over the global allocator.
    pub fn new() -> Self {
        Self::new_in(Global)
    }
}

impl Default for SyncMonotonic<Global> {
    fn default() -> Self {
        Self::new()
    }
}

impl<U: MemoryResource> SyncMonotonic<U> {
    /// An empty arena over `upstream`, asked for chunks under a lock (one
    /// call at a time).
    pub fn new_in(upstream: U) -> Self {
        SyncMonotonic {
            generation: AtomicU64::new(fresh_generation()),
            chunks: Mutex::new(Monotonic::new_in(upstream)),
        }
    }

    /// Runs `f` on the chunks under the lock (told to ThreadSanitizer under
    /// feature `tsan`, for C++ programs built with it around this core: the
    /// upstream is called under this lock).
    fn locked<R>(&self, f: impl FnOnce(&Monotonic<'static, U>) -> R) -> R {
        let chunks: MutexGuard<'_, _> = self.chunks.lock().unwrap_or_else(PoisonError::into_inner);
        acquired(&self.chunks);
        let result = f(&chunks);
        releasing(&self.chunks);
        result
    }

    /// Allocates a block for `layout` from the calling thread's region.
    ///
    /// # Errors
    /// `AllocError` if upstream fails; the arena stays usable.
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let generation = self.generation.load(Ordering::Relaxed);
        let region = &mut regions()[0];
        if region.generation == generation {
            if let Some(block) = bump(region, layout) {
                return Ok(NonNull::slice_from_raw_parts(block, layout.size()));
            }
        }
        self.allocate_slow(generation, layout)
    }

    /// Another entry of the table, a fresh region, or the chunks directly.
    #[cold]
    #[inline(never)]
    fn allocate_slow(&self, generation: u64, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(NonNull::slice_from_raw_parts(dangling_for(layout), 0));
        }
        let table = regions();
        let found = table.iter().position(|r| r.generation == generation);
        // The arena's entry (found, or the least recently used one) to the front.
        table[..=found.unwrap_or(TABLE - 1)].rotate_right(1);
        if found.is_none() {
            table[0] = Region { generation, ..EMPTY };
        }
        let region = &mut table[0];
        if let Some(block) = bump(region, layout) {
            return Ok(NonNull::slice_from_raw_parts(block, layout.size()));
        }
        if layout.size() > MAX_REGION / 4 || layout.align() > FIRST_REGION {
            // Big or very aligned: its own block, no region wasted on it.
            return self.allocate_shared(layout);
        }
        // A fresh region (big enough for this block); the rest of the old
        // one is left unused.
        let size =
            (region.last * 2).clamp(FIRST_REGION, MAX_REGION).max((layout.size() + layout.align()).next_power_of_two());
        let fresh = self.allocate_shared(Layout::from_size_align(size, 16).map_err(|_| AllocError)?)?;
        let start = fresh.cast::<u8>().as_ptr();
        *region = Region { generation, start, cursor: start, end: start.wrapping_add(size), last: size };
        bump(region, layout).map(|block| NonNull::slice_from_raw_parts(block, layout.size())).ok_or(AllocError)
    }

    /// Gives back a block: the calling thread's most recent one in this
    /// cycle moves its region's cursor back; any other waits for a reset.
    ///
    /// # Safety
    /// `ptr` was allocated by this arena with `layout` and not yet freed.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let region = &mut regions()[0];
        if self.is_last(region, ptr.as_ptr(), layout.size()) {
            // Keep the region's provenance (the caller's pointer may carry less).
            region.cursor = region.cursor.with_addr(ptr.as_ptr().addr());
        }
    }

    /// Grows a block: in place when it is the calling thread's most recent
    /// one and its region has room, else allocate, copy, free.
    ///
    /// # Safety
    /// As [`Allocator::grow`].
    ///
    /// # Errors
    /// `AllocError` if a new block is needed and cannot be had (the old one
    /// is untouched).
    pub unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let region = &mut regions()[0];
        let p = ptr.as_ptr();
        if self.is_last(region, p, old.size())
            && p.addr() & (new.align() - 1) == 0
            && new.size() <= region.end.addr() - p.addr()
        {
            let block = region.cursor.with_addr(p.addr());
            region.cursor = block.wrapping_add(new.size());
            // SAFETY: `block` has the non-null address of `ptr`.
            return Ok(NonNull::slice_from_raw_parts(unsafe { NonNull::new_unchecked(block) }, new.size()));
        }
        let block = self.allocate(new)?;
        // SAFETY: distinct live blocks, the old one holding `old.size()` bytes.
        unsafe {
            ptr::copy_nonoverlapping(p, block.cast::<u8>().as_ptr(), old.size());
            self.deallocate(ptr, old);
        }
        Ok(block)
    }

    /// Shrinks a block in place (the calling thread's most recent one gives
    /// its tail back), unless `new` needs a stricter alignment than `ptr`
    /// has.
    ///
    /// # Safety
    /// As [`Allocator::shrink`].
    ///
    /// # Errors
    /// `AllocError` if a new block is needed and cannot be had.
    pub unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = ptr.as_ptr();
        if p.addr() & (new.align() - 1) == 0 {
            let region = &mut regions()[0];
            if self.is_last(region, p, old.size()) {
                region.cursor = region.cursor.with_addr(p.addr() + new.size());
            }
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
        let block = self.allocate(new)?;
        // SAFETY: distinct live blocks, the new one holding `new.size()` bytes.
        unsafe { ptr::copy_nonoverlapping(p, block.cast::<u8>().as_ptr(), new.size()) };
        Ok(block)
    }

    /// Is `[ptr, ptr + size)` the most recent block of `region`, this
    /// thread's region in the arena's current cycle? (`ptr >= start` keeps
    /// a block outside the region that happens to end where the region's
    /// cursor is from moving the cursor out of it.)
    #[inline(always)]
    fn is_last(&self, region: &Region, ptr: *mut u8, size: usize) -> bool {
        region.generation == self.generation.load(Ordering::Relaxed)
            && ptr.addr() >= region.start.addr()
            && ptr.wrapping_add(size) == region.cursor
    }

    /// The arena's generation, for a foreign fast path (C++'s
    /// `memres::synchronized_monotonic_buffer_resource`): the address of a
    /// `u64` (an atomic one) that such code reads with a relaxed atomic load
    /// and keeps, per thread, beside the region it bumps in, as this type's
    /// own fast path does (see the module doc). Valid while the arena is
    /// neither moved nor dropped.
    pub fn generation_ptr(&self) -> NonNull<u64> {
        NonNull::from(&self.generation).cast()
    }

    /// A block carved from the shared chunks under the lock: what a foreign
    /// fast path carves a thread's region from (and serves big blocks
    /// from). Like every block, it lives until the next reset or release.
    ///
    /// # Errors
    /// `AllocError` if upstream fails.
    pub fn allocate_shared(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.locked(|chunks| chunks.allocate(layout))
    }

    /// Everything allocated goes at once; the chunks are kept (merged into
    /// one, as [`Monotonic::reset`] does) for the next cycle.
    pub fn reset(&mut self) {
        self.generation.store(fresh_generation(), Ordering::Relaxed);
        self.chunks.get_mut().unwrap_or_else(PoisonError::into_inner).reset();
    }

    /// Everything allocated goes at once, and the chunks go back upstream.
    pub fn release(&mut self) {
        self.generation.store(fresh_generation(), Ordering::Relaxed);
        self.chunks.get_mut().unwrap_or_else(PoisonError::into_inner).release();
    }

    /// Names the arena, for the profiler: the regions its threads carve are
    /// sampled as blocks of the [`Monotonic`] they come from, whose name
    /// this is, so their stacks start with `name (Monotonic)`.
    ///
    /// ```
    /// let arena = memres::SyncMonotonic::new().named("frame-arena");
    /// assert_eq!(arena.name().as_deref(), Some("frame-arena"));
    /// ```
    #[must_use]
    pub fn named(self, name: &str) -> Self {
        self.set_name(name);
        self
    }

    /// Names the arena (see [`named`](Self::named)), from any thread.
    pub fn set_name(&self, name: &str) {
        self.locked(|chunks| chunks.set_name(name));
    }

    /// The arena's name, if it was given one.
    pub fn name(&self) -> Option<Arc<str>> {
        self.locked(Monotonic::name)
    }

    /// The arena's counts. `used` counts whole regions (what the threads have
    /// carved for themselves, used or not yet) and blocks too big for one.
    pub fn stats(&self) -> MonotonicStats {
        self.locked(Monotonic::stats)
    }
}

/// Bumps `layout` in `region`, or `None` if it does not fit.
#[inline(always)]
fn bump(region: &mut Region, layout: Layout) -> Option<NonNull<u8>> {
    let addr = region.cursor.addr();
    let aligned = addr.wrapping_add(layout.align() - 1) & !(layout.align() - 1);
    // No overflow: the cursor is a user-space address (below 2^63) or null
    // (an empty entry, whose end is null too, so nothing fits), and a
    // `Layout` keeps `size + align - 1 <= isize::MAX`.
    if aligned.checked_add(layout.size())? > region.end.addr() || region.cursor.is_null() {
        return None;
    }
    let block = region.cursor.wrapping_add(aligned - addr);
    region.cursor = block.wrapping_add(layout.size());
    NonNull::new(block)
}

// SAFETY: blocks come from regions that no other thread uses or from the
// chunks under the lock, never overlap while live, and stay valid until
// reset, release or drop (`&mut self` or ownership).
unsafe impl<U: MemoryResource> Allocator for &SyncMonotonic<U> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        SyncMonotonic::allocate(self, layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { SyncMonotonic::deallocate(self, ptr, layout) }
    }

    #[inline]
    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { SyncMonotonic::grow(self, ptr, old, new) }
    }

    #[inline]
    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { SyncMonotonic::shrink(self, ptr, old, new) }
    }
}

// SAFETY: as for `Allocator` above.
unsafe impl<U: MemoryResource> MemoryResource for SyncMonotonic<U> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        SyncMonotonic::allocate(self, layout)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { SyncMonotonic::deallocate(self, ptr, layout) }
    }
}

impl<U: MemoryResource> core::fmt::Debug for SyncMonotonic<U> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SyncMonotonic").field("stats", &self.stats()).finish()
    }
}
