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

/// Client-shaped sequences for the aliasing-model suites (`alias_models.rs`
/// of the arena and the pools), generic over the allocator: Miri runs them
/// under Stacked and Tree Borrows.
pub mod client {
    use allocator_api2::alloc::Allocator;
    use allocator_api2::boxed::Box;
    use allocator_api2::vec::Vec;

    use super::scaled;

    macro_rules! aligned {
        ($($name:ident = $align:literal),*) => {$(
            #[repr(align($align))]
            #[derive(Clone, Copy)]
            struct $name(u8);
        )*};
    }
    aligned!(
        A1 = 1,
        A2 = 2,
        A4 = 4,
        A8 = 8,
        A16 = 16,
        A32 = 32,
        A64 = 64,
        A128 = 128,
        A256 = 256,
        A512 = 512,
        A1024 = 1024,
        A2048 = 2048,
        A4096 = 4096
    );

    /// A value of every alignment from 1 to 4096 boxed in a row, then each
    /// read, twice: dropped newest first (an arena rolls each back), then
    /// every other one first (a pool reuses them out of order).
    pub fn boxes_of_every_alignment<A: Allocator + Copy>(a: A) {
        for round in 0..2u8 {
            let b1 = Box::new_in(A1(round), a);
            let b2 = Box::new_in(A2(round + 1), a);
            let b3 = Box::new_in(A4(round + 2), a);
            let b4 = Box::new_in(A8(round + 3), a);
            let b5 = Box::new_in(A16(round + 4), a);
            let b6 = Box::new_in(A32(round + 5), a);
            let b7 = Box::new_in(A64(round + 6), a);
            let b8 = Box::new_in(A128(round + 7), a);
            let b9 = Box::new_in(A256(round + 8), a);
            let b10 = Box::new_in(A512(round + 9), a);
            let b11 = Box::new_in(A1024(round + 10), a);
            let b12 = Box::new_in(A2048(round + 11), a);
            let b13 = Box::new_in(A4096(round + 12), a);
            let got = [b1.0, b2.0, b3.0, b4.0, b5.0, b6.0, b7.0, b8.0, b9.0, b10.0, b11.0, b12.0, b13.0];
            let want: [u8; 13] = core::array::from_fn(|i| round + i as u8);
            assert_eq!(got, want);
            if round == 0 {
                drop((b13, b12, b11, b10, b9, b8, b7, b6, b5, b4, b3, b2, b1));
            } else {
                drop((b1, b3, b5, b7, b9, b11, b13));
                drop((b2, b4, b6, b8, b10, b12));
            }
        }
    }

    /// `Vec`s pushed in turn (one grows in place where it can, the other
    /// moves), boxes made and dropped between them, shrinking, all read
    /// back at the end. The boxes' sizes are class sizes (16 and 24 bytes),
    /// so a pool's sealed free-list link stays inside what Stacked Borrows
    /// lets a `Box`'s pointer reach (see ARCHITECTURE.md, "Aliasing models").
    pub fn vecs_and_boxes_interleaved<A: Allocator + Copy>(a: A) {
        let mut first: Vec<u32, A> = Vec::new_in(a);
        let mut second: Vec<u64, A> = Vec::new_in(a);
        let mut kept = std::vec::Vec::new();
        for i in 0..scaled(3_000) as u32 {
            first.push(i);
            if i % 3 == 0 {
                second.push(u64::from(i) << 32);
            }
            let temp = Box::new_in([u64::from(i); 3], a);
            assert_eq!(temp[2], u64::from(i));
            drop(temp); // the newest block: an arena rolls it back
            if i % 50 == 0 {
                kept.push(Box::new_in([u64::from(i); 2], a));
            }
            if i % 7 == 0 {
                first.shrink_to_fit();
            }
        }
        assert!(first.iter().enumerate().all(|(i, &x)| x == i as u32));
        assert!(second.iter().enumerate().all(|(i, &x)| x == (3 * i as u64) << 32));
        assert!(kept.iter().enumerate().all(|(i, x)| **x == [50 * i as u64; 2]));
    }

