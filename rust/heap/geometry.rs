//! The heap's geometry: the sizes and shifts every heap module shares.
//! A leaf: it names no other heap module.

use crate::classes::class_of_size;

pub(super) const SEGMENT_SHIFT: u32 = 22;
/// Size and alignment of a small segment (4 MiB).
pub(super) const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
pub(super) const PAGE_SHIFT: u32 = 16;
/// Size of a page (64 KiB): every block of a page has the page's class.
pub(super) const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// A page's offset bits.
pub(super) const PAGE_MASK: usize = PAGE_SIZE - 1;
/// Pages per small segment, the header's included.
pub(super) const PAGES: usize = SEGMENT_SIZE / PAGE_SIZE;
/// The largest block served from pages (32 KiB: at least two per page).
pub(super) const SMALL_MAX: usize = 32 << 10;
/// Size classes served from pages.
pub(super) const SMALL_CLASSES: usize = class_of_size(SMALL_MAX) + 1;
/// The smallest class the heap uses: 16 bytes, room for a free block's link
/// and its double-free mark (see `guard.rs`); 8-byte requests take it too
/// (`classes::class_of` never answers a smaller class).
pub(super) const MIN_CLASS: usize = crate::classes::MIN_CLASS;
/// The most pages one medium block spans: blocks above [`SMALL_MAX`] and up
/// to [`MEDIUM_MAX`] (aligned to at most a page) take whole consecutive
/// pages of a small segment; larger ones get a mapping each.
pub(super) const SPAN_MAX_PAGES: usize = 8;
/// The largest medium block (512 KiB).
pub(super) const MEDIUM_MAX: usize = SPAN_MAX_PAGES * PAGE_SIZE;
