//! `memres::Heap` under threads: frees from other threads, a producer and a
//! consumer, threads that exit while their blocks live on, many short-lived
//! threads, thread-local destructors that run after the heap's teardown
//! (the orphan heap), and purge requests served by other threads. Contents
//! are checked everywhere; run under TSan and ASan in CI. (A fork while
//! threads allocate is in `tests/heap_fork`, which TSan cannot run.)

#[path = "../support/mod.rs"]
mod support;

use std::sync::mpsc;
use std::thread;

use memres::Heap;

use support::{HeapBlock as Block, size_of_round};

/// The tests measure the process's mapped memory, which tests running in
/// parallel would disturb: each holds this while it runs.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn blocks_freed_by_other_threads_keep_their_contents() {
    let _serial = serial();
    const THREADS: usize = 4;
    const ROUNDS: usize = 20_000;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel::<Block>()).unzip();
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(t, rx)| {
            let tx = senders[(t + 1) % THREADS].clone();
            thread::spawn(move || {
                let mut kept = Vec::new();
                for i in 0..ROUNDS {
                    let block = Block::new(size_of_round(i + t), (i + t) as u8);
                    if i % 4 == 0 {
                        kept.push(block);
                    } else {
                        tx.send(block).unwrap();
                    }
                    while let Ok(b) = rx.try_recv() {
                        b.check_and_free();
                    }
                    if kept.len() > 64 {
                        kept.drain(..32).for_each(Block::check_and_free);
                    }
                }
                drop(tx);
                kept.into_iter().for_each(Block::check_and_free);
                rx.into_iter().for_each(Block::check_and_free);
            })
        })
        .collect();
    drop(senders);
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn producer_and_consumer_do_not_grow_the_heap() {
    let _serial = serial();
    const BLOCKS: usize = 200_000;
    let (tx, rx) = mpsc::sync_channel::<Block>(256);
    let consumer = thread::spawn(move || rx.into_iter().for_each(Block::check_and_free));
    let before = Heap::stats().mapped;
    for i in 0..BLOCKS {
        tx.send(Block::new(16 + (i * 7) % 240, i as u8)).unwrap();
    }
    drop(tx);
    consumer.join().unwrap();
    // 256 blocks in flight need a few pages; without reuse of the
    // consumer's frees, 200 000 blocks would need about 27 MiB.
    let grown = Heap::stats().mapped.saturating_sub(before);
    assert!(grown < 16 << 20, "the heap grew by {grown} bytes");
}

