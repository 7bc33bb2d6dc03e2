//! [`SyncPool`]: pools of fixed-size blocks shared by threads, with a cache
//! per thread; the Rust core of C++'s `memres::synchronized_pool_resource`.
//!
//! # What it owns
//! - per class, the chunks it got from upstream and the central lists of
//!   free blocks (see the `caches` module for the picture);
//! - per thread that used it, a [`ThreadCache`] of free blocks (records are
//!   reused by later threads and freed with the pool);
//! - every oversize block, in a list behind a lock, as in `UnsyncPool`.
//!
//! # Who may free what
//! Any thread may free a block with the layout it was allocated with, no
//! matter which thread allocated it: the block joins the freeing thread's
//! cache, and full caches give batches back to the centre. Memory goes back
//! to upstream in [`release`](SyncPool::release), on drop, and (wholly free
//! chunks) in [`trim`](SyncPool::trim); all three take `&mut self`, so no
//! thread is inside the pool meanwhile.
//!
//! # Threads
//! `Send + Sync` when the upstream is `Send`: the upstream is called by one
//! thread at a time (behind a lock), as std's `synchronized_pool_resource`
//! promises its upstream, so it need not be `Sync`. The allocate and free
//! fast paths touch only the calling thread's cache (no lock, no atomic
//! read-modify-write); see `caches` for the locks of the slow paths and what
//! happens at thread exit.
//!
//! ```
//! use memres::SyncPool;
//! use std::alloc::Layout;
//!
//! let pool = SyncPool::new();
//! let layout = Layout::new::<[u64; 4]>();
//! // Allocated on one thread, freed on another.
//! let block = pool.allocate(layout).unwrap().cast::<u8>();
//! let addr = block.as_ptr() as usize;
//! std::thread::scope(|s| {
//!     s.spawn(|| unsafe { pool.deallocate(core::ptr::NonNull::new(addr as *mut u8).unwrap(), layout) });
//! });
//! ```

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use std::sync::{Arc, Mutex};

use allocator_api2::alloc::{AllocError, Allocator, Global};

use super::PoolOptions;
use super::caches::{Shared, ThreadCache, cache_for, forget};
use super::chunks::{OversizeList, Upstream, lock};
use super::guard::{self, FreeBlock};
use super::{ClassStats, PoolStats, as_served, move_block, same_class};
use crate::classes::{CLASS_COUNT, class_of, class_size};
use crate::debug::{SharedLedger, hand_out, retire};
use crate::resource::MemoryResource;

/// Pools of fixed-size blocks that threads share, each thread with its own
/// cache of free blocks: the Rust core of C++'s
/// `memres::synchronized_pool_resource`.
///
/// Size classes, options and oversize handling are those of
/// [`UnsyncPool`](crate::UnsyncPool). A block may be freed by any thread.
///
/// ```
/// use allocator_api2::vec::Vec;
/// use memres::SyncPool;
///
/// let pool = SyncPool::new();
/// std::thread::scope(|s| {
///     for t in 0..4u32 {
///         let pool = &pool;
///         s.spawn(move || {
///             let mut v = Vec::new_in(pool);
///             v.extend(0..1000 * t);
///             assert_eq!(v.len() as u32, 1000 * t);
///         });
///     }
/// });
/// ```
pub struct SyncPool<U: MemoryResource = Global> {
    /// The central lists, chunks and cache records; threads with a cache
    /// hold it too.
    shared: Arc<Shared>,
    options: PoolOptions,
    oversize: Mutex<OversizeList>,
    /// Live blocks under `debug-checks`; zero-sized otherwise.
    ledger: SharedLedger,
    upstream: Mutex<Upstream<U>>,
}

impl SyncPool<Global> {
    /// A pool over the global allocator with the default options.
    pub fn new() -> Self {
        Self::with_options(PoolOptions::default())
    }

    /// A pool over the global allocator with `options` (normalised).
    pub fn with_options(options: PoolOptions) -> Self {
        Self::with_options_in(options, Global)
    }
}

impl Default for SyncPool<Global> {
    fn default() -> Self {
        Self::new()
    }
}

impl<U: MemoryResource> SyncPool<U> {
    /// A pool over `upstream` with the default options.
    pub fn new_in(upstream: U) -> Self {
        Self::with_options_in(PoolOptions::default(), upstream)
    }

