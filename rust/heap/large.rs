//! Large blocks (over `MEDIUM_MAX`, or aligned beyond a page; smaller ones
//! are medium blocks in small segments): one mapping each, with room to
//! grow, and a cache of freed
//! mappings so that a program that allocates and frees big blocks in a loop
//! neither maps nor faults its memory in again each time.
//!
//! A large block's mapping reserves twice the block (up to 64 MiB extra) of
//! address space; untouched pages cost no memory, and `realloc` grows in
//! place until the reserve is used up. A freed mapping goes to the cache
//! (at most [`CACHE_ENTRIES`] mappings and [`CACHE_BYTES`] bytes); an
//! allocation takes the most recently freed mapping that fits (wasting at
//! most 8x or 32 MiB), and a new mapping unmaps the cached ones too small
//! for it, so a loop over block sizes keeps one resident mapping, not one
//! per size. Mappings idle in the cache for [`DECAY`] are unmapped at the next
//! large allocation or free; [`Heap::purge`](super::Heap::purge) unmaps them
//! all at once.
//!
//! # Invariants
//! The cache owns its mappings (no block lives in them) and is only
//! touched under its lock. A cached mapping's header stays valid; reuse
//! rewrites only the usable size. A header's `large_live` is set while its
//! block is handed out and cleared by the block's one free (a swap), so a
//! second free is caught and the cache never holds a mapping twice.

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use core::sync::atomic::Ordering;

use super::counters::{self, LARGE_BYTES, LARGE_LIVE, RESIDENT};
use super::guard::{self, Misuse};
use super::limit::{self, Short};
use super::secure;
use super::segment::{Kind, PAGE_SIZE, SEGMENT_SIZE, Segment};
use crate::os;

/// Blocks from this size up ask for transparent huge pages: they are
/// likely to be touched whole, and a 2 MiB page then saves 511 faults and
/// TLB misses. Smaller ones would round their resident memory up.
const HUGE_FROM: usize = 4 << 20;

/// Mappings the cache keeps at most.
const CACHE_ENTRIES: usize = 16;
/// Bytes the cache keeps at most.
const CACHE_BYTES: usize = 256 << 20;
/// How long a freed mapping waits for reuse before it is unmapped.
const DECAY: Duration = Duration::from_secs(1);

struct Cached {
    seg: *mut Segment,
    size: usize,
    since: Option<Instant>,
}

struct Cache {
    entries: [Cached; CACHE_ENTRIES],
    len: usize,
    bytes: usize,
}

// SAFETY: the cached mappings are plain memory owned by the cache, used
// only under its lock.
unsafe impl Send for Cache {}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    entries: [const { Cached { seg: ptr::null_mut(), size: 0, since: None } }; CACHE_ENTRIES],
    len: 0,
    bytes: 0,
});

fn cache() -> std::sync::MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(PoisonError::into_inner)
}

static FORK: super::fork::ForkSlot<std::sync::MutexGuard<'static, Cache>> = super::fork::ForkSlot::new();

/// Holds the cache's lock across a `fork()` (see `fork.rs`).
pub(super) fn fork_hold() {
    FORK.hold(cache());
}

pub(super) fn fork_release() {
    FORK.release();
}

impl Cache {
    /// Removes entry `i` and returns its segment.
    fn take(&mut self, i: usize) -> *mut Segment {
        let seg = self.entries[i].seg;
        self.bytes -= self.entries[i].size;
        self.len -= 1;
        self.entries.swap(i, self.len);
        self.entries[self.len].seg = ptr::null_mut();
        seg
    }

    /// Unmaps the entries idle longer than `DECAY` (all of them if `all`);
    /// returns the resident bytes handed back.
    fn expire(&mut self, all: bool) -> usize {
        let now = Instant::now();
        let mut released = 0;
        let mut i = 0;
        while i < self.len {
            let old = self.entries[i].since.is_none_or(|t| now.duration_since(t) >= DECAY);
            if all || old {
                let seg = self.take(i);
                // SAFETY: a cached mapping holds no block.
                released += unsafe { Segment::free(seg) };
            } else {
                i += 1;
            }
        }
        released
    }
}

/// Where a large block starts in its mapping, and the mapping's alignment.
fn placement(align: usize) -> (usize, usize, usize) {
    if align < SEGMENT_SIZE {
        // The header at the start, the block at a page (or its alignment).
        (align.max(PAGE_SIZE), SEGMENT_SIZE, 0)
    } else {
        // The block at the start of a segment-aligned address, the header
        // one segment before it (see `segment_of`).
        (align, align, align - SEGMENT_SIZE)
    }
}

