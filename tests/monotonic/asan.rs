//! With the `asan` feature, under `-Zsanitizer=address`: memory the arena
//! holds but has not handed out is poisoned, handed-out blocks are not.

use core::alloc::Layout;
use core::mem::MaybeUninit;

use memres::Monotonic;

unsafe extern "C" {
    fn __asan_address_is_poisoned(addr: *const u8) -> i32;
}

fn poisoned(p: *const u8) -> bool {
    // SAFETY: a query of the sanitizer's shadow memory; any address is allowed.
    unsafe { __asan_address_is_poisoned(p) != 0 }
}

#[test]
fn handed_out_blocks_are_usable_and_the_rest_is_poisoned() {
    let arena = Monotonic::new();
    let a = arena.allocate(Layout::from_size_align(24, 8).unwrap()).unwrap().cast::<u8>().as_ptr();
    assert!(!poisoned(a) && !poisoned(a.wrapping_add(23)));
    assert!(poisoned(a.wrapping_add(32)), "room not handed out yet");
}

#[test]
fn reset_rewind_and_rollback_poison_what_they_take_back() {
    let mut arena = Monotonic::new();
    let layout = Layout::from_size_align(64, 8).unwrap();
    let a = arena.allocate(layout).unwrap().cast::<u8>();
    // SAFETY: `a` is the most recent block, with `layout`.
    unsafe { arena.deallocate(a, layout) };
    assert!(poisoned(a.as_ptr()), "rolled back");
    let cp = arena.checkpoint();
    let b = arena.allocate(layout).unwrap().cast::<u8>().as_ptr();
    assert!(!poisoned(b));
    arena.rewind(cp);
    assert!(poisoned(b), "rewound");
    let c = arena.allocate(layout).unwrap().cast::<u8>().as_ptr();
    arena.reset();
    assert!(poisoned(c), "reset");
}

#[test]
fn the_buffer_is_returned_unpoisoned() {
    let mut buffer = [MaybeUninit::<u8>::uninit(); 256];
    let start = buffer.as_ptr().cast::<u8>();
    {
        let mut arena = Monotonic::with_buffer(&mut buffer);
        assert!(poisoned(start.wrapping_add(200)));
        arena.release();
    }
    assert!(!poisoned(start) && !poisoned(start.wrapping_add(255)));
}
