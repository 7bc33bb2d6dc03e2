//! How the thread-safe arena scales: each thread allocates `n` small boxes
//! (32 bytes) from one arena and reads them back, then the arena is reset.
//! Reported per allocation and per thread (with two threads, the slower
//! one's time, started together, thread start-up not counted), median of
//! interleaved rounds, as
//! ratios to the single-threaded `Monotonic` doing the same on one thread:
//! `SyncMonotonic` on 1 and 2 threads, and a `Mutex<Monotonic>` shared by 2
//! threads (the obvious alternative). On this 2-core machine, 2 threads
//! have a core each.
//!
//! ```text
//! cargo run --release -p memres-workloads --example sync_arena [rounds]
//! ```

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Instant;

use allocator_api2::alloc::{Allocator, Layout};
use memres::{Monotonic, SyncMonotonic};

const N: usize = 200_000;

/// Allocates `N` 32-byte blocks through `alloc`, writes and sums them.
fn fill<A: Allocator>(alloc: &A) -> u64 {
    let layout = Layout::new::<[u64; 4]>();
    let mut sum = 0u64;
    for i in 0..N as u64 {
        let block = alloc.allocate(layout).expect("the arena serves").cast::<[u64; 4]>();
        // SAFETY: a fresh block for `[u64; 4]`.
        unsafe {
            block.as_ptr().write([i, i ^ 1, i + 2, i * 3]);
            sum = sum.wrapping_add((*block.as_ptr())[3]);
        }
    }
    sum
}

/// `Allocator` over a `Mutex<Monotonic>`: one lock per allocation.
struct Locked<'a>(&'a Mutex<Monotonic<'static>>);

// SAFETY: forwards to the arena under its lock; blocks live until its reset.
unsafe impl Allocator for Locked<'_> {
    fn allocate(&self, layout: Layout) -> Result<core::ptr::NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        self.0.lock().unwrap().allocate(layout)
    }
    unsafe fn deallocate(&self, _ptr: core::ptr::NonNull<u8>, _layout: Layout) {}
}

fn time(f: impl FnOnce() -> u64) -> f64 {
    let start = Instant::now();
    black_box(f());
    start.elapsed().as_nanos() as f64
}

/// Two threads run `f` at once (started together at a barrier); the time of
/// the slower one's `f`, so thread start-up is not counted.
fn time_two(f: impl Fn() -> u64 + Sync) -> f64 {
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let run = || {
            barrier.wait();
            time(&f)
        };
        let a = s.spawn(run);
        let b = s.spawn(run);
        a.join().unwrap().max(b.join().unwrap())
    })
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(15);
    let mut mono = Monotonic::new();
    let mut sync = SyncMonotonic::new();
    let mut locked = Mutex::new(Monotonic::new());
    let mut results: [Vec<f64>; 4] = Default::default();
    for _ in 0..rounds + 2 {
        let t = [
            time(|| fill(&&mono)),
            time(|| fill(&&sync)),
            time_two(|| fill(&&sync)),
            time_two(|| fill(&Locked(&locked))),
        ];
        mono.reset();
        sync.reset();
        locked.get_mut().unwrap().reset();
        for (r, t) in results.iter_mut().zip(t) {
            r.push(t / N as f64); // per allocation, per thread (each did N)
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.drain(..2); // warm-up rounds
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let m: Vec<f64> = results.iter_mut().map(median).collect();
    println!("Per allocation and thread, median of {rounds} rounds ({N} 32-byte blocks per thread):\n");
    println!("| arena | threads | ns | vs Monotonic |");
    println!("|---|---:|---:|---:|");
    for (name, threads, ns) in
        [("Monotonic", 1, m[0]), ("SyncMonotonic", 1, m[1]), ("SyncMonotonic", 2, m[2]), ("Mutex<Monotonic>", 2, m[3])]
    {
        println!("| {name} | {threads} | {ns:.2} | {:.2}x |", ns / m[0]);
    }
}
