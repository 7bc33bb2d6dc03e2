//! What code in another language must agree on to run memres's fast paths
//! inline: [`ForeignLayout`].
//!
//! `<memres/memres.hpp>` bumps a [`Monotonic`](crate::Monotonic)'s cursor,
//! pops and pushes a pool's free lists and a thread's synchronized-pool
//! cache, and computes size classes, all without calling Rust. Each of those
//! depends on a fact of this crate (a `#[repr(C)]` layout, the class table,
//! a cargo feature). The header keeps its own copy, for speed; the bridge
//! compares every copy with the facts here once, at start-up, and stops the
//! process with a message naming the first fact that differs. Nothing here
//! is on a fast path.

use core::alloc::Layout;
use core::mem::{offset_of, size_of};

use crate::classes;
use crate::monotonic::BumpState;

/// The layouts and build facts a foreign fast path mirrors, from
/// [`ForeignLayout::get`]. Offsets and sizes are in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForeignLayout {
    /// `size_of::<BumpState>()`.
    pub bump_size: usize,
    /// Offset of [`BumpState`]'s cursor.
    pub bump_cursor: usize,
    /// Offset of [`BumpState`]'s end.
    pub bump_end: usize,
    /// Size of the synchronized pools' per-thread hint (key, cache).
    pub hint_size: usize,
    /// Offset of the hint's pool key.
    pub hint_key: usize,
    /// Offset of the hint's cache pointer.
    pub hint_cache: usize,
    /// How many hints a thread has, in a row from the hint slot (the pools
    /// it used last, newest first).
    pub hint_count: usize,
    /// Size of a thread's cache record for one synchronized pool.
    pub cache_size: usize,
    /// Offset of the cache record's free-list heads (one pointer a class).
    pub cache_heads: usize,
    /// Offset of the cache record's room counts (one `u32` a class).
    pub cache_room: usize,
    /// Offset of the cache record's list keys.
    pub cache_keys: usize,
    /// Offset of the cache record's count to the profiler's next sample
    /// (an `isize`, see `memres::profile`).
    pub cache_sample_left: usize,
    /// Offset of an unsynchronized pool's list keys from its first
    /// free-list head (`UnsyncPool::free_list_heads`).
    pub lists_keys: usize,
    /// Offset of an unsynchronized pool's count to the profiler's next
    /// sample (an `isize`) from its first free-list head.
    pub lists_sample_left: usize,
    /// Size of the pools' list keys.
    pub keys_size: usize,
    /// Offset of the link key in the list keys.
    pub key_link: usize,
    /// Offset of the seal key in the list keys.
    pub key_seal: usize,
    /// Offset of the `checks` word in the list keys (1: links are encoded
    /// and sealed; 0: `unchecked-pools`, plain links).
    pub key_checks: usize,
    /// How many size classes the pools have.
    pub pool_classes: usize,
    /// The largest alignment a pool class serves.
    pub pool_max_class_align: usize,
    /// Is the `debug-checks` feature on? (Then every fast path must defer to
    /// the core, which records and checks each block.)
    pub debug_checks: bool,
    /// Is the `asan` feature on? (Then the core poisons memory it holds, and
    /// every fast path must unpoison the blocks it hands out.)
    pub asan: bool,
}

impl ForeignLayout {
    /// The facts of this build.
    pub fn get() -> ForeignLayout {
        let [hint_size, hint_key, hint_cache, cache_size, cache_heads, cache_room, cache_keys, cache_sample_left] =
            crate::pool::foreign_layout();
        let [keys_size, key_link, key_seal, key_checks] = crate::pool::Keys::layout();
        ForeignLayout {
            bump_size: size_of::<BumpState>(),
            bump_cursor: offset_of!(BumpState, cursor),
            bump_end: offset_of!(BumpState, end),
            hint_size,
            hint_key,
            hint_cache,
            hint_count: crate::pool::HINTS,
            cache_size,
            cache_heads,
            cache_room,
            cache_keys,
            cache_sample_left,
            lists_keys: crate::pool::LISTS_KEYS_OFFSET,
            lists_sample_left: crate::pool::LISTS_SAMPLE_LEFT_OFFSET,
            keys_size,
            key_link,
            key_seal,
            key_checks,
            pool_classes: classes::CLASS_COUNT,
            pool_max_class_align: classes::MAX_CLASS_ALIGN,
            debug_checks: cfg!(feature = "debug-checks"),
            asan: cfg!(feature = "asan"),
        }
    }

    /// The pool class that serves `size` bytes at `align` in a pool whose
    /// largest pooled block is `largest`, or `None` where the pool goes to
    /// upstream (too large, too aligned, or an alignment that is not a power
    /// of two). The rule the header's `pool_class_of` must follow.
    pub fn pool_class_of(size: usize, align: usize, largest: usize) -> Option<usize> {
        classes::class_of(Layout::from_size_align(size, align).ok()?, largest)
    }

    /// The block size of pool class `index` (`< pool_classes`).
    pub fn pool_class_size(index: usize) -> usize {
        classes::class_size(index)
    }
}
