//! `fork()` from a Rust program that uses `memres::Heap` while other
//! threads allocate and free: the child finds every heap lock free. A test
//! binary of its own: ThreadSanitizer (which runs `tests/heap_threads`)
//! does not support a fork from a multi-threaded process.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::thread;

use allocator_api2::alloc::Allocator;
use memres::Heap;

/// A block written with a pattern.
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u8,
}

// SAFETY: a block is plain memory owned by whoever holds this value.
unsafe impl Send for Block {}

impl Block {
    fn new(size: usize, tag: u8) -> Block {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let ptr = Heap.allocate(layout).unwrap().cast::<u8>();
        // SAFETY: a fresh block of `size` bytes.
        unsafe { ptr.as_ptr().write_bytes(tag, size) };
        Block { ptr, layout, tag }
    }

    fn check_and_free(self) {
        // SAFETY: the block is live and was written in full by `new`.
        let bytes = unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) };
        assert!(bytes.iter().all(|&b| b == self.tag), "a block's contents changed");
        // SAFETY: allocated by `new` with this layout.
        unsafe { Heap.deallocate(self.ptr, self.layout) };
    }
}

fn size_of_round(i: usize) -> usize {
    [16, 24, 40, 100, 256, 700, 3000, 20_000, 50_000][i % 9]
}

/// `fork()` while other threads allocate and free: the child finds every
/// heap lock free, allocates, frees and exits normally.
#[test]
fn fork_while_threads_allocate() {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|t| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut round = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let blocks: Vec<Block> = (0..64).map(|i| Block::new(size_of_round(i + t + round), 7)).collect();
                    for b in blocks {
                        b.check_and_free();
                    }
                    // Large blocks and thread turnover take the other locks.
                    thread::spawn(|| Block::new(1 << 20, 1).check_and_free()).join().unwrap();
                    round += 1;
                }
            })
        })
        .collect();
    for _ in 0..20 {
        // SAFETY: fork in a multi-threaded process: the child only allocates
        // through the heap (whose locks the fork handlers hold across the
        // fork) and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let blocks: Vec<Block> = (0..200).map(|i| Block::new(size_of_round(i), 5)).collect();
            for b in blocks {
                b.check_and_free();
            }
            Block::new(3 << 20, 6).check_and_free();
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just made.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child failed: {status:#x}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
}
