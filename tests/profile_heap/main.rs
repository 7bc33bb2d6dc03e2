//! The sampling profiler over the heap (`memres::Heap` as the global
//! allocator): two call sites in known proportions come out in those
//! proportions; samples are matched at free, so the live view holds only
//! what is still allocated and the peak view what was live at the top; big
//! blocks are sampled too; a sampled block behaves as any other; with the
//! profiler off nothing is sampled, and a start is noticed at once on the
//! thread that starts it and from the first allocation on threads made
//! after. (Not under Miri: the stack walk reads the binary's unwind tables.)

// The boxes are the allocations the profiler is to see, one per element.
#![allow(clippy::vec_box)]

use std::hint::black_box;

#[path = "../support/profiling.rs"]
mod profiling;

use memres::profile::{self, View};
use profiling::{bytes_of, exclusive};

#[global_allocator]
static HEAP: memres::Heap = memres::Heap;

#[inline(never)]
fn parse_headers(out: &mut Vec<Box<[u8; 48]>>, n: usize) {
    for _ in 0..n {
        out.push(black_box(Box::new([1u8; 48])));
    }
}

#[inline(never)]
fn rank_words(out: &mut Vec<Box<[u8; 144]>>, n: usize) {
    for _ in 0..n {
        out.push(black_box(Box::new([2u8; 144])));
    }
}

#[test]
fn two_call_sites_hold_their_proportions_and_frees_leave_the_live_view() {
    let _one = exclusive();
    let mut headers = Vec::with_capacity(60_000);
    let mut words = Vec::with_capacity(10_000);
    profile::start(4096);
    // parse_headers: 60 000 blocks of 48 bytes (2.88 MB); rank_words:
    // 10 000 of 144 (1.44 MB): a 2:1 split of the bytes.
    for _ in 0..10 {
        parse_headers(&mut headers, 6000);
        rank_words(&mut words, 1000);
    }
    // rank_words' blocks go: the live view keeps parse_headers' alone,
    // the peak view (just before) both.
    drop(words);
    profile::stop();
    let allocated = profile::folded();
    let (a, b) = (bytes_of(&allocated, "parse_headers"), bytes_of(&allocated, "rank_words"));
    let (true_a, true_b) = (60_000.0 * 48.0, 10_000.0 * 144.0);
    // About 4.3 MB at one sample per 4 KiB: about 1050 samples, so the
    // estimates are within a few percent; 10% is several standard errors.
    let share = a / (a + b);
    let expected = true_a / (true_a + true_b);
    assert!(
        (share - expected).abs() < 0.1 * expected,
        "parse_headers' share {share:.3}, expected {expected:.3}:\n{allocated}"
    );
    assert!((a + b - (true_a + true_b)).abs() < 0.1 * (true_a + true_b), "estimate {} of {}", a + b, true_a + true_b);
    let ours: Vec<&str> =
        allocated.lines().filter(|l| l.contains("parse_headers") || l.contains("rank_words")).collect();
    assert!(ours.iter().all(|l| l.starts_with("Heap;")), "every stack starts with its resource:\n{allocated}");
    assert!(!allocated.contains("memres::heap::"), "the heap's own frames are left out:\n{allocated}");

    let live = profile::folded_view(View::Live);
    assert_eq!(bytes_of(&live, "rank_words"), 0.0, "freed blocks leave the live view:\n{live}");
    let live_a = bytes_of(&live, "parse_headers");
    assert!((live_a - a).abs() < 1e-6 * a, "parse_headers' blocks are all live: {live_a} of {a}");
    let peak = profile::folded_view(View::Peak);
    assert!((bytes_of(&peak, "rank_words") - b).abs() < 1e-6 * b, "the peak held rank_words' blocks:\n{peak}");
    assert!((bytes_of(&peak, "parse_headers") - a).abs() < 1e-6 * a);
    let samples = profile::samples_taken();
    // Only tracked samples are kept one by one: the heap's all are.
    assert!(!samples.is_empty() && samples.iter().all(|s| s.resource == "Heap"), "the heap's samples are kept");
    assert!(samples.iter().any(|s| s.freed), "rank_words' samples were seen freed");
    assert!(samples.windows(2).all(|w| w[0].at_ns <= w[1].at_ns), "times increase");
    drop(headers);
    assert_eq!(bytes_of(&profile::folded_view(View::Live), "parse_headers"), 0.0, "all freed now");
}

#[inline(never)]
fn big_blocks(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| black_box(vec![3u8; size])).collect()
}

