//! Allocation, alignment, non-overlap, in-place growth and rollback.

use core::alloc::Layout;

use memres::Monotonic;

use crate::support::{Blocks, Tracking, layout_matrix, scaled};

#[test]
fn every_alignment_and_size_is_aligned_writable_and_disjoint() {
    let upstream = Tracking::new();
    let arena = Monotonic::new_in(&upstream);
    let mut blocks = Blocks::default();
    for layout in layout_matrix(5000) {
        blocks.add(arena.allocate(layout).unwrap(), layout);
    }
    blocks.verify();
    assert!(arena.stats().chunks > 1, "the matrix should span several chunks");
}

#[test]
fn zero_size_requests_are_aligned_and_consume_nothing() {
    let arena = Monotonic::new();
    for align in (0..=12).map(|s| 1usize << s) {
        let layout = Layout::from_size_align(0, align).unwrap();
        let block = arena.allocate(layout).unwrap();
        assert_eq!(block.len(), 0);
        assert_eq!(block.cast::<u8>().as_ptr().addr() % align, 0);
    }
    assert_eq!(arena.stats().used, 0);
    assert_eq!(arena.stats().chunks, 0, "zero-size requests must not take upstream memory");
}

#[test]
fn over_aligned_type_in_a_box() {
    #[repr(align(4096))]
    struct Page([u8; 4096]);
    let arena = Monotonic::new();
    let _small = allocator_api2::boxed::Box::new_in(1u8, &arena);
    let page = allocator_api2::boxed::Box::new_in(Page([7; 4096]), &arena);
    assert_eq!((&*page as *const Page).addr() % 4096, 0);
    assert!(page.0.iter().all(|&b| b == 7));
}

#[test]
fn freeing_the_last_allocation_rolls_back() {
    let arena = Monotonic::new();
    let layout = Layout::from_size_align(48, 8).unwrap();
    let a = arena.allocate(layout).unwrap().cast::<u8>();
    let b = arena.allocate(layout).unwrap().cast::<u8>();
    // SAFETY: `b` is the most recent block, allocated with `layout`.
    unsafe { arena.deallocate(b, layout) };
    assert_eq!(arena.allocate(layout).unwrap().cast::<u8>(), b, "the freed tail is reused");
    // Freeing a block that is not the last does nothing.
    let used = arena.stats().used;
    // SAFETY: `a` is live and was allocated with `layout`.
    unsafe { arena.deallocate(a, layout) };
    assert_eq!(arena.stats().used, used);
}

#[test]
fn vec_push_loop_grows_in_place() {
    let arena = Monotonic::with_capacity(1 << 20);
    let mut v = allocator_api2::vec::Vec::with_capacity_in(1, &arena);
    v.push(0u32);
    let first = v.as_ptr();
    let n = scaled(100_000) as u32;
    for i in 1..n {
        v.push(i);
        assert_eq!(v.as_ptr(), first, "growth of the last allocation must not move it");
    }
    assert!(v.iter().copied().eq(0..n));
}

#[test]
fn growth_beyond_the_chunk_keeps_contents() {
    let arena = Monotonic::new();
    let mut v = allocator_api2::vec::Vec::new_in(&arena);
    let mut other = allocator_api2::vec::Vec::new_in(&arena);
    let n = scaled(50_000) as u64;
    for i in 0..n {
        v.push(i);
        if i % 100 == 0 {
            other.push(i); // interleaved, so `v` is not always the last block
        }
    }
    assert!(v.iter().copied().eq(0..n));
    assert!(other.iter().copied().eq((0..n).step_by(100)));
}

#[test]
fn shrink_keeps_contents_and_gives_back_the_tail() {
    let arena = Monotonic::new();
    let mut v = allocator_api2::vec::Vec::with_capacity_in(1000, &arena);
    v.extend(0..10u8);
    let used = arena.stats().used;
    v.shrink_to_fit();
    assert!(v.iter().copied().eq(0..10));
    assert_eq!(arena.stats().used, used - 990);
}

#[test]
fn shrink_to_a_stricter_alignment_moves_the_block() {
    let arena = Monotonic::new();
    let _pad = arena.allocate(Layout::from_size_align(1, 1).unwrap()).unwrap();
    let old = Layout::from_size_align(64, 1).unwrap();
    let block = arena.allocate(old).unwrap().cast::<u8>();
    // SAFETY: 64 writable bytes.
    unsafe { block.as_ptr().write_bytes(9, 64) };
    let new = Layout::from_size_align(32, 256).unwrap();
    // SAFETY: `block` is live with layout `old`, and 32 <= 64.
    let moved = unsafe { arena.shrink(block, old, new) }.unwrap();
    assert_eq!(moved.cast::<u8>().as_ptr().addr() % 256, 0);
    // SAFETY: the shrunk block holds 32 bytes.
    assert!(unsafe { moved.as_ref() }.iter().all(|&b| b == 9));
}

