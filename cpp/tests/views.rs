//! Rust-owned resources handed to C++ as views (`CxxView`), and C++-created
//! resources reached from Rust. Every call here goes through the view's C++
//! `std::pmr::memory_resource` (its inline fast path, then the Rust slow
//! path), because `CxxResource` calls `resource->allocate` in C++.

use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::NonNull;

use allocator_api2::vec::Vec;
use memres::{AllocError, Global, MemoryResource, Monotonic, SyncPool, UnsyncPool};
use memres_cxx::{CxxResource, CxxView};

/// The view as a Rust `MemoryResource`, through C++.
fn through_cxx(view: &CxxView<'_>) -> CxxResource {
    // SAFETY: every test drops the handle's uses before the view.
    unsafe { CxxResource::from_raw(NonNull::new(view.as_ptr().cast()).unwrap()) }
}

/// Allocates blocks of many sizes through `cxx`, checks they do not
/// overlap and are aligned, and frees them again.
fn exercise(cxx: CxxResource) -> Vec<usize> {
    let mut addrs = Vec::new();
    let mut blocks = std::vec::Vec::new();
    for i in 0..200usize {
        let layout = Layout::from_size_align(1 + i * 7 % 300, 1 << (i % 6)).unwrap();
        let block = MemoryResource::allocate(&cxx, layout).unwrap().cast::<u8>();
        assert_eq!(block.as_ptr().addr() % layout.align(), 0);
        // SAFETY: a fresh block of `layout.size()` bytes.
        unsafe { block.as_ptr().write_bytes(i as u8, layout.size()) };
        blocks.push((block, layout, i as u8));
        addrs.push(block.as_ptr().addr());
    }
    for &(block, layout, fill) in &blocks {
        // SAFETY: live blocks of `layout.size()` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(block.as_ptr(), layout.size()) };
        assert!(bytes.iter().all(|&b| b == fill), "a block was overwritten: blocks overlap");
    }
    for (block, layout, _) in blocks {
        // SAFETY: allocated above through the same view with this layout.
        unsafe { MemoryResource::deallocate(&cxx, block, layout) };
    }
    addrs
}

#[test]
fn cxx_allocates_from_a_rust_arena_in_place() {
    let mut arena = Monotonic::new();
    {
        let view = CxxView::of(&arena);
        exercise(through_cxx(&view));
        let mut v = Vec::new_in(through_cxx(&view));
        v.extend(0..10_000u64);
        assert_eq!(v.iter().sum::<u64>(), 49_995_000);
    }
    // The bytes C++ took came from the Rust arena's own state.
    let used = arena.stats().used;
    assert!(used > 10_000 * 8, "{used}");
    // Rust allocates after C++ from the same cursor.
    let rust_block = arena.allocate(Layout::new::<u64>()).unwrap();
    assert!(arena.stats().used > used);
    let _ = rust_block;
    arena.reset();
    assert_eq!(arena.stats().used, 0);
}

#[test]
fn cxx_frees_into_a_rust_pool_and_rust_reuses_the_blocks() {
    let pool = UnsyncPool::new();
    let view = CxxView::of(&pool);
    let cxx = through_cxx(&view);
    let layout = Layout::from_size_align(48, 8).unwrap();
    let block = MemoryResource::allocate(&cxx, layout).unwrap().cast::<u8>();
    // SAFETY: allocated just above through the view with `layout`.
    unsafe { MemoryResource::deallocate(&cxx, block, layout) };
    // The block went onto the Rust pool's own free list: Rust gets it next.
    let again = pool.allocate(layout).unwrap().cast::<u8>();
    assert_eq!(again, block);
    // SAFETY: allocated just above with `layout`.
    unsafe { pool.deallocate(again, layout) };
    exercise(cxx);
    assert!(pool.bytes_held() > 0);
}

