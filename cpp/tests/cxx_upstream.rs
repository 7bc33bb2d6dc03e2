//! Rust arenas over C++ resources: chunks come from C++, errors come back
//! as `AllocError`, and nothing unwinds across the boundary.

use core::alloc::Layout;
use core::mem::MaybeUninit;

use allocator_api2::vec::Vec;
use memres::{MemoryResource, Monotonic};
use memres_cxx::CxxResource;

#[test]
fn rust_collections_in_an_arena_over_cxx_new_delete() {
    let mut arena = Monotonic::new_in(CxxResource::new_delete());
    for round in 0..3u64 {
        let mut v = Vec::new_in(&arena);
        v.extend((0..10_000u64).map(|x| x * round));
        assert_eq!(v.iter().sum::<u64>(), 49_995_000 * round);
        drop(v);
        arena.reset();
    }
    assert!(arena.stats().upstream_allocs > 0);
    arena.release();
    assert_eq!(arena.stats().upstream_frees, arena.stats().upstream_allocs);
}

#[test]
fn cxx_exception_becomes_alloc_error() {
    let arena = Monotonic::new_in(CxxResource::null());
    assert!(arena.allocate(Layout::new::<u64>()).is_err());
    assert!(arena.allocate(Layout::new::<u64>()).is_err(), "still consistent after the failure");
}

#[test]
fn null_upstream_bounds_an_arena_to_its_buffer() {
    let mut buffer = [MaybeUninit::<u8>::uninit(); 1024];
    let arena = Monotonic::with_buffer_in(&mut buffer, CxxResource::null());
    let layout = Layout::from_size_align(100, 1).unwrap(); // align 1: no padding
    let mut n = 0;
    while arena.allocate(layout).is_ok() {
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn default_resource_is_new_delete_unless_changed() {
    assert_eq!(CxxResource::default_resource(), CxxResource::new_delete());
    let r = CxxResource::default_resource();
    let block = MemoryResource::allocate(&r, Layout::from_size_align(64, 64).unwrap()).unwrap();
    assert_eq!(block.cast::<u8>().as_ptr().addr() % 64, 0);
    // SAFETY: allocated just above by `r` with this layout.
    unsafe { MemoryResource::deallocate(&r, block.cast(), Layout::from_size_align(64, 64).unwrap()) };
}