#[test]
fn threads_exit_while_others_hold_their_blocks() {
    let _serial = serial();
    for round in 0..20 {
        let blocks: Vec<Block> = thread::spawn(move || {
            (0..2000).map(|i| Block::new(size_of_round(i + round), (i ^ round) as u8)).collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        // The thread is gone: its segments were abandoned with these blocks.
        let mut blocks = blocks.into_iter();
        blocks.by_ref().take(1000).for_each(Block::check_and_free);
        // Another short-lived thread frees the rest (and may adopt segments).
        let rest: Vec<Block> = blocks.collect();
        assert_eq!(rest.len(), 1000);
        thread::spawn(move || {
            let mine: Vec<Block> = (0..500).map(|i| Block::new(size_of_round(i), i as u8)).collect();
            rest.into_iter().for_each(Block::check_and_free);
            mine.into_iter().for_each(Block::check_and_free);
        })
        .join()
        .unwrap();
    }
}

/// Medium blocks (whole pages of a small segment) freed by another thread
/// are parked for their owner, which takes their pages back when it next
/// allocates a medium block: a thread whose medium blocks are all freed
/// elsewhere reuses their pages instead of mapping more.
#[test]
fn medium_blocks_freed_elsewhere_go_back_to_their_owner() {
    let _serial = serial();
    let (to_freer, freed) = mpsc::channel::<Vec<Block>>();
    let (done, rounds_done) = mpsc::channel::<()>();
    let freer = thread::spawn(move || {
        for blocks in freed {
            blocks.into_iter().for_each(Block::check_and_free);
            done.send(()).unwrap();
        }
    });
    let sizes = [40_000, 100_000, 200_000, 500_000];
    let round = |r: usize| -> Vec<Block> { (0..40).map(|i| Block::new(sizes[(i + r) % 4], (i + r) as u8)).collect() };
    // One round in flight at a time: this thread allocates the next while
    // the other frees the last.
    to_freer.send(round(0)).unwrap();
    let warm = Heap::stats().mapped;
    for r in 1..50 {
        let next = round(r);
        rounds_done.recv().unwrap();
        to_freer.send(next).unwrap();
    }
    drop(to_freer);
    freer.join().unwrap();
    // 49 rounds of ~8.4 MiB each, had nothing been reused.
    let grown = Heap::stats().mapped.saturating_sub(warm);
    assert!(grown < 48 << 20, "grew by {grown} bytes");
}

#[test]
fn short_lived_threads_do_not_leak_memory() {
    let _serial = serial();
    let run = || {
        for _ in 0..50 {
            thread::spawn(|| {
                let v: Vec<Block> = (0..300).map(|i| Block::new(size_of_round(i), i as u8)).collect();
                v.into_iter().for_each(Block::check_and_free);
            })
            .join()
            .unwrap();
        }
    };
    run();
    let warm = Heap::stats().mapped;
    for _ in 0..4 {
        run();
    }
    // Far below what 200 threads' worth of unreturned segments would take
    // (800 MiB).
    let grown = Heap::stats().mapped.saturating_sub(warm);
    assert!(grown < 64 << 20, "grew by {grown} bytes");
}

/// A thread-local destructor that runs after the heap's own (it was
/// registered first, and they run in reverse) allocates and frees through
/// the *orphan* heap, one shared heap behind a lock: its blocks are sound,
/// and other threads' blocks it frees go back too.
#[test]
fn thread_local_destructors_after_the_heaps_teardown_use_the_orphan_heap() {
    struct Late(Option<Block>);
    impl Drop for Late {
        fn drop(&mut self) {
            // Runs after this thread's heap record is gone.
            let mine: Vec<Block> = (0..100).map(|i| Block::new(size_of_round(i), i as u8)).collect();
            for b in mine {
                b.check_and_free();
            }
            if let Some(theirs) = self.0.take() {
                theirs.check_and_free();
            }
            LATE_RAN.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    std::thread_local! {
        static LATE: std::cell::RefCell<Late> = const { std::cell::RefCell::new(Late(None)) };
    }
    static LATE_RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let _serial = serial();
    let from_main = Block::new(300, 0x5a);
    thread::spawn(move || {
        // Registered before the thread's first heap allocation, so destroyed
        // after the heap's own thread-local.
        LATE.with(|late| late.borrow_mut().0 = Some(from_main));
        let warm: Vec<Block> = (0..50).map(|i| Block::new(size_of_round(i), 1)).collect();
        for b in warm {
            b.check_and_free();
        }
    })
    .join()
    .unwrap();
    assert!(LATE_RAN.load(std::sync::atomic::Ordering::SeqCst), "the late destructor ran");
    // The heap is still sound for everyone else.
    let after: Vec<Block> = (0..100).map(|i| Block::new(size_of_round(i), 9)).collect();
    for b in after {
        b.check_and_free();
    }
}

/// A purge request (here from `Heap::purge` on another thread, as a soft
/// limit makes) is served by each other thread at its next slow path: a
/// thread that freed a lot and then keeps allocating hands its free pages
/// back without calling `purge` itself.
#[test]
fn soft_limit_purge_requests_are_served_by_other_threads() {
    use memres::HeapLimits;
    let _serial = serial();
    let (to_worker, from_main) = mpsc::channel::<()>();
    let (to_main, from_worker) = mpsc::channel::<usize>();
    let worker = thread::spawn(move || {
        // Fill and free 8 MiB of 20 KB blocks (free pages stay resident).
        let blocks: Vec<Block> = (0..400).map(|i| Block::new(20_000, i as u8)).collect();
        for b in blocks {
            b.check_and_free();
        }
        to_main.send(0).unwrap();
        from_main.recv().unwrap();
        // Slow paths: one block of each of 40 classes takes 40 pages, and
        // the pending request is served at one of them. The blocks stay
        // live until the main thread has measured.
        let classes = Heap::class_stats();
        let blocks: Vec<Block> = classes[1..41].iter().map(|c| Block::new(c.size, 3)).collect();
        to_main.send(0).unwrap();
        from_main.recv().unwrap();
        for b in blocks {
            b.check_and_free();
        }
    });
    from_worker.recv().unwrap();
    let before = Heap::stats().resident;
    // A soft limit below what is resident makes the next charge ask every
    // thread to purge; this thread's charge is a new large block's (an
    // odd size, so no cached mapping serves it).
    let limits = Heap::limits();
    Heap::set_limits(HeapLimits { soft: Some(before / 2), hard: limits.hard });
    let trigger = Block::new((1 << 20) + 12_345, 4);
    Heap::set_limits(limits);
    to_worker.send(()).unwrap();
    from_worker.recv().unwrap();
    let after = Heap::stats().resident;
    to_worker.send(()).unwrap();
    worker.join().unwrap();
    trigger.check_and_free();
    // About 8 MiB of the worker's free pages, less the 40 it took again;
    // the trigger's 1 MiB comes on top.
    assert!(after + (3 << 20) <= before, "resident {before} -> {after}: the worker did not purge its free pages");
}
