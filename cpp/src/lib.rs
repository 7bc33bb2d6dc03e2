//! The bridge between memres's Rust core and C++ (`<memres/memres.hpp>`).
//!
//! Built with `cxx`. Rust-only users do not need this crate; C++ users get it
//! as a static library (through CMake, `memres::memres`).
//!
//! # Directions
//! - C++ → Rust core: the C++ classes own a boxed Rust resource
//!   ([`MonotonicCore`]) and call into it only on slow paths; the fast path
//!   bumps the Rust object's [`memres::BumpState`] inline in C++.
//! - Rust → C++ upstream: [`CxxResource`] wraps any
//!   `std::pmr::memory_resource*` as a Rust [`MemoryResource`], so a C++
//!   resource can feed a Rust arena (and Rust collections can live in it).
//!
//! # Errors across the boundary
//! No exception crosses into Rust and no panic into C++. A C++ upstream that
//! throws is caught in C++ (`upstream_allocate`), the exception is parked in
//! a thread-local, and Rust sees `AllocError`; when the failure surfaces in a
//! memres C++ class, the parked exception is rethrown, so C++ callers see
//! what their upstream threw (`std::bad_alloc` for exhaustion inside memres
//! itself). A Rust panic inside a bridge call aborts the process (cxx's rule),
//! and no bridge call panics on bad input: it reports failure instead.
//!
//! # Invariants
//! - A `…Core` is created by its C++ class's constructor, owned by that
//!   object alone (a `rust::Box` turned raw), and destroyed by its
//!   destructor; C++ calls into it only from threads its class allows.
//! - The resource in a core is reached mutably only by `reset`, `release`,
//!   `trim` and drop, each while no [`CxxBorrow`] lives (`owned.rs`); every
//!   other call shares it.
//! - Every fact the header's inline fast paths mirror (layouts, classes,
//!   features) equals the linked core's: checked once, when the first
//!   resource or view is made (`check_mirrors` in `memres.cpp`), and the
//!   features also name the header's `detail` namespace, so a mismatched
//!   translation unit does not link.
//! - A [`CxxResource`] names a live C++ resource for as long as it and the
//!   blocks it handed out are used (the contract of `from_raw`).
#![cfg_attr(feature = "nightly", feature(allocator_api))]

use core::alloc::Layout;
use core::ptr::NonNull;

use memres::{
    AllocError, Allocator, MemoryResource, Monotonic, PoolOptions, PoolStats, SyncMonotonic, SyncPool, UnsyncPool,
};

mod owned;
mod view;

pub use ffi::memory_resource;
pub use owned::CxxBorrow;
use owned::Owned;
use view::take_panic_message;
pub use view::{CxxView, ViewTarget, Viewable};

#[cxx::bridge(namespace = "memres::ffi")]
mod ffi {
    /// Mirror of `memres::MonotonicStats` for C++.
    struct MonotonicStats {
        used: usize,
        held: usize,
        chunks: usize,
        upstream_allocs: u64,
        upstream_frees: u64,
    }

    /// Mirror of `memres::HeapStats` for C++.
    struct HeapStats {
        allocated: usize,
        active: usize,
        resident: usize,
        mapped: usize,
        retained: usize,
    }

    /// `memres::HeapFastPath` without the per-thread slot: the layout C++'s
    /// inline heap fast path checks its own against.
    struct HeapLayout {
        queue_stride: usize,
        sample_left_offset: usize,
        segment_size: usize,
        pages_offset: usize,
        page_stride: usize,
        page_shift: u32,
        page_used_offset: usize,
        page_carved_offset: usize,
        page_magic_offset: usize,
        page_key_offset: usize,
        small_max: usize,
        classes: usize,
        min_class: usize,
        checks: bool,
        mark: usize,
    }

    /// `memres::ForeignLayout`: what the header's inline fast paths mirror,
    /// checked once at start-up (`check_mirrors` in memres.cpp).
    struct ForeignLayout {
        bump_size: usize,
        bump_cursor: usize,
        bump_end: usize,
        hint_size: usize,
        hint_key: usize,
        hint_cache: usize,
        hint_count: usize,
        cache_size: usize,
        cache_heads: usize,
        cache_room: usize,
        cache_keys: usize,
        cache_sample_left: usize,
        lists_keys: usize,
        lists_sample_left: usize,
        keys_size: usize,
        key_link: usize,
        key_seal: usize,
        key_checks: usize,
        pool_classes: usize,
        pool_max_class_align: usize,
        debug_checks: bool,
        asan: bool,
    }

    /// Mirror of `memres::HeapClassStats` for C++.
    struct HeapClassStats {
        size: usize,
        live: usize,
        active: usize,
    }

    /// `std::pmr::pool_options` as it crosses the bridge.
    struct PoolOpts {
        max_blocks_per_chunk: usize,
        largest_required_pool_block: usize,
    }

