//! The heap's default-on misuse checks, misuse by misuse: each case does one
//! misuse through the `Allocator` API, expects it reported (under
//! `OnMisuse::Report`, so the test goes on), then runs a checked workload
//! that must see distinct, intact blocks: no misuse may hand out a live
//! block, a block twice, or an address the program chose. A last test runs
//! a double free in a child process under the default policy, which must
//! abort with the message.
//!
//! The misuses are undefined behaviour by the `Allocator` contract; this
//! suite exercises what the heap does about them natively, so it runs
//! neither under Miri nor the sanitizers.

#[path = "../support/mod.rs"]
mod support;

use core::alloc::Layout;
use core::ptr::NonNull;

use allocator_api2::alloc::Allocator;
use memres::{Heap, OnMisuse};

fn alloc(size: usize) -> NonNull<u8> {
    Heap.allocate(Layout::from_size_align(size, 8).unwrap()).unwrap().cast()
}

/// Frees `ptr` as a block of `size` bytes (the misuses pass pointers that
/// are not, which is the point).
fn free(ptr: NonNull<u8>, size: usize) {
    // SAFETY: deliberately violated by the cases; the heap must catch it.
    unsafe { Heap.deallocate(ptr, Layout::from_size_align(size, 8).unwrap()) }
}

/// Runs `misuse` and checks that the heap reported exactly one misuse,
/// then that `size`-byte blocks still come out distinct and intact.
fn expect_reported(name: &str, size: usize, misuse: impl FnOnce()) {
    let before = Heap::misuses();
    misuse();
    assert_eq!(Heap::misuses(), before + 1, "{name}: not reported exactly once");
    support::checked_workload(Heap, name, size);
}

/// As [`expect_reported`], for a misuse the heap may also survive without
/// a report: then it must still hand out no live block.
fn expect_reported_or_survived(name: &str, size: usize, misuse: impl FnOnce()) {
    let before = Heap::misuses();
    misuse();
    assert!(Heap::misuses() <= before + 1, "{name}: reported more than once");
    support::checked_workload(Heap, name, size);
}

