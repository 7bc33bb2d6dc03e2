//! Differential fuzzing of `Monotonic` against a model of live blocks.
//!
//! The bytes decode into a sequence of operations on one arena. The model
//! keeps every live block with the byte pattern written into it and checks
//! what the arena promises: blocks are aligned, never overlap, are writable
//! for their full length, keep their contents across grow/shrink and across
//! other operations, and failures happen only where they are allowed (a
//! budget, or a size no memory can hold). The upstream counts what it lends,
//! so the arena's `held` and its giving back everything are checked too.
//!
//! The model's rules for when a block stops being live:
//! - `deallocate` frees it (for the most recent block, the arena moves its
//!   cursor back, so the bytes may be handed out again);
//! - `grow`/`shrink` free the old block and make a new one (possibly at the
//!   same address), which counts as allocated at that moment;
//! - `rewind` to a checkpoint frees every block allocated (or reallocated)
//!   after the checkpoint, and keeps the ones from before;
//! - `reset` and `release` free everything.
//!
//! Checkpoints: a rewind makes the checkpoints taken after its own *stale*.
//! Rewinding to a valid checkpoint must work; rewinding to a stale one may
//! panic (`Monotonic::rewind` documents when), and if it does not, it obeys
//! the rule above like any rewind: blocks from before the checkpoint live on.
//!
//! Built with memres's `asan` feature: memory the arena holds but has not
//! handed out is poisoned, so a block the arena took back while the model
//! still holds it is reported by AddressSanitizer on the next check.
#![no_main]

use core::alloc::Layout;
use core::cell::RefCell;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use memres::{AllocError, Checkpoint, Global, MemoryResource, Monotonic};

/// Requests over this size fail: upstream refuses them as `malloc` would.
/// (ASan's allocator would otherwise print a warning for each one.)
const LARGEST: usize = 1 << 40;
/// Operations run per input, at most.
const MAX_OPS: usize = 512;
/// Bytes the model requests per cycle (between resets or releases), at
/// most; requests past it are skipped, to keep memory and time per input
/// bounded (a run of `Large` requests would otherwise take gigabytes).
const CYCLE_BYTES: usize = 8 << 20;
/// Bytes checked at each end of every live block after each step. Whole
/// blocks are checked when they leave the model and at the end of the run.
const EDGE: usize = 64;

#[derive(Arbitrary, Debug)]
enum Size {
    Small(u8),
    Medium(u16),
    Large(u8), // in 64 KiB steps, up to 2 MiB: a chunk of its own
    Huge(u8),  // near isize::MAX: must fail cleanly
}

impl Size {
    fn bytes(&self) -> usize {
        match *self {
            Size::Small(n) => n as usize,
            Size::Medium(n) => n as usize,
            Size::Large(n) => (n as usize % 32) << 16,
            Size::Huge(n) => isize::MAX as usize - (n as usize) * 4096,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc { size: Size, align_log2: u8 },
    Dealloc { index: u16 },
    DeallocLast,
    Grow { index: u16, extra: Size, align_log2: u8 },
    Shrink { index: u16, keep_permille: u16, align_log2: u8 },
    Reset,
    Release,
    Checkpoint,
    Rewind { index: u8 },
    Budget { kib: Option<u16> },
}

#[derive(Arbitrary, Debug)]
struct Input {
    buffer_len: u16,
    initial_size: u16,
    ops: Vec<Op>,
}

/// `Global`, keeping a record of every block lent to the arena.
#[derive(Default)]
struct Upstream {
    live: RefCell<HashMap<usize, Layout>>,
}

impl Upstream {
    fn lent_bytes(&self) -> usize {
        self.live.borrow().values().map(|l| l.size()).sum()
    }

    fn lent_blocks(&self) -> usize {
        self.live.borrow().len()
    }
}

// SAFETY: forwards to `Global`, which upholds the contract; the bookkeeping
// does not touch the blocks, and sizes over `LARGEST` fail with `AllocError`.
unsafe impl MemoryResource for Upstream {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() > LARGEST {
            return Err(AllocError);
        }
        let block = MemoryResource::allocate(&Global, layout)?;
        let previous = self.live.borrow_mut().insert(block.cast::<u8>().as_ptr().addr(), layout);
        assert!(previous.is_none(), "Global handed out a live block twice");
        Ok(block)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let lent = self.live.borrow_mut().remove(&ptr.as_ptr().addr());
        assert_eq!(lent, Some(layout), "the arena gave back a block it did not get, or with another layout");
        // SAFETY: the block came from `Global` with `layout` (checked above).
        unsafe { MemoryResource::deallocate(&Global, ptr, layout) }
    }
}

struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u8,
    /// When it was (re)allocated, counting from 1: a rewind frees the
    /// blocks with `seq >= Mark::first_seq` of its checkpoint.
    seq: u64,
}

