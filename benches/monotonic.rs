//! The monotonic arena against its peers, side by side in one run.
//!
//! Rust: `&memres::Monotonic` vs `&bumpalo::Bump` vs the global allocator
//! (glibc), each arena reset between iterations. C++: the same std::pmr
//! workloads on std's and memres's resources, driven through the bridge.
//! `python3 benches/report.py` turns the results into the ratio tables of
//! BENCHMARKS.md.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use memres::Monotonic;
use memres_workloads as w;
use std::hint::black_box;
use std::time::Duration;

/// Runs one workload on memres, bumpalo and the global allocator; the arenas
/// are reset after every iteration, as between requests.
fn rust_group(c: &mut Criterion, work: &w::RustWorkload) {
    let n = work.n;
    let mut group = c.benchmark_group(format!("rust/{}", work.name));
    let mut arena = Monotonic::new();
    group.bench_function("memres_monotonic", |b| {
        b.iter(|| {
            let sum = (work.on_monotonic)(&arena, black_box(n));
            arena.reset();
            sum
        })
    });
    let mut bump = bumpalo::Bump::new();
    group.bench_function("bumpalo", |b| {
        b.iter(|| {
            let sum = (work.on_bumpalo)(&bump, black_box(n));
            bump.reset();
            sum
        })
    });
    group.bench_function("global_glibc", |b| b.iter(|| (work.on_global)(black_box(n))));
    group.finish();
}

fn rust(c: &mut Criterion) {
    for work in &w::RUST_WORKLOADS {
        rust_group(c, work);
    }
}

fn cxx(c: &mut Criterion) {
    for work in &w::CXX_WORKLOADS {
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
        .sample_size(30);
    targets = rust, cxx
}
criterion_main!(benches);
