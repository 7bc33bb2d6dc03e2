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
