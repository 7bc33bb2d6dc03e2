//! The pools' default-on misuse checks: free lists whose links are encoded
//! and sealed, so that a double free, a write after free or an overflow
//! into a free block is detected instead of handing out a live block or an
//! address the program chose.
//!
//! A free block holds two words (every class a pool hands out is at least
//! 16 bytes: `classes::MIN_CLASS`):
//!
//! ```text
//!  block: [ link = next ^ keys.link ^ block ][ seal = link ^ keys.seal ^ block ][ ...
//! ```
//!
//! - **Encoded links.** The link is the next block's address XORed with the
//!   pool's random link key and the block's own address, so reading a freed
//!   block shows no heap address. It is stored as a pointer whose address is
//!   scrambled (`map_addr`), so it keeps the next block's provenance and
//!   decoding gives back a pointer valid for that block under strict
//!   provenance (the next block may lie in another upstream chunk).
//! - **Seals.** The second word ties the first to the block's address with
//!   a second key: `link ^ seal == keys.seal ^ block` holds for a block the
//!   pool linked, and a write to either word (an address planted in a freed
//!   block, a 1- or 8-byte overflow from the block before) breaks it unless
//!   the writer knows the keys. A link is followed only after its block's
//!   seal is checked ([`next`]), and a block is handed out with its seal
//!   broken (the second word zeroed), so that only listed blocks carry one.
//! - **Double frees.** A freed block that already carries a seal is on a
//!   free list (or was sealed by a pool's own writes and then handed out,
//!   which clears it): the free is a double free. The seal alone decides:
//!   a live block's data matches it only if it equals a random 64-bit value
//!   tied to the block's address. That works the same for a block freed
//!   twice on one thread, on two threads, or parked in the centre. (The
//!   words are read as raw bits: see `misuse::freed_word`; under Miri,
//!   which cannot read bytes a client left uninitialised, this one check
//!   is skipped.)
//!
//! What the seal does not stop: a program that can read a freed block and
//! knows its address learns `keys.seal` (glibc's safe-linking has the same
//! limit); one that also learns `keys.link` can forge a list. Interior or
//! misaligned pointers are not detected by the pools (they have no header
//! or page to consult; `debug-checks` catches them): such a free writes a
//! sealed link inside a live block, where the next allocation of the class
//! finds it.
//!
//! On a detected misuse the pool prints one line and aborts, or under
//! [`OnMisuse::Report`](crate::OnMisuse::Report) prints it and leaves the
//! memory alone: a double free is not pushed again, and a corrupt list is
//! abandoned from the corrupt block on (its blocks leak).
//!
//! # Invariants
//! - A pool's keys are set when it is made and never change; `seal` is odd,
//!   so a sealed block's two words never both read zero.
//! - Every block on a pool's free lists (a `UnsyncPool`'s heads, a thread
//!   cache's, the central batches and loose list) was written by [`link`]
//!   with that pool's keys, and no block outside them carries a seal made
//!   with them: [`take`] breaks it when a block is handed out, and chunks
//!   come from upstream as new memory, written by `link` before listing.
//!
//! The feature `unchecked-pools` compiles the checks out (plain links, no
//! seals): it exists only to measure what they cost, side by side.

use core::mem::size_of;

use crate::debug::hand_out;
use crate::misuse::{self, Misuse, freed_word};

/// Whether the checks are compiled in (see the module doc).
pub(super) const ON: bool = !cfg!(feature = "unchecked-pools");

/// A free block: the encoded link to the next free block of its class, then
/// the seal.
#[repr(C)]
pub(super) struct FreeBlock {
    link: *mut FreeBlock,
    seal: usize,
}

/// A pool's keys. `#[repr(C)]`: `<memres/memres.hpp>` reads them beside the
/// heads it pops and pushes (all three pointer-sized).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Keys {
    link: usize,
    seal: usize,
    /// 1 when the checks are compiled in (C++ reads it), else 0.
    checks: usize,
}

impl Keys {
    /// Fresh random keys for a new pool.
    pub(super) fn new() -> Keys {
        Keys { link: misuse::fresh_key(0x6c69_6e6b), seal: misuse::fresh_key(0x7365_616c) | 1, checks: ON as usize }
    }

    /// Where a foreign fast path finds each field: `(size, link, seal, checks)`.
    pub(crate) fn layout() -> [usize; 4] {
        use core::mem::offset_of;
        [size_of::<Keys>(), offset_of!(Keys, link), offset_of!(Keys, seal), offset_of!(Keys, checks)]
    }
}

/// Writes the link of a free block at `block` to `next`, sealed with `keys`
/// (under ASan, first making the two words usable).
///
/// # Safety
/// `block` is a block of a class (at least 16 bytes, pointer-aligned) that
/// the pool holds and no caller uses.
#[inline(always)]
pub(super) unsafe fn link(block: *mut FreeBlock, next: *mut FreeBlock, keys: &Keys) {
    hand_out(block.cast(), size_of::<FreeBlock>());
    let at = block.addr();
    if ON {
        let link = next.map_addr(|a| a ^ keys.link ^ at);
        // SAFETY: the caller's contract: the block's two words are ours.
        unsafe { block.write(FreeBlock { link, seal: link.addr() ^ keys.seal ^ at }) };
    } else {
        // SAFETY: as above (the first word only).
        unsafe { (&raw mut (*block).link).write(next) };
    }
}

