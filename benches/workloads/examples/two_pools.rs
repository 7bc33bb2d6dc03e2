//! One thread alternating between synchronized pools: what it costs next to
//! the same steps on one pool. A synchronized pool finds the calling
//! thread's cache through a per-thread hint; this measures whether a thread
//! that takes turns between two pools keeps its fast path.
//!
//! Each step pops the oldest of 1000 live blocks and pushes a new one (C++:
//! a `std::pmr::list<int>`; Rust: a ring of 32-byte boxes), on list/ring
//! `i % pools`. Reported per step, median of interleaved rounds, as the
//! ratio of two pools to one pool of the same kind (1.00: alternating is
//! free), for memres's `SyncPool` in Rust and `synchronized_pool_resource`
//! in C++, with std's `synchronized_pool_resource` beside them.
//!
//! ```text
//! cargo run --release -p memres-workloads --example two_pools [rounds]
//! ```

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Instant;

use allocator_api2::boxed::Box;
use memres::SyncPool;
use memres_workloads::{Resource, cxx_lists_churn};

const STEPS: usize = 1_000_000;

/// `STEPS` steps over `pools` rings of 1000 boxes, ring `i % pools` each.
fn rust_rings(pools: usize) -> u64 {
    let resources: Vec<SyncPool> = (0..pools).map(|_| SyncPool::new()).collect();
    let mut rings: Vec<VecDeque<Box<[u64; 4], &SyncPool>>> =
        resources.iter().map(|pool| (0..1000u64).map(|i| Box::new_in([i; 4], pool)).collect()).collect();
    let mut sum = 0u64;
    for i in 0..STEPS {
        let which = i % pools;
        let ring = &mut rings[which];
        let old = ring.pop_front().expect("the ring holds 1000 boxes");
        sum = sum.wrapping_add(old[3]);
        drop(old);
        ring.push_back(Box::new_in([i as u64; 4], &resources[which]));
    }
    drop(rings);
    sum
}

fn nanos_per_step(run: impl FnOnce() -> u64) -> f64 {
    let start = Instant::now();
    black_box(run());
    start.elapsed().as_nanos() as f64 / STEPS as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(7, |a| a.parse().expect("rounds: a number"));
    type Row = (&'static str, fn(usize) -> u64);
    let rows: [Row; 3] = [
        ("memres SyncPool (Rust)", rust_rings),
        ("memres::synchronized_pool_resource", |pools| cxx_lists_churn(Resource::MemresSyncPool, pools, STEPS)),
        ("std::pmr::synchronized_pool_resource", |pools| cxx_lists_churn(Resource::StdSyncPool, pools, STEPS)),
    ];
    // Both pool counts must compute the same steps' values.
    for (name, run) in &rows {
        let _ = (name, run(1), run(2));
    }
    let mut times = vec![[Vec::new(), Vec::new()]; rows.len()];
    for _ in 0..rounds {
        for (row, (_, run)) in rows.iter().enumerate() {
            for (slot, pools) in [1, 2].into_iter().enumerate() {
                times[row][slot].push(nanos_per_step(|| run(pools)));
            }
        }
    }
    println!("one thread, {STEPS} steps, median of {rounds} interleaved rounds");
    println!("{:<40} {:>10} {:>10} {:>14}", "resource", "1 pool", "2 pools", "2 pools / 1");
    for (row, (name, _)) in rows.iter().enumerate() {
        let one = median(times[row][0].clone());
        let two = median(times[row][1].clone());
        println!("{name:<40} {one:>8.2}ns {two:>8.2}ns {:>13.2}x", two / one);
    }
}
