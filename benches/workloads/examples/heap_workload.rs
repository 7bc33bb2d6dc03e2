//! Runs one heap workload on one allocator in this process and prints
//! `<median ns per iteration> <peak RSS KiB>`: a process per allocator, so
//! each one's peak resident memory is its own (`benches/heap_rss.sh` runs
//! them interleaved and prints ratios).
//!
//! ```text
//! heap_workload <workload> <allocator> [iterations]
//! heap_workload larson memres 20
//! ```
//!
//! `memres-profiled` is memres with the sampling profiler on at its
//! default interval (`memres::profile::DEFAULT_INTERVAL`), to measure what
//! sampling costs beside `memres` (with the stack walk `MEMRES_PROFILE_WALK`
//! names, if set); `memres-profiled-fp` the same with the
//! frame-pointer walk (`memres::profile::Walk::FramePointers`: build with
//! `RUSTFLAGS="-C force-frame-pointers=yes"` for it to find the stacks).

use std::hint::black_box;
use std::time::Instant;

use allocator_api2::alloc::Allocator;
use memres_workloads::heaps::{self, ViaGlobalAlloc};

/// The workloads, by name, generic over the allocator.
fn run<A: Allocator + Copy + Send + 'static>(work: &str, a: A) -> u64 {
    match work {
        "churn" => memres_workloads::churn_rust(a, 100_000),
        "vec_growth" => memres_workloads::vec_growth(a, 1_000_000),
        "producer_consumer" => heaps::producer_consumer(a, 100_000),
        "larson" => heaps::larson(a, 2, 50_000),
        "cache_scratch" => heaps::cache_scratch(a, 2, 10_000),
        "big_blocks" => heaps::big_blocks(a, 20),
        _ => {
            eprintln!("heap_workload: no workload named '{work}'");
            std::process::exit(2);
        }
    }
}

fn time<A: Allocator + Copy + Send + 'static>(work: &str, a: A, iterations: usize) -> u128 {
    for _ in 0..2 {
        black_box(run(work, a));
    }
    let mut times: Vec<u128> = (0..iterations.max(1))
        .map(|_| {
            let start = Instant::now();
            black_box(run(work, a));
            start.elapsed().as_nanos()
        })
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: heap_workload <workload> <memres|memres-profiled|memres-profiled-fp|mimalloc|jemalloc|glibc> [iterations]";
    let (Some(work), Some(allocator)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let iterations = args.get(3).map_or(Ok(15), |s| s.parse()).unwrap_or_else(|_| {
        eprintln!("{usage}");
        std::process::exit(2);
    });
    let ns = match allocator.as_str() {
        "memres" => time(work, memres::Heap, iterations),
        "memres-profiled" => {
            if let Ok(name) = std::env::var("MEMRES_PROFILE_WALK") {
                let walk =
                    memres::profile::Walk::parse(name.as_bytes()).expect("MEMRES_PROFILE_WALK: tables, unwinder or fp");
                memres::profile::set_walk(walk);
            }
            memres::profile::start(memres::profile::DEFAULT_INTERVAL);
            time(work, memres::Heap, iterations)
        }
        "memres-profiled-fp" => {
            memres::profile::set_walk(memres::profile::Walk::FramePointers);
            memres::profile::start(memres::profile::DEFAULT_INTERVAL);
            time(work, memres::Heap, iterations)
        }
        "mimalloc" => time(work, ViaGlobalAlloc(&mimalloc::MiMalloc), iterations),
        "jemalloc" => time(work, ViaGlobalAlloc(&tikv_jemallocator::Jemalloc), iterations),
        "glibc" => time(work, ViaGlobalAlloc(&std::alloc::System), iterations),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    println!("{ns} {}", memres_workloads::peak_rss_kib());
}
