//! The heap's default-on misuse checks: encoded free lists, double-free
//! marks, block-start checks, and what happens when one fires.
//!
//! A free small block holds two words of the heap's (every small class is at
//! least 16 bytes):
//!
//! ```text
//!  block: [ link = next ^ page.key ^ block ][ mark = MARK ^ block ][ ...
//! ```
//!
//! - **Encoded links.** A link is stored XORed with its page's random key
//!   and its own address, so reading a freed block shows no heap address,
//!   and an address written into a freed block (or a partial overwrite of a
//!   link) decodes to garbage. A link is checked before it is followed
//!   ([`link_ok`]: null, or word-aligned in the same page), and the block it
//!   leads to must carry the free mark when it is popped, else the free list
//!   is corrupt.
//! - **Double-free marks.** A freed block carries a mark in its second word
//!   (a process-wide random value XORed with its address), checked and
//!   cleared when the block is handed out (a block without it was reached
//!   through a bent link: the list is corrupt). A free that finds the mark is a double free if the
//!   block is in its page's free list; the owner confirms by walking the
//!   list (user data that happens to equal the mark only costs the walk). A
//!   free from another thread cannot walk the owner's list: the mark alone
//!   decides there (a false report needs user data equal to a random 64-bit
//!   value tied to the block's address).
//! - **Block starts.** A free's pointer must be the start of a carved block
//!   of a page in use: the offset in the page divisible by the class size
//!   and below the carved end, both in one multiply by a precomputed
//!   constant and one compare ([`carved_start`]; no division). A large
//!   block's pointer must be its block's start, and a large block is freed
//!   once (a flag swapped in its header).
//! - **Counts** never wrap: a page whose live count is zero takes no free.
//! - **Foreign pointers** (outside every segment the heap holds, which the
//!   segment map tells without touching the memory) are reported and left
//!   alone, and never abort: the heap's state is intact.
//!
//! On a detected misuse the heap prints one line naming it, with the
//! address, and aborts, as glibc does; with `MEMRES_ON_MISUSE=report` (or
//! [`Heap::set_on_misuse`](super::Heap::set_on_misuse)) it prints the line
//! and leaves the memory alone instead (the block is not freed, the corrupt
//! list is dropped), for programs that must not die.
//!
//! # Invariants
//! - `MARK` is set (nonzero) before the first segment exists,
//!   so before any block is freed; they never change after.
//! - A small segment's memory holds a free mark only in blocks on one of
//!   their page's free lists: carving and freeing write it, handing a block
//!   out clears it, and releasing a page wipes the marks of its (all free)
//!   blocks, so no stale mark from an earlier use of the page can make a
//!   bent link's target look free. (Purged and fresh memory reads as zero.)
//! - A page's `key` is set when the page is taken for a class, while no
//!   block of it is live or free, and stays until the page is released.
//! - Every link in a page's `free` and `thread_free` lists is encoded with
//!   that page's key and its block's address.
//!
//! The feature `unchecked-heap` compiles the checks out (links plain, no
//! marks): it exists only to measure what they cost, side by side.

use core::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use crate::misuse;
pub(super) use crate::misuse::{Misuse, report};

/// Whether the checks are compiled in (see the module doc).
pub(super) const ON: bool = !cfg!(feature = "unchecked-heap");

/// The double-free mark's key (a fresh random key).
static MARK: AtomicUsize = AtomicUsize::new(0);
static INIT: Once = Once::new();

/// Sets the keys; called before the first segment is made.
pub(super) fn init() {
    INIT.call_once(|| MARK.store(misuse::fresh_key(0x5bd1_e995) | 1, Ordering::Relaxed));
}

/// A fresh key for a page taken at `page_addr`.
pub(super) fn page_key(page_addr: usize) -> usize {
    misuse::fresh_key(page_addr as u64)
}

/// The link word stored in a free block at `at` pointing at `next`.
#[inline(always)]
pub(super) fn encode(next: usize, key: usize, at: usize) -> usize {
    if ON { next ^ key ^ at } else { next }
}

/// The next block's address from the link word of the block at `at`.
#[inline(always)]
pub(super) fn decode(link: usize, key: usize, at: usize) -> usize {
    if ON { link ^ key ^ at } else { link }
}

/// The mark a free block at `at` carries in its second word.
#[inline(always)]
pub(super) fn mark(at: usize) -> usize {
    MARK.load(Ordering::Relaxed) ^ at
}

/// Whether a block being freed (or resized) carries the free mark `mark`
/// (see the module doc). The mark word is read as raw bits: its user may
/// have left it uninitialised (`misuse::freed_word`); under Miri, which
/// cannot read such bytes, the answer is always no (misuse is not what the
/// Miri suites exercise).
///
/// # Safety
/// `block` is the start of a small block the heap holds.
#[inline(always)]
pub(super) unsafe fn carries_mark(block: *const u8, mark: usize) -> bool {
    // SAFETY: the caller's contract: the mark is the block's second word.
    misuse::FREED_WORDS_READABLE && unsafe { misuse::freed_word::<8>(block) } == mark
}

