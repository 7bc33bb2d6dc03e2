//! reset, release, checkpoints, scopes, the caller's buffer and drop.

use core::alloc::Layout;
use core::mem::MaybeUninit;

use memres::Monotonic;

use crate::support::{Blocks, Tracking, scaled};

fn fill(arena: &Monotonic<'_, &Tracking>, bytes: usize) {
    let layout = Layout::from_size_align(64, 16).unwrap();
    for _ in 0..bytes / 64 {
        arena.allocate(layout).unwrap();
    }
}

#[test]
fn reset_keeps_memory_and_stops_upstream_calls() {
    let upstream = Tracking::new();
    let mut arena = Monotonic::new_in(&upstream);
    fill(&arena, scaled(100_000));
    let chunks = arena.stats().chunks;
    assert!(chunks > 1);
    arena.reset();
    assert_eq!(arena.stats().chunks, 1, "the first reset merges the chunks");
    assert_eq!(upstream.frees.get(), chunks);
    let (allocs, frees) = (upstream.allocs.get(), upstream.frees.get());
    for _ in 0..5 {
        assert_eq!(arena.stats().used, 0);
        fill(&arena, scaled(100_000));
        arena.reset();
    }
    assert_eq!(upstream.allocs.get(), allocs, "no upstream calls after warm-up");
    assert_eq!(upstream.frees.get(), frees);
    assert_eq!(arena.stats().chunks, 1);
}

#[test]
fn reset_on_an_empty_arena_is_harmless() {
    let upstream = Tracking::new();
    let mut arena = Monotonic::new_in(&upstream);
    arena.reset();
    arena.reset();
    assert_eq!(arena.stats().chunks, 0);
    fill(&arena, 1000);
    assert_eq!(arena.stats().used, 1000 / 64 * 64);
}

#[test]
fn reset_keeps_the_chunks_when_upstream_refuses_to_merge_them() {
    let upstream = Tracking::new();
    let mut arena = Monotonic::new_in(&upstream);
    fill(&arena, scaled(100_000));
    let held = arena.stats().held;
    upstream.fail_after(0);
    arena.reset();
    assert_eq!(arena.stats().held, held);
    fill(&arena, scaled(100_000));
    assert_eq!(arena.stats().held, held, "the kept chunks serve the next cycle");
    upstream.heal();
}

#[test]
fn release_returns_everything_and_starts_over() {
    let upstream = Tracking::new();
    let mut arena = Monotonic::new_in(&upstream);
    fill(&arena, scaled(100_000));
    arena.release();
    assert_eq!(upstream.live_blocks(), 0);
    assert_eq!(arena.stats().held, 0);
    arena.release(); // twice is fine
    fill(&arena, scaled(100_000));
    assert!(upstream.live_blocks() > 0);
    drop(arena);
    assert_eq!(upstream.live_blocks(), 0, "drop gives everything back");
}

#[test]
fn release_restarts_growth_from_the_initial_size() {
    let upstream = Tracking::new();
    let mut arena = Monotonic::new_in(&upstream);
    fill(&arena, scaled(100_000));
    let chunks = arena.stats().chunks;
    arena.release();
    fill(&arena, scaled(100_000));
    assert_eq!(arena.stats().chunks, chunks, "the same growth sequence again");
}

#[test]
fn buffer_is_used_first_and_again_after_release() {
    let upstream = Tracking::new();
    let mut buffer = [MaybeUninit::<u8>::uninit(); 1024];
    let range = buffer.as_ptr_range();
    let (lo, hi) = (range.start.addr(), range.end.addr());
    let mut arena = Monotonic::with_buffer_in(&mut buffer, &upstream);
    let inside = |arena: &Monotonic<'_, &Tracking>| {
        let p = arena.allocate(Layout::new::<u64>()).unwrap().cast::<u8>().as_ptr().addr();
        (lo..hi).contains(&p)
    };
    assert!(inside(&arena));
    assert_eq!(upstream.allocs.get(), 0);
    fill(&arena, 4096);
    assert!(upstream.allocs.get() > 0);
    assert!(!inside(&arena));
    arena.release();
    assert!(inside(&arena), "the buffer is reused after release");
    arena.reset();
    assert!(inside(&arena), "and after reset");
}

#[test]
fn checkpoint_rewind_frees_a_nested_phase() {
    let upstream = Tracking::new();
    let mut arena = Monotonic::new_in(&upstream);
    let keep = arena.allocate(Layout::new::<[u8; 100]>()).unwrap();
    let mut blocks = Blocks::default();
    blocks.add(keep, Layout::new::<[u8; 100]>());
    let outer = arena.checkpoint();
    let used = arena.stats().used;
    fill(&arena, scaled(10_000));
    let inner = arena.checkpoint();
    fill(&arena, scaled(50_000));
    arena.rewind(inner);
    arena.rewind(outer);
    assert_eq!(arena.stats().used, used);
    blocks.verify();
    let chunks = arena.stats().chunks;
    fill(&arena, scaled(60_000));
    assert_eq!(arena.stats().chunks, chunks, "rewound chunks are reused");
}