    extern "Rust" {
        type UnsyncPoolCore;

        unsafe fn unsync_pool_new(upstream: *mut memory_resource, options: PoolOpts) -> Box<UnsyncPoolCore>;
        fn heads(self: &UnsyncPoolCore) -> *mut u8;
        fn options(self: &UnsyncPoolCore) -> PoolOpts;
        fn allocate_slow(self: &UnsyncPoolCore, size: usize, align: usize) -> *mut u8;
        unsafe fn deallocate_slow(self: &UnsyncPoolCore, ptr: *mut u8, size: usize, align: usize);
        fn release(self: &UnsyncPoolCore);
        fn trim(self: &UnsyncPoolCore) -> usize;
        fn bytes_held(self: &UnsyncPoolCore) -> usize;
        fn stats_json(self: &UnsyncPoolCore) -> String;
        fn set_name(self: &UnsyncPoolCore, name: &str);
        fn name(self: &UnsyncPoolCore) -> String;
    }

    extern "Rust" {
        type SyncPoolCore;

        unsafe fn sync_pool_new(upstream: *mut memory_resource, options: PoolOpts) -> Box<SyncPoolCore>;
        fn sync_hint_slot() -> *mut u8;
        fn key(self: &SyncPoolCore) -> *const u8;
        fn options(self: &SyncPoolCore) -> PoolOpts;
        fn allocate_slow(self: &SyncPoolCore, size: usize, align: usize) -> *mut u8;
        unsafe fn deallocate_slow(self: &SyncPoolCore, ptr: *mut u8, size: usize, align: usize);
        fn release(self: &SyncPoolCore);
        fn trim(self: &SyncPoolCore) -> usize;
        fn bytes_held(self: &SyncPoolCore) -> usize;
        fn stats_json(self: &SyncPoolCore) -> String;
        fn set_name(self: &SyncPoolCore, name: &str);
        fn name(self: &SyncPoolCore) -> String;
    }

    extern "Rust" {
        type MonotonicCore;

        unsafe fn monotonic_new(
            upstream: *mut memory_resource,
            buffer: *mut u8,
            buffer_size: usize,
            initial_size: usize,
        ) -> Box<MonotonicCore>;
        fn bump_state(self: &MonotonicCore) -> *mut u8;
        fn allocate_slow(self: &MonotonicCore, size: usize, align: usize) -> *mut u8;
        unsafe fn forget(self: &MonotonicCore, ptr: *mut u8, size: usize, align: usize);
        fn reset(self: &MonotonicCore);
        fn release(self: &MonotonicCore);
        fn stats(self: &MonotonicCore) -> MonotonicStats;
        fn stats_json(self: &MonotonicCore) -> String;
        fn set_budget(self: &MonotonicCore, bytes: usize);
        fn budget(self: &MonotonicCore) -> usize;
        fn set_name(self: &MonotonicCore, name: &str);
        fn name(self: &MonotonicCore) -> String;

        type MonotonicCheckpoint;
        fn checkpoint(self: &MonotonicCore) -> Box<MonotonicCheckpoint>;
        fn rewind(self: &MonotonicCore, checkpoint: &MonotonicCheckpoint) -> bool;
    }

    extern "Rust" {
        type SyncMonotonicCore;

        unsafe fn sync_monotonic_new(upstream: *mut memory_resource) -> Box<SyncMonotonicCore>;
        fn generation(self: &SyncMonotonicCore) -> *const u64;
        fn allocate_shared(self: &SyncMonotonicCore, size: usize, align: usize) -> *mut u8;
        fn reset(self: &SyncMonotonicCore);
        fn release(self: &SyncMonotonicCore);
        fn stats(self: &SyncMonotonicCore) -> MonotonicStats;
        fn stats_json(self: &SyncMonotonicCore) -> String;
        fn set_name(self: &SyncMonotonicCore, name: &str);
        fn name(self: &SyncMonotonicCore) -> String;
    }

    extern "Rust" {
        fn foreign_layout() -> ForeignLayout;
        /// The pool class for a request, or the class count where the pool
        /// goes to upstream: the rule the header's `pool_class_of` follows.
        fn pool_class_of(size: usize, align: usize, largest: usize) -> usize;
        fn pool_class_size(index: usize) -> usize;
    }

    /// memres's version (`memres::VERSION`), for C++'s `memres::version()`.
    struct Version {
        major: u32,
        minor: u32,
        patch: u32,
    }

    extern "Rust" {
        fn core_version() -> Version;
    }

    extern "Rust" {
        fn heap_allocate(size: usize, align: usize) -> *mut u8;
        unsafe fn heap_deallocate(ptr: *mut u8, size: usize, align: usize);
        fn heap_purge() -> usize;
        fn heap_secure() -> bool;
        fn heap_layout() -> HeapLayout;
        fn heap_local_slot() -> *mut u8;
        fn heap_stats() -> HeapStats;
        fn heap_class_stats(out: &mut [HeapClassStats]) -> usize;
        fn heap_report_json() -> String;
        fn heap_set_limits(soft: usize, hard: usize);
        fn heap_limits(soft: &mut usize, hard: &mut usize);
    }

    // The sampling profiler (`memres::profile`), for C++'s
    // `memres::profile_*` functions.
    extern "Rust" {
        fn profile_start(interval: usize);
        fn profile_stop();
        fn profile_clear();
        fn profile_samples() -> usize;
        /// 0: allocated, 1: live, 2: peak (C++'s `profile_view`).
        fn profile_folded(view: u8) -> String;
    }

