//! The monotonic (bump) arena: [`Monotonic`].
//!
//! # What it owns
//! - the chunks it got from its upstream, each in exactly one of two lists:
//!   `used` (holding this cycle's allocations, newest first) and `spare`
//!   (kept by a rewind, or by [`reset`](Monotonic::reset), which first
//!   merges them into one chunk; free for reuse, largest first);
//! - nothing of the caller's buffer but the right to write it while the
//!   arena lives (the `'buf` lifetime).
//!
//! # Invariants
//! - `start <= cursor <= end <= region_end`, all in one *region*
//!   `[start, region_end)`: the caller's buffer, the data of the `current`
//!   chunk (which is in `used`), or the empty region (an aligned dangling
//!   address, so `cursor` is never null). `end`, where the fast paths stop,
//!   is `region_end`, or while the arena samples for the profiler the next
//!   sample point if that comes first (see `crate::profile`); then
//!   `sample_beyond` counts the bytes from `end` to the sample point when it
//!   lies past the region;
//! - bytes in `[cursor, region_end)` are not part of any live allocation; live
//!   allocations lie in `[start, cursor)` of the region or in other `used`
//!   chunks (or the buffer, when it is not the region);
//! - `used_bytes == retired + (cursor - start)`, where `retired` counts the
//!   bytes handed out from regions other than the current one this cycle;
//! - `held` is the sum of the layouts' sizes of all chunks in both lists.
//! - *Provenance*: `start`, `cursor` and `end` carry the provenance of their
//!   region (the chunk's base pointer as upstream returned it, or the
//!   caller's buffer), and every block pointer the arena returns is derived
//!   from them. A pointer handed back by a caller (to `deallocate`, `grow`,
//!   `shrink`) is used only for its address: it may carry a tag that covers
//!   just its own block (Stacked Borrows) or that the caller's reborrows have
//!   since restricted, so the arena re-derives it (`rebase`)
//!   before storing it or handing it out.
//!
//! # Who may free what
//! Nothing is freed one by one: `deallocate` of the most recent allocation
//! moves `cursor` back (so a `Vec` that is pushed to and popped from the end
//! reuses its bytes), any other `deallocate` does nothing. Memory goes back
//! to upstream only in [`release`](Monotonic::release) and on drop; both take
//! `self` by `&mut` or by value, so no borrowed allocation survives them.
//!
//! # Threads
//! `Monotonic` is `Send` (when its upstream is) and not `Sync`: all state is
//! in `Cell`s touched by one thread at a time.
//!
//! ```compile_fail
//! fn shared<T: Sync>(_: &T) {}
//! shared(&memres::Monotonic::new()); // not Sync
//! ```

mod chunk;
mod frame;
mod sync;

pub use frame::{FrameArena, FrameArenas, Kept};
pub use sync::SyncMonotonic;

use core::alloc::Layout;
use core::cell::{Cell, RefCell};
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use allocator_api2::alloc::{AllocError, Allocator, Global};

use self::chunk::{CHUNK_ALIGN, Chunk, ChunkList, FOOTER_SIZE};
use crate::debug::{Ledger, Mark, give_back, hand_out, retire};
use crate::resource::{MemoryResource, dangling_for};

/// The default usable size of the first chunk, in bytes (std's libstdc++
/// uses 1 KiB too).
const DEFAULT_INITIAL_SIZE: usize = 1024;
/// The smallest usable chunk size asked of upstream, so that growth from a
/// tiny initial size does not crawl.
const MIN_CHUNK_SIZE: usize = 256;
/// Geometric growth stops at this usable chunk size.
const MAX_CHUNK_SIZE: usize = 64 << 20;

// Chunk sizes count usable bytes, as std's `initial_size` does: a chunk asked
// of upstream is that plus its footer (libstdc++ and libc++ likewise add
// their chunk header to the request rather than take it from the size).

/// The cursor and the end of the region the arena bumps in.
///
/// `#[repr(C)]` so that code in another language can run the allocation fast
/// path inline: `<memres/memres.hpp>` reads both pointers and moves `cursor`
/// forward, calling into Rust only when the region is exhausted. Such code
/// must run on the thread that owns the arena, may only move `cursor` forward
/// within `[cursor, end]`, and must never write `end`.
#[repr(C)]
#[derive(Debug)]
pub struct BumpState {
    pub(crate) cursor: Cell<*mut u8>,
    pub(crate) end: Cell<*mut u8>,
}

/// Why [`Monotonic::try_rewind`] cannot go back to a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleCheckpoint {
    /// Made by another arena, or by this one before a reset or release.
    OtherCycle,
    /// Taken after a point the arena was rewound to since: its chunk was
    /// given up.
    GivenUp,
}

impl core::fmt::Display for StaleCheckpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            StaleCheckpoint::OtherCycle => "a checkpoint from another arena, or from before a reset or release",
            StaleCheckpoint::GivenUp => {
                "a checkpoint taken after a point the arena was rewound to (its chunk has been given up since)"
            }
        })
    }
}

impl std::error::Error for StaleCheckpoint {}

/// A position in an arena, to [`rewind`](Monotonic::rewind) to.
///
/// Made by [`Monotonic::checkpoint`]. A checkpoint is only good for the arena
/// that made it, until that arena is reset or released, and only while the
/// arena has not been rewound to a point before it.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint {
    epoch: u64,
    head: Option<Chunk>,
    /// The head's stamp then: if it differs now, the head left `used` and
    /// came back, and the chunks below it then may be gone.
    head_stamp: u64,
    current: Option<Chunk>,
    start: *mut u8,
    cursor: *mut u8,
    /// The region's end (not where the fast path stopped: a rewind arms
    /// the sampling anew).
    region_end: *mut u8,
    retired: usize,
    mark: Mark,
    /// How many of the arena's samples were taken then (see `sampled`).
    samples: usize,
}

/// What an arena holds and has done, from [`Monotonic::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MonotonicStats {
    /// Bytes handed out since the last reset or release, counting alignment
    /// padding (rolled-back allocations are not counted).
    pub used: usize,
    /// Bytes held from upstream (used and spare chunks; not the caller's buffer).
    pub held: usize,
    /// Chunks held from upstream.
    pub chunks: usize,
    /// Calls to upstream `allocate` that succeeded, over the arena's life.
    pub upstream_allocs: u64,
    /// Calls to upstream `deallocate`, over the arena's life.
    pub upstream_frees: u64,
}