impl Block {
    fn bytes(&self) -> &[u8] {
        // SAFETY: a block in the model is live: the arena lent its bytes to
        // us, and `Model::add` initialized them all.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }

    /// Checks every byte still holds the block's pattern.
    fn check(&self, what: &str) {
        let bytes = self.bytes();
        if !all_equal(bytes, self.tag) {
            let at = bytes.iter().position(|&x| x != self.tag).unwrap_or_default();
            panic!("{what}: byte {at} of a live {:?} block at {:p} changed", self.layout, self.ptr);
        }
    }

    /// Checks the first and last `EDGE` bytes, where a neighbour that
    /// overlaps by a little, or arena metadata, would show first.
    fn check_edges(&self) {
        let bytes = self.bytes();
        let n = bytes.len().min(EDGE);
        let mut ends = bytes[..n].iter().chain(&bytes[bytes.len() - n..]);
        assert!(ends.all(|&x| x == self.tag), "a live {:?} block at {:p} changed", self.layout, self.ptr);
    }
}

/// Is every byte `tag`?
fn all_equal(bytes: &[u8], tag: u8) -> bool {
    // All bytes equal the first iff the slice equals itself shifted by one:
    // a single `memcmp`, far faster under ASan than a loop over the bytes.
    match bytes {
        [] => true,
        [first, rest @ ..] => *first == tag && rest == &bytes[..bytes.len() - 1],
    }
}

/// A checkpoint, as the model knows it.
#[derive(Clone, Copy)]
struct Mark {
    checkpoint: Checkpoint,
    /// Blocks with `seq >= first_seq` were (re)allocated after it.
    first_seq: u64,
    /// The arena's `stats().used` when it was taken.
    used: usize,
    /// A rewind to an earlier checkpoint happened since it was taken.
    stale: bool,
}

struct Model {
    /// Live blocks, oldest (re)allocation first.
    live: Vec<Block>,
    /// The checkpoints of this cycle, oldest first.
    checkpoints: Vec<Mark>,
    seq: u64,
    budget: bool,
    /// Bytes requested this cycle, against `CYCLE_BYTES`.
    cycle_bytes: usize,
}

impl Model {
    fn layout(size: usize, align_log2: u8) -> Option<Layout> {
        Layout::from_size_align(size, 1 << (align_log2 % 13)).ok()
    }

    fn pick(&self, index: u16) -> Option<usize> {
        (!self.live.is_empty()).then(|| index as usize % self.live.len())
    }

    /// Counts a request against the cycle's allowance; `false`: skip it.
    /// Sizes that must fail take no memory, so they always go through.
    fn may_request(&mut self, layout: Layout) -> bool {
        if layout.size() > LARGEST {
            return true;
        }
        self.cycle_bytes += layout.size();
        self.cycle_bytes <= CYCLE_BYTES
    }

    /// Checks a fresh block and records it with a new pattern.
    fn add(&mut self, ptr: NonNull<u8>, layout: Layout) {
        assert_eq!(ptr.as_ptr().addr() % layout.align(), 0, "misaligned block for {layout:?}");
        let (lo, hi) = (ptr.as_ptr().addr(), ptr.as_ptr().addr() + layout.size());
        if layout.size() > 0 {
            for b in self.live.iter().filter(|b| b.layout.size() > 0) {
                let (blo, bhi) = (b.ptr.as_ptr().addr(), b.ptr.as_ptr().addr() + b.layout.size());
                assert!(hi <= blo || bhi <= lo, "new block {lo:#x}..{hi:#x} overlaps {blo:#x}..{bhi:#x}");
            }
        }
        self.seq += 1;
        // Never 0, so a block that should have been copied but reads as
        // fresh zeroed memory does not pass for intact.
        let tag = (self.seq % 255) as u8 + 1;
        // SAFETY: the arena promised `layout.size()` writable bytes, and no
        // live block overlaps them (checked above).
        unsafe { ptr.as_ptr().write_bytes(tag, layout.size()) };
        self.live.push(Block { ptr, layout, tag, seq: self.seq });
    }

