//! Client-shaped sequences that Miri checks under both aliasing models
//! (Stacked Borrows and Tree Borrows): every block's pointer must carry the
//! provenance of its own bytes, never a neighbour's, however the arena made
//! it (fresh bump, rollback, growth in place, rewind, reset).

use core::alloc::Layout;

use allocator_api2::alloc::Allocator;
use allocator_api2::boxed::Box;
use allocator_api2::vec::Vec;
use memres::Monotonic;

use crate::support::scaled;

/// A value of every alignment from 1 to 4096 boxed in a row, then each read.
#[test]
fn boxes_of_every_alignment_in_a_row() {
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
    let arena = Monotonic::new();
    for round in 0..2u8 {
        let b1 = Box::new_in(A1(round), &arena);
        let b2 = Box::new_in(A2(round + 1), &arena);
        let b3 = Box::new_in(A4(round + 2), &arena);
        let b4 = Box::new_in(A8(round + 3), &arena);
        let b5 = Box::new_in(A16(round + 4), &arena);
        let b6 = Box::new_in(A32(round + 5), &arena);
        let b7 = Box::new_in(A64(round + 6), &arena);
        let b8 = Box::new_in(A128(round + 7), &arena);
        let b9 = Box::new_in(A256(round + 8), &arena);
        let b10 = Box::new_in(A512(round + 9), &arena);
        let b11 = Box::new_in(A1024(round + 10), &arena);
        let b12 = Box::new_in(A2048(round + 11), &arena);
        let b13 = Box::new_in(A4096(round + 12), &arena);
        let got = [b1.0, b2.0, b3.0, b4.0, b5.0, b6.0, b7.0, b8.0, b9.0, b10.0, b11.0, b12.0, b13.0];
        let want: [u8; 13] = core::array::from_fn(|i| round + i as u8);
        assert_eq!(got, want);
        // Dropped newest first, so each drop rolls the cursor back.
        drop((b13, b12, b11, b10, b9, b8, b7, b6, b5, b4, b3, b2, b1));
    }
}

/// Blocks of growing size written whole, a reset (or release), then zeroed
/// blocks written whole again.
#[test]
fn write_whole_blocks_across_reset_and_release() {
    for release in [false, true] {
        let mut arena = Monotonic::with_capacity(64 << 10);
        for _ in 0..2 {
            let sizes = (1..=100_000usize).step_by(if cfg!(miri) { 33_333 } else { 997 });
            for size in sizes.clone() {
                let block = arena.allocate(Layout::from_size_align(size, 1).unwrap()).unwrap();
                // SAFETY: the block is ours, `size` bytes long.
                unsafe { block.cast::<u8>().as_ptr().write_bytes(0xA5, block.len()) };
            }
            if release {
                arena.release()
            } else {
                arena.reset()
            }
            for size in sizes {
                let block = (&arena).allocate_zeroed(Layout::from_size_align(size, 8).unwrap()).unwrap();
                // SAFETY: as above.
                let bytes = unsafe { block.as_ref() };
                // Every byte natively; a sample under Miri, where the write
                // below is what checks the block's provenance.
                let stride = if cfg!(miri) { 251 } else { 1 };
                assert!(bytes.iter().step_by(stride).chain(bytes.last()).all(|&b| b == 0));
                // SAFETY: as above.
                unsafe { block.cast::<u8>().as_ptr().write_bytes(0x5A, block.len()) };
            }
            if release { arena.release() } else { arena.reset() }
        }
    }
}

/// `Vec`s pushed in turn (one grows in place, the other moves), boxes made
/// and dropped between them (rollback), all read back at the end.
#[test]
fn vecs_and_boxes_interleaved_with_rollback_and_growth() {
    let arena = Monotonic::new();
    let mut a: Vec<u32, _> = Vec::new_in(&arena);
    let mut b: Vec<u64, _> = Vec::new_in(&arena);
    let mut kept = std::vec::Vec::new();
    for i in 0..scaled(3_000) as u32 {
        a.push(i);
        if i % 3 == 0 {
            b.push(u64::from(i) << 32);
        }
        let temp = Box::new_in([i; 5], &arena);
        assert_eq!(temp[4], i);
        drop(temp); // the newest block: rolled back
        if i % 50 == 0 {
            kept.push(Box::new_in(i, &arena));
        }
        if i % 7 == 0 {
            a.shrink_to_fit();
        }
    }
    assert!(a.iter().enumerate().all(|(i, &x)| x == i as u32));
    assert!(b.iter().enumerate().all(|(i, &x)| x == (3 * i as u64) << 32));
    assert!(kept.iter().enumerate().all(|(i, x)| **x == 50 * i as u32));
}

/// A `Vec` grows in place, is truncated and shrunk, and the arena is rewound
/// under it in a scope; a block made before the checkpoint stays readable
/// and writable through its pointer.
#[test]
fn growth_in_place_and_rewind() {
    let mut arena = Monotonic::new();
    let before = arena.allocate(Layout::new::<u64>()).unwrap().cast::<u64>();
    // SAFETY: a fresh block for a u64.
    unsafe { before.write(0xfeed) };
    let n = scaled(5_000);
    for _ in 0..2 {
        let total = arena.scope(|a| {
            let mut v: Vec<u8, _> = Vec::new_in(a);
            for i in 0..scaled(20_000) {
                v.push(i as u8);
            }
            v.truncate(10);
            v.shrink_to_fit();
            let mut w: Vec<u16, _> = Vec::with_capacity_in(4, a);
            w.extend(0..n as u16);
            v.iter().map(|&x| u64::from(x)).sum::<u64>() + w.iter().map(|&x| u64::from(x)).sum::<u64>()
        });
        let n = n as u64;
        assert_eq!(total, 45 + n * (n - 1) / 2);
        // SAFETY: `before` was made before the scope's checkpoint: still live.
        unsafe {
            assert_eq!(before.read(), 0xfeed);
            before.write(0xfeed);
        }
    }
    let after = Box::new_in(7_u64, &arena);
    // SAFETY: as above.
    assert_eq!((unsafe { before.read() }, *after), (0xfeed, 7));
}
