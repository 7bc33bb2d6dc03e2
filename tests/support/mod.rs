//! Test support shared by every resource's suite: an upstream that records
//! its traffic and can be told to fail, and checkers for handed-out blocks.
#![allow(dead_code)] // each suite uses a different part

use core::alloc::Layout;
use core::cell::{Cell, RefCell};
use core::ptr::NonNull;
use std::collections::BTreeMap;

use memres::{AllocError, Global, MemoryResource};

/// An upstream over `Global` that checks and counts every call: a block
/// freed with another layout than it was allocated with, or freed twice,
/// panics; `fail_after(n)` makes every call after the next `n` fail.
///
/// Requests over [`Tracking::LARGEST`] fail, as any real upstream's would for
/// sizes near `isize::MAX` (under Miri, `Global` would abort instead).
#[derive(Default)]
pub struct Tracking {
    live: RefCell<BTreeMap<usize, Layout>>,
    pub allocs: Cell<usize>,
    pub frees: Cell<usize>,
    budget_calls: Cell<Option<usize>>,
}

impl Tracking {
    pub const LARGEST: usize = 1 << 40;

    pub fn new() -> Self {
        Self::default()
    }

    /// Every allocation after the next `n` fails (until `heal`).
    pub fn fail_after(&self, n: usize) {
        self.budget_calls.set(Some(n));
    }

    pub fn heal(&self) {
        self.budget_calls.set(None);
    }

    pub fn live_blocks(&self) -> usize {
        self.live.borrow().len()
    }

    pub fn live_bytes(&self) -> usize {
        self.live.borrow().values().map(|l| l.size()).sum()
    }
}

// SAFETY: forwards to `Global`, adding only bookkeeping.
unsafe impl MemoryResource for Tracking {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // Miri supports alignments up to 2^29; past that, refuse as an
        // upstream may, rather than stop the interpreter.
        if layout.size() > Self::LARGEST || (cfg!(miri) && layout.align() > 1 << 29) {
            return Err(AllocError);
        }
        if let Some(n) = self.budget_calls.get() {
            if n == 0 {
                return Err(AllocError);
            }
            self.budget_calls.set(Some(n - 1));
        }
        let block = MemoryResource::allocate(&Global, layout)?;
        let previous = self.live.borrow_mut().insert(block.cast::<u8>().as_ptr().addr(), layout);
        assert!(previous.is_none(), "upstream handed out a live block twice");
        self.allocs.set(self.allocs.get() + 1);
        Ok(block)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let recorded = self.live.borrow_mut().remove(&ptr.as_ptr().addr());
        assert_eq!(recorded, Some(layout), "freed a block not live in upstream, or with another layout");
        self.frees.set(self.frees.get() + 1);
        // SAFETY: the block was allocated by `Global` with `layout` (checked above).
        unsafe { MemoryResource::deallocate(&Global, ptr, layout) }
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_eq!(self.live_blocks(), 0, "upstream blocks leaked");
        }
    }
}

/// Live blocks handed out by a resource under test, each filled with a
/// pattern derived from its index, so that overlap or a stray write shows up
/// as a changed pattern.
#[derive(Default)]
pub struct Blocks {
    blocks: Vec<(NonNull<u8>, Layout, u8)>,
}

impl Blocks {
    /// Checks alignment and non-overlap of `block`, fills it, and records it.
    pub fn add(&mut self, block: NonNull<[u8]>, layout: Layout) {
        let ptr = block.cast::<u8>();
        assert!(block.len() >= layout.size(), "block shorter than asked");
        assert_eq!(ptr.as_ptr().addr() % layout.align(), 0, "block not aligned to {}", layout.align());
        let tag = (self.blocks.len() % 251) as u8;
        // SAFETY: the resource promises `layout.size()` writable bytes.
        unsafe { ptr.as_ptr().write_bytes(tag, layout.size()) };
        if layout.size() > 0 {
            let (lo, hi) = (ptr.as_ptr().addr(), ptr.as_ptr().addr() + layout.size());
            for (other, ol, _) in &self.blocks {
                let (olo, ohi) = (other.as_ptr().addr(), other.as_ptr().addr() + ol.size());
                assert!(hi <= olo || ohi <= lo || ol.size() == 0, "live blocks overlap");
            }
        }
        self.blocks.push((ptr, layout, tag));
    }

    /// Every block still holds its pattern.
    pub fn verify(&self) {
        for (ptr, layout, tag) in &self.blocks {
            // SAFETY: each block is live and was fully written by `add`.
            let bytes = unsafe { core::slice::from_raw_parts(ptr.as_ptr(), layout.size()) };
            assert!(bytes.iter().all(|b| b == tag), "a block's contents changed");
        }
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn take(&mut self) -> Vec<(NonNull<u8>, Layout, u8)> {
        core::mem::take(&mut self.blocks)
    }
}

/// Layouts over sizes 0..=`max_size` (sparse) and every alignment 1..=4096.
pub fn layout_matrix(max_size: usize) -> Vec<Layout> {
    let sizes = [0, 1, 2, 3, 7, 8, 15, 16, 24, 31, 64, 100, 255, 256, 1000, 4096, 5000];
    let mut out = Vec::new();
    for align in (0..=12).map(|s| 1usize << s) {
        for &size in sizes.iter().filter(|&&s| s <= max_size) {
            out.push(Layout::from_size_align(size, align).unwrap());
        }
    }
    out
}

/// `n`, or a twentieth of it under Miri, which runs a few thousand times
/// slower: loop counts in the single-threaded suites go through this.
pub const fn scaled(n: usize) -> usize {
    if cfg!(miri) { if n / 20 > 0 { n / 20 } else { 1 } } else { n }
}