#[test]
fn large_request_gets_its_own_chunk_and_keeps_the_current_one() {
    let upstream = Tracking::new();
    let arena = Monotonic::new_in(&upstream);
    let small = Layout::from_size_align(16, 8).unwrap();
    let a = arena.allocate(small).unwrap().cast::<u8>();
    let big = Layout::from_size_align(1 << 20, 8).unwrap();
    let _ = arena.allocate(big).unwrap();
    assert_eq!(upstream.allocs.get(), 2);
    let b = arena.allocate(small).unwrap().cast::<u8>();
    assert_eq!(b.as_ptr().addr() - a.as_ptr().addr(), 16, "small requests stay in the first chunk");
}

#[test]
fn chunks_grow_geometrically() {
    let upstream = Tracking::new();
    let arena = Monotonic::new_in(&upstream);
    let layout = Layout::from_size_align(64, 8).unwrap();
    let n = scaled(10_000);
    for _ in 0..n {
        arena.allocate(layout).unwrap();
    }
    let held = arena.stats().held;
    // With chunks doubling from 1 KiB, n * 64 bytes take about
    // log2(n * 64 / 1024) + 1 chunks, and less than twice the bytes.
    let bound = (n * 64 / 1024).ilog2() as usize + 2;
    assert!(arena.stats().chunks <= bound, "{} chunks", arena.stats().chunks);
    assert!(held < 2 * n * 64 + 1024, "held {held}");
}

#[test]
fn growth_from_a_one_byte_initial_size() {
    let upstream = Tracking::new();
    let arena = Monotonic::with_initial_size_in(1, &upstream);
    for _ in 0..scaled(1000) {
        arena.allocate(Layout::from_size_align(100, 8).unwrap()).unwrap();
    }
    assert!(arena.stats().chunks < 12, "{} chunks for 100 KB", arena.stats().chunks);
    assert!(arena.stats().chunks > 1);
}

/// The first chunk's size counts usable bytes, as std's `initial_size` does:
/// one byte, then the rest, come from the first upstream request.
#[test]
fn initial_size_and_capacity_count_usable_bytes() {
    let one = Layout::from_size_align(1, 1).unwrap();
    for n in [1, 2, 7, 100, 255, 256, 999, 1000, 1024, 1025, 4000, 4096, 10_000, 65_536, 1_000_000] {
        let upstream = Tracking::new();
        let lazy = Monotonic::with_initial_size_in(n, &upstream);
        lazy.allocate(one).unwrap();
        lazy.allocate(Layout::from_size_align(n - 1, 1).unwrap()).unwrap();
        assert_eq!(lazy.stats().upstream_allocs, 1, "with_initial_size_in({n})");
        assert!(lazy.stats().held > n, "the footer comes on top of the {n} bytes");

        let eager = Monotonic::try_with_capacity_in(n, &upstream).unwrap();
        eager.allocate(Layout::from_size_align(n, 1).unwrap()).unwrap();
        assert_eq!(eager.stats().upstream_allocs, 1, "try_with_capacity_in({n})");
    }
}

#[test]
fn stats_count_used_and_held() {
    let upstream = Tracking::new();
    let arena = Monotonic::new_in(&upstream);
    arena.allocate(Layout::from_size_align(100, 1).unwrap()).unwrap();
    arena.allocate(Layout::from_size_align(8, 8).unwrap()).unwrap(); // 4 bytes of padding
    let stats = arena.stats();
    assert_eq!(stats.used, 112);
    assert_eq!(stats.held, upstream.live_bytes());
    assert_eq!(stats.chunks, 1);
    assert_eq!(stats.upstream_allocs, 1);
}

#[test]
fn arenas_chain() {
    let upstream = Tracking::new();
    let parent = Monotonic::new_in(&upstream);
    let child = Monotonic::new_in(&parent);
    let mut blocks = Blocks::default();
    for layout in layout_matrix(1000) {
        blocks.add(child.allocate(layout).unwrap(), layout);
    }
    blocks.verify();
    assert_eq!(parent.stats().upstream_allocs as usize, upstream.allocs.get());
    assert!(parent.stats().used >= child.stats().held);
}

#[test]
fn monotonic_is_send() {
    fn send<T: Send>(_: T) {}
    send(Monotonic::new());
}
