//! The [`MemoryResource`] trait and the upstreams that come with the crate.
//!
//! A resource hands out blocks described by a [`Layout`] and takes them back
//! with the same layout. This layer makes no OS calls of its own: [`Global`]
//! and [`System`] forward to the Rust allocators they name.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::alloc::System;

use allocator_api2::alloc::{AllocError, Allocator, Global};

/// A source of memory blocks, shaped like C++'s `std::pmr::memory_resource`.
///
/// Resources chain: each memres resource takes an upstream `MemoryResource`
/// and asks it for large chunks, then serves small requests from them.
///
/// # Safety
///
/// An implementation must uphold, for every block it hands out:
/// - `allocate(layout)` returns `Ok(block)` only if `block` is valid for reads
///   and writes of `block.len() >= layout.size()` bytes, aligned to
///   `layout.align()`, and not overlapping any other live block;
/// - the block stays valid until it is passed to `deallocate` (or the resource
///   is released or dropped, where the resource documents that);
/// - failure is reported as `Err(AllocError)`, never by returning a dangling
///   block for a non-zero size or by unwinding out of `allocate` with memory
///   half-handed out.
///
/// # Example
///
/// ```
/// use core::alloc::Layout;
/// use memres::{Global, MemoryResource};
///
/// let layout = Layout::new::<[u64; 4]>();
/// let block = Global.allocate(layout).unwrap();
/// // SAFETY: `block` came from `Global` with this layout and is not used again.
/// unsafe { Global.deallocate(block.cast(), layout) };
/// ```
pub unsafe trait MemoryResource {
    /// Returns a block that fits `layout`, or `Err(AllocError)`.
    ///
    /// A zero-size layout may return a dangling (but aligned, non-null) pointer.
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError>;

    /// Gives back a block returned by [`allocate`](Self::allocate).
    ///
    /// # Safety
    ///
    /// `ptr` must denote a block currently allocated by this resource (or one
    /// [`is_equal`](Self::is_equal) to it), and `layout` must be the layout it
    /// was allocated with.
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout);

    /// Whether memory allocated by `self` can be deallocated by `other` and
    /// the other way around. The default is identity, as in `std::pmr`.
    fn is_equal(&self, other: &dyn MemoryResource) -> bool {
        core::ptr::addr_eq(self as *const Self, other as *const dyn MemoryResource)
    }
}

// SAFETY: forwards to the referenced resource, which upholds the contract.
unsafe impl<R: MemoryResource + ?Sized> MemoryResource for &R {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        (**self).allocate(layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's contract is the referenced resource's contract.
        unsafe { (**self).deallocate(ptr, layout) }
    }

    fn is_equal(&self, other: &dyn MemoryResource) -> bool {
        (**self).is_equal(other)
    }
}

// SAFETY: `Global` is the program's global allocator through allocator-api2,
// which upholds the `Allocator` contract; it is stateless, so every `Global`
// can free what any other allocated.
unsafe impl MemoryResource for Global {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        Allocator::allocate(self, layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract: `ptr` was allocated by `Global` with `layout`.
        unsafe { Allocator::deallocate(self, ptr, layout) }
    }
}

// SAFETY: `System` is the platform allocator; zero sizes never reach it (they
// get an aligned dangling pointer), so its `GlobalAlloc` contract holds.
unsafe impl MemoryResource for System {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        use std::alloc::GlobalAlloc;
        if layout.size() == 0 {
            return Ok(NonNull::slice_from_raw_parts(dangling_for(layout), 0));
        }
        // SAFETY: the size is non-zero, as `GlobalAlloc::alloc` requires.
        let ptr = unsafe { GlobalAlloc::alloc(self, layout) };
        NonNull::new(ptr).map(|p| NonNull::slice_from_raw_parts(p, layout.size())).ok_or(AllocError)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        use std::alloc::GlobalAlloc;
        if layout.size() != 0 {
            // SAFETY: a non-zero block was allocated by `System::alloc` with `layout`.
            unsafe { GlobalAlloc::dealloc(self, ptr.as_ptr(), layout) }
        }
    }
}

/// A non-null pointer aligned for `layout`, valid for zero-size accesses only.
#[inline]
pub(crate) fn dangling_for(layout: Layout) -> NonNull<u8> {
    // An alignment is never zero, so the address is non-null.
    NonNull::new(core::ptr::without_provenance_mut(layout.align())).unwrap_or(NonNull::dangling())
}
