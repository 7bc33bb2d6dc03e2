//! `Monotonic` across threads: an arena is `Send`, so it can be built on one
//! thread, filled on another and reset or dropped on a third, with its
//! blocks' contents intact. A stress test, not a benchmark; it runs under
//! ThreadSanitizer in CI (`-Zsanitizer=thread`), which checks that moving
//! arenas (and the process-wide epoch counter behind checkpoints) is free of
//! data races.

use std::sync::mpsc;
use std::thread;

use allocator_api2::vec::Vec;
use memres::Monotonic;

/// A message between stages: an arena and what the previous stage expects
/// of it.
struct Job {
    arena: Monotonic<'static>,
    round: u64,
}

#[test]
fn arenas_move_between_threads_with_their_contents() {
    const ARENAS: usize = 4;
    const ROUNDS: u64 = 50;
    let (to_fill, filled_rx) = mpsc::channel::<Job>();
    let (to_reset, reset_rx) = mpsc::channel::<(Job, u64)>();
    let (done_tx, done_rx) = mpsc::channel::<Job>();

    // Stage 1: fill each arena with a checkpointed scratch phase and a
    // result that must survive the trip to the next thread.
    let filler = thread::spawn(move || {
        for mut job in filled_rx {
            let cp = job.arena.checkpoint();
            {
                let mut scratch = Vec::new_in(&job.arena);
                scratch.extend(0..1000u64);
                assert_eq!(scratch.iter().sum::<u64>(), 499_500);
            }
            job.arena.rewind(cp);
            let sum = {
                let mut data = Vec::new_in(&job.arena);
                data.extend((0..2000u64).map(|x| x * job.round));
                data.iter().sum::<u64>()
            };
            to_reset.send((job, sum)).unwrap();
        }
    });
    // Stage 2: check, reset, and pass the arena on.
    let resetter = thread::spawn(move || {
        for (mut job, sum) in reset_rx {
            assert_eq!(sum, 1_999_000 * job.round);
            assert!(job.arena.stats().held > 0);
            job.arena.reset();
            assert_eq!(job.arena.stats().used, 0);
            done_tx.send(job).unwrap();
        }
    });

    for _ in 0..ARENAS {
        to_fill.send(Job { arena: Monotonic::new(), round: 1 }).unwrap();
    }
    let mut finished = 0;
    for mut job in done_rx.iter() {
        if job.round == ROUNDS {
            finished += 1;
            if finished == ARENAS {
                break;
            }
            continue; // dropped here, on the main thread
        }
        job.round += 1;
        to_fill.send(job).unwrap();
    }
    drop(to_fill);
    filler.join().unwrap();
    resetter.join().unwrap();
}

