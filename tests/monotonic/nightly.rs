//! With the `nightly` feature, `&Monotonic` is a `core::alloc::Allocator`,
//! so std's own collections take it.

use memres::Monotonic;

#[test]
fn std_vec_and_box_in_the_arena() {
    let arena = Monotonic::new();
    let mut v: std::vec::Vec<u32, &Monotonic> = std::vec::Vec::new_in(&arena);
    v.extend(0..1000);
    let b = std::boxed::Box::new_in(7u64, &arena);
    assert_eq!(v.iter().sum::<u32>() as u64 + *b, 499_507);
    assert!(arena.stats().used >= 4000);
}