/// The constant for [`divides`] and [`carved_start`] by `size` (a class
/// size, 16 to 2^16): `floor(2^64 / size) + 1`, which is `ceil(2^64 /
/// size)` except for powers of two, where it is one more, so that `size *
/// magic mod 2^64` (the step below) is never 0.
pub(super) const fn divisor(size: usize) -> u64 {
    let size = size as u64;
    u64::MAX / size + 1 + size.is_power_of_two() as u64
}

/// Whether `offset` (below 2^16) is a multiple of the size `magic` was made
/// for: `offset * magic mod 2^64` is below `magic` exactly for the
/// multiples (Lemire, Kaser and Kurz, "Faster remainder by direct
/// computation", 2019). The heap uses [`carved_start`]; this is the check
/// C++'s inline free makes beside its carved-end compare (`divides` in
/// cpp/src/memres.cpp), kept here to test that it holds for every class.
#[cfg(test)]
pub(super) fn divides(offset: u32, magic: u64) -> bool {
    u64::from(offset).wrapping_mul(magic) < magic
}

/// The bound [`carved_start`] compares with when the first `blocks` blocks
/// of size `size` (with its `magic`) are carved. For `offset = k * size`,
/// `offset * magic mod 2^64` is `k * step` with `step = size * magic mod
/// 2^64` (between 1 and `size`), so it is below `blocks * step` exactly for
/// the carved blocks; any other offset gives at least `magic`, far above.
pub(super) fn carved_limit(blocks: usize, size: usize, magic: u64) -> u32 {
    let step = (size as u64).wrapping_mul(magic);
    u32::try_from(blocks as u64 * step).expect("a page's blocks times a step under the class size fit 32 bits")
}

/// Whether `offset` (below 2^16) starts one of a page's carved blocks:
/// a multiple of the class size below the carved end, in one multiply and
/// one compare (see [`carved_limit`]).
#[inline(always)]
pub(super) fn carved_start(offset: u32, magic: u64, limit: u32) -> bool {
    u64::from(offset).wrapping_mul(magic) < u64::from(limit)
}

/// Is `next` (decoded from the block at `at`) a link that may be followed:
/// null, or word-aligned in the same page (so reading it touches only the
/// page's own memory; every class size is a multiple of 8)? Where it leads
/// is then checked when it is popped: it must carry the free mark, which
/// only blocks on a free list do (see the module doc), so a bent link to a
/// live block, into the middle of one, or past the carved blocks finds none.
/// `page_mask` is the page size minus one; `at` is a block start (a
/// multiple of 8), so one mask tests both the page and the alignment.
#[inline(always)]
pub(super) fn link_ok(next: usize, at: usize, page_mask: usize) -> bool {
    !ON || next == 0 || (next ^ at) & !(page_mask & !7) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divides_matches_the_remainder_for_every_class_and_offset() {
        for class in 1..crate::heap::geometry::SMALL_CLASSES {
            let size = crate::classes::class_size(class);
            let magic = divisor(size);
            for offset in 0..(1u32 << 16) {
                assert_eq!(divides(offset, magic), offset as usize % size == 0, "size {size} offset {offset}");
            }
        }
    }

    #[test]
    fn carved_start_is_a_multiple_below_the_carved_end_for_every_class() {
        use crate::heap::geometry::{PAGE_SIZE, SMALL_CLASSES};
        for class in 1..SMALL_CLASSES {
            let size = crate::classes::class_size(class);
            let magic = divisor(size);
            let all = PAGE_SIZE / size;
            for blocks in [0, 1, 2, all / 2, all.saturating_sub(1), all] {
                let limit = carved_limit(blocks, size, magic);
                for offset in 0..(1u32 << 16) {
                    let expected = offset as usize % size == 0 && (offset as usize / size) < blocks;
                    assert_eq!(
                        carved_start(offset, magic, limit),
                        expected,
                        "size {size}, {blocks} carved, offset {offset}"
                    );
                }
            }
        }
    }

    #[test]
    fn links_decode_to_what_was_encoded_and_garbage_is_rejected() {
        init();
        let (key, at, next) = (page_key(0x10_0000), 0x7f00_0001_0040_usize, 0x7f00_0001_0080_usize);
        assert_eq!(decode(encode(next, key, at), key, at), next);
        if ON {
            assert_ne!(encode(next, key, at), next, "links are not stored plain");
            // A link that points outside the page, or not at a word.
            let mask = 0xffff;
            assert!(link_ok(next, at, mask));
            assert!(link_ok(0, at, mask), "the end of a list");
            assert!(!link_ok(next + 0x1_0000, at, mask), "outside the page");
            assert!(!link_ok(next + 3, at, mask), "not word-aligned");
        }
    }
}
