//! Differential fuzzing of `memres::Heap` against a model of live blocks
//! (the `heap` and `heap_secure` targets).
//!
//! The bytes decode into allocations (small classes, large blocks, huge
//! alignments, sizes no machine has), frees in any order, grow/shrink
//! through `Allocator` and `realloc` through `GlobalAlloc`, frees from a
//! short-lived thread (a cross-thread free; the thread's exit abandons its
//! heap), and `purge`. The model keeps each live block with its byte
//! pattern and checks alignment, non-overlap, contents across every
//! operation, that only impossible sizes fail, and that the heap's
//! `allocated` stat is exactly what the live blocks account for (in secure
//! mode, at least that while freed blocks sit in the quarantine, and exactly
//! that once a purge has emptied it).
//!
//! Misuses too, under `OnMisuse::Report`: a double free (at once, or after
//! other operations), a free of a pointer inside a live block, and a free
//! of a stack address. Each must be reported exactly once
//! (`Heap::misuses`) and change nothing the model sees: the other blocks
//! keep their contents, no block is handed out twice, `allocated` holds.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use memres::{Allocator, Heap, OnMisuse};

const MAX_OPS: usize = 512;

#[derive(Arbitrary, Debug)]
pub enum Size {
    Tiny(u8),
    Medium(u16),
    Large(u8), // n * 64 KiB: large blocks of their own mapping
    Huge(u8),  // near isize::MAX: must fail cleanly
}

