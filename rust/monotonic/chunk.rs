//! Chunks: the blocks a [`Monotonic`](super::Monotonic) gets from upstream.
//!
//! ```text
//!  base                                  footer (the chunk's handle)
//!  |<------------- data ---------------->|<- ChunkFooter ->|
//!  [ allocations bump upward ......      ][ base, layout, next ]
//! ```
//!
//! The footer sits at the end so the data starts at the block's own
//! alignment: an over-aligned request in a fresh chunk wastes nothing.
//!
//! With `debug-checks` (and an OS that can protect pages), a chunk is whole
//! pages and an inaccessible guard page sits between the data and the footer,
//! so a write past the last block faults instead of corrupting the footer:
//!
//! ```text
//!  [ data (whole pages) ][ guard page: no access ][ footer ]
//! ```
//!
//! Invariants: `base <= data_end <= footer`, with
//! `footer - data_end == guard_size()`; `layout` is exactly what upstream was
//! asked for; a footer is reachable from exactly one list.

use core::alloc::Layout;
use core::cell::Cell;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use crate::os;

/// The alignment every chunk has at least (so small data needs no padding).
pub(super) const CHUNK_ALIGN: usize = 16;

/// Bytes a chunk spends on its footer.
pub(super) const FOOTER_SIZE: usize = size_of::<ChunkFooter>();

const _: () = assert!(FOOTER_SIZE % align_of::<ChunkFooter>() == 0);

/// Bytes of guard page between a chunk's data and its footer (zero unless
/// `debug-checks` is on and the OS can protect pages).
pub(super) fn guard_size() -> usize {
    if cfg!(feature = "debug-checks") && os::CAN_PROTECT { os::page_size() } else { 0 }
}
const _: () = assert!(CHUNK_ALIGN >= align_of::<ChunkFooter>());

/// Metadata at the end of each chunk.
#[repr(C)]
pub(super) struct ChunkFooter {
    /// First byte of the chunk: what upstream returned.
    base: NonNull<u8>,
    /// The layout upstream was asked for; needed to give the chunk back.
    layout: Layout,
    /// The next chunk in whichever list holds this one.
    next: Cell<Option<NonNull<ChunkFooter>>>,
    /// When the chunk last joined a `used` list (a per-arena counter), so
    /// that a checkpoint can tell the list it saw from one rebuilt since.
    stamp: Cell<u64>,
}

/// A handle to a chunk: a pointer to its footer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Chunk(NonNull<ChunkFooter>);

impl Chunk {
    /// The layout to ask upstream for, for a chunk with at least `data_size`
    /// bytes of data aligned to `align` (the data is rounded up so that the
    /// footer after it is aligned). `None` if the sizes overflow.
    pub(super) fn layout_for(data_size: usize, align: usize) -> Option<Layout> {
        let guard = guard_size();
        // With a guard page, data and guard are whole, page-aligned pages.
        let (align, granule) = match guard {
            0 => (align.max(CHUNK_ALIGN), align_of::<ChunkFooter>()),
            page => (align.max(page), page),
        };
        let data = data_size.checked_add(granule - 1)? & !(granule - 1);
        let data = data.max(granule);
        Layout::from_size_align(data.checked_add(guard)?.checked_add(FOOTER_SIZE)?, align).ok()
    }

    /// Writes a footer at the end of a fresh block.
    ///
    /// # Safety
    /// `base` must be valid for writes of `layout.size()` bytes, aligned to
    /// `layout.align()`, and `layout` must come from [`Chunk::layout_for`].
    pub(super) unsafe fn init(base: NonNull<u8>, layout: Layout) -> Chunk {
        // SAFETY: `layout_for` keeps `size >= FOOTER_SIZE` and puts the footer
        // at a multiple of its alignment from an aligned base, inside the block.
        let chunk = unsafe {
            let footer = base.add(layout.size() - FOOTER_SIZE).cast::<ChunkFooter>();
            footer.write(ChunkFooter { base, layout, next: Cell::new(None), stamp: Cell::new(0) });
            Chunk(footer)
        };
        if guard_size() > 0 {
            // SAFETY: `layout_for` made the guard whole pages inside this
            // block (page-aligned base, data a page multiple); nothing
            // touches it until `before_free` opens it again.
            unsafe { os::protect(chunk.data_end(), guard_size(), false) };
        }
        chunk
    }

