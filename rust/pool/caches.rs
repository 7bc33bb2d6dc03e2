//! The per-thread caches of [`SyncPool`](super::SyncPool) and the central
//! free lists they trade batches of blocks with.
//!
//! ```text
//!   thread A            thread B              (one ThreadCache per thread and pool:
//!   ThreadCache         ThreadCache            a free list and a room count per class)
//!      │ ▲                 │ ▲
//!      │ │ batches of      │ │                 take: a whole batch, or carve one
//!      ▼ │ batch(c) blocks ▼ │                 give: a whole batch when a list is full
//!   Central[c] (one Mutex per class): full batches, a loose list, the chunks
//!      │
//!   upstream (one Mutex: one call at a time, as std promises)
//! ```
//!
//! # What is owned where
//! - [`Shared`] (behind an `Arc`, held by the pool and by every thread that
//!   has a cache for it) owns the central lists, the chunks, and every
//!   `ThreadCache` record ever made for the pool (freed when the last `Arc`
//!   goes).
//! - A `ThreadCache` is *attached* to one thread, which alone touches it,
//!   from `attach` until the thread exits (then it is drained and *idle*,
//!   ready for the next thread), or until the pool is dropped.
//! - Blocks belong to no thread: a block freed by any thread goes on that
//!   thread's list. A list holds at most `cap(c) = 2 * batch(c)` blocks; a
//!   free into a full list first gives its newest `batch(c)` blocks to the
//!   central lists, and an allocation from an empty list takes a batch.
//!   So a producer thread and a consumer thread trade whole batches through
//!   the centre, and neither list grows without bound.
//!
//! # Invariants
//! - per cache and class: `room[c] + len(heads[c]) == cap(c)`;
//! - every batch in `Central::full` is a null-terminated chain of exactly
//!   `batch(c)` free blocks; `loose` holds `loose_len` free blocks;
//! - free blocks of a class are in exactly one list: a cache's, a full
//!   batch, the loose list; or uncarved in the newest chunk.
//!
//! # Threads and locks
//! The fast paths (a pop or push on the calling thread's own cache) take no
//! lock and no atomic read-modify-write; the cache is found through a
//! thread-local hint (one load and a compare). Locks, always taken in this
//! order: the registry (attach, detach, and the pool's `&mut self`
//! operations) → one class's central list (a batch changes hands) → the
//! upstream. There is no lock-free structure to model-check: every shared
//! datum is behind a `Mutex`, and `alive` is only a hint read to prune dead
//! entries (the authoritative check is made under the registry lock). So
//! nothing here depends on the CPU's memory order beyond what the locks
//! give, on AArch64 as on x86-64: a stale `alive` read keeps a dead entry
//! one call longer, and it never turns from false back to true.
//!
//! # Thread exit
//! A thread's `Attached` list is a thread-local with a destructor: for each
//! pool still alive, it drains the cache into the central lists and marks it
//! idle, under the registry lock, so a concurrent `release` or drop of the
//! pool cannot interleave. Code that runs after that destructor (another
//! thread-local's destructor) still works: it finds no cache and takes and
//! gives single blocks under the class lock.

use core::cell::{Cell, RefCell};
use core::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use allocator_api2::alloc::AllocError;

use super::chunks::{ClassChunks, Source, chain, end_at, lock, next_or_end};
use super::guard::{self, FreeBlock, Keys, link};
use crate::classes::{CLASS_COUNT, class_size};

/// Blocks that change hands between a cache and the centre at once: about
/// 16 KiB, between 1 and 64 blocks.
#[inline(always)]
pub(super) fn batch(class: usize) -> usize {
    ((16 << 10) / class_size(class)).clamp(1, 64)
}

/// The most blocks of a class a thread's cache holds.
#[inline(always)]
fn cap(class: usize) -> u32 {
    2 * batch(class) as u32
}

/// One thread's free lists for one pool. `#[repr(C)]` with the heads first:
/// `<memres/memres.hpp>` pops and pushes on them inline.
#[repr(C)]
pub struct ThreadCache {
    heads: [*mut FreeBlock; CLASS_COUNT],
    /// How many more blocks each list may take before a batch goes back.
    room: [u32; CLASS_COUNT],
    /// The pool's keys (a copy of `Shared::keys`, for the fast paths).
    keys: Keys,
    /// Bytes this thread may still take from its lists before the
    /// profiler's next sample (see `crate::profile`): each block popped
    /// counts down from it; when it goes below zero, Rust's pop takes the
    /// sample first and C++'s inline pop leaves the block to Rust.
    sample_left: isize,
}

