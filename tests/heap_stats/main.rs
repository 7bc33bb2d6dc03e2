//! `memres::Heap`'s statistics and memory limit: allocated returns to its
//! baseline, per-class counts follow the blocks, purging and decay lower
//! resident, and the limits purge and then fail cleanly.
//!
//! The counters are process-wide, so the tests here take turns (`serial`).

use core::alloc::Layout;
use core::ptr::NonNull;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use allocator_api2::alloc::Allocator;
use memres::{HEAP_CLASS_COUNT, Heap, HeapLimits, HeapStats};

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets limits for the rest of a test, and lifts them at its end (even if
/// it fails).
struct Limits(HeapLimits);

impl Limits {
    fn set(limits: HeapLimits) -> Limits {
        let before = Heap::limits();
        Heap::set_limits(limits);
        Limits(before)
    }
}

impl Drop for Limits {
    fn drop(&mut self) {
        Heap::set_limits(self.0);
    }
}

fn alloc(size: usize) -> (NonNull<u8>, Layout) {
    let layout = Layout::from_size_align(size, 8).unwrap();
    let block = Heap.allocate(layout).expect("the heap serves this").cast::<u8>();
    // SAFETY: a fresh block of `size` bytes; written so its pages are real.
    unsafe { block.as_ptr().write_bytes(0x5a, size) };
    (block, layout)
}

fn free(blocks: impl IntoIterator<Item = (NonNull<u8>, Layout)>) {
    for (block, layout) in blocks {
        // SAFETY: allocated by `alloc` with this layout, freed once.
        unsafe { Heap.deallocate(block, layout) };
    }
}

/// The small class serving `size`, if it is small.
fn class_of(size: usize) -> Option<usize> {
    Heap::class_stats()[..HEAP_CLASS_COUNT - 1].iter().position(|c| c.size >= size)
}

#[test]
fn allocated_and_class_counts_follow_the_blocks_and_return_to_baseline() {
    let _turn = serial();
    let base = Heap::stats();
    let class = class_of(24).unwrap();
    let class_base = Heap::class_stats()[class];
    let large_base = Heap::class_stats()[HEAP_CLASS_COUNT - 1];

    let mut blocks: Vec<_> = (0..1000).map(|_| alloc(24)).collect();
    blocks.extend((0..3).map(|_| alloc(200 << 10)));
    blocks.extend((1..400).map(|i| alloc(i * 37)));

    let during = Heap::stats();
    let user_bytes: usize = blocks.iter().map(|(_, l)| l.size()).sum();
    assert!(during.allocated >= base.allocated + user_bytes, "{during:?} for {user_bytes} bytes");
    // Class rounding wastes under 25% (small), page rounding little (large).
    assert!(during.allocated <= base.allocated + user_bytes * 5 / 4 + 3 * 4096, "{during:?}");
    assert!(during.active >= during.allocated && during.resident >= during.active, "{during:?}");
    assert!(during.mapped >= during.resident && during.retained == during.mapped - during.resident);
    let now = Heap::class_stats();
    let small_24 = blocks.iter().filter(|(_, l)| class_of(l.size()) == Some(class)).count();
    assert_eq!(now[class].live, class_base.live + small_24);
    assert!(now[class].active >= now[class].live * now[class].size, "{:?}", now[class]);
    assert_eq!(now[HEAP_CLASS_COUNT - 1].live, large_base.live + 3);

    free(blocks);
    let after = Heap::stats();
    assert_eq!(after.allocated, base.allocated, "allocated back to its baseline");
    assert_eq!(Heap::class_stats()[class].live, class_base.live);
    assert_eq!(Heap::class_stats()[HEAP_CLASS_COUNT - 1].live, large_base.live);
}

#[test]
fn blocks_freed_by_other_threads_and_by_exited_threads_are_counted_once() {
    let _turn = serial();
    let base = Heap::stats().allocated;
    // Made on a thread that exits (its counts fold into the totals), freed
    // on another that never allocated from the heap (a stray free) and on
    // this one (a remote free).
    let made =
        std::thread::spawn(|| (0..500).map(|i| alloc(16 + i % 300)).map(Sendable).collect::<Vec<_>>()).join().unwrap();
    assert!(Heap::stats().allocated > base);
    let (first, second): (Vec<_>, Vec<_>) = made.into_iter().partition(|b| b.0.0.as_ptr().addr() % 32 == 0);
    std::thread::spawn(move || free(first.into_iter().map(|b| b.0))).join().unwrap();
    free(second.into_iter().map(|b| b.0));
    assert_eq!(Heap::stats().allocated, base);
}

struct Sendable((NonNull<u8>, Layout));
// SAFETY: a heap block is plain memory; whoever holds this owns it.
unsafe impl Send for Sendable {}

/// Fills and frees 12 MiB of 1 KiB blocks on this thread: its pages are
/// free and dirty afterwards.
fn dirty_free_pages() {
    free((0..12 * 1024).map(|_| alloc(1024)).collect::<Vec<_>>());
}

#[test]
fn purge_lowers_resident_and_says_how_much() {
    let _turn = serial();
    dirty_free_pages();
    let before = Heap::stats();
    let released = Heap::purge();
    let after = Heap::stats();
    assert!(released >= 8 << 20, "purged only {released} bytes");
    assert!(after.resident + (8 << 20) <= before.resident, "{before:?} -> {after:?}");
    assert_eq!(after.allocated, before.allocated);
}

#[test]
fn free_pages_decay_while_the_thread_keeps_allocating() {
    let _turn = serial();
    // A thread of its own, so that nothing else purges its pages.
    let (before, after) = std::thread::spawn(|| {
        dirty_free_pages();
        let before = Heap::stats().resident;
        // Keep the slow paths busy (pages of another class fill and empty)
        // for over three decay intervals (the first pass comes one interval
        // in), and longer while the pages have not gone yet: a slow build
        // (ThreadSanitizer's) makes fewer slow-path events per interval, and
        // decay passes are paced by those events.
        let start = Instant::now();
        let decayed = || Heap::stats().resident + (8 << 20) <= before;
        while start.elapsed() < Duration::from_millis(3500) || (!decayed() && start.elapsed() < Duration::from_secs(15))
        {
            free((0..64).map(|_| alloc(3000)).collect::<Vec<_>>());
            std::thread::sleep(Duration::from_millis(5));
        }
        (before, Heap::stats().resident)
    })
    .join()
    .unwrap();
    assert!(after + (8 << 20) <= before, "resident {before} -> {after}: free pages did not decay");
}

fn resident() -> usize {
    Heap::stats().resident
}

#[test]
fn hard_limit_fails_allocations_cleanly_and_lifting_it_recovers() {
    let _turn = serial();
    Heap::purge();
    let start = resident();
    let cap = start + (8 << 20);
    let limits = Limits::set(HeapLimits { soft: None, hard: Some(cap) });
    for size in [100 << 10, 1024, 24] {
        let mut blocks = Vec::new();
        let layout = Layout::from_size_align(size, 8).unwrap();
        let refused = loop {
            match Heap.allocate(layout) {
                Ok(block) => blocks.push((block.cast::<u8>(), layout)),
                Err(_) => break blocks.len() * size,
            }
            assert!(blocks.len() * size <= 16 << 20, "the limit never refused {size}-byte blocks");
        };
        assert!(resident() <= cap, "resident {} over the hard limit {cap}", resident());
        assert!(refused >= 4 << 20, "refused {size}-byte blocks after only {refused} bytes");
        // SAFETY: a raw GlobalAlloc call must return null, not abort.
        let null = unsafe { core::alloc::GlobalAlloc::alloc(&Heap, layout) };
        assert!(null.is_null());
        free(blocks);
        Heap::purge();
    }
    drop(limits);
    free([alloc(16 << 20), alloc(1024)]);
}

#[test]
fn soft_limit_purges_before_taking_more() {
    let _turn = serial();
    Heap::purge();
    dirty_free_pages();
    let before = resident();
    // Below what is resident now: the next new memory makes the heap purge.
    let _limits = Limits::set(HeapLimits { soft: Some(before - (4 << 20)), hard: None });
    let block = alloc(1 << 20);
    let after = resident();
    free([block]);
    assert!(after + (6 << 20) <= before, "resident {before} -> {after}: the soft limit did not purge");
}

#[test]
fn stats_read_while_threads_allocate() {
    let _turn = serial();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..2 {
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    free((0..200).map(|i| alloc(8 + (i * 13 + t) % 2000)).collect::<Vec<_>>());
                }
            });
        }
        for _ in 0..200 {
            let HeapStats { allocated, mapped, .. } = Heap::stats();
            assert!(allocated < mapped, "allocated {allocated} vs mapped {mapped}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

#[test]
fn large_blocks_resized_in_place_are_counted_at_their_new_size() {
    // Growing a large block within its mapping must count the new size
    // (found by the fuzzer's stats model: the in-place check once took an
    // over-aligned block for a small one).
    let _turn = serial();
    let base = Heap::stats().allocated;
    let old = Layout::from_size_align(600_000, 32768).unwrap();
    let new = Layout::from_size_align(700_000, 32768).unwrap();
    let block = Heap.allocate(old).unwrap().cast::<u8>();
    assert_eq!(Heap::stats().allocated - base, 600_000usize.next_multiple_of(4096));
    // SAFETY: a live block of `old`, growing.
    let grown = unsafe { Heap.grow(block, old, new) }.unwrap().cast::<u8>();
    assert_eq!(grown, block, "a large block grows in place within its mapping");
    assert_eq!(Heap::stats().allocated - base, 700_000usize.next_multiple_of(4096));
    // SAFETY: the live block, now of `new`.
    unsafe { Heap.deallocate(grown, new) };
    assert_eq!(Heap::stats().allocated, base);
}

#[test]
fn medium_blocks_count_whole_pages_and_stay_in_place_within_them() {
    // Above 32 KiB (or aligned beyond 4 KiB) and up to 512 KiB, a block
    // takes whole 64 KiB pages of a small segment.
    let _turn = serial();
    let base = Heap::stats().allocated;
    let over_aligned = Layout::from_size_align(12494, 32768).unwrap();
    let a = Heap.allocate(over_aligned).unwrap().cast::<u8>();
    assert_eq!(a.as_ptr().addr() % 32768, 0);
    assert_eq!(Heap::stats().allocated - base, 65536);
    let old = Layout::from_size_align(100_000, 8).unwrap();
    let b = Heap.allocate(old).unwrap().cast::<u8>();
    assert_eq!(Heap::stats().allocated - base, 65536 + 131_072);
    // Within its two pages and more than half of them: in place.
    let new = Layout::from_size_align(130_000, 8).unwrap();
    // SAFETY: a live block of `old`, growing.
    let grown = unsafe { Heap.grow(b, old, new) }.unwrap().cast::<u8>();
    assert_eq!(grown, b);
    assert_eq!(Heap::stats().allocated - base, 65536 + 131_072);
    // Past its pages: over the free pages after it (in place), or moved;
    // three pages either way.
    let bigger = Layout::from_size_align(190_000, 8).unwrap();
    // SAFETY: a live block of `new`, growing.
    let grown = unsafe { Heap.grow(grown, new, bigger) }.unwrap().cast::<u8>();
    assert_eq!(Heap::stats().allocated - base, 65536 + 196_608);
    // SAFETY: live blocks with these layouts.
    unsafe {
        Heap.deallocate(grown, bigger);
        Heap.deallocate(a, over_aligned);
    }
    assert_eq!(Heap::stats().allocated, base);
}
