// With the `debug-checks` feature: the pool names each mistake.

use core::alloc::Layout;

use super::Pool;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

#[test]
#[should_panic(expected = "double free")]
fn double_free_is_caught() {
    let pool = Pool::new();
    let a = pool.allocate(layout(32)).unwrap().cast::<u8>();
    // SAFETY: none, on purpose: the second call frees `a` again, which must panic.
    unsafe {
        pool.deallocate(a, layout(32));
        pool.deallocate(a, layout(32));
    }
}

#[test]
#[should_panic(expected = "but the block was allocated with size 32 and alignment 8")]
fn wrong_size_in_the_same_class_is_caught() {
    let pool = Pool::new();
    let a = pool.allocate(layout(32)).unwrap().cast::<u8>();
    // SAFETY: none, on purpose: 30 bytes is the same class but not the layout used.
    unsafe { pool.deallocate(a, layout(30)) };
}

#[test]
#[should_panic(expected = "foreign pointer")]
fn foreign_pointer_is_caught() {
    let pool = Pool::new();
    let other = Pool::new();
    let _a = pool.allocate(layout(32)).unwrap();
    let b = other.allocate(layout(32)).unwrap().cast::<u8>();
    // SAFETY: none, on purpose: `b` belongs to `other`, which must panic.
    unsafe { pool.deallocate(b, layout(32)) };
}

#[test]
#[should_panic(expected = "a wrong-allocator free; the block belongs to memres::Monotonic #")]
fn wrong_allocator_free_names_the_owner() {
    let pool = Pool::new();
    let arena = memres::Monotonic::new();
    let _a = pool.allocate(layout(32)).unwrap();
    let b = arena.allocate(layout(32)).unwrap().cast::<u8>();
    // SAFETY: none, on purpose: `b` is the arena's, freed to the pool, which must panic.
    unsafe { pool.deallocate(b, layout(32)) };
}

#[test]
#[should_panic(expected = "double free (the block was already freed, on memres::")]
fn double_free_names_the_pool() {
    let pool = Pool::new();
    let a = pool.allocate(layout(64)).unwrap().cast::<u8>();
    let _keep = pool.allocate(layout(64)).unwrap();
    // SAFETY: none, on purpose: the second free must panic.
    unsafe {
        pool.deallocate(a, layout(64));
        pool.deallocate(a, layout(64));
    }
}

#[test]
fn correct_use_passes_every_check() {
    let mut pool = Pool::new();
    for _ in 0..3 {
        let mut v = allocator_api2::vec::Vec::new_in(&pool);
        v.extend(0..10_000u32);
        v.shrink_to(5000);
        let big = pool.allocate(layout(100_000)).unwrap().cast::<u8>();
        // SAFETY: live with this layout.
        unsafe { pool.deallocate(big, layout(100_000)) };
        drop(v);
        pool.trim();
    }
    pool.release();
}
