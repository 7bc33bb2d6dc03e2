//! What both pools do with upstream memory: the chunks of one size class
//! ([`ClassChunks`]) and the oversize blocks ([`OversizeList`]).
//!
//! Neither type locks or counts anything itself: the pool that owns them
//! decides who may touch them (a `RefCell` in `UnsyncPool`, a `Mutex` in
//! `SyncPool`), and every upstream call goes through a [`Source`], which
//! counts it (and, for `SyncPool`, takes the upstream lock).
//!
//! # Invariants of `ClassChunks`
//! - `carve <= carve_end`, both inside the newest chunk's data, or both 0;
//! - `blocks_in_chunks` is the sum of the chunks' `blocks`, `chunk_count`
//!   their number and `bytes_held` the sum of their layouts' sizes;
//! - a chunk's data is `blocks * class_size` bytes from `base`, aligned to
//!   the class's alignment, with its [`PoolChunk`] footer right after.
//!
//! # Invariants of `OversizeList`
//! - every element is a header at `block + header(align) - size_of::<Oversize>()`
//!   of a live upstream block with layout `outer`; `bytes` is the sum of the
//!   elements' `outer.size()`.

use core::alloc::Layout;
use core::cell::Cell;
use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};

use allocator_api2::alloc::AllocError;

use super::ClassStats;
use super::guard::{self, FreeBlock, Keys, link};
use crate::classes::{class_align, class_size};
use crate::debug::{acquired, give_back, releasing, retire};
use crate::resource::MemoryResource;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Where a pool's chunks and oversize blocks come from; implementations
/// count the calls (and may serialise them).
pub(super) trait Source {
    /// One upstream allocation.
    fn get(&self, layout: Layout) -> Result<NonNull<u8>, AllocError>;
    /// One upstream deallocation.
    ///
    /// # Safety
    /// `ptr` came from [`get`](Self::get) with `layout` and is not used again.
    unsafe fn put(&self, ptr: NonNull<u8>, layout: Layout);
}

/// Metadata at the end of each pool chunk.
#[repr(C)]
struct PoolChunk {
    next: *mut PoolChunk,
    base: *mut u8,
    layout: Layout,
    blocks: usize,
}

/// A new chunk is at most this large (unless one block is larger).
const MAX_CHUNK_BYTES: usize = 4 << 20;
/// The first chunk of a class is about this large.
const FIRST_CHUNK_BYTES: usize = 4 << 10;

/// The chunks one size class holds, and the uncarved tail of the newest.
#[derive(Default)]
pub(super) struct ClassChunks {
    chunks: Option<NonNull<PoolChunk>>,
    carve: usize,
    carve_end: usize,
    next_blocks: usize,
    pub(super) blocks_in_chunks: usize,
    pub(super) chunk_count: usize,
    pub(super) bytes_held: usize,
}

// SAFETY: the chunks are exclusively owned memory, reached only through
// whoever owns this value.
unsafe impl Send for ClassChunks {}

impl ClassChunks {
    /// Blocks not yet carved from the newest chunk.
    pub(super) fn uncarved(&self, class: usize) -> usize {
        (self.carve_end - self.carve) / class_size(class)
    }

    /// The class's [`ClassStats`], given how many of its blocks are on free
    /// lists (`listed`; the uncarved ones are counted here), or `None` for a
    /// class that never held a chunk. Both pools report through this.
    pub(super) fn stats(&self, class: usize, listed: usize) -> Option<ClassStats> {
        if self.chunk_count == 0 {
            return None;
        }
        let free = self.uncarved(class) + listed;
        Some(ClassStats {
            block_size: class_size(class),
            blocks_live: self.blocks_in_chunks - free,
            blocks_free: free,
            chunks: self.chunk_count,
            bytes_held: self.bytes_held,
        })
    }

