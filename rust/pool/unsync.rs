//! [`UnsyncPool`]: pools of fixed-size blocks, one per size class, for one
//! thread at a time.
//!
//! # What it owns
//! - per class, the chunks it got from upstream (a list threaded through
//!   their footers), the free blocks of those chunks (an intrusive list
//!   threaded through the blocks), and the not-yet-carved tail of the newest
//!   chunk;
//! - every oversize block (larger than `largest_required_pool_block`, or
//!   more aligned than any class): upstream memory behind a small header, in
//!   a doubly linked list so that `release` can return them.
//!
//! # Invariants, per class
//! - `blocks_in_chunks == carved + uncarved` and
//!   `blocks_live + blocks_free == blocks_in_chunks`, where `blocks_free` is
//!   the free list's length plus `uncarved`;
//! - every block on the free list lies in one of the class's chunks, at a
//!   multiple of the class size from the chunk's base, and is not live;
//! - `carve <= carve_end`, both in the newest chunk (or both null).
//!
//! # Who may free what
//! A block goes back through `deallocate` with the layout it was allocated
//! with; that layout finds its class, so blocks have no headers. Memory goes
//! back to upstream in [`release`](UnsyncPool::release), on drop, and (for
//! wholly free chunks) in [`trim`](UnsyncPool::trim).
//!
//! # Threads
//! `Send` (when the upstream is), not `Sync`: one thread at a time.
//!
//! ```compile_fail
//! fn shared<T: Sync>(_: &T) {}
//! shared(&memres::UnsyncPool::new()); // not Sync
//! ```

use core::alloc::Layout;
use core::cell::Cell;
use core::mem::size_of;
use core::ptr::{self, NonNull};

use allocator_api2::alloc::{AllocError, Allocator, Global};

use super::PoolOptions;
use super::classes::{CLASS_COUNT, class_align, class_of, class_size};
use crate::debug::{Ledger, hand_out, retire};
use crate::resource::MemoryResource;

/// A free block: its first word links to the next free block of its class.
#[repr(C)]
struct FreeBlock {
    next: *mut FreeBlock,
}

/// Metadata at the end of each pool chunk.
#[repr(C)]
struct PoolChunk {
    next: *mut PoolChunk,
    base: *mut u8,
    layout: Layout,
    blocks: usize,
}

/// Metadata in front of each oversize block.
#[repr(C)]
struct Oversize {
    prev: *mut Oversize,
    next: *mut Oversize,
    layout: Layout,
}

/// How many blocks of a class are carved into the free list at once.
const CARVE_BATCH: usize = 32;
/// A new chunk is at most this large (unless one block is larger).
const MAX_CHUNK_BYTES: usize = 4 << 20;
/// The first chunk of a class is about this large.
const FIRST_CHUNK_BYTES: usize = 4 << 10;

#[derive(Default)]
struct Class {
    chunks: Cell<Option<NonNull<PoolChunk>>>,
    carve: Cell<usize>,
    carve_end: Cell<usize>,
    next_blocks: Cell<usize>,
    blocks_in_chunks: Cell<usize>,
    chunk_count: Cell<usize>,
    bytes_held: Cell<usize>,
}

/// What one size class of a pool holds, from [`UnsyncPool::class_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassStats {
    /// The class's block size in bytes.
    pub block_size: usize,
    /// Blocks handed out and not yet freed.
    pub blocks_live: usize,
    /// Blocks ready to be handed out (freed, or never used).
    pub blocks_free: usize,
    /// Chunks held from upstream for this class.
    pub chunks: usize,
    /// Bytes of those chunks.
    pub bytes_held: usize,
}

