//! Rust-owned resources handed to C++: [`CxxView`].
//!
//! A view is a small C++ object deriving from `std::pmr::memory_resource`
//! (`memres::detail::rust_view` in the header) that holds the Rust
//! resource's fast-path state — the arena's [`BumpState`](memres::BumpState),
//! the pool's free-list heads, the sync pool's cache key — and a
//! [`ViewTarget`]: the Rust resource with its type erased, for the slow
//! paths. Nothing is copied: C++ allocates from the very state Rust
//! allocates from, inline, as the owning C++ classes do.
//!
//! # Invariants
//! - A view borrows its resource for `'a` ([`CxxView<'a>`]), so the
//!   resource cannot move, be reset, released or dropped while the view
//!   lives; the view is destroyed when the `CxxView` drops.
//! - `CxxView` is neither `Send` nor `Sync`: a view of a `Monotonic` or an
//!   `UnsyncPool` is used on the thread that borrowed it. C++ can pass the
//!   pointer anywhere, so the header states the thread rule for C++ code; a
//!   view of a `SyncPool` may be used from any thread (its fast path is the
//!   calling thread's own cache).
//! - A panic in the Rust slow path of an allocation (a panicking upstream,
//!   say) is caught at the boundary: the allocation fails and C++ sees
//!   `memres::rust_panic`, a `std::bad_alloc` whose `what()` is the panic's
//!   message. A panic while freeing (a debug check finding a bad free)
//!   aborts the process after the panic hook has printed it, as cxx does:
//!   C++'s `deallocate` cannot fail.

use core::alloc::Layout;
use core::cell::RefCell;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::panic::{AssertUnwindSafe, catch_unwind};

use cxx::UniquePtr;
use memres::{AllocError, Heap, MemoryResource, Monotonic, SyncPool, UnsyncPool};

use crate::ffi;

/// A Rust-owned resource as a C++ `std::pmr::memory_resource`, for the
/// borrow `'a` of the resource.
///
/// ```
/// use core::ptr::NonNull;
/// use memres::UnsyncPool;
/// use memres_cxx::{CxxResource, CxxView};
///
/// let pool = UnsyncPool::new();
/// let view = CxxView::of(&pool);
/// // `view.as_ptr()` is a `std::pmr::memory_resource*` for C++ code; here
/// // Rust itself goes through it, as C++ would.
/// // SAFETY: the view outlives `cxx`'s uses below.
/// let cxx = unsafe { CxxResource::from_raw(NonNull::new(view.as_ptr().cast()).unwrap()) };
/// let mut v = allocator_api2::vec::Vec::new_in(cxx);
/// v.extend(0..100u32);
/// assert_eq!(v.iter().sum::<u32>(), 4950);
/// ```
pub struct CxxView<'a> {
    view: UniquePtr<ffi::memory_resource>,
    _resource: PhantomData<&'a ()>,
}

impl<'a> CxxView<'a> {
    /// A C++ view of `resource`.
    pub fn of<R: Viewable>(resource: &'a R) -> Self {
        CxxView { view: resource.make_view(), _resource: PhantomData }
    }

    /// The view as a `std::pmr::memory_resource*`, valid while `self` lives.
    pub fn as_ptr(&self) -> *mut ffi::memory_resource {
        let view: *const ffi::memory_resource = self.view.as_ref().expect("a view is never null");
        view.cast_mut()
    }
}

impl core::fmt::Debug for CxxView<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CxxView").field("resource", &self.as_ptr()).finish()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// The memres resources that [`CxxView::of`] can hand to C++.
pub trait Viewable: sealed::Sealed + MemoryResource + Sized {
    #[doc(hidden)]
    fn make_view(&self) -> UniquePtr<ffi::memory_resource>;

    /// What the view's `deallocate` does.
    ///
    /// # Safety
    /// As for [`MemoryResource::deallocate`].
    #[doc(hidden)]
    unsafe fn view_free(&self, ptr: NonNull<u8>, layout: Layout);
}

impl<U: MemoryResource> sealed::Sealed for Monotonic<'_, U> {}
impl<U: MemoryResource> Viewable for Monotonic<'_, U> {
    fn make_view(&self) -> UniquePtr<ffi::memory_resource> {
        // SAFETY: the bump state lives in the arena, which outlives the view
        // (`CxxView`'s borrow) and stays put while borrowed.
        unsafe { ffi::monotonic_view(self.bump_state().as_ptr().cast(), ViewTarget::new(self)) }
    }

    unsafe fn view_free(&self, ptr: NonNull<u8>, layout: Layout) {
        // C++'s monotonic deallocate has no effect; `forget` is that, with
        // the debug checks.
        // SAFETY: the caller's contract.
        unsafe { self.forget(ptr, layout) }
    }
}

