//! What every resource does when it detects a misuse (a double free, a
//! pointer it never handed out, a corrupted free list), and the random keys
//! its checks are built on.
//!
//! One policy for the whole process: print one line naming the misuse and
//! the address, then abort, as glibc does; or, under [`OnMisuse::Report`]
//! (`MEMRES_ON_MISUSE=report`, [`Heap::set_on_misuse`](crate::Heap::set_on_misuse)),
//! print the line and leave the memory alone (the block is not freed, a
//! corrupt free list is abandoned), for programs that must not die.
//! Reporting never allocates: the heap may be the global allocator, and
//! its state is suspect at that moment.
//!
//! # Invariants
//! - The process secret is set (nonzero, from the OS's randomness) by the
//!   first [`fresh_key`] call and never changes; every key mixes it with a
//!   count that no two calls share, so no two keys are equal by design.

use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::hash::BuildHasher;
use std::sync::Once;

/// What memres does when it detects a misuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnMisuse {
    /// Print one line naming the misuse, then abort the process (the
    /// default, as glibc does).
    Abort,
    /// Print the line and carry on without touching the memory involved:
    /// the block is not freed, a corrupt free list is abandoned.
    Report,
}

/// The misuses the resources detect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Misuse {
    DoubleFree,
    /// Not the start of a block the heap handed out (interior, misaligned,
    /// in a free page).
    InvalidPointer,
    /// Not in the heap's memory at all (the stack, a static, another
    /// allocator's block, or a large block's mapping already unmapped):
    /// reported, and never aborts, since the heap's own state is intact.
    Foreign,
    /// A free-list link that is not what the resource wrote: a write after
    /// free or an overflow from the block before.
    CorruptFreeList,
}

impl Misuse {
    fn describe(self) -> &'static str {
        match self {
            Misuse::DoubleFree => "double free",
            Misuse::InvalidPointer => "invalid pointer (not the start of a block memres handed out)",
            Misuse::Foreign => "free of memory memres does not hold (left alone)",
            Misuse::CorruptFreeList => {
                "corrupted free list (a freed block was written to, or the block before it overflowed)"
            }
        }
    }
}

/// Mixed into every key; set once, from the OS's randomness.
static SECRET: AtomicU64 = AtomicU64::new(0);
static SECRET_INIT: Once = Once::new();
/// Keys handed out so far (each key mixes in a fresh count).
static KEYS: AtomicU64 = AtomicU64::new(0);

/// 0: not read yet; 1: abort; 2: report.
static MODE: AtomicU8 = AtomicU8::new(0);
/// Misuses detected so far, in either mode.
static MISUSES: AtomicUsize = AtomicUsize::new(0);

/// splitmix64's finaliser: a cheap, well-spread mix of 64 bits.
const fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A fresh random key (`salt` only spreads keys made at the same count).
pub(crate) fn fresh_key(salt: u64) -> usize {
    SECRET_INIT.call_once(|| {
        // std's hasher keys come from the OS's randomness (getrandom), and
        // making one does not allocate.
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x6d65_6d72_6573_u64);
        SECRET.store(mix(seed) | 1, Ordering::Relaxed);
    });
    let n = KEYS.fetch_add(1, Ordering::Relaxed);
    mix(SECRET.load(Ordering::Relaxed) ^ salt.rotate_left(17) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) as usize
}

/// Reports a misuse at `addr`. Aborts unless the mode is
/// [`OnMisuse::Report`] (or the misuse is [`Misuse::Foreign`], which leaves
/// every resource intact); then returns, and the caller leaves the memory
/// alone.
#[cold]
#[inline(never)]
pub(crate) fn report(misuse: Misuse, addr: usize) {
    MISUSES.fetch_add(1, Ordering::Relaxed);
    let mut line = Line::default();
    let _ = core::fmt::write(&mut line, format_args!("memres: {} at {addr:#x}\n", misuse.describe()));
    {
        use std::io::Write;
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    if misuse != Misuse::Foreign && mode() == OnMisuse::Abort {
        std::process::abort();
    }
}

/// The mode in force: [`set_mode`]'s, else `MEMRES_ON_MISUSE` (`report` or
/// `abort`), else abort.
pub(crate) fn mode() -> OnMisuse {
    let mut m = MODE.load(Ordering::Relaxed);
    if m == 0 {
        let report = crate::os::env(c"MEMRES_ON_MISUSE", |v| v.eq_ignore_ascii_case(b"report")).unwrap_or(false);
        m = if report { 2 } else { 1 };
        let _ = MODE.compare_exchange(0, m, Ordering::Relaxed, Ordering::Relaxed);
        m = MODE.load(Ordering::Relaxed);
    }
    if m == 2 { OnMisuse::Report } else { OnMisuse::Abort }
}

pub(crate) fn set_mode(on_misuse: OnMisuse) {
    MODE.store(if on_misuse == OnMisuse::Report { 2 } else { 1 }, Ordering::Relaxed);
}

/// Misuses detected since the process started.
pub(crate) fn misuses() -> usize {
    MISUSES.load(Ordering::Relaxed)
}

/// The word `OFFSET` bytes into a block being freed, at `block`, with
/// whatever bits its user left there (the double-free checks read the first
/// two words of every block freed). A client may have left those bytes
/// uninitialised (the padding of a struct it copied in), and the Rust
/// abstract machine makes reading uninitialised bytes as an integer
/// undefined; a load the compiler cannot see through (inline assembly, on
/// x86-64 and AArch64) yields the bits the memory holds, which is what the
/// check compares. Miri cannot run inline assembly and has no way to freeze
/// such bytes, so under Miri the callers skip their free-side check
/// ([`FREED_WORDS_READABLE`]) rather than read them.
///
/// # Safety
/// `block + OFFSET` is valid for an 8-byte read and 8-aligned (memory the
/// resource owns).
#[inline(always)]
pub(crate) unsafe fn freed_word<const OFFSET: usize>(block: *const u8) -> usize {
    #[cfg(all(not(miri), target_arch = "x86_64"))]
    {
        let word: usize;
        // SAFETY: the caller's contract; the load touches only those 8 bytes.
        unsafe {
            core::arch::asm!("mov {word}, qword ptr [{block} + {offset}]", block = in(reg) block,
                offset = const OFFSET, word = lateout(reg) word, options(nostack, preserves_flags, readonly))
        };
        word
    }
    #[cfg(all(not(miri), target_arch = "aarch64"))]
    {
        let word: usize;
        // SAFETY: as above.
        unsafe {
            core::arch::asm!("ldr {word}, [{block}, #{offset}]", block = in(reg) block, offset = const OFFSET,
                word = lateout(reg) word, options(nostack, preserves_flags, readonly))
        };
        word
    }
    #[cfg(any(miri, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
    // SAFETY: the caller's contract.
    unsafe {
        block.add(OFFSET).cast::<usize>().read_volatile()
    }
}

/// Whether the free-side checks may read a freed block's words (see
/// [`freed_word`]): everywhere but under Miri.
pub(crate) const FREED_WORDS_READABLE: bool = !cfg!(miri);

/// A line formatted on the stack: reporting must not allocate.
struct Line {
    bytes: [u8; 192],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Line { bytes: [0; 192], len: 0 }
    }
}

impl Line {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_and_are_not_zero() {
        let keys: Vec<usize> = (0..1000).map(|_| fresh_key(0)).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len());
        assert!(keys.iter().all(|&k| k != 0));
    }
}