/// A monotonic (bump) arena: allocation is a pointer bump, freeing is a no-op,
/// and everything goes at once.
///
/// It is the Rust core of C++'s `memres::monotonic_buffer_resource`, and the
/// same object can serve Rust and C++ code at once.
///
/// - Memory comes from an upstream [`MemoryResource`] (default [`Global`]) in
///   chunks that grow by a factor of 2 up to 64 MiB; a request larger than
///   the next chunk gets a chunk of its own. Each chunk spends 32 bytes (on
///   64-bit targets) on a footer at its end.
/// - [`deallocate`](Self::deallocate) of the most recent allocation rolls the
///   cursor back; growing or shrinking it happens in place.
/// - [`reset`](Self::reset) rewinds to empty and keeps every chunk, so a loop
///   that serves one request per cycle stops calling upstream after warm-up;
///   [`release`](Self::release) gives all chunks back.
/// - [`checkpoint`](Self::checkpoint)/[`rewind`](Self::rewind) and
///   [`scope`](Self::scope) free what a nested phase allocated.
/// - An optional [budget](Self::set_budget) caps the bytes taken from upstream.
///
/// # Examples
///
/// Collections from allocator-api2 (and hashbrown) take `&Monotonic`:
///
/// ```
/// use allocator_api2::{boxed::Box, vec::Vec};
/// use memres::Monotonic;
///
/// let arena = Monotonic::new();
/// let mut names = Vec::new_in(&arena);
/// names.push("ada");
/// names.push("grace");
/// let answer = Box::new_in(42_u64, &arena);
/// assert_eq!(*answer, 42);
/// assert_eq!(names.len(), 2);
/// ```
///
/// The borrow checker keeps `reset` from running while allocations live:
///
/// ```compile_fail
/// use allocator_api2::vec::Vec;
/// let mut arena = memres::Monotonic::new();
/// let v: Vec<u8, _> = Vec::with_capacity_in(8, &arena);
/// arena.reset(); // Not okay! `v` still points into the arena.
/// drop(v);
/// ```
///
/// An arena over a buffer on the stack takes no upstream memory until the
/// buffer runs out:
///
/// ```
/// use core::mem::MaybeUninit;
/// use allocator_api2::vec::Vec;
/// use memres::Monotonic;
///
/// let mut buffer = [MaybeUninit::<u8>::uninit(); 4096];
/// let arena = Monotonic::with_buffer(&mut buffer);
/// let v: Vec<u32, _> = Vec::with_capacity_in(100, &arena);
/// assert_eq!(arena.stats().held, 0);
/// # drop(v);
/// ```
pub struct Monotonic<'buf, U: MemoryResource = Global> {
    /// The cursor and end the C++ fast path bumps, reached through
    /// [`Self::bump_state`] (a pointer: its place in the struct does not matter).
    bump: BumpState,
    /// Start of the current region.
    start: Cell<*mut u8>,
    /// End of the current region (`bump.end` is where the fast paths stop).
    region_end: Cell<*mut u8>,
    /// The profiler's interval this arena samples at (0: it does not), as
    /// seen when it last entered a region.
    sampling: Cell<usize>,
    /// While sampling: bytes from `bump.end` to the next sample point, when
    /// that lies past the current region (else 0).
    sample_beyond: Cell<usize>,
    /// What the profiler calls this arena's samples (see [`Self::named`]).
    name: RefCell<Option<Arc<str>>>,
    /// The profiler's numbers for the samples taken in this cycle, oldest
    /// first: marked freed when their memory is taken back (reset,
    /// release, a rewind past them, drop), which gives the profiler's live
    /// and peak views.
    sampled: RefCell<Vec<u64>>,
    /// The chunk holding the current region; `None` for the buffer or the
    /// empty region.
    current: Cell<Option<Chunk>>,
    /// Chunks holding this cycle's allocations, newest first.
    used: ChunkList,
    /// Chunks free for reuse.
    spare: ChunkList,
    /// Bytes handed out this cycle from regions other than the current one.
    retired: Cell<usize>,
    /// Usable bytes of the next geometric chunk asked of upstream.
    next_size: Cell<usize>,
    /// What `next_size` starts from after `release`.
    initial_size: usize,
    /// The caller's buffer, used first and again after `reset`/`release`.
    buffer: Option<(NonNull<u8>, usize)>,
    /// The most bytes `held` may reach.
    budget: Cell<usize>,
    held: Cell<usize>,
    chunks: Cell<usize>,
    upstream_allocs: Cell<u64>,
    upstream_frees: Cell<u64>,
    /// Names this arena's current cycle, for checkpoints; unique process-wide.
    epoch: Cell<u64>,
    /// Live blocks under `debug-checks`; zero-sized otherwise.
    ledger: Ledger,
    /// The last stamp given to a chunk joining `used`.
    stamps: Cell<u64>,
    upstream: U,
    _buffer: PhantomData<&'buf mut [MaybeUninit<u8>]>,
}

// SAFETY: the arena exclusively owns its chunks and the right to write the
// caller's buffer (a `&mut` borrow, which is `Send`); nothing in it is tied
// to a thread, so it may move to another thread along with its upstream.
unsafe impl<U: MemoryResource + Send> Send for Monotonic<'_, U> {}

/// A process-wide source of epochs, so that a checkpoint can never match an
/// arena (or cycle) that did not make it.
fn fresh_epoch() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The address every empty region points at: non-null, never dereferenced.
fn empty_region() -> *mut u8 {
    ptr::without_provenance_mut(CHUNK_ALIGN)
}

impl Monotonic<'static, Global> {
    /// An empty arena over the global allocator. Allocates nothing yet.
    ///
    /// ```
    /// let arena = memres::Monotonic::new();
    /// assert_eq!(arena.stats().chunks, 0);
    /// ```
    pub fn new() -> Self {
        Self::new_in(Global)
    }

    /// An arena whose first chunk, with room for `bytes` bytes of blocks, is
    /// allocated now (upstream is asked for that plus the chunk's footer).
    ///
    /// # Panics
    /// If the global allocator cannot provide the chunk.
    ///
    /// ```
    /// use core::alloc::Layout;
    /// let arena = memres::Monotonic::with_capacity(64 << 10);
    /// let _ = arena.allocate(Layout::from_size_align(64 << 10, 1).unwrap()).unwrap();
    /// assert_eq!(arena.stats().upstream_allocs, 1); // all of it from the first chunk
    /// ```
    pub fn with_capacity(bytes: usize) -> Self {
        match Self::try_with_capacity_in(bytes, Global) {
            Ok(arena) => arena,
            Err(AllocError) => {
                panic!("memres: Monotonic::with_capacity({bytes}) could not get its first chunk")
            }
        }
    }
}