    extern "Rust" {
        type ViewTarget;

        fn object(self: &ViewTarget) -> *const u8;
        fn allocate_slow(self: &ViewTarget, size: usize, align: usize) -> *mut u8;
        unsafe fn deallocate_slow(self: &ViewTarget, ptr: *mut u8, size: usize, align: usize);
        fn take_panic_message() -> String;
    }

    unsafe extern "C++" {
        include!("memres-cxx/src/bridge.hpp");

        /// C++'s `std::pmr::memory_resource`, for other cxx bridges to name
        /// (`type memory_resource = memres_cxx::memory_resource;`).
        #[namespace = "std::pmr"]
        type memory_resource;

        /// Calls `resource->allocate`; null if it threw (the exception is parked).
        unsafe fn upstream_allocate(resource: *mut memory_resource, size: usize, align: usize) -> *mut u8;
        /// Calls `resource->deallocate`; an exception from it terminates, as in std.
        unsafe fn upstream_deallocate(resource: *mut memory_resource, ptr: *mut u8, size: usize, align: usize);
        /// `std::pmr::new_delete_resource()`.
        fn new_delete_resource() -> *mut memory_resource;
        /// `std::pmr::get_default_resource()`.
        fn get_default_resource() -> *mut memory_resource;
        /// `std::pmr::null_memory_resource()`.
        fn null_memory_resource() -> *mut memory_resource;

        /// A C++ view of a Rust `Monotonic` (see `view.rs`).
        unsafe fn monotonic_view(bump: *mut u8, target: Box<ViewTarget>) -> UniquePtr<memory_resource>;
        /// A C++ view of a Rust `UnsyncPool`.
        unsafe fn unsync_pool_view(
            heads: *mut u8,
            largest: usize,
            target: Box<ViewTarget>,
        ) -> UniquePtr<memory_resource>;
        /// A C++ view of a Rust resource with no inline fast path (the `Heap`).
        fn plain_view(target: Box<ViewTarget>) -> UniquePtr<memory_resource>;
        /// A C++ view of a Rust `SyncPool`.
        unsafe fn sync_pool_view(key: *const u8, largest: usize, target: Box<ViewTarget>)
        -> UniquePtr<memory_resource>;
        /// The Rust arena behind a C++ `memres::monotonic_buffer_resource`, or null.
        unsafe fn monotonic_core_of(resource: *const memory_resource) -> *const MonotonicCore;
        /// The Rust pool behind a C++ `memres::unsynchronized_pool_resource`, or null.
        unsafe fn unsync_pool_core_of(resource: *const memory_resource) -> *const UnsyncPoolCore;
        /// The Rust pool behind a C++ `memres::synchronized_pool_resource`, or null.
        unsafe fn sync_pool_core_of(resource: *const memory_resource) -> *const SyncPoolCore;
    }
}

/// A C++ `std::pmr::memory_resource*` used as a Rust [`MemoryResource`] and
/// [`Allocator`]: Rust collections live in a C++ resource, and it can be the
/// upstream of any memres resource.
///
/// Not `Send` or `Sync`: a C++ resource is only as thread-safe as its class,
/// which Rust cannot know.
///
/// ```
/// use allocator_api2::vec::Vec;
/// use memres::Monotonic;
/// use memres_cxx::CxxResource;
///
/// // A Rust arena whose chunks come from C++'s new/delete.
/// let arena = Monotonic::new_in(CxxResource::new_delete());
/// let mut v = Vec::new_in(&arena);
/// v.extend(0..1000);
/// assert_eq!(v.iter().sum::<i32>(), 499_500);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CxxResource {
    ptr: NonNull<ffi::memory_resource>,
}

impl CxxResource {
    /// Wraps a C++ resource.
    ///
    /// # Safety
    /// `ptr` must point to a live `std::pmr::memory_resource` that outlives
    /// every use of the returned value and of the blocks it hands out, and
    /// that is only used from threads its class allows.
    pub unsafe fn from_raw(ptr: NonNull<core::ffi::c_void>) -> Self {
        CxxResource { ptr: ptr.cast() }
    }

    /// `std::pmr::new_delete_resource()`: C++'s `operator new`/`delete`.
    pub fn new_delete() -> Self {
        let ptr = NonNull::new(ffi::new_delete_resource()).expect("new_delete_resource() is never null");
        CxxResource { ptr }
    }

    /// `std::pmr::get_default_resource()`, as it is now.
    pub fn default_resource() -> Self {
        let ptr = NonNull::new(ffi::get_default_resource()).expect("get_default_resource() is never null");
        CxxResource { ptr }
    }

    /// `std::pmr::null_memory_resource()`: every allocation fails (in C++ it
    /// throws `std::bad_alloc`; here it is `AllocError`). As an upstream it
    /// keeps an arena within its initial buffer.
    pub fn null() -> Self {
        let ptr = NonNull::new(ffi::null_memory_resource()).expect("null_memory_resource() is never null");
        CxxResource { ptr }
    }

    /// The wrapped `std::pmr::memory_resource*`.
    pub fn as_ptr(&self) -> *mut core::ffi::c_void {
        self.ptr.as_ptr().cast()
    }