    /// A 16-byte value whose bytes 1..8 are padding, which a typed copy
    /// leaves uninitialised.
    #[repr(C)]
    struct Padded {
        small: u8,
        wide: u64,
    }

    /// Boxes of a value with padding in its first words, freed and made
    /// again: a resource that reads a freed block's first words (the
    /// double-free checks) must not read them as integers where the client
    /// left them uninitialised, which Miri reports.
    pub fn padded_values<A: Allocator + Copy>(a: A) {
        for round in 0..3u8 {
            let boxes: std::vec::Vec<_> =
                (0..scaled(200) as u64).map(|i| Box::new_in(Padded { small: round, wide: i }, a)).collect();
            assert!(boxes.iter().enumerate().all(|(i, b)| b.small == round && b.wide == i as u64));
            drop(boxes);
        }
    }
}

/// A block of `memres::Heap` written with a pattern, sendable between
/// threads (the heap's threaded suites).
pub struct HeapBlock {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u8,
}

// SAFETY: a block is plain memory owned by whoever holds this value.
unsafe impl Send for HeapBlock {}

impl HeapBlock {
    pub fn new(size: usize, tag: u8) -> HeapBlock {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let ptr = allocator_api2::alloc::Allocator::allocate(&memres::Heap, layout).unwrap().cast::<u8>();
        // SAFETY: a fresh block of `size` bytes.
        unsafe { ptr.as_ptr().write_bytes(tag, size) };
        HeapBlock { ptr, layout, tag }
    }

    pub fn check_and_free(self) {
        // SAFETY: the block is live and was written in full by `new`.
        let bytes = unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) };
        assert!(bytes.iter().all(|&b| b == self.tag), "a block's contents changed");
        // SAFETY: allocated by `new` with this layout.
        unsafe { allocator_api2::alloc::Allocator::deallocate(&memres::Heap, self.ptr, self.layout) };
    }
}

/// Block sizes for round `i` of a heap workload: small classes to large blocks.
pub fn size_of_round(i: usize) -> usize {
    [16, 24, 40, 100, 256, 700, 3000, 20_000, 50_000][i % 9]
}

/// The workload the misuse suites run after each misuse: 10 000
/// allocations of `size` bytes from `a` (400 of sizes from 64 KiB up), each
/// filled with its own pattern, checked, and freed in rounds. Two live
/// blocks never share an address, no live block changes, and nothing is
/// reported (`Heap::misuses`, which every resource shares).
pub fn checked_workload<A: allocator_api2::alloc::Allocator + Copy>(a: A, name: &str, size: usize) {
    let layout = Layout::from_size_align(size, 8).unwrap();
    let before = memres::Heap::misuses();
    let per_round = if size >= 1 << 16 { 4 } else { 100 };
    for round in 0..100usize {
        let blocks: Vec<NonNull<u8>> = (0..per_round).map(|_| a.allocate(layout).unwrap().cast()).collect();
        let mut seen: Vec<usize> = blocks.iter().map(|b| b.as_ptr().addr()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), blocks.len(), "{name}: a block was handed out twice");
        for (i, b) in blocks.iter().enumerate() {
            // SAFETY: a live block of `size` bytes.
            unsafe { b.as_ptr().write_bytes((round + i) as u8, size) };
        }
        for (i, b) in blocks.iter().enumerate() {
            // SAFETY: as above.
            let bytes = unsafe { core::slice::from_raw_parts(b.as_ptr(), size) };
            assert!(bytes.iter().all(|&x| x == (round + i) as u8), "{name}: a live block was overwritten");
        }
        for b in blocks {
            // SAFETY: allocated above with `layout`, freed once.
            unsafe { a.deallocate(b, layout) };
        }
    }
    assert_eq!(memres::Heap::misuses(), before, "{name}: the workload after the misuse reported one");
}
