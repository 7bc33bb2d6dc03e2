//! Which 4 MiB regions of the address space hold a segment header, and a
//! pointer to each header: [`Heap::owns`](super::Heap::owns) tells a
//! pointer this heap handed out from any other without touching memory that
//! may not be mapped (the malloc shim checks every `free` with it), and
//! every path that starts from a caller's pointer reaches the header through
//! the pointer kept here, not through the caller's (whose provenance, under
//! Stacked and Tree Borrows, may cover only the caller's block: an
//! `allocator_api2::boxed::Box` retags it to the value's size).
//!
//! Two levels: a static table of 2^13 leaf pointers (64 KiB of `.bss`,
//! untouched until used), each leaf 2^13 header pointers (64 KiB, mapped on
//! first use, never unmapped), together covering the 48-bit user address
//! space: a leaf spans 32 GiB, so a process's segments usually share one or
//! two. A look-up is two loads, as the bitmap it replaced was. A segment
//! above 2^48 (only where a program asks the kernel for such addresses)
//! cannot be recorded and is not used (its allocation fails). Every region
//! with a header is the heap's whole (large mappings reserve at least the
//! rest of their header's region), so a foreign pointer never lies in a
//! region that has an entry.
//!
//! # Invariants
//! A region's entry is set (release) after its header is written and
//! cleared before the segment is unmapped; a reader that sees the entry
//! (acquire) sees the header's immutable fields (`kind`, `map`, `map_size`).
//! A leaf, once published, stays mapped for the life of the process.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::geometry::{SEGMENT_SHIFT, SEGMENT_SIZE};
use crate::os;

/// Address bits the map covers.
const ADDRESS_BITS: u32 = 48;
/// Regions per leaf, as a shift.
const LEAF_SHIFT: u32 = 13;
const LEAF_ENTRIES: usize = 1 << LEAF_SHIFT;
const LEAVES: usize = 1 << (ADDRESS_BITS - SEGMENT_SHIFT - LEAF_SHIFT);
const LEAF_BYTES: usize = LEAF_ENTRIES * size_of::<AtomicPtr<u8>>();

/// The leaves, each null until a header in its span is recorded.
static LEAVES_TABLE: [AtomicPtr<AtomicPtr<u8>>; LEAVES] = [const { AtomicPtr::new(ptr::null_mut()) }; LEAVES];

/// The leaf index and the entry within it for the region holding `addr`, if
/// the map covers it.
#[inline(always)]
fn locate(addr: usize) -> Option<(usize, usize)> {
    let region = addr >> SEGMENT_SHIFT;
    let leaf = region >> LEAF_SHIFT;
    (leaf < LEAVES).then_some((leaf, region & (LEAF_ENTRIES - 1)))
}

/// The leaf at `index`, mapped now if it was not (`None` if the OS refused).
fn leaf_or_map(index: usize) -> Option<*mut AtomicPtr<u8>> {
    let slot = &LEAVES_TABLE[index];
    let leaf = slot.load(Ordering::Acquire);
    if !leaf.is_null() {
        return Some(leaf);
    }
    let fresh = os::map(LEAF_BYTES, os::page_size())?.cast::<AtomicPtr<u8>>().as_ptr();
    match slot.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(fresh),
        Err(theirs) => {
            // Another thread mapped it first.
            // SAFETY: our own mapping, never published.
            unsafe { os::unmap(core::ptr::NonNull::new_unchecked(fresh.cast()), LEAF_BYTES, os::page_size()) };
            Some(theirs)
        }
    }
}

/// Records the segment header at `seg` (a pointer with the provenance of its
/// whole mapping); false if it cannot be recorded (a leaf could not be
/// mapped, or `seg` lies beyond the map): the caller must not use the
/// segment then.
pub(super) fn insert(seg: *mut u8) -> bool {
    debug_assert_eq!(seg.addr() % SEGMENT_SIZE, 0);
    let Some((leaf, entry)) = locate(seg.addr()) else { return false };
    let Some(leaf) = leaf_or_map(leaf) else { return false };
    // SAFETY: `entry` < LEAF_ENTRIES, inside the leaf, which stays mapped.
    unsafe { (*leaf.add(entry)).store(seg, Ordering::Release) };
    true
}

/// Forgets the segment header at `seg` (before it is unmapped).
pub(super) fn remove(seg: usize) {
    if let Some((leaf, entry)) = locate(seg) {
        let leaf = LEAVES_TABLE[leaf].load(Ordering::Acquire);
        if !leaf.is_null() {
            // SAFETY: as in `insert`.
            unsafe { (*leaf.add(entry)).store(ptr::null_mut(), Ordering::Release) };
        }
    }
}

/// The segment header at `seg` (a region's start), as recorded by
/// [`insert`], or null if none lives there. On every free that misses the
/// thread's hint: two loads, no call.
#[inline(always)]
pub(super) fn get(seg: usize) -> *mut u8 {
    let Some((leaf, entry)) = locate(seg) else { return ptr::null_mut() };
    let leaf = LEAVES_TABLE[leaf].load(Ordering::Acquire);
    if leaf.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `entry` < LEAF_ENTRIES, inside the leaf, which stays mapped.
    unsafe { (*leaf.add(entry)).load(Ordering::Acquire) }
}
