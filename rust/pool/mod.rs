//! The pool resources: fixed-size blocks in size classes, reused after free.
//!
//! - [`UnsyncPool`] (`unsync`): one thread at a time.
//! - [`SyncPool`] (`sync`, with its per-thread caches in `caches`): threads share it.
//! - `chunks`: what both do with upstream memory (chunks, oversize blocks).
//! - `guard`: the sealed free-list format both use, and its misuse checks.
//! - `classes`: the size-class table shared by the pools.
//! - [`PoolOptions`]: std's `pool_options`, normalised.

mod caches;
mod chunks;
mod guard;
use crate::classes;
mod sync;
mod unsync;

use core::alloc::Layout;

use crate::resource::MemoryResource;

pub(crate) use caches::{HINTS, foreign_layout};
pub(crate) use guard::Keys;
pub use sync::SyncPool;
pub use unsync::UnsyncPool;
pub(crate) use unsync::{LISTS_KEYS_OFFSET, LISTS_SAMPLE_LEFT_OFFSET};

/// How many size classes the pools have (the length of
/// [`UnsyncPool::free_list_heads`]); `<memres/memres.hpp>` checks it.
pub const POOL_CLASS_COUNT: usize = classes::CLASS_COUNT;

/// The two knobs of `std::pmr::pool_options`, with the same meaning.
///
/// Zero means "the implementation's default", and values past the limits
/// are clamped; [`normalized`](Self::normalized) (and every pool's
/// `options()`) returns the values in force.
///
/// | field | default | range |
/// |---|---|---|
/// | `max_blocks_per_chunk` | 1024 | 1..=65536 |
/// | `largest_required_pool_block` | 4096 | 8..=1 MiB, rounded up to a class size |
///
/// ```
/// let options = memres::PoolOptions { max_blocks_per_chunk: 0, largest_required_pool_block: 100 }.normalized();
/// assert_eq!(options.max_blocks_per_chunk, 1024);
/// assert_eq!(options.largest_required_pool_block, 104); // a class size
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolOptions {
    /// The most blocks a chunk taken from upstream holds; chunks grow
    /// geometrically up to it.
    pub max_blocks_per_chunk: usize,
    /// Requests larger than this go straight to upstream.
    pub largest_required_pool_block: usize,
}

impl PoolOptions {
    const DEFAULT_MAX_BLOCKS: usize = 1024;
    const LIMIT_MAX_BLOCKS: usize = 1 << 16;
    const DEFAULT_LARGEST: usize = 4096;

    /// The options a pool actually uses for these.
    pub fn normalized(self) -> PoolOptions {
        let max_blocks = match self.max_blocks_per_chunk {
            0 => Self::DEFAULT_MAX_BLOCKS,
            n => n.min(Self::LIMIT_MAX_BLOCKS),
        };
        let largest = match self.largest_required_pool_block {
            0 => Self::DEFAULT_LARGEST,
            n => n.clamp(8, classes::MAX_CLASS_SIZE),
        };
        PoolOptions {
            max_blocks_per_chunk: max_blocks,
            largest_required_pool_block: classes::class_size(classes::class_of_size(largest)),
        }
    }
}

/// What a pool holds, from [`UnsyncPool::stats`] and
/// [`SyncPool::stats`](crate::SyncPool::stats).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PoolStats {
    /// Bytes held from upstream: every class's chunks and the oversize blocks.
    pub bytes_held: usize,
    /// Calls to upstream `allocate` that succeeded, over the pool's life.
    pub upstream_allocs: u64,
    /// Calls to upstream `deallocate`, over the pool's life.
    pub upstream_frees: u64,
    /// Each size class that ever held a chunk, smallest first (as
    /// `class_stats` returns them).
    pub classes: Vec<ClassStats>,
}

/// What one size class of a pool holds, from [`UnsyncPool::class_stats`] and
/// [`SyncPool::class_stats`](crate::SyncPool::class_stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ClassStats {
    /// The class's block size in bytes.
    pub block_size: usize,
    /// Blocks handed out and not yet freed.
    pub blocks_live: usize,
    /// Blocks ready to be handed out (freed, or never used).
    pub blocks_free: usize,
    /// Chunks held from upstream for this class.
    pub chunks: usize,
    /// Bytes of those chunks.
    pub bytes_held: usize,
}

/// The layout the ledger records for a request: zero-size requests get real,
/// distinct blocks here, so they count as one byte (the ledger ignores
/// zero-size blocks, which in an arena share addresses).
#[inline(always)]
fn as_served(layout: Layout) -> Layout {
    Layout::from_size_align(layout.size().max(1), layout.align()).unwrap_or(layout)
}

/// Does `new` fall in the same class as `old` (so that `grow`/`shrink` can
/// keep the block)?
fn same_class(old: Layout, new: Layout, largest: usize) -> bool {
    matches!((classes::class_of(old, largest), classes::class_of(new, largest)), (Some(a), Some(b)) if a == b)
}

/// `grow`/`shrink` across classes: allocates a block for `new`, copies the
/// bytes both layouts hold, frees the old block.
///
/// # Safety
/// `ptr` is live in `pool` with layout `old`.
unsafe fn move_block(
    pool: &impl MemoryResource,
    ptr: core::ptr::NonNull<u8>,
    old: Layout,
    new: Layout,
) -> Result<core::ptr::NonNull<[u8]>, allocator_api2::alloc::AllocError> {
    let block = pool.allocate(new)?;
    // SAFETY: distinct live blocks, each holding at least the copied bytes;
    // the old one is freed with the layout it was allocated with.
    unsafe {
        core::ptr::copy_nonoverlapping(ptr.as_ptr(), block.cast::<u8>().as_ptr(), old.size().min(new.size()));
        pool.deallocate(ptr, old);
    }
    Ok(block)
}