#[test]
fn scope_returns_the_result_and_frees_the_rest() {
    let upstream = Tracking::new();
    let mut arena = Monotonic::new_in(&upstream);
    let total: u64 = arena.scope(|a| {
        let mut v = allocator_api2::vec::Vec::new_in(a);
        v.extend(0..1000u64);
        v.iter().sum()
    });
    assert_eq!(total, 499_500);
    assert_eq!(arena.stats().used, 0);
}

#[test]
#[should_panic(expected = "from another arena")]
fn rewind_to_another_arenas_checkpoint_panics() {
    let a = Monotonic::new();
    let mut b = Monotonic::new();
    b.rewind(a.checkpoint());
}

#[test]
#[should_panic(expected = "before a reset")]
fn rewind_across_a_reset_panics() {
    let mut arena = Monotonic::new();
    let cp = arena.checkpoint();
    arena.reset();
    arena.rewind(cp);
}

#[test]
#[should_panic(expected = "rewound to")]
fn rewind_to_a_checkpoint_in_a_given_up_chunk_panics() {
    let mut arena = Monotonic::new();
    let early = arena.checkpoint();
    arena.allocate(Layout::new::<u64>()).unwrap();
    arena.allocate(Layout::from_size_align(100_000, 8).unwrap()).unwrap(); // a chunk of its own
    let late = arena.checkpoint();
    arena.rewind(early);
    arena.rewind(late);
}

#[test]
fn rewind_to_a_stale_checkpoint_in_the_same_chunk_frees_nothing() {
    let mut arena = Monotonic::new();
    arena.allocate(Layout::new::<u64>()).unwrap(); // both checkpoints in this chunk
    let early = arena.checkpoint();
    arena.allocate(Layout::new::<u64>()).unwrap();
    let late = arena.checkpoint();
    arena.rewind(early);
    arena.rewind(late);
    assert_eq!(arena.stats().used, 8, "the cursor did not move forward");
}

/// Found by the fuzzer: a block from before a checkpoint, freed from the top
/// afterwards, left the cursor below the checkpoint, and `rewind` refused
/// the (valid) checkpoint.
#[test]
fn regression_fuzz_rewind_after_freeing_the_last_block() {
    let mut arena = Monotonic::new();
    let layout = Layout::from_size_align(32, 8).unwrap();
    let keep = arena.allocate(layout).unwrap().cast::<u8>();
    let last = arena.allocate(layout).unwrap().cast::<u8>();
    let cp = arena.checkpoint();
    // SAFETY: `last` is the most recent block, with `layout`.
    unsafe { arena.deallocate(last, layout) };
    arena.rewind(cp);
    assert_eq!(arena.stats().used, 32, "only `keep` is in use");
    let next = arena.allocate(layout).unwrap().cast::<u8>();
    assert_eq!(next, last, "the freed block is reused, not skipped");
    assert_ne!(next, keep);
}

/// Found by the fuzzer: a chunk given up by a rewind came back (a spare
/// chunk reused), so a later checkpoint's head chunk was in `used` again,
/// but the chunk the checkpoint bumped in was still spare. Following the
/// checkpoint would have bumped in a spare chunk, later handed out twice.
#[test]
#[should_panic(expected = "rewound to")]
fn regression_fuzz_stale_checkpoint_whose_head_chunk_came_back() {
    let mut arena = Monotonic::new();
    let first = arena.checkpoint();
    arena.allocate(Layout::from_size_align(16, 1).unwrap()).unwrap(); // chunk X, current
    let big = Layout::from_size_align(128 << 10, 1).unwrap();
    arena.allocate(big).unwrap(); // chunk Y of its own, the head
    let second = arena.checkpoint(); // head Y, bumping in X
    arena.rewind(first); // X and Y become spare
    arena.allocate(big).unwrap(); // Y comes back from spare; X stays spare
    arena.rewind(second); // must be refused: X is not in use any more
}

#[test]
fn try_rewind_names_a_stale_checkpoint_and_leaves_the_arena_alone() {
    let mut arena = Monotonic::new();
    let other = Monotonic::new();
    assert_eq!(arena.try_rewind(other.checkpoint()), Err(memres::StaleCheckpoint::OtherCycle));
    let early = arena.checkpoint();
    arena.allocate(Layout::new::<u64>()).unwrap();
    arena.allocate(Layout::from_size_align(100_000, 8).unwrap()).unwrap(); // a chunk of its own
    let late = arena.checkpoint();
    assert_eq!(arena.try_rewind(early), Ok(()));
    let used = arena.stats().used;
    let kept = arena.allocate(Layout::new::<[u8; 40]>()).unwrap();
    assert_eq!(arena.try_rewind(late), Err(memres::StaleCheckpoint::GivenUp));
    assert_eq!(arena.stats().used, used + 40, "a refused rewind frees nothing");
    // SAFETY: a live 40-byte block of this arena.
    unsafe { kept.cast::<u8>().as_ptr().write_bytes(1, 40) };
    assert!(memres::StaleCheckpoint::GivenUp.to_string().contains("rewound to"));
}