/// The block after `block` on its list, or `None` if `block`'s seal is
/// broken (the list is corrupt from here on). Leaves the block as it is.
///
/// # Safety
/// `block` was listed by the pool (so it is a block of the pool's memory).
#[inline(always)]
pub(super) unsafe fn next(block: *mut FreeBlock, keys: &Keys) -> Option<*mut FreeBlock> {
    // SAFETY: the caller's contract: a listed block, readable.
    let FreeBlock { link, seal } = unsafe { block.read() };
    let at = block.addr();
    if !ON {
        return Some(link);
    }
    if link.addr() ^ seal != keys.seal ^ at {
        return None;
    }
    Some(link.map_addr(|a| a ^ keys.link ^ at))
}

/// As [`next`], for a block being handed out: also breaks its seal.
///
/// # Safety
/// As for [`next`], and the block leaves its list.
#[inline(always)]
pub(super) unsafe fn take(block: *mut FreeBlock, keys: &Keys) -> Option<*mut FreeBlock> {
    // SAFETY: forwarded contract.
    let next = unsafe { next(block, keys)? };
    if ON {
        // SAFETY: as above; the block is ours until it is handed out.
        unsafe { (&raw mut (*block).seal).write(0) };
    }
    Some(next)
}

/// Whether the block at `block`, being freed, already carries a seal: a
/// double free (see the module doc).
///
/// # Safety
/// `block` is at least 16 bytes of the pool's memory, pointer-aligned.
#[inline(always)]
pub(super) unsafe fn sealed(block: *mut FreeBlock, keys: &Keys) -> bool {
    if !ON || !misuse::FREED_WORDS_READABLE {
        return false;
    }
    // Under ASan the block's bytes past the request may be poisoned; it is
    // being freed (or resized in place) and its first words are ours to read.
    hand_out(block.cast(), size_of::<FreeBlock>());
    // SAFETY: the caller's contract. The words are read as they are: a
    // live block's bytes are whatever its user left there (`freed_word`).
    let (link, seal) = unsafe { (freed_word::<0>(block.cast()), freed_word::<8>(block.cast())) };
    link ^ seal == keys.seal ^ block.addr()
}

/// The check `grow`/`shrink` make before they touch a block of a pool
/// class: a block that carries a seal is free (resizing it would hand it
/// out twice in place, or copy it and free it again). Reports it and says
/// true (the caller then refuses the resize).
///
/// # Safety
/// `block` is a block of one of the pool's classes (at least 16 bytes,
/// pointer-aligned) in memory the pool holds.
pub(super) unsafe fn resizing_freed(block: *mut FreeBlock, keys: &Keys) -> bool {
    // SAFETY: the caller's contract.
    let freed = unsafe { sealed(block, keys) };
    if freed {
        double_free(block);
    }
    freed
}

/// Reports a double free of `block` (the caller leaves it alone if this
/// returns).
#[cold]
#[inline(never)]
pub(super) fn double_free(block: *mut FreeBlock) {
    misuse::report(Misuse::DoubleFree, block.addr());
}

/// Reports a corrupt list found at `block` (the caller abandons the list
/// from there if this returns).
#[cold]
#[inline(never)]
pub(super) fn corrupt(block: *mut FreeBlock) {
    misuse::report(Misuse::CorruptFreeList, block.addr());
}

#[cfg(test)]
mod tests {
    use core::ptr;

    use super::*;

    #[test]
    fn links_round_trip_and_any_write_breaks_the_seal() {
        let keys = Keys::new();
        let mut blocks = [[0usize; 4]; 3];
        let [a, b, c] = blocks.each_mut().map(|x| x.as_mut_ptr().cast::<FreeBlock>());
        // SAFETY: three 32-byte, aligned local blocks.
        unsafe {
            link(a, b, &keys);
            link(b, ptr::null_mut(), &keys);
            assert!(sealed(a, &keys) == ON && !sealed(c, &keys));
            assert_eq!(next(a, &keys), Some(b));
            assert_eq!(next(b, &keys), Some(ptr::null_mut()));
            if ON {
                // The link word does not show the next address.
                assert_ne!(a.cast::<usize>().read(), b.addr());
                for (word, flip) in [(0, 1), (0, 0xff), (0, 1 << 40), (1, 1), (1, 1 << 63)] {
                    let w = a.cast::<usize>().add(word);
                    w.write(w.read() ^ flip);
                    assert_eq!(next(a, &keys), None, "word {word} ^ {flip:#x}");
                    w.write(w.read() ^ flip);
                }
                // An address planted in the link word.
                let saved = a.cast::<usize>().read();
                a.cast::<usize>().write(c.addr());
                assert_eq!(next(a, &keys), None);
                a.cast::<usize>().write(saved);
                // Handing a block out breaks its seal.
                assert_eq!(take(a, &keys), Some(b));
                assert!(!sealed(a, &keys));
            }
        }
    }
}