#[test]
fn medium_and_large_blocks_are_sampled_by_their_bytes() {
    let _one = exclusive();
    profile::start(256 << 10);
    // 64 blocks of 100 KB (medium) and 16 of 2 MB (large): each large
    // block crosses a sample point with chance 1 - e^-8 and stands for its
    // size over that chance; the medium ones are estimated as usual.
    let medium = big_blocks(64, 100_000);
    let large = big_blocks(16, 2 << 20);
    profile::stop();
    let folded = profile::folded();
    let total = bytes_of(&folded, "big_blocks");
    let truth = 64.0 * 100_000.0 + 16.0 * (2 << 20) as f64;
    assert!((total - truth).abs() < 0.25 * truth, "estimate {total} of {truth}:\n{folded}");
    assert!(medium.iter().all(|v| v.iter().all(|&b| b == 3)) && large.iter().all(|v| v.len() == 2 << 20));
}

#[test]
fn a_sampled_block_behaves_as_any_other() {
    let _one = exclusive();
    // Every allocation is a sample at a 1-byte interval.
    profile::start(1);
    let mut blocks: Vec<Vec<u64>> = Vec::new();
    for i in 0..200u64 {
        let mut v = Vec::with_capacity(3);
        v.extend([i, i + 1, i + 2]);
        blocks.push(v);
    }
    // Grown (moved to a bigger class), shrunk, kept: contents follow.
    for (i, v) in blocks.iter_mut().enumerate() {
        v.extend(0..100);
        v.truncate(50);
        v.shrink_to_fit();
        assert_eq!(v[0], i as u64);
        assert_eq!(v[49], 46);
    }
    // A sampled block's usable size is at least what was asked.
    let b = Box::new([7u8; 24]);
    // SAFETY: a live block of the heap.
    let usable = unsafe { memres::Heap::usable_size(core::ptr::NonNull::from(&*b).cast()) };
    assert!(usable >= 24);
    profile::stop();
    assert!(profile::samples() >= 400, "every allocation a sample: {}", profile::samples());
    // The first blocks, moved by the growth, were seen freed: only the 200
    // vectors (and `b`) are live.
    let live = profile::samples_taken().iter().filter(|s| !s.freed).count();
    assert!((200..=210).contains(&live), "live samples: {live}");
    drop(blocks);
    let live = bytes_of(&profile::folded_view(View::Live), "a_sampled_block_behaves");
    assert!(live > 0.0 && live < 100.0, "only `b` is live now: {live}");

    assert_eq!(memres::Heap::misuses(), 0, "no misuse detected along the way");
}

#[inline(never)]
fn while_off(n: usize) -> Vec<Box<[u8; 64]>> {
    (0..n).map(|_| black_box(Box::new([4u8; 64]))).collect()
}

#[test]
fn off_means_no_samples_and_a_start_is_noticed_at_once() {
    let _one = exclusive();
    let kept = while_off(100_000);
    assert_eq!(bytes_of(&profile::folded(), "while_off"), 0.0, "no sample while off");
    drop(kept);
    // Started: this thread's count starts over now, not after its next
    // 4 MiB.
    profile::start(1024);
    let kept = while_off(100);
    profile::stop();
    let estimate = bytes_of(&profile::folded(), "while_off");
    // 6.4 KB at one sample per KiB: about 6 samples.
    assert!(estimate > 0.0, "sampled from the start");
    drop(kept);
}

#[inline(never)]
fn on_a_thread(n: usize) -> Vec<Box<[u8; 96]>> {
    (0..n).map(|_| black_box(Box::new([5u8; 96]))).collect()
}

#[test]
fn threads_made_while_sampling_sample_from_their_first_block() {
    let _one = exclusive();
    profile::start(8192);
    let handles: Vec<_> = (0..4).map(|_| std::thread::spawn(|| on_a_thread(20_000))).collect();
    let blocks: Vec<Vec<Box<[u8; 96]>>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let made: usize = blocks.iter().map(Vec::len).sum();
    profile::stop();
    let estimate = bytes_of(&profile::folded(), "on_a_thread");
    // The blocks, and each thread's vector of 20 000 pointers.
    let truth = made as f64 * (96.0 + 8.0);
    // 8.3 MB at one sample per 8 KiB: about 1000 samples.
    assert!((estimate - truth).abs() < 0.1 * truth, "estimate {estimate} of {truth}");
    let threads: std::collections::HashSet<u64> = profile::samples_taken().iter().map(|s| s.thread).collect();
    assert!(threads.len() >= 4, "samples name their threads: {threads:?}");
    drop(blocks);
}

#[inline(never)]
fn churning(rounds: usize) {
    for _ in 0..rounds {
        let v: Vec<Box<[u8; 200]>> = (0..100).map(|_| black_box(Box::new([6u8; 200]))).collect();
        drop(v);
    }
}