    /// The Rust arena behind the resource, if it is a C++
    /// `memres::monotonic_buffer_resource` (checked with `dynamic_cast`):
    /// Rust code handed a C++-created arena allocates from it directly.
    ///
    /// The arena is borrowed, not just referenced: while the [`CxxBorrow`]
    /// lives, the C++ object's `reset()`, `release()` and destructor abort
    /// with a message instead of pulling the arena out from under Rust.
    ///
    /// ```no_run
    /// # fn demo(cxx: memres_cxx::CxxResource) {
    /// use allocator_api2::vec::Vec;
    /// if let Some(arena) = cxx.as_monotonic() {
    ///     let mut v = Vec::new_in(&*arena);
    ///     v.push(1);
    /// } // the borrow ends here; C++ may reset the arena again
    /// # }
    /// ```
    pub fn as_monotonic(&self) -> Option<CxxBorrow<'_, Monotonic<'static, CxxResource>>> {
        // SAFETY: the resource is live (contract of `from_raw`); the core, if
        // any, lives as long as the C++ object that owns it, which cannot be
        // destroyed while the borrow lives (it aborts instead).
        unsafe { ffi::monotonic_core_of(self.ptr.as_ptr()).as_ref() }.map(|core| core.0.borrow())
    }

    /// The Rust pool behind the resource, if it is a C++
    /// `memres::unsynchronized_pool_resource`; borrowed as in
    /// [`as_monotonic`](Self::as_monotonic) (`trim()` gives nothing back
    /// while the borrow lives).
    pub fn as_unsync_pool(&self) -> Option<CxxBorrow<'_, UnsyncPool<CxxResource>>> {
        // SAFETY: as in `as_monotonic`.
        unsafe { ffi::unsync_pool_core_of(self.ptr.as_ptr()).as_ref() }.map(|core| core.0.borrow())
    }

    /// The Rust pool behind the resource, if it is a C++
    /// `memres::synchronized_pool_resource`; borrowed as in
    /// [`as_monotonic`](Self::as_monotonic).
    pub fn as_sync_pool(&self) -> Option<CxxBorrow<'_, SyncPool<SharedUpstream>>> {
        // SAFETY: as in `as_monotonic`.
        unsafe { ffi::sync_pool_core_of(self.ptr.as_ptr()).as_ref() }.map(|core| core.0.borrow())
    }
}

// SAFETY: `std::pmr::memory_resource::allocate` returns storage of at least
// `size` bytes aligned to `align`, or throws (which `upstream_allocate` turns
// into null, i.e. `AllocError`). Zero-size layouts never reach it.
unsafe impl MemoryResource for CxxResource {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            let dangling = NonNull::new(core::ptr::without_provenance_mut(layout.align())).ok_or(AllocError)?;
            return Ok(NonNull::slice_from_raw_parts(dangling, 0));
        }
        // SAFETY: `self.ptr` is a live resource (contract of `from_raw`).
        let ptr = unsafe { ffi::upstream_allocate(self.ptr.as_ptr(), layout.size(), layout.align()) };
        NonNull::new(ptr).map(|p| NonNull::slice_from_raw_parts(p, layout.size())).ok_or(AllocError)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: the block came from this resource with this size and
            // alignment (the caller's contract).
            unsafe { ffi::upstream_deallocate(self.ptr.as_ptr(), ptr.as_ptr(), layout.size(), layout.align()) }
        }
    }
}

// SAFETY: as for `MemoryResource` above; every copy of a `CxxResource`
// names the same C++ resource, so a block from one copy may be freed
// through another (the `Allocator` contract for copies).
unsafe impl Allocator for CxxResource {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        MemoryResource::allocate(self, layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { MemoryResource::deallocate(self, ptr, layout) }
    }
}

/// A C++ slow path's allocation: null when the size and alignment make no
/// layout (the C++ side has checked that the alignment is a power of two)
/// or the resource fails; C++ turns null into an exception.
fn allocate_raw(resource: &impl MemoryResource, size: usize, align: usize) -> *mut u8 {
    Layout::from_size_align(size, align)
        .ok()
        .and_then(|layout| resource.allocate(layout).ok())
        .map_or(core::ptr::null_mut(), |block| block.cast::<u8>().as_ptr())
}

/// A block C++ gives back, as Rust sees it (`None` for null or an impossible layout).
fn block_of(ptr: *mut u8, size: usize, align: usize) -> Option<(NonNull<u8>, Layout)> {
    Some((NonNull::new(ptr)?, Layout::from_size_align(size, align).ok()?))
}

impl From<memres::MonotonicStats> for ffi::MonotonicStats {
    fn from(s: memres::MonotonicStats) -> Self {
        ffi::MonotonicStats {
            used: s.used,
            held: s.held,
            chunks: s.chunks,
            upstream_allocs: s.upstream_allocs,
            upstream_frees: s.upstream_frees,
        }
    }
}

