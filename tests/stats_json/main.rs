//! Every resource's stats as JSON (feature `serde`): the field names a
//! monitoring system scrapes, with the values the stats calls return.

use core::alloc::Layout;

use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec as AVec;
use memres::{Heap, Monotonic, SyncMonotonic, SyncPool, UnsyncPool};
use serde_json::Value;

fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::from_str(&serde_json::to_string(value).expect("stats serialize")).expect("valid JSON")
}

#[test]
fn the_heap_report_is_flat_totals_and_the_classes_in_use() {
    // 1000 live blocks of 48 bytes: their class is in the report.
    let layout = Layout::new::<[u64; 6]>();
    let live: Vec<_> = (0..1000).map(|_| Heap.allocate(layout).expect("heap memory")).collect();
    let report = Heap::report();
    let v = json(&report);
    for (key, value) in [
        ("allocated", report.totals.allocated),
        ("active", report.totals.active),
        ("resident", report.totals.resident),
        ("mapped", report.totals.mapped),
        ("retained", report.totals.retained),
    ] {
        assert_eq!(v[key].as_u64(), Some(value as u64), "{key} in {v}");
    }
    let classes = v["classes"].as_array().expect("classes is an array");
    assert_eq!(classes.len(), report.classes.len());
    let class48 = classes.iter().find(|c| c["size"] == 48).expect("the 48-byte class is in use");
    assert!(class48["live"].as_u64().expect("live is a number") >= 1000, "{class48}");
    assert!(classes.iter().all(|c| c["live"].as_u64() > Some(0) || c["active"].as_u64() > Some(0)));
    for ptr in live {
        // SAFETY: allocated above with `layout`.
        unsafe { Heap.deallocate(ptr.cast(), layout) };
    }
}

#[test]
fn arena_stats_name_every_field() {
    let arena = Monotonic::with_capacity(4096);
    let mut v = AVec::new_in(&arena);
    v.extend(0..10_000u32);
    let stats = arena.stats();
    let j = json(&stats);
    assert_eq!(j["used"].as_u64(), Some(stats.used as u64));
    assert_eq!(j["held"].as_u64(), Some(stats.held as u64));
    assert_eq!(j["chunks"].as_u64(), Some(stats.chunks as u64));
    assert_eq!(j["upstream_allocs"].as_u64(), Some(stats.upstream_allocs));
    assert_eq!(j["upstream_frees"].as_u64(), Some(stats.upstream_frees));
    assert!(stats.used >= 40_000 && stats.chunks >= 2, "{stats:?}");

    let shared = SyncMonotonic::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut w = AVec::new_in(&shared);
            w.extend(0..1000u64);
        });
    });
    let stats = shared.stats();
    assert_eq!(json(&stats)["used"].as_u64(), Some(stats.used as u64));
    assert!(stats.used >= 8000, "{stats:?}");
}

#[test]
fn pool_stats_are_one_shape_for_both_pools() {
    let unsync = UnsyncPool::new();
    let small = Layout::from_size_align(24, 8).expect("a layout");
    let blocks: Vec<_> = (0..100).map(|_| unsync.allocate(small).expect("pool memory")).collect();
    let stats = unsync.stats();
    assert_eq!(stats.bytes_held, unsync.bytes_held());
    assert_eq!(stats.classes, unsync.class_stats());
    let j = json(&stats);
    assert_eq!(j["bytes_held"].as_u64(), Some(stats.bytes_held as u64));
    assert_eq!(j["upstream_allocs"].as_u64(), Some(stats.upstream_allocs));
    let class = &j["classes"][0];
    assert_eq!(class["block_size"], 24);
    assert_eq!(class["blocks_live"], 100);
    assert_eq!(class["chunks"].as_u64(), Some(stats.classes[0].chunks as u64));
    for block in blocks {
        // SAFETY: allocated above with `small`.
        unsafe { unsync.deallocate(block.cast(), small) };
    }
    assert_eq!(json(&unsync.stats())["classes"][0]["blocks_live"], 0);

    let mut sync = SyncPool::new();
    let blocks: Vec<_> = (0..100).map(|_| sync.allocate(small).expect("pool memory")).collect();
    let stats = sync.stats();
    let j = json(&stats);
    assert_eq!(j["classes"][0]["block_size"], 24);
    assert_eq!(j["classes"][0]["blocks_live"], 100);
    assert_eq!(j["bytes_held"].as_u64(), Some(sync.bytes_held() as u64));
    for block in blocks {
        // SAFETY: allocated above with `small`.
        unsafe { sync.deallocate(block.cast(), small) };
    }
    assert_eq!(json(&sync.stats())["classes"][0]["blocks_live"], 0);
}