impl ThreadCache {
    pub(super) fn empty(keys: Keys) -> Self {
        ThreadCache {
            heads: [ptr::null_mut(); CLASS_COUNT],
            room: core::array::from_fn(cap),
            keys,
            sample_left: crate::profile::countdown(crate::profile::interval()),
        }
    }

    /// The profiler's count ran out on an allocation of `size` bytes: arms
    /// the next count, and records the allocation as a sample if the
    /// profiler is on (the allocated view only: a pool's `deallocate` is
    /// not watched).
    ///
    /// # Safety
    /// `this` is the calling thread's attached cache.
    #[cold]
    #[inline(never)]
    unsafe fn sample(this: *mut ThreadCache, size: usize, shared: &Shared) {
        let interval = crate::profile::interval();
        // SAFETY: only this thread touches its cache.
        unsafe { (*this).sample_left = crate::profile::countdown(interval) };
        if interval != 0 && crate::profile::may_record() {
            let name = lock(&shared.name).clone();
            crate::profile::record(size, interval, crate::profile::resource_name("SyncPool", name.as_deref()), false);
        }
    }

    /// The slow paths' share of the profiler's count: `size` bytes the
    /// inline pop did not count (it counts only blocks it pops), sampled if
    /// the count runs out (or ran out: C++'s pop leaves it below zero).
    ///
    /// # Safety
    /// `this` is the calling thread's attached cache of the pool `shared`.
    unsafe fn count_slow(this: *mut ThreadCache, size: usize, shared: &Shared) {
        // SAFETY: only this thread touches its cache.
        unsafe {
            if (*this).sample_left >= 0 {
                (*this).sample_left = (*this).sample_left.wrapping_sub(size as isize);
            }
            if (*this).sample_left < 0 {
                Self::sample(this, size, shared);
            }
        }
    }

    /// Pops a block of `class` for `size` bytes, if the list has one,
    /// counting them for the profiler. A list whose head's seal is broken is
    /// reported and abandoned (then the list is empty).
    ///
    /// # Safety
    /// `this` is the calling thread's attached cache of the pool `shared`.
    #[inline(always)]
    pub(super) unsafe fn pop(
        this: NonNull<ThreadCache>,
        class: usize,
        size: usize,
        shared: &Shared,
    ) -> Option<NonNull<FreeBlock>> {
        let this = this.as_ptr();
        // SAFETY: only this thread touches its cache; a non-null head is a
        // free block listed with the pool's keys.
        unsafe {
            let head = NonNull::new((*this).heads[class])?;
            let left = (*this).sample_left.wrapping_sub(size as isize);
            (*this).sample_left = left;
            if left < 0 {
                Self::sample(this, size, shared);
            }
            let Some(next) = guard::take(head.as_ptr(), &(*this).keys) else {
                Self::abandon(this, class);
                return None;
            };
            (*this).heads[class] = next;
            (*this).room[class] += 1;
            Some(head)
        }
    }

    /// Reports the corrupt head of the list of `class` and empties the list
    /// (its blocks leak).
    ///
    /// # Safety
    /// `this` is the calling thread's attached cache.
    #[cold]
    #[inline(never)]
    unsafe fn abandon(this: *mut ThreadCache, class: usize) {
        // SAFETY: only this thread touches its cache.
        unsafe {
            guard::corrupt((*this).heads[class]);
            (*this).heads[class] = ptr::null_mut();
            (*this).room[class] = cap(class);
        }
    }

    /// Pushes a freed block of `class`, first giving a batch to the centre
    /// if the list is full.
    ///
    /// # Safety
    /// `this` is the calling thread's attached cache of the pool `shared`;
    /// `block` is a block of `class` of that pool that nobody uses.
    #[inline(always)]
    pub(super) unsafe fn push(this: NonNull<ThreadCache>, class: usize, block: *mut FreeBlock, shared: &Shared) {
        let this = this.as_ptr();
        // SAFETY: only this thread touches its cache; `block` is free.
        unsafe {
            if (*this).room[class] == 0 {
                Self::give_batch(this, class, shared);
            }
            link(block, (*this).heads[class], &(*this).keys);
            (*this).heads[class] = block;
            (*this).room[class] -= 1;
        }
    }