/// Pools of fixed-size blocks for one thread: the Rust core of C++'s
/// `memres::unsynchronized_pool_resource`.
///
/// Requests up to `largest_required_pool_block` are served from a pool per
/// size class (see the class table in the `classes` module: steps of 8 bytes
/// up to 128, then four classes per doubling); a freed block goes back on its
/// class's free list and is reused. Larger requests go to upstream. Unlike
/// std's pools, [`trim`](Self::trim) gives wholly free chunks back.
///
/// ```
/// use allocator_api2::vec::Vec;
/// use memres::UnsyncPool;
///
/// let pool = UnsyncPool::new();
/// let mut v = Vec::new_in(&pool);
/// v.extend(0..100u32);
/// let mut map = hashbrown::HashMap::new_in(&pool);
/// map.insert("answer", 42);
/// assert_eq!(v.len(), 100);
/// assert_eq!(map["answer"], 42);
/// ```
pub struct UnsyncPool<U: MemoryResource = Global> {
    /// Free-list heads, one per class; first, for foreign fast paths.
    heads: [Cell<*mut FreeBlock>; CLASS_COUNT],
    classes: [Class; CLASS_COUNT],
    options: PoolOptions,
    oversize: Cell<*mut Oversize>,
    oversize_bytes: Cell<usize>,
    upstream_allocs: Cell<u64>,
    upstream_frees: Cell<u64>,
    /// Live blocks under `debug-checks`; zero-sized otherwise.
    ledger: Ledger,
    upstream: U,
}

// SAFETY: the pool exclusively owns its chunks and oversize blocks; nothing
// in it is tied to a thread, so it may move along with its upstream.
unsafe impl<U: MemoryResource + Send> Send for UnsyncPool<U> {}

impl UnsyncPool<Global> {
    /// A pool over the global allocator with the default options.
    pub fn new() -> Self {
        Self::with_options(PoolOptions::default())
    }

    /// A pool over the global allocator with `options` (normalised).
    pub fn with_options(options: PoolOptions) -> Self {
        Self::with_options_in(options, Global)
    }
}

impl Default for UnsyncPool<Global> {
    fn default() -> Self {
        Self::new()
    }
}

impl<U: MemoryResource> UnsyncPool<U> {
    /// A pool over `upstream` with the default options.
    pub fn new_in(upstream: U) -> Self {
        Self::with_options_in(PoolOptions::default(), upstream)
    }

    /// A pool over `upstream` with `options` (normalised: see [`PoolOptions`]).
    pub fn with_options_in(options: PoolOptions, upstream: U) -> Self {
        UnsyncPool {
            heads: [const { Cell::new(ptr::null_mut()) }; CLASS_COUNT],
            classes: core::array::from_fn(|_| Class::default()),
            options: options.normalized(),
            oversize: Cell::new(ptr::null_mut()),
            oversize_bytes: Cell::new(0),
            upstream_allocs: Cell::new(0),
            upstream_frees: Cell::new(0),
            ledger: Ledger::default(),
            upstream,
        }
    }

    /// The free-list heads, one per size class (`CLASS_COUNT` pointers), for
    /// a foreign fast path such as `<memres/memres.hpp>`'s. Such code must
    /// compute classes with the same table (see the `classes` module), run
    /// on the thread that owns the pool, pop a block only when the head is
    /// not null (its first word is the next head), push a freed block by
    /// writing the old head into its first word, and call
    /// [`allocate`](Self::allocate) when a head is null. The pointer is valid
    /// while the pool is neither moved nor dropped.
    pub fn free_list_heads(&self) -> NonNull<*mut u8> {
        NonNull::from(&self.heads).cast()
    }

    /// The options in force, normalised.
    pub fn options(&self) -> PoolOptions {
        self.options
    }

    /// The upstream resource.
    pub fn upstream(&self) -> &U {
        &self.upstream
    }