#[test]
fn a_rust_sync_pool_serves_cxx_threads_through_one_view() {
    let pool = SyncPool::new();
    let view = CxxView::of(&pool);
    let addr = view.as_ptr().addr();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            s.spawn(move || {
                // SAFETY: the view outlives the scope; a SyncPool's view may
                // be used from any thread.
                let cxx = unsafe { CxxResource::from_raw(NonNull::new(addr as *mut core::ffi::c_void).unwrap()) };
                for round in 0..50 {
                    let mut v = Vec::new_in(cxx);
                    v.extend((0..500u64).map(|x| x * t + round));
                    assert_eq!(v.iter().sum::<u64>(), 124_750 * t + 500 * round);
                    exercise(cxx);
                }
            });
        }
    });
}

#[test]
fn two_views_of_one_resource_share_its_blocks() {
    let pool = UnsyncPool::new();
    let (a, b) = (CxxView::of(&pool), CxxView::of(&pool));
    let layout = Layout::from_size_align(100, 16).unwrap();
    let block = MemoryResource::allocate(&through_cxx(&a), layout).unwrap().cast::<u8>();
    // SAFETY: the views share one pool, so the block is b's too.
    unsafe { MemoryResource::deallocate(&through_cxx(&b), block, layout) };
    assert_eq!(MemoryResource::allocate(&pool, layout).unwrap().cast::<u8>(), block);
}

/// An upstream that fails (or panics) on demand, counting its calls.
struct Moody {
    mood: Cell<Mood>,
    calls: Cell<usize>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mood {
    Fine,
    Refuse,
    Panic,
}

// SAFETY: forwards to `Global` when fine.
unsafe impl MemoryResource for Moody {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.calls.set(self.calls.get() + 1);
        match self.mood.get() {
            Mood::Fine => MemoryResource::allocate(&Global, layout),
            Mood::Refuse => Err(AllocError),
            Mood::Panic => panic!("the upstream is in a mood"),
        }
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: blocks come from `Global` (only the fine mood hands any out).
        unsafe { MemoryResource::deallocate(&Global, ptr, layout) }
    }
}

#[test]
fn rust_failures_and_panics_reach_cxx_as_bad_alloc_and_leave_the_resource_usable() {
    let upstream = Moody { mood: Cell::new(Mood::Fine), calls: Cell::new(0) };
    let pool = UnsyncPool::new_in(&upstream);
    let view = CxxView::of(&pool);
    let cxx = through_cxx(&view);
    let big = Layout::from_size_align(1 << 20, 8).unwrap(); // oversize: always upstream
    for mood in [Mood::Refuse, Mood::Panic] {
        upstream.mood.set(mood);
        // C++ threw std::bad_alloc (memres::rust_panic for the panic); the
        // bridge turned it back into AllocError here.
        assert!(MemoryResource::allocate(&cxx, big).is_err());
        upstream.mood.set(Mood::Fine);
        exercise(cxx);
    }
    assert!(upstream.calls.get() >= 3);
}

#[test]
fn only_cxx_created_memres_resources_downcast_to_rust_types() {
    // std's resources are not memres's (the positive case, a C++-created
    // memres resource, is in the workloads crate, which has C++ code).
    let std_resource = CxxResource::new_delete();
    assert!(std_resource.as_monotonic().is_none());
    assert!(std_resource.as_unsync_pool().is_none());
    assert!(std_resource.as_sync_pool().is_none());
    // A view is C++ too, but of another class: Rust owns that arena.
    let arena = Monotonic::new();
    let view = CxxView::of(&arena);
    assert!(through_cxx(&view).as_monotonic().is_none());
}

#[test]
fn the_heap_goes_to_cxx_as_a_view_and_views_of_it_are_equal() {
    let (a, b) = (CxxView::of(&memres::Heap), CxxView::of(&memres::Heap));
    exercise(through_cxx(&a));
    // A block from one view may be freed through the other (is_equal in C++).
    let layout = Layout::from_size_align(4000, 64).unwrap();
    let block = MemoryResource::allocate(&through_cxx(&a), layout).unwrap().cast::<u8>();
    // SAFETY: both views are the one heap.
    unsafe { MemoryResource::deallocate(&through_cxx(&b), block, layout) };
    let mut v = Vec::new_in(through_cxx(&b));
    v.extend(0..10_000u32);
    assert_eq!(v.iter().map(|&x| u64::from(x)).sum::<u64>(), 49_995_000);
}