    /// Moves the newest `batch(class)` blocks of a full list to the centre
    /// (fewer if a corrupt link cut the list short: the walk stops there).
    ///
    /// # Safety
    /// As for [`push`](Self::push), with a full list.
    #[cold]
    #[inline(never)]
    unsafe fn give_batch(this: *mut ThreadCache, class: usize, shared: &Shared) {
        let n = batch(class);
        // SAFETY: a full list holds 2n >= n blocks of our own, listed with
        // the pool's keys.
        unsafe {
            let keys = &(*this).keys;
            let head = (*this).heads[class];
            let (mut tail, mut rest, mut k) = (head, next_or_end(head, keys), 1);
            while k < n && !rest.is_null() {
                tail = rest;
                rest = next_or_end(tail, keys);
                k += 1;
            }
            (*this).heads[class] = rest;
            end_at(tail, keys);
            (*this).room[class] += k as u32;
            lock(&shared.centrals[class].0).give(class, head, k, keys);
        }
    }

    /// Refills the empty list of `class` with a batch from the centre and
    /// returns one block of it, for `size` bytes (counted for the profiler).
    ///
    /// # Safety
    /// `this` is the calling thread's attached cache of the pool `shared`,
    /// and its list of `class` is empty.
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn refill(
        this: NonNull<ThreadCache>,
        class: usize,
        size: usize,
        shared: &Shared,
        max_blocks_per_chunk: usize,
        source: &impl Source,
    ) -> Result<NonNull<FreeBlock>, AllocError> {
        let this = this.as_ptr();
        // SAFETY: the caller's contract.
        unsafe { Self::count_slow(this, size, shared) };
        loop {
            let (first, n) = lock(&shared.centrals[class].0).take(
                class,
                batch(class),
                max_blocks_per_chunk,
                source,
                &shared.keys,
            )?;
            // SAFETY: a chain of n free blocks now ours, listed with the
            // pool's keys; the list was empty. A chain whose first block is
            // corrupt is reported and abandoned, and the next one taken.
            unsafe {
                let Some(next) = guard::take(first.as_ptr(), &shared.keys) else {
                    guard::corrupt(first.as_ptr());
                    continue;
                };
                (*this).heads[class] = next;
                (*this).room[class] = cap(class) - (n as u32 - 1);
            }
            return Ok(first);
        }
    }

    /// Gives every block to the centre and empties the lists.
    ///
    /// # Safety
    /// Nobody else touches the cache meanwhile, and the pool is alive.
    unsafe fn drain(this: NonNull<ThreadCache>, shared: &Shared) {
        let this = this.as_ptr();
        for class in 0..CLASS_COUNT {
            // SAFETY: the caller's contract; the list holds free blocks.
            unsafe {
                let head = core::mem::replace(&mut (*this).heads[class], ptr::null_mut());
                let len = cap(class) - (*this).room[class];
                (*this).room[class] = cap(class);
                if !head.is_null() {
                    lock(&shared.centrals[class].0).give(class, head, len as usize, &shared.keys);
                }
            }
        }
    }

    /// Blocks on the list of `class`.
    fn len(&self, class: usize) -> usize {
        (cap(class) - self.room[class]) as usize
    }
}

/// One class's central lists and chunks.
#[derive(Default)]
pub(super) struct Central {
    pub(super) chunks: ClassChunks,
    /// Chains of exactly `batch(c)` free blocks.
    full: Vec<NonNull<FreeBlock>>,
    loose: *mut FreeBlock,
    loose_len: usize,
}

// SAFETY: the listed blocks are free memory of chunks this value owns.
unsafe impl Send for Central {}