    /// Allocates a block for `layout`: from its class's free list, or from
    /// upstream for oversize requests. Zero-size requests get distinct blocks.
    ///
    /// # Errors
    /// `AllocError` if upstream fails; the pool stays usable.
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let Some(class) = class_of(layout, self.options.largest_required_pool_block) else {
            let block = self.allocate_oversize(layout)?;
            self.ledger.record(block.cast::<u8>().as_ptr(), layout);
            return Ok(block);
        };
        let head = self.heads[class].get();
        let block = if head.is_null() {
            self.refill(class)?
        } else {
            // SAFETY: a non-null head is a free block of this class, whose
            // first word links to the next one.
            self.heads[class].set(unsafe { (*head).next });
            head.cast::<u8>()
        };
        hand_out(block, layout.size());
        self.ledger.record(block, as_served(layout));
        // SAFETY: blocks are carved from chunks, never null.
        Ok(NonNull::slice_from_raw_parts(unsafe { NonNull::new_unchecked(block) }, layout.size()))
    }

    /// Gives a block back to its class's free list (or an oversize block to
    /// upstream).
    ///
    /// # Safety
    /// `ptr` must have been allocated by this pool with `layout`, and not
    /// freed since.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        self.ledger.check_free("UnsyncPool::deallocate", ptr.as_ptr(), as_served(layout), || self.owns(ptr.as_ptr()));
        let Some(class) = class_of(layout, self.options.largest_required_pool_block) else {
            // SAFETY: forwarded contract: an oversize block with this layout.
            return unsafe { self.deallocate_oversize(ptr, layout) };
        };
        let block = ptr.as_ptr();
        // SAFETY: the block is ours, of this class, and no longer live; it
        // is at least 8 bytes and aligned for a pointer (class sizes are
        // multiples of 8, carved at multiples of the size from an aligned base).
        unsafe {
            retire(block, class_size(class));
            hand_out(block, size_of::<FreeBlock>());
            block.cast::<FreeBlock>().write(FreeBlock { next: self.heads[class].get() });
        }
        self.heads[class].set(block.cast());
    }

    /// Takes blocks from the newest chunk's uncarved tail, or a new chunk.
    #[cold]
    #[inline(never)]
    fn refill(&self, class: usize) -> Result<*mut u8, AllocError> {
        let state = &self.classes[class];
        if state.carve.get() == state.carve_end.get() {
            self.add_chunk(class)?;
        }
        let size = class_size(class);
        let first = state.carve.get();
        let count = ((state.carve_end.get() - first) / size).min(CARVE_BATCH);
        // The first block is handed out; the rest go on the free list, in
        // address order.
        let chunk = state.chunks.get().expect("a class with uncarved blocks has a chunk");
        // SAFETY: `chunk` is live; we derive block pointers from its base so
        // they carry the chunk's provenance.
        let base = unsafe { chunk.as_ref().base };
        let at = |addr: usize| base.wrapping_add(addr - base.addr());
        let mut next = self.heads[class].get();
        for i in (1..count).rev() {
            let block = at(first + i * size);
            // SAFETY: uncarved blocks of a live chunk: ours, not live.
            unsafe {
                hand_out(block, size_of::<FreeBlock>());
                block.cast::<FreeBlock>().write(FreeBlock { next });
            }
            next = block.cast();
        }
        self.heads[class].set(next);
        state.carve.set(first + count * size);
        Ok(at(first))
    }

    /// Takes a new chunk for `class` from upstream and makes it the carve range.
    fn add_chunk(&self, class: usize) -> Result<(), AllocError> {
        let state = &self.classes[class];
        let size = class_size(class);
        let max_blocks = self.options.max_blocks_per_chunk.min((MAX_CHUNK_BYTES / size).max(1));
        let blocks = match state.next_blocks.get() {
            0 => (FIRST_CHUNK_BYTES / size).clamp(1, max_blocks),
            n => n.min(max_blocks),
        };
        let data = blocks * size; // at most 1 GiB: no overflow
        let layout =
            Layout::from_size_align(data + size_of::<PoolChunk>(), class_align(class)).map_err(|_| AllocError)?;
        let block = self.upstream.allocate(layout)?;
        let base = block.cast::<u8>().as_ptr();
        let footer = base.wrapping_add(data).cast::<PoolChunk>();
        // SAFETY: the footer lies inside the fresh block, after the data, at a
        // multiple of 8 from an aligned base.
        unsafe { footer.write(PoolChunk { next: ptr::null_mut(), base, layout, blocks }) };
        // SAFETY: the fresh data holds no block.
        unsafe { retire(base, data) };
        let chunk = NonNull::new(footer).expect("inside a block");
        // SAFETY: `chunk` was just written; the list holds only our chunks.
        unsafe { (*footer).next = state.chunks.get().map_or(ptr::null_mut(), NonNull::as_ptr) };
        state.chunks.set(Some(chunk));
        state.carve.set(base.addr());
        state.carve_end.set(base.addr() + data);
        state.next_blocks.set(blocks.saturating_mul(2));
        state.blocks_in_chunks.set(state.blocks_in_chunks.get() + blocks);
        state.chunk_count.set(state.chunk_count.get() + 1);
        state.bytes_held.set(state.bytes_held.get() + layout.size());
        self.upstream_allocs.set(self.upstream_allocs.get() + 1);
        Ok(())
    }

    /// The header size in front of an oversize block with this alignment.
    fn oversize_header(align: usize) -> usize {
        size_of::<Oversize>().next_multiple_of(align.max(align_of_oversize()))
    }

    #[cold]
    fn allocate_oversize(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let header = Self::oversize_header(layout.align());
        let total = layout.size().checked_add(header).ok_or(AllocError)?;
        let outer = Layout::from_size_align(total, layout.align().max(align_of_oversize())).map_err(|_| AllocError)?;
        let block = self.upstream.allocate(outer)?.cast::<u8>().as_ptr();
        let head = block.wrapping_add(header - size_of::<Oversize>()).cast::<Oversize>();
        let next = self.oversize.get();
        // SAFETY: the header lies in the fresh block, aligned (header is a
        // multiple of its alignment, and so is its size); `next` is ours.
        unsafe {
            head.write(Oversize { prev: ptr::null_mut(), next, layout: outer });
            if !next.is_null() {
                (*next).prev = head;
            }
        }
        self.oversize.set(head);
        self.oversize_bytes.set(self.oversize_bytes.get() + outer.size());
        self.upstream_allocs.set(self.upstream_allocs.get() + 1);
        let user = block.wrapping_add(header);
        // SAFETY: inside a non-null block.
        Ok(NonNull::slice_from_raw_parts(unsafe { NonNull::new_unchecked(user) }, layout.size()))
    }

    /// # Safety
    /// `ptr` is an oversize block of this pool allocated with `layout`.
    unsafe fn deallocate_oversize(&self, ptr: NonNull<u8>, layout: Layout) {
        let header = Self::oversize_header(layout.align());
        let head = ptr.as_ptr().wrapping_sub(size_of::<Oversize>()).cast::<Oversize>();
        // SAFETY: the caller's contract: the header in front of the block is
        // ours and linked in the oversize list.
        unsafe {
            let Oversize { prev, next, layout: outer } = head.read();
            if prev.is_null() {
                self.oversize.set(next);
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            self.free_oversize(ptr.as_ptr().wrapping_sub(header), outer);
        }
    }

    /// # Safety
    /// `block` came from upstream with `outer`, and is unlinked.
    unsafe fn free_oversize(&self, block: *mut u8, outer: Layout) {
        // SAFETY: the caller's contract.
        unsafe { self.upstream.deallocate(NonNull::new_unchecked(block), outer) };
        self.oversize_bytes.set(self.oversize_bytes.get() - outer.size());
        self.upstream_frees.set(self.upstream_frees.get() + 1);
    }

    /// Gives every chunk and oversize block back to upstream (std's
    /// `release`). The pool stays usable and starts over.
    pub fn release(&mut self) {
        self.release_all();
    }

    fn release_all(&self) {
        for class in 0..CLASS_COUNT {
            let state = &self.classes[class];
            let mut at = state.chunks.take();
            while let Some(chunk) = at {
                // SAFETY: our chunk; no block in it outlives `&mut self`/drop.
                unsafe {
                    let PoolChunk { next, base, layout, .. } = chunk.as_ptr().read();
                    self.upstream.deallocate(NonNull::new_unchecked(base), layout);
                    at = NonNull::new(next);
                }
                self.upstream_frees.set(self.upstream_frees.get() + 1);
            }
            self.heads[class].set(ptr::null_mut());
            state.clear(); // back to the first chunk size, as in a new pool
        }
        self.ledger.forget_all();
        let mut at = self.oversize.replace(ptr::null_mut());
        while !at.is_null() {
            // SAFETY: our oversize list; no block outlives `&mut self`/drop.
            // The header size depends only on the outer alignment (see
            // `oversize_header`), so the block's start is found from it.
            unsafe {
                let Oversize { next, layout: outer, .. } = at.read();
                let header = Self::oversize_header(outer.align());
                self.free_oversize(at.cast::<u8>().add(size_of::<Oversize>()).sub(header), outer);
                at = next;
            }
        }
    }

    /// Gives wholly free chunks back to upstream and returns how many bytes
    /// that was. Blocks in use stay where they are. (std's pools keep every
    /// chunk until `release`.) Allocates a scratch vector from the global
    /// allocator while it works.
    pub fn trim(&mut self) -> usize {
        let mut returned = 0;
        for class in 0..CLASS_COUNT {
            returned += self.trim_class(class);
        }
        returned
    }

    fn trim_class(&self, class: usize) -> usize {
        let state = &self.classes[class];
        if state.chunks.get().is_none() {
            return 0;
        }
        let size = class_size(class);
        // The free blocks, by address.
        let mut free = std::vec::Vec::new();
        let mut at = self.heads[class].get();
        while !at.is_null() {
            free.push(at);
            // SAFETY: free blocks of this class link to each other.
            at = unsafe { (*at).next };
        }
        free.sort_unstable();
        let (carve, carve_end) = (state.carve.get(), state.carve_end.get());
        let mut returned = 0;
        let mut keep: Option<NonNull<PoolChunk>> = None; // rebuilt list, reversed
        let mut at = state.chunks.take();
        while let Some(chunk) = at {
            // SAFETY: our chunk footers.
            let PoolChunk { next, base, layout, blocks } = unsafe { chunk.as_ptr().read() };
            at = NonNull::new(next);
            let (lo, hi) = (base.addr(), base.addr() + blocks * size);
            let first = free.partition_point(|b| b.addr() < lo);
            let last = free.partition_point(|b| b.addr() < hi);
            let uncarved = if (lo..=hi).contains(&carve) { (carve_end - carve) / size } else { 0 };
            if last - first + uncarved == blocks {
                // Wholly free: drop its blocks from the free list, give it back.
                free.drain(first..last);
                if uncarved > 0 {
                    state.carve.set(0);
                    state.carve_end.set(0);
                }
                // SAFETY: no block of this chunk is live.
                unsafe { self.upstream.deallocate(NonNull::new_unchecked(base), layout) };
                self.upstream_frees.set(self.upstream_frees.get() + 1);
                state.blocks_in_chunks.set(state.blocks_in_chunks.get() - blocks);
                state.chunk_count.set(state.chunk_count.get() - 1);
                state.bytes_held.set(state.bytes_held.get() - layout.size());
                returned += layout.size();
            } else {
                // SAFETY: relinking our own footers.
                unsafe { (*chunk.as_ptr()).next = keep.map_or(ptr::null_mut(), NonNull::as_ptr) };
                keep = Some(chunk);
            }
        }
        // Restore the kept chunks in their original order (newest first).
        let mut ordered: Option<NonNull<PoolChunk>> = None;
        while let Some(chunk) = keep {
            // SAFETY: as above.
            unsafe {
                keep = NonNull::new((*chunk.as_ptr()).next);
                (*chunk.as_ptr()).next = ordered.map_or(ptr::null_mut(), NonNull::as_ptr);
            }
            ordered = Some(chunk);
        }
        state.chunks.set(ordered);
        // Rebuild the free list from the blocks that remain, in address order.
        let mut next = ptr::null_mut();
        for &block in free.iter().rev() {
            // SAFETY: a free block of a kept chunk.
            unsafe { (*block).next = next };
            next = block;
        }
        self.heads[class].set(next);
        returned
    }

    /// What each size class holds, smallest class first (classes that never
    /// held a chunk are left out).
    pub fn class_stats(&self) -> impl Iterator<Item = ClassStats> + '_ {
        (0..CLASS_COUNT).filter(|&c| self.classes[c].chunk_count.get() > 0).map(|class| {
            let state = &self.classes[class];
            let size = class_size(class);
            let mut free = (state.carve_end.get() - state.carve.get()) / size;
            let mut at = self.heads[class].get();
            while !at.is_null() {
                free += 1;
                // SAFETY: free blocks of this class link to each other.
                at = unsafe { (*at).next };
            }
            ClassStats {
                block_size: size,
                blocks_live: state.blocks_in_chunks.get() - free,
                blocks_free: free,
                chunks: state.chunk_count.get(),
                bytes_held: state.bytes_held.get(),
            }
        })
    }

    /// Does `ptr` lie in memory the pool holds (a chunk, an oversize block)?
    fn owns(&self, ptr: *const u8) -> bool {
        let addr = ptr.addr();
        let in_chunks = self.classes.iter().any(|state| {
            let mut at = state.chunks.get();
            while let Some(chunk) = at {
                // SAFETY: our chunk footers.
                let PoolChunk { next, base, layout, .. } = unsafe { chunk.as_ptr().read() };
                if (base.addr()..base.addr() + layout.size()).contains(&addr) {
                    return true;
                }
                at = NonNull::new(next);
            }
            false
        });
        let mut at = self.oversize.get();
        let mut in_oversize = false;
        while !at.is_null() && !in_oversize {
            // SAFETY: our oversize headers; the block runs from the header on.
            let Oversize { next, layout: outer, .. } = unsafe { at.read() };
            in_oversize = (at.addr()..at.addr() + outer.size()).contains(&addr);
            at = next;
        }
        in_chunks || in_oversize
    }

    /// Bytes held from upstream: every class's chunks and the oversize blocks.
    pub fn bytes_held(&self) -> usize {
        self.classes.iter().map(|c| c.bytes_held.get()).sum::<usize>() + self.oversize_bytes.get()
    }

    /// Successful upstream allocations and upstream deallocations, ever.
    pub fn upstream_calls(&self) -> (u64, u64) {
        (self.upstream_allocs.get(), self.upstream_frees.get())
    }
}

