// release, trim, drop, and failing upstreams.

use core::alloc::Layout;

use super::{Pool, stats};

use crate::support::{Blocks, Tracking};

#[test]
fn release_returns_everything_and_the_pool_starts_over() {
    let upstream = Tracking::new();
    let mut pool = Pool::new_in(&upstream);
    for size in [8, 100, 1000, 4000, 100_000] {
        for _ in 0..10 {
            pool.allocate(Layout::from_size_align(size, 8).unwrap()).unwrap();
        }
    }
    pool.release();
    assert_eq!(upstream.live_blocks(), 0);
    assert_eq!(pool.bytes_held(), 0);
    pool.release();
    let mut blocks = Blocks::default();
    let layout = Layout::from_size_align(100, 8).unwrap();
    blocks.add(pool.allocate(layout).unwrap(), layout);
    blocks.verify();
    drop(blocks);
    drop(pool);
    assert_eq!(upstream.live_blocks(), 0, "drop gives everything back");
}

#[test]
fn trim_returns_only_wholly_free_chunks() {
    let upstream = Tracking::new();
    let mut pool = Pool::new_in(&upstream);
    let layout = Layout::from_size_align(64, 8).unwrap();
    let ptrs: Vec<_> = (0..2000).map(|_| pool.allocate(layout).unwrap().cast::<u8>()).collect();
    let keep = ptrs[1234];
    // SAFETY: 64 writable bytes.
    unsafe { keep.as_ptr().write_bytes(0x5A, 64) };
    for &p in &ptrs {
        if p != keep {
            // SAFETY: live with `layout`.
            unsafe { pool.deallocate(p, layout) };
        }
    }
    let before = pool.bytes_held();
    let returned = pool.trim();
    assert!(returned > 0);
    assert_eq!(pool.bytes_held(), before - returned);
    let s = stats(&mut pool)[0];
    assert_eq!(s.chunks, 1, "only the chunk holding the live block stays");
    assert_eq!(s.blocks_live, 1);
    // SAFETY: `keep` is still live.
    assert!(unsafe { core::slice::from_raw_parts(keep.as_ptr(), 64) }.iter().all(|&b| b == 0x5A));
    // The pool still works, and reuses the kept chunk's free blocks.
    let mut blocks = Blocks::default();
    for _ in 0..100 {
        blocks.add(pool.allocate(layout).unwrap(), layout);
    }
    blocks.verify();
}

#[test]
fn failing_upstream_mid_refill_leaves_the_pool_usable() {
    let upstream = Tracking::new();
    let pool = Pool::new_in(&upstream);
    let layout = Layout::from_size_align(200, 8).unwrap();
    let mut blocks = Blocks::default();
    upstream.fail_after(2);
    while let Ok(block) = pool.allocate(layout) {
        blocks.add(block, layout);
    }
    assert!(pool.allocate(Layout::from_size_align(100_000, 8).unwrap()).is_err());
    upstream.heal();
    for _ in 0..100 {
        blocks.add(pool.allocate(layout).unwrap(), layout);
    }
    blocks.verify();
}

#[test]
fn huge_requests_fail_cleanly() {
    let upstream = Tracking::new();
    let pool = Pool::new_in(&upstream);
    for (size, align) in [(isize::MAX as usize - 4095, 4096), (1 << 62, 8), (8, 1 << 30)] {
        let layout = Layout::from_size_align(size, align).unwrap();
        if let Ok(block) = pool.allocate(layout) {
            assert_eq!(block.cast::<u8>().as_ptr().addr() % align, 0);
        }
    }
    let layout = Layout::from_size_align(64, 8).unwrap();
    assert!(pool.allocate(layout).is_ok());
}
