//! Workloads shared by memres's criterion benchmarks and its showcase, so
//! that Rust and C++ code is driven from one Rust harness.
//!
//! - **C++** ([`cxx_vector_of_strings`], [`cxx_list_build`],
//!   [`cxx_map_build`], [`cxx_request_loop`]): `std::pmr` containers on a
//!   resource picked by [`Resource`] — std's `new_delete_resource` and
//!   `monotonic_buffer_resource`, or memres's `monotonic_buffer_resource`.
//! - **Rust** ([`small_objects`], [`vec_growth`], [`request_rust`]):
//!   allocator-api2 collections on any [`Allocator`], e.g. `&memres::Monotonic`
//!   or `&bumpalo::Bump`.
//!
//! Each function runs one iteration and returns a checksum of the contents it
//! built (never of addresses): it keeps the optimizer from dropping the work,
//! and it is the same on every resource, which the tests check.
//!
//! The Rust workloads do not reset the allocator they are given; a harness
//! that wants arena reuse resets it between calls, as it would between
//! requests:
//!
//! ```
//! let mut arena = memres::Monotonic::new();
//! let mut bump = bumpalo::Bump::new();
//! for _ in 0..3 {
//!     assert_eq!(memres_workloads::request_rust(&arena, 100), memres_workloads::request_rust(&bump, 100));
//!     arena.reset();
//!     bump.reset();
//! }
//! ```
#![cfg_attr(feature = "nightly", feature(allocator_api))]

// The C++ workloads call memres's C++ slow paths, which live in memres-cxx's
// static library; naming the crate makes rustc link it (and the Rust code
// that library calls back into).
extern crate memres_cxx;

use allocator_api2::alloc::Allocator;
use allocator_api2::boxed::Box;
use allocator_api2::vec::Vec;

pub use ffi::{Resource, UpstreamUse};

pub mod floor;
pub mod frames;
pub mod heaps;
pub mod mixed;

#[cxx::bridge(namespace = "memres::workloads")]
mod ffi {
    /// Which `std::pmr::memory_resource` a C++ workload allocates from.
    ///
    /// Unless noted, a fresh resource is made for each call (each request, in
    /// [`cxx_request_loop`](crate::cxx_request_loop)) and destroyed after it.
    #[repr(u8)]
    #[derive(Debug, Hash)]
    enum Resource {
        /// `std::pmr::new_delete_resource()`: every node and buffer from
        /// `operator new`, freed one by one.
        NewDelete,
        /// A default-constructed `std::pmr::monotonic_buffer_resource`.
        StdMonotonic,
        /// A `std::pmr::monotonic_buffer_resource` over a 16 KiB buffer on the
        /// stack, then `new`/`delete` once the buffer is used up.
        StdMonotonicStackBuffer,
        /// A default-constructed `memres::monotonic_buffer_resource`.
        MemresMonotonic,
        /// One `memres::monotonic_buffer_resource` per thread, kept across
        /// calls and requests and `reset()` before each use, as a server keeps
        /// its arena: after warm-up it takes no memory from upstream at all.
        MemresMonotonicReset,
        /// A default-constructed `std::pmr::unsynchronized_pool_resource`.
        StdUnsyncPool,
        /// A default-constructed `memres::unsynchronized_pool_resource`.
        MemresUnsyncPool,
        /// A default-constructed `std::pmr::synchronized_pool_resource`.
        StdSyncPool,
        /// A default-constructed `memres::synchronized_pool_resource`.
        MemresSyncPool,
        /// `memres::heap_resource()`, the process-wide thread-caching heap
        /// (it takes its memory from the OS: no upstream to count).
        MemresHeap,
        /// Not a resource to use but a control: a bump pointer over one
        /// fixed 8 MiB buffer per thread, rewound before each use, whose
        /// `deallocate` does nothing; the least a `std::pmr` resource can
        /// cost. What remains of a workload's time on it is the workload's
        /// own (see `floor_resource` in workloads.cpp).
        Floor,
    }

