//! The heap reads its limits and CPU count from the environment. Runs
//! itself again as a child with `MEMRES_HEAP_LIMIT`, `MEMRES_HEAP_SOFT_LIMIT`
//! and `MEMRES_HEAP_CPUS` set (the heap reads them once, at its first
//! charge, so the parent cannot set them for itself).

use core::alloc::Layout;
use std::process::Command;

use allocator_api2::alloc::Allocator;
use memres::{Heap, HeapLimits};

const CHILD: &str = "MEMRES_TEST_HEAP_ENV_CHILD";

fn main() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let me = std::env::current_exe().expect("the test's own path");
    let status = Command::new(me)
        .env(CHILD, "1")
        .env("MEMRES_HEAP_LIMIT", "48M")
        .env("MEMRES_HEAP_SOFT_LIMIT", "32768K")
        .env("MEMRES_HEAP_CPUS", "3")
        .status()
        .expect("the child runs");
    assert!(status.success(), "the child failed: {status}");
    // Malformed values are ignored (no limit), not misread.
    let me = std::env::current_exe().expect("the test's own path");
    let status = Command::new(me)
        .env(CHILD, "malformed")
        .env("MEMRES_HEAP_LIMIT", "48 MB")
        .env("MEMRES_HEAP_SOFT_LIMIT", "-1")
        .status()
        .expect("the child runs");
    assert!(status.success(), "the child failed: {status}");
    let cpus = Heap::cpus();
    let available = std::thread::available_parallelism().map_or(usize::MAX, |n| n.get());
    assert!((1..=available).contains(&cpus), "{cpus} CPUs, {available} available");
    println!("heap_env: limits from the environment: ok");
}

fn child() {
    if std::env::var(CHILD).as_deref() == Ok("malformed") {
        assert_eq!(Heap::limits(), HeapLimits::default());
        return;
    }
    assert_eq!(Heap::limits(), HeapLimits { soft: Some(32 << 20), hard: Some(48 << 20) });
    assert_eq!(Heap::cpus(), 3);
    let layout = Layout::from_size_align(1 << 20, 8).unwrap();
    let mut blocks = Vec::new();
    while let Ok(block) = Heap.allocate(layout) {
        // SAFETY: a fresh block of 1 MiB, touched so its memory is real.
        unsafe { block.cast::<u8>().as_ptr().write_bytes(1, layout.size()) };
        blocks.push(block.cast::<u8>());
        assert!(blocks.len() <= 64, "the 48 MiB limit never refused");
    }
    assert!((40..=48).contains(&blocks.len()), "refused after {} MiB", blocks.len());
    assert!(Heap::stats().resident <= 48 << 20);
    for block in blocks {
        // SAFETY: allocated above with `layout`.
        unsafe { Heap.deallocate(block, layout) };
    }
}
