//! allocator-api2 and hashbrown collections in the arena.

use allocator_api2::{boxed::Box, vec::Vec};
use memres::Monotonic;

use crate::support::scaled;

#[test]
fn vec_of_boxed_byte_strings() {
    let arena = Monotonic::new();
    let mut words: Vec<Box<[u8], &Monotonic>, _> = Vec::new_in(&arena);
    for i in 0..500 {
        let mut s = Vec::new_in(&arena);
        s.extend_from_slice(b"word-");
        s.extend_from_slice(i.to_string().as_bytes());
        words.push(s.into_boxed_slice());
    }
    assert_eq!(&*words[123], b"word-123");
    assert_eq!(words.iter().map(|w| w.len()).sum::<usize>(), 5 * 500 + 10 + 90 * 2 + 400 * 3);
}

#[test]
fn hashbrown_map_in_the_arena() {
    let arena = Monotonic::new();
    let mut map = hashbrown::HashMap::new_in(&arena);
    let n = scaled(10_000) as u32;
    for i in 0..n {
        map.insert(i, i * 2);
    }
    for i in (0..n).step_by(3) {
        map.remove(&i);
    }
    assert_eq!(map.len() as u32, n - n.div_ceil(3));
    assert_eq!(map.get(&5), Some(&10));
    assert!(arena.stats().used > n as usize * 8);
}

#[test]
fn nested_collections_with_reset_between_requests() {
    let mut arena = Monotonic::new();
    let mut warm_held = 0;
    for request in 0..5 {
        {
            let mut rows: Vec<Vec<u32, &Monotonic>, _> = Vec::new_in(&arena);
            for r in 0..100 {
                let mut row = Vec::new_in(&arena);
                row.extend((0..r).map(|c| c * request));
                rows.push(row);
            }
            assert_eq!(rows[99][98], 98 * request);
        }
        if request == 1 {
            warm_held = arena.stats().held;
        }
        arena.reset();
    }
    assert_eq!(arena.stats().held, warm_held, "no growth after warm-up");
}

#[test]
fn forgetting_takes_nothing_back_yet_grows_in_place_and_resets() {
    let mut arena = Monotonic::new();
    let keep = arena.forgetting();
    // The most recent block grows in place, as on `&Monotonic`.
    let mut v: Vec<u64, _> = Vec::with_capacity_in(4, keep);
    v.extend(0..4);
    let before = v.as_ptr();
    v.reserve_exact(60);
    assert_eq!(v.as_ptr(), before, "the newest block grows in place");
    v.extend(4..64);
    assert_eq!(v.iter().sum::<u64>(), 2016);
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!((v.as_ptr(), v.capacity()), (before, 10), "and shrinks in place");
    // A dropped box is not reused: the next one lands past it.
    let a = Box::new_in(7u64, keep);
    let a_at = &*a as *const u64;
    drop(a);
    let b = Box::new_in(8u64, keep);
    assert_ne!(&*b as *const u64, a_at, "a forgotten block is not handed out again before reset");
    let used = arena.stats().used;
    drop((v, b));
    assert_eq!(arena.stats().used, used, "nothing comes back before reset");
    arena.reset();
    assert_eq!(arena.stats().used, 0);
    // After the reset the arena's memory is handed out again.
    let c = Box::new_in(9u64, arena.forgetting());
    assert_eq!(*c, 9);
}
