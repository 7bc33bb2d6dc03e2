//! `SyncPool` across threads: cross-thread frees with contents checked,
//! a producer and a consumer that must not make the pool grow without
//! bound, threads that exit while others still hold their blocks, and a
//! pool released or dropped while threads that used it are still alive. A
//! stress test, not a benchmark; it runs under ThreadSanitizer in CI
//! (`-Zsanitizer=thread`) and under AddressSanitizer.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

use memres::{PoolOptions, SyncPool};

/// A block in flight between threads, with the byte it was filled with.
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    fill: u8,
}

// SAFETY: the block is owned by whoever holds the message; the pool lets
// any thread free it.
unsafe impl Send for Block {}

impl Block {
    fn new(pool: &SyncPool, size: usize, align: usize, fill: u8) -> Block {
        let layout = Layout::from_size_align(size, align).unwrap();
        let ptr = pool.allocate(layout).expect("the global allocator has memory").cast::<u8>();
        assert_eq!(ptr.as_ptr().addr() % align, 0, "aligned");
        // SAFETY: a fresh block of `size` bytes.
        unsafe { ptr.as_ptr().write_bytes(fill, size) };
        Block { ptr, layout, fill }
    }

    /// Checks the contents and frees the block.
    fn check_and_free(self, pool: &SyncPool) {
        // SAFETY: the block is live and was filled with `fill`.
        let bytes = unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) };
        assert!(bytes.iter().all(|&b| b == self.fill), "a block changed while it was live");
        // SAFETY: allocated by `pool` with `layout`, freed once.
        unsafe { pool.deallocate(self.ptr, self.layout) };
    }
}

/// Sizes 8..=2048 and alignments 1..=64, from a counter.
fn shape(i: usize) -> (usize, usize) {
    let size = 8 + (i * 37) % 2041;
    let align = 1 << (i % 7);
    (size, align)
}

#[test]
fn blocks_freed_by_other_threads_keep_their_contents() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 3000;
    let pool = SyncPool::new();
    // A ring: thread t sends its blocks to thread t + 1, which checks and
    // frees them, so every free is a cross-thread free.
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel::<Block>()).unzip();
    thread::scope(|s| {
        for (t, rx) in receivers.into_iter().enumerate() {
            let tx = senders[(t + 1) % THREADS].clone();
            let pool = &pool;
            s.spawn(move || {
                let mut kept = Vec::new();
                for i in 0..ROUNDS {
                    let (size, align) = shape(i + t);
                    let block = Block::new(pool, size, align, (i + t) as u8);
                    // Keep some blocks on this thread a while, free the rest far away.
                    if i % 5 == 0 {
                        kept.push(block);
                    } else {
                        tx.send(block).unwrap();
                    }
                    while let Ok(block) = rx.try_recv() {
                        block.check_and_free(pool);
                    }
                    if kept.len() > 50 {
                        kept.drain(..25).for_each(|b| b.check_and_free(pool));
                    }
                }
                drop(tx);
                kept.into_iter().for_each(|b| b.check_and_free(pool));
                // The channel closes once every thread has stopped sending.
                rx.into_iter().for_each(|b| b.check_and_free(pool));
            });
        }
        drop(senders);
    });
    let mut pool = pool;
    let live: usize = pool.class_stats().iter().map(|s| s.blocks_live).sum();
    assert_eq!(live, 0, "every block was freed by some thread");
}

#[test]
fn producer_and_consumer_do_not_grow_the_pool() {
    const BLOCKS: usize = 100_000;
    const IN_FLIGHT: usize = 256;
    let mut pool = SyncPool::with_options(PoolOptions { max_blocks_per_chunk: 256, ..Default::default() });
    let (tx, rx) = mpsc::sync_channel::<Block>(IN_FLIGHT);
    thread::scope(|s| {
        let pool = &pool;
        s.spawn(move || {
            for i in 0..BLOCKS {
                tx.send(Block::new(pool, 64, 8, i as u8)).unwrap();
            }
        });
        s.spawn(move || {
            for block in rx {
                block.check_and_free(pool);
            }
        });
    });
    let stats = pool.class_stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].blocks_live, 0);
    // Unbounded growth would hold BLOCKS * 64 = 6.4 MB; batches trade
    // through the centre instead, so the pool holds about what was in
    // flight plus two caches.
    assert!(stats[0].bytes_held < 200 << 10, "{stats:?}");
}