/// The Rust object behind C++'s `memres::monotonic_buffer_resource`.
pub struct MonotonicCore(Owned<Monotonic<'static, CxxResource>>);

const MONOTONIC_CLASS: &str = "memres::monotonic_buffer_resource";

impl MonotonicCore {
    fn bump_state(&self) -> *mut u8 {
        self.0.get().bump_state().as_ptr().cast()
    }

    fn allocate_slow(&self, size: usize, align: usize) -> *mut u8 {
        allocate_raw(self.0.get(), size, align)
    }

    /// # Safety
    /// `ptr` was allocated by this arena with `size` and `align`.
    unsafe fn forget(&self, ptr: *mut u8, size: usize, align: usize) {
        if let Some((ptr, layout)) = block_of(ptr, size, align) {
            // SAFETY: the caller's contract (C++ deallocate's precondition).
            unsafe { self.0.get().forget(ptr, layout) }
        }
    }

    fn reset(&self) {
        // SAFETY: C++'s reset() runs alone on the arena's thread (the class
        // is single-threaded) and keeps no reference across the call.
        unsafe { self.0.exclusive(MONOTONIC_CLASS, "reset", |arena| arena.reset()) };
    }

    fn release(&self) {
        // SAFETY: as in `reset`.
        unsafe { self.0.exclusive(MONOTONIC_CLASS, "release", |arena| arena.release()) };
    }

    fn stats(&self) -> ffi::MonotonicStats {
        self.0.get().stats().into()
    }

    fn stats_json(&self) -> String {
        to_json(&self.0.get().stats())
    }

    fn set_budget(&self, bytes: usize) {
        self.0.get().set_budget(Some(bytes).filter(|&b| b != usize::MAX));
    }

    fn budget(&self) -> usize {
        self.0.get().budget().unwrap_or(usize::MAX)
    }

    fn set_name(&self, name: &str) {
        self.0.get().set_name(name);
    }

    fn name(&self) -> String {
        self.0.get().name().map_or_else(String::new, |n| n.to_string())
    }

    fn checkpoint(&self) -> Box<MonotonicCheckpoint> {
        Box::new(MonotonicCheckpoint(self.0.get().checkpoint()))
    }

    /// Rewinds to `checkpoint`; false (and nothing freed) if it is stale.
    fn rewind(&self, checkpoint: &MonotonicCheckpoint) -> bool {
        // SAFETY: as in `reset`: C++'s rewind() runs alone on the arena's
        // thread and keeps no reference across the call.
        unsafe { self.0.exclusive(MONOTONIC_CLASS, "rewind", |arena| arena.try_rewind(checkpoint.0).is_ok()) }
    }
}

/// A position in a C++ `memres::monotonic_buffer_resource`, held by C++'s
/// `memres::monotonic_checkpoint`.
pub struct MonotonicCheckpoint(memres::Checkpoint);

impl Drop for MonotonicCore {
    fn drop(&mut self) {
        self.0.check_destroy(MONOTONIC_CLASS);
    }
}

/// # Safety
/// `upstream` must be a live resource that outlives the arena; `buffer`, if
/// not null, must be valid for `buffer_size` bytes and unused otherwise for
/// the arena's life.
unsafe fn monotonic_new(
    upstream: *mut ffi::memory_resource,
    buffer: *mut u8,
    buffer_size: usize,
    initial_size: usize,
) -> Box<MonotonicCore> {
    let upstream = CxxResource { ptr: NonNull::new(upstream).expect("the C++ class rejects a null upstream") };
    let arena = match NonNull::new(buffer) {
        // SAFETY: the caller's contract on `buffer`.
        Some(buf) if buffer_size > 0 => unsafe { Monotonic::from_raw_buffer_in(buf, buffer_size, upstream) },
        _ => Monotonic::with_initial_size_in(initial_size, upstream),
    };
    Box::new(MonotonicCore(Owned::new(arena)))
}

/// The Rust object behind C++'s `memres::unsynchronized_pool_resource`.
/// What the bridge needs of a pool beyond `MemoryResource`: the calls the
/// two C++ pool classes share, so [`PoolCore`] serves both.
trait BridgedPool: MemoryResource {
    /// The C++ class, for the messages of a misuse.
    const CLASS: &'static str;
    fn options(&self) -> PoolOptions;
    fn release(&mut self);
    fn trim(&mut self) -> usize;
    fn bytes_held(&self) -> usize;
    fn stats(&mut self) -> PoolStats;
    fn upstream_calls(&self) -> (u64, u64);
    fn set_name(&self, name: &str);
    fn name(&self) -> Option<std::sync::Arc<str>>;
}

impl BridgedPool for UnsyncPool<CxxResource> {
    const CLASS: &'static str = "memres::unsynchronized_pool_resource";
    fn options(&self) -> PoolOptions {
        UnsyncPool::options(self)
    }
    fn release(&mut self) {
        UnsyncPool::release(self)
    }
    fn trim(&mut self) -> usize {
        UnsyncPool::trim(self)
    }
    fn bytes_held(&self) -> usize {
        UnsyncPool::bytes_held(self)
    }
    fn stats(&mut self) -> PoolStats {
        UnsyncPool::stats(self)
    }
    fn upstream_calls(&self) -> (u64, u64) {
        UnsyncPool::upstream_calls(self)
    }
    fn set_name(&self, name: &str) {
        UnsyncPool::set_name(self, name)
    }
    fn name(&self) -> Option<std::sync::Arc<str>> {
        UnsyncPool::name(self)
    }
}

impl BridgedPool for SyncPool<SharedUpstream> {
    const CLASS: &'static str = "memres::synchronized_pool_resource";
    fn options(&self) -> PoolOptions {
        SyncPool::options(self)
    }
    fn release(&mut self) {
        SyncPool::release(self)
    }
    fn trim(&mut self) -> usize {
        SyncPool::trim(self)
    }
    fn bytes_held(&self) -> usize {
        SyncPool::bytes_held(self)
    }
    fn stats(&mut self) -> PoolStats {
        SyncPool::stats(self)
    }
    fn upstream_calls(&self) -> (u64, u64) {
        SyncPool::upstream_calls(self)
    }
    fn set_name(&self, name: &str) {
        SyncPool::set_name(self, name)
    }
    fn name(&self) -> Option<std::sync::Arc<str>> {
        SyncPool::name(self)
    }
}

/// The Rust core of a C++ pool class: the pool, owned by the C++ object
/// (see `owned.rs` for how Rust may borrow it meanwhile).
pub(crate) struct PoolCore<P: BridgedPool>(Owned<P>);

/// `memres::unsynchronized_pool_resource`'s core.
pub(crate) type UnsyncPoolCore = PoolCore<UnsyncPool<CxxResource>>;
/// `memres::synchronized_pool_resource`'s core.
pub(crate) type SyncPoolCore = PoolCore<SyncPool<SharedUpstream>>;

impl<P: BridgedPool> PoolCore<P> {
    fn options(&self) -> ffi::PoolOpts {
        pool_opts(self.0.get().options())
    }

    fn allocate_slow(&self, size: usize, align: usize) -> *mut u8 {
        allocate_raw(self.0.get(), size, align)
    }

    /// # Safety
    /// `ptr` was allocated by this pool with `size` and `align`.
    unsafe fn deallocate_slow(&self, ptr: *mut u8, size: usize, align: usize) {
        if let Some((ptr, layout)) = block_of(ptr, size, align) {
            // SAFETY: the caller's contract (C++ deallocate's precondition).
            unsafe { MemoryResource::deallocate(self.0.get(), ptr, layout) }
        }
    }

    fn release(&self) {
        // SAFETY: the header documents release() as overlapping no other
        // call into the pool (std's rule for release()).
        unsafe { self.0.exclusive(P::CLASS, "release", |pool| pool.release()) };
    }

    fn trim(&self) -> usize {
        // SAFETY: as in `release`: the header documents trim() like release().
        unsafe { self.0.exclusive_if_free(|pool| pool.trim()) }.unwrap_or(0)
    }

    fn bytes_held(&self) -> usize {
        self.0.get().bytes_held()
    }

    fn set_name(&self, name: &str) {
        self.0.get().set_name(name);
    }

    fn name(&self) -> String {
        self.0.get().name().map_or_else(String::new, |n| n.to_string())
    }

    /// The pool's [`PoolStats`] as JSON. The classes need the pool to
    /// itself (a synchronized pool reads every thread's cache): while Rust
    /// borrows it they are left out (an empty list), as `trim` does nothing.
    fn stats_json(&self) -> String {
        // SAFETY: as in `release`: the header documents stats_json() like
        // trim(), overlapping no other call into the pool.
        let stats = unsafe { self.0.exclusive_if_free(|pool| pool.stats()) }.unwrap_or_else(|| {
            let pool = self.0.get();
            let (upstream_allocs, upstream_frees) = pool.upstream_calls();
            PoolStats { bytes_held: pool.bytes_held(), upstream_allocs, upstream_frees, classes: Vec::new() }
        });
        to_json(&stats)
    }
}

/// `value` as one JSON object (stats: numbers and lists, which cannot fail).
fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl<P: BridgedPool> Drop for PoolCore<P> {
    fn drop(&mut self) {
        self.0.check_destroy(P::CLASS);
    }
}

impl UnsyncPoolCore {
    fn heads(&self) -> *mut u8 {
        self.0.get().free_list_heads().as_ptr().cast()
    }
}

impl SyncPoolCore {
    fn key(&self) -> *const u8 {
        self.0.get().cache_key()
    }
}

fn foreign_layout() -> ffi::ForeignLayout {
    let f = memres::ForeignLayout::get();
    ffi::ForeignLayout {
        bump_size: f.bump_size,
        bump_cursor: f.bump_cursor,
        bump_end: f.bump_end,
        hint_size: f.hint_size,
        hint_key: f.hint_key,
        hint_cache: f.hint_cache,
        hint_count: f.hint_count,
        cache_size: f.cache_size,
        cache_heads: f.cache_heads,
        cache_room: f.cache_room,
        cache_keys: f.cache_keys,
        cache_sample_left: f.cache_sample_left,
        lists_keys: f.lists_keys,
        lists_sample_left: f.lists_sample_left,
        keys_size: f.keys_size,
        key_link: f.key_link,
        key_seal: f.key_seal,
        key_checks: f.key_checks,
        pool_classes: f.pool_classes,
        pool_max_class_align: f.pool_max_class_align,
        debug_checks: f.debug_checks,
        asan: f.asan,
    }
}

fn pool_class_of(size: usize, align: usize, largest: usize) -> usize {
    memres::ForeignLayout::pool_class_of(size, align, largest).unwrap_or(memres::POOL_CLASS_COUNT)
}

fn pool_class_size(index: usize) -> usize {
    memres::ForeignLayout::pool_class_size(index)
}

/// Pool options as they come from C++.
fn pool_options(options: ffi::PoolOpts) -> PoolOptions {
    PoolOptions {
        max_blocks_per_chunk: options.max_blocks_per_chunk,
        largest_required_pool_block: options.largest_required_pool_block,
    }
}

/// Pool options as they go to C++.
fn pool_opts(options: PoolOptions) -> ffi::PoolOpts {
    ffi::PoolOpts {
        max_blocks_per_chunk: options.max_blocks_per_chunk,
        largest_required_pool_block: options.largest_required_pool_block,
    }
}

/// The upstream of a C++ `synchronized_pool_resource`: any thread may call
/// it, one at a time (`SyncPool` serialises upstream calls).
pub struct SharedUpstream(CxxResource);

// SAFETY: std's `synchronized_pool_resource` makes the same promise to its
// upstream: calls come from whichever thread needs memory, never two at
// once. `SyncPool` keeps its upstream behind a lock, so it never calls it
// concurrently, and a `std::pmr::memory_resource` has no thread affinity.
unsafe impl Send for SharedUpstream {}

// SAFETY: forwards to the wrapped resource.
unsafe impl MemoryResource for SharedUpstream {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        MemoryResource::allocate(&self.0, layout)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { MemoryResource::deallocate(&self.0, ptr, layout) }
    }
}

