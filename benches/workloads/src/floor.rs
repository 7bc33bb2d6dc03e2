//! The floor under any arena, as a control for the arena benchmarks.
//!
//! [`Floor`] is the least a sound bump allocator can do: one buffer reserved
//! up front, an offset bumped by each allocation, the one compare against
//! the buffer's end that keeps it sound, and nothing else — no chunk list,
//! no growth in place, no statistics, no sampling, no reset bookkeeping.
//! Run beside memres's arena and bumpalo, it shows how much of a workload's
//! time any arena could still take out: what remains of the floor's time is
//! the workload's own work.
//!
//! Not a resource to use: it cannot grow, and what it runs out of is an
//! error.
//!
//! Invariant: `used <= capacity`, and `buffer` is one live allocation of
//! `capacity` bytes owned by the `Floor`; every block handed out lies in
//! `buffer[..used]` and is not handed out again until [`Floor::reset`] (which
//! takes `&mut self`, so no block borrowed from `&Floor` outlives it).

use core::cell::Cell;
use core::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator, Layout};

/// A bump pointer over one fixed buffer (see the module docs).
pub struct Floor {
    buffer: NonNull<u8>,
    capacity: usize,
    used: Cell<usize>,
}

impl Floor {
    /// A floor over a fresh buffer of `capacity` bytes.
    ///
    /// # Panics
    /// If `capacity` is zero or the buffer cannot be allocated.
    pub fn new(capacity: usize) -> Floor {
        let layout = Floor::layout(capacity);
        // SAFETY: `layout` has a non-zero size (checked by `layout`).
        let buffer = NonNull::new(unsafe { std::alloc::alloc(layout) })
            .unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Floor { buffer, capacity, used: Cell::new(0) }
    }

    /// Makes the whole buffer free again.
    pub fn reset(&mut self) {
        self.used.set(0);
    }

    fn layout(capacity: usize) -> Layout {
        assert!(capacity > 0, "a floor needs a buffer");
        Layout::from_size_align(capacity, 4096).expect("a floor's capacity fits a layout")
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        // SAFETY: `buffer` was allocated in `new` with this very layout and
        // is freed once, here.
        unsafe { std::alloc::dealloc(self.buffer.as_ptr(), Floor::layout(self.capacity)) }
    }
}

// SAFETY: a block is `layout.size()` bytes at `layout.align()` inside the
// buffer, past every block handed out since the last reset (the module
// invariant), so blocks never overlap; they stay valid until `reset`, which
// needs `&mut Floor` and so cannot run while a block borrows `&Floor`.
unsafe impl Allocator for &Floor {
    #[inline(always)]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let base = self.buffer.as_ptr().addr();
        let start = (base + self.used.get() + layout.align() - 1) & !(layout.align() - 1);
        // No overflow: `base + capacity` is an address in this process and a
        // layout's size is at most `isize::MAX`.
        let end = start - base + layout.size();
        if end > self.capacity {
            return Err(AllocError);
        }
        self.used.set(end);
        // SAFETY: `start - base <= end <= capacity`: the block lies in the
        // buffer, and `with_addr` keeps the buffer's provenance.
        let block = unsafe { NonNull::new_unchecked(self.buffer.as_ptr().with_addr(start)) };
        Ok(NonNull::slice_from_raw_parts(block, layout.size()))
    }

    #[inline(always)]
    unsafe fn deallocate(&self, _ptr: NonNull<u8>, _layout: Layout) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_disjoint_and_the_end_is_an_error() {
        let mut floor = Floor::new(4096);
        let a = (&floor).allocate(Layout::from_size_align(3, 1).unwrap()).unwrap();
        let b = (&floor).allocate(Layout::from_size_align(64, 64).unwrap()).unwrap();
        assert_eq!(b.cast::<u8>().as_ptr().addr() % 64, 0);
        assert!(b.cast::<u8>().as_ptr().addr() >= a.cast::<u8>().as_ptr().addr() + 3);
        assert!((&floor).allocate(Layout::from_size_align(4096, 1).unwrap()).is_err());
        floor.reset();
        let c = (&floor).allocate(Layout::from_size_align(4096, 1).unwrap()).unwrap();
        assert_eq!(c.cast::<u8>(), a.cast::<u8>());
    }
}