impl Class {
    fn clear(&self) {
        self.chunks.set(None);
        self.carve.set(0);
        self.carve_end.set(0);
        self.next_blocks.set(0);
        self.blocks_in_chunks.set(0);
        self.chunk_count.set(0);
        self.bytes_held.set(0);
    }
}

/// The layout the ledger records for a request: zero-size requests get real,
/// distinct blocks here, so they count as one byte (the ledger ignores
/// zero-size blocks, which in an arena share addresses).
#[inline(always)]
fn as_served(layout: Layout) -> Layout {
    Layout::from_size_align(layout.size().max(1), layout.align()).unwrap_or(layout)
}

/// The alignment of an oversize header.
const fn align_of_oversize() -> usize {
    core::mem::align_of::<Oversize>()
}

impl<U: MemoryResource> Drop for UnsyncPool<U> {
    fn drop(&mut self) {
        self.release_all();
    }
}

// SAFETY: blocks come from chunks the pool owns (or upstream, for oversize
// ones), each handed out once until freed with its layout; they stay valid
// until freed, `release`, `trim` (which returns only chunks without live
// blocks) or drop.
unsafe impl<U: MemoryResource> MemoryResource for UnsyncPool<U> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        UnsyncPool::allocate(self, layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { UnsyncPool::deallocate(self, ptr, layout) }
    }
}