impl Default for Monotonic<'static, Global> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'buf> Monotonic<'buf, Global> {
    /// An arena that serves from `buffer` first, then from the global allocator.
    pub fn with_buffer(buffer: &'buf mut [MaybeUninit<u8>]) -> Self {
        Self::with_buffer_in(buffer, Global)
    }
}

impl<U: MemoryResource> Monotonic<'static, U> {
    /// An empty arena over `upstream`. Allocates nothing yet.
    ///
    /// ```
    /// use allocator_api2::vec::Vec;
    /// use memres::Monotonic;
    ///
    /// let parent = Monotonic::new();
    /// let child = Monotonic::new_in(&parent); // chunks come from `parent`
    /// let v: Vec<u8, _> = Vec::with_capacity_in(10, &child);
    /// assert_eq!(parent.stats().chunks, 1);
    /// # drop(v);
    /// ```
    pub fn new_in(upstream: U) -> Self {
        Self::with_initial_size_in(DEFAULT_INITIAL_SIZE, upstream)
    }

    /// An empty arena whose first chunk, when it is needed, will have room
    /// for `bytes` bytes of blocks (as std's `initial_size`: upstream is asked
    /// for that plus the chunk's footer; zero means the default of 1 KiB).
    pub fn with_initial_size_in(bytes: usize, upstream: U) -> Self {
        Self::from_parts(None, bytes, upstream)
    }

    /// An arena whose first chunk, with room for `bytes` bytes of blocks, is
    /// taken from `upstream` now.
    ///
    /// # Errors
    /// `AllocError` if upstream fails (or `bytes` is too large for a layout).
    pub fn try_with_capacity_in(bytes: usize, upstream: U) -> Result<Self, AllocError> {
        let arena = Self::with_initial_size_in(bytes, upstream);
        let chunk = arena.acquire_chunk(bytes.max(1), 1)?;
        arena.push_used(chunk);
        arena.enter(Some(chunk), chunk.base(), chunk.data_end());
        Ok(arena)
    }
}

impl<'buf, U: MemoryResource> Monotonic<'buf, U> {
    /// An arena that serves from `buffer` first, then from `upstream`.
    ///
    /// The first chunk is twice the buffer's size. The buffer is used again
    /// after [`reset`](Self::reset) and [`release`](Self::release).
    pub fn with_buffer_in(buffer: &'buf mut [MaybeUninit<u8>], upstream: U) -> Self {
        let len = buffer.len();
        let ptr = NonNull::new(buffer.as_mut_ptr().cast::<u8>()).unwrap_or(NonNull::dangling());
        // A zero-length buffer is no buffer.
        let buffer = (len > 0).then_some((ptr, len));
        let arena = Self::from_parts(buffer, len.saturating_mul(2), upstream);
        arena.retire_buffer();
        arena
    }