#[test]
fn threads_exit_while_others_hold_their_blocks() {
    let mut pool = SyncPool::new();
    let mut held = Vec::new();
    for round in 0..20 {
        let blocks = thread::scope(|s| {
            s.spawn(|| (0..100).map(|i| Block::new(&pool, shape(i).0, 8, round as u8)).collect::<Vec<_>>())
                .join()
                .unwrap()
        });
        // The thread that allocated them is gone; its cache went back.
        held.extend(blocks);
        if round % 2 == 1 {
            held.drain(..100).for_each(|b| b.check_and_free(&pool));
        }
    }
    let live: usize = pool.class_stats().iter().map(|s| s.blocks_live).sum();
    assert_eq!(live, held.len());
    held.into_iter().for_each(|b| b.check_and_free(&pool));
    let live: usize = pool.class_stats().iter().map(|s| s.blocks_live).sum();
    assert_eq!(live, 0);
}

#[test]
fn short_lived_threads_reuse_what_earlier_ones_left() {
    let pool = SyncPool::new();
    let work = |pool: &SyncPool| {
        let blocks: Vec<_> = (0..200).map(|i| Block::new(pool, 48, 8, i as u8)).collect();
        blocks.into_iter().for_each(|b| b.check_and_free(pool));
    };
    // `join` waits until the thread has exited, thread-local destructors
    // (which hand its cache back) included; a scope's implicit join does not.
    thread::scope(|s| s.spawn(|| work(&pool)).join().unwrap());
    let after_one = pool.bytes_held();
    for _ in 0..50 {
        thread::scope(|s| s.spawn(|| work(&pool)).join().unwrap());
    }
    assert_eq!(pool.bytes_held(), after_one, "each exiting thread's cache went back for the next");
}

#[test]
fn release_and_drop_while_threads_that_used_the_pool_live_on() {
    let pool = Arc::new(SyncPool::new());
    let used = Arc::new(Barrier::new(2));
    let go_on = Arc::new(Barrier::new(2));
    let worker = {
        let (pool, used, go_on) = (Arc::clone(&pool), Arc::clone(&used), Arc::clone(&go_on));
        thread::spawn(move || {
            // Leave blocks in this thread's cache, then let go of the pool.
            (0..100).map(|i| Block::new(&pool, 32, 8, i as u8)).for_each(|b| b.check_and_free(&pool));
            drop(pool);
            used.wait();
            go_on.wait(); // the pool is released, then dropped, meanwhile
        })
    };
    used.wait();
    let mut pool = Arc::into_inner(pool).expect("the worker let go");
    pool.release();
    assert_eq!(pool.bytes_held(), 0);
    let block = Block::new(&pool, 32, 8, 7);
    block.check_and_free(&pool);
    drop(pool);
    go_on.wait();
    worker.join().unwrap(); // its exit must not touch the dropped pool
}

#[test]
fn one_thread_taking_turns_between_pools() {
    // Two pools in turn (both on the thread's hints), then three (each
    // call pushes the oldest hint out): every block keeps its contents and
    // goes back to the pool that made it.
    let pools = [SyncPool::new(), SyncPool::new(), SyncPool::new()];
    for turns in [2, 3] {
        let mut live: Vec<(usize, Block)> = Vec::new();
        for i in 0..3000 {
            let which = i % turns;
            let (size, align) = shape(i);
            live.push((which, Block::new(&pools[which], size, align, i as u8)));
            if i % 3 == 2 {
                let (owner, block) = live.swap_remove((i * 7) % live.len());
                block.check_and_free(&pools[owner]);
            }
        }
        for (owner, block) in live {
            block.check_and_free(&pools[owner]);
        }
    }
    for pool in &pools {
        let held = pool.bytes_held();
        assert!(held > 0, "each pool served its turns from its own chunks");
    }
}
