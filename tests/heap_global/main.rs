//! `memres::Heap` as the program's global allocator: a realistic mixed
//! workload (strings, hash maps, vectors, trait objects, many short-lived
//! threads) with checked results. Everything in this test binary, the test
//! harness included, allocates from memres.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::thread;

#[global_allocator]
static ALLOCATOR: memres::Heap = memres::Heap;

trait Shape: Send {
    fn area(&self) -> f64;
    fn name(&self) -> String;
}

struct Rect(f64, f64);
struct Circle(f64);

impl Shape for Rect {
    fn area(&self) -> f64 {
        self.0 * self.1
    }
    fn name(&self) -> String {
        format!("rect {}x{}", self.0, self.1)
    }
}

impl Shape for Circle {
    fn area(&self) -> f64 {
        3.0 * self.0 * self.0
    }
    fn name(&self) -> String {
        format!("circle r={}", self.0)
    }
}

/// A word count over generated text, with strings of every length.
fn word_counts(seed: usize, words: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for i in 0..words {
        let len = 1 + (i * 31 + seed) % 40;
        let word: String = (0..len).map(|j| (b'a' + ((i + j + seed) % 7) as u8) as char).collect();
        *counts.entry(word).or_insert(0) += 1;
    }
    counts
}

#[test]
fn mixed_workload_on_many_short_lived_threads() {
    let totals = Arc::new(Mutex::new(BTreeMap::new()));
    for batch in 0..10 {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let totals = Arc::clone(&totals);
                thread::spawn(move || {
                    let seed = batch * 8 + t;
                    let counts = word_counts(seed, 5000);
                    assert_eq!(counts.values().sum::<usize>(), 5000);
                    let shapes: Vec<Box<dyn Shape>> = (0..1000)
                        .map(|i| -> Box<dyn Shape> {
                            if i % 2 == 0 { Box::new(Rect(i as f64, 2.0)) } else { Box::new(Circle(i as f64)) }
                        })
                        .collect();
                    let area: f64 = shapes.iter().map(|s| s.area()).sum();
                    let names: Vec<String> = shapes.iter().map(|s| s.name()).collect();
                    assert!(names[1].starts_with("circle"));
                    let mut big: Vec<u64> = Vec::new();
                    for i in 0..200_000u64 {
                        big.push(i * i);
                    }
                    totals.lock().unwrap().insert(seed, (counts.len(), area as u64, big[199_999], names.len()));
                    // Hand some memory to the main thread: freed there.
                    names
                })
            })
            .collect();
        let names: Vec<Vec<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(names.iter().all(|n| n.len() == 1000 && n[0] == "rect 0x2"));
    }
    let totals = totals.lock().unwrap();
    assert_eq!(totals.len(), 80);
    // Same inputs, same answers: the results do not depend on the allocator.
    let expected_area: u64 =
        (0..1000).map(|i| if i % 2 == 0 { i as f64 * 2.0 } else { 3.0 * (i * i) as f64 }).sum::<f64>() as u64;
    for (&seed, &(distinct, area, last, names)) in totals.iter() {
        assert_eq!(distinct, word_counts(seed, 5000).len());
        assert_eq!(area, expected_area);
        assert_eq!(last, 199_999 * 199_999);
        assert_eq!(names, 1000);
    }
}

#[test]
fn large_blocks_strings_and_realloc() {
    let mut s = String::new();
    for i in 0..100_000 {
        s.push_str(&i.to_string());
    }
    assert_eq!(s.len(), (0..100_000).map(|i: u32| i.to_string().len()).sum::<usize>());
    let big = vec![7u8; 30 << 20];
    assert!(big.iter().all(|&b| b == 7));
    let mut v: Vec<u32> = Vec::with_capacity(1);
    for i in 0..1_000_000 {
        v.push(i);
    }
    v.shrink_to_fit();
    assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), 499_999_500_000);
}

#[test]
fn the_other_resources_default_upstream_is_then_the_heap() {
    // `Global`, the default upstream, is the global allocator: the heap.
    // The heap's stats count what the arena and pools take from it. (Other
    // tests allocate and free meanwhile, so only a change of most of the
    // 16 MiB chunk is checked, either way: a CI run saw 16 MiB - 18 KiB.)
    let before = memres::Heap::stats().allocated;
    let arena = memres::Monotonic::with_capacity(16 << 20);
    let pool = memres::SyncPool::new();
    let block = memres::MemoryResource::allocate(&pool, std::alloc::Layout::new::<[u64; 8]>()).unwrap();
    let during = memres::Heap::stats().allocated;
    assert!(during >= before + (12 << 20), "{before} -> {during}: the arena's chunk is not the heap's");
    // SAFETY: allocated just above with this layout.
    unsafe { memres::MemoryResource::deallocate(&pool, block.cast(), std::alloc::Layout::new::<[u64; 8]>()) };
    drop((arena, pool));
    let after = memres::Heap::stats().allocated;
    assert!(after + (12 << 20) <= during, "{during} -> {after}: the chunk did not go back to the heap");
}