    /// Carves up to `max` (at least 1) blocks, taking a new chunk from
    /// `source` when nothing is left uncarved. Returns a null-terminated
    /// chain of them in address order, and its length.
    pub(super) fn carve(
        &mut self,
        class: usize,
        max: usize,
        max_blocks_per_chunk: usize,
        source: &impl Source,
        keys: &Keys,
    ) -> Result<(NonNull<FreeBlock>, usize), AllocError> {
        if self.carve == self.carve_end {
            self.add_chunk(class, max_blocks_per_chunk, source)?;
        }
        let size = class_size(class);
        let first = self.carve;
        let count = ((self.carve_end - first) / size).min(max.max(1));
        let chunk = self.chunks.expect("a class with uncarved blocks has a chunk");
        // SAFETY: `chunk` is live; block pointers derive from its base so
        // they carry the chunk's provenance.
        let base = unsafe { chunk.as_ref().base };
        let at = |addr: usize| base.wrapping_add(addr - base.addr()).cast::<FreeBlock>();
        let mut next = ptr::null_mut();
        for i in (0..count).rev() {
            let block = at(first + i * size);
            // SAFETY: uncarved blocks of a live chunk: ours, not live.
            unsafe { link(block, next, keys) };
            next = block;
        }
        self.carve = first + count * size;
        Ok((NonNull::new(next).expect("count >= 1"), count))
    }

    /// Takes a new chunk from upstream and makes it the carve range.
    fn add_chunk(&mut self, class: usize, max_blocks_per_chunk: usize, source: &impl Source) -> Result<(), AllocError> {
        let size = class_size(class);
        let max_blocks = max_blocks_per_chunk.min((MAX_CHUNK_BYTES / size).max(1));
        let blocks = match self.next_blocks {
            0 => (FIRST_CHUNK_BYTES / size).clamp(1, max_blocks),
            n => n.min(max_blocks),
        };
        let data = blocks * size; // at most 1 GiB: no overflow
        let layout =
            Layout::from_size_align(data + size_of::<PoolChunk>(), class_align(class)).map_err(|_| AllocError)?;
        let base = source.get(layout)?.as_ptr();
        let footer = base.wrapping_add(data).cast::<PoolChunk>();
        let next = self.chunks.map_or(ptr::null_mut(), NonNull::as_ptr);
        // SAFETY: the footer lies inside the fresh block, after the data, at
        // a multiple of 8 from an aligned base; the data holds no block.
        unsafe {
            footer.write(PoolChunk { next, base, layout, blocks });
            retire(base, data);
        }
        self.chunks = NonNull::new(footer);
        self.carve = base.addr();
        self.carve_end = base.addr() + data;
        self.next_blocks = blocks.saturating_mul(2);
        self.blocks_in_chunks += blocks;
        self.chunk_count += 1;
        self.bytes_held += layout.size();
        Ok(())
    }

    /// Gives every chunk back and starts over as a new class would.
    ///
    /// # Safety
    /// No block of these chunks is used again.
    pub(super) unsafe fn release(&mut self, source: &impl Source) {
        let mut at = self.chunks.take();
        while let Some(chunk) = at {
            // SAFETY: our chunk; the caller's contract covers its blocks.
            unsafe {
                let PoolChunk { next, base, layout, .. } = chunk.as_ptr().read();
                source.put(NonNull::new_unchecked(base), layout);
                at = NonNull::new(next);
            }
        }
        *self = ClassChunks::default();
    }

    /// Gives back every chunk all of whose blocks are in `free` (sorted by
    /// address) or uncarved; removes those blocks from `free` and returns
    /// the bytes given back.
    ///
    /// # Safety
    /// `free` holds exactly the class's free blocks that are not uncarved.
    pub(super) unsafe fn trim(&mut self, class: usize, free: &mut Vec<*mut FreeBlock>, source: &impl Source) -> usize {
        let size = class_size(class);
        let mut returned = 0;
        let mut kept = Vec::new();
        let mut at = self.chunks.take();
        while let Some(chunk) = at {
            // SAFETY: our chunk footers.
            let PoolChunk { next, base, layout, blocks } = unsafe { chunk.as_ptr().read() };
            at = NonNull::new(next);
            let (lo, hi) = (base.addr(), base.addr() + blocks * size);
            let first = free.partition_point(|b| b.addr() < lo);
            let last = free.partition_point(|b| b.addr() < hi);
            let uncarved = if (lo..=hi).contains(&self.carve) { (self.carve_end - self.carve) / size } else { 0 };
            if last - first + uncarved == blocks {
                free.drain(first..last);
                if uncarved > 0 {
                    self.carve = 0;
                    self.carve_end = 0;
                }
                // SAFETY: no block of this chunk is live or listed any more.
                unsafe { source.put(NonNull::new_unchecked(base), layout) };
                self.blocks_in_chunks -= blocks;
                self.chunk_count -= 1;
                self.bytes_held -= layout.size();
                returned += layout.size();
            } else {
                kept.push(chunk);
            }
        }
        // Relink the kept chunks in their original order (newest first).
        let mut next = ptr::null_mut();
        for chunk in kept.into_iter().rev() {
            // SAFETY: relinking our own footers.
            unsafe { (*chunk.as_ptr()).next = next };
            next = chunk.as_ptr();
        }
        self.chunks = NonNull::new(next);
        returned
    }

