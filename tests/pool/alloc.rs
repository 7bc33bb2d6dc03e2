// Allocation: alignment, non-overlap, reuse, classes and oversize blocks.

use core::alloc::Layout;

use memres::PoolOptions;

use super::{Pool, stats};

use crate::support::{Blocks, Tracking, layout_matrix, scaled};

#[test]
fn every_alignment_and_size_is_aligned_writable_and_disjoint() {
    let upstream = Tracking::new();
    let pool = Pool::new_in(&upstream);
    let mut blocks = Blocks::default();
    for layout in layout_matrix(5000) {
        blocks.add(pool.allocate(layout).unwrap(), layout);
    }
    blocks.verify();
}

/// GCC PR 118681: libstdc++'s pools hand out 24-byte blocks at alignment 16
/// that are only 8-aligned.
#[test]
fn regression_gcc_118681_size_not_a_multiple_of_alignment() {
    let pool = Pool::new();
    let layout = Layout::from_size_align(24, 16).unwrap();
    for _ in 0..100 {
        let p = pool.allocate(layout).unwrap().cast::<u8>();
        assert_eq!(p.as_ptr().addr() % 16, 0);
    }
}

#[test]
fn zero_size_requests_get_distinct_blocks() {
    let pool = Pool::new();
    let layout = Layout::from_size_align(0, 1).unwrap();
    let a = pool.allocate(layout).unwrap().cast::<u8>();
    let b = pool.allocate(layout).unwrap().cast::<u8>();
    assert_ne!(a, b);
}

#[test]
fn freed_blocks_are_reused() {
    let upstream = Tracking::new();
    let pool = Pool::new_in(&upstream);
    let layout = Layout::from_size_align(48, 8).unwrap();
    let a = pool.allocate(layout).unwrap().cast::<u8>();
    // SAFETY: `a` is live with `layout`.
    unsafe { pool.deallocate(a, layout) };
    assert_eq!(pool.allocate(layout).unwrap().cast::<u8>(), a);
    let calls = upstream.allocs.get();
    for _ in 0..scaled(10_000) {
        let p = pool.allocate(layout).unwrap().cast::<u8>();
        // SAFETY: live with `layout`.
        unsafe { pool.deallocate(p, layout) };
    }
    assert_eq!(upstream.allocs.get(), calls, "churn is served from the free list");
}

#[test]
fn sizes_of_one_class_share_blocks() {
    let pool = Pool::new();
    let a = Layout::from_size_align(33, 1).unwrap();
    let b = Layout::from_size_align(40, 8).unwrap(); // same 40-byte class
    let p = pool.allocate(a).unwrap().cast::<u8>();
    // SAFETY: live with `a`.
    unsafe { pool.deallocate(p, a) };
    assert_eq!(pool.allocate(b).unwrap().cast::<u8>(), p);
}

#[test]
fn oversize_requests_go_upstream_and_come_back() {
    let upstream = Tracking::new();
    let options = PoolOptions { largest_required_pool_block: 256, ..Default::default() };
    let pool = Pool::with_options_in(options, &upstream);
    let mut blocks = Blocks::default();
    for (size, align) in [(257, 8), (10_000, 64), (100, 8192), (1 << 16, 4096)] {
        let layout = Layout::from_size_align(size, align).unwrap();
        blocks.add(pool.allocate(layout).unwrap(), layout);
    }
    assert_eq!(upstream.live_blocks(), 4, "one upstream block each");
    blocks.verify();
    for (ptr, layout, _) in blocks.take() {
        // SAFETY: live with `layout`.
        unsafe { pool.deallocate(ptr, layout) };
    }
    assert_eq!(upstream.live_blocks(), 0);
}

#[test]
fn chunks_respect_max_blocks_per_chunk() {
    let upstream = Tracking::new();
    let options = PoolOptions { max_blocks_per_chunk: 16, largest_required_pool_block: 0 };
    let mut pool = Pool::with_options_in(options, &upstream);
    let layout = Layout::from_size_align(64, 8).unwrap();
    for _ in 0..200 {
        pool.allocate(layout).unwrap();
    }
    let stats = stats(&mut pool);
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].block_size, 64);
    assert!(stats[0].chunks >= 200 / 16, "{stats:?}");
    assert!(stats[0].bytes_held <= stats[0].chunks * (16 * 64 + 64), "{stats:?}");
}

#[test]
fn class_stats_add_up() {
    let mut pool = Pool::new();
    let layout = Layout::from_size_align(100, 4).unwrap();
    let blocks: Vec<_> = (0..50).map(|_| pool.allocate(layout).unwrap().cast::<u8>()).collect();
    for &b in &blocks[..20] {
        // SAFETY: live with `layout`.
        unsafe { pool.deallocate(b, layout) };
    }
    let s = stats(&mut pool)[0];
    assert_eq!(s.block_size, 104);
    assert_eq!(s.blocks_live, 30);
    assert!(s.blocks_free >= 20);
    assert_eq!(s.bytes_held, pool.bytes_held());
}

#[test]
fn options_are_normalised() {
    let pool = Pool::with_options(PoolOptions {
        max_blocks_per_chunk: usize::MAX,
        largest_required_pool_block: usize::MAX,
    });
    assert_eq!(pool.options().max_blocks_per_chunk, 1 << 16);
    assert_eq!(pool.options().largest_required_pool_block, 1 << 20);
    let pool = Pool::with_options(PoolOptions { max_blocks_per_chunk: 0, largest_required_pool_block: 1 });
    assert_eq!(pool.options(), PoolOptions { max_blocks_per_chunk: 1024, largest_required_pool_block: 8 });
}

#[test]
fn collections_in_the_pool() {
    let pool = Pool::new();
    let mut map = hashbrown::HashMap::with_hasher_in(hashbrown::DefaultHashBuilder::default(), &pool);
    let mut v = allocator_api2::vec::Vec::new_in(&pool);
    for i in 0..scaled(5000) as u32 {
        map.insert(i, i * 3);
        v.push(i);
    }
    assert_eq!(map.get(&7), Some(&21));
    assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), (0..scaled(5000) as u64).sum());
}
