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
use core::cell::{Cell, RefCell};
use core::ptr::{self, NonNull};
use std::sync::Arc;

use allocator_api2::alloc::{AllocError, Allocator, Global};

use super::chunks::{ClassChunks, OversizeList, Upstream, chain, collect, next_or_end};
use super::guard::{self, FreeBlock, Keys, link};
use super::{ClassStats, PoolOptions, PoolStats, as_served, move_block, same_class};
use crate::classes::{CLASS_COUNT, class_of, class_size};
use crate::debug::{Ledger, hand_out, retire};
use crate::resource::MemoryResource;

/// How many blocks of a class are carved into the free list at once.
const CARVE_BATCH: usize = 32;

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
    /// Free-list heads and keys; first, for foreign fast paths.
    lists: Lists,
    /// Each class's chunks; touched only on slow paths.
    classes: [RefCell<ClassChunks>; CLASS_COUNT],
    options: PoolOptions,
    oversize: RefCell<OversizeList>,
    /// Live blocks under `debug-checks`; zero-sized otherwise.
    ledger: Ledger,
    upstream: Upstream<U>,
    /// What the profiler calls this pool's samples (see [`Self::named`]).
    name: RefCell<Option<Arc<str>>>,
}

/// The free-list heads, one per class, the keys their links are sealed
/// with (see `guard`), and the count to the profiler's next sample.
/// `#[repr(C)]`: `<memres/memres.hpp>` pops and pushes on them inline.
#[repr(C)]
pub(crate) struct Lists {
    heads: [Cell<*mut FreeBlock>; CLASS_COUNT],
    keys: Keys,
    /// Bytes the pool may still hand out from its lists before the
    /// profiler's next sample (see `crate::profile`): each block popped
    /// inline counts down from it, and when it goes below zero the block is
    /// left for the slow path (C++'s) or the sample is taken first (Rust's).
    sample_left: Cell<isize>,
}

