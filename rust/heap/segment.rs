//! Segments and pages: the heap's memory and its metadata.
//!
//! A small segment is [`SEGMENT_SIZE`] bytes mapped at a multiple of
//! [`SEGMENT_SIZE`]. Its first [`PAGE_SIZE`] bytes hold the [`Segment`]
//! header (the rest of that page is never touched, so it costs no memory);
//! each following page serves blocks of one size class. A block's segment
//! is its address rounded down to [`SEGMENT_SIZE`] and its page the next
//! [`PAGE_SHIFT`] bits, so a free needs no header per block.
//!
//! A medium block (over [`SMALL_MAX`] bytes, or aligned beyond what a
//! class gives, up to [`MEDIUM_MAX`] and aligned to at most a page) takes a
//! *span*: consecutive free pages of a small segment, the first marked
//! [`SPAN_HEAD`] (with the span's length), the others [`SPAN_TAIL`]. No
//! page of a span has carved blocks, so the block-start check refuses every
//! pointer into it and frees take the slow path, which knows spans.
//!
//! A large block (bigger still, or aligned beyond a page) gets a segment of
//! its own: the header first, the block at
//! `PAGE_SIZE` (or at its alignment, if larger). A block aligned to a
//! multiple of [`SEGMENT_SIZE`] would sit where its header belongs, so its
//! header goes one segment before it; a block address that is itself a
//! multiple of [`SEGMENT_SIZE`] names such a header (small blocks never
//! start at offset 0: the header page comes first).
//!
//! # Invariants
//! - A header's entry in `segment_map` (a pointer to it, with its mapping's
//!   provenance) is set from when its fields are written until just before
//!   the segment is unmapped. Every access the heap makes from a pointer a
//!   caller handed back goes through that entry ([`segment_of`],
//!   [`in_segment`]), never through the caller's provenance; except a block
//!   C's `free` hands back, on the fast paths ([`block_of_caller`]): C code
//!   cannot narrow a pointer's provenance below the mapping `malloc_c`
//!   returned it from.
//! - Small: page record 0 describes the header page, which is never in use
//!   (its carved end stays 0). `used_pages` counts the pages in use and
//!   `free_dirty` the pages not in use that are resident.
//! - A span's pages are in use, in no queue, with `carved_end == 0`; its
//!   first page's `used` is 1 while the block is live (until its owner
//!   takes it back), and its `thread_free` is null, or the block itself
//!   once another thread freed it (set once, by a CAS from null).
//! - A page in use serves one class; its blocks lie at multiples of the
//!   class size below `carved_end` (a free page has `carved_end == 0`).
//!   Each carved block is in exactly one place: live (counted in `used`),
//!   in `free`, or in `thread_free` (also counted in `used` until the owner
//!   collects it); after a reported corruption, the dropped rest of a list
//!   is in none, until the page is emptied and reused.
//! - Every link in `free` and `thread_free` is encoded with the page's
//!   `key`, and every block in them carries the free mark (`guard.rs`);
//!   no other memory of a small segment does (a block loses it when handed
//!   out, and `release_page` wipes the marks of a page's free blocks);
//!   `key` and `magic` change only while the page is not in use.
//! - Who may write what is in `heap/mod.rs` (owner-only fields, the one
//!   CAS-pushed `thread_free`).
//! - Large: the block lies at `map + map_size - large_size` and
//!   `large_live` is set exactly while it is handed out.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::counters::{self, LARGE_BYTES, LARGE_LIVE, RESIDENT};
use super::fork::ForkSlot;
use super::guard::{self, Misuse};
use super::limit::{self, Short};
use super::secure;
use crate::classes::class_size;
use crate::os;

pub(super) use super::geometry::{
    MEDIUM_MAX, MIN_CLASS, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PAGES, SEGMENT_SIZE, SMALL_CLASSES, SMALL_MAX,
};
const _: () = assert!(class_size(MIN_CLASS) >= size_of::<Block>());

/// Who owns a small segment: a thread heap's record, seen from here as an
/// opaque address (`thread.rs` makes and compares them), so this module
/// does not name the thread heaps that use it.
pub(super) enum Owner {}

/// A free block: its first word is the encoded link to the next free block
/// of its page, its second the double-free mark (see `guard.rs`). Both are
/// plain integers: the next block's pointer is rebuilt from this one's.
#[repr(C)]
pub(super) struct Block {
    pub(super) link: usize,
    pub(super) mark: usize,
}

/// One page of a small segment. All fields but `thread_free` belong to
/// the segment's owner thread. One cache line each, so that pages in use by
/// different threads (after an adoption) never share a line.
///
/// `used`, `carved_end`, `magic`, `key`, `class` and `limit` are atomics so
/// that the stats, and the checks of a free from another thread, may read
/// them: the owner alone writes them, with relaxed loads and stores (plain moves, no
/// read-modify-write).
#[repr(C, align(64))]
pub(super) struct Page {
    /// The first free block the owner allocates from (and frees to); its
    /// link leads to the next (encoded, see `guard.rs`).
    pub(super) free: *mut Block,
    /// Blocks handed out and not yet freed back to `free` (blocks freed by
    /// other threads count until the owner collects them).
    pub(super) used: AtomicU32,
    /// Bytes of the page carved into blocks so far (from its start).
    pub(super) carved_end: AtomicU32,
    /// `guard::divisor` of the class size: block-start checks.
    pub(super) magic: AtomicU64,
    /// This page's link key (`guard::page_key`), set when it is taken.
    pub(super) key: AtomicUsize,
    /// Blocks freed by other threads: pushed with an atomic CAS, taken
    /// whole by the owner (one swap). Links encoded like `free`'s. On a
    /// page serving a class, the bits above the address hold how many
    /// blocks the list has ([`remote_list`]).
    pub(super) thread_free: AtomicPtr<Block>,
    /// The owner's queue of pages of this class.
    pub(super) next: *mut Page,
    pub(super) prev: *mut Page,
    pub(super) class: AtomicU8,
    pub(super) in_use: bool,
    /// Touched since it was last purged (or mapped).
    pub(super) dirty: bool,
    /// Free and dirty at the last decay pass: purged at the next.
    pub(super) stale: bool,
    /// `guard::carved_limit` of the carved blocks: block-start checks in
    /// one compare (0 while the page is not in use).
    pub(super) limit: AtomicU32,
}
const _: () = assert!(size_of::<Page>() == 64);