    /// An arena over a buffer given as a raw pointer, for foreign callers.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes for `'buf`,
    /// and not be accessed otherwise while the arena lives.
    pub unsafe fn from_raw_buffer_in(ptr: NonNull<u8>, len: usize, upstream: U) -> Self {
        // SAFETY: the caller guarantees exclusive access to `len` bytes for 'buf.
        let buffer = unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr().cast::<MaybeUninit<u8>>(), len) };
        Self::with_buffer_in(buffer, upstream)
    }

    fn from_parts(buffer: Option<(NonNull<u8>, usize)>, initial_size: usize, upstream: U) -> Self {
        let initial_size = if initial_size == 0 { DEFAULT_INITIAL_SIZE } else { initial_size };
        let arena = Monotonic {
            bump: BumpState { cursor: Cell::new(empty_region()), end: Cell::new(empty_region()) },
            start: Cell::new(empty_region()),
            region_end: Cell::new(empty_region()),
            sampling: Cell::new(0),
            sample_beyond: Cell::new(0),
            name: RefCell::new(None),
            sampled: RefCell::new(Vec::new()),
            current: Cell::new(None),
            used: ChunkList::default(),
            spare: ChunkList::default(),
            retired: Cell::new(0),
            next_size: Cell::new(initial_size.clamp(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)),
            initial_size,
            buffer,
            budget: Cell::new(usize::MAX),
            held: Cell::new(0),
            chunks: Cell::new(0),
            upstream_allocs: Cell::new(0),
            upstream_frees: Cell::new(0),
            epoch: Cell::new(fresh_epoch()),
            ledger: Ledger::new("memres::Monotonic"),
            stamps: Cell::new(0),
            upstream,
            _buffer: PhantomData,
        };
        arena.enter_first_region();
        arena
    }

    /// The upstream resource chunks come from.
    pub fn upstream(&self) -> &U {
        &self.upstream
    }

    /// The cursor/end pair a foreign fast path may bump; see [`BumpState`].
    ///
    /// The pointer is valid while the arena is neither moved nor dropped.
    pub fn bump_state(&self) -> NonNull<BumpState> {
        NonNull::from(&self.bump)
    }

    /// The address `addr` in the current region, with the region's
    /// provenance (see the module's invariants). Callers pass addresses within
    /// `[start, end]`.
    #[inline(always)]
    fn rebase(&self, addr: usize) -> *mut u8 {
        self.bump.cursor.get().with_addr(addr)
    }

    /// Allocates a block for `layout`.
    ///
    /// A zero-size request returns an aligned pointer and consumes nothing.
    ///
    /// # Errors
    /// `AllocError` if upstream fails or the budget would be exceeded; the
    /// arena stays usable.
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let ptr = match self.try_bump(layout) {
            Some(ptr) => ptr,
            None => self.allocate_slow(layout)?,
        };
        self.ledger.record(ptr.as_ptr(), layout);
        Ok(NonNull::slice_from_raw_parts(ptr, layout.size()))
    }

    /// The fast path: bump within the current region, or `None`. About six
    /// instructions with one branch on 64-bit targets.
    #[inline(always)]
    fn try_bump(&self, layout: Layout) -> Option<NonNull<u8>> {
        self.bump_below(layout, self.bump.end.get().addr())
    }

    /// Bumps the cursor for `layout` if the block ends at or before `end`
    /// (`bump.end`, or on the slow path `region_end`).
    #[inline(always)]
    fn bump_below(&self, layout: Layout, end: usize) -> Option<NonNull<u8>> {
        let cursor = self.bump.cursor.get();
        let addr = cursor.addr();
        let mask = layout.align() - 1;
        let aligned = addr.wrapping_add(mask) & !mask;
        let fits = if cfg!(target_pointer_width = "64") {
            // No overflow: user-space addresses are below 2^63 on every
            // 64-bit target (2^57 at most today), and a `Layout` keeps
            // `size + align - 1 <= isize::MAX`, so the sum stays below 2^64.
            debug_assert!(addr < 1 << 63);
            aligned + layout.size() <= end
        } else {
            // Smaller address spaces can be full to the top: compare what is
            // left instead. `cursor <= end`, so `avail` cannot underflow, and
            // a pad that wrapped around exceeds any region.
            let avail = end - addr;
            let pad = aligned.wrapping_sub(addr);
            layout.size() <= avail && pad <= avail - layout.size()
        };
        if fits {
            let ptr = cursor.wrapping_add(aligned - addr);
            self.bump.cursor.set(ptr.wrapping_add(layout.size()));
            hand_out(ptr, layout.size());
            // SAFETY: `cursor` is never null (the empty region has a non-null
            // address) and `ptr` is within `[cursor, end]`, so it is non-null.
            Some(unsafe { NonNull::new_unchecked(ptr) })
        } else {
            None
        }
    }

    /// Takes a spare chunk or a new one from upstream and allocates from it.
    #[cold]
    #[inline(never)]
    fn allocate_slow(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling_for(layout));
        }
        if self.bump.end.get() != self.region_end.get() {
            // The fast path stopped at the profiler's sample point: a block
            // that fits the region crosses it, and is sampled.
            if let Some(ptr) = self.bump_below(layout, self.region_end.get().addr()) {
                self.sample(layout.size());
                return Ok(ptr);
            }
        }
        let chunk = match self.spare.take_first(|c| fits(c, layout)) {
            Some(chunk) => chunk,
            None => self.acquire_chunk(layout.size(), layout.align())?,
        };
        self.push_used(chunk);
        let ptr = align_up(chunk.base(), layout.align());
        let after = ptr.wrapping_add(layout.size());
        hand_out(ptr, layout.size());
        // The chunk with more room left becomes the current one; on a tie the
        // new one does, so that the block just made can grow in place.
        let room = chunk.data_end().addr() - after.addr();
        if room >= self.region_end.get().addr() - self.bump.cursor.get().addr() {
            self.retire_region();
            self.enter(Some(chunk), chunk.base(), chunk.data_end());
            self.bump.cursor.set(after);
            if after > self.bump.end.get() {
                // Past the sample point `enter` armed.
                self.sample(layout.size());
            }
        } else {
            self.retired.set(self.retired.get() + (after.addr() - chunk.base().addr()));
            if self.sampling.get() != 0 {
                self.count_elsewhere(after.addr() - chunk.base().addr(), layout.size());
            }
        }
        // SAFETY: `ptr` lies within a chunk's data, whose base is non-null.
        Ok(unsafe { NonNull::new_unchecked(ptr) })
    }

    /// Asks upstream for a chunk with room for `data` bytes at `align`,
    /// growing geometrically, within the budget.
    fn acquire_chunk(&self, data: usize, align: usize) -> Result<Chunk, AllocError> {
        let minimal = Chunk::layout_for(data, align).ok_or(AllocError)?;
        let left = self.budget.get().saturating_sub(self.held.get());
        if minimal.size() > left {
            return Err(AllocError);
        }
        // `next_size` counts usable bytes: a request that fits in them takes a
        // geometric chunk, a larger one a chunk of its own.
        let next = self.next_size.get();
        let geometric = data <= next;
        let preferred = if geometric {
            // A geometric chunk, clipped to the budget (which counts whole
            // chunks, footers included).
            let room = next.min(left.saturating_sub(FOOTER_SIZE));
            Chunk::layout_for(room, align).filter(|l| l.size() <= left).unwrap_or(minimal)
        } else {
            minimal // a chunk of its own
        };
        let (block, layout) = match self.upstream.allocate(preferred) {
            Ok(block) => (block, preferred),
            // Retry with just what the request needs: an upstream that is
            // nearly out may still have that.
            Err(AllocError) if minimal.size() < preferred.size() => (self.upstream.allocate(minimal)?, minimal),
            Err(AllocError) => return Err(AllocError),
        };
        if geometric {
            self.next_size.set(next.saturating_mul(2).min(MAX_CHUNK_SIZE));
        }
        self.held.set(self.held.get() + layout.size());
        self.chunks.set(self.chunks.get() + 1);
        self.upstream_allocs.set(self.upstream_allocs.get() + 1);
        // SAFETY: upstream returned a block of at least `layout.size()` bytes
        // aligned to `layout.align()`, and `layout` came from `layout_for`.
        let chunk = unsafe { Chunk::init(block.cast(), layout) };
        // SAFETY: the fresh chunk's data is ours and holds no block yet.
        unsafe { retire(chunk.base(), chunk.capacity()) };
        Ok(chunk)
    }

    /// Puts `chunk` at the head of `used`, with a stamp no chunk had before.
    fn push_used(&self, chunk: Chunk) {
        let stamp = self.stamps.get() + 1;
        self.stamps.set(stamp);
        chunk.set_stamp(stamp);
        self.used.push(chunk);
    }

    /// Counts the current region's bytes as handed out, before leaving it.
    fn retire_region(&self) {
        let used = self.bump.cursor.get().addr() - self.start.get().addr();
        self.retired.set(self.retired.get() + used);
    }

    /// Makes `[start, end)` the current region, empty, and arms the
    /// profiler's next sample point in it (see `crate::profile`).
    fn enter(&self, current: Option<Chunk>, start: *mut u8, end: *mut u8) {
        let left = self.sample_left();
        self.current.set(current);
        self.start.set(start);
        self.bump.cursor.set(start);
        self.region_end.set(end);
        self.arm(left);
    }

    /// The bytes to hand out before the next sample, as the arena leaves
    /// its region (`None`: the profiler is off). Notices the profiler being
    /// started, stopped, or given a new interval.
    fn sample_left(&self) -> Option<usize> {
        let interval = crate::profile::interval();
        let was = self.sampling.replace(interval);
        if interval == 0 {
            return None;
        }
        if was != interval {
            return Some(crate::profile::next_interval(interval));
        }
        Some(self.sample_countdown())
    }

    /// While sampling: the bytes the arena may still hand out before the
    /// next sample point.
    fn sample_countdown(&self) -> usize {
        self.bump.end.get().addr() - self.bump.cursor.get().addr() + self.sample_beyond.get()
    }

    /// Sets where the fast paths stop in the current region: `left` bytes
    /// after the cursor when the next sample falls there, else the region's
    /// end (`None`: not sampling).
    fn arm(&self, left: Option<usize>) {
        let (cursor, region_end) = (self.bump.cursor.get(), self.region_end.get());
        let room = region_end.addr() - cursor.addr();
        match left {
            Some(left) if left < room => {
                // In the region, with its provenance.
                self.bump.end.set(cursor.wrapping_add(left));
                self.sample_beyond.set(0);
            }
            Some(left) => {
                self.bump.end.set(region_end);
                self.sample_beyond.set(left - room);
            }
            None => {
                self.bump.end.set(region_end);
                self.sample_beyond.set(0);
            }
        }
    }

    /// Records a sampled block of `size` bytes (just handed out, past the
    /// sample point), and arms the next sample point from the cursor.
    #[cold]
    fn sample(&self, size: usize) {
        let interval = self.sampling.get();
        let resource = crate::profile::resource_name("Monotonic", self.name.borrow().as_deref());
        let id = crate::profile::record(size, interval, resource, true);
        self.sampled.borrow_mut().push(id);
        self.arm(Some(crate::profile::next_interval(interval)));
    }

    /// While sampling: counts `bytes` handed out outside the current region
    /// (a block of `size` in a chunk of its own), sampling it if they reach
    /// the sample point.
    fn count_elsewhere(&self, bytes: usize, size: usize) {
        let left = self.sample_countdown();
        if bytes > left {
            self.sample(size);
        } else {
            self.arm(Some(left - bytes));
        }
    }

    /// Enters the region a fresh cycle starts in: the buffer, else the
    /// largest spare chunk, else the empty region.
    fn enter_first_region(&self) {
        if let Some((ptr, len)) = self.buffer {
            self.enter(None, ptr.as_ptr(), ptr.as_ptr().wrapping_add(len));
        } else if let Some(chunk) = self.spare.pop() {
            self.push_used(chunk);
            self.enter(Some(chunk), chunk.base(), chunk.data_end());
        } else {
            self.enter(None, empty_region(), empty_region());
        }
    }

    /// Gives back a block. Only the most recent allocation is reclaimed (the
    /// cursor moves back to it); any other block waits for reset or release.
    ///
    /// # Safety
    /// `ptr` must denote a block allocated by this arena with `layout`, not
    /// yet deallocated.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let ptr = ptr.as_ptr();
        self.ledger.check_free("Monotonic::deallocate", ptr, layout, || self.owns(ptr));
        if self.is_last(ptr, layout.size()) {
            self.bump.cursor.set(self.rebase(ptr.addr()));
            // SAFETY: the block was the most recent one and is now freed.
            unsafe { retire(ptr, layout.size()) };
        }
    }

    /// Marks a block freed without reclaiming its bytes (they wait for a
    /// reset): the semantics of C++'s `monotonic_buffer_resource::deallocate`.
    /// Under `debug-checks` it checks the block like `deallocate` does;
    /// otherwise it does nothing.
    ///
    /// # Safety
    /// As for [`deallocate`](Self::deallocate).
    #[inline]
    pub unsafe fn forget(&self, ptr: NonNull<u8>, layout: Layout) {
        let ptr = ptr.as_ptr();
        self.ledger.check_free("monotonic_buffer_resource::deallocate", ptr, layout, || self.owns(ptr));
    }

    /// Is `[ptr, ptr + size)` the most recent allocation in the current
    /// region? (`ptr >= start` keeps a block of another region that happens
    /// to end where this region's cursor is from moving the cursor out of it.)
    #[inline]
    fn is_last(&self, ptr: *mut u8, size: usize) -> bool {
        ptr.addr() >= self.start.get().addr() && ptr.wrapping_add(size) == self.bump.cursor.get()
    }

    /// Grows a block; in place when it is the most recent allocation and
    /// there is room, else by allocate-copy-deallocate. (While the profiler
    /// samples, the room ends at its next sample point: a block that would
    /// grow past it moves instead, and the new block is the sample.)
    ///
    /// # Safety
    /// As [`Allocator::grow`]: `ptr` was allocated by this arena with `old`,
    /// and `new.size() >= old.size()`.
    ///
    /// # Errors
    /// `AllocError` if a new block is needed and cannot be had; the old block
    /// is then untouched.
    pub unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = ptr.as_ptr();
        if p.addr() & (new.align() - 1) == 0
            && self.is_last(p, old.size())
            && new.size() <= self.bump.end.get().addr() - p.addr()
        {
            self.ledger.check_free("Monotonic::grow", p, old, || self.owns(p));
            self.ledger.record(p, new);
            let p = self.rebase(p.addr());
            self.bump.cursor.set(p.wrapping_add(new.size()));
            hand_out(p, new.size());
            // SAFETY: `p` has the non-null address of `ptr`.
            let ptr = unsafe { NonNull::new_unchecked(p) };
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
        let block = self.allocate(new)?;
        // SAFETY: the new block is distinct from the old one (the old one is
        // live) and both hold at least `old.size()` bytes.
        unsafe {
            ptr::copy_nonoverlapping(p, block.cast::<u8>().as_ptr(), old.size());
            self.deallocate(ptr, old);
        }
        Ok(block)
    }

    /// Shrinks a block in place (giving the tail back if it is the most recent
    /// allocation), unless `new` needs a stricter alignment than `ptr` has.
    ///
    /// # Safety
    /// As [`Allocator::shrink`]: `ptr` was allocated by this arena with `old`,
    /// and `new.size() <= old.size()`.
    ///
    /// # Errors
    /// `AllocError` if a new block is needed and cannot be had.
    pub unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = ptr.as_ptr();
        if p.addr() & (new.align() - 1) == 0 {
            self.ledger.check_free("Monotonic::shrink", p, old, || self.owns(p));
            self.ledger.record(p, new);
            if !self.is_last(p, old.size()) {
                // Not in the current region (or not at its top): nothing to
                // give back, and the block keeps the pointer it came with.
                return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
            }
            let p = self.rebase(p.addr());
            let tail = p.wrapping_add(new.size());
            self.bump.cursor.set(tail);
            // SAFETY: the tail past the new size is no longer part of the block.
            unsafe { retire(tail, old.size() - new.size()) };
            // SAFETY: `p` has the non-null address of `ptr`.
            let ptr = unsafe { NonNull::new_unchecked(p) };
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
        let block = self.allocate(new)?;
        // SAFETY: distinct live blocks, the new one holds `new.size()` bytes.
        unsafe { ptr::copy_nonoverlapping(p, block.cast::<u8>().as_ptr(), new.size()) };
        // The old block is freed; unless it was the last, its bytes wait for a reset.
        self.ledger.check_free("Monotonic::shrink", p, old, || self.owns(p));
        Ok(block)
    }

    /// Rewinds to empty and keeps the memory for reuse.
    ///
    /// If the arena holds more than one chunk, they are swapped for a single
    /// chunk of their combined size (one upstream allocation, then the old
    /// chunks are freed): a request loop settles after its first reset into
    /// one contiguous chunk and makes no upstream calls at all from then on.
    /// Should upstream refuse the combined chunk, the old chunks are kept.
    /// The next cycle starts in the buffer (if any), then in the largest chunk.
    ///
    /// ```
    /// let mut arena = memres::Monotonic::new();
    /// for _ in 0..10 {
    ///     let v = allocator_api2::vec::Vec::<u8, _>::with_capacity_in(100_000, &arena);
    ///     let w = allocator_api2::vec::Vec::<u8, _>::with_capacity_in(100_000, &arena);
    ///     drop((v, w));
    ///     arena.reset();
    /// }
    /// // Two chunks in the first cycle, one combined chunk ever after.
    /// assert_eq!(arena.stats().upstream_allocs, 3);
    /// assert_eq!(arena.stats().chunks, 1);
    /// ```
    pub fn reset(&mut self) {
        self.coalesce_chunks();
        while let Some(chunk) = self.used.pop() {
            self.spare.insert_by_capacity(chunk);
        }
        for chunk in self.spare.iter() {
            // SAFETY: after a reset no block lives in any chunk (`&mut self`).
            unsafe { retire(chunk.base(), chunk.capacity()) };
        }
        self.retire_buffer();
        self.ledger.forget_all("taken back by reset()");
        self.samples_freed_since(0);
        self.retired.set(0);
        self.epoch.set(fresh_epoch());
        self.enter_first_region();
    }

    /// Tells the profiler that this cycle's samples from the `first` on were
    /// freed (their memory taken back), and forgets them.
    fn samples_freed_since(&self, first: usize) {
        let mut sampled = self.sampled.borrow_mut();
        if sampled.len() > first {
            for id in sampled.drain(first..) {
                crate::profile::freed(id);
            }
        }
    }

    /// Takes the caller's buffer back whole; callers guarantee no block lives in it.
    fn retire_buffer(&self) {
        if let Some((ptr, len)) = self.buffer {
            // SAFETY: the arena may write the buffer for 'buf, and no block
            // lives in it (the callers' condition).
            unsafe { retire(ptr.as_ptr(), len) };
        }
    }

    /// Does `ptr` lie in memory the arena holds (a chunk's data, the buffer)?
    fn owns(&self, ptr: *const u8) -> bool {
        let inside = |base: *mut u8, len: usize| (base.addr()..base.addr() + len).contains(&ptr.addr());
        self.buffer.is_some_and(|(b, len)| inside(b.as_ptr(), len))
            || self.used.iter().chain(self.spare.iter()).any(|c| inside(c.base(), c.capacity()))
    }

    /// Replaces two or more chunks by one with their combined capacity.
    fn coalesce_chunks(&self) {
        if self.chunks.get() < 2 {
            return;
        }
        let total: usize = self.used.iter().chain(self.spare.iter()).map(|c| c.capacity()).sum();
        let Some(layout) = Chunk::layout_for(total, CHUNK_ALIGN) else {
            return;
        };
        let Ok(block) = self.upstream.allocate(layout) else {
            return;
        };
        self.free_all_chunks();
        self.held.set(self.held.get() + layout.size());
        self.chunks.set(self.chunks.get() + 1);
        self.upstream_allocs.set(self.upstream_allocs.get() + 1);
        // SAFETY: upstream returned a block for `layout`, from `layout_for`.
        let chunk = unsafe { Chunk::init(block.cast(), layout) };
        // SAFETY: a fresh chunk holds no block.
        unsafe { retire(chunk.base(), chunk.capacity()) };
        self.spare.push(chunk);
    }

    /// Gives every chunk back to upstream; the arena starts over as new
    /// (with its buffer, and the first chunk size it was made with).
    pub fn release(&mut self) {
        self.free_all_chunks();
        self.retire_buffer();
        self.ledger.forget_all("given back by release()");
        self.samples_freed_since(0);
        self.retired.set(0);
        self.next_size.set(self.initial_size.clamp(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE));
        self.epoch.set(fresh_epoch());
        self.enter_first_region();
    }

    fn free_all_chunks(&self) {
        self.used.prepend_to(&self.spare);
        while let Some(chunk) = self.spare.pop() {
            let layout = chunk.layout();
            give_back(chunk.base(), chunk.capacity());
            chunk.before_free();
            // SAFETY: the chunk's block came from `self.upstream` with this
            // layout, and no allocation in it outlives `&mut self`/drop.
            unsafe { self.upstream.deallocate(NonNull::new_unchecked(chunk.base()), layout) };
            self.held.set(self.held.get() - layout.size());
            self.chunks.set(self.chunks.get() - 1);
            self.upstream_frees.set(self.upstream_frees.get() + 1);
        }
        self.current.set(None);
    }

    /// The arena's current position, to [`rewind`](Self::rewind) to later.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            epoch: self.epoch.get(),
            head: self.used.head(),
            head_stamp: self.used.head().map_or(0, |c| c.stamp()),
            current: self.current.get(),
            start: self.start.get(),
            cursor: self.bump.cursor.get(),
            region_end: self.region_end.get(),
            retired: self.retired.get(),
            mark: self.ledger.mark(),
            samples: self.sampled.borrow().len(),
        }
    }

    /// Frees everything allocated since `checkpoint`; chunks taken since then
    /// become spare.
    ///
    /// A block allocated (or grown or shrunk) since the checkpoint is freed;
    /// blocks from before it are kept.
    ///
    /// # Panics
    /// If `checkpoint` was made by another arena, before a reset or release,
    /// or in a chunk that a rewind to an earlier checkpoint has given up since
    /// (see [`try_rewind`](Self::try_rewind), which says so instead).
    ///
    /// ```
    /// let mut arena = memres::Monotonic::new();
    /// let before = arena.checkpoint();
    /// let _ = arena.allocate(core::alloc::Layout::new::<[u8; 100]>());
    /// arena.rewind(before);
    /// assert_eq!(arena.stats().used, 0);
    /// ```
    pub fn rewind(&mut self, checkpoint: Checkpoint) {
        if let Err(e) = self.try_rewind(checkpoint) {
            panic!("memres: Monotonic::rewind with {e}");
        }
    }

    /// As [`rewind`](Self::rewind), but a checkpoint it cannot go back to is
    /// an error (and the arena is left as it was), not a panic.
    ///
    /// # Errors
    /// [`StaleCheckpoint`] if `checkpoint` was made by another arena, before
    /// a reset or release, or in a chunk a rewind has given up since.
    ///
    /// ```
    /// let mut arena = memres::Monotonic::new();
    /// let old = arena.checkpoint();
    /// arena.reset();
    /// assert_eq!(arena.try_rewind(old), Err(memres::StaleCheckpoint::OtherCycle));
    /// ```
    pub fn try_rewind(&mut self, checkpoint: Checkpoint) -> Result<(), StaleCheckpoint> {
        if checkpoint.epoch != self.epoch.get() {
            return Err(StaleCheckpoint::OtherCycle);
        }
        // The chunks `used` held then are still there, in the same order, iff
        // its head then is in the list now with the same stamp: chunks leave
        // `used` only from the top, and every return gets a new stamp.
        let in_list =
            checkpoint.head.is_none_or(|head| self.used.contains(head) && head.stamp() == checkpoint.head_stamp);
        if !in_list {
            return Err(StaleCheckpoint::GivenUp);
        }
        while self.used.head() != checkpoint.head {
            let chunk = self.used.pop().expect("checked above: the checkpoint's head is in the list");
            // SAFETY: blocks made since the checkpoint are freed by the rewind
            // (`&mut self`: none is borrowed), and this chunk holds only such.
            unsafe { retire(chunk.base(), chunk.capacity()) };
            self.spare.insert_by_capacity(chunk);
        }
        // Still in the checkpoint's region with the cursor below it (blocks
        // from before the checkpoint were freed from the top since, or this is
        // a stale checkpoint): the rewind frees nothing there, so the cursor
        // stays; it never moves forward over freed bytes.
        let cursor = if self.start.get() == checkpoint.start {
            checkpoint.cursor.min(self.bump.cursor.get())
        } else {
            checkpoint.cursor
        };
        // SAFETY: as above, for the room after the cursor.
        unsafe { retire(cursor, checkpoint.region_end.addr() - cursor.addr()) };
        self.ledger.forget_since(checkpoint.mark);
        self.samples_freed_since(checkpoint.samples);
        let left = self.sample_left();
        self.current.set(checkpoint.current);
        self.start.set(checkpoint.start);
        self.bump.cursor.set(cursor);
        self.region_end.set(checkpoint.region_end);
        self.arm(left);
        self.retired.set(checkpoint.retired);
        Ok(())
    }

    /// Runs `f` on the arena, then frees what it allocated. Nothing that
    /// borrows the arena can escape `f`.
    ///
    /// ```
    /// use allocator_api2::vec::Vec;
    /// let mut arena = memres::Monotonic::new();
    /// let sum = arena.scope(|a| {
    ///     let v: Vec<u64, _> = (1..=10).fold(Vec::new_in(a), |mut v, x| { v.push(x); v });
    ///     v.iter().sum::<u64>()
    /// });
    /// assert_eq!(sum, 55);
    /// assert_eq!(arena.stats().used, 0);
    /// ```
    pub fn scope<R>(&mut self, f: impl FnOnce(&Self) -> R) -> R {
        let checkpoint = self.checkpoint();
        let result = f(self);
        self.rewind(checkpoint);
        result
    }

    /// The arena as an allocator that takes nothing back before a reset:
    /// its `deallocate` does nothing (C++'s `monotonic_buffer_resource`
    /// semantics, see [`forget`](Self::forget)), where `&Monotonic`'s gives
    /// back the most recent block. Dropping a collection of boxes then costs
    /// no walk over them at all (the compiler removes the loop that would
    /// free each one); the price is that a temporary dropped in a loop is
    /// not reused until [`reset`](Self::reset). `grow` and `shrink` still
    /// work in place on the most recent block.
    ///
    /// ```
    /// use allocator_api2::boxed::Box;
    /// use allocator_api2::vec::Vec;
    ///
    /// let mut arena = memres::Monotonic::new();
    /// let keep = arena.forgetting();
    /// let mut boxes = Vec::new_in(keep);
    /// for i in 0..100u64 {
    ///     boxes.push(Box::new_in(i, keep));
    /// }
    /// let used = arena.stats().used;
    /// drop(boxes);
    /// assert_eq!(arena.stats().used, used, "nothing comes back before reset");
    /// arena.reset();
    /// assert_eq!(arena.stats().used, 0);
    /// ```
    pub fn forgetting(&self) -> Forgetting<'_, 'buf, U> {
        Forgetting { arena: self }
    }

    /// Names the arena, for the profiler: its samples' stacks start with
    /// `name (Monotonic)` instead of `Monotonic`, so that a profile can be
    /// cut by resource (see [`crate::profile`]).
    ///
    /// ```
    /// let arena = memres::Monotonic::new().named("request-arena");
    /// assert_eq!(arena.name().as_deref(), Some("request-arena"));
    /// ```
    #[must_use]
    pub fn named(self, name: &str) -> Self {
        self.set_name(name);
        self
    }

    /// Names the arena (see [`named`](Self::named)); `;` in `name`, which
    /// separates frames in the profile's folded form, becomes `:`.
    pub fn set_name(&self, name: &str) {
        *self.name.borrow_mut() = Some(crate::profile::clean_name(name));
    }

    /// The arena's name, if it was given one.
    pub fn name(&self) -> Option<Arc<str>> {
        self.name.borrow().clone()
    }

    /// Caps the bytes the arena may hold from upstream (`None`: no cap).
    /// Past the cap, allocation fails with `AllocError`; memory already held,
    /// including spare chunks, stays usable. The fast path pays nothing.
    ///
    /// ```
    /// use core::alloc::Layout;
    /// let arena = memres::Monotonic::new();
    /// arena.set_budget(Some(8 << 10));
    /// assert!(arena.allocate(Layout::from_size_align(4 << 10, 8).unwrap()).is_ok());
    /// assert!(arena.allocate(Layout::from_size_align(16 << 10, 8).unwrap()).is_err());
    /// ```
    pub fn set_budget(&self, bytes: Option<usize>) {
        self.budget.set(bytes.unwrap_or(usize::MAX));
    }

    /// The cap set by [`set_budget`](Self::set_budget).
    pub fn budget(&self) -> Option<usize> {
        Some(self.budget.get()).filter(|&b| b != usize::MAX)
    }

    /// What the arena holds and has done.
    pub fn stats(&self) -> MonotonicStats {
        MonotonicStats {
            used: self.retired.get() + (self.bump.cursor.get().addr() - self.start.get().addr()),
            held: self.held.get(),
            chunks: self.chunks.get(),
            upstream_allocs: self.upstream_allocs.get(),
            upstream_frees: self.upstream_frees.get(),
        }
    }
}