    /// What the resources of one measured run took from their upstream
    /// (see [`measure_upstream`](crate::measure_upstream)).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct UpstreamUse {
        /// The most bytes held from upstream at any one time.
        peak_bytes: usize,
        /// Bytes still held when the run ended (0 unless a resource leaked).
        held_bytes: usize,
        /// Allocation calls made to upstream.
        calls: usize,
    }

    /// What one run of the C++ frame loop measured (`frames.cpp`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct FrameRun {
        /// A checksum of the frames' contents (the same on every kind).
        checksum: u64,
        /// Nanoseconds the timed frames took.
        nanos: u64,
        /// Upstream allocations the timed frames made (for new/delete:
        /// every allocation).
        upstream_calls: u64,
    }

    unsafe extern "C++" {
        include!("memres-workloads/src/frames.hpp");

        /// `warmup` frames, then `frames` timed ones of `objects` transient
        /// objects each, on frame memory of `kind` (0 new/delete, 1 std's
        /// monotonic release()d in turn, 2 the same over fixed buffers, 3
        /// memres::frame_arenas).
        fn frame_loop(kind: u8, warmup: usize, frames: usize, objects: usize) -> Result<FrameRun>;
    }

    unsafe extern "C++" {
        include!("memres-workloads/src/workloads.hpp");

        /// Builds a `pmr::vector<pmr::string>` of `n` strings of 8..=64 chars.
        fn vector_of_strings(resource: Resource, n: usize) -> Result<u64>;
        /// Builds a `pmr::list<int>` by `n` `push_back`s.
        fn list_build(resource: Resource, n: usize) -> Result<u64>;
        /// Builds a `pmr::map<int, int>` from `n` pseudo-random keys.
        fn map_build(resource: Resource, n: usize) -> Result<u64>;
        /// `n` random replacements among 1000 live blocks of 16..=256 bytes.
        fn churn(resource: Resource, n: usize) -> Result<u64>;
        /// A `pmr::list<int>` of 1000 elements: `n` times push_back + pop_front.
        fn list_churn(resource: Resource, n: usize) -> Result<u64>;
        /// `lists` lists as in `list_churn`, each on a resource of its own;
        /// the `n` steps go to the lists in turn.
        fn lists_churn(resource: Resource, lists: usize, n: usize) -> Result<u64>;
        /// Serves `requests` requests of size `n`, one resource per request.
        fn request_loop(resource: Resource, requests: usize, n: usize) -> Result<u64>;
        /// `n` random erase + insert pairs on a `pmr::map` and a `pmr::unordered_map` of 1000 keys.
        fn map_churn(resource: Resource, n: usize) -> Result<u64>;
        /// `threads` threads each run `churn(n)` on one shared resource.
        fn churn_threads(resource: Resource, threads: usize, n: usize) -> Result<u64>;
        /// One thread allocates `n` blocks of 16..=256 bytes, another frees them.
        fn producer_consumer(resource: Resource, n: usize) -> Result<u64>;
        /// Routes this thread's workload resources through a counting upstream.
        fn start_counting() -> Result<()>;
        /// Ends `start_counting` and reports what the upstream saw.
        fn stop_counting() -> Result<UpstreamUse>;
    }
}

impl Resource {
    /// Every resource kind, in declaration order (for benchmark groups).
    pub const ALL: [Resource; 11] = [
        Resource::NewDelete,
        Resource::StdMonotonic,
        Resource::StdMonotonicStackBuffer,
        Resource::MemresMonotonic,
        Resource::MemresMonotonicReset,
        Resource::StdUnsyncPool,
        Resource::MemresUnsyncPool,
        Resource::StdSyncPool,
        Resource::MemresSyncPool,
        Resource::MemresHeap,
        Resource::Floor,
    ];

    /// The kinds that monotonic workloads compare.
    pub const MONOTONIC: [Resource; 5] = [
        Resource::NewDelete,
        Resource::StdMonotonic,
        Resource::StdMonotonicStackBuffer,
        Resource::MemresMonotonic,
        Resource::MemresMonotonicReset,
    ];

    /// The kinds that single-threaded pool workloads compare.
    pub const POOLS: [Resource; 6] = [
        Resource::NewDelete,
        Resource::StdUnsyncPool,
        Resource::MemresUnsyncPool,
        Resource::StdSyncPool,
        Resource::MemresSyncPool,
        Resource::MemresHeap,
    ];

    /// The pools, plus memres's arena as a floor: it frees nothing and
    /// allocates by a pointer bump, so what remains of its time is the
    /// workload's own work (random numbers, touching each block).
    pub const POOLS_AND_FLOOR: [Resource; 7] = [
        Resource::NewDelete,
        Resource::StdUnsyncPool,
        Resource::MemresUnsyncPool,
        Resource::StdSyncPool,
        Resource::MemresSyncPool,
        Resource::MemresHeap,
        Resource::MemresMonotonic,
    ];

    /// The kinds that threads may share (for the threaded workloads).
    pub const SHARED: [Resource; 4] =
        [Resource::NewDelete, Resource::StdSyncPool, Resource::MemresSyncPool, Resource::MemresHeap];

    /// Whether a run on this kind takes its memory from an upstream made for
    /// the run, which [`measure_upstream`](crate::measure_upstream) can
    /// count: not the kept arena (it outlives the run), the heap (it maps
    /// its memory from the OS, and keeps it across runs) or the floor (a
    /// fixed buffer).
    pub fn has_upstream(self) -> bool {
        self != Resource::MemresMonotonicReset && self != Resource::MemresHeap && self != Resource::Floor
    }