    /// Does `addr` lie in one of the chunks?
    pub(super) fn owns(&self, addr: usize) -> bool {
        let mut at = self.chunks;
        while let Some(chunk) = at {
            // SAFETY: our chunk footers.
            let PoolChunk { next, base, layout, .. } = unsafe { chunk.as_ptr().read() };
            if (base.addr()..base.addr() + layout.size()).contains(&addr) {
                return true;
            }
            at = NonNull::new(next);
        }
        false
    }
}

/// Relinks `blocks` into a null-terminated chain in slice order.
///
/// # Safety
/// Each element is a free block of one class that nothing else lists.
pub(super) unsafe fn chain(blocks: &[*mut FreeBlock], keys: &Keys) -> *mut FreeBlock {
    let mut next = ptr::null_mut();
    for &block in blocks.iter().rev() {
        // SAFETY: the caller's contract.
        unsafe { link(block, next, keys) };
        next = block;
    }
    next
}

/// The block after `block` on a list, for the slow paths that walk lists:
/// null at the end, and null (after reporting it) where the list is
/// corrupt, so the walk stops there and the rest of the list is abandoned.
///
/// # Safety
/// `block` is a listed free block of the pool whose keys are `keys`.
pub(super) unsafe fn next_or_end(block: *mut FreeBlock, keys: &Keys) -> *mut FreeBlock {
    // SAFETY: the caller's contract.
    unsafe { guard::next(block, keys) }.unwrap_or_else(|| {
        guard::corrupt(block);
        ptr::null_mut()
    })
}

/// Makes `block` the last of its chain: its link becomes null.
///
/// # Safety
/// `block` is a listed free block of the pool whose keys are `keys`.
pub(super) unsafe fn end_at(block: *mut FreeBlock, keys: &Keys) {
    // SAFETY: the caller's contract.
    unsafe { link(block, ptr::null_mut(), keys) };
}

/// Pushes the blocks of the chain at `head` onto `out`; returns how many.
/// A corrupt link ends the chain (reported, see [`next_or_end`]).
///
/// # Safety
/// `head` starts a null-terminated chain of free blocks of the pool whose
/// keys are `keys`.
pub(super) unsafe fn collect(mut head: *mut FreeBlock, out: &mut Vec<*mut FreeBlock>, keys: &Keys) -> usize {
    let mut count = 0;
    while !head.is_null() {
        out.push(head);
        count += 1;
        // SAFETY: the caller's contract.
        head = unsafe { next_or_end(head, keys) };
    }
    count
}

/// Metadata in front of each oversize block.
#[repr(C)]
struct Oversize {
    prev: *mut Oversize,
    next: *mut Oversize,
    layout: Layout,
}

/// Blocks too large or too aligned for any class, each straight from
/// upstream behind a header, listed so that `release` returns them.
pub(super) struct OversizeList {
    head: *mut Oversize,
    pub(super) bytes: usize,
}

impl Default for OversizeList {
    fn default() -> Self {
        OversizeList { head: ptr::null_mut(), bytes: 0 }
    }
}

// SAFETY: the blocks are exclusively owned memory, reached only through
// whoever owns this value.
unsafe impl Send for OversizeList {}

impl OversizeList {
    /// The header size in front of a block with this alignment: a multiple
    /// of the alignment, so the user's block stays aligned.
    fn header(align: usize) -> usize {
        size_of::<Oversize>().next_multiple_of(align.max(align_of::<Oversize>()))
    }

    pub(super) fn allocate(&mut self, layout: Layout, source: &impl Source) -> Result<NonNull<[u8]>, AllocError> {
        let header = Self::header(layout.align());
        let total = layout.size().checked_add(header).ok_or(AllocError)?;
        let outer =
            Layout::from_size_align(total, layout.align().max(align_of::<Oversize>())).map_err(|_| AllocError)?;
        let block = source.get(outer)?.as_ptr();
        let head = block.wrapping_add(header - size_of::<Oversize>()).cast::<Oversize>();
        let next = self.head;
        // SAFETY: the header lies in the fresh block, aligned (`header` is a
        // multiple of its alignment, and so is its size); `next` is ours.
        unsafe {
            head.write(Oversize { prev: ptr::null_mut(), next, layout: outer });
            if !next.is_null() {
                (*next).prev = head;
            }
        }
        self.head = head;
        self.bytes += outer.size();
        let user = block.wrapping_add(header);
        // SAFETY: inside a non-null block.
        Ok(NonNull::slice_from_raw_parts(unsafe { NonNull::new_unchecked(user) }, layout.size()))
    }