/// Where the count of a page's remote list starts in `thread_free`: every
/// small segment lies below 2^48 (`segment_map` records no other), so the
/// bits above a block's address are free. The owner takes the list and its
/// length with one swap, and adopts the list without walking it: the walk
/// would read each block another core just wrote, one miss after another.
const REMOTE_COUNT_SHIFT: u32 = 48;
const _: () = assert!(usize::BITS == 64, "the remote count needs the bits above 48 address bits");
/// More blocks than a page holds, so never reached but by misuse (and then
/// the count saturates, and `collect` keeps `used` sane).
const REMOTE_COUNT_MAX: usize = (1 << (usize::BITS - REMOTE_COUNT_SHIFT)) - 1;

/// A remote list's head and length, from `thread_free`'s value.
#[inline(always)]
fn remote_list(tagged: *mut Block) -> (*mut Block, usize) {
    (tagged.map_addr(|a| a & ((1 << REMOTE_COUNT_SHIFT) - 1)), tagged.addr() >> REMOTE_COUNT_SHIFT)
}

/// `thread_free`'s value for a remote list of `count` blocks at `head`.
#[inline(always)]
fn remote_tagged(head: *mut Block, count: usize) -> *mut Block {
    head.map_addr(|a| a | count.min(REMOTE_COUNT_MAX) << REMOTE_COUNT_SHIFT)
}

/// The `class` of the first page of a medium block's span (its `magic`
/// holds the span's page count, `used` is 1 while the block is live, and a
/// free from another thread parks the block in its `thread_free`).
pub(super) const SPAN_HEAD: u8 = 254;
/// The `class` of the other pages of a span.
pub(super) const SPAN_TAIL: u8 = 255;
const _: () = assert!(SMALL_CLASSES < SPAN_HEAD as usize);

/// What a segment holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Pages of small blocks, owned by one thread heap.
    Small,
    /// One large block.
    Large,
}

/// The header at the start of every segment. `#[repr(C)]` for foreign fast
/// paths: `owner` first, `pages` at a fixed offset (see `Heap::fast_path`).
#[repr(C)]
pub(super) struct Segment {
    /// The thread heap whose thread may use the pages without atomics; null
    /// while the segment is abandoned. Written by the owner (or an
    /// adopter), read by every free.
    pub(super) owner: AtomicPtr<Owner>,
    pub(super) kind: Kind,
    /// The mapping this segment lives in (for a large block with a huge
    /// alignment, it starts before the header).
    pub(super) map: NonNull<u8>,
    pub(super) map_size: usize,
    pub(super) map_align: usize,
    /// Large: the bytes usable from the block's start.
    pub(super) large_size: usize,
    /// Small: pages in use (the header page not counted).
    pub(super) used_pages: usize,
    /// Small: free pages that are dirty (resident, not yet purged).
    pub(super) free_dirty: usize,
    /// Large: the block's size as counted in the stats (page-rounded), and
    /// the most of the block ever handed out (resident until unmapped).
    pub(super) block_size: usize,
    pub(super) touched: usize,
    /// The owner's list of segments, the abandoned list, or the cache of
    /// empty segments.
    pub(super) next: *mut Segment,
    /// Small: the list of every small segment ([`SEGMENTS`]).
    pub(super) all_prev: *mut Segment,
    pub(super) all_next: *mut Segment,
    /// When it went into the cache of empty segments.
    pub(super) idle_since: Option<std::time::Instant>,
    /// Large: the block is live (cleared by its one free).
    pub(super) large_live: AtomicBool,
    /// Large: the profiler's number for the block if it is a sample (0:
    /// not one). Written before the block is handed out and taken by its
    /// one free.
    pub(super) large_sample: u64,
    /// Small: medium blocks other threads parked since the owner last
    /// looked (a hint: the owner scans the pages only when it is not 0).
    pub(super) parked: AtomicU32,
    pub(super) pages: [Page; PAGES],
}

/// The segment header of any block this heap handed out, as the segment
/// map keeps it: with its mapping's provenance, whatever `ptr` carries.
///
/// # Safety
/// `ptr` is a live block of this heap.
#[inline(always)]
pub(super) unsafe fn segment_of(ptr: *mut u8) -> *mut Segment {
    super::segment_map::get(header_addr(ptr.addr())).cast()
}

/// `ptr` with the provenance of its segment's mapping (`seg`), for every
/// access the heap makes to a block a caller handed back: the caller's
/// pointer may carry less (an `allocator_api2::boxed::Box` retags it to the
/// value's size, short of the block's link and mark).
#[inline(always)]
pub(super) fn in_segment(seg: *mut Segment, ptr: *mut u8) -> *mut u8 {
    seg.cast::<u8>().with_addr(ptr.addr())
}

/// The pointer the free fast paths write a block through: for a Rust
/// caller (`C` false) [`in_segment`]'s; for C's `free`, the caller's own
/// `ptr`, which came from `malloc_c` with the whole mapping's provenance
/// (C has no way to narrow it), so the segment's is not needed and its
/// address arithmetic is saved.
#[inline(always)]
pub(super) fn block_of_caller<const C: bool>(seg: *mut Segment, ptr: *mut u8) -> *mut u8 {
    if C { ptr } else { in_segment(seg, ptr) }
}

/// Where the header of a block at `addr` would be: `addr` rounded down to
/// [`SEGMENT_SIZE`], or one segment before it if `addr` is itself a
/// multiple (see the module doc). Wraps for addresses in the first segment,
/// where no header can be.
#[inline(always)]
pub(super) fn header_addr(addr: usize) -> usize {
    // The region holding the byte before `addr`: `addr`'s own, or the one
    // before when `addr` starts a region.
    addr.wrapping_sub(1) & !(SEGMENT_SIZE - 1)
}