    /// A short name for reports and benchmark ids, e.g. `"std_monotonic"`.
    pub fn name(self) -> &'static str {
        match self {
            Resource::NewDelete => "new_delete",
            Resource::StdMonotonic => "std_monotonic",
            Resource::StdMonotonicStackBuffer => "std_monotonic_stack16k",
            Resource::MemresMonotonic => "memres_monotonic",
            Resource::MemresMonotonicReset => "memres_monotonic_reset",
            Resource::StdUnsyncPool => "std_unsync_pool",
            Resource::MemresUnsyncPool => "memres_unsync_pool",
            Resource::StdSyncPool => "std_sync_pool",
            Resource::MemresSyncPool => "memres_sync_pool",
            Resource::MemresHeap => "memres_heap",
            Resource::Floor => "floor",
            // The enum is a C++ `enum class`: any u8 is a value.
            _ => "unknown",
        }
    }
}

/// Turns a C++ exception (only `std::bad_alloc`, or `std::invalid_argument`
/// for a [`Resource`] outside the listed kinds) into a panic.
fn cxx_checked(workload: &str, result: Result<u64, cxx::Exception>) -> u64 {
    result.unwrap_or_else(|e| panic!("memres-workloads: C++ workload {workload} threw: {}", e.what()))
}

/// C++: builds a `std::pmr::vector<std::pmr::string>` of `n` strings on a
/// `resource` made for this call, and returns a checksum of it.
///
/// The vector grows from empty (no `reserve`); string lengths cycle through
/// 8..=64 chars, so some fit libstdc++'s small-string buffer and most do not.
///
/// # Panics
/// If the C++ code throws (out of memory, or an unknown `resource`).
pub fn cxx_vector_of_strings(resource: Resource, n: usize) -> u64 {
    cxx_checked("vector_of_strings", ffi::vector_of_strings(resource, n))
}

/// C++: builds a `std::pmr::list<int>` by `n` `push_back`s on a `resource`
/// made for this call, and returns a checksum of it.
///
/// # Panics
/// If the C++ code throws (out of memory, or an unknown `resource`).
pub fn cxx_list_build(resource: Resource, n: usize) -> u64 {
    cxx_checked("list_build", ffi::list_build(resource, n))
}

/// C++: inserts `n` pseudo-random keys (a fixed xorshift sequence, so some
/// repeat) into a `std::pmr::map<int, int>` on a `resource` made for this
/// call, and returns a checksum of the map.
///
/// # Panics
/// If the C++ code throws (out of memory, or an unknown `resource`).
pub fn cxx_map_build(resource: Resource, n: usize) -> u64 {
    cxx_checked("map_build", ffi::map_build(resource, n))
}

/// C++: `n` random replacements among 1000 live blocks of 16..=256 bytes
/// (each freed block's slot gets a new block of a new random size), on a
/// `resource` made for this call; returns a checksum of what was written.
///
/// # Panics
/// If the C++ code throws (out of memory, or an unknown `resource`).
pub fn cxx_churn(resource: Resource, n: usize) -> u64 {
    cxx_checked("churn", ffi::churn(resource, n))
}

/// C++: a `std::pmr::list<int>` kept at 1000 elements while `n` elements are
/// pushed at the back and popped at the front.
///
/// # Panics
/// If the C++ code throws (out of memory, or an unknown `resource`).
pub fn cxx_list_churn(resource: Resource, n: usize) -> u64 {
    cxx_checked("list_churn", ffi::list_churn(resource, n))
}

/// C++: [`cxx_list_churn`] on `lists` lists at once, each on a resource of
/// `resource`'s kind made for it, the `n` steps taking the lists in turn:
/// one thread alternating between pools (a pool's inline paths find the
/// thread's cache through a per-thread hint).
///
/// # Panics
/// If `lists` is 0, if `resource` is not an owning resource kind (a pool or
/// a monotonic arena), or if the C++ code throws.
pub fn cxx_lists_churn(resource: Resource, lists: usize, n: usize) -> u64 {
    cxx_checked("lists_churn", ffi::lists_churn(resource, lists, n))
}

/// C++: serves `requests` simulated requests and returns a checksum over all.
///
/// Each request gets a resource of kind `resource`, made for it and destroyed
/// after it (for [`Resource::MemresMonotonicReset`]: the thread's kept
/// arena, `reset()` before each request). In it the request builds a
/// `pmr::vector<pmr::string>` of `n` strings, a
/// `pmr::unordered_map<int, pmr::string>` of `n / 2` entries and a
/// `pmr::vector<int>` grown to `4 * n` elements.
///
/// # Panics
/// If the C++ code throws (out of memory, or an unknown `resource`).
pub fn cxx_request_loop(resource: Resource, requests: usize, n: usize) -> u64 {
    cxx_checked("request_loop", ffi::request_loop(resource, requests, n))
}

/// C++: `n` random erase + insert pairs on a `std::pmr::map<int, int>` and a
/// `std::pmr::unordered_map<int, int>` of 1000 keys each; node allocation
/// is a small part of the time next to the containers' own work.
///
/// # Panics
/// If the C++ code throws (out of memory, or an unknown `resource`).
pub fn cxx_map_churn(resource: Resource, n: usize) -> u64 {
    cxx_checked("map_churn", ffi::map_churn(resource, n))
}

