//! The sampling profiler (`memres::profile`) over the monotonic arena: two
//! call sites in known proportions come out in those proportions, large
//! blocks and grown blocks are sampled too, and with the profiler off the
//! arena takes no sample and its fast path stops only at its regions' ends.
//! (Not under Miri: the stack walk reads the binary's unwind tables.)

use core::alloc::Layout;

use memres::Monotonic;
#[path = "../support/profiling.rs"]
mod profiling;

use memres::profile::{self, View};
use profiling::{bytes_of, exclusive};

#[inline(never)]
fn parse_headers(arena: &Monotonic, rounds: usize) {
    for _ in 0..rounds {
        let block = arena.allocate(Layout::from_size_align(48, 8).unwrap()).unwrap();
        // SAFETY: a fresh 48-byte block.
        unsafe { block.cast::<u8>().as_ptr().write_bytes(1, 48) };
    }
}

#[inline(never)]
fn rank_words(arena: &Monotonic, rounds: usize) {
    for _ in 0..rounds {
        let block = arena.allocate(Layout::from_size_align(144, 16).unwrap()).unwrap();
        // SAFETY: a fresh 144-byte block.
        unsafe { block.cast::<u8>().as_ptr().write_bytes(2, 144) };
    }
}

#[test]
fn two_call_sites_hold_their_proportions() {
    let _one = exclusive();
    profile::start(4096);
    let mut arena = Monotonic::new();
    // Per round, parse_headers 6000 blocks of 48 bytes (288 KB) and
    // rank_words 1000 of 144 (144 KB): a 2:1 split of the bytes.
    for _ in 0..20 {
        parse_headers(&arena, 3000);
        rank_words(&arena, 1000);
        parse_headers(&arena, 3000);
        arena.reset();
    }
    profile::stop();
    let folded = profile::folded();
    let (a, b) = (bytes_of(&folded, "parse_headers"), bytes_of(&folded, "rank_words"));
    let (true_a, true_b) = (20.0 * 6000.0 * 48.0, 20.0 * 1000.0 * 144.0);
    // About 8.6 MB at one sample per 4 KiB: 2100 samples, so each estimate
    // is within a few percent; 10% is several standard errors.
    let share = a / (a + b);
    let expected = true_a / (true_a + true_b);
    assert!((share - expected).abs() < 0.1 * expected, "parse_headers' share {share:.3}, expected {expected:.3}");
    assert!((a + b - (true_a + true_b)).abs() < 0.1 * (true_a + true_b), "estimate {} of {}", a + b, true_a + true_b);
    assert!(folded.lines().all(|l| l.starts_with("Monotonic;")), "every stack starts with its resource");
    assert!(!folded.contains("memres::profile::"), "the profiler's own frames are left out:\n{folded}");
}

#[test]
fn blocks_in_chunks_of_their_own_and_grown_blocks_are_sampled() {
    let _one = exclusive();
    profile::start(64 << 10);
    let arena = Monotonic::new();
    // Blocks larger than any geometric chunk get chunks of their own.
    for _ in 0..64 {
        let _ = arena.allocate(Layout::from_size_align(1 << 20, 8).unwrap()).unwrap();
    }
    let big = bytes_of(&profile::folded(), "blocks_in_chunks_of_their_own");
    // Each 1 MiB block holds a sample point but with chance e^-16, and
    // stands for its size (over that chance).
    assert!((big - 64.0 * (1 << 20) as f64).abs() < 64.0, "each 1 MiB block is a sample: {big}");
    profile::clear();
    // A Vec that doubles in place (the newest block grows).
    let mut v: allocator_api2::vec::Vec<u64, &Monotonic> = allocator_api2::vec::Vec::new_in(&arena);
    for i in 0..(1u64 << 20) {
        v.push(i);
    }
    profile::stop();
    let grown = bytes_of(&profile::folded(), "blocks_in_chunks_of_their_own");
    assert!(grown > 0.0, "growing in place crossed sample points");
}