/// Does `layout` fit at the start of `chunk`'s data?
fn fits(chunk: Chunk, layout: Layout) -> bool {
    let pad = align_up(chunk.base(), layout.align()).addr().wrapping_sub(chunk.base().addr());
    pad < layout.align() && layout.size() <= chunk.capacity().saturating_sub(pad)
}

fn align_up(ptr: *mut u8, align: usize) -> *mut u8 {
    let addr = ptr.addr();
    ptr.wrapping_add((addr.wrapping_add(align - 1) & !(align - 1)).wrapping_sub(addr))
}

impl<U: MemoryResource> Drop for Monotonic<'_, U> {
    fn drop(&mut self) {
        self.free_all_chunks();
        self.samples_freed_since(0);
        if let Some((ptr, len)) = self.buffer {
            give_back(ptr.as_ptr(), len); // the caller's again
        }
    }
}

impl<U: MemoryResource + core::fmt::Debug> core::fmt::Debug for Monotonic<'_, U> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Monotonic").field("stats", &self.stats()).field("upstream", &self.upstream).finish()
    }
}

// SAFETY: blocks are carved from chunks the arena owns (or the caller's
// buffer), never overlap while live (the cursor only moves back over the
// most recent block when it is freed), and stay valid until reset, release
// or drop, which all need `&mut self` or ownership.
unsafe impl<U: MemoryResource> MemoryResource for Monotonic<'_, U> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        Monotonic::allocate(self, layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { Monotonic::deallocate(self, ptr, layout) }
    }
}