    /// Undoes what `init` did to the pages, before the block goes back.
    pub(super) fn before_free(&self) {
        if guard_size() > 0 {
            // SAFETY: the guard pages of this chunk, made inaccessible by `init`.
            unsafe { os::protect(self.data_end(), guard_size(), true) };
        }
    }

    fn footer(&self) -> &ChunkFooter {
        // SAFETY: a `Chunk` is only made by `init` and lives until its arena
        // frees it; nothing else writes the footer bytes (allocations end at
        // `data_end`).
        unsafe { self.0.as_ref() }
    }

    /// First byte of the data region.
    pub(super) fn base(&self) -> *mut u8 {
        self.footer().base.as_ptr()
    }

    /// One past the last byte of the data region.
    pub(super) fn data_end(&self) -> *mut u8 {
        // Derived from `base` so the pointer carries the block's provenance.
        self.base().wrapping_add(self.capacity())
    }

    /// Bytes in the data region.
    pub(super) fn capacity(&self) -> usize {
        self.footer().layout.size() - FOOTER_SIZE - guard_size()
    }

    /// When the chunk last joined a `used` list.
    pub(super) fn stamp(&self) -> u64 {
        self.footer().stamp.get()
    }

    pub(super) fn set_stamp(&self, stamp: u64) {
        self.footer().stamp.set(stamp);
    }

    /// What upstream was asked for.
    pub(super) fn layout(&self) -> Layout {
        self.footer().layout
    }
}

/// A singly linked list of chunks threaded through their footers.
#[derive(Default)]
pub(super) struct ChunkList {
    head: Cell<Option<Chunk>>,
}

impl ChunkList {
    pub(super) fn head(&self) -> Option<Chunk> {
        self.head.get()
    }

    pub(super) fn push(&self, chunk: Chunk) {
        chunk.footer().next.set(self.head.get().map(|c| c.0));
        self.head.set(Some(chunk));
    }

    pub(super) fn pop(&self) -> Option<Chunk> {
        let chunk = self.head.get()?;
        self.head.set(chunk.footer().next.get().map(Chunk));
        Some(chunk)
    }

    /// Removes and returns the first chunk for which `fits` holds.
    pub(super) fn take_first(&self, mut fits: impl FnMut(Chunk) -> bool) -> Option<Chunk> {
        let mut prev: Option<Chunk> = None;
        let mut at = self.head.get();
        while let Some(chunk) = at {
            let next = chunk.footer().next.get().map(Chunk);
            if fits(chunk) {
                match prev {
                    None => self.head.set(next),
                    Some(p) => p.footer().next.set(next.map(|c| c.0)),
                }
                return Some(chunk);
            }
            prev = Some(chunk);
            at = next;
        }
        None
    }

    /// Inserts `chunk` before the first chunk with less capacity, so a list
    /// built only by this call is ordered largest first (ties: oldest first).
    pub(super) fn insert_by_capacity(&self, chunk: Chunk) {
        let mut prev: Option<Chunk> = None;
        let mut at = self.head.get();
        while let Some(c) = at.filter(|c| c.capacity() >= chunk.capacity()) {
            prev = Some(c);
            at = c.footer().next.get().map(Chunk);
        }
        chunk.footer().next.set(at.map(|c| c.0));
        match prev {
            None => self.head.set(Some(chunk)),
            Some(p) => p.footer().next.set(Some(chunk.0)),
        }
    }

    pub(super) fn contains(&self, wanted: Chunk) -> bool {
        self.iter().any(|c| c == wanted)
    }

    /// Moves every chunk of `self` to the front of `other`, keeping their order.
    pub(super) fn prepend_to(&self, other: &ChunkList) {
        let Some(head) = self.head.take() else { return };
        let mut tail = head;
        while let Some(next) = tail.footer().next.get() {
            tail = Chunk(next);
        }
        tail.footer().next.set(other.head.get().map(|c| c.0));
        other.head.set(Some(head));
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = Chunk> + '_ {
        core::iter::successors(self.head.get(), |c| c.footer().next.get().map(Chunk))
    }
}