impl Segment {
    /// Bytes of a segment's header that are touched (resident).
    pub(super) fn header_bytes() -> usize {
        size_of::<Segment>().next_multiple_of(os::page_size())
    }

    /// Maps and initialises an empty small segment owned by `owner`; `Err`
    /// if the OS refuses (`Refused`) or the memory limit does.
    pub(super) fn new_small(owner: *mut Owner) -> Result<NonNull<Segment>, Short> {
        guard::init();
        limit::charge(Self::header_bytes())?;
        let Some(map) = os::map(SEGMENT_SIZE, SEGMENT_SIZE) else {
            counters::sub(&RESIDENT, Self::header_bytes());
            return Err(Short::Refused);
        };
        let seg = map.cast::<Segment>();
        // SAFETY: a fresh, zeroed mapping, larger than the header and
        // aligned for it; zero is a valid `Page` (null lists, not in use).
        unsafe { Self::init(seg, owner, Kind::Small, map, SEGMENT_SIZE, SEGMENT_SIZE, 0) };
        // Published once its header is complete; a segment `Heap::owns`
        // could not recognise would be lost to `free`, so none is used.
        if !super::segment_map::insert(seg.as_ptr().cast()) {
            counters::sub(&RESIDENT, Self::header_bytes());
            // SAFETY: our fresh mapping, unused.
            unsafe { os::unmap(map, SEGMENT_SIZE, SEGMENT_SIZE) };
            return Err(Short::Refused);
        }
        // SAFETY: a new small segment, listed once.
        unsafe { list_segment(seg.as_ptr()) };
        Ok(seg)
    }

