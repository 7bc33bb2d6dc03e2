//! `memres::Heap` single-threaded: the allocation matrix, reuse, large and
//! over-aligned blocks, realloc, bad input, and the collections (runs under
//! Miri). Threads are in `tests/heap_threads`, the heap as the global
//! allocator in `tests/heap_global`.

#[path = "../support/mod.rs"]
mod support;

use core::alloc::{GlobalAlloc, Layout};

use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec;
use memres::{Heap, MemoryResource};
use support::{Blocks, layout_matrix, scaled};

#[test]
fn every_layout_is_aligned_writable_and_disjoint() {
    let mut blocks = Blocks::default();
    for layout in layout_matrix(5000) {
        blocks.add(Allocator::allocate(&Heap, layout).unwrap(), layout);
    }
    blocks.verify();
    for (ptr, layout, _) in blocks.take() {
        // SAFETY: allocated above with `layout`.
        unsafe { Allocator::deallocate(&Heap, ptr, layout) };
    }
}

#[test]
fn large_and_highly_aligned_blocks() {
    let mut blocks = Blocks::default();
    // Miri reads every byte it checks one by one: smaller blocks there.
    let (mid, big) = if cfg!(miri) { (50_000, 70_000) } else { (1 << 20, 16 << 20) };
    for (size, align) in [(40_000, 8), (mid, 8), (big, 16), (100, 8192), (100, 64 << 10), (5000, 1 << 20)] {
        let layout = Layout::from_size_align(size, align).unwrap();
        blocks.add(Allocator::allocate(&Heap, layout).unwrap(), layout);
    }
    // Alignments of a segment and beyond (the header goes before the block).
    if !cfg!(miri) {
        for align in [4 << 20, 8 << 20] {
            let layout = Layout::from_size_align(1000, align).unwrap();
            blocks.add(Allocator::allocate(&Heap, layout).unwrap(), layout);
        }
    }
    blocks.verify();
    for (ptr, layout, _) in blocks.take() {
        // SAFETY: allocated above with `layout`.
        unsafe { Allocator::deallocate(&Heap, ptr, layout) };
    }
}

#[test]
fn freed_blocks_are_reused() {
    let layout = Layout::from_size_align(48, 8).unwrap();
    let a = Allocator::allocate(&Heap, layout).unwrap().cast::<u8>();
    // SAFETY: allocated just above.
    unsafe { Allocator::deallocate(&Heap, a, layout) };
    let b = Allocator::allocate(&Heap, layout).unwrap().cast::<u8>();
    assert_eq!(a, b, "the freed block is the next one handed out");
    // SAFETY: allocated just above.
    unsafe { Allocator::deallocate(&Heap, b, layout) };
}

#[test]
fn churn_keeps_contents_and_memory_bounded() {
    // Random replacements among live blocks of many sizes: contents survive,
    // and the mapped memory does not grow with the number of rounds.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: std::vec::Vec<Option<(core::ptr::NonNull<u8>, Layout, u8)>> = vec![None; 500];
    let mut round = |i: usize, next: &mut dyn FnMut() -> u64| {
        let slot = &mut live[(next() % 500) as usize];
        if let Some((p, layout, tag)) = slot.take() {
            // SAFETY: a live block of `layout`, written with `tag`.
            unsafe {
                assert!(core::slice::from_raw_parts(p.as_ptr(), layout.size()).iter().all(|&b| b == tag));
                Allocator::deallocate(&Heap, p, layout);
            }
        }
        // Now and then a large block (smaller under Miri, which checks bytes slowly).
        let large = if cfg!(miri) { 40_000 } else { 60_000 };
        let size = 1 + (next() % if i % 50 == 0 { large } else { 600 }) as usize;
        let layout = Layout::from_size_align(size, 1 << (next() % 5)).unwrap();
        let p = Allocator::allocate(&Heap, layout).unwrap().cast::<u8>();
        let tag = i as u8;
        // SAFETY: a fresh block of `size` bytes.
        unsafe { p.as_ptr().write_bytes(tag, size) };
        *slot = Some((p, layout, tag));
    };
    // Miri checks every byte it reads: a tenth of the (already scaled) rounds.
    let rounds = |n: usize| if cfg!(miri) { scaled(n) / 10 } else { n };
    for i in 0..rounds(20_000) {
        round(i, &mut next);
    }
    let mapped = Heap::stats().mapped;
    for i in 0..rounds(60_000) {
        round(i, &mut next);
    }
    // Other tests run in parallel threads: allow them some room.
    assert!(Heap::stats().mapped <= mapped + (64 << 20), "{} vs {mapped}", Heap::stats().mapped);
    for (p, layout, _) in live.into_iter().flatten() {
        // SAFETY: live blocks of `layout`.
        unsafe { Allocator::deallocate(&Heap, p, layout) };
    }
}