#[test]
fn off_means_no_samples_and_a_later_start_is_noticed() {
    let _one = exclusive();
    let mut arena = Monotonic::with_capacity(1 << 20);
    for _ in 0..10_000 {
        let _ = arena.allocate(Layout::new::<[u8; 64]>()).unwrap();
    }
    arena.reset();
    assert_eq!(profile::folded(), "", "no sample while off");
    // Started later: the arena notices at its next region (here, the reset).
    profile::start(1024);
    for _ in 0..2 {
        let _ = arena.allocate(Layout::new::<[u8; 64]>()).unwrap();
    }
    arena.reset();
    for _ in 0..10_000 {
        let _ = arena.allocate(Layout::new::<[u8; 64]>()).unwrap();
    }
    profile::stop();
    let samples: f64 = profile::folded().lines().map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap()).sum();
    // 640 KB at one sample per KiB: about 625 samples, each standing for
    // about 1 KiB.
    assert!((samples - 640_000.0).abs() < 0.15 * 640_000.0, "estimate {samples} of 640000");
}

#[test]
fn a_profile_is_cut_by_the_arenas_names() {
    let _one = exclusive();
    profile::start(4096);
    let mut requests = Monotonic::new().named("request-arena");
    let mut cache = Monotonic::new();
    cache.set_name("cache;lru");
    assert_eq!(cache.name().as_deref(), Some("cache:lru"), "`;` separates frames: it becomes `:`");
    for _ in 0..10 {
        parse_headers(&requests, 6000); // 288 KB
        parse_headers(&cache, 2000); // 96 KB
        requests.reset();
        cache.reset();
    }
    profile::stop();
    let folded = profile::folded();
    let of = |resource: &str| -> f64 {
        folded
            .lines()
            .filter(|l| l.starts_with(resource))
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
            .sum()
    };
    let (r, c) = (of("request-arena (Monotonic);"), of("cache:lru (Monotonic);"));
    assert!((r / (r + c) - 0.75).abs() < 0.075, "the request arena's share {:.3}", r / (r + c));

    // The thread-safe arena: its threads' regions are sampled under its name.
    profile::clear();
    profile::start(4096);
    let shared = memres::SyncMonotonic::new().named("shared;arena");
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..20_000 {
                    shared.allocate(Layout::new::<[u8; 48]>()).unwrap();
                }
            });
        }
    });
    profile::stop();
    let folded = profile::folded();
    assert_eq!(shared.name().as_deref(), Some("shared:arena"));
    assert!(
        folded.lines().any(|l| l.starts_with("shared:arena (Monotonic);")),
        "the thread-safe arena's samples carry its name:\n{folded}"
    );
}

#[inline(never)]
fn kept_for_the_session(arena: &Monotonic, rounds: usize) {
    for _ in 0..rounds {
        let _ = arena.allocate(Layout::from_size_align(64, 8).unwrap()).unwrap();
    }
}

#[inline(never)]
fn per_request(arena: &Monotonic, rounds: usize) {
    for _ in 0..rounds {
        let _ = arena.allocate(Layout::from_size_align(64, 8).unwrap()).unwrap();
    }
}

