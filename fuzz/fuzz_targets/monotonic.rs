//! Differential fuzzing of `Monotonic` against a model of live blocks.
//!
//! The bytes decode into a sequence of operations on one arena. The model
//! keeps every live block with the byte pattern written into it; after each
//! step the fuzzer checks what the arena promises: blocks are aligned, never
//! overlap, are writable for their full length, keep their contents across
//! grow/shrink and across other operations, and failures happen only where
//! they are allowed (a budget, or a size no memory can hold).
#![no_main]

use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use memres::{Checkpoint, Monotonic};

#[derive(Arbitrary, Debug)]
enum Size {
    Small(u8),
    Medium(u16),
    Large(u8), // in 64 KiB steps
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

struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u8,
    /// When it was (re)allocated: a rewind frees blocks at or after its mark.
    seq: u64,
}

struct Model {
    live: Vec<Block>,
    checkpoints: Vec<(Checkpoint, u64)>,
    seq: u64,
    budget: bool,
}

impl Model {
    fn layout(size: usize, align_log2: u8) -> Option<Layout> {
        Layout::from_size_align(size, 1 << (align_log2 % 13)).ok()
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
        let tag = (self.seq % 251) as u8;
        // SAFETY: the arena promised `layout.size()` writable bytes.
        unsafe { ptr.as_ptr().write_bytes(tag, layout.size()) };
        self.live.push(Block { ptr, layout, tag, seq: self.seq });
    }

    fn verify(&self) {
        for b in &self.live {
            // SAFETY: each live block was fully written when recorded.
            let bytes = unsafe { core::slice::from_raw_parts(b.ptr.as_ptr(), b.layout.size()) };
            assert!(bytes.iter().all(|&x| x == b.tag), "a live block's contents changed");
        }
    }

    /// May this allocation fail? Only past a budget or for sizes no machine has.
    fn may_fail(&self, layout: Layout) -> bool {
        self.budget || layout.size() > 1 << 40
    }
}

fn run(input: Input) {
    let mut buffer = vec![MaybeUninit::<u8>::uninit(); input.buffer_len as usize % 4096];
    let mut arena = if buffer.is_empty() {
        Monotonic::with_initial_size_in(input.initial_size as usize, memres::Global)
    } else {
        Monotonic::with_buffer(&mut buffer)
    };
    let mut m = Model { live: Vec::new(), checkpoints: Vec::new(), seq: 0, budget: false };
    for op in input.ops.into_iter().take(512) {
        match op {
            Op::Alloc { size, align_log2 } => {
                let Some(layout) = Model::layout(size.bytes(), align_log2) else { continue };
                match arena.allocate(layout) {
                    Ok(block) => m.add(block.cast(), layout),
                    Err(_) => assert!(m.may_fail(layout), "allocation of {layout:?} failed"),
                }
            }
            Op::Dealloc { index } | Op::Grow { index, .. } | Op::Shrink { index, .. } if m.live.is_empty() => {
                let _ = index;
            }
            Op::Dealloc { index } => {
                let b = m.live.swap_remove(index as usize % m.live.len());
                // SAFETY: the block is live, allocated by `arena` with `b.layout`.
                unsafe { arena.deallocate(b.ptr, b.layout) };
            }
            Op::DeallocLast => {
                if let Some(b) = m.live.pop() {
                    // SAFETY: as above.
                    unsafe { arena.deallocate(b.ptr, b.layout) };
                }
            }
            Op::Grow { index, extra, align_log2 } => {
                let i = index as usize % m.live.len();
                let old = m.live[i].layout;
                let Some(new) = Model::layout(old.size().saturating_add(extra.bytes()), align_log2) else { continue };
                // SAFETY: the block is live with layout `old`, and new.size() >= old.size().
                match unsafe { arena.grow(m.live[i].ptr, old, new) } {
                    Ok(block) => {
                        let b = m.live.swap_remove(i);
                        // SAFETY: grow keeps the first `old.size()` bytes.
                        let kept = unsafe { core::slice::from_raw_parts(block.cast::<u8>().as_ptr(), old.size()) };
                        assert!(kept.iter().all(|&x| x == b.tag), "grow lost the contents");
                        m.add(block.cast(), new);
                    }
                    Err(_) => assert!(m.may_fail(new), "grow to {new:?} failed"),
                }
            }
            Op::Shrink { index, keep_permille, align_log2 } => {
                let i = index as usize % m.live.len();
                let old = m.live[i].layout;
                let size = old.size() * (keep_permille as usize % 1001) / 1000;
                let Some(new) = Model::layout(size, align_log2) else { continue };
                // SAFETY: the block is live with layout `old`, and new.size() <= old.size().
                match unsafe { arena.shrink(m.live[i].ptr, old, new) } {
                    Ok(block) => {
                        let b = m.live.swap_remove(i);
                        // SAFETY: shrink keeps the first `new.size()` bytes.
                        let kept = unsafe { core::slice::from_raw_parts(block.cast::<u8>().as_ptr(), new.size()) };
                        assert!(kept.iter().all(|&x| x == b.tag), "shrink lost the contents");
                        m.add(block.cast(), new);
                    }
                    Err(_) => assert!(m.may_fail(new), "shrink to {new:?} failed"),
                }
            }
            Op::Reset => {
                m.live.clear();
                m.checkpoints.clear();
                arena.reset();
                assert_eq!(arena.stats().used, 0);
            }
            Op::Release => {
                m.live.clear();
                m.checkpoints.clear();
                arena.release();
                assert_eq!(arena.stats().held, 0);
                assert_eq!(arena.stats().chunks, 0);
            }
            Op::Checkpoint => m.checkpoints.push((arena.checkpoint(), m.seq + 1)),
            Op::Rewind { index } => {
                if m.checkpoints.is_empty() {
                    continue;
                }
                let i = index as usize % m.checkpoints.len();
                let (checkpoint, mark) = m.checkpoints[i];
                m.checkpoints.truncate(i + 1);
                m.live.retain(|b| b.seq < mark);
                arena.rewind(checkpoint);
            }
            Op::Budget { kib } => {
                m.budget = kib.is_some();
                arena.set_budget(kib.map(|k| (k as usize) << 10));
            }
        }
        m.verify();
        let stats = arena.stats();
        assert!(stats.used <= stats.held + buffer_len_of(&m, input.buffer_len), "{stats:?}");
    }
}

/// The caller's buffer counts as memory the arena can hand out too.
fn buffer_len_of(_: &Model, buffer_len: u16) -> usize {
    buffer_len as usize % 4096
}

fuzz_target!(|input: Input| run(input));

/// AddressSanitizer aborts on an allocation it cannot serve (2^63 bytes, say)
/// instead of returning null; the arena must see the null as `AllocError`.
#[unsafe(no_mangle)]
pub extern "C" fn __asan_default_options() -> *const core::ffi::c_char {
    c"allocator_may_return_null=1".as_ptr()
}
