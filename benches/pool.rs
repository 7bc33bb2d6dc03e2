//! The pools against their peers, side by side in one run.
//!
//! Rust: random-replacement churn of 16..=256-byte blocks through
//! `&memres::UnsyncPool`, `&memres::SyncPool`, the mimalloc crate and the
//! global allocator (glibc). C++: churn, `pmr::list` churn and
//! `pmr::map`/`pmr::unordered_map` churn on `new_delete_resource()` and on
//! std's and memres's pools; two threads churning on one shared resource,
//! and a producer/consumer pair. `python3 benches/report.py` turns the
//! results into the ratio tables of BENCHMARKS.md. (The same C++ workloads
//! with mimalloc or tcmalloc preloaded as the process allocator are run by
//! `benches/preload.sh`, one process per allocator.)

use std::hint::black_box;
use std::time::Duration;

use allocator_api2::alloc::Global;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use memres::{SyncPool, UnsyncPool};
use memres_workloads as w;
use memres_workloads::heaps::ViaGlobalAlloc;

const CHURN_N: usize = 100_000;

fn rust(c: &mut Criterion) {
    let mut group = c.benchmark_group("rust/churn_100k");
    // The pools are kept across iterations, as a long-lived pool would be.
    let unsync = UnsyncPool::new();
    group.bench_function("memres_unsync_pool", |b| b.iter(|| w::churn_rust(&unsync, black_box(CHURN_N))));
    let sync = SyncPool::new();
    group.bench_function("memres_sync_pool", |b| b.iter(|| w::churn_rust(&sync, black_box(CHURN_N))));
    group.bench_function("mimalloc", |b| {
        b.iter(|| w::churn_rust(ViaGlobalAlloc(&mimalloc::MiMalloc), black_box(CHURN_N)))
    });
    group.bench_function("global_glibc", |b| b.iter(|| w::churn_rust(Global, black_box(CHURN_N))));
    group.finish();
}

fn cxx(c: &mut Criterion) {
    for work in &w::CXX_POOL_WORKLOADS {
        let mut group = c.benchmark_group(format!("cxx/{}", work.name));
        for &resource in work.resources {
            group.bench_function(BenchmarkId::from_parameter(resource.name()), |b| {
                b.iter(|| (work.run)(black_box(resource)))
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = rust, cxx
}
criterion_main!(benches);