/// Allocates a large block; also says whether its memory is known to be
/// zero (a fresh mapping). `Err` if the OS or the memory limit says no
/// (`PurgeFirst`: the caller purges and tries again, see `limit.rs`).
pub(super) fn allocate(layout: Layout) -> Result<(NonNull<u8>, bool), Short> {
    guard::init();
    let size = layout.size().max(1);
    let (offset, map_align, header_at) = placement(layout.align());
    // Secure mode never reuses a freed mapping (see `secure.rs`).
    if header_at == 0 && !secure::on() {
        let mut cache = cache();
        cache.expire(false);
        // The most recently freed mapping that fits (its pages are the
        // likeliest to be resident), unless it would waste more than 8x
        // (and more than 32 MiB) on this block.
        // Only a mapping whose block starts where this one will (what it has
        // touched is counted from the block's start).
        let fits = |c: &Cached| {
            // SAFETY: a cached mapping's header is the cache's, under its lock.
            let same_offset = unsafe { (*c.seg).map_size - (*c.seg).large_size } == offset;
            let capacity = c.size.saturating_sub(offset);
            same_offset && capacity >= size && (capacity / 8 <= size || capacity - size <= 32 << 20)
        };
        let found = (0..cache.len).filter(|&i| fits(&cache.entries[i])).max_by_key(|&i| cache.entries[i].since);
        if found.is_none() {
            // A new mapping supersedes the cached ones too small for this
            // block: a program cycling through block sizes keeps the
            // largest mapping resident, not one of each size.
            let mut i = 0;
            while i < cache.len {
                if cache.entries[i].size.saturating_sub(offset) < size {
                    let seg = cache.take(i);
                    // SAFETY: a cached mapping holds no block.
                    unsafe { Segment::free(seg) };
                } else {
                    i += 1;
                }
            }
        }
        if let Some(i) = found {
            let seg = cache.take(i);
            drop(cache);
            // SAFETY: taken out of the cache, the mapping is this call's
            // alone (no block in it, no other list holds it): its header is
            // valid and nobody else writes it.
            unsafe { (*seg).large_size = (*seg).map_size - offset };
            // SAFETY: as above: a large segment with no live block.
            if let Err(short) = unsafe { account(seg, size) } {
                // SAFETY: as above; nothing in it is used.
                unsafe { Segment::free(seg) };
                return Err(short);
            }
            // SAFETY: as above (the header lives until the block is freed).
            unsafe {
                (*seg).large_sample = 0;
                (*seg).large_live.store(true, Ordering::Release);
            }
            // SAFETY: `fits` checked that the block starts `offset` bytes
            // into this mapping (a cached mapping's header is at its start),
            // so the address is inside it and not null.
            let block = unsafe { NonNull::new_unchecked(seg.cast::<u8>().add(offset)) };
            return Ok((block, false));
        }
    }
    // Twice the block (up to 64 MiB more) of address space, to grow into.
    let page = os::page_size();
    let reserve = size.checked_add(size.min(64 << 20)).ok_or(Short::Refused)?;
    // At least the whole 4 MiB region of the header: no other mapping may
    // share a region whose header `Heap::owns` consults (the reserve costs
    // address space only).
    let map_size = offset
        .checked_add(reserve)
        .and_then(|bytes| bytes.checked_next_multiple_of(page))
        .filter(|&bytes| bytes <= isize::MAX as usize)
        .ok_or(Short::Refused)?
        .max(SEGMENT_SIZE - header_at);
    let header = Segment::header_bytes();
    limit::charge(header)?;
    let Some(map) = os::map(map_size, map_align) else {
        counters::sub(&RESIDENT, header);
        return Err(Short::Refused);
    };
    if size >= HUGE_FROM {
        os::advise_huge(map.as_ptr().wrapping_add(offset), size);
    }
    // SAFETY: `placement` puts the header inside the mapping (`header_at <
    // offset < map_size`).
    let header_place = unsafe { map.add(header_at) }.cast::<Segment>();
    let seg = header_place.as_ptr();
    // SAFETY: the header's place is fresh zeroed memory of the mapping,
    // aligned to SEGMENT_SIZE, and the block follows it.
    unsafe { Segment::init(header_place, ptr::null_mut(), Kind::Large, map, map_size, map_align, map_size - offset) };
    // Published once its header is complete (see `Segment::new_small`).
    if !super::segment_map::insert(seg.cast()) {
        // SAFETY: the mapping is this call's alone and holds no block.
        unsafe { Segment::free(seg) };
        return Err(Short::Refused);
    }
    // SAFETY: a large segment just made, with no live block.
    if let Err(short) = unsafe { account(seg, size) } {
        // SAFETY: as above: nothing in it is used.
        unsafe { Segment::free(seg) };
        return Err(short);
    }
    // SAFETY: the header was written above and lives until the block is freed.
    unsafe { (*seg).large_live.store(true, Ordering::Release) };
    // Secure mode: the rest of the mapping after the block is a guard.
    if secure::on() {
        let end = offset + size.next_multiple_of(page);
        if end < map_size {
            // SAFETY: `[end, map_size)` is whole pages (`end` and `map_size`
            // are multiples of the page size) of this mapping past the
            // block, which nothing uses: in secure mode a large block grows
            // in place only within its own size (`Heap::resize`), and the
            // cache never takes secure mode's mappings.
            unsafe { os::protect(map.as_ptr().add(end), map_size - end, false) };
        }
    }
    NonNull::new(map.as_ptr().wrapping_add(offset)).map(|block| (block, true)).ok_or(Short::Refused)
}

