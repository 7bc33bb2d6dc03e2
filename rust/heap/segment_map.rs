//! Which 4 MiB regions of the address space hold a segment header: one bit
//! per region, so [`Heap::owns`](super::Heap::owns) can tell a pointer
//! this heap handed out from any other without touching memory that may
//! not be mapped (the malloc shim checks every `free` with it).
//!
//! The bitmap covers the 48-bit user address space: 2^26 regions, 8 MiB of
//! bits, mapped on first use with `MAP_NORESERVE`, so only the pages whose
//! bits were ever set cost memory (one 4 KiB page of bits spans 128 GiB).
//! A segment above 2^48 (only where a program asks the kernel for such
//! addresses) cannot be recorded and is not used (its allocation fails).
//! Every region with a header is the heap's whole (large mappings reserve at
//! least the rest of their header's region), so a foreign pointer never
//! lies in a region whose bit is set.
//!
//! # Invariants
//! A region's bit is set (release) after its header is written and cleared
//! before the segment is unmapped; a reader that sees the bit (acquire) sees
//! the header's immutable fields (`kind`, `map`, `map_size`).

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use super::geometry::{SEGMENT_SHIFT, SEGMENT_SIZE};
use crate::os;

/// Address bits the map covers.
const ADDRESS_BITS: u32 = 48;
const REGIONS: usize = 1 << (ADDRESS_BITS - SEGMENT_SHIFT);
const MAP_BYTES: usize = REGIONS / 8;

static BITS: AtomicPtr<AtomicU64> = AtomicPtr::new(ptr::null_mut());

/// The bitmap, mapped on first use (`None` if the OS refused).
fn bits() -> Option<*mut AtomicU64> {
    let bits = BITS.load(Ordering::Acquire);
    if !bits.is_null() {
        return Some(bits);
    }
    let fresh = os::map(MAP_BYTES, os::page_size())?.cast::<AtomicU64>().as_ptr();
    match BITS.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(fresh),
        Err(theirs) => {
            // Another thread mapped it first.
            // SAFETY: our own mapping, never published.
            unsafe { os::unmap(core::ptr::NonNull::new_unchecked(fresh.cast()), MAP_BYTES, os::page_size()) };
            Some(theirs)
        }
    }
}

/// The word and bit of the region holding `addr`, if the map covers it.
fn locate(addr: usize) -> Option<(usize, u64)> {
    let region = addr >> SEGMENT_SHIFT;
    (region < REGIONS).then_some((region / 64, 1 << (region % 64)))
}

/// Records that the segment header at `seg` exists; false if it cannot be
/// recorded (the bitmap could not be mapped, or `seg` lies beyond it): the
/// caller must not use the segment then.
pub(super) fn insert(seg: usize) -> bool {
    debug_assert_eq!(seg % SEGMENT_SIZE, 0);
    let (Some(bits), Some((word, bit))) = (bits(), locate(seg)) else { return false };
    // SAFETY: `word` < REGIONS / 64, inside the bitmap.
    unsafe { (*bits.add(word)).fetch_or(bit, Ordering::Release) };
    true
}

/// Forgets the segment header at `seg` (before it is unmapped).
pub(super) fn remove(seg: usize) {
    let bits = BITS.load(Ordering::Acquire);
    if let (false, Some((word, bit))) = (bits.is_null(), locate(seg)) {
        // SAFETY: as in `insert`.
        unsafe { (*bits.add(word)).fetch_and(!bit, Ordering::Release) };
    }
}

/// Whether a segment header lives at `seg`. On every free: a handful of
/// instructions, no call.
#[inline(always)]
pub(super) fn contains(seg: usize) -> bool {
    let bits = BITS.load(Ordering::Acquire);
    let region = seg >> SEGMENT_SHIFT;
    if bits.is_null() || region >= REGIONS {
        return false;
    }
    // SAFETY: `region / 64` < REGIONS / 64, inside the bitmap.
    let word = unsafe { (*bits.add(region / 64)).load(Ordering::Acquire) };
    word >> (region % 64) & 1 != 0
}
