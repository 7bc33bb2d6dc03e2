//! Secure mode: what the heap does on top of its default-on checks
//! (`guard.rs`) when a program asks for it, at a price in speed and memory
//! that the default does not pay.
//!
//! On with the cargo feature `secure` (always), or with `MEMRES_SECURE=1`
//! in the environment (read once, at the heap's first use; the malloc shim
//! and every other build honour it). In secure mode:
//!
//! - **Guard pages.** The last OS page of every small page in use is
//!   inaccessible (its blocks are carved before it), and so is the rest of a
//!   large block's mapping after the block: an overflow off the end of a
//!   page's last block, or of a large block, faults at once.
//! - **Randomized free lists.** Blocks freshly carved from a page go onto
//!   its free list in a random order, so neighbours in time are not
//!   neighbours in memory (an overflow's victim is not predictable).
//! - **Quarantine.** A freed small block is zeroed (but for a mark) and held
//!   back from reuse for the next [`QUARANTINE_BLOCKS`] frees of its thread
//!   (at most [`QUARANTINE_BYTES`]), so a use after free does not land in
//!   the next object, and reads of freed memory see zeros; a second free of
//!   a quarantined block is a double free. Medium blocks go back at once;
//!   large blocks are unmapped at once (not cached), so touching one after
//!   its free faults.
//! - **Sampled guarded allocations** (`guarded.rs`), with
//!   `MEMRES_GUARDED_SAMPLE_RATE=N`: about one small allocation in `N`.
//!
//! How: the fast paths are not touched. In secure mode a thread's record
//! never holds the hint by which the free fast path knows a segment as its
//! own, so every free lands in the slow path and from there in
//! `Heap::free_secure` (heap/mod.rs), which quarantines through this
//! module's ring; allocations keep the fast path (the work is done when
//! pages are carved), except with sampling on, when the record is kept out
//! of the slot the fast paths read (they see `EMPTY`: no page to pop) and
//! the allocation slow path draws the samples. The C++ inline paths follow
//! (its free steps aside in secure mode). A thread's exit and
//! `Heap::purge` empty its quarantine (`thread::flush_quarantine`). The
//! default mode pays one load and compare of [`on`] on paths that are
//! already slow (a refill, a free outside the thread's last segment).
//!
//! # Invariants
//! - The mode is fixed by the first [`on`] call, before any record or
//!   segment exists, and never changes.
//! - A quarantined block is live for every count (its page's `used`, the
//!   stats) and carries [`quarantine_mark`] in its second word, never the
//!   free mark; it is in exactly one thread's quarantine.
//! - In secure mode every small page in use has its last OS page
//!   inaccessible, and no block is carved over it.

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use super::geometry::PAGE_SIZE;
use super::{guard, guarded};
use crate::os;

/// Freed small blocks a thread holds back at most.
pub(super) const QUARANTINE_BLOCKS: usize = 256;
/// Bytes of freed small blocks a thread holds back at most.
pub(super) const QUARANTINE_BYTES: usize = 1 << 20;

/// 0: not decided yet; 1: off; 2: on.
static MODE: AtomicU8 = AtomicU8::new(0);
/// The key of quarantined blocks' marks (nonzero once decided).
static QUARANTINE_KEY: AtomicUsize = AtomicUsize::new(0);

/// Whether secure mode is on (see the module doc).
#[inline]
pub(super) fn on() -> bool {
    if cfg!(feature = "secure") {
        return true;
    }
    match MODE.load(Ordering::Relaxed) {
        0 => decide(),
        mode => mode == 2,
    }
}

#[cold]
fn decide() -> bool {
    let asked = os::env(c"MEMRES_SECURE", |v| matches!(v, b"1" | b"on" | b"yes" | b"true")).unwrap_or(false);
    let mode = if asked { 2 } else { 1 };
    let _ = MODE.compare_exchange(0, mode, Ordering::Relaxed, Ordering::Relaxed);
    MODE.load(Ordering::Relaxed) == 2
}

/// Whether allocations leave the fast paths too: in secure mode with
/// sampled guarded allocations, which the allocation slow path draws.
/// (Frees always do in secure mode: a thread's record never names a
/// segment as its own to the free fast path, see `thread::free_in`.)
#[inline]
pub(super) fn divert_allocations() -> bool {
    on() && guarded::rate() > 0
}

/// Bytes at the end of each small page kept inaccessible: an OS page in
/// secure mode, else none (also none where OS pages are so big that a guard
/// would take more than an eighth of the page: 64 KiB pages on some AArch64
/// kernels).
pub(super) fn page_guard() -> usize {
    let os_page = os::page_size();
    if on() && os::CAN_PROTECT && os_page <= PAGE_SIZE / 8 { os_page } else { 0 }
}

/// The mark a quarantined block at `at` carries in its second word: not
/// the free mark (so the block is no free block to the checks), and as
/// unpredictable.
#[inline]
pub(super) fn quarantine_mark(at: usize) -> usize {
    let key = QUARANTINE_KEY.load(Ordering::Relaxed);
    guard::mark(at) ^ if key != 0 { key } else { quarantine_key() }
}

#[cold]
fn quarantine_key() -> usize {
    let key = crate::misuse::fresh_key(0x7175_6172) | 1;
    let _ = QUARANTINE_KEY.compare_exchange(0, key, Ordering::Relaxed, Ordering::Relaxed);
    QUARANTINE_KEY.load(Ordering::Relaxed)
}

/// Whether the small block at `block` (being freed or resized) is in a
/// quarantine: freed already.
///
/// # Safety
/// As for `guard::carries_mark`.
#[inline]
pub(super) unsafe fn quarantined(block: *const u8) -> bool {
    // SAFETY: the caller's contract.
    on() && unsafe { guard::carries_mark(block, quarantine_mark(block.addr())) }
}