#[test]
fn every_misuse_is_reported_and_none_hands_out_a_live_or_chosen_block() {
    Heap::set_on_misuse(OnMisuse::Report);

    expect_reported("double free", 32, || {
        let p = alloc(32);
        free(p, 32);
        free(p, 32);
    });

    expect_reported("delayed double free", 32, || {
        let (a, b) = (alloc(32), alloc(32));
        free(a, 32);
        free(b, 32);
        free(a, 32);
    });

    expect_reported("double free across sizes", 48, || {
        let p = alloc(48);
        free(p, 48);
        free(p, 8);
    });

    expect_reported("double free from another thread", 64, || {
        let p = alloc(64).as_ptr().addr();
        std::thread::spawn(move || {
            let p = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(p)).unwrap();
            free(p, 64);
            free(p, 64);
        })
        .join()
        .unwrap();
    });

    // Free-list poisoning: an address written into a freed block must not
    // come out of malloc.
    let mut target = [0u64; 8];
    let target_addr = target.as_mut_ptr().addr();
    expect_reported("write after free (poisoned link)", 96, || {
        let p = alloc(96);
        free(p, 96);
        // SAFETY: deliberately writes to a freed block.
        unsafe { p.as_ptr().cast::<usize>().write(target_addr) };
        let first = alloc(96);
        let second = alloc(96);
        assert_ne!(second.as_ptr().addr(), target_addr, "the heap handed out the chosen address");
        free(first, 96);
        free(second, 96);
    });

    // An 8-byte overflow and a 1-byte NUL overflow of a live block into a
    // free neighbour's link (each in a class no case used before, so its
    // page is fresh and hands out neighbours in order). The 1-byte one only
    // changes the link's lowest byte: now and then (the key is random) that
    // still decodes to the start of a free block of the page, and the list
    // just skips a few free blocks. It must never lead to a live one.
    for (name, size, bytes) in [("8-byte overflow", 112usize, 8usize), ("1-byte NUL overflow", 120, 1)] {
        let misuse = || {
            let (a, b) = (alloc(size), alloc(size));
            assert_eq!(b.as_ptr().addr() - a.as_ptr().addr(), size, "neighbours in one page");
            free(b, size);
            // SAFETY: deliberately writes past `a`'s block into `b`'s link.
            unsafe { a.as_ptr().add(size).write_bytes(if bytes == 8 { 0x41 } else { 0 }, bytes) };
            let again = alloc(size); // b, whose link is now garbage
            let next = alloc(size);
            assert_ne!(next, a, "a live block handed out again");
            free(again, size);
            free(next, size);
            free(a, size);
        };
        if bytes == 8 { expect_reported(name, size, misuse) } else { expect_reported_or_survived(name, size, misuse) }
    }

    expect_reported("interior free (small)", 64, || {
        let p = alloc(64);
        // SAFETY: a pointer inside the block.
        free(unsafe { p.add(16) }, 64);
        free(p, 64);
    });

    expect_reported("misaligned free (small)", 64, || {
        let p = alloc(64);
        // SAFETY: as above.
        free(unsafe { p.add(1) }, 64);
        free(p, 64);
    });

    const LARGE: usize = 1 << 20;
    for (name, offset) in [("interior free (large)", 65_536), ("misaligned free (large)", 1)] {
        expect_reported(name, 64, || {
            let p = alloc(LARGE);
            // SAFETY: a pointer inside the block.
            free(unsafe { p.add(offset) }, LARGE);
            free(p, LARGE);
        });
    }

    // Medium blocks (whole pages of a small segment, 32 KiB to 512 KiB).
    const MEDIUM: usize = 100_000;
    expect_reported("double free (medium)", MEDIUM, || {
        let p = alloc(MEDIUM);
        free(p, MEDIUM);
        free(p, MEDIUM);
    });

    expect_reported("double free (medium, the first from another thread)", MEDIUM, || {
        let p = alloc(MEDIUM);
        let addr = p.as_ptr().expose_provenance();
        std::thread::spawn(move || {
            free(NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(addr)).unwrap(), MEDIUM);
        })
        .join()
        .unwrap();
        free(p, MEDIUM); // parked for its owner, not taken back yet
    });

    for (name, offset) in [("interior free (medium, first page)", 16), ("interior free (medium, later page)", 65_536)] {
        expect_reported(name, MEDIUM, || {
            let p = alloc(MEDIUM);
            // SAFETY: a pointer inside the block.
            free(unsafe { p.add(offset) }, MEDIUM);
            free(p, MEDIUM);
        });
    }

    expect_reported("realloc of a freed block (medium)", MEDIUM, || {
        let p = alloc(MEDIUM);
        free(p, MEDIUM);
        let layout = Layout::from_size_align(MEDIUM, 8).unwrap();
        // SAFETY: deliberately grows a freed block.
        let grown = unsafe { Heap.grow(p, layout, Layout::from_size_align(MEDIUM + 8, 8).unwrap()) };
        assert!(grown.is_err(), "a freed block was resized");
    });

    expect_reported("double free (large)", LARGE, || {
        let p = alloc(LARGE);
        free(p, LARGE);
        free(p, LARGE);
    });

    expect_reported("double free (large, after the cache let it go)", LARGE, || {
        let p = alloc(LARGE);
        free(p, LARGE);
        Heap::purge(); // the freed mapping is unmapped now
        free(p, LARGE);
    });

    expect_reported("realloc of a freed block", 40, || {
        let p = alloc(40);
        free(p, 40);
        let layout = Layout::from_size_align(40, 8).unwrap();
        // SAFETY: deliberately grows a freed block.
        let grown = unsafe { Heap.grow(p, layout, Layout::from_size_align(44, 8).unwrap()) };
        assert!(grown.is_err(), "a freed block was resized");
    });

    expect_reported("free of a stack address", 32, || {
        let mut local = [0u8; 64];
        free(NonNull::new(local.as_mut_ptr()).unwrap(), 64);
        assert!(local.iter().all(|&b| b == 0), "the heap wrote to memory it does not own");
    });

    // A wild pointer below 4 MiB, from a thread that has not freed a block
    // yet (its "segment I last freed into" hint is unset): once taken for a
    // block of a segment at address 0, which crashed.
    expect_reported("free of a wild low address, first free of a thread", 32, || {
        std::thread::spawn(|| {
            let p = alloc(32);
            free(NonNull::new(core::ptr::without_provenance_mut(0x20_0010)).unwrap(), 32);
            free(p, 32);
        })
        .join()
        .unwrap();
    });

    // The start of a small segment (its header, which holds no block), just
    // after a free into that segment (so the thread's hint names it).
    expect_reported("free of a small segment's header", 32, || {
        let (p, q) = (alloc(32), alloc(32));
        free(p, 32);
        let header = q.as_ptr().addr() & !((4 << 20) - 1);
        free(NonNull::new(q.as_ptr().with_addr(header)).unwrap(), 32);
        free(q, 32);
    });

    Heap::set_on_misuse(OnMisuse::Abort);
}

/// Under the default policy a double free stops the process with one line
/// naming it (a child process runs the case).
#[test]
fn by_default_a_double_free_aborts_with_a_message() {
    if std::env::var_os("MEMRES_MISUSE_CHILD").is_some() {
        let p = alloc(32);
        free(p, 32);
        free(p, 32);
        eprintln!("not stopped");
        std::process::exit(0);
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "by_default_a_double_free_aborts_with_a_message", "--nocapture"])
        .env("MEMRES_MISUSE_CHILD", "1")
        .env_remove("MEMRES_ON_MISUSE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !stderr.contains("not stopped"), "not stopped:\n{stderr}");
    assert!(stderr.contains("memres: double free at 0x"), "no message naming it:\n{stderr}");
}