/// C++: `threads` threads each run [`cxx_churn`]'s loop (`n` replacements)
/// on one shared resource; returns a checksum over the threads' results.
///
/// # Panics
/// If the C++ code throws, or `resource` is not one threads may share
/// (see [`Resource::SHARED`]).
pub fn cxx_churn_threads(resource: Resource, threads: usize, n: usize) -> u64 {
    cxx_checked("churn_threads", ffi::churn_threads(resource, threads, n))
}

/// C++: a producer thread allocates `n` blocks of 16..=256 bytes, writes
/// them and hands them through a bounded single-producer/single-consumer
/// ring to a consumer thread, which reads and frees them (the xmalloc-test
/// pattern: every free is a cross-thread free).
///
/// # Panics
/// As [`cxx_churn_threads`].
pub fn cxx_producer_consumer(resource: Resource, n: usize) -> u64 {
    cxx_checked("producer_consumer", ffi::producer_consumer(resource, n))
}

/// Runs `work` once on `resource` with every resource it makes taking its
/// memory from a counting upstream (`new_delete_resource()` underneath), and
/// reports what that upstream saw: the memory cost of a resource next to its
/// time. For [`Resource::NewDelete`] the counting upstream *is* the resource,
/// so its peak is the workload's own peak of live bytes (what a perfect
/// allocator would hold, before glibc's per-block headers).
///
/// Measuring costs an atomic update per upstream call, so timed runs do not
/// measure. Only this thread's resources are counted.
///
/// # Panics
/// If the workload panics, or `resource` has no upstream of its own for
/// the run (see [`Resource::has_upstream`]).
pub fn measure_upstream(work: &CxxWorkload, resource: Resource) -> UpstreamUse {
    assert!(resource.has_upstream(), "memres-workloads: {} has no upstream of its own to measure", resource.name());
    /// Ends the count even if the workload panics, so the thread is left clean.
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let _ = ffi::stop_counting();
            }
        }
    }
    ffi::start_counting().unwrap_or_else(|e| panic!("memres-workloads: {}", e.what()));
    let stop = Stop;
    std::hint::black_box((work.run)(resource));
    std::mem::forget(stop);
    ffi::stop_counting().unwrap_or_else(|e| panic!("memres-workloads: {}", e.what()))
}

/// Rust: `n` random replacements among 1000 live blocks of 16..=256 bytes,
/// through `alloc` (the Rust twin of [`cxx_churn`]); returns a checksum of
/// what was written.
pub fn churn_rust<A: Allocator>(alloc: A, n: usize) -> u64 {
    const LIVE: usize = 1000;
    let mut slots: std::vec::Vec<Option<(core::ptr::NonNull<u8>, core::alloc::Layout)>> = vec![None; LIVE];
    let mut rng = XorShift64(0x9e37_79b9_7f4a_7c15);
    let mut h = 0;
    for i in 0..n + LIVE {
        let slot = &mut slots[if i < LIVE { i } else { (rng.next() % LIVE as u64) as usize }];
        if let Some((p, layout)) = slot.take() {
            // SAFETY: allocated below with `layout` and written in full.
            unsafe {
                h = mix(h, u64::from(*p.as_ptr().add(layout.size() - 1)));
                alloc.deallocate(p, layout);
            }
        }
        let size = 16 + (rng.next() % 241) as usize;
        let layout = core::alloc::Layout::from_size_align(size, 8).expect("a small layout");
        let p = alloc.allocate(layout).expect("out of memory").cast::<u8>();
        // SAFETY: a fresh block of `size` bytes.
        unsafe {
            *p.as_ptr() = i as u8;
            *p.as_ptr().add(size - 1) = size as u8;
        }
        *slot = Some((p, layout));
    }
    for (p, layout) in slots.into_iter().flatten() {
        // SAFETY: live blocks allocated with `layout`.
        unsafe { alloc.deallocate(p, layout) };
    }
    h
}

/// Order-dependent hash combine (boost-style), the same as the C++ side's.
fn mix(h: u64, v: u64) -> u64 {
    h ^ v.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_add(h << 6).wrapping_add(h >> 2)
}

/// A deterministic pseudo-random sequence (xorshift64).
struct XorShift64(u64);