// SAFETY: as for `MemoryResource`; `grow` and `shrink` keep the block when
// the new layout falls in the same class, else allocate, copy and free.
unsafe impl<U: MemoryResource> Allocator for &UnsyncPool<U> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        UnsyncPool::allocate(self, layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { UnsyncPool::deallocate(self, ptr, layout) }
    }

    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { self.resize(ptr, old, new) }
    }

    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { self.resize(ptr, old, new) }
    }
}

impl<U: MemoryResource> UnsyncPool<U> {
    /// Keeps the block if `new` falls in `old`'s class; else moves it.
    ///
    /// # Safety
    /// `ptr` is live in this pool with layout `old`.
    unsafe fn resize(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let largest = self.options.largest_required_pool_block;
        if let (Some(a), Some(b)) = (class_of(old, largest), class_of(new, largest)) {
            if a == b {
                self.ledger.check_free("UnsyncPool::resize", ptr.as_ptr(), as_served(old), || self.owns(ptr.as_ptr()));
                self.ledger.record(ptr.as_ptr(), as_served(new));
                hand_out(ptr.as_ptr(), new.size());
                return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
            }
        }
        let block = self.allocate(new)?;
        // SAFETY: distinct live blocks, each holding at least the copied bytes.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), block.cast::<u8>().as_ptr(), old.size().min(new.size()));
            self.deallocate(ptr, old);
        }
        Ok(block)
    }
}
