//! Bad input and failing upstreams: clear errors, and the arena stays usable.

use core::alloc::Layout;

use memres::Monotonic;

use crate::support::{Blocks, Tracking};

fn still_works(arena: &Monotonic<'_, &Tracking>) {
    let mut blocks = Blocks::default();
    for size in [1, 8, 100, 3000] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        blocks.add(arena.allocate(layout).unwrap(), layout);
    }
    blocks.verify();
}

#[test]
fn huge_sizes_fail_cleanly() {
    let upstream = Tracking::new();
    let arena = Monotonic::new_in(&upstream);
    for size in [isize::MAX as usize - 7, isize::MAX as usize - 4096, 1 << 62] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        assert!(arena.allocate(layout).is_err());
    }
    let layout = Layout::from_size_align(isize::MAX as usize - 8191, 4096).unwrap();
    assert!(arena.allocate(layout).is_err());
    still_works(&arena);
}

#[test]
fn failing_upstream_is_an_error_and_recoverable() {
    let upstream = Tracking::new();
    let arena = Monotonic::new_in(&upstream);
    upstream.fail_after(0);
    assert!(arena.allocate(Layout::new::<u64>()).is_err());
    upstream.heal();
    still_works(&arena);
}

#[test]
fn upstream_failing_mid_growth_keeps_earlier_blocks() {
    let upstream = Tracking::new();
    let arena = Monotonic::new_in(&upstream);
    let mut blocks = Blocks::default();
    let layout = Layout::from_size_align(200, 8).unwrap();
    upstream.fail_after(3);
    while let Ok(block) = arena.allocate(layout) {
        blocks.add(block, layout);
    }
    blocks.verify();
    upstream.heal();
    still_works(&arena);
    blocks.verify();
}

#[test]
fn budget_caps_upstream_bytes() {
    let upstream = Tracking::new();
    let mut arena = Monotonic::new_in(&upstream);
    arena.set_budget(Some(64 << 10));
    assert_eq!(arena.budget(), Some(64 << 10));
    let layout = Layout::from_size_align(100, 8).unwrap();
    let mut n = 0;
    while arena.allocate(layout).is_ok() {
        n += 1;
    }
    assert!(arena.stats().held <= 64 << 10);
    // Nearly to the byte; with debug-checks each chunk also spends a guard page.
    let floor = if cfg!(feature = "debug-checks") { 32 << 10 } else { 60 << 10 };
    assert!(n * 100 > floor, "the budget is used up: {n} blocks");
    arena.reset();
    still_works(&arena); // spare chunks are within the budget
    arena.set_budget(None);
    assert!(arena.allocate(Layout::from_size_align(1 << 20, 8).unwrap()).is_ok());
}

#[test]
fn try_with_capacity_of_a_huge_size_fails() {
    let upstream = Tracking::new();
    assert!(Monotonic::try_with_capacity_in(usize::MAX, &upstream).is_err());
    assert!(Monotonic::try_with_capacity_in(isize::MAX as usize, &upstream).is_err());
}

#[test]
#[should_panic(expected = "could not get its first chunk")]
fn with_capacity_panics_with_a_message() {
    let _ = Monotonic::with_capacity(usize::MAX);
}

#[test]
fn gigabyte_alignment_is_served_or_refused_cleanly() {
    let upstream = Tracking::new();
    let arena = Monotonic::new_in(&upstream);
    let layout = Layout::from_size_align(8, 1 << 30).unwrap();
    if let Ok(block) = arena.allocate(layout) {
        assert_eq!(block.cast::<u8>().as_ptr().addr() % (1 << 30), 0);
    }
    still_works(&arena);
}

#[test]
fn release_twice_and_reset_on_an_empty_arena_leave_it_usable() {
    let upstream = Tracking::new();
    let mut arena = Monotonic::new_in(&upstream);
    arena.reset();
    arena.release();
    arena.release();
    arena.reset();
    still_works(&arena);
}
