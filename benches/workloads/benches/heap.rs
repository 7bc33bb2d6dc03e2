//! memres's `Heap` against mimalloc, jemalloc and glibc, side by side in one
//! run: the same generic workloads (`memres_workloads::heaps`) through each
//! allocator as an allocator-api2 `Allocator` (the peers' `GlobalAlloc`
//! wrapped by `ViaGlobalAlloc`; glibc is `System`).
//!
//! ```text
//! cargo bench -p memres-workloads --bench heap
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use memres::Heap;
use memres_workloads::heaps::{self, ViaGlobalAlloc};
use memres_workloads::{churn_rust, vec_growth};

/// One benchmark group: `$work` run on each allocator.
macro_rules! group {
    ($c:expr, $name:expr, |$a:ident| $work:expr) => {{
        let mut group = $c.benchmark_group($name);
        {
            let $a = Heap;
            group.bench_function("memres_heap", |b| b.iter(|| black_box($work)));
        }
        {
            let $a = ViaGlobalAlloc(&mimalloc::MiMalloc);
            group.bench_function("mimalloc", |b| b.iter(|| black_box($work)));
        }
        {
            let $a = ViaGlobalAlloc(&tikv_jemallocator::Jemalloc);
            group.bench_function("jemalloc", |b| b.iter(|| black_box($work)));
        }
        {
            let $a = ViaGlobalAlloc(&std::alloc::System);
            group.bench_function("glibc", |b| b.iter(|| black_box($work)));
        }
        group.finish();
    }};
}

fn heaps(c: &mut Criterion) {
    group!(c, "heap/churn_100k", |a| churn_rust(a, black_box(100_000)));
    group!(c, "heap/vec_growth_100k", |a| vec_growth(a, black_box(100_000)));
    group!(c, "heap/producer_consumer_100k", |a| heaps::producer_consumer(a, black_box(100_000)));
    group!(c, "heap/larson_2threads_50k", |a| heaps::larson(a, 2, black_box(50_000)));
    group!(c, "heap/cache_scratch_2threads_10k", |a| heaps::cache_scratch(a, 2, black_box(10_000)));
    group!(c, "heap/big_blocks_5_to_25mib_x10", |a| heaps::big_blocks(a, black_box(10)));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = heaps
}
criterion_main!(benches);