impl XorShift64 {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One small heap object of [`small_objects`], of one of four sizes.
enum SmallBox<A: Allocator> {
    B16(Box<[u64; 2], A>),
    B32(Box<[u64; 4], A>),
    B48(Box<[u64; 6], A>),
    B64(Box<[u64; 8], A>),
}

impl<A: Allocator> SmallBox<A> {
    fn digest(&self) -> u64 {
        let words: &[u64] = match self {
            SmallBox::B16(b) => &b[..],
            SmallBox::B32(b) => &b[..],
            SmallBox::B48(b) => &b[..],
            SmallBox::B64(b) => &b[..],
        };
        words.iter().fold(words.len() as u64, |h, &w| mix(h, w))
    }
}

/// Rust: allocates `n` boxes of 16, 32, 48 or 64 bytes (in turn) with
/// `Box::new_in`, keeps them all alive, checksums them and drops them.
///
/// Beyond the boxes, one `Vec` of `n` handles is allocated up front. Nothing
/// leaks: every box is dropped (an arena gets its memory back on reset).
pub fn small_objects<A: Allocator + Copy>(alloc: A, n: usize) -> u64 {
    let mut live: Vec<SmallBox<A>, A> = Vec::with_capacity_in(n, alloc);
    for i in 0..n {
        let v = i as u64;
        live.push(match i % 4 {
            0 => SmallBox::B16(Box::new_in([v; 2], alloc)),
            1 => SmallBox::B32(Box::new_in([v; 4], alloc)),
            2 => SmallBox::B48(Box::new_in([v; 6], alloc)),
            _ => SmallBox::B64(Box::new_in([v; 8], alloc)),
        });
    }
    live.iter().fold(live.len() as u64, |h, b| mix(h, b.digest()))
}

/// Rust: pushes `n` `u64`s into a `Vec` that starts empty, so it grows by
/// doubling through the allocator's `grow`, and returns a checksum.
pub fn vec_growth<A: Allocator + Copy>(alloc: A, n: usize) -> u64 {
    let mut v: Vec<u64, A> = Vec::new_in(alloc);
    for i in 0..n as u64 {
        v.push(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
    // A plain sum (it vectorizes) keeps the checksum cheap next to the pushes.
    v.iter().fold(v.len() as u64, |sum, &x| sum.wrapping_add(x))
}

/// This process's peak resident set size in KiB (Linux: `VmHWM`; 0 where
/// unknown): what the one-process-per-run harnesses (`examples/`) report.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Rust: `rounds` short-lived vectors, each `Vec::new_in` + 100 pushes of a
/// `u64` + drop, as a scratch buffer per item of a request: the allocator
/// sees one allocation, five grows of its newest block and the free of it,
/// per round. Returns a checksum.
pub fn vec_push_100<A: Allocator + Copy>(alloc: A, rounds: usize) -> u64 {
    let mut sum = 0u64;
    for round in 0..rounds as u64 {
        let mut v: Vec<u64, A> = Vec::new_in(alloc);
        for i in 0..100 {
            v.push(i ^ round);
        }
        sum = sum.wrapping_add(v[round as usize % 100]);
    }
    sum
}

/// Rust: one simulated request of size `n`, the Rust counterpart of a request
/// in [`cxx_request_loop`]; returns a checksum.
///
/// It builds, all in `alloc`: `n` byte strings of 8..=64 bytes, each pushed
/// byte by byte (as a parser would); an index of `n / 2` (id, name) pairs,
/// sorted by id; and a `Vec<u32>` grown to `4 * n` elements.
pub fn request_rust<A: Allocator + Copy>(alloc: A, n: usize) -> u64 {
    // The names, as parsed from the request.
    let mut names: Vec<Vec<u8, A>, A> = Vec::new_in(alloc);
    for i in 0..n {
        let mut name = Vec::new_in(alloc);
        for j in 0..8 + (i * 7) % 57 {
            name.push(b'a' + ((i + j) % 26) as u8);
        }
        names.push(name);
    }
    let mut h = names.iter().fold(names.len() as u64, |h, name| {
        mix(mix(h, name.len() as u64), u64::from(name[0]) << 8 | u64::from(name[name.len() - 1]))
    });

    // An index from pseudo-random ids to copies of names, sorted by id.
    let mut rng = XorShift64(0x2545_f491_4f6c_dd1d);
    let mut index: Vec<(u32, Vec<u8, A>), A> = Vec::new_in(alloc);
    for name in names.iter().take(n / 2) {
        let mut copy = Vec::with_capacity_in(name.len(), alloc);
        copy.extend_from_slice(name);
        index.push(((rng.next() >> 32) as u32, copy));
    }
    // Stable, so pairs with equal ids stay in insertion order on every allocator.
    index.sort_by_key(|&(id, _)| id);
    h = index.iter().fold(mix(h, index.len() as u64), |h, (id, name)| mix(mix(h, u64::from(*id)), name.len() as u64));

    // Scratch numbers, grown from empty.
    let mut numbers: Vec<u32, A> = Vec::new_in(alloc);
    for i in 0..n * 4 {
        numbers.push(i as u32 ^ 0x5bd1_e995);
    }
    mix(h, numbers.iter().fold(numbers.len() as u64, |sum, &x| sum.wrapping_add(u64::from(x))))
}

#[cfg(test)]
mod tests {
    use super::*;

    use allocator_api2::alloc::Global;
    use bumpalo::Bump;
    use memres::Monotonic;

    /// Sizes from empty to well past the 16 KiB stack buffer and the first
    /// few chunks of the monotonic resources.
    const SIZES: [usize; 6] = [0, 1, 2, 17, 300, 5000];

    /// Asserts that `workload` gives the same checksum on every resource kind,
    /// running the kept-arena kind twice so its `reset()` path is exercised on
    /// a used arena.
    fn assert_same_on_all_resources(name: &str, workload: impl Fn(Resource, usize) -> u64) {
        for n in SIZES {
            let expected = workload(Resource::NewDelete, n);
            for resource in Resource::ALL.into_iter().chain([Resource::MemresMonotonicReset]) {
                assert_eq!(workload(resource, n), expected, "{name}(n = {n}) on {}", resource.name());
            }
        }
    }

    #[test]
    fn cxx_lists_churn_is_list_churn_per_list_on_every_pool() {
        // One list: the same steps as `list_churn`, on every pool kind.
        let one = cxx_list_churn(Resource::StdSyncPool, 5000);
        for resource in Resource::POOLS.into_iter().filter(|&r| r != Resource::NewDelete && r != Resource::MemresHeap) {
            let two = cxx_lists_churn(resource, 2, 5000);
            assert_eq!(cxx_lists_churn(resource, 1, 5000), cxx_list_churn(resource, 5000), "{}", resource.name());
            assert_eq!(cxx_list_churn(resource, 5000), one, "{}", resource.name());
            assert_eq!(two, cxx_lists_churn(Resource::StdSyncPool, 2, 5000), "{}", resource.name());
            assert_ne!(two, one, "two lists take different steps");
        }
    }

    #[test]
    fn cxx_vector_of_strings_same_on_all_resources() {
        assert_same_on_all_resources("vector_of_strings", cxx_vector_of_strings);
    }

    #[test]
    fn cxx_list_build_same_on_all_resources() {
        assert_same_on_all_resources("list_build", cxx_list_build);
    }

    #[test]
    fn cxx_map_build_same_on_all_resources() {
        assert_same_on_all_resources("map_build", cxx_map_build);
    }

    #[test]
    fn cxx_churn_same_on_all_resources() {
        assert_same_on_all_resources("churn", cxx_churn);
    }

    #[test]
    fn cxx_list_churn_same_on_all_resources() {
        assert_same_on_all_resources("list_churn", cxx_list_churn);
    }

    #[test]
    fn cxx_request_loop_same_on_all_resources() {
        assert_same_on_all_resources("request_loop(3 requests)", |r, n| cxx_request_loop(r, 3, n));
        // The checksum covers every request: different request counts differ.
        let resource = Resource::MemresMonotonicReset;
        assert_ne!(cxx_request_loop(resource, 1, 50), cxx_request_loop(resource, 2, 50));
    }

    #[test]
    fn cxx_map_churn_same_on_all_resources() {
        assert_same_on_all_resources("map_churn", cxx_map_churn);
    }

    #[test]
    fn cxx_threaded_workloads_same_on_shared_resources() {
        for n in SIZES {
            let churn = cxx_churn_threads(Resource::NewDelete, 2, n);
            let pc = cxx_producer_consumer(Resource::NewDelete, n);
            assert_eq!(churn, mix(mix(0, cxx_churn(Resource::NewDelete, n)), cxx_churn(Resource::NewDelete, n)));
            for resource in Resource::SHARED {
                assert_eq!(cxx_churn_threads(resource, 2, n), churn, "churn_threads(n = {n}) on {}", resource.name());
                assert_eq!(cxx_producer_consumer(resource, n), pc, "producer_consumer(n = {n}) on {}", resource.name());
            }
        }
        assert_ne!(
            cxx_producer_consumer(Resource::MemresSyncPool, 10),
            cxx_producer_consumer(Resource::MemresSyncPool, 11)
        );
    }

    #[test]
    #[should_panic(expected = "threads may not share")]
    fn cxx_threaded_workloads_refuse_unshareable_resources() {
        cxx_churn_threads(Resource::MemresUnsyncPool, 2, 10);
    }

    #[test]
    fn churn_rust_same_on_pools_and_global() {
        for n in SIZES {
            let expected = churn_rust(Global, n);
            assert_eq!(churn_rust(&memres::UnsyncPool::new(), n), expected);
            assert_eq!(churn_rust(&memres::SyncPool::new(), n), expected);
        }
        assert_ne!(churn_rust(Global, 10), churn_rust(Global, 11));
    }

    #[test]
    fn cxx_checksums_depend_on_n() {
        for workload in [cxx_vector_of_strings, cxx_list_build, cxx_map_build, cxx_churn, cxx_list_churn, cxx_map_churn]
        {
            assert_ne!(workload(Resource::MemresMonotonic, 10), workload(Resource::MemresMonotonic, 11));
        }
    }

    #[test]
    fn measured_resources_return_everything_to_upstream() {
        // The churn keeps 1000 blocks of at most 256 bytes live, so its
        // peak of live bytes is at most 256 000; every resource holds at
        // least that much at its peak, and has given it all back at the end.
        let churn = CxxWorkload { name: "churn_2k", resources: &Resource::POOLS, run: |r| cxx_churn(r, 2_000) };
        let floor = measure_upstream(&churn, Resource::NewDelete);
        assert!(floor.peak_bytes > 16 * 1000 && floor.peak_bytes <= 256 * 1000, "{floor:?}");
        assert_eq!(floor.held_bytes, 0);
        let measured = Resource::POOLS.into_iter().filter(|r| r.has_upstream());
        for resource in measured.chain([Resource::MemresMonotonic, Resource::StdMonotonic]) {
            let use_ = measure_upstream(&churn, resource);
            assert!(use_.peak_bytes >= floor.peak_bytes, "{} {use_:?} vs {floor:?}", resource.name());
            assert_eq!(use_.held_bytes, 0, "{} kept memory after its run", resource.name());
            assert!(use_.calls > 0);
        }
        // Threads' resources are counted too: two churns hold about twice one.
        let two =
            CxxWorkload { name: "churn_2x2k", resources: &Resource::SHARED, run: |r| cxx_churn_threads(r, 2, 2_000) };
        let both = measure_upstream(&two, Resource::MemresSyncPool);
        assert!(both.peak_bytes > floor.peak_bytes, "{both:?} vs {floor:?}");
        // The workloads are deterministic, and so is what is measured.
        assert_eq!(measure_upstream(&churn, Resource::NewDelete), floor);
    }

    #[test]
    #[should_panic(expected = "has no upstream of its own")]
    fn measuring_the_kept_arena_panics() {
        let list = CxxWorkload { name: "list", resources: &Resource::MONOTONIC, run: |r| cxx_list_build(r, 10) };
        measure_upstream(&list, Resource::MemresMonotonicReset);
    }

    #[test]
    #[should_panic(expected = "unknown Resource")]
    fn cxx_unknown_resource_panics() {
        cxx_list_build(Resource { repr: 200 }, 1);
    }

    #[test]
    fn resource_names_are_distinct() {
        let mut names: std::vec::Vec<_> = Resource::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Resource::ALL.len());
        assert_eq!(Resource { repr: Resource::ALL.len() as u8 }.name(), "unknown");
    }

    /// Asserts that a Rust workload gives the same checksum on the global
    /// allocator, on memres arenas (plain and over a stack buffer, fresh and
    /// after `reset`, and forgetting), on bumpalo and on the floor (fresh and
    /// after `reset`).
    ///
    /// A macro because the workloads are generic functions, not values.
    macro_rules! assert_same_on_all_allocators {
        ($workload:ident) => {
            for n in SIZES {
                let name = stringify!($workload);
                let expected = $workload(Global, n);
                let mut arena = Monotonic::new();
                let mut buffer = [core::mem::MaybeUninit::uninit(); 4096];
                let mut buffered = Monotonic::with_buffer(&mut buffer);
                let mut bump = Bump::new();
                let mut floor = floor::Floor::new(FLOOR_BYTES);
                for round in 0..2 {
                    assert_eq!($workload(&arena, n), expected, "{name}(n = {n}) on Monotonic, round {round}");
                    assert_eq!(
                        $workload(&buffered, n),
                        expected,
                        "{name}(n = {n}) on buffered Monotonic, round {round}"
                    );
                    assert_eq!($workload(&bump, n), expected, "{name}(n = {n}) on Bump, round {round}");
                    assert_eq!($workload(&floor, n), expected, "{name}(n = {n}) on Floor, round {round}");
                    assert_eq!($workload(arena.forgetting(), n), expected, "{name}(n = {n}) forgetting, round {round}");
                    arena.reset();
                    buffered.reset();
                    bump.reset();
                    floor.reset();
                }
            }
        };
    }

    #[test]
    fn small_objects_same_on_all_allocators() {
        assert_same_on_all_allocators!(small_objects);
    }

    #[test]
    fn vec_growth_same_on_all_allocators() {
        assert_same_on_all_allocators!(vec_growth);
    }

    #[test]
    fn request_rust_same_on_all_allocators() {
        assert_same_on_all_allocators!(request_rust);
    }

    #[test]
    fn rust_checksums_depend_on_n() {
        let arena = Monotonic::new();
        assert_ne!(small_objects(&arena, 10), small_objects(&arena, 11));
        assert_ne!(vec_growth(&arena, 10), vec_growth(&arena, 11));
        assert_ne!(request_rust(&arena, 10), request_rust(&arena, 11));
    }

    #[test]
    fn reset_arena_stops_calling_upstream() {
        // The point of resetting between requests: after the first one, the
        // arena serves every later request from the chunks it kept.
        let mut arena = Monotonic::new();
        request_rust(&arena, 1000);
        arena.reset();
        let warm = arena.stats().upstream_allocs;
        for _ in 0..5 {
            request_rust(&arena, 1000);
            arena.reset();
        }
        assert_eq!(arena.stats().upstream_allocs, warm);
    }
}

/// One Rust workload, instantiated for each allocator the harnesses compare:
/// memres's arena, bumpalo's, the global allocator, and the [`floor`] any
/// arena stands on.
#[derive(Clone, Copy)]
pub struct RustWorkload {
    /// A short name for reports and benchmark ids.
    pub name: &'static str,
    /// The size parameter passed to the workload.
    pub n: usize,
    /// The workload on `&memres::Monotonic`.
    pub on_monotonic: fn(&memres::Monotonic, usize) -> u64,
    /// The workload on `memres::Monotonic::forgetting` (nothing taken back
    /// before reset).
    pub on_forgetting: fn(&memres::Monotonic, usize) -> u64,
    /// The workload on `&bumpalo::Bump`.
    pub on_bumpalo: fn(&bumpalo::Bump, usize) -> u64,
    /// The workload on the global allocator.
    pub on_global: fn(usize) -> u64,
    /// The workload on a [`floor::Floor`] of [`FLOOR_BYTES`].
    pub on_floor: fn(&floor::Floor, usize) -> u64,
}

/// A [`floor::Floor`] this large holds one iteration of any of the
/// [`RUST_WORKLOADS`] (the largest, `vec_growth_100k`, allocates about
/// 2 MiB when nothing grows in place).
pub const FLOOR_BYTES: usize = 16 << 20;

/// The Rust workloads both harnesses run, with their sizes.
pub const RUST_WORKLOADS: [RustWorkload; 4] = [
    RustWorkload {
        name: "small_objects_10k",
        n: 10_000,
        on_monotonic: |a, n| small_objects(a, n),
        on_forgetting: |a, n| small_objects(a.forgetting(), n),
        on_bumpalo: |b, n| small_objects(b, n),
        on_global: |n| small_objects(allocator_api2::alloc::Global, n),
        on_floor: |f, n| small_objects(f, n),
    },
    RustWorkload {
        name: "vec_growth_100k",
        n: 100_000,
        on_monotonic: |a, n| vec_growth(a, n),
        on_forgetting: |a, n| vec_growth(a.forgetting(), n),
        on_bumpalo: |b, n| vec_growth(b, n),
        on_global: |n| vec_growth(allocator_api2::alloc::Global, n),
        on_floor: |f, n| vec_growth(f, n),
    },
    RustWorkload {
        name: "vec_push_100x1k",
        n: 1_000,
        on_monotonic: |a, n| vec_push_100(a, n),
        on_forgetting: |a, n| vec_push_100(a.forgetting(), n),
        on_bumpalo: |b, n| vec_push_100(b, n),
        on_global: |n| vec_push_100(allocator_api2::alloc::Global, n),
        on_floor: |f, n| vec_push_100(f, n),
    },
    RustWorkload {
        name: "request_1k",
        n: 1_000,
        on_monotonic: |a, n| request_rust(a, n),
        on_forgetting: |a, n| request_rust(a.forgetting(), n),
        on_bumpalo: |b, n| request_rust(b, n),
        on_global: |n| request_rust(allocator_api2::alloc::Global, n),
        on_floor: |f, n| request_rust(f, n),
    },
];

/// One C++ workload with its sizes fixed, for the harnesses' tables.
#[derive(Clone, Copy)]
pub struct CxxWorkload {
    /// A short name for reports and benchmark ids.
    pub name: &'static str,
    /// The resource kinds it is compared on.
    pub resources: &'static [Resource],
    /// Runs one iteration on a resource of the given kind.
    pub run: fn(Resource) -> u64,
}

/// The C++ pool workloads both harnesses run, with their sizes.
pub const CXX_POOL_WORKLOADS: [CxxWorkload; 5] = [
    CxxWorkload { name: "churn_100k", resources: &Resource::POOLS_AND_FLOOR, run: |r| cxx_churn(r, 100_000) },
    CxxWorkload { name: "list_churn_100k", resources: &Resource::POOLS_AND_FLOOR, run: |r| cxx_list_churn(r, 100_000) },
    CxxWorkload { name: "map_churn_100k", resources: &Resource::POOLS, run: |r| cxx_map_churn(r, 100_000) },
    CxxWorkload {
        name: "churn_2threads_100k",
        resources: &Resource::SHARED,
        run: |r| cxx_churn_threads(r, 2, 100_000),
    },
    CxxWorkload {
        name: "producer_consumer_100k",
        resources: &Resource::SHARED,
        run: |r| cxx_producer_consumer(r, 100_000),
    },
];

/// The C++ monotonic workloads both harnesses run, with their sizes.
pub const CXX_WORKLOADS: [CxxWorkload; 4] = [
    CxxWorkload {
        name: "vector_of_strings_10k",
        resources: &Resource::MONOTONIC,
        run: |r| cxx_vector_of_strings(r, 10_000),
    },
    CxxWorkload { name: "list_10k", resources: &Resource::MONOTONIC, run: |r| cxx_list_build(r, 10_000) },
    CxxWorkload { name: "map_10k", resources: &Resource::MONOTONIC, run: |r| cxx_map_build(r, 10_000) },
    CxxWorkload {
        name: "request_loop_100x200",
        resources: &Resource::MONOTONIC,
        run: |r| cxx_request_loop(r, 100, 200),
    },
];