/// Counts a block of `size` bytes handed out from the large segment `seg`
/// (fresh or reused) in the stats, charging memory it has not touched yet
/// to the limit; `Err` if the limit said no (nothing counted then).
///
/// # Safety
/// `seg` is a large segment with no live block.
unsafe fn account(seg: *mut Segment, size: usize) -> Result<(), Short> {
    // SAFETY: the caller's contract: the header is ours.
    let rounded = unsafe { touch(seg, size) }?;
    // SAFETY: as above.
    unsafe { (*seg).block_size = rounded };
    counters::add(&LARGE_LIVE, 1);
    counters::add(&LARGE_BYTES, rounded);
    Ok(())
}

/// The block of `seg` is to span `size` bytes: charges the pages it has
/// never touched to the limit and counts them as touched. Returns the
/// page-rounded size, or `Err` (nothing counted) if the limit said no.
///
/// # Safety
/// The caller owns the large segment's header.
unsafe fn touch(seg: *mut Segment, size: usize) -> Result<usize, Short> {
    let rounded = size.next_multiple_of(os::page_size());
    // SAFETY: the caller's contract.
    unsafe {
        let growth = rounded.saturating_sub((*seg).touched);
        if growth > 0 {
            limit::charge(growth)?;
        }
        (*seg).touched += growth;
    }
    Ok(rounded)
}

/// A large block changes size in place (within its mapping): updates the
/// stats, charging new memory to the limit; `Err` if the limit said no.
///
/// # Safety
/// `seg` is the header of a live large block, `new_size` within its usable
/// size, and the caller owns the block.
pub(super) unsafe fn resize(seg: *mut Segment, new_size: usize) -> Result<(), Short> {
    // SAFETY: the caller owns the block, and with it these header fields.
    let rounded = unsafe { touch(seg, new_size) }?;
    // SAFETY: as above.
    let old = unsafe { core::mem::replace(&mut (*seg).block_size, rounded) };
    counters::sub(&LARGE_BYTES, old);
    counters::add(&LARGE_BYTES, rounded);
    Ok(())
}

/// The address of the block of the large segment `seg`.
///
/// # Safety
/// `seg` is a mapped large segment header.
unsafe fn block_addr(seg: *mut Segment) -> usize {
    // SAFETY: the caller's contract; these fields do not change while the
    // header is mapped (reuse keeps the block's offset).
    unsafe { (*seg).map.as_ptr().addr() + (*seg).map_size - (*seg).large_size }
}

/// Marks the block of `seg` as the profiler's sample `id` (its free tells
/// the profiler).
///
/// # Safety
/// `seg` is the header of a large block not handed out yet.
pub(super) unsafe fn set_sample(seg: *mut Segment, id: u64) {
    // SAFETY: the caller's contract: nobody else has the block yet.
    unsafe { (*seg).large_sample = id };
}

/// Whether `ptr` is the start of the live block of the large segment `seg`.
///
/// # Safety
/// `seg` is a mapped large segment header.
pub(super) unsafe fn is_live_start(seg: *mut Segment, ptr: *mut u8) -> bool {
    // SAFETY: the caller's contract.
    unsafe { ptr.addr() == block_addr(seg) && (*seg).large_live.load(Ordering::Acquire) }
}