/// The Rust object behind C++'s `memres::synchronized_pool_resource`.
/// `memres::heap_resource()`'s allocate: null on failure (C++ throws).
fn heap_allocate(size: usize, align: usize) -> *mut u8 {
    // Distinct pointers for zero-byte requests, as std's resources give.
    allocate_raw(&memres::Heap, size.max(1), align)
}

/// `memres::heap_resource()`'s deallocate.
///
/// # Safety
/// `ptr` came from [`heap_allocate`] with this size and alignment.
unsafe fn heap_deallocate(ptr: *mut u8, size: usize, align: usize) {
    if let Some((ptr, layout)) = block_of(ptr, size.max(1), align) {
        // SAFETY: the caller's contract.
        unsafe { MemoryResource::deallocate(&memres::Heap, ptr, layout) }
    }
}

fn heap_purge() -> usize {
    memres::Heap::purge()
}

fn heap_secure() -> bool {
    memres::Heap::secure()
}

/// The linked memres core's version, from `memres::VERSION`.
fn core_version() -> ffi::Version {
    let mut parts = memres::VERSION.split('.').map(|p| p.parse::<u32>().expect("a numeric version part"));
    let mut next = || parts.next().expect("major.minor.patch");
    ffi::Version { major: next(), minor: next(), patch: next() }
}