    /// Writes the header fields (the pages are already zero).
    ///
    /// # Safety
    /// `seg` is the start of a fresh zeroed header inside `map`.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn init(
        seg: NonNull<Segment>,
        owner: *mut Owner,
        kind: Kind,
        map: NonNull<u8>,
        map_size: usize,
        map_align: usize,
        large_size: usize,
    ) {
        let s = seg.as_ptr();
        // SAFETY: the caller's contract; fields written in place, leaving
        // the zeroed pages as they are.
        unsafe {
            (&raw mut (*s).owner).write(AtomicPtr::new(owner));
            (&raw mut (*s).kind).write(kind);
            (&raw mut (*s).map).write(map);
            (&raw mut (*s).map_size).write(map_size);
            (&raw mut (*s).map_align).write(map_align);
            (&raw mut (*s).large_size).write(large_size);
            (&raw mut (*s).used_pages).write(0);
            (&raw mut (*s).free_dirty).write(0);
            (&raw mut (*s).block_size).write(0);
            (&raw mut (*s).touched).write(0);
            (&raw mut (*s).next).write(ptr::null_mut());
            (&raw mut (*s).all_prev).write(ptr::null_mut());
            (&raw mut (*s).all_next).write(ptr::null_mut());
            (&raw mut (*s).idle_since).write(None);
            (&raw mut (*s).large_live).write(AtomicBool::new(false));
            (&raw mut (*s).parked).write(AtomicU32::new(0));
        }
    }

    /// Unmaps the segment; returns the resident bytes that go with it (its
    /// header, dirty free pages or touched block: not its untouched address
    /// space).
    ///
    /// # Safety
    /// Nothing in it is used any more.
    pub(super) unsafe fn free(seg: *mut Segment) -> usize {
        super::segment_map::remove(seg.addr());
        // SAFETY: the header is live until the unmap below.
        let (map, size, align) = unsafe { ((*seg).map, (*seg).map_size, (*seg).map_align) };
        // SAFETY: as above; no page is in use, so every dirty page is free.
        // A small segment leaves the list the stats walk before it goes.
        let resident = unsafe {
            match (*seg).kind {
                Kind::Small => {
                    unlist_segment(seg);
                    (*seg).free_dirty * PAGE_SIZE
                }
                Kind::Large => (*seg).touched,
            }
        };
        counters::sub(&RESIDENT, Self::header_bytes() + resident);
        // SAFETY: the caller's contract; `map` came from `os::map(size, align)`.
        unsafe { os::unmap(map, size, align) };
        Self::header_bytes() + resident
    }

    /// The page a block of this small segment lies in.
    ///
    /// # Safety
    /// `seg` is a live small segment and `ptr` lies in one of its pages.
    #[inline(always)]
    pub(super) unsafe fn page_of(seg: *mut Segment, ptr: *mut u8) -> *mut Page {
        let index = (ptr.addr() - seg.addr()) >> PAGE_SHIFT;
        // SAFETY: index < PAGES for an address inside the segment.
        unsafe { (&raw mut (*seg).pages).cast::<Page>().add(index) }
    }

    /// The memory of page `index`.
    fn page_area(seg: *mut Segment, index: usize) -> *mut u8 {
        seg.cast::<u8>().wrapping_add(index * PAGE_SIZE)
    }

    /// The index of page record `page` of `seg`.
    fn page_index(seg: *mut Segment, page: *mut Page) -> usize {
        (page.addr() - seg.addr() - core::mem::offset_of!(Segment, pages)) / size_of::<Page>()
    }

    /// The records of the pages that serve blocks (all but the header's),
    /// in address order. Only addresses: reading through them is the
    /// caller's to justify.
    pub(super) fn pages(seg: *mut Segment) -> impl Iterator<Item = *mut Page> {
        // In bounds of the header: `pages` has `PAGES` records.
        let first = seg.wrapping_byte_add(core::mem::offset_of!(Segment, pages)).cast::<Page>();
        (1..PAGES).map(move |index| first.wrapping_add(index))
    }

    /// Takes a free page of this segment for `class`, if there is one: a
    /// dirty one if it has any (its memory is resident already). Also says
    /// whether the page was clean: new memory, which the caller charges to
    /// [`limit`] (and gives back with [`unwind_take`](Self::unwind_take) if
    /// the limit says no).
    ///
    /// # Safety
    /// The caller owns `seg` (a small segment).
    pub(super) unsafe fn take_page(seg: *mut Segment, class: usize) -> Option<(*mut Page, bool)> {
        // SAFETY: the caller owns the live segment: its owner-only fields
        // and page records are ours (this holds for every block below).
        if unsafe { (*seg).used_pages } == PAGES - 1 {
            return None;
        }
        // The first free dirty page, else the first free page (one exists:
        // fewer than all pages are in use).
        let mut pick: *mut Page = ptr::null_mut();
        for page in Self::pages(seg) {
            // SAFETY: as above.
            let (free, dirty, none_dirty) = unsafe { (!(*page).in_use, (*page).dirty, (*seg).free_dirty == 0) };
            if free && (pick.is_null() || dirty) {
                pick = page;
                if dirty || none_dirty {
                    break;
                }
            }
        }
        let page = pick;
        let size = class_size(class);
        // SAFETY: as above; `page` is a free page record of the segment.
        let clean = unsafe { !(*page).dirty };
        // SAFETY: as above: the page becomes in use, for `class`, with no
        // block carved or handed out yet.
        unsafe {
            if !clean {
                (*seg).free_dirty -= 1;
            }
            (*page).in_use = true;
            (*page).dirty = true;
            (*page).stale = false;
            (*page).class.store(class as u8, Ordering::Relaxed);
            (*page).magic.store(guard::divisor(size), Ordering::Relaxed);
            (*page).key.store(guard::page_key(page.addr()), Ordering::Relaxed);
            (*page).carved_end.store(0, Ordering::Relaxed);
            (*page).limit.store(0, Ordering::Relaxed);
            (*page).used.store(0, Ordering::Relaxed);
            (*page).free = ptr::null_mut();
            (*page).next = ptr::null_mut();
            (*page).prev = ptr::null_mut();
            (*seg).used_pages += 1;
        }
        // SAFETY: the caller owns the segment, and the page is fresh or
        // free: no block lies in its guard.
        unsafe { Self::set_page_guard(seg, page, false) };
        Some((page, clean))
    }

    /// In secure mode, makes the last OS page of small page `page` (its
    /// guard) inaccessible while it is in use, or accessible again when it
    /// is given back.
    ///
    /// # Safety
    /// The caller owns the segment; no block lies in the guard (the page is
    /// fresh or free).
    unsafe fn set_page_guard(seg: *mut Segment, page: *mut Page, accessible: bool) {
        let guard = secure::page_guard();
        if guard != 0 {
            let at = Self::page_area(seg, Self::page_index(seg, page)).wrapping_add(PAGE_SIZE - guard);
            // SAFETY: the caller's contract: whole OS pages of the segment's
            // own mapping that hold no block. If the OS refuses, the page
            // only lacks its guard.
            unsafe { os::protect(at, guard, accessible) };
        }
    }

    /// Gives page `page` back to its segment; returns whether the segment
    /// is now empty.
    ///
    /// # Safety
    /// The caller owns the segment; no block of the page is live, and the
    /// page is in no queue.
    pub(super) unsafe fn release_page(seg: *mut Segment, page: *mut Page) -> bool {
        // SAFETY: owner-only fields of a live segment.
        unsafe {
            if guard::ON {
                // No free mark outlives the page's use (see `guard.rs`): each
                // carved block is free now and carries one; wipe them.
                let size = class_size((*page).class.load(Ordering::Relaxed) as usize);
                let area = Self::page_area(seg, Self::page_index(seg, page));
                let end = (*page).carved_end.load(Ordering::Relaxed) as usize;
                for at in (0..end).step_by(size) {
                    // SAFETY: a carved block of the page, which no one uses.
                    (*area.wrapping_add(at).cast::<Block>()).mark = 0;
                }
            }
            Self::set_page_guard(seg, page, true);
            (*page).in_use = false;
            // A free page has no carved block: `starts_block` refuses it.
            (*page).carved_end.store(0, Ordering::Relaxed);
            (*page).limit.store(0, Ordering::Relaxed);
            (*page).free = ptr::null_mut();
            (*seg).used_pages -= 1;
            (*seg).free_dirty += 1;
            (*seg).used_pages == 0
        }
    }

    /// A page taken by [`take_page`](Self::take_page) that the memory limit
    /// refused: back to its segment, clean as it was.
    ///
    /// # Safety
    /// As for [`release_page`](Self::release_page); the page was clean
    /// when taken and nothing has touched it.
    pub(super) unsafe fn unwind_take(seg: *mut Segment, page: *mut Page) {
        // SAFETY: the caller's contract.
        unsafe {
            Self::release_page(seg, page);
            (*page).dirty = false;
            (*seg).free_dirty -= 1;
        }
    }

    /// Hands the memory of the free, touched pages back to the OS; returns
    /// the bytes.
    ///
    /// # Safety
    /// The caller owns the small segment `seg`.
    pub(super) unsafe fn purge_free_pages(seg: *mut Segment) -> usize {
        // SAFETY: the caller's contract.
        unsafe { Self::purge_where(seg, |_| true) }
    }

    /// A decay pass: purges the free pages that were free and dirty at the
    /// previous pass too, and marks the others to go at the next. Returns
    /// the bytes handed back.
    ///
    /// # Safety
    /// The caller owns the small segment `seg`.
    pub(super) unsafe fn decay(seg: *mut Segment) -> usize {
        // SAFETY: the caller's contract.
        unsafe {
            Self::purge_where(seg, |page| {
                let stale = (*page).stale;
                (*page).stale = true;
                stale
            })
        }
    }

    /// Purges the free, dirty pages for which `purge` says yes.
    ///
    /// # Safety
    /// The caller owns the small segment `seg`.
    unsafe fn purge_where(seg: *mut Segment, mut purge: impl FnMut(*mut Page) -> bool) -> usize {
        // SAFETY: the caller owns the segment, so its owner-only fields are ours.
        if unsafe { (*seg).free_dirty } == 0 {
            return 0;
        }
        let mut released = 0;
        for page in Self::pages(seg) {
            // SAFETY: a page record of the caller's segment (as above).
            let free_and_dirty = unsafe { !(*page).in_use && (*page).dirty };
            if !free_and_dirty || !purge(page) {
                continue;
            }
            let area = Self::page_area(seg, Self::page_index(seg, page));
            // SAFETY: a free page holds no live block, so its memory may go
            // back to the OS; a page the OS would not take stays dirty (and
            // counted).
            if unsafe { os::purge(area, PAGE_SIZE) } > 0 {
                // SAFETY: owner-only fields, as above.
                unsafe {
                    (*page).dirty = false;
                    (*page).stale = false;
                    (*seg).free_dirty -= 1;
                }
                released += PAGE_SIZE;
            }
        }
        counters::sub(&RESIDENT, released);
        released
    }

    /// The first run of `pages` free pages in this segment, as the index of
    /// its first page and how many of its pages are clean (new memory, for
    /// the caller to charge to [`limit`] before it claims them).
    ///
    /// # Safety
    /// The caller owns `seg` (a small segment).
    pub(super) unsafe fn find_span(seg: *mut Segment, pages: usize) -> Option<(usize, usize)> {
        // SAFETY: owner-only fields of a live segment.
        unsafe {
            if PAGES - 1 - (*seg).used_pages < pages {
                return None;
            }
            let (mut run, mut clean) = (0, 0);
            for (offset, page) in Self::pages(seg).enumerate() {
                if (*page).in_use {
                    (run, clean) = (0, 0);
                    continue;
                }
                run += 1;
                clean += usize::from(!(*page).dirty);
                if run == pages {
                    // `pages()` starts at page 1.
                    return Some((offset + 2 - pages, clean));
                }
            }
            None
        }
    }

    /// Takes the `pages` free pages from index `first` (a run
    /// [`find_span`](Self::find_span) found) for one medium block; returns
    /// the first page's record. The block is the pages' memory.
    ///
    /// # Safety
    /// The caller owns `seg`; pages `first..first + pages` are free.
    pub(super) unsafe fn claim_span(seg: *mut Segment, first: usize, pages: usize) -> *mut Page {
        let records = seg.wrapping_byte_add(core::mem::offset_of!(Segment, pages)).cast::<Page>();
        // SAFETY: the caller's contract: owner-only fields of free pages,
        // whose lists are empty; `thread_free` is null on every free page.
        unsafe {
            for i in 0..pages {
                let page = records.add(first + i);
                if (*page).dirty {
                    (*seg).free_dirty -= 1;
                }
                (*page).in_use = true;
                (*page).dirty = true;
                (*page).stale = false;
                (*page).class.store(if i == 0 { SPAN_HEAD } else { SPAN_TAIL }, Ordering::Relaxed);
                (*page).magic.store(pages as u64, Ordering::Relaxed);
                // No carved block: `starts_block` refuses every pointer, so
                // frees of the block take the slow path, which knows spans.
                (*page).carved_end.store(0, Ordering::Relaxed);
                (*page).limit.store(0, Ordering::Relaxed);
                (*page).used.store(u32::from(i == 0), Ordering::Relaxed);
                (*page).free = ptr::null_mut();
                (*page).next = ptr::null_mut();
                (*page).prev = ptr::null_mut();
            }
            (*seg).used_pages += pages;
            records.add(first)
        }
    }

    /// Whether the `extra` pages right after the `have`-page span starting
    /// at `head` are free (the span can grow over them), and if so how many
    /// of them are clean (new memory, for the caller to charge).
    ///
    /// # Safety
    /// The caller owns `seg`; `head` is a span's first page in it.
    pub(super) unsafe fn room_after_span(
        seg: *mut Segment,
        head: *mut Page,
        have: usize,
        extra: usize,
    ) -> Option<usize> {
        let first = Self::page_index(seg, head) + have;
        if first + extra > PAGES {
            return None;
        }
        let mut clean = 0;
        for i in 0..extra {
            // SAFETY: the caller's contract; `first + i < PAGES`, a record
            // of this segment.
            let page = unsafe { head.add(have + i) };
            // SAFETY: owner-only fields.
            unsafe {
                if (*page).in_use {
                    return None;
                }
                clean += usize::from(!(*page).dirty);
            }
        }
        Some(clean)
    }

    /// Grows the `have`-page span starting at `head` over the `extra` free
    /// pages after it ([`room_after_span`](Self::room_after_span) said yes).
    ///
    /// # Safety
    /// The caller owns `seg`; those pages are free.
    pub(super) unsafe fn extend_span(seg: *mut Segment, head: *mut Page, have: usize, extra: usize) {
        let first = Self::page_index(seg, head);
        // SAFETY: the caller's contract: `claim_span` initialises the new
        // pages as a span of their own; they then join this one as tails.
        unsafe {
            let added = Self::claim_span(seg, first + have, extra);
            (*added).class.store(SPAN_TAIL, Ordering::Relaxed);
            (*added).used.store(0, Ordering::Relaxed);
            (*head).magic.store((have + extra) as u64, Ordering::Relaxed);
        }
    }

    /// The pages of the medium block whose span starts at `head`.
    ///
    /// # Safety
    /// `head` is a page record of a live small segment (only atomics read).
    pub(super) unsafe fn span_pages(head: *mut Page) -> usize {
        // SAFETY: the caller's contract.
        unsafe { (*head).magic.load(Ordering::Relaxed) as usize }
    }

    /// Whether `ptr` starts the medium block whose span starts at `page`.
    ///
    /// # Safety
    /// `page` is a page record of the live small segment `seg` (only
    /// atomics read).
    pub(super) unsafe fn starts_span(seg: *mut Segment, page: *mut Page, ptr: *mut u8) -> bool {
        // SAFETY: the caller's contract.
        let class = unsafe { (*page).class.load(Ordering::Relaxed) };
        class == SPAN_HEAD && ptr.addr() == Self::page_area(seg, Self::page_index(seg, page)).addr()
    }

    /// Gives the pages of the medium block whose span starts at `head` back
    /// to the segment; returns whether the segment is now empty.
    ///
    /// # Safety
    /// The caller owns `seg`; the block is not live any more.
    pub(super) unsafe fn release_span(seg: *mut Segment, head: *mut Page) -> bool {
        // SAFETY: the caller's contract: owner-only fields of the span's
        // pages, all in this segment.
        unsafe {
            let pages = Self::span_pages(head);
            for i in 0..pages {
                let page = head.add(i);
                (*page).in_use = false;
                (*page).class.store(0, Ordering::Relaxed);
                (*page).magic.store(0, Ordering::Relaxed);
                (*page).used.store(0, Ordering::Relaxed);
                (*page).thread_free.store(ptr::null_mut(), Ordering::Relaxed);
            }
            (*seg).used_pages -= pages;
            (*seg).free_dirty += pages;
            (*seg).used_pages == 0
        }
    }

    /// A free, by a thread that does not own the segment, of the pointer
    /// `ptr` in a page whose class is not a small one: the start of a live
    /// medium block is parked in its first page's `thread_free` for the
    /// owner to take back (the owner looks when it next allocates a medium
    /// block, or gives up or adopts the segment); a second free of it, or
    /// any other pointer, is reported and left alone.
    ///
    /// # Safety
    /// `page` is the record of the page holding `ptr` in the live small
    /// segment `seg`.
    pub(super) unsafe fn free_remote_span(seg: *mut Segment, page: *mut Page, ptr: *mut u8) {
        // SAFETY: the caller's contract; only atomics are touched.
        unsafe {
            if !Self::starts_span(seg, page, ptr) {
                return guard::report(Misuse::InvalidPointer, ptr.addr());
            }
            // Read while the block is live: once parked, its owner may give
            // the pages back at any moment.
            let pages = Self::span_pages(page);
            // The hint goes up before the park, because the park is the last
            // touch of the segment: once the block is parked, its owner may
            // take it, find the segment empty and unmap it (an exiting owner
            // scans every span, hint or not), and a later write here would
            // land in unmapped memory or in the next mapping at this address.
            // An owner that takes the hint between the two finds the block
            // at the next park in this segment or when it gives the segment
            // up; a double free below leaves a stale count, one extra scan.
            (*seg).parked.fetch_add(1, Ordering::Release);
            let parked =
                (*page).thread_free.compare_exchange(ptr::null_mut(), ptr.cast(), Ordering::Release, Ordering::Relaxed);
            if parked.is_err() {
                return guard::report(Misuse::DoubleFree, ptr.addr());
            }
            // Out of the stats at once, as a local free would be (globals
            // only: the segment is not touched again).
            Self::span_uncounted(pages);
        }
    }

    /// Takes a freed medium block of `pages` pages out of the stats.
    pub(super) fn span_uncounted(pages: usize) {
        counters::sub(&LARGE_LIVE, 1);
        counters::sub(&LARGE_BYTES, pages * PAGE_SIZE);
    }

    /// Whether any medium block was parked in `seg` since the last call
    /// (resetting the hint). The count goes up just before a park (see
    /// `free_remote_span`): a block parked after the reset whose count came
    /// before it is found at the next park or when the segment is given up;
    /// a count without a park (a reported double free) costs one scan.
    ///
    /// # Safety
    /// The caller owns the live small segment `seg`.
    pub(super) unsafe fn take_parked_hint(seg: *mut Segment) -> bool {
        // SAFETY: the caller's contract; the field is atomic.
        unsafe { (*seg).parked.swap(0, Ordering::Acquire) != 0 }
    }

    /// Whether the medium block whose span starts at `head` was freed by
    /// another thread and waits for its owner (taking it: the caller then
    /// releases the span).
    ///
    /// # Safety
    /// The caller owns the segment of `head`, a span's first page.
    pub(super) unsafe fn take_parked(head: *mut Page) -> bool {
        // SAFETY: the caller's contract; `thread_free` is atomic.
        unsafe { !(*head).thread_free.swap(ptr::null_mut(), Ordering::Acquire).is_null() }
    }

    /// Whether a medium block waits in `head`'s `thread_free` (a free by
    /// another thread), without taking it.
    ///
    /// # Safety
    /// `head` is a page record of a live small segment.
    pub(super) unsafe fn span_parked(head: *mut Page) -> bool {
        // SAFETY: the caller's contract; `thread_free` is atomic.
        unsafe { !(*head).thread_free.load(Ordering::Acquire).is_null() }
    }

    /// The memory of the page whose record is `page`.
    pub(super) fn page_start(seg: *mut Segment, page: *mut Page) -> *mut u8 {
        Self::page_area(seg, Self::page_index(seg, page))
    }

    /// Carves more of `page`'s memory into its free list: up to one OS
    /// page's worth of blocks (at least one), so memory is touched as it is
    /// needed. Each new block gets its encoded link and the free mark, like
    /// a freed one. Returns false if the page is fully carved.
    ///
    /// # Safety
    /// The caller owns the page, a page in use of the live segment `seg`.
    pub(super) unsafe fn carve(seg: *mut Segment, page: *mut Page) -> bool {
        // SAFETY: the caller owns the segment and `page` is one of its pages
        // in use: its fields are the owner's (atomics, or plain owner-only).
        let (class, start, next) = unsafe {
            ((*page).class.load(Ordering::Relaxed), (*page).carved_end.load(Ordering::Relaxed), (*page).free)
        };
        let size = class_size(class as usize);
        let start = start as usize;
        // Not over a secure page's guard (see `secure.rs`).
        let end = (PAGE_SIZE - secure::page_guard()) / size * size;
        if start == end {
            return false;
        }
        let stop = (start + (4096 / size).max(1) * size).min(end);
        // SAFETY: as above.
        let key = unsafe { Self::key(page) };
        let area = Self::page_area(seg, Self::page_index(seg, page));
        // Pushes the block `index` blocks into the batch onto the list.
        let mut next = next;
        let mut push = |index: usize| {
            let block = area.wrapping_add(start + index * size).cast::<Block>();
            // SAFETY: `start + index * size` is below `stop <= end`, inside
            // the page's memory (mapped, the owner's), and no block there
            // was ever handed out: the words are ours to write.
            unsafe {
                (*block).link = guard::encode(next.addr(), key, block.addr());
                if guard::ON {
                    (*block).mark = guard::mark(block.addr());
                }
            }
            next = block;
        };
        // In address order, or in secure mode in a random order.
        let count = (stop - start) / size;
        if secure::on() && count > 1 {
            let mut order = [0u16; 4096 / 16];
            secure::shuffle(&mut order, count);
            order[..count].iter().rev().for_each(|&index| push(index as usize));
        } else {
            (0..count).rev().for_each(push);
        }
        // SAFETY: the owner's fields, as above.
        unsafe {
            (*page).free = next;
            (*page).carved_end.store(stop as u32, Ordering::Relaxed);
            let magic = (*page).magic.load(Ordering::Relaxed);
            (*page).limit.store(guard::carved_limit(stop / size, size, magic), Ordering::Relaxed);
        }
        true
    }

    /// The block after `block` in a free list of `page`, checked: `Ok(None)`
    /// at the end, `Err` if the link leaves the page's carved blocks.
    ///
    /// # Safety
    /// `block` is a free block of the page (in one of its lists), and the
    /// caller may read it.
    #[inline(always)]
    pub(super) unsafe fn next_free(page: *mut Page, block: *mut Block) -> Result<Option<*mut Block>, ()> {
        // SAFETY: the caller's contract; the page's fields are atomics.
        unsafe {
            let key = Self::key(page);
            let next = guard::decode((*block).link, key, block.addr());
            if guard::ON && !guard::link_ok(next, block.addr(), PAGE_MASK) {
                return Err(());
            }
            Ok((next != 0).then(|| block.with_addr(next)))
        }
    }

    /// `page`'s link key, or 0 where the checks are compiled out (so those
    /// builds load nothing the checks alone need).
    ///
    /// # Safety
    /// `page` is a page record of a live small segment.
    #[inline(always)]
    pub(super) unsafe fn key(page: *mut Page) -> usize {
        // SAFETY: the caller's contract; `key` is an atomic.
        if guard::ON { unsafe { (*page).key.load(Ordering::Relaxed) } } else { 0 }
    }

    /// Whether `ptr` may be a block of `page` handed out: `ptr` starts a
    /// carved block (see `guard.rs`; a page not in use has none carved).
    ///
    /// # Safety
    /// `page` is a page record of a live small segment holding `ptr`.
    #[inline(always)]
    pub(super) unsafe fn starts_block(page: *mut Page, ptr: *mut u8) -> bool {
        if !guard::ON {
            // Still tell a page with carved blocks from a span or a free page.
            // SAFETY: as below.
            return unsafe { (*page).limit.load(Ordering::Relaxed) } != 0;
        }
        let offset = (ptr.addr() & PAGE_MASK) as u32;
        // SAFETY: the page's fields read here are atomics.
        unsafe {
            guard::carved_start(offset, (*page).magic.load(Ordering::Relaxed), (*page).limit.load(Ordering::Relaxed))
        }
    }

    /// Whether the free block `block` is in `page`'s free list. The owner's
    /// confirmation of a double free, after collecting remote frees.
    ///
    /// # Safety
    /// The caller owns the page.
    pub(super) unsafe fn in_free_list(page: *mut Page, block: *mut Block) -> bool {
        // SAFETY: the caller's contract.
        unsafe {
            let mut at = (*page).free;
            // A cycle (from earlier corruption) ends the walk: no list is
            // longer than the page's blocks.
            let mut steps = PAGE_SIZE / size_of::<Block>();
            while !at.is_null() && steps > 0 {
                if at == block {
                    return true;
                }
                match Self::next_free(page, at) {
                    Ok(next) => at = next.unwrap_or(ptr::null_mut()),
                    Err(()) => return false,
                }
                steps -= 1;
            }
            false
        }
    }

    /// Moves the blocks other threads freed into `free`; returns how many
    /// (the caller counts them in its stats). When `free` is empty the
    /// remote list becomes it as it is (its links are encoded alike, and
    /// each is checked when popped); else it is walked onto `free`, and a
    /// corrupt link ends it (the rest is dropped, after the report).
    ///
    /// # Safety
    /// The caller owns the page, a page in use serving a class.
    pub(super) unsafe fn collect(page: *mut Page) -> u32 {
        // SAFETY: the caller's contract: a page record of a live segment;
        // `thread_free` is atomic, readable by any thread.
        let remote = unsafe { &(*page).thread_free };
        // A plain load first: most pages have no remote frees, and a swap is
        // a locked write that takes the line from other cores.
        if remote.load(Ordering::Relaxed).is_null() {
            return 0;
        }
        // Acquire: the pushers' writes of the blocks' links are visible.
        let (mut list, count) = remote_list(remote.swap(ptr::null_mut(), Ordering::Acquire));
        // At most the page's blocks: fits.
        let mut n = count as u32;
        // SAFETY: the caller owns the page: `free` is its owner's field.
        if unsafe { (*page).free.is_null() } {
            // Adopted whole: its links were encoded for this page by the
            // pushers and are checked when popped.
            // SAFETY: as above.
            unsafe { (*page).free = list };
        } else {
            // SAFETY: as above.
            let key = unsafe { Self::key(page) };
            while !list.is_null() {
                // SAFETY: `list` is a block of this page that a remote free
                // pushed (the swap took the list, so no other thread writes
                // it); a link that does not decode into the page ends the walk.
                let next = match unsafe { Self::next_free(page, list) } {
                    Ok(next) => next.unwrap_or(ptr::null_mut()),
                    Err(()) => {
                        guard::report(Misuse::CorruptFreeList, list.addr());
                        ptr::null_mut()
                    }
                };
                // SAFETY: the block is free and ours (as above); `free` is
                // the owner's field.
                unsafe {
                    (*list).link = guard::encode((*page).free.addr(), key, list.addr());
                    (*page).free = list;
                }
                list = next;
            }
        }
        // SAFETY: `used` is atomic; only the owner writes it.
        let used = unsafe { (*page).used.load(Ordering::Relaxed) };
        if n > used {
            // More blocks came back than were out: a double free the marks
            // did not catch. Keep the count sane.
            // SAFETY: the owner's field, as above.
            guard::report(Misuse::DoubleFree, unsafe { (*page).free.addr() });
            n = used;
        }
        // SAFETY: as above.
        unsafe { (*page).used.store(used - n, Ordering::Relaxed) };
        n
    }

    /// Pushes a block freed by a thread that does not own its segment,
    /// after the checks a non-owner can make (block start, the mark, a live
    /// count); a misuse is reported and the block left alone.
    ///
    /// # Safety
    /// `block` lies in `page`, a page record of a live small segment.
    #[inline]
    pub(super) unsafe fn free_remote(page: *mut Page, block: *mut Block) {
        // SAFETY: the page's fields read here are atomics, and the segment
        // stays mapped while the block counts as used.
        unsafe {
            if !Self::starts_block(page, block.cast()) {
                return guard::report(Misuse::InvalidPointer, block.addr());
            }
            let marked = guard::carries_mark(block.cast(), guard::mark(block.addr()));
            if guard::ON && (marked || (*page).used.load(Ordering::Relaxed) == 0) {
                return guard::report(Misuse::DoubleFree, block.addr());
            }
            if guard::ON {
                (*block).mark = guard::mark(block.addr());
            }
            let key = Self::key(page);
            let list = &(*page).thread_free;
            let mut tagged = list.load(Ordering::Relaxed);
            loop {
                let (head, count) = remote_list(tagged);
                // The block is ours to write until the push publishes it.
                (*block).link = guard::encode(head.addr(), key, block.addr());
                let new = remote_tagged(block, count + 1);
                match list.compare_exchange_weak(tagged, new, Ordering::Release, Ordering::Relaxed) {
                    Ok(_) => return,
                    Err(now) => tagged = now,
                }
            }
        }
    }
}

