//! Differential fuzzing of the pools against a model of live blocks, shared
//! by the `unsync_pool` and `sync_pool` targets.
//!
//! The bytes decode into operations on one pool: allocations across the
//! size classes and past `largest_required_pool_block` (oversize), frees in
//! any order, grow/shrink through the `Allocator` interface, `trim` and
//! `release` (and, for `SyncPool`, frees from a short-lived thread, whose
//! cache goes back to the pool when it exits). The model keeps each live block with its byte pattern and
//! checks: alignment, no overlap, full writability, contents kept across
//! grow/shrink and across every other operation (a freed block reused while
//! the model still holds it shows up as a changed pattern), and that
//! failures only come from sizes no memory can hold.
//!
//! The model's rules: `deallocate` frees a block; `grow`/`shrink` free the
//! old block and make a new one (possibly at the same address); `trim`
//! frees nothing live; `release` frees everything.
//!
//! Misuses too, under `OnMisuse::Report`: freeing a pooled block again, or
//! growing it, while it is still free (not handed out again, its chunk still
//! held). Each must be reported exactly once (`Heap::misuses`, the count
//! every resource shares) and change nothing the model sees.

use core::alloc::Layout;
use core::ptr::NonNull;

use arbitrary::Arbitrary;
use memres::{
    AllocError, Allocator, ClassStats, ForeignLayout, Global, Heap, MemoryResource, OnMisuse, PoolOptions, SyncPool,
    UnsyncPool,
};

/// Operations run per input, at most.
const MAX_OPS: usize = 1024;
/// Requests over this size fail: upstream refuses them as `malloc` would.
/// (ASan's allocator would abort on them instead.)
const LARGEST: usize = 1 << 40;

/// `Global`, refusing sizes no machine has.
pub struct Upstream;

// SAFETY: forwards to `Global`, which upholds the contract.
unsafe impl MemoryResource for Upstream {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() > LARGEST {
            return Err(AllocError);
        }
        MemoryResource::allocate(&Global, layout)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { MemoryResource::deallocate(&Global, ptr, layout) }
    }
}

#[derive(Arbitrary, Debug)]
enum Size {
    Tiny(u8),    // 0..=255: the finest classes
    Medium(u16), // up to 64 KiB: coarse classes, or oversize
    Huge(u8),    // near isize::MAX: must fail cleanly
}

impl Size {
    fn bytes(&self) -> usize {
        match *self {
            Size::Tiny(n) => n as usize,
            Size::Medium(n) => n as usize,
            Size::Huge(n) => isize::MAX as usize - (n as usize) * 4096 - 8191,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc {
        size: Size,
        align_log2: u8,
    },
    Dealloc {
        index: u16,
    },
    Grow {
        index: u16,
        extra: u16,
        align_log2: u8,
    },
    Shrink {
        index: u16,
        keep_permille: u16,
    },
    Trim,
    Release,
    /// Frees a block from a thread that then exits (a plain free on pools
    /// that cannot be shared).
    FreeElsewhere {
        index: u16,
    },
    /// Misuse: frees a block freed before and not handed out since.
    FreeAgain {
        index: u16,
    },
    /// Misuse: grows such a block.
    GrowFreed {
        index: u16,
    },
}

#[derive(Arbitrary, Debug)]
pub struct Input {
    max_blocks_per_chunk: u16,
    largest_required_pool_block: u16,
    ops: Vec<Op>,
}

struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u8,
}

struct Model {
    live: Vec<Block>,
    next_tag: u8,
    /// Pooled blocks freed once, still free.
    freed: Vec<(NonNull<u8>, Layout)>,
    largest: usize,
}

impl Model {
    fn add(&mut self, ptr: NonNull<u8>, layout: Layout) {
        let addr = ptr.as_ptr().addr();
        assert_eq!(addr % layout.align(), 0, "misaligned block for {layout:?}");
        for b in self.live.iter().filter(|b| b.layout.size() > 0) {
            let lo = b.ptr.as_ptr().addr();
            let hi = lo + b.layout.size();
            assert!(layout.size() == 0 || addr + layout.size() <= lo || hi <= addr, "blocks overlap");
        }
        // A block handed out again is no longer a freed one.
        self.freed.retain(|&(p, l)| {
            let lo = p.as_ptr().addr();
            addr + layout.size().max(1) <= lo || lo + l.size().max(1) <= addr
        });
        self.next_tag = self.next_tag.wrapping_add(1);
        // SAFETY: the pool promised `layout.size()` writable bytes.
        unsafe { ptr.as_ptr().write_bytes(self.next_tag, layout.size()) };
        self.live.push(Block { ptr, layout, tag: self.next_tag });
    }

