// Client-shaped sequences that Miri checks under both aliasing models
// (Stacked Borrows and Tree Borrows): each block's pointer must carry the
// provenance of its own bytes, whether the block is fresh from a chunk,
// reused from a free list, grown or shrunk, or served from upstream.

use core::alloc::Layout;

use allocator_api2::alloc::Allocator;

use super::Pool;

use crate::support::client;

/// A value of every alignment from 1 to 4096 boxed in a row (the larger ones
/// in classes that are multiples of their alignment), then each read; twice,
/// so the second round reuses the first round's freed blocks.
///
/// Tree Borrows only (`.ci/run` skips `narrowed` under Stacked Borrows): an
/// `allocator_api2::boxed::Box<T>` hands `deallocate` a pointer reborrowed
/// from `&mut T`, which Stacked Borrows limits to `size_of::<T>()` bytes,
/// and a pool seals a freed block through its first 16 bytes (a 1-byte `T`
/// lives in a 16-byte class). Tree Borrows allows the access. Rebuilding
/// the pointer from its chunk's would cost a chunk lookup on every free;
/// see ARCHITECTURE.md, "Aliasing models".
#[test]
fn narrowed_box_pointers_of_every_alignment() {
    client::boxes_of_every_alignment(&Pool::new());
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
    client::vecs_and_boxes_interleaved(&Pool::new());
}

/// Boxes of a value whose first words hold uninitialised padding, freed and
/// boxed again: the double-free check must not read those bytes as
/// integers (see `misuse::freed_word`).
#[test]
fn boxes_with_padding_in_their_first_words() {
    client::padded_values(&Pool::new());
}
