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

use core::alloc::Layout;
use core::ptr::NonNull;
use std::alloc::GlobalAlloc;
use std::hint::black_box;
use std::time::Duration;

use allocator_api2::alloc::{AllocError, Allocator, Global};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use memres::{SyncPool, UnsyncPool};
use memres_workloads as w;

/// The mimalloc crate's allocator as an allocator-api2 `Allocator`, so the
/// same generic workload runs on it (the workloads never ask for zero bytes).
#[derive(Clone, Copy)]
struct Mimalloc;

// SAFETY: forwards to mimalloc, which returns blocks of the requested layout
// that stay valid until freed.
unsafe impl Allocator for Mimalloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: the workloads' layouts are never zero-sized.
        let ptr = unsafe { mimalloc::MiMalloc.alloc(layout) };
        NonNull::new(ptr).map(|p| NonNull::slice_from_raw_parts(p, layout.size())).ok_or(AllocError)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: allocated by `allocate` above with `layout`.
        unsafe { mimalloc::MiMalloc.dealloc(ptr.as_ptr(), layout) }
    }
}

const CHURN_N: usize = 100_000;

fn rust(c: &mut Criterion) {
    let mut group = c.benchmark_group("rust/churn_100k");
    // The pools are kept across iterations, as a long-lived pool would be.
    let unsync = UnsyncPool::new();
    group.bench_function("memres_unsync_pool", |b| b.iter(|| w::churn_rust(&unsync, black_box(CHURN_N))));
    let sync = SyncPool::new();
    group.bench_function("memres_sync_pool", |b| b.iter(|| w::churn_rust(&sync, black_box(CHURN_N))));
    group.bench_function("mimalloc", |b| b.iter(|| w::churn_rust(Mimalloc, black_box(CHURN_N))));
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