impl<U: MemoryResource> sealed::Sealed for UnsyncPool<U> {}
impl<U: MemoryResource> Viewable for UnsyncPool<U> {
    fn make_view(&self) -> UniquePtr<ffi::memory_resource> {
        let largest = self.options().largest_required_pool_block;
        // SAFETY: the heads live in the pool, which outlives the view and
        // stays put while borrowed; `largest` is the pool's own.
        unsafe { ffi::unsync_pool_view(self.free_list_heads().as_ptr().cast(), largest, ViewTarget::new(self)) }
    }

    unsafe fn view_free(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's contract.
        unsafe { MemoryResource::deallocate(self, ptr, layout) }
    }
}

impl<U: MemoryResource> sealed::Sealed for SyncPool<U> {}
impl<U: MemoryResource> Viewable for SyncPool<U>
where
    SyncPool<U>: Sync,
{
    fn make_view(&self) -> UniquePtr<ffi::memory_resource> {
        let largest = self.options().largest_required_pool_block;
        // SAFETY: the key identifies the pool, which outlives the view;
        // `largest` is the pool's own.
        unsafe { ffi::sync_pool_view(self.cache_key(), largest, ViewTarget::new(self)) }
    }

    unsafe fn view_free(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's contract.
        unsafe { MemoryResource::deallocate(self, ptr, layout) }
    }
}

/// The erased `allocate` of a [`ViewTarget`]: the object, then the request.
type ErasedAllocate = unsafe fn(*const (), Layout) -> Result<NonNull<[u8]>, AllocError>;

impl sealed::Sealed for Heap {}
impl Viewable for Heap {
    fn make_view(&self) -> UniquePtr<ffi::memory_resource> {
        // `Heap` is a unit struct: every value is the one heap, so views
        // name one static value and compare equal.
        static THE_HEAP: Heap = Heap;
        ffi::plain_view(ViewTarget::new(&THE_HEAP))
    }

    unsafe fn view_free(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's contract.
        unsafe { MemoryResource::deallocate(self, ptr, layout) }
    }
}

/// A Rust resource with its type erased: what a C++ view's slow paths call.
pub struct ViewTarget {
    object: *const (),
    allocate: ErasedAllocate,
    deallocate: unsafe fn(*const (), NonNull<u8>, Layout),
}

impl ViewTarget {
    /// Erases `resource`'s type. The view that holds the result must not
    /// outlive the borrow of `resource` ([`CxxView`] ties them).
    fn new<R: Viewable>(resource: &R) -> Box<ViewTarget> {
        /// # Safety
        /// `object` is a live `R`.
        unsafe fn allocate<R: Viewable>(object: *const (), layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
            // SAFETY: the caller's contract.
            unsafe { &*object.cast::<R>() }.allocate(layout)
        }
        /// # Safety
        /// `object` is a live `R` and the block is its, with this layout.
        unsafe fn deallocate<R: Viewable>(object: *const (), ptr: NonNull<u8>, layout: Layout) {
            // SAFETY: the caller's contract.
            unsafe { (*object.cast::<R>()).view_free(ptr, layout) }
        }
        Box::new(ViewTarget {
            object: core::ptr::from_ref(resource).cast(),
            allocate: allocate::<R>,
            deallocate: deallocate::<R>,
        })
    }

    /// The resource's address: views of one resource are equal in C++.
    pub(crate) fn object(&self) -> *const u8 {
        self.object.cast()
    }

    /// Allocates from the resource; null on failure, or when the slow path
    /// panicked (the message is kept for [`take_panic_message`]).
    pub(crate) fn allocate_slow(&self, size: usize, align: usize) -> *mut u8 {
        let Ok(layout) = Layout::from_size_align(size, align) else { return core::ptr::null_mut() };
        // SAFETY: the resource outlives the view (`CxxView`'s borrow).
        match catch_unwind(AssertUnwindSafe(|| unsafe { (self.allocate)(self.object, layout) })) {
            Ok(Ok(block)) => block.cast::<u8>().as_ptr(),
            Ok(Err(AllocError)) => core::ptr::null_mut(),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic with a non-string payload".to_owned());
                PANIC.with(|p| {
                    *p.borrow_mut() = Some(format!("memres: Rust code panicked in an allocation: {message}"))
                });
                core::ptr::null_mut()
            }
        }
    }

    /// Frees a block through the resource.
    ///
    /// # Safety
    /// `ptr` came from this resource (or another view of it) with `size`
    /// and `align`: C++'s deallocate precondition.
    pub(crate) unsafe fn deallocate_slow(&self, ptr: *mut u8, size: usize, align: usize) {
        if let (Some(ptr), Ok(layout)) = (NonNull::new(ptr), Layout::from_size_align(size, align)) {
            // SAFETY: the resource outlives the view; the caller's contract.
            unsafe { (self.deallocate)(self.object, ptr, layout) }
        }
    }
}

std::thread_local! {
    /// The message of the last panic caught in an allocation on this thread.
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The message of a panic caught in a slow path on this thread since the
/// last call (empty if none): C++ throws it as `memres::rust_panic`.
pub(crate) fn take_panic_message() -> String {
    PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default()
}