/// Frees the large block at `ptr` in segment `seg`: its mapping goes to the
/// cache, or back to the OS. A pointer that is not the block's start, or a
/// block already freed, is reported and left alone.
///
/// # Safety
/// `seg` is a mapped large segment header whose region holds `ptr`.
pub(super) unsafe fn free(seg: *mut Segment, ptr: *mut u8) {
    if guard::ON {
        // SAFETY: the caller's contract.
        if ptr.addr() != unsafe { block_addr(seg) } {
            return guard::report(Misuse::InvalidPointer, ptr.addr());
        }
        // SAFETY: as above; the flag is atomic, so of two racing frees one wins.
        if !unsafe { (*seg).large_live.swap(false, Ordering::AcqRel) } {
            return guard::report(Misuse::DoubleFree, ptr.addr());
        }
    }
    // SAFETY: the header is valid until the mapping goes; the block's one
    // free (above) owns its fields.
    let (size, align, map, block) = unsafe { ((*seg).map_size, (*seg).map_align, (*seg).map, (*seg).block_size) };
    // SAFETY: as above.
    let sample = unsafe { core::mem::take(&mut (*seg).large_sample) };
    if sample != 0 {
        crate::profile::freed(sample);
    }
    counters::sub(&LARGE_LIVE, 1);
    counters::sub(&LARGE_BYTES, block);
    if secure::on() {
        // SAFETY: the block is freed; the caller's contract.
        return unsafe { retire(seg) };
    }
    if align == SEGMENT_SIZE && map.as_ptr().cast() == seg && size <= CACHE_BYTES / 4 && !secure::on() {
        let mut cache = cache();
        cache.expire(false);
        if cache.len == CACHE_ENTRIES || cache.bytes + size > CACHE_BYTES {
            // Make room: the oldest entries go first.
            let oldest = (0..cache.len).min_by_key(|&i| cache.entries[i].since);
            if let Some(i) = oldest {
                let old = cache.take(i);
                // SAFETY: a cached mapping holds no block.
                unsafe { Segment::free(old) };
            }
        }
        if cache.len < CACHE_ENTRIES && cache.bytes + size <= CACHE_BYTES {
            let len = cache.len;
            cache.entries[len] = Cached { seg, size, since: Some(Instant::now()) };
            cache.len += 1;
            cache.bytes += size;
            return;
        }
    }
    // SAFETY: the caller's contract.
    unsafe { Segment::free(seg) };
}

/// Freed large mappings that secure mode keeps, inaccessible, before it
/// unmaps them: a use after free faults, and a second free still finds the
/// header and is named a double free. Address space only (their pages are
/// purged).
const RETIRED_KEPT: usize = 32;

struct Retired {
    segs: [*mut Segment; RETIRED_KEPT],
    /// The next entry to fill (the oldest once all are full).
    next: usize,
}

// SAFETY: the retired mappings hold no block and are used only under the
// lock.
unsafe impl Send for Retired {}

static RETIRED: Mutex<Retired> = Mutex::new(Retired { segs: [ptr::null_mut(); RETIRED_KEPT], next: 0 });

/// Secure mode's end of a freed large block: its pages handed back and
/// made inaccessible, the mapping kept among the last [`RETIRED_KEPT`]
/// (the oldest is unmapped to make room).
///
/// # Safety
/// `seg` is the header of a large block just freed (its flag cleared).
unsafe fn retire(seg: *mut Segment) {
    // SAFETY: the caller's contract: the header is ours, the block freed.
    unsafe {
        let block = (*seg).map.as_ptr().with_addr(block_addr(seg));
        let end = (*seg).map.as_ptr().addr() + (*seg).map_size;
        os::purge(block, end - block.addr());
        os::protect(block, end - block.addr(), false);
        counters::sub(&RESIDENT, (*seg).touched);
        (*seg).touched = 0;
    }
    let mut retired = RETIRED.lock().unwrap_or_else(PoisonError::into_inner);
    let at = retired.next;
    let old = core::mem::replace(&mut retired.segs[at], seg);
    retired.next = (at + 1) % RETIRED_KEPT;
    drop(retired);
    if !old.is_null() {
        // SAFETY: a retired mapping holds no block; its protection does
        // not matter to `munmap`.
        unsafe { Segment::free(old) };
    }
}

/// Unmaps the cached mappings idle past the decay.
pub(super) fn expire() {
    cache().expire(false);
}

/// Unmaps every cached mapping; returns the resident bytes handed back.
pub(super) fn purge() -> usize {
    cache().expire(true)
}