fn heap_layout() -> ffi::HeapLayout {
    let f = memres::Heap::fast_path();
    ffi::HeapLayout {
        queue_stride: f.queue_stride,
        sample_left_offset: f.sample_left_offset,
        segment_size: f.segment_size,
        pages_offset: f.pages_offset,
        page_stride: f.page_stride,
        page_shift: f.page_shift,
        page_used_offset: f.page_used_offset,
        page_carved_offset: f.page_carved_offset,
        page_magic_offset: f.page_magic_offset,
        page_key_offset: f.page_key_offset,
        small_max: f.small_max,
        classes: f.classes,
        min_class: f.min_class,
        checks: f.checks,
        mark: f.mark,
    }
}

/// The calling thread's heap record slot (see `memres::HeapFastPath`).
fn heap_local_slot() -> *mut u8 {
    memres::Heap::fast_path().local_slot.as_ptr().cast()
}

fn heap_stats() -> ffi::HeapStats {
    let s = memres::Heap::stats();
    ffi::HeapStats {
        allocated: s.allocated,
        active: s.active,
        resident: s.resident,
        mapped: s.mapped,
        retained: s.retained,
    }
}

fn profile_start(interval: usize) {
    memres::profile::start(interval);
}

fn profile_stop() {
    memres::profile::stop();
}

fn profile_clear() {
    memres::profile::clear();
}

fn profile_samples() -> usize {
    memres::profile::samples()
}

fn profile_folded(view: u8) -> String {
    use memres::profile::View;
    let view = match view {
        1 => View::Live,
        2 => View::Peak,
        _ => View::Allocated,
    };
    memres::profile::folded_view(view)
}

/// `memres::Heap::report()` as JSON, for C++'s `memres::heap_stats_json()`.
fn heap_report_json() -> String {
    to_json(&memres::Heap::report())
}

