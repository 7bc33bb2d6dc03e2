//! Times one C++ workload on one resource kind in this process and prints
//! `<median ns per iteration> <peak RSS KiB> <peak bytes held from upstream>`
//! (the last from one more, untimed run through a counting upstream, see
//! `memres_workloads::measure_upstream`; `-` for a resource without an
//! upstream of its own, such as the heap): the building block of
//! `benches/preload.sh`, which runs it once per process allocator
//! (`LD_PRELOAD`), since a process has only one.
//!
//! ```text
//! time_workload <workload> <resource> [iterations]
//! time_workload churn_100k new_delete 30
//! ```
//!
//! `floor` (`Resource::Floor`, the least a `std::pmr` resource can cost)
//! runs any of them, as a control.
//!
//! One Rust workload too, for the pools' check costs (`benches/pool_hardening.sh`):
//! `rust_churn_100k` on `memres_unsync_pool` or `memres_sync_pool` (the
//! Rust pools through `Allocator`; peak bytes held: `-`).
//!
//! With `MEMRES_PROFILE=<interval>` (bytes, `K`/`M` suffixes) the sampling
//! profiler runs at that interval (`MEMRES_PROFILE_WALK=tables|unwinder|fp`:
//! with that stack walk), to measure what it costs (`benches/profile_cost.sh`).

use std::hint::black_box;
use std::time::Instant;

use memres_workloads::{self as w, Resource};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: time_workload <workload> <resource> [iterations]";
    let (Some(work), Some(resource)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let iterations: usize = args.get(3).map_or(Ok(30), |s| s.parse()).unwrap_or_else(|_| {
        eprintln!("{usage}: iterations must be a number");
        std::process::exit(2);
    });
    if let Some(interval) =
        std::env::var("MEMRES_PROFILE").ok().and_then(|v| memres::profile::parse_interval(v.as_bytes()))
    {
        set_walk_from_env();
        memres::profile::start(interval);
    }
    if work == "rust_churn_100k" {
        return rust_churn(resource, iterations);
    }
    let Some(work) = w::CXX_POOL_WORKLOADS.iter().chain(&w::CXX_WORKLOADS).find(|x| x.name == work) else {
        eprintln!("time_workload: no workload named '{work}'");
        std::process::exit(2);
    };
    // The floor (a control: the least a resource can cost) runs any workload.
    let floor = [Resource::Floor];
    let Some(&resource) = work.resources.iter().chain(&floor).find(|r| r.name() == resource) else {
        let names: Vec<_> = work.resources.iter().map(|r| r.name()).collect();
        eprintln!("time_workload: '{resource}' is not one of {}'s resources: {names:?}", work.name);
        std::process::exit(2);
    };
    let run = |r: Resource| black_box((work.run)(black_box(r)));
    for _ in 0..3 {
        run(resource); // warm-up
    }
    let mut times: Vec<u128> = (0..iterations.max(1))
        .map(|_| {
            let start = Instant::now();
            run(resource);
            start.elapsed().as_nanos()
        })
        .collect();
    times.sort_unstable();
    let rss = w::peak_rss_kib();
    // The peak the resource held from its upstream, or "-" without one.
    let held = if resource.has_upstream() {
        w::measure_upstream(work, resource).peak_bytes.to_string()
    } else {
        "-".to_string()
    };
    println!("{} {} {}", times[times.len() / 2], rss, held);
}

/// `rust_churn_100k`: `memres_workloads::churn_rust` on a kept Rust pool.
fn rust_churn(resource: &str, iterations: usize) {
    let unsync = memres::UnsyncPool::new();
    let sync = memres::SyncPool::new();
    let run: &dyn Fn() -> u64 = match resource {
        "memres_unsync_pool" => &|| w::churn_rust(&unsync, black_box(100_000)),
        "memres_sync_pool" => &|| w::churn_rust(&sync, black_box(100_000)),
        _ => {
            eprintln!("time_workload: rust_churn_100k runs on memres_unsync_pool or memres_sync_pool");
            std::process::exit(2);
        }
    };
    for _ in 0..3 {
        black_box(run());
    }
    let mut times: Vec<u128> = (0..iterations.max(1))
        .map(|_| {
            let start = Instant::now();
            black_box(run());
            start.elapsed().as_nanos()
        })
        .collect();
    times.sort_unstable();
    println!("{} {} -", times[times.len() / 2], w::peak_rss_kib());
}

/// Sets the stack walk `MEMRES_PROFILE_WALK` names, if it names one.
fn set_walk_from_env() {
    if let Ok(name) = std::env::var("MEMRES_PROFILE_WALK") {
        let walk = memres::profile::Walk::parse(name.as_bytes()).expect("MEMRES_PROFILE_WALK: tables, unwinder or fp");
        memres::profile::set_walk(walk);
    }
}