    /// Remembers a freed block for the misuse operations, if a pool class
    /// served it (oversize blocks go back to upstream at once).
    fn freed(&mut self, b: &Block) {
        if ForeignLayout::pool_class_of(b.layout.size(), b.layout.align(), self.largest).is_some() {
            self.freed.push((b.ptr, b.layout));
        }
    }

    fn check(&self, b: &Block, len: usize) {
        // SAFETY: a live block, fully written when recorded.
        let bytes = unsafe { core::slice::from_raw_parts(b.ptr.as_ptr(), len) };
        assert!(bytes.iter().all(|&x| x == b.tag), "a live block's contents changed");
    }
}

fn layout(size: usize, align_log2: u8) -> Option<Layout> {
    Layout::from_size_align(size, 1 << (align_log2 % 14)).ok()
}

/// What the model needs of a pool.
pub trait Pool: MemoryResource + Sized {
    fn make(options: PoolOptions) -> Self;
    fn trim(&mut self) -> usize;
    fn release(&mut self);
    fn bytes_held(&self) -> usize;
    fn stats(&mut self) -> Vec<ClassStats>;
    fn options(&self) -> PoolOptions;
    /// Frees `ptr` from another thread, if the pool can be shared.
    ///
    /// # Safety
    /// As for `deallocate`.
    unsafe fn free_elsewhere(&self, ptr: NonNull<u8>, layout: Layout);
}

impl Pool for UnsyncPool<Upstream> {
    fn make(options: PoolOptions) -> Self {
        UnsyncPool::with_options_in(options, Upstream)
    }
    fn trim(&mut self) -> usize {
        UnsyncPool::trim(self)
    }
    fn release(&mut self) {
        UnsyncPool::release(self)
    }
    fn bytes_held(&self) -> usize {
        UnsyncPool::bytes_held(self)
    }
    fn stats(&mut self) -> Vec<ClassStats> {
        self.class_stats()
    }
    fn options(&self) -> PoolOptions {
        UnsyncPool::options(self)
    }
    unsafe fn free_elsewhere(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { self.deallocate(ptr, layout) }
    }
}

impl Pool for SyncPool<Upstream> {
    fn make(options: PoolOptions) -> Self {
        SyncPool::with_options_in(options, Upstream)
    }
    fn trim(&mut self) -> usize {
        SyncPool::trim(self)
    }
    fn release(&mut self) {
        SyncPool::release(self)
    }
    fn bytes_held(&self) -> usize {
        SyncPool::bytes_held(self)
    }
    fn stats(&mut self) -> Vec<ClassStats> {
        self.class_stats()
    }
    fn options(&self) -> PoolOptions {
        SyncPool::options(self)
    }
    unsafe fn free_elsewhere(&self, ptr: NonNull<u8>, layout: Layout) {
        let addr = ptr.as_ptr().addr();
        std::thread::scope(|s| {
            // SAFETY: forwarded contract; the address is re-derived from the
            // exposed pointer (raw pointers are not `Send`).
            s.spawn(|| unsafe {
                self.deallocate(NonNull::new(std::ptr::with_exposed_provenance_mut(addr)).unwrap(), layout)
            })
            .join()
            .unwrap();
        });
        let _ = ptr.as_ptr().expose_provenance();
    }
}

pub fn run<P: Pool>(input: Input)
where
    for<'a> &'a P: Allocator,
{
    let options = PoolOptions {
        max_blocks_per_chunk: input.max_blocks_per_chunk as usize,
        largest_required_pool_block: input.largest_required_pool_block as usize,
    };
    Heap::set_on_misuse(OnMisuse::Report);
    let mut pool = P::make(options);
    let largest = pool.options().largest_required_pool_block;
    let mut m = Model { live: Vec::new(), next_tag: 0, freed: Vec::new(), largest };
    for op in input.ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Alloc { size, align_log2 } => {
                let Some(l) = layout(size.bytes(), align_log2) else { continue };
                match pool.allocate(l) {
                    Ok(block) => m.add(block.cast(), l),
                    Err(_) => assert!(l.size() > LARGEST, "allocation of {l:?} failed"),
                }
            }
            Op::Dealloc { index } if !m.live.is_empty() => {
                let b = m.live.swap_remove(index as usize % m.live.len());
                m.check(&b, b.layout.size());
                // SAFETY: live, allocated by `pool` with `b.layout`.
                unsafe { pool.deallocate(b.ptr, b.layout) };
                m.freed(&b);
            }
            Op::Grow { index, extra, align_log2 } if !m.live.is_empty() => {
                let i = index as usize % m.live.len();
                let old = m.live[i].layout;
                let Some(new) = layout(old.size() + extra as usize, align_log2) else { continue };
                // SAFETY: live with `old`, and new.size() >= old.size().
                let block = unsafe { Allocator::grow(&&pool, m.live[i].ptr, old, new) }.expect("grow failed");
                let b = m.live.swap_remove(i);
                let moved = Block { ptr: block.cast(), ..b };
                m.check(&moved, old.size());
                m.add(moved.ptr, new);
            }
            Op::Shrink { index, keep_permille } if !m.live.is_empty() => {
                let i = index as usize % m.live.len();
                let old = m.live[i].layout;
                let size = old.size() * (keep_permille as usize % 1001) / 1000;
                let new = Layout::from_size_align(size, old.align()).expect("smaller than a valid layout");
                // SAFETY: live with `old`, and new.size() <= old.size().
                let block = unsafe { Allocator::shrink(&&pool, m.live[i].ptr, old, new) }.expect("shrink failed");
                let b = m.live.swap_remove(i);
                let moved = Block { ptr: block.cast(), ..b };
                m.check(&moved, new.size());
                m.add(moved.ptr, new);
            }
            Op::Trim => {
                m.freed.clear(); // their chunks may go back to upstream
                let held = pool.bytes_held();
                let returned = pool.trim();
                assert_eq!(pool.bytes_held(), held - returned);
            }
            Op::Release => {
                m.live.clear();
                m.freed.clear();
                pool.release();
                assert_eq!(pool.bytes_held(), 0);
            }
            Op::FreeElsewhere { index } if !m.live.is_empty() => {
                let b = m.live.swap_remove(index as usize % m.live.len());
                m.check(&b, b.layout.size());
                // SAFETY: live, allocated by `pool` with `b.layout`.
                unsafe { pool.free_elsewhere(b.ptr, b.layout) };
                m.freed(&b);
            }
            Op::FreeAgain { index } if !m.freed.is_empty() => {
                let (ptr, layout) = m.freed[index as usize % m.freed.len()];
                let before = Heap::misuses();
                // SAFETY: deliberately violated: a free block of the pool,
                // whose chunk it still holds; the pool must report it.
                unsafe { pool.deallocate(ptr, layout) };
                assert_eq!(Heap::misuses(), before + 1, "a double free went unreported");
            }
            Op::GrowFreed { index } if !m.freed.is_empty() => {
                let (ptr, layout) = m.freed[index as usize % m.freed.len()];
                let before = Heap::misuses();
                let new = Layout::from_size_align(layout.size() + 1, layout.align()).unwrap();
                // SAFETY: as above.
                let grown = unsafe { Allocator::grow(&&pool, ptr, layout, new) };
                assert!(grown.is_err(), "a freed block was grown");
                assert_eq!(Heap::misuses(), before + 1, "growing a freed block went unreported");
            }
            Op::Dealloc { .. }
            | Op::Grow { .. }
            | Op::Shrink { .. }
            | Op::FreeElsewhere { .. }
            | Op::FreeAgain { .. }
            | Op::GrowFreed { .. } => {}
        }
        for b in &m.live {
            m.check(b, b.layout.size().min(64));
        }
        let live_in_classes: usize = pool.stats().iter().map(|s| s.blocks_live).sum();
        assert!(live_in_classes <= m.live.len(), "the pool counts more live blocks than were handed out");
    }
    for b in &m.live {
        m.check(b, b.layout.size());
    }
}