#[test]
fn checkpoints_from_many_threads_never_collide() {
    // Each thread makes arenas and checkpoints concurrently; a checkpoint is
    // only ever accepted by the arena (and cycle) that made it.
    let handles: std::vec::Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(|| {
                for _ in 0..200 {
                    let mut a = Monotonic::new();
                    let b = Monotonic::new();
                    let cp = a.checkpoint();
                    let foreign = b.checkpoint();
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.rewind(foreign)));
                    assert!(result.is_err(), "a foreign checkpoint was accepted");
                    a.rewind(cp);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

mod sync_monotonic {
    //! `SyncMonotonic`: one arena, many threads allocating from it at once.
    //! Run under ThreadSanitizer in CI with the rest of this file.

    use core::alloc::Layout;
    use std::collections::HashSet;

    use allocator_api2::alloc::Allocator;
    use allocator_api2::boxed::Box;
    use allocator_api2::vec::Vec;
    use memres::SyncMonotonic;

    /// Threads fill vectors, boxes and strings from one arena at once; every
    /// block keeps its contents, no two live blocks overlap, and a reset
    /// after the threads are done takes it all back, cycle after cycle.
    #[test]
    fn threads_allocate_at_once_and_a_reset_takes_everything_back() {
        // Miri checks every access: fewer and smaller rounds there.
        let (cycles, boxes_each, longs) = if cfg!(miri) { (2, 50, 300) } else { (5, 2_000, 10_000) };
        let mut arena = SyncMonotonic::new();
        for cycle in 0..cycles {
            let ranges = std::thread::scope(|s| {
                let workers: std::vec::Vec<_> = (0..4u64)
                    .map(|t| {
                        let arena = &arena;
                        s.spawn(move || {
                            let mut ranges = std::vec::Vec::new();
                            let mut boxes = std::vec::Vec::new();
                            for i in 0..boxes_each {
                                let b = Box::new_in([t, i, cycle, t ^ i], arena);
                                ranges.push((&*b as *const [u64; 4]).addr()..(&*b as *const [u64; 4]).addr() + 32);
                                boxes.push(b);
                            }
                            let mut v = Vec::new_in(arena);
                            v.extend((0..longs).map(|i| i * t));
                            for (i, b) in boxes.iter().enumerate() {
                                assert_eq!(**b, [t, i as u64, cycle, t ^ i as u64], "a block changed");
                            }
                            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * t));
                            let r = v.as_ptr().addr();
                            ranges.push(r..r + v.len() * 8);
                            // Keep the blocks alive until the ranges are
                            // checked (their memory is the arena's; the reset
                            // takes it back).
                            boxes.into_iter().for_each(core::mem::forget);
                            core::mem::forget(v);
                            ranges
                        })
                    })
                    .collect();
                workers.into_iter().flat_map(|w| w.join().unwrap()).collect::<std::vec::Vec<_>>()
            });
            let mut sorted = ranges;
            sorted.sort_by_key(|r| r.start);
            for pair in sorted.windows(2) {
                assert!(pair[0].end <= pair[1].start, "two threads' blocks overlap: {pair:?}");
            }
            assert!(arena.stats().used as u64 >= 4 * (boxes_each * 32 + longs * 8));
            arena.reset();
            assert_eq!(arena.stats().used, 0);
        }
    }

    /// Frame arenas for a job system: every frame, four jobs on their own
    /// threads build scratch from the current frame's arena and keep a
    /// result each; the next frame's jobs read last frame's results while
    /// they allocate, and once warm no frame takes memory from upstream.
    #[test]
    fn frame_arenas_serve_jobs_on_threads_and_keep_results_one_frame() {
        let (frame_count, items) = if cfg!(miri) { (4, 40u64) } else { (30, 2_000u64) };
        let mut frames = memres::FrameArenas::new_sync();
        let mut results: std::vec::Vec<memres::Kept<[u64]>> = std::vec::Vec::new();
        let mut warm = None;
        for frame in 0..frame_count {
            frames.begin_frame();
            let frames_ref = &frames;
            let previous = &results;
            results = std::thread::scope(|s| {
                let jobs: std::vec::Vec<_> = (0..4u64)
                    .map(|job| {
                        s.spawn(move || {
                            if let Some(last) = previous.get(job as usize) {
                                let values = frames_ref.get(last).expect("last frame's result");
                                assert!(values.iter().all(|&x| x == (frame - 1) * 10 + job), "a kept value changed");
                            }
                            let mut scratch = Vec::new_in(frames_ref.current());
                            scratch.extend((0..items).map(|i| i ^ job));
                            let boxes: std::vec::Vec<_> =
                                (0..items / 4).map(|i| Box::new_in([i, job], frames_ref.current())).collect();
                            assert!(boxes.iter().enumerate().all(|(i, b)| **b == [i as u64, job]));
                            assert_eq!(scratch.iter().filter(|&&x| x == job).count(), 1);
                            frames_ref.keep_slice(&[frame * 10 + job; 16]).expect("memory")
                        })
                    })
                    .collect();
                jobs.into_iter().map(|j| j.join().unwrap()).collect()
            });
            if frame == 3 {
                warm = Some(frames.upstream_allocs());
            }
        }
        assert_eq!(Some(frames.upstream_allocs()), warm, "no upstream call after frame 3");
    }

    /// A thread's newest block rolls back when freed and grows in place;
    /// another thread's blocks are left alone.
    #[test]
    fn the_newest_block_of_a_thread_rolls_back_and_grows_in_place() {
        let arena = SyncMonotonic::new();
        let a_ = &arena; // the `Allocator` is `&SyncMonotonic`
        let layout = Layout::from_size_align(64, 8).unwrap();
        let a = Allocator::allocate(&a_, layout).unwrap().cast::<u8>();
        // SAFETY: `a` is the newest block of this thread.
        unsafe { Allocator::deallocate(&a_, a, layout) };
        let b = Allocator::allocate(&a_, layout).unwrap().cast::<u8>();
        assert_eq!(a, b, "the freed newest block is handed out again");
        // SAFETY: `b` is live with `layout`, and the newest block.
        let grown = unsafe { Allocator::grow(&a_, b, layout, Layout::from_size_align(1024, 8).unwrap()) }.unwrap();
        assert_eq!(grown.cast::<u8>(), b, "grown in place");
        // SAFETY: as above, now 1024 bytes; shrinking gives the tail back.
        let shrunk = unsafe { Allocator::shrink(&a_, b, Layout::from_size_align(1024, 8).unwrap(), layout) }.unwrap();
        assert_eq!(shrunk.cast::<u8>(), b);
        let c = Allocator::allocate(&a_, layout).unwrap().cast::<u8>();
        assert_eq!(c.as_ptr().addr(), b.as_ptr().addr() + 64, "the tail went back to the region");
        let other = std::thread::scope(|s| {
            s.spawn(|| Allocator::allocate(&a_, layout).unwrap().cast::<u8>().as_ptr().addr()).join().unwrap()
        });
        assert!(other.abs_diff(b.as_ptr().addr()) >= 1024, "another thread bumps in its own region");
    }

    /// Blocks too big for a region, many arenas used by one thread in turn
    /// (more than its table keeps), and an arena dropped and another made:
    /// blocks stay distinct and intact.
    #[test]
    fn big_blocks_many_arenas_and_dropped_arenas() {
        let arenas: std::vec::Vec<SyncMonotonic> = (0..6).map(|_| SyncMonotonic::new()).collect();
        let mut seen = HashSet::new();
        let mut live = std::vec::Vec::new();
        // Big blocks are over a quarter of the largest region (64 KiB); Miri
        // checks every byte, so fewer rounds there.
        let (rounds, big) = if cfg!(miri) { (20, 70_000) } else { (50, 200_000) };
        for round in 0..rounds {
            let arena = &arenas[round % arenas.len()];
            let size = if round % 7 == 0 { big } else { 24 + round };
            let layout = Layout::from_size_align(size, 8).unwrap();
            let block = arena.allocate(layout).unwrap().cast::<u8>();
            // SAFETY: a fresh block of `size` bytes.
            unsafe { block.as_ptr().write_bytes(round as u8, size) };
            assert!(seen.insert(block.as_ptr().addr()), "a block handed out twice");
            live.push((block, size, round as u8));
        }
        for (block, size, tag) in &live {
            // SAFETY: live blocks of `size` bytes, written above.
            let bytes = unsafe { core::slice::from_raw_parts(block.as_ptr(), *size) };
            assert!(bytes.iter().all(|b| b == tag), "a block changed");
        }
        drop(live);
        drop(arenas);
        // A new arena after the old ones are gone: the thread's stale
        // entries must not be taken for it.
        let fresh = SyncMonotonic::new();
        let mut v = Vec::new_in(&fresh);
        v.extend(0..100u64);
        assert_eq!(v.iter().sum::<u64>(), 4950);
    }
}
