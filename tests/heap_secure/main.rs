//! The heap's secure mode through the Rust API. The mode is fixed at the
//! heap's first use, so this runs itself again as children with
//! `MEMRES_SECURE=1`, once without and once with every small allocation
//! sampled (`MEMRES_GUARDED_SAMPLE_RATE=1`); the children check that blocks
//! stay distinct and intact under a mixed, multi-threaded workload, that
//! freed blocks are held back, that double frees (of quarantined, large and
//! guarded blocks) and resizing a freed block are reported, and that guarded
//! blocks resize, report their usable size and belong to the heap.
//!
//! Misuses are undefined behaviour by the `Allocator` contract; like
//! `heap_misuse`, this runs neither under Miri nor the sanitizers.

#[path = "../support/mod.rs"]
mod support;

use core::alloc::Layout;
use core::ptr::NonNull;
use std::process::Command;

use allocator_api2::alloc::Allocator;
use memres::{Heap, OnMisuse};

const CHILD: &str = "MEMRES_TEST_HEAP_SECURE_CHILD";

fn main() {
    if let Ok(kind) = std::env::var(CHILD) {
        return child(&kind);
    }
    for (kind, rate) in [("plain", "0"), ("sampled", "1")] {
        let me = std::env::current_exe().expect("the test's own path");
        let status = Command::new(me)
            .env(CHILD, kind)
            .env("MEMRES_SECURE", "1")
            .env("MEMRES_GUARDED_SAMPLE_RATE", rate)
            .status()
            .expect("the child runs");
        assert!(status.success(), "the {kind} child failed: {status}");
    }
    // This process did not ask: secure only if built with the feature.
    assert_eq!(Heap::secure(), cfg!(feature = "secure"));
    println!("heap_secure: secure mode, plain and sampled: ok");
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

fn child(kind: &str) {
    assert!(Heap::secure(), "MEMRES_SECURE=1 did not turn secure mode on");
    Heap::set_on_misuse(OnMisuse::Report);
    for size in [16, 48, 1000, 4096, 40_000, 300_000, 2 << 20] {
        support::checked_workload(Heap, &format!("{kind} {size}"), size);
    }
    threads();
    // Guarded blocks come back after the pool's other free slots (64 in
    // all): fewer allocations for the sampled child.
    held_back(if kind == "sampled" { 32 } else { 100 });
    double_frees();
    if kind == "sampled" {
        guarded_blocks();
    }
    // Quarantined blocks count as allocated until they leave (a purge
    // empties the thread's quarantine).
    Heap::purge();
    let allocated = Heap::stats().allocated;
    let held: Vec<_> = (0..200).map(|_| Heap.allocate(layout(64)).unwrap().cast::<u8>()).collect();
    for block in held {
        // SAFETY: allocated above, freed once.
        unsafe { Heap.deallocate(block, layout(64)) };
    }
    if kind == "plain" {
        assert!(Heap::stats().allocated >= allocated + 200 * 64, "the freed blocks are held back");
    }
    Heap::purge();
    assert_eq!(Heap::stats().allocated, allocated, "the quarantine's blocks went back at the purge");
}

/// Vectors, maps and strings built on four threads and freed on others.
fn threads() {
    let (send, receive) = std::sync::mpsc::channel::<allocator_api2::vec::Vec<String, Heap>>();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let send = send.clone();
            std::thread::spawn(move || {
                for round in 0..50 {
                    let mut v = allocator_api2::vec::Vec::new_in(Heap);
                    for i in 0..200 {
                        v.push(format!("{t}-{round}-{i}"));
                    }
                    let mut map = hashbrown::HashMap::new_in(Heap);
                    for (i, s) in v.iter().enumerate() {
                        map.insert(i, s.len());
                    }
                    assert_eq!(map.len(), 200);
                    send.send(v).unwrap();
                }
            })
        })
        .collect();
    drop(send);
    let mut got = 0;
    for v in receive {
        assert!(v.iter().enumerate().all(|(i, s)| s.ends_with(&format!("-{i}"))));
        got += 1;
    }
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(got, 200);
}

/// A freed small block does not come back for the next `n` allocations of
/// its size (default mode: it comes back at the next).
fn held_back(n: usize) {
    let a = Heap.allocate(layout(48)).unwrap().cast::<u8>();
    let was = a.as_ptr().addr();
    // SAFETY: allocated above, freed once.
    unsafe { Heap.deallocate(a, layout(48)) };
    for _ in 0..n {
        let b = Heap.allocate(layout(48)).unwrap().cast::<u8>();
        assert_ne!(b.as_ptr().addr(), was, "a freed block came back at once");
        // SAFETY: allocated above, freed once.
        unsafe { Heap.deallocate(b, layout(48)) };
    }
}

fn expect_reported(name: &str, misuse: impl FnOnce()) {
    let before = Heap::misuses();
    misuse();
    assert_eq!(Heap::misuses(), before + 1, "{name}: not reported exactly once");
}

fn double_frees() {
    for size in [48, 1000, 100_000, 2 << 20] {
        let block = Heap.allocate(layout(size)).unwrap().cast::<u8>();
        // SAFETY: allocated above; the second free is the misuse.
        expect_reported(&format!("double free of {size} bytes"), || unsafe {
            Heap.deallocate(block, layout(size));
            Heap.deallocate(block, layout(size));
        });
    }
    let block = Heap.allocate(layout(64)).unwrap().cast::<u8>();
    // SAFETY: allocated above; growing it after its free is the misuse.
    expect_reported("grow of a freed block", || unsafe {
        Heap.deallocate(block, layout(64));
        assert!(Heap.grow(block, layout(64), layout(128)).is_err());
    });
}

/// With every small allocation sampled: blocks of the guarded pool.
fn guarded_blocks() {
    let block: NonNull<u8> = Heap.allocate(layout(100)).unwrap().cast();
    assert!(Heap::owns(block.as_ptr()));
    // SAFETY: a live block of the heap.
    let usable = unsafe { Heap::usable_size(block) };
    assert!((100..=4096).contains(&usable), "usable {usable}");
    // The block ends at its page's end, where the guard starts.
    assert_eq!((block.as_ptr().addr() + usable) % 4096, 0);
    // SAFETY: 100 bytes of a live block.
    unsafe { block.as_ptr().write_bytes(7, 100) };
    // SAFETY: a live block of 100 bytes, grown then shrunk, freed once.
    unsafe {
        let grown = Heap.grow(block, layout(100), layout(3000)).unwrap().cast::<u8>();
        assert!(core::slice::from_raw_parts(grown.as_ptr(), 100).iter().all(|&b| b == 7));
        let moved = Heap.shrink(grown, layout(3000), layout(50)).unwrap().cast::<u8>();
        assert!(core::slice::from_raw_parts(moved.as_ptr(), 50).iter().all(|&b| b == 7));
        let interior = NonNull::new_unchecked(moved.as_ptr().add(8));
        expect_reported("interior free of a guarded block", || Heap.deallocate(interior, layout(8)));
        Heap.deallocate(moved, layout(50));
        expect_reported("double free of a guarded block", || Heap.deallocate(moved, layout(50)));
    }
}