#[test]
fn realloc_keeps_contents_and_grows_in_place_within_a_class() {
    let layout = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: a valid layout; every pointer below is live where used.
    unsafe {
        let p = Heap.alloc(layout);
        p.write_bytes(7, 100);
        let q = Heap.realloc(p, layout, 104); // same class (104 bytes)
        assert_eq!(p, q);
        let r = Heap.realloc(q, Layout::from_size_align(104, 8).unwrap(), 100_000);
        assert!(core::slice::from_raw_parts(r, 100).iter().all(|&b| b == 7));
        let s = Heap.realloc(r, Layout::from_size_align(100_000, 8).unwrap(), 20);
        assert!(core::slice::from_raw_parts(s, 20).iter().all(|&b| b == 7));
        Heap.dealloc(s, Layout::from_size_align(20, 8).unwrap());
        let z = Heap.alloc_zeroed(Layout::from_size_align(4000, 8).unwrap());
        assert!(core::slice::from_raw_parts(z, 4000).iter().all(|&b| b == 0));
        Heap.dealloc(z, Layout::from_size_align(4000, 8).unwrap());
    }
}

#[test]
fn bad_input_fails_cleanly_and_the_heap_stays_usable() {
    // Sizes near isize::MAX, with and without alignment: an error, no overflow.
    for align in [1, 8, 4096, 1 << 20] {
        let layout = Layout::from_size_align(isize::MAX as usize - align + 1, align).unwrap();
        assert!(Allocator::allocate(&Heap, layout).is_err(), "align {align}");
        // SAFETY: a valid layout; null is the failure.
        assert!(unsafe { Heap.alloc(layout) }.is_null());
    }
    // Zero sizes: dangling but aligned through `Allocator`; a real block
    // through `GlobalAlloc`'s callers never asking for zero.
    let zero = Layout::from_size_align(0, 64).unwrap();
    let z = Allocator::allocate(&Heap, zero).unwrap();
    assert_eq!(z.cast::<u8>().as_ptr().addr() % 64, 0);
    // SAFETY: allocated just above with `zero`.
    unsafe { Allocator::deallocate(&Heap, z.cast(), zero) };
    let mut v = Vec::new_in(Heap);
    v.extend(0..100u8);
    assert_eq!(v.len(), 100);
}

#[test]
fn collections_and_memory_resource() {
    let mut map = hashbrown::HashMap::new_in(Heap);
    for i in 0..scaled(10_000) {
        map.insert(i, i.to_string());
    }
    assert_eq!(map[&7], "7");
    let mut v: Vec<Vec<u64, Heap>, Heap> = Vec::new_in(Heap);
    for i in 0..scaled(1000) as u64 {
        let mut inner = Vec::new_in(Heap);
        inner.extend(0..i % 50);
        v.push(inner);
    }
    assert_eq!(v.iter().map(|x| x.len()).sum::<usize>(), (0..scaled(1000)).map(|i| i % 50).sum());
    // As an upstream of the other resources.
    let arena = memres::Monotonic::new_in(Heap);
    let mut w = Vec::new_in(&arena);
    w.extend(0..scaled(100_000) as u32);
    let unsync = memres::UnsyncPool::new_in(Heap);
    let sync = memres::SyncPool::new_in(Heap);
    let mut x = Vec::new_in(&unsync);
    let mut y = Vec::new_in(&sync);
    for i in 0..scaled(10_000) as u32 {
        let mut inner = Vec::new_in(&unsync);
        inner.extend(0..i % 40);
        x.push(inner);
        y.push(i);
    }
    assert_eq!(x.iter().map(|v| v.len()).sum::<usize>(), (0..scaled(10_000)).map(|i| i % 40).sum::<usize>());
    assert_eq!(w.iter().map(|&v| v as u64).sum::<u64>() + y.iter().map(|&v| v as u64).sum::<u64>(), {
        let (a, b) = (scaled(100_000) as u64, scaled(10_000) as u64);
        a * (a - 1) / 2 + b * (b - 1) / 2
    });
    let block = MemoryResource::allocate(&Heap, Layout::new::<[u64; 4]>()).unwrap();
    // SAFETY: allocated just above.
    unsafe { MemoryResource::deallocate(&Heap, block.cast(), Layout::new::<[u64; 4]>()) };
}

