//! With the `debug-checks` feature: each check fires with a message that
//! names the mistake, and freed memory is filled with `FREED_BYTE`.

use core::alloc::Layout;

use memres::Monotonic;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

#[test]
#[should_panic(expected = "double free")]
fn double_free_is_caught() {
    let arena = Monotonic::new();
    let a = arena.allocate(layout(32)).unwrap().cast::<u8>();
    let _b = arena.allocate(layout(32)).unwrap();
    // SAFETY: none, on purpose: the second call frees `a` again, which must panic.
    unsafe {
        arena.deallocate(a, layout(32));
        arena.deallocate(a, layout(32));
    }
}

#[test]
#[should_panic(expected = "but the block was allocated with size 32 and alignment 8")]
fn wrong_layout_is_caught() {
    let arena = Monotonic::new();
    let a = arena.allocate(layout(32)).unwrap().cast::<u8>();
    // SAFETY: none, on purpose: the wrong size, which must panic.
    unsafe { arena.deallocate(a, layout(16)) };
}

#[test]
#[should_panic(expected = "foreign pointer, not allocated by this arena")]
fn foreign_pointer_is_caught() {
    let arena = Monotonic::new();
    let other = Monotonic::new();
    let _a = arena.allocate(layout(32)).unwrap();
    let b = other.allocate(layout(32)).unwrap().cast::<u8>();
    // SAFETY: none, on purpose: `b` belongs to `other`, which must panic.
    unsafe { arena.deallocate(b, layout(32)) };
}

#[test]
#[should_panic(expected = "double free (the block was rewound away by a checkpoint rewind, and no block may be used")]
fn free_after_rewind_is_caught() {
    let mut arena = Monotonic::new();
    let cp = arena.checkpoint();
    let a = arena.allocate(layout(32)).unwrap().cast::<u8>();
    arena.rewind(cp);
    // SAFETY: none, on purpose: the rewind freed `a`, which must panic.
    unsafe { arena.deallocate(a, layout(32)) };
}

#[test]
#[should_panic(expected = "double free (the block was taken back by reset(), and no block may be used or freed")]
fn free_after_reset_says_so() {
    let mut arena = Monotonic::new();
    let a = arena.allocate(layout(32)).unwrap().cast::<u8>();
    arena.reset();
    // SAFETY: none, on purpose: the reset took `a` back, which must panic.
    unsafe { arena.deallocate(a, layout(32)) };
}

#[test]
#[should_panic(expected = "a wrong-allocator free; the block belongs to memres::UnsyncPool #")]
fn wrong_allocator_free_names_the_owner() {
    let arena = Monotonic::new();
    let pool = memres::UnsyncPool::new();
    let _a = arena.allocate(layout(32)).unwrap();
    let b = pool.allocate(layout(32)).unwrap().cast::<u8>();
    // SAFETY: none, on purpose: `b` is the pool's, freed to the arena, which must panic.
    unsafe { arena.deallocate(b, layout(32)) };
}

// Under AddressSanitizer the same reads are reported as use-after-poison
// instead (which `asan.rs` checks), so this test runs without it.
#[cfg(not(feature = "asan"))]
#[test]
fn freed_memory_is_filled() {
    let mut arena = Monotonic::new();
    let a = arena.allocate(layout(64)).unwrap().cast::<u8>();
    // SAFETY: 64 writable bytes.
    unsafe { a.as_ptr().write_bytes(1, 64) };
    // SAFETY: `a` is the most recent block; rolling it back retires its bytes.
    unsafe { arena.deallocate(a, layout(64)) };
    // Reading retired bytes is reading memory the arena still owns (a chunk
    // from upstream), which is what this check is about.
    // SAFETY: the chunk is alive, and no block lives there.
    let bytes = unsafe { core::slice::from_raw_parts(a.as_ptr(), 64) };
    assert!(bytes.iter().all(|&b| b == memres::FREED_BYTE));
    let b = arena.allocate(layout(64)).unwrap().cast::<u8>();
    // SAFETY: as above.
    unsafe { b.as_ptr().write_bytes(2, 64) };
    arena.reset();
    // SAFETY: as above: reset keeps the (single) chunk.
    let bytes = unsafe { core::slice::from_raw_parts(b.as_ptr(), 64) };
    assert!(bytes.iter().all(|&x| x == memres::FREED_BYTE));
}

#[test]
fn correct_use_passes_every_check() {
    let mut arena = Monotonic::new();
    for _ in 0..3 {
        let mut v = allocator_api2::vec::Vec::new_in(&arena);
        v.extend(0..10_000u32);
        v.shrink_to(5000);
        let mut w = allocator_api2::vec::Vec::new_in(&arena);
        w.extend(0..100u8);
        drop(v);
        drop(w);
        arena.reset();
    }
}

/// A write past the end of a chunk's data lands on the guard page and faults.
/// The write happens in a child process (this test binary, run again), and
/// the parent checks that the child died of SIGSEGV (or, under ASan, that
/// ASan stopped it even earlier).
#[cfg(all(unix, not(miri)))]
#[test]
fn overflow_past_a_chunk_faults_on_the_guard_page() {
    use std::os::unix::process::ExitStatusExt;

    const CHILD: &str = "MEMRES_GUARD_PAGE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let arena = Monotonic::new();
        let size = 10_000; // a chunk of its own: whole pages of data, then the guard
        let block = arena.allocate(layout(size)).unwrap().cast::<u8>().as_ptr();
        for i in size..size + 2 * 4096 + 64 {
            // SAFETY: none, on purpose: this walks off the block's end, into
            // the data's rounding and then the guard page, which must fault.
            unsafe { block.add(i).write_volatile(0xAB) };
        }
        std::process::exit(0); // not reached when the guard page works
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "debug_checks::overflow_past_a_chunk_faults_on_the_guard_page", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    if cfg!(feature = "asan") {
        // Under ASan the poisoned rounding before the guard page stops it first.
        let report = String::from_utf8_lossy(&output.stderr);
        assert!(report.contains("use-after-poison"), "the overflow was not stopped: {output:?}");
    } else {
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGSEGV),
            "the child was not stopped by the guard page: {output:?}"
        );
    }
}