    /// Removes block `i` from the model, checking it whole on its way out
    /// (before the arena may hand its bytes out again).
    fn take(&mut self, i: usize) -> Block {
        let b = self.live.remove(i);
        b.check("before it was freed");
        b
    }

    /// Checks whole the blocks a rewind to `mark` frees, before it does.
    fn check_since(&self, mark: &Mark) {
        for b in self.live.iter().filter(|b| b.seq >= mark.first_seq) {
            b.check("before a rewind freed it");
        }
    }

    /// After a rewind to checkpoint `i`: forgets the blocks (re)allocated
    /// since it (the rewind freed them); the checkpoints taken after it
    /// become stale.
    fn rewound_to(&mut self, i: usize) {
        let first_seq = self.checkpoints[i].first_seq;
        self.live.retain(|b| b.seq < first_seq);
        for later in &mut self.checkpoints[i + 1..] {
            later.stale = true;
        }
    }

    /// Frees every block and checkpoint (a reset or release).
    fn free_all(&mut self, what: &str) {
        for b in &self.live {
            b.check(what);
        }
        self.live.clear();
        self.checkpoints.clear();
        self.cycle_bytes = 0;
    }

    /// May this request fail? Only with a budget set, or for sizes no
    /// machine has.
    fn may_fail(&self, layout: Layout) -> bool {
        self.budget || layout.size() > LARGEST
    }
}

fn run(input: Input) {
    let upstream = Upstream::default();
    let buffer_len = input.buffer_len as usize % 4096;
    let mut buffer = vec![MaybeUninit::<u8>::uninit(); buffer_len];
    let mut arena = if buffer.is_empty() {
        Monotonic::with_initial_size_in(input.initial_size as usize, &upstream)
    } else {
        Monotonic::with_buffer_in(&mut buffer, &upstream)
    };
    let mut m = Model { live: Vec::new(), checkpoints: Vec::new(), seq: 0, budget: false, cycle_bytes: 0 };
    for op in input.ops.into_iter().take(MAX_OPS) {
        let before = arena.stats();
        match op {
            Op::Alloc { size, align_log2 } => {
                let Some(layout) = Model::layout(size.bytes(), align_log2) else { continue };
                if !m.may_request(layout) {
                    continue;
                }
                match arena.allocate(layout) {
                    Ok(block) => m.add(block.cast(), layout),
                    Err(_) => assert!(m.may_fail(layout), "allocation of {layout:?} failed"),
                }
            }
            Op::Dealloc { index } => {
                let Some(i) = m.pick(index) else { continue };
                let b = m.take(i);
                // SAFETY: the block is live, allocated by `arena` with `b.layout`.
                unsafe { arena.deallocate(b.ptr, b.layout) };
                assert!(arena.stats().used <= before.used, "deallocate made `used` grow");
            }
            Op::DeallocLast => {
                // The newest block: the one the arena can take back by
                // moving its cursor, unless it lives elsewhere.
                let Some(i) = m.live.len().checked_sub(1) else { continue };
                let b = m.take(i);
                // SAFETY: the block is live, allocated by `arena` with `b.layout`.
                unsafe { arena.deallocate(b.ptr, b.layout) };
                assert!(arena.stats().used <= before.used, "deallocate made `used` grow");
            }
            Op::Grow { index, extra, align_log2 } => {
                let Some(i) = m.pick(index) else { continue };
                let old = m.live[i].layout;
                let Some(new) = Model::layout(old.size().saturating_add(extra.bytes()), align_log2) else { continue };
                if !m.may_request(new) {
                    continue;
                }
                // No check before: `kept` below covers all of the old bytes.
                // SAFETY: the block is live with layout `old`, and new.size() >= old.size().
                match unsafe { arena.grow(m.live[i].ptr, old, new) } {
                    Ok(block) => {
                        // The old block is gone (even if `block` is at the same address).
                        let b = m.live.remove(i);
                        // SAFETY: grow keeps the first `old.size()` bytes of the new block.
                        let kept = unsafe { core::slice::from_raw_parts(block.cast::<u8>().as_ptr(), old.size()) };
                        assert!(all_equal(kept, b.tag), "grow lost the contents");
                        m.add(block.cast(), new);
                    }
                    Err(_) => assert!(m.may_fail(new), "grow to {new:?} failed"),
                }
            }
            Op::Shrink { index, keep_permille, align_log2 } => {
                let Some(i) = m.pick(index) else { continue };
                let old = m.live[i].layout;
                let size = old.size() * (keep_permille as usize % 1001) / 1000;
                let Some(new) = Model::layout(size, align_log2) else { continue };
                m.live[i].check("before shrink");
                // SAFETY: the block is live with layout `old`, and new.size() <= old.size().
                match unsafe { arena.shrink(m.live[i].ptr, old, new) } {
                    Ok(block) => {
                        let b = m.live.remove(i);
                        // SAFETY: shrink keeps the first `new.size()` bytes.
                        let kept = unsafe { core::slice::from_raw_parts(block.cast::<u8>().as_ptr(), new.size()) };
                        assert!(all_equal(kept, b.tag), "shrink lost the contents");
                        m.add(block.cast(), new);
                    }
                    // Only a stricter alignment needs a new block, which may fail.
                    Err(_) => assert!(m.may_fail(new), "shrink to {new:?} failed"),
                }
            }
            Op::Reset => {
                m.free_all("before reset");
                arena.reset();
                assert_eq!(arena.stats().used, 0, "reset left bytes in use");
            }
            Op::Release => {
                m.free_all("before release");
                arena.release();
                let stats = arena.stats();
                assert_eq!((stats.used, stats.held, stats.chunks), (0, 0, 0), "release kept memory");
                assert_eq!(upstream.lent_blocks(), 0, "release did not give every chunk back");
            }
            // A block (re)allocated from now on has `seq >= m.seq + 1`.
            Op::Checkpoint => m.checkpoints.push(Mark {
                checkpoint: arena.checkpoint(),
                first_seq: m.seq + 1,
                used: before.used,
                stale: false,
            }),
            Op::Rewind { index } => {
                if m.checkpoints.is_empty() {
                    continue;
                }
                let i = index as usize % m.checkpoints.len();
                let mark = m.checkpoints[i];
                m.check_since(&mark);
                let refused = if mark.stale {
                    // Allowed to refuse, with one of rewind's documented
                    // panics (the arena is then unchanged); any other panic
                    // (an internal `expect`, an overflow) is a failure.
                    catch_panic(|| arena.rewind(mark.checkpoint)).err().inspect(|message| {
                        assert!(
                            message.starts_with("memres: Monotonic::rewind with a checkpoint"),
                            "rewind to a stale checkpoint panicked unexpectedly: {message}"
                        )
                    })
                } else {
                    arena.rewind(mark.checkpoint);
                    None
                };
                if refused.is_none() {
                    m.rewound_to(i);
                    assert!(arena.stats().used <= mark.used, "rewind left more in use than at the checkpoint");
                }
            }
            Op::Budget { kib } => {
                m.budget = kib.is_some();
                arena.set_budget(kib.map(|k| (k as usize) << 10));
            }
        }
        for b in &m.live {
            b.check_edges();
        }
        let stats = arena.stats();
        // Everything handed out comes from the chunks or the buffer.
        assert!(stats.used <= stats.held + buffer_len, "{stats:?}");
        // `held` is exactly what upstream has lent, chunk for chunk.
        assert_eq!((stats.held, stats.chunks), (upstream.lent_bytes(), upstream.lent_blocks()), "{stats:?}");
        // The arena only takes more from upstream within the budget.
        if stats.held > before.held {
            assert!(arena.budget().is_none_or(|b| stats.held <= b), "held {} past the budget", stats.held);
        }
    }
    for b in &m.live {
        b.check("at the end");
    }
    drop(arena);
    assert_eq!(upstream.lent_blocks(), 0, "the arena did not give every chunk back on drop");
}

/// Runs `f`; a panic comes back as `Err(message)` instead of aborting (as
/// libfuzzer-sys's panic hook would), and prints nothing.
fn catch_panic(f: impl FnOnce()) -> Result<(), String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|payload| {
        let text = payload.downcast_ref::<String>().map(String::as_str);
        text.or_else(|| payload.downcast_ref::<&str>().copied()).unwrap_or("(not a string)").to_owned()
    })
}

fuzz_target!(|input: Input| run(input));