/// A program that allocates and frees for a long time keeps a bounded
/// profile: freed samples the views no longer need are folded into totals
/// per stack, and the allocated view still adds up.
#[test]
fn churn_keeps_the_profile_bounded_and_its_totals_right() {
    let _one = exclusive();
    profile::start(4096);
    // 20 000 rounds of 100 blocks of 200 bytes (and the vectors): 416 MB,
    // about 100 000 samples, at most 20 KB live at a time.
    churning(20_000);
    profile::stop();
    let taken = profile::samples();
    let kept = profile::samples_taken().len();
    assert!(taken > 80_000, "samples taken: {taken}");
    assert!(kept < 1000, "samples kept one by one: {kept} of {taken}");
    let estimate = bytes_of(&profile::folded(), "churning");
    let truth = 20_000.0 * (100.0 * 200.0 + 800.0);
    assert!((estimate - truth).abs() < 0.05 * truth, "estimate {estimate} of {truth}");
    assert_eq!(bytes_of(&profile::folded_view(View::Live), "churning"), 0.0);
}

/// parse_headers' share of the bytes the two call sites allocate, as the
/// samples taken with `walk` estimate it (2/3 in truth), and those samples.
fn share_by(walk: profile::Walk) -> (f64, Vec<profile::SampleInfo>, String) {
    let mut headers = Vec::with_capacity(60_000);
    let mut words = Vec::with_capacity(10_000);
    profile::clear();
    profile::set_walk(walk);
    profile::start(4096);
    for _ in 0..10 {
        parse_headers(&mut headers, 6000);
        rank_words(&mut words, 1000);
    }
    profile::stop();
    profile::set_walk(profile::Walk::Tables);
    let folded = profile::folded();
    let (a, b) = (bytes_of(&folded, "parse_headers"), bytes_of(&folded, "rank_words"));
    (a / (a + b), profile::samples_taken(), folded)
}

/// The default walk reads the unwind tables itself (on Linux, x86-64 and
/// AArch64: every sample says so, none fell back to the unwinder), and the
/// unwinder's walk, asked for, finds the same proportions.
#[test]
fn the_tables_walk_is_the_default_and_agrees_with_the_unwinder() {
    let _one = exclusive();
    assert_eq!(profile::walk(), profile::Walk::Tables);
    for walk in [profile::Walk::Tables, profile::Walk::Unwinder] {
        let (share, taken, folded) = share_by(walk);
        assert!(taken.len() > 500, "samples taken with {walk:?}: {}", taken.len());
        let expected = if cfg!(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))) {
            walk
        } else {
            profile::Walk::Unwinder
        };
        let other = taken.iter().find(|s| s.walk != expected);
        assert!(other.is_none(), "asked for {walk:?}, a sample walked by {other:?}");
        assert!((share - 2.0 / 3.0).abs() < 0.1 * 2.0 / 3.0, "parse_headers' share by {walk:?}: {share:.3}:\n{folded}");
    }
}

/// The frame-pointer walk: always safe (in a build without frame pointers
/// it finds little, never reads outside the stack); in a build with them
/// (CI builds this suite once with `-C force-frame-pointers=yes` and sets
/// `MEMRES_TEST_FRAME_POINTERS=1`) its stacks name the call sites, which
/// come out in their proportions.
#[test]
fn the_frame_pointer_walk_is_safe_and_with_frame_pointers_names_the_call_sites() {
    let _one = exclusive();
    let (share, taken, folded) = share_by(profile::Walk::FramePointers);
    assert!(taken.len() > 500, "samples taken with the frame-pointer walk: {}", taken.len());
    if std::env::var_os("MEMRES_TEST_FRAME_POINTERS").is_none() {
        eprintln!(
            "SKIPPED: the frame-pointer walk's stacks (this build may omit frame pointers; CI runs this test \
             with -C force-frame-pointers=yes and MEMRES_TEST_FRAME_POINTERS=1)"
        );
        return;
    }
    assert!((share - 2.0 / 3.0).abs() < 0.1 * 2.0 / 3.0, "parse_headers' share {share:.3}:\n{folded}");
}

#[inline(never)]
fn grown_then_freed(n: usize) -> Vec<Box<[u8; 64]>> {
    (0..n).map(|_| black_box(Box::new([7u8; 64]))).collect()
}

/// A program that grows to a peak, then frees it all: the peak view keeps
/// what was live then and the live view empties. (The frees after the peak
/// free some 28 000 samples the peak view needs, one by one: a fold that
/// looked at them all at each free made this test take 32 s, not 3.)
#[test]
fn a_peak_then_everything_freed() {
    let _one = exclusive();
    profile::start(256);
    let blocks = grown_then_freed(100_000); // 6.4 MB and the vector: ~28 000 samples
    drop(blocks);
    profile::stop();
    let peak = bytes_of(&profile::folded_view(View::Peak), "grown_then_freed");
    let truth = 100_000.0 * 64.0 + 800_000.0;
    assert!((peak - truth).abs() < 0.05 * truth, "the peak held them all: {peak} of {truth}");
    assert_eq!(bytes_of(&profile::folded_view(View::Live), "grown_then_freed"), 0.0);
    let allocated = bytes_of(&profile::folded(), "grown_then_freed");
    assert!((allocated - truth).abs() < 0.05 * truth, "allocated {allocated} of {truth}");
}
