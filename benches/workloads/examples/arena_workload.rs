//! Runs one Rust arena workload (`memres_workloads::RUST_WORKLOADS`) on one
//! arena in this process, resetting it between iterations as between
//! requests, and prints `<median ns per iteration> <peak RSS KiB>`: the
//! building block of `benches/arena.sh`, which runs memres and bumpalo in
//! interleaved processes, and, with one iteration, what that script gives
//! callgrind to count instructions.
//!
//! `memres-profiled` is memres with the sampling profiler on at its
//! default interval (`memres::profile::DEFAULT_INTERVAL`), to measure what
//! sampling costs. `memres-forgetting` is `Monotonic::forgetting` (its
//! `deallocate` takes nothing back before reset). `floor` is
//! `memres_workloads::floor::Floor`, the least a sound arena can do: what
//! remains of its time is the workload's own.
//!
//! ```text
//! arena_workload <workload> <memres|memres-forgetting|memres-profiled|bumpalo|global|floor> [iterations]
//! arena_workload vec_push_100x1k memres 200
//! ```

use std::hint::black_box;
use std::time::Instant;

use memres_workloads as w;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: arena_workload <workload> <memres|memres-forgetting|memres-profiled|bumpalo|global|floor> [iterations]";
    let (Some(name), Some(arena)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let iterations: usize = args.get(3).map_or(Ok(100), |s| s.parse()).unwrap_or_else(|_| {
        eprintln!("{usage}: iterations must be a number");
        std::process::exit(2);
    });
    let Some(work) = w::RUST_WORKLOADS.iter().find(|x| x.name == name) else {
        let names: Vec<_> = w::RUST_WORKLOADS.iter().map(|x| x.name).collect();
        eprintln!("arena_workload: no workload named '{name}'; known: {names:?}");
        std::process::exit(2);
    };
    let n = work.n;
    if arena == "memres-profiled" {
        memres::profile::start(memres::profile::DEFAULT_INTERVAL);
    }
    let mut monotonic = memres::Monotonic::new();
    let mut bump = bumpalo::Bump::new();
    let mut floor = w::floor::Floor::new(w::FLOOR_BYTES);
    let mut once = || -> u64 {
        match arena.as_str() {
            "memres" | "memres-profiled" => {
                let h = (work.on_monotonic)(&monotonic, black_box(n));
                monotonic.reset();
                h
            }
            "memres-forgetting" => {
                let h = (work.on_forgetting)(&monotonic, black_box(n));
                monotonic.reset();
                h
            }
            "bumpalo" => {
                let h = (work.on_bumpalo)(&bump, black_box(n));
                bump.reset();
                h
            }
            "global" => (work.on_global)(black_box(n)),
            "floor" => {
                let h = (work.on_floor)(&floor, black_box(n));
                floor.reset();
                h
            }
            _ => {
                eprintln!("{usage}");
                std::process::exit(2);
            }
        }
    };
    // Warm-up: the arenas settle into their kept memory.
    for _ in 0..2 {
        black_box(once());
    }
    let mut times: Vec<u128> = (0..iterations.max(1))
        .map(|_| {
            let start = Instant::now();
            black_box(once());
            start.elapsed().as_nanos()
        })
        .collect();
    times.sort_unstable();
    println!("{} {}", times[times.len() / 2], w::peak_rss_kib());
}