/// Every small segment, linked through `Segment::all_next`/`all_prev`.
struct Segments(*mut Segment);
// SAFETY: the segments are plain memory; the links are only touched under
// the lock.
unsafe impl Send for Segments {}
static SEGMENTS: Mutex<Segments> = Mutex::new(Segments(ptr::null_mut()));

fn segments() -> MutexGuard<'static, Segments> {
    SEGMENTS.lock().unwrap_or_else(PoisonError::into_inner)
}

static FORK: ForkSlot<MutexGuard<'static, Segments>> = ForkSlot::new();

/// Holds the segment list's lock across a `fork()` (the innermost of the
/// heap's locks; see `fork.rs`).
pub(super) fn fork_hold() {
    FORK.hold(segments());
}

pub(super) fn fork_release() {
    FORK.release();
}

/// Runs `f` on every small segment, under the list's lock: a listed segment
/// stays mapped until it is unlisted, which waits for the lock, so `f` may
/// read its atomic fields.
pub(super) fn for_each_small(mut f: impl FnMut(*mut Segment)) {
    let all = segments();
    let mut seg = all.0;
    while !seg.is_null() {
        f(seg);
        // SAFETY: a listed segment; the link changes only under the lock.
        seg = unsafe { (*seg).all_next };
    }
}