/// Fills `out` with the first classes' counts; returns how many there are.
fn heap_class_stats(out: &mut [ffi::HeapClassStats]) -> usize {
    let classes = memres::Heap::class_stats();
    for (slot, c) in out.iter_mut().zip(&classes) {
        *slot = ffi::HeapClassStats { size: c.size, live: c.live, active: c.active };
    }
    classes.len()
}

/// Limits from C++, where 0 means none.
fn heap_set_limits(soft: usize, hard: usize) {
    let limit = |bytes: usize| (bytes != 0).then_some(bytes);
    memres::Heap::set_limits(memres::HeapLimits { soft: limit(soft), hard: limit(hard) });
}

fn heap_limits(soft: &mut usize, hard: &mut usize) {
    let limits = memres::Heap::limits();
    *soft = limits.soft.unwrap_or(0);
    *hard = limits.hard.unwrap_or(0);
}

/// The calling thread's cache hint (see `SyncPool::cache_hint`).
fn sync_hint_slot() -> *mut u8 {
    SyncPool::<SharedUpstream>::hint_slot().as_ptr()
}

/// # Safety
/// `upstream` must be a live resource that outlives the pool.
unsafe fn sync_pool_new(upstream: *mut ffi::memory_resource, options: ffi::PoolOpts) -> Box<SyncPoolCore> {
    let upstream = CxxResource { ptr: NonNull::new(upstream).expect("the C++ class rejects a null upstream") };
    Box::new(PoolCore(Owned::new(SyncPool::with_options_in(pool_options(options), SharedUpstream(upstream)))))
}

/// The Rust object behind C++'s `memres::synchronized_monotonic_buffer_resource`:
/// the shared chunks and the generation. The C++ class keeps its threads'
/// regions in a thread-local table of its own (the header's
/// `tl_sync_regions`), as `SyncMonotonic` does in Rust, and comes here to
/// carve a region or a big block.
pub struct SyncMonotonicCore(Owned<SyncMonotonic<SharedUpstream>>);

impl SyncMonotonicCore {
    const CLASS: &str = "memres::synchronized_monotonic_buffer_resource";

    fn generation(&self) -> *const u64 {
        self.0.get().generation_ptr().as_ptr()
    }

    fn allocate_shared(&self, size: usize, align: usize) -> *mut u8 {
        Layout::from_size_align(size, align)
            .ok()
            .and_then(|layout| self.0.get().allocate_shared(layout).ok())
            .map_or(core::ptr::null_mut(), |block| block.cast::<u8>().as_ptr())
    }

    fn reset(&self) {
        // SAFETY: the C++ class documents reset() as release() is documented
        // in std: no other call into the resource overlaps it.
        unsafe { self.0.exclusive(Self::CLASS, "reset", |arena| arena.reset()) };
    }

    fn release(&self) {
        // SAFETY: as in `reset`.
        unsafe { self.0.exclusive(Self::CLASS, "release", |arena| arena.release()) };
    }

    fn stats(&self) -> ffi::MonotonicStats {
        self.0.get().stats().into()
    }

    fn stats_json(&self) -> String {
        to_json(&self.0.get().stats())
    }

    fn set_name(&self, name: &str) {
        self.0.get().set_name(name);
    }

    fn name(&self) -> String {
        self.0.get().name().map_or_else(String::new, |n| n.to_string())
    }
}

impl Drop for SyncMonotonicCore {
    fn drop(&mut self) {
        self.0.check_destroy(Self::CLASS);
    }
}

/// # Safety
/// `upstream` must be a live resource that outlives the arena, callable
/// from any thread (one call at a time: the arena locks around it).
unsafe fn sync_monotonic_new(upstream: *mut ffi::memory_resource) -> Box<SyncMonotonicCore> {
    let upstream = CxxResource { ptr: NonNull::new(upstream).expect("the C++ class rejects a null upstream") };
    Box::new(SyncMonotonicCore(Owned::new(SyncMonotonic::new_in(SharedUpstream(upstream)))))
}

/// # Safety
/// `upstream` must be a live resource that outlives the pool.
unsafe fn unsync_pool_new(upstream: *mut ffi::memory_resource, options: ffi::PoolOpts) -> Box<UnsyncPoolCore> {
    let upstream = CxxResource { ptr: NonNull::new(upstream).expect("the C++ class rejects a null upstream") };
    Box::new(PoolCore(Owned::new(UnsyncPool::with_options_in(pool_options(options), upstream))))
}

#[cfg(test)]
mod version_tests {
    /// The header's `MEMRES_VERSION_*` macros, the core's version and this
    /// crate's are one version.
    #[test]
    fn header_core_and_crate_agree_on_the_version() {
        let header = include_str!("../include/memres/memres.hpp");
        let macro_value = |name: &str| -> u32 {
            let line = header
                .lines()
                .find(|l| l.starts_with(&format!("#define MEMRES_VERSION_{name} ")))
                .unwrap_or_else(|| panic!("the header defines MEMRES_VERSION_{name}"));
            line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a number")
        };
        let v = super::core_version();
        assert_eq!((macro_value("MAJOR"), macro_value("MINOR"), macro_value("PATCH")), (v.major, v.minor, v.patch));
        assert_eq!(memres::VERSION, env!("CARGO_PKG_VERSION"), "memres and memres-cxx share a version");
    }
}