    /// A pool over `upstream` with `options` (normalised: see [`PoolOptions`]).
    pub fn with_options_in(options: PoolOptions, upstream: U) -> Self {
        SyncPool {
            shared: Arc::new(Shared::new()),
            options: options.normalized(),
            oversize: Mutex::default(),
            ledger: SharedLedger::new("memres::SyncPool"),
            upstream: Mutex::new(Upstream::new(upstream)),
        }
    }

    /// Names the pool, for the profiler: its samples' stacks start with
    /// `name (SyncPool)` instead of `SyncPool`, so that a profile can be cut
    /// by resource (see [`crate::profile`]).
    ///
    /// ```
    /// let pool = memres::SyncPool::new().named("sessions");
    /// assert_eq!(pool.name().as_deref(), Some("sessions"));
    /// ```
    #[must_use]
    pub fn named(self, name: &str) -> Self {
        self.set_name(name);
        self
    }

    /// Names the pool (see [`named`](Self::named)), from any thread; `;`
    /// in `name`, which separates frames in the profile's folded form,
    /// becomes `:`.
    pub fn set_name(&self, name: &str) {
        *lock(&self.shared.name) = Some(crate::profile::clean_name(name));
    }

    /// The pool's name, if it was given one.
    pub fn name(&self) -> Option<Arc<str>> {
        lock(&self.shared.name).clone()
    }

    /// The options in force, normalised.
    pub fn options(&self) -> PoolOptions {
        self.options
    }

    /// Runs `f` with the upstream resource (under the upstream lock).
    pub fn with_upstream<R>(&self, f: impl FnOnce(&U) -> R) -> R {
        f(&lock(&self.upstream).resource)
    }