/// Where a foreign fast path finds the keys: bytes from the first head.
pub(crate) const LISTS_KEYS_OFFSET: usize = core::mem::offset_of!(Lists, keys);
/// Where a foreign fast path finds the profiler's count, from the first head.
pub(crate) const LISTS_SAMPLE_LEFT_OFFSET: usize = core::mem::offset_of!(Lists, sample_left);

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
            lists: Lists {
                heads: [const { Cell::new(ptr::null_mut()) }; CLASS_COUNT],
                keys: Keys::new(),
                sample_left: Cell::new(crate::profile::countdown(crate::profile::interval())),
            },
            classes: core::array::from_fn(|_| RefCell::default()),
            options: options.normalized(),
            oversize: RefCell::default(),
            ledger: Ledger::new("memres::UnsyncPool"),
            upstream: Upstream::new(upstream),
            name: RefCell::new(None),
        }
    }

    /// The free-list heads, one per size class (`CLASS_COUNT` pointers),
    /// followed by the keys their links are sealed with, for a foreign fast
    /// path such as `<memres/memres.hpp>`'s (`ForeignLayout` says where the
    /// keys lie). Such code must compute classes with the same table (see
    /// the `classes` module), run on the thread that owns the pool, and
    /// follow the pools' list format (see `pool/guard.rs`): pop a block only
    /// when the head is not null and the block's seal holds (then zero its
    /// second word), push a freed block only when it carries no seal
    /// (writing the encoded link and the seal), and call
    /// [`allocate`](Self::allocate) / [`deallocate`](Self::deallocate)
    /// otherwise, which detect and report. The pointer is valid while the
    /// pool is neither moved nor dropped.
    pub fn free_list_heads(&self) -> NonNull<*mut u8> {
        NonNull::from(&self.lists).cast()
    }

    /// Names the pool, for the profiler: its samples' stacks start with
    /// `name (UnsyncPool)` instead of `UnsyncPool`, so that a profile can
    /// be cut by resource (see [`crate::profile`]).
    ///
    /// ```
    /// let pool = memres::UnsyncPool::new().named("parser-nodes");
    /// assert_eq!(pool.name().as_deref(), Some("parser-nodes"));
    /// ```
    #[must_use]
    pub fn named(self, name: &str) -> Self {
        self.set_name(name);
        self
    }

    /// Names the pool (see [`named`](Self::named)); `;` in `name`, which
    /// separates frames in the profile's folded form, becomes `:`.
    pub fn set_name(&self, name: &str) {
        *self.name.borrow_mut() = Some(crate::profile::clean_name(name));
    }

    /// The pool's name, if it was given one.
    pub fn name(&self) -> Option<Arc<str>> {
        self.name.borrow().clone()
    }

    /// The options in force, normalised.
    pub fn options(&self) -> PoolOptions {
        self.options
    }

    /// The upstream resource.
    pub fn upstream(&self) -> &U {
        &self.upstream.resource
    }

    /// Allocates a block for `layout`: from its class's free list, or from
    /// upstream for oversize requests. Zero-size requests get distinct blocks.
    ///
    /// # Errors
    /// `AllocError` if upstream fails; the pool stays usable.
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let Some(class) = class_of(layout, self.options.largest_required_pool_block) else {
            let block = self.oversize.borrow_mut().allocate(layout, &self.upstream)?;
            self.ledger.record(block.cast::<u8>().as_ptr(), layout);
            return Ok(block);
        };
        let head = self.lists.heads[class].get();
        let block = if head.is_null() {
            self.refill(class, layout.size())?
        } else {
            let left = self.lists.sample_left.get().wrapping_sub(layout.size() as isize);
            self.lists.sample_left.set(left);
            if left < 0 {
                self.sample(layout.size());
            }
            // SAFETY: a non-null head is a free block of this class, listed
            // by this pool with its keys.
            match unsafe { guard::take(head, &self.lists.keys) } {
                Some(next) => {
                    self.lists.heads[class].set(next);
                    head.cast::<u8>()
                }
                None => self.refill(class, 0)?, // reports the corrupt head
            }
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
            return unsafe { self.oversize.borrow_mut().deallocate(ptr, layout, &self.upstream) };
        };
        let block = ptr.as_ptr().cast::<FreeBlock>();
        // SAFETY: the block is ours, of this class, and no longer live; it
        // is at least 16 bytes and aligned for a pointer (class sizes are
        // multiples of 8, carved at multiples of the size from an aligned
        // base). A sealed block is already free: left alone.
        unsafe {
            if guard::sealed(block, &self.lists.keys) {
                return guard::double_free(block);
            }
            retire(block.cast(), class_size(class));
            link(block, self.lists.heads[class].get(), &self.lists.keys);
        }
        self.lists.heads[class].set(block);
    }

    /// The profiler's count ran out on an allocation of `size` bytes: arms
    /// the next count, and records the allocation as a sample if the
    /// profiler is on (the allocated view only: a pool's `deallocate` is not
    /// watched). The block itself is served as usual.
    #[cold]
    #[inline(never)]
    fn sample(&self, size: usize) {
        let interval = crate::profile::interval();
        self.lists.sample_left.set(crate::profile::countdown(interval));
        if interval != 0 && crate::profile::may_record() {
            let resource = crate::profile::resource_name("UnsyncPool", self.name.borrow().as_deref());
            crate::profile::record(size, interval, resource, false);
        }
    }

    /// Carves a batch of blocks (taking a new chunk if need be): the first
    /// is handed out, the rest become the free list. Also where a corrupt
    /// head ends up: it is reported, and its list abandoned (the blocks on
    /// it leak) before the carve. Counts `size` bytes for the profiler (the
    /// inline path counts only blocks it pops), sampling them if the count
    /// runs out.
    #[cold]
    #[inline(never)]
    fn refill(&self, class: usize, size: usize) -> Result<*mut u8, AllocError> {
        let left = self.lists.sample_left.get();
        if left >= 0 {
            self.lists.sample_left.set(left.wrapping_sub(size as isize));
        }
        if self.lists.sample_left.get() < 0 {
            self.sample(size);
        }
        let head = self.lists.heads[class].replace(ptr::null_mut());
        if !head.is_null() {
            guard::corrupt(head);
        }
        let keys = &self.lists.keys;
        let mut chunks = self.classes[class].borrow_mut();
        let (first, _) = chunks.carve(class, CARVE_BATCH, self.options.max_blocks_per_chunk, &self.upstream, keys)?;
        // SAFETY: a chain just linked with our keys; the head is null now.
        let next = unsafe { guard::take(first.as_ptr(), keys) }.expect("a chain just carved is sealed");
        self.lists.heads[class].set(next);
        Ok(first.as_ptr().cast())
    }

    /// Gives every chunk and oversize block back to upstream (std's
    /// `release`). The pool stays usable and starts over.
    pub fn release(&mut self) {
        self.release_all();
    }

    fn release_all(&self) {
        for class in 0..CLASS_COUNT {
            // SAFETY: no block outlives `&mut self` or drop.
            unsafe { self.classes[class].borrow_mut().release(&self.upstream) };
            self.lists.heads[class].set(ptr::null_mut());
        }
        self.ledger.forget_all("given back by release()");
        // SAFETY: as above.
        unsafe { self.oversize.borrow_mut().release(&self.upstream) };
    }

    /// Gives wholly free chunks back to upstream and returns how many bytes
    /// that was. Blocks in use stay where they are. (std's pools keep every
    /// chunk until `release`.) Allocates a scratch vector from the global
    /// allocator while it works.
    pub fn trim(&mut self) -> usize {
        let mut returned = 0;
        let mut free = Vec::new();
        for class in 0..CLASS_COUNT {
            free.clear();
            // SAFETY: the class's free list.
            unsafe { collect(self.lists.heads[class].get(), &mut free, &self.lists.keys) };
            free.sort_unstable();
            // SAFETY: `free` is exactly the listed free blocks; the ones
            // left are relinked in address order.
            unsafe {
                returned += self.classes[class].get_mut().trim(class, &mut free, &self.upstream);
                self.lists.heads[class].set(chain(&free, &self.lists.keys));
            }
        }
        returned
    }

    /// What each size class holds, smallest class first (classes that never
    /// held a chunk are left out). The same shape as
    /// [`SyncPool::class_stats`](crate::SyncPool::class_stats).
    pub fn class_stats(&self) -> Vec<ClassStats> {
        (0..CLASS_COUNT)
            .filter_map(|class| {
                let mut listed = 0;
                let mut at = self.lists.heads[class].get();
                while !at.is_null() {
                    listed += 1;
                    // SAFETY: the list of this class's free blocks, linked
                    // with this pool's keys (the pool's free-list invariant).
                    at = unsafe { next_or_end(at, &self.lists.keys) };
                }
                self.classes[class].borrow().stats(class, listed)
            })
            .collect()
    }

    /// Does `ptr` lie in memory the pool holds (a chunk, an oversize block)?
    fn owns(&self, ptr: *const u8) -> bool {
        let addr = ptr.addr();
        self.classes.iter().any(|c| c.borrow().owns(addr)) || self.oversize.borrow().owns(addr)
    }

    /// Bytes held from upstream: every class's chunks and the oversize blocks.
    pub fn bytes_held(&self) -> usize {
        self.classes.iter().map(|c| c.borrow().bytes_held).sum::<usize>() + self.oversize.borrow().bytes
    }

    /// Successful upstream allocations and upstream deallocations, ever.
    pub fn upstream_calls(&self) -> (u64, u64) {
        self.upstream.calls()
    }

    /// Everything the pool reports, in one value (with the `serde` feature,
    /// printable as JSON). The same shape as
    /// [`SyncPool::stats`](crate::SyncPool::stats).
    pub fn stats(&self) -> PoolStats {
        let (upstream_allocs, upstream_frees) = self.upstream_calls();
        PoolStats { bytes_held: self.bytes_held(), upstream_allocs, upstream_frees, classes: self.class_stats() }
    }
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
        // SAFETY: a block of one of this pool's classes.
        if class_of(old, largest).is_some() && unsafe { guard::resizing_freed(ptr.as_ptr().cast(), &self.lists.keys) } {
            return Err(AllocError);
        }
        if same_class(old, new, largest) {
            self.ledger.check_free("UnsyncPool::resize", ptr.as_ptr(), as_served(old), || self.owns(ptr.as_ptr()));
            self.ledger.record(ptr.as_ptr(), as_served(new));
            hand_out(ptr.as_ptr(), new.size());
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
        // SAFETY: forwarded contract.
        unsafe { move_block(self, ptr, old, new) }
    }
}