#[test]
fn purge_hands_free_pages_back() {
    // Fill pages of a class no other test here uses, free them all: the
    // pages (but the one kept for the class) become free and dirty.
    let layout = Layout::from_size_align(12_000, 8).unwrap();
    let n = scaled(200);
    let blocks: std::vec::Vec<_> = (0..n).map(|_| Allocator::allocate(&Heap, layout).unwrap()).collect();
    for b in blocks {
        // SAFETY: allocated above with `layout`; written whole, then freed.
        unsafe {
            b.cast::<u8>().as_ptr().write_bytes(0xAB, layout.size());
            Allocator::deallocate(&Heap, b.cast(), layout);
        }
    }
    assert!(Heap::purge() > 0, "free pages were purged");
    // The heap is usable after a purge, and the purged pages read as zero:
    // every block past the kept page's (12 KiB blocks, 5 to a 64 KiB page)
    // holds zeros past the two words a free block keeps (link and mark).
    let again: std::vec::Vec<_> = (0..n).map(|_| Allocator::allocate(&Heap, layout).unwrap()).collect();
    let zeroed = again
        .iter()
        .filter(|b| {
            // SAFETY: a live block of `layout.size()` bytes.
            let bytes = unsafe { core::slice::from_raw_parts(b.cast::<u8>().as_ptr(), layout.size()) };
            bytes[16..].iter().all(|&x| x == 0)
        })
        .count();
    assert!(zeroed >= n - 5, "{zeroed} of {n} blocks read as zero after the purge");
    for b in again {
        // SAFETY: allocated above with `layout`.
        unsafe { Allocator::deallocate(&Heap, b.cast(), layout) };
    }
}

#[test]
fn freed_large_blocks_are_reused_without_a_new_mapping() {
    // A loop of big blocks (the pattern that makes other heaps fault their
    // memory in again each time): after the first round the mapping comes
    // from the cache. Blocks of an odd size, so parallel tests do not take
    // this test's cached mapping in between.
    let layout = Layout::from_size_align(7 * (1 << 20) + 12_345, 8).unwrap();
    let first = Allocator::allocate(&Heap, layout).unwrap().cast::<u8>();
    // SAFETY: allocated just above.
    unsafe { Allocator::deallocate(&Heap, first, layout) };
    // Parallel tests' large blocks pass through the same cache and may
    // evict this one's now and then: count rounds that reuse the previous
    // round's mapping.
    let (mut reused, mut previous) = (0, first);
    for _ in 0..scaled(20) {
        let block = Allocator::allocate(&Heap, layout).unwrap().cast::<u8>();
        reused += usize::from(block == previous);
        previous = block;
        // SAFETY: a fresh block of `layout.size()` bytes.
        unsafe {
            block.as_ptr().write_bytes(1, layout.size());
            Allocator::deallocate(&Heap, block, layout);
        }
    }
    assert!(reused > 0, "the cached mapping was never reused");
    // Zeroed allocations from the cache are zeroed.
    let zeroed = Allocator::allocate_zeroed(&Heap, layout).unwrap().cast::<u8>();
    // SAFETY: a fresh block of `layout.size()` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(zeroed.as_ptr(), layout.size()) };
    assert!(bytes.iter().step_by(4096).all(|&b| b == 0));
    // SAFETY: allocated just above.
    unsafe { Allocator::deallocate(&Heap, zeroed, layout) };
}