impl Size {
    fn bytes(&self) -> usize {
        match *self {
            Size::Tiny(n) => n as usize,
            Size::Medium(n) => n as usize,
            Size::Large(n) => (n as usize % 16) * 65_536 + 32_769,
            Size::Huge(n) => isize::MAX as usize - (n as usize) * 4096 - (1 << 24),
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum Op {
    Alloc {
        size: Size,
        align_log2: u8,
    },
    Free {
        index: u16,
    },
    Resize {
        index: u16,
        size: Size,
        through_realloc: bool,
    },
    FreeElsewhere {
        index: u16,
    },
    Purge,
    /// Frees a live block, now or at a later `FreeAgain`, a second time.
    DoubleFree {
        index: u16,
        later: bool,
    },
    FreeAgain,
    /// Frees `offset` bytes into a live block (1.. its size).
    InteriorFree {
        index: u16,
        offset: u32,
    },
    StackFree,
}

struct Live {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u8,
    /// What the block counts for in `Heap::stats().allocated`.
    accounted: usize,
    /// Whether it has a mapping of its own (a large block stays one when
    /// it shrinks in place).
    large: bool,
}

/// What a fresh block of `layout` counts for in the stats: its size class
/// (sizes up to 32 KiB aligned to at most 4 KiB), whole 64 KiB pages
/// (medium blocks: up to 512 KiB, aligned to at most 64 KiB), else its
/// page-rounded size; nothing for zero bytes (no block at all).
fn accounted(layout: Layout) -> usize {
    if layout.size() == 0 {
        return 0;
    }
    // The heap's smallest class is 16 bytes (a free block's link and mark).
    let rounded = layout.size().max(layout.align()).next_multiple_of(layout.align()).max(16);
    let classes = Heap::class_stats();
    let small = &classes[..classes.len() - 1];
    match small.iter().find(|c| c.size >= rounded) {
        Some(class) if layout.align() <= 4096 => class.size,
        _ if layout.size() <= 512 << 10 && layout.align() <= 64 << 10 => layout.size().next_multiple_of(64 << 10),
        _ => layout.size().next_multiple_of(4096),
    }
}

/// Whether a fresh block of `layout` has a mapping of its own (a large block).
fn is_large(layout: Layout) -> bool {
    layout.size() > 0 && accounted(layout) > 512 << 10 || layout.align() > 64 << 10
}

// SAFETY: plain memory owned by the model.
unsafe impl Send for Live {}

fn check(live: &Live) {
    // SAFETY: a live block of `layout.size()` bytes, written with `tag`.
    let bytes = unsafe { core::slice::from_raw_parts(live.ptr.as_ptr(), live.layout.size()) };
    assert!(bytes.iter().all(|&b| b == live.tag), "a live block's contents changed");
}

fn fill(live: &Live) {
    // SAFETY: a live block of `layout.size()` bytes.
    unsafe { live.ptr.as_ptr().write_bytes(live.tag, live.layout.size()) };
}

/// Checks that no two live blocks overlap.
fn disjoint(blocks: &[Live]) {
    let mut ranges = BTreeMap::new();
    for b in blocks.iter().filter(|b| b.layout.size() > 0) {
        ranges.insert(b.ptr.as_ptr().addr(), b.ptr.as_ptr().addr() + b.layout.size());
    }
    let mut end = 0;
    for (&start, &stop) in &ranges {
        assert!(start >= end, "live blocks overlap");
        end = stop;
    }
}

/// Runs one misuse and checks that the heap reported exactly one.
fn expect_reported(misuse: impl FnOnce()) {
    let before = Heap::misuses();
    misuse();
    assert_eq!(Heap::misuses(), before + 1, "a misuse went unreported (or was reported twice)");
}

/// Runs `ops` against the model; `secure`: the heap runs in secure mode.
pub fn run(ops: Vec<Op>, secure: bool) {
    assert_eq!(Heap::secure(), secure, "the target's mode");
    Heap::set_on_misuse(OnMisuse::Report);
    if secure {
        Heap::purge(); // empties this thread's quarantine
    }
    let base = Heap::stats().allocated;
    let mut blocks: Vec<Live> = Vec::new();
    // Blocks freed once, to be freed again by `FreeAgain`.
    let mut freed: Vec<(NonNull<u8>, Layout)> = Vec::new();
    for (n, op) in ops.into_iter().take(MAX_OPS).enumerate() {
        let tag = n as u8;
        match op {
            Op::Alloc { size, align_log2 } => {
                let align = 1usize << (align_log2 % 24);
                let Ok(layout) = Layout::from_size_align(size.bytes(), align) else { continue };
                match Allocator::allocate(&Heap, layout) {
                    Ok(block) => {
                        assert_eq!(block.cast::<u8>().as_ptr().addr() % align, 0, "misaligned");
                        let live = Live {
                            ptr: block.cast(),
                            layout,
                            tag,
                            accounted: accounted(layout),
                            large: is_large(layout),
                        };
                        fill(&live);
                        blocks.push(live);
                    }
                    Err(_) => assert!(layout.size() > 1 << 40, "{layout:?} failed"),
                }
            }
            Op::Free { index } if !blocks.is_empty() => {
                let live = blocks.swap_remove(index as usize % blocks.len());
                check(&live);
                // SAFETY: a live block of the heap with this layout.
                unsafe { Allocator::deallocate(&Heap, live.ptr, live.layout) };
            }
            Op::Resize { index, size, through_realloc } if !blocks.is_empty() => {
                let i = index as usize % blocks.len();
                check(&blocks[i]);
                let old = blocks[i].layout;
                let Ok(new) = Layout::from_size_align(size.bytes(), old.align()) else { continue };
                let keep = old.size().min(new.size());
                let moved = if through_realloc {
                    if old.size() == 0 || new.size() == 0 {
                        continue; // GlobalAlloc never sees zero sizes
                    }
                    // SAFETY: a live block of `old`; a non-zero new size.
                    NonNull::new(unsafe { Heap.realloc(blocks[i].ptr.as_ptr(), old, new.size()) })
                } else if new.size() >= old.size() {
                    // SAFETY: a live block of `old`, growing.
                    unsafe { Allocator::grow(&Heap, blocks[i].ptr, old, new) }.ok().map(|b| b.cast())
                } else {
                    // SAFETY: a live block of `old`, shrinking.
                    unsafe { Allocator::shrink(&Heap, blocks[i].ptr, old, new) }.ok().map(|b| b.cast())
                };
                match moved {
                    Some(ptr) => {
                        // SAFETY: the first `keep` bytes moved with the block.
                        let kept = unsafe { core::slice::from_raw_parts(ptr.as_ptr(), keep) };
                        assert!(kept.iter().all(|&b| b == blocks[i].tag), "resize lost contents");
                        assert_eq!(ptr.as_ptr().addr() % old.align(), 0);
                        // A small or medium block resized in place keeps its
                        // class or its pages; a large one counts its new size.
                        // A medium block in place may have grown over the
                        // pages after it (never shrinks its span).
                        let medium = !blocks[i].large && blocks[i].accounted > 32 << 10;
                        let (accounted, large) = match (ptr == blocks[i].ptr, blocks[i].large) {
                            (true, false) if medium => {
                                (blocks[i].accounted.max(new.size().next_multiple_of(64 << 10)), false)
                            }
                            (true, false) => (blocks[i].accounted, false),
                            (true, true) => (new.size().next_multiple_of(4096), true),
                            (false, _) => (accounted(new), is_large(new)),
                        };
                        blocks[i] = Live { ptr, layout: new, tag, accounted, large };
                        fill(&blocks[i]);
                    }
                    None => assert!(new.size() > 1 << 40, "{new:?} failed"),
                }
            }
            Op::FreeElsewhere { index } if !blocks.is_empty() => {
                let live = blocks.swap_remove(index as usize % blocks.len());
                std::thread::spawn(move || {
                    check(&live);
                    // SAFETY: a live block of the heap with this layout.
                    unsafe { Allocator::deallocate(&Heap, live.ptr, live.layout) };
                })
                .join()
                .unwrap();
            }
            Op::Purge => {
                Heap::purge();
            }
            Op::DoubleFree { index, later } if !blocks.is_empty() => {
                let live = blocks.swap_remove(index as usize % blocks.len());
                check(&live);
                if live.layout.size() == 0 {
                    continue; // no block at all: nothing to free twice
                }
                // SAFETY: a live block of the heap with this layout, freed once.
                unsafe { Allocator::deallocate(&Heap, live.ptr, live.layout) };
                if later {
                    freed.push((live.ptr, live.layout));
                } else {
                    // SAFETY: deliberately freed twice; the heap must catch it.
                    expect_reported(|| unsafe { Allocator::deallocate(&Heap, live.ptr, live.layout) });
                }
            }
            Op::FreeAgain if !freed.is_empty() => {
                let (ptr, layout) = freed.remove(0);
                // A block freed earlier may have been handed out again since
                // (to a live block of the model): freeing it now would free
                // that block. Only a block no live block covers is freed again.
                let reused = blocks.iter().any(|b| {
                    let start = b.ptr.as_ptr().addr();
                    (start..start + b.layout.size().max(1)).contains(&ptr.as_ptr().addr())
                });
                if !reused {
                    // SAFETY: deliberately freed twice; the heap must catch it.
                    expect_reported(|| unsafe { Allocator::deallocate(&Heap, ptr, layout) });
                }
            }
            Op::InteriorFree { index, offset } if !blocks.is_empty() => {
                let live = &blocks[index as usize % blocks.len()];
                if live.layout.size() > 1 {
                    let offset = 1 + offset as usize % (live.layout.size() - 1);
                    // SAFETY: `offset` is inside the live block.
                    let inside = unsafe { live.ptr.add(offset) };
                    // SAFETY: deliberately frees a pointer inside a live block;
                    // the heap must catch it and leave the block alone.
                    expect_reported(|| unsafe { Allocator::deallocate(&Heap, inside, live.layout) });
                    check(live);
                }
            }
            Op::StackFree => {
                let mut local = [tag; 64];
                let at = NonNull::new(local.as_mut_ptr()).unwrap();
                // SAFETY: deliberately frees a stack address; the heap must not touch it.
                expect_reported(|| unsafe { Allocator::deallocate(&Heap, at, Layout::new::<[u8; 64]>()) });
                assert!(local.iter().all(|&b| b == tag), "the heap wrote to the stack");
            }
            _ => {}
        }
        // Contents are checked when a block is touched and at the end.
        disjoint(&blocks);
        let expected = base + blocks.iter().map(|b| b.accounted).sum::<usize>();
        if secure {
            // Quarantined blocks count until they leave.
            assert!(Heap::stats().allocated >= expected, "allocated below what the live blocks account for");
        } else {
            assert_eq!(Heap::stats().allocated, expected, "allocated disagrees with the live blocks");
        }
    }
    for live in blocks {
        check(&live);
        // SAFETY: live blocks of the heap with their layouts.
        unsafe { Allocator::deallocate(&Heap, live.ptr, live.layout) };
    }
    if secure {
        Heap::purge();
    }
    assert_eq!(Heap::stats().allocated, base, "allocated did not return to its baseline");
}
