//! `fork()` from a Rust program that uses `memres::Heap` while other
//! threads allocate and free: the child finds every heap lock free. A test
//! binary of its own: ThreadSanitizer (which runs `tests/heap_threads`)
//! does not support a fork from a multi-threaded process.

#[path = "../support/mod.rs"]
mod support;

use std::thread;

use support::{HeapBlock as Block, size_of_round};

/// `fork()` while other threads allocate and free: the child finds every
/// heap lock free, allocates, frees and exits normally; and again with the
/// profiler sampling every few KiB, whose lock the threads take all along.
#[test]
fn fork_while_threads_allocate() {
    forks_while_threads_allocate();
    memres::profile::start(4096);
    forks_while_threads_allocate();
    memres::profile::stop();
    assert!(memres::profile::samples() > 0, "the threads were sampled");
}

fn forks_while_threads_allocate() {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A reader of the profile holds its lock for a while at a time.
    let reader = {
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = memres::profile::samples_taken();
            }
        })
    };
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
            // The profiler's lock is free too.
            let _ = memres::profile::samples();
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // A child that found a lock held would wait forever: 20 s, then it
        // is killed and the test fails.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            // SAFETY: polls the child just made.
            let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if done == pid {
                break;
            }
            if std::time::Instant::now() > deadline {
                // SAFETY: ends the stuck child, then reaps it.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                panic!("the child hung: a lock was held across the fork");
            }
            thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child failed: {status:#x}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    reader.join().unwrap();
}