/// Lists a new small segment.
///
/// # Safety
/// `seg` is a small segment not listed yet.
unsafe fn list_segment(seg: *mut Segment) {
    let mut all = segments();
    // SAFETY: the links are ours under the lock.
    unsafe {
        (*seg).all_prev = ptr::null_mut();
        (*seg).all_next = all.0;
        if !all.0.is_null() {
            (*all.0).all_prev = seg;
        }
    }
    all.0 = seg;
}

/// Takes a small segment off the list, before it is unmapped.
///
/// # Safety
/// `seg` is a listed small segment.
unsafe fn unlist_segment(seg: *mut Segment) {
    let mut all = segments();
    // SAFETY: the links are ours under the lock.
    unsafe {
        let (prev, next) = ((*seg).all_prev, (*seg).all_next);
        if prev.is_null() {
            all.0 = next;
        } else {
            (*prev).all_next = next;
        }
        if !next.is_null() {
            (*next).all_prev = prev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The invariant `link_ok` leans on (guard.rs): once a page is released,
    /// none of the blocks it held still carries a free mark, so a bent link
    /// into the page's next use cannot find a stale one.
    #[test]
    fn releasing_a_page_wipes_its_free_marks() {
        let owner = ptr::dangling_mut::<Owner>();
        let seg = Segment::new_small(owner).expect("a segment").as_ptr();
        // SAFETY: a fresh segment only this test uses, with no block live.
        unsafe {
            let class = crate::classes::class_of_size(48);
            let (page, clean) = Segment::take_page(seg, class).expect("a free page");
            // Charged as the heap charges a page it takes (`take_charged`):
            // giving the segment back below counts the page out of the
            // process's resident bytes, which the other tests of this
            // process (allocating through `Heap`) read.
            if clean {
                limit::charge(PAGE_SIZE).expect("no memory limit in the tests");
            }
            while Segment::carve(seg, page) {}
            let end = (*page).carved_end.load(Ordering::Relaxed) as usize;
            let area = Segment::page_area(seg, Segment::page_index(seg, page));
            let marked = |at: usize| {
                let block = area.wrapping_add(at).cast::<Block>();
                (*block).mark == guard::mark(block.addr())
            };
            if guard::ON {
                assert!((0..end).step_by(48).all(marked), "carved blocks are free and marked");
            }
            assert!(Segment::release_page(seg, page), "the segment's only page");
            assert!((0..end).step_by(48).all(|at| !marked(at)), "a mark outlived the page's use");
            Segment::free(seg);
        }
    }
}
