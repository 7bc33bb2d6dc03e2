// Client-shaped sequences that Miri checks under both aliasing models
// (Stacked Borrows and Tree Borrows): each block's pointer must carry the
// provenance of its own bytes, whether the block is fresh from a chunk,
// reused from a free list, grown or shrunk, or served from upstream.

use core::alloc::Layout;

use allocator_api2::alloc::Allocator;
use allocator_api2::boxed::Box;
use allocator_api2::vec::Vec;

use super::Pool;

use crate::support::scaled;

/// A value of every alignment from 1 to 4096 boxed in a row (the larger ones
/// in classes that are multiples of their alignment), then each read; twice,
/// so the second round reuses the first round's freed blocks.
///
/// Tree Borrows only (`.ci/run` skips `narrowed` under Stacked Borrows): an
/// `allocator_api2::boxed::Box<T>` hands `deallocate` a pointer reborrowed
/// from `&mut T`, which Stacked Borrows limits to `size_of::<T>()` bytes,
/// and a pool links a freed block through its first 8 bytes (a 1-byte `T`
/// lives in an 8-byte class). Tree Borrows allows the access. Rebuilding
/// the pointer from its chunk's would cost a chunk lookup on every free;
/// see ARCHITECTURE.md, "Aliasing models".
#[test]
fn narrowed_box_pointers_of_every_alignment() {
    macro_rules! aligned {
        ($($name:ident = $align:literal),*) => {$(
            #[repr(align($align))]
            #[derive(Clone, Copy)]
            struct $name(u8);
        )*};
    }
    aligned!(A1 = 1, A2 = 2, A4 = 4, A8 = 8, A16 = 16, A32 = 32, A64 = 64, A128 = 128, A256 = 256, A512 = 512,
             A1024 = 1024, A2048 = 2048, A4096 = 4096);
    let pool = Pool::new();
    for round in 0..2u8 {
        let b1 = Box::new_in(A1(round), &pool);
        let b2 = Box::new_in(A2(round + 1), &pool);
        let b3 = Box::new_in(A4(round + 2), &pool);
        let b4 = Box::new_in(A8(round + 3), &pool);
        let b5 = Box::new_in(A16(round + 4), &pool);
        let b6 = Box::new_in(A32(round + 5), &pool);
        let b7 = Box::new_in(A64(round + 6), &pool);
        let b8 = Box::new_in(A128(round + 7), &pool);
        let b9 = Box::new_in(A256(round + 8), &pool);
        let b10 = Box::new_in(A512(round + 9), &pool);
        let b11 = Box::new_in(A1024(round + 10), &pool);
        let b12 = Box::new_in(A2048(round + 11), &pool);
        let b13 = Box::new_in(A4096(round + 12), &pool);
        let got = [b1.0, b2.0, b3.0, b4.0, b5.0, b6.0, b7.0, b8.0, b9.0, b10.0, b11.0, b12.0, b13.0];
        let want: [u8; 13] = core::array::from_fn(|i| round + i as u8);
        assert_eq!(got, want);
        drop((b1, b3, b5, b7, b9, b11, b13)); // every other one first
        drop((b2, b4, b6, b8, b10, b12));
    }
}

/// Blocks of many sizes (pooled and oversize) written whole, freed, a
/// `release()`, then zeroed blocks written whole again.
#[test]
fn write_whole_blocks_across_free_and_release() {
    let mut pool = Pool::new();
    let sizes: std::vec::Vec<usize> =
        (1..=20_000usize).step_by(if cfg!(miri) { 1_999 } else { 97 }).chain([4096, 4097, 65_536]).collect();
    for _ in 0..2 {
        let mut live = std::vec::Vec::new();
        for &size in &sizes {
            let layout = Layout::from_size_align(size, 8).unwrap();
            let block = pool.allocate(layout).unwrap();
            // SAFETY: the block is ours, at least `size` bytes long.
            unsafe { block.cast::<u8>().as_ptr().write_bytes(0xA5, size) };
            live.push((block.cast::<u8>(), layout));
        }
        for (block, layout) in live.drain(..) {
            // SAFETY: allocated above with `layout`, freed once.
            unsafe { pool.deallocate(block, layout) };
        }
        for &size in &sizes {
            let layout = Layout::from_size_align(size, 8).unwrap();
            let block = (&pool).allocate_zeroed(layout).unwrap();
            // SAFETY: as above.
            let bytes = unsafe { core::slice::from_raw_parts(block.cast::<u8>().as_ptr(), size) };
            let stride = if cfg!(miri) { 127 } else { 1 };
            assert!(bytes.iter().step_by(stride).chain(bytes.last()).all(|&b| b == 0));
            // SAFETY: as above.
            unsafe { block.cast::<u8>().as_ptr().write_bytes(0x5A, size) };
            live.push((block.cast::<u8>(), layout));
        }
        for (block, layout) in live.drain(..) {
            // SAFETY: as above.
            unsafe { pool.deallocate(block, layout) };
        }
        pool.release();
    }
}

/// `Vec`s pushed in turn (growing across classes, and within one), boxes
/// made and dropped between them, shrinking, all read back at the end.
#[test]
fn vecs_and_boxes_interleaved_with_growth_and_shrinking() {
    let pool = Pool::new();
    let mut a: Vec<u32, _> = Vec::new_in(&pool);
    let mut b: Vec<u64, _> = Vec::new_in(&pool);
    let mut kept = std::vec::Vec::new();
    for i in 0..scaled(3_000) as u32 {
        a.push(i);
        if i % 3 == 0 {
            b.push(u64::from(i) << 32);
        }
        let temp = Box::new_in([i; 5], &pool);
        assert_eq!(temp[4], i);
        drop(temp);
        if i % 50 == 0 {
            kept.push(Box::new_in(i, &pool));
        }
        if i % 7 == 0 {
            a.shrink_to_fit();
        }
    }
    assert!(a.iter().enumerate().all(|(i, &x)| x == i as u32));
    assert!(b.iter().enumerate().all(|(i, &x)| x == (3 * i as u64) << 32));
    assert!(kept.iter().enumerate().all(|(i, x)| **x == 50 * i as u32));
}