impl Central {
    /// Takes a chain of up to `max` blocks (`max` is `batch(c)` or 1): a
    /// whole batch, loose blocks, or blocks carved from the chunks.
    pub(super) fn take(
        &mut self,
        class: usize,
        max: usize,
        max_blocks_per_chunk: usize,
        source: &impl Source,
        keys: &Keys,
    ) -> Result<(NonNull<FreeBlock>, usize), AllocError> {
        if max == batch(class) {
            if let Some(head) = self.full.pop() {
                return Ok((head, max));
            }
        } else if self.loose.is_null() {
            if let Some(head) = self.full.pop() {
                // Break a batch: its tail becomes the loose list.
                // SAFETY: a full batch is a chain of free blocks listed with
                // the pool's keys.
                unsafe {
                    self.loose = next_or_end(head.as_ptr(), keys);
                    end_at(head.as_ptr(), keys);
                }
                self.loose_len = batch(class) - 1;
                return Ok((head, 1));
            }
        }
        if let Some(head) = NonNull::new(self.loose) {
            // SAFETY: the loose list is a chain of (at most, if a corrupt
            // link cut it short) `loose_len` free blocks.
            let (mut tail, mut rest, mut n) = (head.as_ptr(), unsafe { next_or_end(head.as_ptr(), keys) }, 1);
            while n < max && !rest.is_null() {
                tail = rest;
                // SAFETY: as above.
                rest = unsafe { next_or_end(tail, keys) };
                n += 1;
            }
            self.loose = rest;
            // SAFETY: as above.
            unsafe { end_at(tail, keys) };
            self.loose_len = self.loose_len.saturating_sub(n);
            return Ok((head, n));
        }
        self.chunks.carve(class, max, max_blocks_per_chunk, source, keys)
    }

    /// Takes a chain of `len` free blocks: a full batch, or loose blocks.
    pub(super) fn give(&mut self, class: usize, head: *mut FreeBlock, len: usize, keys: &Keys) {
        if len == batch(class) {
            self.full.push(NonNull::new(head).expect("a batch is not empty"));
            return;
        }
        let mut tail = head;
        // SAFETY: a chain of `len` free blocks handed to us, listed with the
        // pool's keys (a corrupt link ends it early).
        unsafe {
            let mut next = next_or_end(tail, keys);
            while !next.is_null() {
                tail = next;
                next = next_or_end(tail, keys);
            }
            link(tail, self.loose, keys);
        }
        self.loose = head;
        self.loose_len += len;
    }

    /// Free blocks listed here (not counting uncarved ones).
    fn listed(&self, class: usize) -> usize {
        self.full.len() * batch(class) + self.loose_len
    }

    /// Moves every listed free block into `out`, emptying the lists.
    fn take_all(&mut self, out: &mut Vec<*mut FreeBlock>, keys: &Keys) {
        for head in self.full.drain(..) {
            // SAFETY: each batch is a chain of free blocks listed with the
            // pool's keys.
            unsafe { super::chunks::collect(head.as_ptr(), out, keys) };
        }
        // SAFETY: as above.
        unsafe { super::chunks::collect(self.loose, out, keys) };
        self.loose = ptr::null_mut();
        self.loose_len = 0;
    }

    /// Lists `blocks` again, in full batches and a loose rest.
    ///
    /// # Safety
    /// Each is a free block of this class that no list holds.
    unsafe fn put_all(&mut self, class: usize, blocks: &[*mut FreeBlock], keys: &Keys) {
        let mut batches = blocks.chunks_exact(batch(class));
        for b in batches.by_ref() {
            // SAFETY: the caller's contract.
            let head = unsafe { chain(b, keys) };
            self.full.push(NonNull::new(head).expect("a batch is not empty"));
        }
        let rest = batches.remainder();
        if !rest.is_empty() {
            // SAFETY: the caller's contract.
            let head = unsafe { chain(rest, keys) };
            self.give(class, head, rest.len(), keys);
        }
    }

    /// Forgets every listed block (the chunks are being released).
    pub(super) fn forget_lists(&mut self) {
        self.full.clear();
        self.loose = ptr::null_mut();
        self.loose_len = 0;
    }
}

/// A value on its own cache line, so that neighbouring locks do not share one.
#[repr(align(64))]
#[derive(Default)]
pub(super) struct Padded<T>(pub(super) T);

