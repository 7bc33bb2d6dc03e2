//! The pools' default-on misuse checks, misuse by misuse, for both pools:
//! each case does one misuse through the `Allocator` API, expects it
//! reported (under `OnMisuse::Report`, so the test goes on), then runs a
//! checked workload that must see distinct, intact blocks: no misuse may
//! hand out a live block, a block twice, or an address the program chose.
//! A last test runs a double free in a child process under the default
//! policy, which must abort with the message.
//!
//! The misuses are undefined behaviour by the `Allocator` contract; this
//! suite exercises what the pools do about them natively, so it runs
//! neither under Miri nor the sanitizers, nor with `debug-checks` (whose
//! ledger catches these first, by panicking).

#![cfg(not(feature = "debug-checks"))]

#[path = "../support/mod.rs"]
mod support;

use core::alloc::Layout;
use core::ptr::NonNull;

use allocator_api2::alloc::Allocator;
use memres::{Heap, OnMisuse, SyncPool, UnsyncPool};

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

fn alloc(pool: impl Allocator, size: usize) -> NonNull<u8> {
    pool.allocate(layout(size)).unwrap().cast()
}

/// Frees `ptr` as a block of `size` bytes (the misuses pass pointers that
/// are not live, which is the point).
fn free(pool: impl Allocator, ptr: NonNull<u8>, size: usize) {
    // SAFETY: deliberately violated by the cases; the pool must catch it.
    unsafe { pool.deallocate(ptr, layout(size)) }
}

/// Runs `misuse` and checks that exactly one misuse was reported, then that
/// `size`-byte blocks still come out of `pool` distinct and intact.
fn expect_reported<A: Allocator + Copy>(pool: A, name: &str, size: usize, misuse: impl FnOnce()) {
    let before = Heap::misuses();
    misuse();
    assert_eq!(Heap::misuses(), before + 1, "{name}: not reported exactly once");
    support::checked_workload(pool, name, size);
}

/// Every single-thread misuse on `pool`; `tag` names the pool in messages.
fn every_misuse<A: Allocator + Copy>(pool: A, tag: &str) {
    let name = |case: &str| format!("{tag}: {case}");

    expect_reported(pool, &name("double free"), 32, || {
        let p = alloc(pool, 32);
        free(pool, p, 32);
        free(pool, p, 32);
    });

    expect_reported(pool, &name("delayed double free"), 32, || {
        let (a, b) = (alloc(pool, 32), alloc(pool, 32));
        free(pool, a, 32);
        free(pool, b, 32);
        free(pool, a, 32);
    });

    expect_reported(pool, &name("double free across sizes"), 48, || {
        let p = alloc(pool, 48);
        free(pool, p, 48);
        free(pool, p, 8);
    });

    expect_reported(pool, &name("double free of the smallest class"), 8, || {
        let p = alloc(pool, 8);
        free(pool, p, 8);
        free(pool, p, 8);
    });

    // Free-list poisoning: an address written into a freed block must not
    // come out of allocate.
    let mut target = [0u64; 16];
    let target_addr = target.as_mut_ptr().addr();
    expect_reported(pool, &name("write after free (poisoned link)"), 96, || {
        let p = alloc(pool, 96);
        free(pool, p, 96);
        // SAFETY: deliberately writes to a freed block.
        unsafe { p.as_ptr().cast::<usize>().write(target_addr) };
        let first = alloc(pool, 96);
        let second = alloc(pool, 96);
        assert_ne!(first.as_ptr().addr(), target_addr, "the pool handed out the chosen address");
        assert_ne!(second.as_ptr().addr(), target_addr, "the pool handed out the chosen address");
        free(pool, first, 96);
        free(pool, second, 96);
    });

    // An 8-byte overflow and a 1-byte NUL overflow of a live block into a
    // free neighbour's link (each in a class no case used before, so the
    // blocks come out of a fresh carve in address order). The seal covers
    // every bit of the link, so both are caught.
    for (case, size, bytes) in [("8-byte overflow", 112usize, 8usize), ("1-byte NUL overflow", 120, 1)] {
        expect_reported(pool, &name(case), size, || {
            let (a, b) = (alloc(pool, size), alloc(pool, size));
            assert_eq!(b.as_ptr().addr() - a.as_ptr().addr(), size, "neighbours in one chunk");
            free(pool, b, size);
            // SAFETY: deliberately writes past `a`'s block into `b`'s link.
            unsafe { a.as_ptr().add(size).write_bytes(if bytes == 8 { 0x41 } else { 0 }, bytes) };
            let again = alloc(pool, size);
            let next = alloc(pool, size);
            assert!(again != a && next != a, "a live block handed out again");
            free(pool, again, size);
            free(pool, next, size);
            free(pool, a, size);
        });
    }

    expect_reported(pool, &name("realloc of a freed block"), 40, || {
        let p = alloc(pool, 40);
        free(pool, p, 40);
        // SAFETY: deliberately grows a freed block.
        let grown = unsafe { pool.grow(p, layout(40), layout(44)) };
        assert!(grown.is_err(), "a freed block was resized");
    });
}

#[test]
fn every_misuse_is_reported_and_none_hands_out_a_live_or_chosen_block() {
    Heap::set_on_misuse(OnMisuse::Report);
    every_misuse(&UnsyncPool::new(), "UnsyncPool");
    let sync = SyncPool::new();
    every_misuse(&sync, "SyncPool");

    // A block freed on one thread, then again on another: the second free
    // lands in another thread's cache, where only the seal can tell.
    let sync = &sync;
    expect_reported(sync, "SyncPool: double free from another thread", 64, || {
        let p = alloc(sync, 64).as_ptr().addr();
        std::thread::scope(|s| {
            s.spawn(|| {
                let p = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(p)).unwrap();
                free(sync, p, 64);
            });
        });
        let p = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(p)).unwrap();
        free(sync, p, 64);
    });
    Heap::set_on_misuse(OnMisuse::Abort);
}

/// Under the default policy a double free stops the process with one line
/// naming it (a child process runs the case, once per pool).
#[test]
fn by_default_a_double_free_aborts_with_a_message() {
    if let Some(which) = std::env::var_os("MEMRES_MISUSE_CHILD") {
        fn twice(pool: impl Allocator + Copy) {
            let p = alloc(pool, 32);
            free(pool, p, 32);
            free(pool, p, 32);
        }
        if which == "sync" {
            twice(&SyncPool::new())
        } else {
            twice(&UnsyncPool::new())
        }
        eprintln!("not stopped");
        std::process::exit(0);
    }
    for which in ["unsync", "sync"] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "by_default_a_double_free_aborts_with_a_message", "--nocapture"])
            .env("MEMRES_MISUSE_CHILD", which)
            .env_remove("MEMRES_ON_MISUSE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && !stderr.contains("not stopped"), "{which}: not stopped:\n{stderr}");
        assert!(stderr.contains("memres: double free at 0x"), "{which}: no message naming it:\n{stderr}");
    }
}