// SAFETY: as for `MemoryResource` above; `grow` and `shrink` keep the
// contents (in place, or copied before the old block is given back).
unsafe impl<U: MemoryResource> Allocator for &Monotonic<'_, U> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        Monotonic::allocate(self, layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { Monotonic::deallocate(self, ptr, layout) }
    }

    #[inline]
    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { Monotonic::grow(self, ptr, old, new) }
    }

    #[inline]
    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { Monotonic::shrink(self, ptr, old, new) }
    }
}

/// `&Monotonic` whose `deallocate` does nothing: see
/// [`Monotonic::forgetting`].
pub struct Forgetting<'a, 'buf, U: MemoryResource = Global> {
    arena: &'a Monotonic<'buf, U>,
}

impl<U: MemoryResource> Clone for Forgetting<'_, '_, U> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<U: MemoryResource> Copy for Forgetting<'_, '_, U> {}

impl<U: MemoryResource + core::fmt::Debug> core::fmt::Debug for Forgetting<'_, '_, U> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Forgetting").field(self.arena).finish()
    }
}

// SAFETY: as for `&Monotonic` above: the same blocks, from the same arena;
// a block given back is only marked freed (`forget`), so its bytes stay
// out of use until reset, release or drop, which need `&mut` or ownership
// of the arena while this borrows it.
unsafe impl<U: MemoryResource> Allocator for Forgetting<'_, '_, U> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        Monotonic::allocate(self.arena, layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { Monotonic::forget(self.arena, ptr, layout) }
    }

    #[inline]
    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { Monotonic::grow(self.arena, ptr, old, new) }
    }

    #[inline]
    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { Monotonic::shrink(self.arena, ptr, old, new) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `start <= cursor <= end <= region_end`, and `end` is the region's
    /// end when the arena does not sample.
    fn assert_regions_hold<U: MemoryResource>(arena: &Monotonic<'_, U>) {
        let (start, cursor) = (arena.start.get().addr(), arena.bump.cursor.get().addr());
        let (end, region_end) = (arena.bump.end.get().addr(), arena.region_end.get().addr());
        assert!(
            start <= cursor && cursor <= end && end <= region_end,
            "{start:#x} {cursor:#x} {end:#x} {region_end:#x}"
        );
        if arena.sampling.get() == 0 {
            assert_eq!(end, region_end, "not sampling: the fast path may use the whole region");
        } else if end < region_end {
            assert_eq!(arena.sample_beyond.get(), 0, "the sample point is in the region");
        }
    }

    #[test]
    fn sampling_keeps_the_region_invariants_through_every_operation() {
        crate::profile::start(700);
        let before = crate::profile::samples();
        let mut buffer = [MaybeUninit::<u8>::uninit(); 2048];
        let mut arena = Monotonic::with_buffer(&mut buffer);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut last: Option<(NonNull<u8>, Layout)> = None;
        let mut saved = None;
        for step in 0..20_000 {
            match next(100) {
                0..=59 => {
                    let size = if next(50) == 0 { 70_000 } else { 1 + next(600) as usize };
                    let layout = Layout::from_size_align(size, 1 << next(7)).unwrap();
                    let block = arena.allocate(layout).unwrap();
                    last = Some((block.cast(), layout));
                }
                60..=74 => {
                    if let Some((ptr, old)) = last {
                        let new = Layout::from_size_align(old.size() + 1 + next(900) as usize, old.align()).unwrap();
                        // SAFETY: the newest block, allocated with `old`.
                        let block = unsafe { arena.grow(ptr, old, new) }.unwrap();
                        last = Some((block.cast(), new));
                    }
                }
                75..=84 => {
                    if let Some((ptr, layout)) = last.take() {
                        // SAFETY: as above, freed once.
                        unsafe { arena.deallocate(ptr, layout) };
                    }
                }
                85..=92 => {
                    saved = Some(arena.checkpoint());
                    last = None;
                }
                93..=97 => {
                    if let Some(checkpoint) = saved.take() {
                        arena.rewind(checkpoint);
                        last = None;
                    }
                }
                _ => {
                    arena.reset();
                    (last, saved) = (None, None);
                }
            }
            assert_regions_hold(&arena);
            if step == 10_000 {
                // About 2 MB handed out by now: thousands of samples (other
                // tests' arenas may add some).
                let taken = crate::profile::samples() - before;
                assert!(taken > 1000, "{taken} samples");
                // Stopped: noticed at the next region.
                crate::profile::stop();
                arena.reset();
                (last, saved) = (None, None);
                assert_regions_hold(&arena);
                assert_eq!(arena.sampling.get(), 0);
            }
        }
    }
}
