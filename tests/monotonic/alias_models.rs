//! Client-shaped sequences that Miri checks under both aliasing models
//! (Stacked Borrows and Tree Borrows): every block's pointer must carry the
//! provenance of its own bytes, never a neighbour's, however the arena made
//! it (fresh bump, rollback, growth in place, rewind, reset).

use core::alloc::Layout;

use allocator_api2::alloc::Allocator;
use allocator_api2::boxed::Box;
use allocator_api2::vec::Vec;
use memres::Monotonic;

use crate::support::{client, scaled};

/// A value of every alignment from 1 to 4096 boxed in a row, then each
/// read, dropped newest first and then out of order.
#[test]
fn boxes_of_every_alignment_in_a_row() {
    client::boxes_of_every_alignment(&Monotonic::new());
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
    client::vecs_and_boxes_interleaved(&Monotonic::new());
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