    /// Allocates a block for `layout` from the calling thread's cache (or
    /// from upstream, for oversize requests). Zero-size requests get
    /// distinct blocks.
    ///
    /// # Errors
    /// `AllocError` if upstream fails; the pool stays usable.
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let Some(class) = class_of(layout, self.options.largest_required_pool_block) else {
            let block = lock(&self.oversize).allocate(layout, &self.upstream)?;
            self.ledger.record(block.cast::<u8>().as_ptr(), layout);
            return Ok(block);
        };
        let block = match cache_for(&self.shared) {
            // SAFETY: `cache_for` returns the calling thread's cache.
            Some(cache) => match unsafe { ThreadCache::pop(cache, class, layout.size(), &self.shared) } {
                Some(block) => block,
                // SAFETY: as above; the list is empty.
                None => unsafe {
                    ThreadCache::refill(
                        cache,
                        class,
                        layout.size(),
                        &self.shared,
                        self.options.max_blocks_per_chunk,
                        &self.upstream,
                    )?
                },
            },
            None => self.take_uncached(class)?,
        };
        let block = block.as_ptr().cast::<u8>();
        hand_out(block, layout.size());
        self.ledger.record(block, as_served(layout));
        // SAFETY: blocks are carved from chunks, never null.
        Ok(NonNull::slice_from_raw_parts(unsafe { NonNull::new_unchecked(block) }, layout.size()))
    }

    /// Gives a block back to the calling thread's cache (or an oversize
    /// block to upstream). Any thread may free any block.
    ///
    /// # Safety
    /// `ptr` must have been allocated by this pool with `layout`, and not
    /// freed since.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        self.ledger.check_free("SyncPool::deallocate", ptr.as_ptr(), as_served(layout), || self.owns(ptr.as_ptr()));
        let Some(class) = class_of(layout, self.options.largest_required_pool_block) else {
            // SAFETY: forwarded contract: an oversize block with this layout.
            return unsafe { lock(&self.oversize).deallocate(ptr, layout, &self.upstream) };
        };
        let block = ptr.as_ptr().cast::<FreeBlock>();
        // SAFETY: the block is ours, of this class (at least 16 bytes,
        // pointer-aligned), and no longer live. A sealed block is already
        // free: left alone.
        unsafe {
            if guard::sealed(block, &self.shared.keys) {
                return guard::double_free(block);
            }
            retire(block.cast(), class_size(class));
        }
        match cache_for(&self.shared) {
            // SAFETY: the calling thread's cache; a free block of `class`.
            Some(cache) => unsafe { ThreadCache::push(cache, class, block, &self.shared) },
            // SAFETY: as above.
            None => unsafe { self.give_uncached(class, block) },
        }
    }

    /// One block straight from the centre, for a thread whose caches are
    /// gone (it is exiting).
    #[cold]
    fn take_uncached(&self, class: usize) -> Result<NonNull<FreeBlock>, AllocError> {
        let keys = &self.shared.keys;
        loop {
            let mut central = lock(&self.shared.centrals[class].0);
            let (block, n) = central.take(class, 1, self.options.max_blocks_per_chunk, &self.upstream, keys)?;
            debug_assert_eq!(n, 1);
            // SAFETY: a chain of one, listed with the pool's keys; a corrupt
            // block is reported and abandoned, and the next one taken.
            match unsafe { guard::take(block.as_ptr(), keys) } {
                Some(_) => return Ok(block),
                None => guard::corrupt(block.as_ptr()),
            }
        }
    }

    /// # Safety
    /// `block` is a free block of `class` of this pool.
    #[cold]
    unsafe fn give_uncached(&self, class: usize, block: *mut FreeBlock) {
        let keys = &self.shared.keys;
        // SAFETY: the caller's contract; a chain of one.
        unsafe { guard::link(block, ptr::null_mut(), keys) };
        lock(&self.shared.centrals[class].0).give(class, block, 1, keys);
    }

    /// Gives every chunk and oversize block back to upstream (std's
    /// `release`), emptying every thread's cache. The pool stays usable.
    pub fn release(&mut self) {
        // SAFETY: `&mut self`: no thread is inside the pool.
        unsafe { self.release_all() };
    }

    /// # Safety
    /// No thread is inside the pool, and no block is used again.
    unsafe fn release_all(&self) {
        // SAFETY: the caller's contract.
        unsafe {
            self.shared.with_caches(|caches| {
                caches.for_each(|cache| *cache = ThreadCache::empty(self.shared.keys)); // forget their blocks
                for class in 0..CLASS_COUNT {
                    let mut central = lock(&self.shared.centrals[class].0);
                    central.forget_lists();
                    central.chunks.release(&self.upstream);
                }
            });
            lock(&self.oversize).release(&self.upstream);
        }
        self.ledger.forget_all("given back by release()");
    }

    /// Gives wholly free chunks back to upstream and returns how many bytes
    /// that was, after emptying every thread's cache into the central
    /// lists. Blocks in use stay where they are.
    pub fn trim(&mut self) -> usize {
        // SAFETY: `&mut self`: no thread is inside the pool.
        unsafe { self.shared.drain_caches() };
        let mut returned = 0;
        for class in 0..CLASS_COUNT {
            self.shared.rearrange(class, |chunks, free| {
                // SAFETY: `free` is every listed free block, sorted.
                returned += unsafe { chunks.trim(class, free, &self.upstream) };
            });
        }
        returned
    }

    /// What each size class holds, smallest class first (classes that never
    /// held a chunk are left out), counting the blocks in every thread's
    /// cache: hence `&mut self`, so that no thread is inside the pool while
    /// the caches are read. The same shape as
    /// [`UnsyncPool::class_stats`](crate::UnsyncPool::class_stats).
    pub fn class_stats(&mut self) -> Vec<ClassStats> {
        (0..CLASS_COUNT)
            // Only the classes that hold chunks walk the threads' caches.
            .filter(|&class| lock(&self.shared.centrals[class].0).chunks.chunk_count > 0)
            .filter_map(|class| {
                // SAFETY: `&mut self`: no thread is inside the pool but an
                // exiting one draining its cache, which `listed` excludes
                // (and a drain moves blocks between lists, never chunks).
                let listed = unsafe { self.shared.listed(class) };
                lock(&self.shared.centrals[class].0).chunks.stats(class, listed)
            })
            .collect()
    }

    /// Does `ptr` lie in memory the pool holds (a chunk, an oversize block)?
    fn owns(&self, ptr: *const u8) -> bool {
        let addr = ptr.addr();
        self.shared.centrals.iter().any(|c| lock(&c.0).chunks.owns(addr)) || lock(&self.oversize).owns(addr)
    }

    /// Bytes held from upstream: every class's chunks and the oversize blocks.
    pub fn bytes_held(&self) -> usize {
        self.shared.centrals.iter().map(|c| lock(&c.0).chunks.bytes_held).sum::<usize>() + lock(&self.oversize).bytes
    }

    /// Successful upstream allocations and upstream deallocations, ever.
    pub fn upstream_calls(&self) -> (u64, u64) {
        lock(&self.upstream).calls()
    }

    /// Everything the pool reports, in one value (with the `serde` feature,
    /// printable as JSON); `&mut self` as for
    /// [`class_stats`](Self::class_stats). The same shape as
    /// [`UnsyncPool::stats`](crate::UnsyncPool::stats).
    pub fn stats(&mut self) -> PoolStats {
        let (upstream_allocs, upstream_frees) = self.upstream_calls();
        PoolStats { bytes_held: self.bytes_held(), upstream_allocs, upstream_frees, classes: self.class_stats() }
    }

    /// The address of the calling thread's cache hints, for a foreign fast
    /// path such as `<memres/memres.hpp>`'s: `ForeignLayout::hint_count`
    /// `#[repr(C)]` pairs of pointers `{ key, cache }` in a row (the pools
    /// the thread used last, newest first), valid until the thread exits.
    /// While a hint's `key` equals a pool's [`cache_key`](Self::cache_key), its `cache` is the
    /// thread's cache for that pool: a `#[repr(C)]` record of `CLASS_COUNT`
    /// free-list heads, `CLASS_COUNT` `u32` room counts and the pool's list
    /// keys (`ForeignLayout` has the offsets). Such code follows the pools'
    /// list format (see [`UnsyncPool::free_list_heads`](crate::UnsyncPool::free_list_heads)):
    /// it may pop a block when a head is not null and sealed (adding 1 to
    /// the class's room) and push a freed block that carries no seal when
    /// the room is not zero (taking 1), on the calling thread only;
    /// otherwise it calls
    /// [`allocate`](Self::allocate) or [`deallocate`](Self::deallocate),
    /// which also set the hint.
    pub fn hint_slot() -> NonNull<u8> {
        super::caches::hint_slot().cast()
    }

    /// This pool's key in the thread's cache hint (see
    /// [`hint_slot`](Self::hint_slot)).
    pub fn cache_key(&self) -> *const u8 {
        Arc::as_ptr(&self.shared).cast()
    }
}