#[test]
fn large_blocks_grow_in_place_within_their_reserve() {
    // Aligned to a segment, so the block gets a fresh mapping (the cache of
    // freed mappings, shared with tests running in parallel, serves only
    // smaller alignments), whose reserve is twice the block.
    let align = 4 << 20;
    let small = Layout::from_size_align(100_000, align).unwrap();
    let big = Layout::from_size_align(190_000, align).unwrap();
    let block = Allocator::allocate(&Heap, small).unwrap().cast::<u8>();
    // SAFETY: a live block of `small`, grown within twice its size.
    let grown = unsafe { Allocator::grow(&Heap, block, small, big) }.unwrap();
    assert_eq!(grown.cast::<u8>(), block, "grew in place");
    // SAFETY: a live block of `big`.
    unsafe { Allocator::deallocate(&Heap, block, big) };
}

#[test]
fn a_zero_size_block_grows_into_a_real_one() {
    // A zero-size "block" is a dangling pointer, not a misuse: growing it
    // allocates (the fuzzer found the misuse checks refusing it).
    let empty = Layout::from_size_align(0, 1).unwrap();
    let dangling = Allocator::allocate(&Heap, empty).unwrap().cast::<u8>();
    let before = Heap::misuses();
    let grown = Layout::from_size_align(24, 1).unwrap();
    // SAFETY: `dangling` is the zero-size block allocated above.
    let block = unsafe { Allocator::grow(&Heap, dangling, empty, grown) }.unwrap();
    assert_eq!(Heap::misuses(), before, "growing a zero-size block is no misuse");
    // SAFETY: a live block of 24 bytes.
    unsafe {
        block.cast::<u8>().as_ptr().write_bytes(7, 24);
        Allocator::deallocate(&Heap, block.cast(), grown);
    }
}

/// Boxes of a value whose first words hold uninitialised padding, freed and
/// boxed again: the heap's double-free check must not read those bytes as
/// integers (Miri runs this suite; see `misuse::freed_word`).
#[test]
fn boxes_with_padding_in_their_first_words() {
    support::client::padded_values(Heap);
}

/// C's `malloc`/`free` in Rust (`malloc_c`/`free_c`): `free_c` writes a
/// block through the caller's own pointer (C's pointers keep the mapping's
/// provenance), so Miri checks that path here; blocks of every small size,
/// freed out of order, then a pointer the heap does not hold.
#[test]
fn c_malloc_and_free_through_the_callers_pointers() {
    use core::ptr::NonNull;
    let sizes = [1usize, 16, 24, 40, 100, 256, 700, 1024, 3000];
    let blocks: std::vec::Vec<(NonNull<u8>, usize)> = (0..scaled(3000))
        .map(|i| {
            let size = sizes[i % sizes.len()];
            let p = NonNull::new(Heap::malloc_c(size)).expect("a block");
            assert_eq!(p.as_ptr().addr() % 16, 0, "aligned as malloc's");
            // SAFETY: a live block of `size` bytes.
            unsafe { p.as_ptr().write_bytes(i as u8, size) };
            (p, size)
        })
        .collect();
    // A misuse would be reported and abort the process (the default).
    for (i, &(p, size)) in
        blocks.iter().enumerate().filter(|(i, _)| i % 2 == 1).chain(blocks.iter().enumerate().step_by(2))
    {
        // SAFETY: a live block written above, read then freed once.
        unsafe {
            assert!(core::slice::from_raw_parts(p.as_ptr(), size).iter().all(|&b| b == i as u8), "block {i} kept");
            Heap::free_c(p, |_| panic!("a block of the heap taken for foreign memory"));
        }
    }
    static FOREIGN: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    let mut local = 0u64;
    // SAFETY: memory the heap does not hold: only `foreign` sees it.
    unsafe {
        Heap::free_c(NonNull::from(&mut local).cast(), |_| {
            FOREIGN.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        })
    };
    assert_eq!(FOREIGN.load(core::sync::atomic::Ordering::Relaxed), 1, "a stack address is foreign");
}