    /// # Safety
    /// `ptr` is a block of this list allocated with `layout`, not used again.
    pub(super) unsafe fn deallocate(&mut self, ptr: NonNull<u8>, layout: Layout, source: &impl Source) {
        let header = Self::header(layout.align());
        let head = ptr.as_ptr().wrapping_sub(size_of::<Oversize>()).cast::<Oversize>();
        // SAFETY: the caller's contract: the header in front of the block is
        // ours and linked in the list.
        let outer = unsafe {
            let Oversize { prev, next, layout: outer } = head.read();
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            source.put(NonNull::new_unchecked(ptr.as_ptr().wrapping_sub(header)), outer);
            outer
        };
        self.bytes -= outer.size();
    }

    /// Gives every block back.
    ///
    /// # Safety
    /// No block of the list is used again.
    pub(super) unsafe fn release(&mut self, source: &impl Source) {
        let mut at = core::mem::replace(&mut self.head, ptr::null_mut());
        while !at.is_null() {
            // SAFETY: our list. The header size depends only on the outer
            // alignment (see `header`), so the block's start is found from it.
            unsafe {
                let Oversize { next, layout: outer, .. } = at.read();
                let start = at.cast::<u8>().add(size_of::<Oversize>()).sub(Self::header(outer.align()));
                source.put(NonNull::new_unchecked(start), outer);
                at = next;
            }
        }
        self.bytes = 0;
    }

    /// Does `addr` lie in one of the blocks?
    pub(super) fn owns(&self, addr: usize) -> bool {
        let mut at = self.head;
        while !at.is_null() {
            // SAFETY: our headers; a block runs from its header on.
            let Oversize { next, layout: outer, .. } = unsafe { at.read() };
            if (at.addr()..at.addr() + outer.size()).contains(&addr) {
                return true;
            }
            at = next;
        }
        false
    }
}

/// An upstream resource and the calls made to it.
pub(super) struct Upstream<U> {
    pub(super) resource: U,
    allocs: Cell<u64>,
    frees: Cell<u64>,
}

impl<U> Upstream<U> {
    pub(super) fn new(resource: U) -> Self {
        Upstream { resource, allocs: Cell::new(0), frees: Cell::new(0) }
    }

    /// Successful allocations and deallocations, ever.
    pub(super) fn calls(&self) -> (u64, u64) {
        (self.allocs.get(), self.frees.get())
    }
}

impl<U: MemoryResource> Source for Upstream<U> {
    fn get(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let block = self.resource.allocate(layout)?;
        self.allocs.set(self.allocs.get() + 1);
        Ok(block.cast())
    }

    unsafe fn put(&self, ptr: NonNull<u8>, layout: Layout) {
        // Unpoisoned as it leaves: an upstream that is not ASan's malloc
        // (memres's heap, say) hands the memory out again as it is.
        give_back(ptr.as_ptr(), layout.size());
        // SAFETY: forwarded contract.
        unsafe { self.resource.deallocate(ptr, layout) };
        self.frees.set(self.frees.get() + 1);
    }
}

/// A shared pool's upstream: one call at a time, as std's
/// `synchronized_pool_resource` promises its upstream.
impl<U: MemoryResource> Source for Mutex<Upstream<U>> {
    fn get(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        lock(self).get(layout)
    }

    unsafe fn put(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { lock(self).put(ptr, layout) }
    }
}

/// Locks `mutex`, ignoring poison: every lock in the pools guards state that
/// is consistent whenever code that could panic (an upstream) runs.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> Locked<'_, T> {
    let guard = mutex.lock().unwrap_or_else(PoisonError::into_inner);
    acquired(mutex);
    Locked { guard, mutex }
}

/// A held pool lock; tells ThreadSanitizer about it under feature `tsan`.
pub(super) struct Locked<'a, T> {
    guard: MutexGuard<'a, T>,
    mutex: &'a Mutex<T>,
}

impl<T> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        releasing(self.mutex); // the guard unlocks right after
    }
}

impl<T> core::ops::Deref for Locked<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> core::ops::DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}