impl<U: MemoryResource> Drop for SyncPool<U> {
    fn drop(&mut self) {
        self.shared.retire();
        // SAFETY: dropping: no thread is inside the pool, and no block is
        // used again.
        unsafe { self.release_all() };
        forget(&self.shared);
    }
}

// SAFETY: blocks come from chunks the pool owns (or upstream, for oversize
// ones), each handed out once until freed with its layout; they stay valid
// until freed, `release`, `trim` (which returns only chunks without live
// blocks) or drop.
unsafe impl<U: MemoryResource> MemoryResource for SyncPool<U> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        SyncPool::allocate(self, layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { SyncPool::deallocate(self, ptr, layout) }
    }
}

// SAFETY: as for `MemoryResource`; `grow` and `shrink` keep the block when
// the new layout falls in the same class, else allocate, copy and free.
unsafe impl<U: MemoryResource> Allocator for &SyncPool<U> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        SyncPool::allocate(self, layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { SyncPool::deallocate(self, ptr, layout) }
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

impl<U: MemoryResource> SyncPool<U> {
    /// Keeps the block if `new` falls in `old`'s class; else moves it.
    ///
    /// # Safety
    /// `ptr` is live in this pool with layout `old`.
    unsafe fn resize(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let largest = self.options.largest_required_pool_block;
        // SAFETY: a block of one of this pool's classes.
        if class_of(old, largest).is_some() && unsafe { guard::resizing_freed(ptr.as_ptr().cast(), &self.shared.keys) }
        {
            return Err(AllocError);
        }
        if same_class(old, new, largest) {
            self.ledger.check_free("SyncPool::resize", ptr.as_ptr(), as_served(old), || self.owns(ptr.as_ptr()));
            self.ledger.record(ptr.as_ptr(), as_served(new));
            hand_out(ptr.as_ptr(), new.size());
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
        // SAFETY: forwarded contract.
        unsafe { move_block(self, ptr, old, new) }
    }
}