/// Which caches exist.
#[derive(Default)]
struct Registry {
    /// Every cache record ever made for the pool (freed with `Shared`).
    all: Vec<NonNull<ThreadCache>>,
    /// Drained records of exited threads, for the next thread to take.
    idle: Vec<NonNull<ThreadCache>>,
}

// SAFETY: the records are heap memory this value owns.
unsafe impl Send for Registry {}

/// The part of a `SyncPool` that threads with a cache also hold.
pub(super) struct Shared {
    pub(super) centrals: [Padded<Mutex<Central>>; CLASS_COUNT],
    /// The keys every list of the pool is sealed with (see `guard`).
    pub(super) keys: Keys,
    registry: Mutex<Registry>,
    /// False once the pool is dropped; written under the registry lock.
    alive: AtomicBool,
    /// What the profiler calls the pool's samples (`SyncPool::named`).
    pub(super) name: Mutex<Option<Arc<str>>>,
}

impl Shared {
    pub(super) fn new() -> Self {
        Shared {
            centrals: core::array::from_fn(|_| Padded::default()),
            keys: Keys::new(),
            registry: Mutex::default(),
            alive: AtomicBool::new(true),
            name: Mutex::new(None),
        }
    }

    /// A cache record for the calling thread: an idle one, or a new one.
    fn attach(&self) -> NonNull<ThreadCache> {
        let mut registry = lock(&self.registry);
        if let Some(cache) = registry.idle.pop() {
            return cache;
        }
        let cache = NonNull::from(Box::leak(Box::new(ThreadCache::empty(self.keys))));
        registry.all.push(cache);
        cache
    }

    /// The calling thread is done with `cache` (it is exiting).
    fn detach(&self, cache: NonNull<ThreadCache>) {
        let mut registry = lock(&self.registry);
        if self.alive.load(Ordering::Relaxed) {
            // SAFETY: the pool is alive (checked under the registry lock,
            // which its release and drop take), and this thread was the
            // cache's only user.
            unsafe { ThreadCache::drain(cache, self) };
            registry.idle.push(cache);
        }
    }

    /// Runs `f` with every cache record while no thread can attach, detach
    /// or (by the caller's `&mut` on the pool) use one.
    ///
    /// # Safety
    /// The caller holds the pool exclusively.
    pub(super) unsafe fn with_caches<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &mut ThreadCache>) -> R) -> R {
        let registry = lock(&self.registry);
        // SAFETY: attached caches are touched only inside their thread's
        // calls into the pool, which the caller's exclusive hold rules out;
        // detaching takes the registry lock, which we hold.
        let mut caches = registry.all.iter().map(|c| unsafe { &mut *c.as_ptr() });
        f(&mut caches)
    }

    /// Drains every cache into the centre.
    ///
    /// # Safety
    /// As for [`with_caches`](Self::with_caches).
    pub(super) unsafe fn drain_caches(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.with_caches(|caches| caches.for_each(|cache| ThreadCache::drain(NonNull::from(cache), self))) }
    }

    /// Free blocks of `class` in caches and central lists (not uncarved).
    ///
    /// # Safety
    /// As for [`with_caches`](Self::with_caches).
    pub(super) unsafe fn listed(&self, class: usize) -> usize {
        // Both counts under the registry lock: a thread that is exiting
        // (its thread-locals are destroyed after `join` or a scope's end
        // may return) drains its cache into the central lists under that
        // lock, and counting the cache before and the central lists after
        // such a drain would count its blocks twice.
        // SAFETY: forwarded contract.
        unsafe {
            self.with_caches(|caches| {
                let cached: usize = caches.map(|c| c.len(class)).sum();
                cached + lock(&self.centrals[class].0).listed(class)
            })
        }
    }

    /// Takes every free block of `class` out of the central lists (after
    /// [`drain_caches`](Self::drain_caches)), lets `f` see them sorted by
    /// address and keep some, and lists those again.
    pub(super) fn rearrange(&self, class: usize, f: impl FnOnce(&mut ClassChunks, &mut Vec<*mut FreeBlock>)) {
        let mut central = lock(&self.centrals[class].0);
        let mut free = Vec::new();
        central.take_all(&mut free, &self.keys);
        free.sort_unstable();
        f(&mut central.chunks, &mut free);
        // SAFETY: the blocks `f` kept are free blocks of this class.
        unsafe { central.put_all(class, &free, &self.keys) };
    }

    /// The pool is being dropped: no cache is drained into it any more.
    pub(super) fn retire(&self) {
        let _registry = lock(&self.registry);
        self.alive.store(false, Ordering::Relaxed);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let registry = self.registry.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        for cache in registry.all.drain(..) {
            // SAFETY: made by `Box::leak` in `attach`; the last `Arc` is
            // going, so no thread holds the record.
            drop(unsafe { Box::from_raw(cache.as_ptr()) });
        }
    }
}

