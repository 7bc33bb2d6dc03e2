//! The cost of crossing the language boundary, side by side in one run.
//!
//! - A Rust `Vec` (and small boxes) on a C++-created
//!   `memres::monotonic_buffer_resource`, reached three ways: through
//!   `CxxResource` (every allocation a call into C++ and a virtual call),
//!   through `CxxResource::as_monotonic()` (the Rust arena behind it,
//!   directly, borrowed for each iteration), against a Rust-owned `Monotonic`.
//! - A C++ `pmr::list` on a `CxxView` of a Rust-owned `Monotonic` against
//!   one on a C++-created `memres::monotonic_buffer_resource`.
//! - The mixed request (Rust parse, C++ transform, one arena) against the
//!   same pipeline on an arena per language and on the heap.
//!
//! Every arena is reset between iterations. `python3 benches/report.py`
//! prints the ratio tables of BENCHMARKS.md from the results.

use core::ptr::NonNull;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use memres::Monotonic;
use memres_cxx::{CxxResource, CxxView};
use memres_workloads::mixed::{self, CxxSide};
use memres_workloads::{self as w, Resource};

fn rust_on_cxx(c: &mut Criterion) {
    let cxx_arena = mixed::make_resource(Resource::MemresMonotonic).expect("a C++ arena");
    let cxx_ptr = NonNull::from(cxx_arena.as_ref().expect("not null")).cast();
    // SAFETY: `cxx_arena` outlives every use below, all on this thread.
    let through_cxx = unsafe { CxxResource::from_raw(cxx_ptr) };
    let reset_cxx = || {
        // SAFETY: a live C++ resource, on this thread, with nothing allocated from it alive.
        assert!(unsafe { mixed::reset_if_memres_arena(cxx_ptr.as_ptr().cast()) });
    };
    /// The Rust workload `name` on any allocator.
    fn run<A: allocator_api2::alloc::Allocator + Copy>(name: &str, alloc: A, n: usize) -> u64 {
        match name {
            "small_objects_10k" => w::small_objects(alloc, n),
            "vec_growth_100k" => w::vec_growth(alloc, n),
            "vec_push_100x1k" => w::vec_push_100(alloc, n),
            _ => unreachable!("no boundary run for {name}"),
        }
    }
    for work in w::RUST_WORKLOADS.iter().filter(|w| w.name != "request_1k") {
        let (name, n) = (work.name, work.n);
        let mut group = c.benchmark_group(format!("boundary/rust_{name}"));
        let mut arena = Monotonic::new();
        group.bench_function("rust_owned_monotonic", |b| {
            b.iter(|| {
                let h = run(name, &arena, black_box(n));
                arena.reset();
                h
            })
        });
        group.bench_function("cxx_arena_via_as_monotonic", |b| {
            b.iter(|| {
                // The borrow ends before C++ resets the arena (a reset under a
                // live borrow aborts).
                let h = run(name, &*through_cxx.as_monotonic().expect("a memres arena"), black_box(n));
                reset_cxx();
                h
            })
        });
        group.bench_function("cxx_arena_via_cxx_resource", |b| {
            b.iter(|| {
                let h = run(name, through_cxx, black_box(n));
                reset_cxx();
                h
            })
        });
        group.finish();
    }
}

fn cxx_on_rust(c: &mut Criterion) {
    const N: usize = 10_000;
    let mut group = c.benchmark_group("boundary/cxx_list_10k");
    let mut arena = Monotonic::new();
    group.bench_function("view_of_rust_monotonic", |b| {
        b.iter(|| {
            let view = CxxView::of(&arena);
            // SAFETY: the view is live, used on this thread.
            let h = unsafe { mixed::list_build_in(view.as_ptr(), black_box(N)) }.expect("no exception");
            drop(view);
            arena.reset();
            h
        })
    });
    let cxx_arena = mixed::make_resource(Resource::MemresMonotonic).expect("a C++ arena");
    let cxx_ptr: *mut memres_cxx::memory_resource = NonNull::from(cxx_arena.as_ref().expect("not null")).as_ptr();
    group.bench_function("cxx_created_memres_monotonic", |b| {
        b.iter(|| {
            // SAFETY: a live C++ resource, on this thread; nothing from it outlives the call.
            unsafe {
                let h = mixed::list_build_in(cxx_ptr, black_box(N)).expect("no exception");
                mixed::reset_if_memres_arena(cxx_ptr);
                h
            }
        })
    });
    group.finish();
}

fn mixed_request(c: &mut Criterion) {
    let texts: Vec<String> = (0..8).map(|seed| mixed::request_text(seed, 5_000)).collect();
    let mut group = c.benchmark_group("mixed/request_5k_words");
    let mut arena = Monotonic::new();
    let mut i = 0;
    group.bench_function("memres_monotonic_shared", |b| {
        b.iter(|| {
            i += 1;
            let view = CxxView::of(&arena);
            // SAFETY: the view lives to the end of the call, on this thread.
            let h = unsafe { mixed::serve(&arena, CxxSide::In(view.as_ptr()), &texts[i % 8], 10) };
            drop(view);
            arena.reset();
            h
        })
    });
    let mut bump = bumpalo::Bump::new();
    group.bench_function("bumpalo_and_std_monotonic", |b| {
        b.iter(|| {
            i += 1;
            // SAFETY: a `With` side.
            let h = unsafe { mixed::serve(&bump, CxxSide::With(Resource::StdMonotonic), &texts[i % 8], 10) };
            bump.reset();
            h
        })
    });
    group.bench_function("glibc_and_new_delete", |b| {
        b.iter(|| {
            i += 1;
            // SAFETY: a `With` side.
            unsafe {
                mixed::serve(allocator_api2::alloc::Global, CxxSide::With(Resource::NewDelete), &texts[i % 8], 10)
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = rust_on_cxx, cxx_on_rust, mixed_request
}
criterion_main!(benches);