/// A thread's freed small blocks, oldest first from `head`, in a ring.
struct Quarantine {
    blocks: [*mut u8; QUARANTINE_BLOCKS],
    sizes: [u32; QUARANTINE_BLOCKS],
    head: usize,
    len: usize,
    bytes: usize,
    /// A block pushed out of the full ring by [`hold`], for [`overflow`].
    pushed_out: *mut u8,
}

std::thread_local! {
    /// This thread's quarantine (no destructor: the thread's exit flushes
    /// it, see `thread.rs`).
    static QUARANTINE: UnsafeCell<Quarantine> = const {
        UnsafeCell::new(Quarantine {
            blocks: [ptr::null_mut(); QUARANTINE_BLOCKS],
            sizes: [0; QUARANTINE_BLOCKS],
            head: 0,
            len: 0,
            bytes: 0,
            pushed_out: ptr::null_mut(),
        })
    };
}

/// This thread's quarantine. The caller keeps the reference to itself
/// while it lives: nothing it calls meanwhile may reach the quarantine.
#[allow(clippy::mut_from_ref)]
#[inline]
fn quarantine() -> &'static mut Quarantine {
    // SAFETY: the thread's own quarantine, valid for the thread's life (no
    // destructor); exclusive by the caller's keeping it to itself.
    unsafe { &mut *QUARANTINE.with(UnsafeCell::get) }
}

/// Puts `block` (of `size` bytes) in the thread's quarantine; the caller
/// then frees what [`overflow`] takes out to keep it within its bounds.
#[inline]
pub(super) fn hold(block: *mut u8, size: usize) {
    let q = quarantine();
    if q.len == QUARANTINE_BLOCKS {
        q.pushed_out = q.take().expect("a full quarantine has blocks");
    }
    let at = (q.head + q.len) % QUARANTINE_BLOCKS;
    q.blocks[at] = block;
    q.sizes[at] = size as u32;
    q.len += 1;
    q.bytes += size;
}

/// The next block to leave the thread's quarantine so that it holds at
/// most [`QUARANTINE_BLOCKS`] blocks and [`QUARANTINE_BYTES`] bytes.
#[inline]
pub(super) fn overflow() -> Option<*mut u8> {
    let q = quarantine();
    let out = core::mem::replace(&mut q.pushed_out, ptr::null_mut());
    if !out.is_null() {
        return Some(out);
    }
    if q.bytes > QUARANTINE_BYTES { q.take() } else { None }
}

/// The oldest block of the thread's quarantine, out of it (for the
/// thread's exit and a purge, which free every one).
pub(super) fn take_oldest() -> Option<*mut u8> {
    if on() { quarantine().take() } else { None }
}

impl Quarantine {
    /// The oldest block, out of the quarantine.
    fn take(&mut self) -> Option<*mut u8> {
        if self.len == 0 {
            return None;
        }
        let block = self.blocks[self.head];
        self.bytes -= self.sizes[self.head] as usize;
        self.head = (self.head + 1) % QUARANTINE_BLOCKS;
        self.len -= 1;
        Some(block)
    }
}

/// A permutation of `0..n` in `order` (its first `n` entries), drawn from
/// a fresh key: the order a secure page's fresh blocks go onto its list.
pub(super) fn shuffle(order: &mut [u16], n: usize) {
    let mut state = crate::misuse::fresh_key(n as u64) as u64 | 1;
    for (i, slot) in order.iter_mut().enumerate().take(n) {
        *slot = i as u16;
    }
    // Fisher–Yates with xorshift64 draws.
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation_and_not_the_identity() {
        let mut order = [0u16; 256];
        let mut moved = 0;
        for n in [1, 2, 3, 16, 255, 256] {
            shuffle(&mut order, n);
            let mut seen = vec![false; n];
            for &i in &order[..n] {
                assert!(!seen[i as usize], "{i} twice in {n}");
                seen[i as usize] = true;
            }
            moved += order[..n].iter().enumerate().filter(|&(i, &v)| i != v as usize).count();
        }
        assert!(moved > 100, "the orders barely moved ({moved} entries)");
    }

    #[test]
    fn the_quarantine_holds_a_bounded_number_of_blocks_oldest_out_first() {
        let fake = |i: usize| ptr::without_provenance_mut::<u8>(0x1000 * (i + 1));
        let mut out = Vec::new();
        for i in 0..QUARANTINE_BLOCKS + 3 {
            hold(fake(i), 16);
            out.extend(core::iter::from_fn(overflow));
        }
        assert_eq!(out, vec![fake(0), fake(1), fake(2)]);
        // Big blocks push out enough to stay under the byte cap.
        let big = 32 << 10;
        let mut gone = Vec::new();
        for _ in 0..64 {
            hold(fake(10_000), big);
            gone.extend(core::iter::from_fn(overflow));
            let q = quarantine();
            assert!(q.bytes <= QUARANTINE_BYTES && q.len <= QUARANTINE_BLOCKS, "{} bytes held", q.bytes);
        }
        {
            let q = quarantine();
            assert_eq!(q.bytes, 32 * big, "the byte cap keeps 32 blocks of 32 KiB");
            let small: Vec<_> = (3..QUARANTINE_BLOCKS + 3).map(fake).collect();
            assert_eq!(gone[..small.len()], small[..], "the oldest blocks leave first");
            assert!(gone[small.len()..].iter().all(|&b| b == fake(10_000)));
            while q.take().is_some() {}
        }
    }
}