/// The calling thread's cache for the pool whose `Shared` is `shared`, as a
/// `#[repr(C)]` pair that `<memres/memres.hpp>` reads too.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Hint {
    shared: *const Shared,
    cache: *mut ThreadCache,
}

const NO_HINT: Hint = Hint { shared: ptr::null(), cache: ptr::null_mut() };

/// How many pools a thread's hints name: the pool used last and the one
/// before it, so a thread that takes turns between two pools finds both
/// caches without a search (measured by `benches/workloads/examples/two_pools.rs`:
/// with one hint, alternating cost 1.36x one pool's time in Rust and 1.55x
/// in C++, every C++ call crossing into Rust). The header's inline paths
/// test both; `cache_for` tests the newest inline and the older first
/// thing in its slow path.
pub(crate) const HINTS: usize = 2;

/// The caches the calling thread has attached, with the pools they belong to.
struct Attached(Vec<(Arc<Shared>, NonNull<ThreadCache>)>);

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = HINT.try_with(|hints| hints.iter().for_each(|hint| hint.set(NO_HINT)));
        for (shared, cache) in self.0.drain(..) {
            shared.detach(cache);
        }
    }
}

thread_local! {
    /// The caches used last (newest first): the fast paths' only look-up.
    /// Each names a pool that `ATTACHED` holds, so its `Shared` cannot be
    /// freed and its address reused by another pool while the hint is set.
    static HINT: [Cell<Hint>; HINTS] = const { [const { Cell::new(NO_HINT) }; HINTS] };
    static ATTACHED: RefCell<Attached> = const { RefCell::new(Attached(Vec::new())) };
}

/// The calling thread's cache for `shared`'s pool, attaching one if need
/// be; `None` while the thread's caches are being torn down.
#[inline(always)]
pub(super) fn cache_for(shared: &Arc<Shared>) -> Option<NonNull<ThreadCache>> {
    // Only the newest hint inline: the one-pool path stays what it was with
    // one hint (tried inline, the second test cost the Rust churn 2% more
    // instructions); the second hint is the first thing the slow path tries.
    let newest = HINT.with(|hints| hints[0].get());
    if ptr::eq(newest.shared, Arc::as_ptr(shared)) {
        // SAFETY: a hint's cache is never null (see `cache_slow`).
        return Some(unsafe { NonNull::new_unchecked(newest.cache) });
    }
    cache_slow(shared)
}

#[cold]
#[inline(never)]
fn cache_slow(shared: &Arc<Shared>) -> Option<NonNull<ThreadCache>> {
    let older = HINT.with(|hints| hints[1].get());
    if ptr::eq(older.shared, Arc::as_ptr(shared)) {
        // SAFETY: as in `cache_for`.
        return Some(unsafe { NonNull::new_unchecked(older.cache) });
    }
    ATTACHED
        .try_with(|attached| {
            let mut attached = attached.try_borrow_mut().ok()?;
            let found = attached.0.iter().find(|(s, _)| Arc::ptr_eq(s, shared)).map(|&(_, c)| c);
            let cache = found.unwrap_or_else(|| {
                // Entries of dropped pools only keep their `Shared` alive.
                attached.0.retain(|(s, _)| s.alive.load(Ordering::Relaxed));
                let cache = shared.attach();
                attached.0.push((Arc::clone(shared), cache));
                cache
            });
            // Newest first: the newest hint moves down, the oldest goes. The
            // one moving down is kept only if `attached` still holds its pool
            // (the `retain` above may have let go of a dropped pool's
            // `Shared`, whose address a new pool could then take).
            let held = |hint: Hint| attached.0.iter().any(|(s, _)| ptr::eq(Arc::as_ptr(s), hint.shared));
            HINT.with(|hints| {
                let newest = hints[0].get();
                hints[1].set(if held(newest) { newest } else { NO_HINT });
                hints[0].set(Hint { shared: Arc::as_ptr(shared), cache: cache.as_ptr() });
            });
            Some(cache)
        })
        .ok()
        .flatten()
}