#[test]
fn an_arenas_samples_are_live_until_its_memory_is_taken_back() {
    let _one = exclusive();
    profile::start(1024);
    let session = Monotonic::new();
    let mut request = Monotonic::new();
    kept_for_the_session(&session, 2000); // 128 KB, kept
    let before = request.checkpoint();
    per_request(&request, 2000); // 128 KB, rewound
    let live = profile::folded_view(View::Live);
    assert!(bytes_of(&live, "per_request") > 0.0, "live before the rewind:\n{live}");
    request.rewind(before);
    let live = profile::folded_view(View::Live);
    assert_eq!(bytes_of(&live, "per_request"), 0.0, "a rewind frees the samples past it:\n{live}");
    per_request(&request, 2000);
    request.reset();
    profile::stop();
    let live = profile::folded_view(View::Live);
    assert_eq!(bytes_of(&live, "per_request"), 0.0, "a reset frees the cycle's samples:\n{live}");
    let kept = bytes_of(&live, "kept_for_the_session");
    assert!((kept - 128_000.0).abs() < 0.25 * 128_000.0, "the kept blocks are live: {kept}");
    // The peak held both the session's and one request's blocks.
    let peak = profile::folded_view(View::Peak);
    assert!(bytes_of(&peak, "per_request") > 0.0 && bytes_of(&peak, "kept_for_the_session") > 0.0, "{peak}");
    // Everything ever allocated stays in the allocated view.
    let allocated = profile::folded();
    assert!(bytes_of(&allocated, "per_request") > 1.5 * bytes_of(&allocated, "kept_for_the_session"));
    drop(session);
    assert_eq!(bytes_of(&profile::folded_view(View::Live), "kept_for_the_session"), 0.0, "drop frees them");
}

#[inline(never)]
fn pool_headers(pool: &dyn Fn(Layout), rounds: usize) {
    for _ in 0..rounds {
        pool(Layout::from_size_align(48, 8).unwrap());
    }
}

#[inline(never)]
fn pool_words(pool: &dyn Fn(Layout), rounds: usize) {
    for _ in 0..rounds {
        pool(Layout::from_size_align(144, 16).unwrap());
    }
}

/// Both pools sample: blocks from their lists (each pop counts) and from
/// refills, two call sites in a 2:1 proportion of bytes, cut by the pool:
/// by its kind, or its name and kind once it has one.
#[test]
fn both_pools_sample_two_call_sites_in_proportion() {
    let _one = exclusive();
    let unsync = memres::UnsyncPool::new().named("parser;nodes");
    let sync = memres::SyncPool::new();
    let from_unsync = |l: Layout| {
        let b = unsync.allocate(l).unwrap();
        // SAFETY: a block of this pool with this layout, freed once.
        unsafe { unsync.deallocate(b.cast(), l) };
    };
    let from_sync = |l: Layout| {
        let b = sync.allocate(l).unwrap();
        // SAFETY: a block of this pool with this layout, freed once.
        unsafe { sync.deallocate(b.cast(), l) };
    };
    profile::start(4096);
    let each = |name: &str, allocate: &dyn Fn(Layout)| {
        profile::clear();
        // 60 000 blocks of 48 bytes and 10 000 of 144, freed at once: each
        // comes off the list (the same block, over and over).
        for _ in 0..10 {
            pool_headers(allocate, 6000);
            pool_words(allocate, 1000);
        }
        let folded = profile::folded();
        let (a, b) = (bytes_of(&folded, "pool_headers"), bytes_of(&folded, "pool_words"));
        let share = a / (a + b);
        assert!((share - 2.0 / 3.0).abs() < 0.1 * 2.0 / 3.0, "{name} pool_headers' share {share:.3}:\n{folded}");
        let truth = 60_000.0 * 48.0 + 10_000.0 * 144.0;
        assert!((a + b - truth).abs() < 0.1 * truth, "{name} estimate {} of {truth}", a + b);
        assert!(folded.lines().all(|l| l.starts_with(name)), "{name} names the samples:\n{folded}");
        assert!(!folded.contains("memres::pool::"), "the pool's own frames are left out:\n{folded}");
    };
    // A `;` in a name would split a frame: it becomes `:`.
    each("parser:nodes (UnsyncPool);", &from_unsync);
    each("SyncPool;", &from_sync);
    // Named while in use, from another thread: its caches' samples say so.
    std::thread::scope(|s| s.spawn(|| sync.set_name("sessions")).join().unwrap());
    each("sessions (SyncPool);", &from_sync);
    profile::stop();
    assert_eq!(sync.name().as_deref(), Some("sessions"));
}
