//! The simulated frame loop of an engine, side by side: in C++ on
//! new/delete, on two std monotonic resources `release()`d in turn (and the
//! same over fixed 1 MiB buffers, std's best case), and on
//! `memres::frame_arenas`; in Rust on the global allocator, on two
//! `bumpalo::Bump`s reset in turn, and on `memres::FrameArenas`. Each frame
//! builds ~2 000 particles, 1 000 events, 500 names and a draw list the next
//! frame reads. Rounds interleave the kinds; prints the median time per
//! frame, its ratio to memres in the same language, the spread over rounds,
//! and the upstream allocations per timed frame (after 20 warm-up frames).
//! Exits non-zero if memres's frames call upstream once warm.
//!
//! ```text
//! frame_workload [rounds] [objects]      # default 7 rounds, 2000 objects
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use memres_workloads::frames::{self, CXX_KINDS, RustFrames};

/// The system allocator, counting allocations (Rust's only: C++'s `new`
/// is counted by the C++ loop's own upstream).
struct Counting;

static CALLS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to `System`, counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const WARMUP: usize = 20;
const FRAMES: usize = 200;

fn main() {
    let args: Vec<usize> =
        std::env::args().skip(1).map(|a| a.parse().expect("usage: frame_workload [rounds] [objects]")).collect();
    let rounds = args.first().copied().unwrap_or(7);
    let objects = args.get(1).copied().unwrap_or(2000);
    // (language, kind, per-frame ns of each round, most upstream calls per
    // frame in a round, checksum).
    let mut rows: Vec<(&str, &str, Vec<f64>, f64, u64)> = Vec::new();
    let mut row = |lang: &'static str, name: &'static str, run: frames::FrameRun| {
        let per_frame = run.nanos as f64 / FRAMES as f64;
        let calls = run.upstream_calls as f64 / FRAMES as f64;
        match rows.iter_mut().find(|r| r.0 == lang && r.1 == name) {
            Some(r) => {
                r.2.push(per_frame);
                r.3 = r.3.max(calls);
                assert_eq!(r.4, run.checksum, "{lang} {name}: the frames' contents changed between rounds");
            }
            None => rows.push((lang, name, vec![per_frame], calls, run.checksum)),
        }
    };
    for _ in 0..rounds {
        for (name, kind) in CXX_KINDS {
            row("C++", name, frames::cxx_frame_loop(kind, WARMUP, FRAMES, objects));
        }
        for kind in RustFrames::ALL {
            row(
                "Rust",
                kind.name(),
                frames::rust_frame_loop(kind, WARMUP, FRAMES, objects, || CALLS.load(Ordering::Relaxed)),
            );
        }
    }
    let checksum = rows[0].4;
    assert!(rows.iter().all(|r| r.4 == checksum), "every kind in both languages builds the same frames");
    println!(
        "| language | frame memory | per frame (median) | vs memres | spread over rounds | upstream allocations per frame |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut ok = true;
    for (lang, name, times, calls, _) in &rows {
        let memres =
            rows.iter().find(|r| r.0 == *lang && r.1.starts_with("memres")).expect("a memres row per language");
        let (lo, hi) = times.iter().fold((f64::MAX, 0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        println!(
            "| {lang} | {name} | {:.1} µs | {:.2}x | {:.1}–{:.1} µs | {calls:.1} |",
            median(times) / 1e3,
            median(times) / median(&memres.2),
            lo / 1e3,
            hi / 1e3
        );
        if name.starts_with("memres") && *calls != 0.0 {
            ok = false;
        }
    }
    println!("\n{rounds} rounds of {WARMUP} warm-up + {FRAMES} timed frames, {objects} particles a frame");
    if !ok {
        eprintln!("frame_workload: memres's frames called upstream after warm-up");
        std::process::exit(1);
    }
}