/// Forgets the calling thread's entry for `shared` (its pool is being dropped).
pub(super) fn forget(shared: &Arc<Shared>) {
    let _ = HINT.try_with(|hints| {
        for hint in hints {
            if ptr::eq(hint.get().shared, Arc::as_ptr(shared)) {
                hint.set(NO_HINT);
            }
        }
    });
    let _ = ATTACHED.try_with(|attached| {
        if let Ok(mut attached) = attached.try_borrow_mut() {
            attached.0.retain(|(s, _)| !Arc::ptr_eq(s, shared));
        }
    });
}

/// The address of the calling thread's hints, for `<memres/memres.hpp>`:
/// [`HINTS`] [`Hint`]s in a row, valid until the thread exits; while one
/// names a pool's `Shared`, its cache is the thread's for that pool.
pub(super) fn hint_slot() -> NonNull<Hint> {
    HINT.with(|hints| NonNull::from(hints).cast())
}

/// Where `<memres/memres.hpp>` finds the fields of [`Hint`] and
/// [`ThreadCache`]: `(hint size, key offset, cache offset, cache size,
/// heads offset, room offset, keys offset, sample count offset)`.
pub(crate) fn foreign_layout() -> [usize; 8] {
    use core::mem::{offset_of, size_of};
    [
        size_of::<Hint>(),
        offset_of!(Hint, shared),
        offset_of!(Hint, cache),
        size_of::<ThreadCache>(),
        offset_of!(ThreadCache, heads),
        offset_of!(ThreadCache, room),
        offset_of!(ThreadCache, keys),
        offset_of!(ThreadCache, sample_left),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SyncPool;
    use allocator_api2::alloc::Layout;
    use std::sync::Barrier;

    /// Whether every hint of the calling thread is empty or names a pool
    /// whose `Shared` the thread's `ATTACHED` holds (so no other pool can
    /// have its address).
    fn hints_name_held_pools() -> bool {
        HINT.with(|hints| {
            ATTACHED.with(|attached| {
                let attached = attached.borrow();
                hints.iter().map(Cell::get).all(|hint| {
                    hint.shared.is_null() || attached.0.iter().any(|(s, _)| ptr::eq(Arc::as_ptr(s), hint.shared))
                })
            })
        })
    }

    fn use_once(pool: &SyncPool) {
        let layout = Layout::new::<[u64; 8]>();
        let block = pool.allocate(layout).expect("the global allocator has memory");
        // SAFETY: just allocated by `pool` with `layout`.
        unsafe { pool.deallocate(block.cast(), layout) };
    }

    #[test]
    fn a_pool_dropped_elsewhere_leaves_no_hint_behind() {
        // A worker uses `b`, then `a` (its hints: a, b); another thread
        // drops `a` while the worker's cache for it is still attached. The
        // worker's next new pool, `c`, lets go of `a`'s `Shared` (its
        // address is then free for a new pool) and pushes the newest hint
        // down: that must not keep naming `a`.
        let a = Arc::new(SyncPool::new());
        let (b, c) = (SyncPool::new(), SyncPool::new());
        let (used, dropped) = (Barrier::new(2), Barrier::new(2));
        std::thread::scope(|s| {
            let worker_a = Arc::clone(&a);
            let (b, c, used, dropped) = (&b, &c, &used, &dropped);
            let worker = s.spawn(move || {
                use_once(b);
                use_once(&worker_a);
                drop(worker_a);
                used.wait();
                dropped.wait();
                assert!(hints_name_held_pools());
                use_once(c);
                assert!(hints_name_held_pools(), "a hint names a pool the thread let go of");
                use_once(b);
                use_once(c);
                assert!(hints_name_held_pools());
            });
            used.wait();
            drop(Arc::into_inner(a).expect("the worker let go of its handle"));
            dropped.wait();
            worker.join().unwrap();
        });
    }
}
