//! The mixed request: Rust and C++ code serving one request from one arena.
//!
//! A request is a text of words. Rust parses it: the words go into an
//! arena-backed `Vec`, their counts into an arena-backed hashbrown
//! `HashMap`. C++ transforms the counts with `std::pmr` containers in the
//! *same* arena (a `pmr::map` keyed by the lower-cased word, merging case
//! variants, then a `pmr::vector` sorted by count) and hands the top words
//! back. Rust writes the response into an arena-backed buffer. The arena
//! is reset between requests, so after the first request no part of the
//! pipeline, in either language, calls the arena's upstream.
//!
//! [`serve`] runs it on any pair of allocators, so the same pipeline runs
//! on one memres arena shared by both languages and on the peers (the
//! global allocator with `new_delete_resource()`, bumpalo with std's
//! monotonic resource), for the showcase and the tests.

use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec;
use hashbrown::DefaultHashBuilder;
use hashbrown::HashMap;

use crate::Resource;

// cxx's wrappers of the unsafe functions below drop their `# Safety`
// sections; the public wrappers after the bridge carry them.
#[allow(clippy::missing_safety_doc)]
#[cxx::bridge(namespace = "memres::workloads")]
mod ffi {
    /// A word of the request (by its place in the text) and its count.
    struct WordCount {
        start: usize,
        len: usize,
        count: u32,
    }

    unsafe extern "C++" {
        include!("memres-workloads/src/mixed.hpp");

        #[namespace = "std::pmr"]
        type memory_resource = memres_cxx::memory_resource;
        type Resource = crate::Resource;

        /// Merges case variants of the `counts` words in `resource` and writes
        /// the `out.len()` most frequent into `out`; returns how many it wrote.
        ///
        /// # Safety
        /// As `try_allocate`.
        unsafe fn rank_words_in(
            resource: *mut memory_resource,
            text: &str,
            counts: &[WordCount],
            out: &mut [WordCount],
        ) -> Result<usize>;
        /// As `rank_words_in`, on a resource of kind `resource` made for the call.
        fn rank_words_with(
            resource: Resource,
            text: &str,
            counts: &[WordCount],
            out: &mut [WordCount],
        ) -> Result<usize>;

        /// A C++-created resource of kind `resource` (not the kept arena),
        /// owned by Rust from here on.
        fn make_resource(resource: Resource) -> Result<UniquePtr<memory_resource>>;
        /// Allocates (and frees) `size` bytes at `align` from `resource` in
        /// C++; returns "" on success, else the exception's type and `what()`.
        ///
        /// # Safety
        /// `resource` is a live C++ resource usable from this thread (so for
        /// all the functions taking one).
        unsafe fn try_allocate(resource: *mut memory_resource, size: usize, align: usize) -> String;
        /// Builds a `pmr::list<int>` of `n` elements in `resource`; returns a checksum.
        ///
        /// # Safety
        /// As `try_allocate`.
        unsafe fn list_build_in(resource: *mut memory_resource, n: usize) -> Result<u64>;
        /// `reset()`s `resource` if it is a C++ `memres::monotonic_buffer_resource`;
        /// says whether it was.
        ///
        /// # Safety
        /// As `try_allocate`, and nothing allocated from it is used again.
        unsafe fn reset_if_memres_arena(resource: *mut memory_resource) -> bool;
        /// `release()`s `resource` if it is one of the C++ `memres::`
        /// resources; says whether it was.
        ///
        /// # Safety
        /// As `reset_if_memres_arena`.
        unsafe fn release_if_memres(resource: *mut memory_resource) -> bool;
        /// `trim()`s `resource` if it is a C++ `memres::` pool: the bytes
        /// given back, or `usize::MAX` if it is not such a pool.
        ///
        /// # Safety
        /// As `try_allocate`.
        unsafe fn trim_if_memres_pool(resource: *mut memory_resource) -> usize;
    }
}

pub use ffi::make_resource;

/// Allocates (and frees) `size` bytes at `align` from `resource` in C++;
/// returns "" on success, else the exception's type and `what()`.
///
/// # Safety
/// `resource` is a live C++ resource usable from this thread.
pub unsafe fn try_allocate(resource: *mut memres_cxx::memory_resource, size: usize, align: usize) -> String {
    // SAFETY: the caller's contract.
    unsafe { ffi::try_allocate(resource, size, align) }
}

/// Builds a `pmr::list<int>` of `n` elements in `resource` in C++; returns a
/// checksum, or the exception C++ threw.
///
/// # Safety
/// As [`try_allocate`].
pub unsafe fn list_build_in(resource: *mut memres_cxx::memory_resource, n: usize) -> Result<u64, cxx::Exception> {
    // SAFETY: the caller's contract.
    unsafe { ffi::list_build_in(resource, n) }
}

/// `reset()`s `resource` if it is a C++ `memres::monotonic_buffer_resource`;
/// says whether it was.
///
/// # Safety
/// As [`try_allocate`], and nothing allocated from it is used again.
pub unsafe fn reset_if_memres_arena(resource: *mut memres_cxx::memory_resource) -> bool {
    // SAFETY: the caller's contract.
    unsafe { ffi::reset_if_memres_arena(resource) }
}

/// `release()`s `resource` if it is one of the C++ `memres::` resources;
/// says whether it was.
///
/// # Safety
/// As [`reset_if_memres_arena`].
pub unsafe fn release_if_memres(resource: *mut memres_cxx::memory_resource) -> bool {
    // SAFETY: the caller's contract.
    unsafe { ffi::release_if_memres(resource) }
}

/// `trim()`s `resource` if it is a C++ `memres::` pool: the bytes given
/// back, or `None` if it is not such a pool.
///
/// # Safety
/// As [`try_allocate`].
pub unsafe fn trim_if_memres_pool(resource: *mut memres_cxx::memory_resource) -> Option<usize> {
    // SAFETY: the caller's contract.
    Some(unsafe { ffi::trim_if_memres_pool(resource) }).filter(|&n| n != usize::MAX)
}

/// Where the C++ half of a request allocates.
#[derive(Clone, Copy, Debug)]
pub enum CxxSide {
    /// A C++ `std::pmr::memory_resource*` the caller provides, such as a
    /// [`memres_cxx::CxxView`] of the Rust half's arena.
    In(*mut memres_cxx::memory_resource),
    /// A resource of this kind, made for the call (as in the C++ workloads).
    With(Resource),
}

/// Serves one request: Rust parses `text` in `alloc`, C++ ranks the words
/// on `cxx`, Rust writes the `top` most frequent as `word:count` lines in
/// `alloc`. Returns a checksum of the response and its length.
///
/// # Panics
/// If the C++ half throws (out of memory).
///
/// # Safety
/// A [`CxxSide::In`] resource must be live and usable from this thread.
pub unsafe fn serve<A: Allocator + Copy>(alloc: A, cxx: CxxSide, text: &str, top: usize) -> (u64, usize) {
    // Parse: words, and their counts, in the arena.
    let mut words: Vec<&str, A> = Vec::new_in(alloc);
    words.extend(text.split_ascii_whitespace());
    let mut counts: HashMap<&str, u32, DefaultHashBuilder, A> = HashMap::with_hasher_in(Default::default(), alloc);
    for &w in &words {
        *counts.entry(w).or_insert(0) += 1;
    }
    let base = text.as_ptr().addr();
    let mut parsed: Vec<ffi::WordCount, A> = Vec::with_capacity_in(counts.len(), alloc);
    parsed.extend(counts.iter().map(|(w, &count)| ffi::WordCount {
        start: w.as_ptr().addr() - base,
        len: w.len(),
        count,
    }));

    // Transform, in C++.
    let mut ranked: Vec<ffi::WordCount, A> = Vec::with_capacity_in(top, alloc);
    ranked.resize_with(top, || ffi::WordCount { start: 0, len: 0, count: 0 });
    let n = match cxx {
        // SAFETY: the caller's contract on the resource.
        CxxSide::In(resource) => unsafe { ffi::rank_words_in(resource, text, &parsed, &mut ranked) },
        CxxSide::With(kind) => ffi::rank_words_with(kind, text, &parsed, &mut ranked),
    }
    .unwrap_or_else(|e| panic!("memres-workloads: the C++ half of a request threw: {}", e.what()));
    ranked.truncate(n);

    // Respond, in the arena.
    let mut response: Vec<u8, A> = Vec::new_in(alloc);
    for r in &ranked {
        response.extend(text.as_bytes()[r.start..r.start + r.len].iter().map(u8::to_ascii_lowercase));
        response.push(b':');
        push_decimal(&mut response, r.count);
        response.push(b'\n');
    }
    let h = response.iter().fold(words.len() as u64, |h, &b| crate::mix(h, u64::from(b)));
    (h, response.len())
}

/// Appends `n` in decimal (without a temporary `String` on the global heap).
fn push_decimal<A: Allocator>(out: &mut Vec<u8, A>, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The text of request `seed`: `words` words drawn from a vocabulary of
/// 300, a few of them capitalised (so C++ has case variants to merge).
pub fn request_text(seed: u64, words: usize) -> String {
    const SYLLABLES: [&str; 12] = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "qu", "xe"];
    let mut rng = crate::XorShift64(0x2545_f491_4f6c_dd1d ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut text = String::with_capacity(words * 8);
    for i in 0..words {
        // Zipf-like: low word numbers are much more frequent.
        let r = rng.next();
        let word = (r % 300) * (r >> 40 & 0xff) / 256;
        let capital = rng.next() % 8 == 0;
        for (j, s) in [word % 12, word / 12 % 12, word / 144].into_iter().enumerate() {
            let s = SYLLABLES[s as usize];
            if j == 0 && capital {
                text.push(s.as_bytes()[0].to_ascii_uppercase() as char);
                text.push_str(&s[1..]);
            } else {
                text.push_str(s);
            }
        }
        text.push(if i % 12 == 11 { '\n' } else { ' ' });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    use core::alloc::Layout;
    use core::cell::Cell;
    use core::ptr::NonNull;

    use allocator_api2::alloc::Global;
    use bumpalo::Bump;
    use memres::{AllocError, MemoryResource, Monotonic, SyncPool, UnsyncPool};
    use memres_cxx::{CxxResource, CxxView};

    /// One request, served by one memres arena shared by both languages.
    fn on_shared_arena(arena: &Monotonic, seed: u64, words: usize) -> (u64, usize) {
        let view = CxxView::of(arena);
        // SAFETY: the view lives to the end of the call, on this thread.
        unsafe { serve(arena, CxxSide::In(view.as_ptr()), &request_text(seed, words), 20) }
    }

    #[test]
    fn the_mixed_request_answers_the_same_on_every_allocator_pair() {
        let mut arena = Monotonic::new();
        let bump = Bump::new();
        let pool = UnsyncPool::new();
        for (seed, words) in [(1, 0), (2, 1), (3, 50), (4, 3000)] {
            let text = request_text(seed, words);
            // SAFETY: `With` sides only.
            let expected = unsafe { serve(Global, CxxSide::With(Resource::NewDelete), &text, 20) };
            assert_eq!(on_shared_arena(&arena, seed, words), expected);
            arena.reset();
            // SAFETY: `With` sides only.
            assert_eq!(unsafe { serve(&bump, CxxSide::With(Resource::StdMonotonic), &text, 20) }, expected);
            let view = CxxView::of(&pool);
            // SAFETY: the view lives to the end of the statement, on this thread.
            assert_eq!(unsafe { serve(&pool, CxxSide::In(view.as_ptr()), &text, 20) }, expected);
        }
        // The answer depends on the request.
        assert_ne!(on_shared_arena(&arena, 5, 500), on_shared_arena(&arena, 6, 500));
    }

    #[test]
    fn the_mixed_response_ranks_merged_case_variants() {
        let text = "b A a B a c";
        // SAFETY: `With` side only.
        let (_, len) = unsafe { serve(Global, CxxSide::With(Resource::MemresMonotonic), text, 2) };
        // "a:3\nb:2\n": C++ merged "A" into "a", ranked by count.
        assert_eq!(len, "a:3\nb:2\n".len());
    }

    #[test]
    fn after_warm_up_a_request_makes_no_upstream_calls_in_either_language() {
        let mut arena = Monotonic::new();
        // The C++ half really allocates in the shared arena: it uses more of
        // the arena than the Rust half alone does.
        let text = request_text(7, 2000);
        // SAFETY: `With` side only.
        unsafe { serve(&arena, CxxSide::With(Resource::NewDelete), &text, 20) };
        let rust_only = arena.stats().used;
        arena.reset();
        on_shared_arena(&arena, 7, 2000);
        assert!(arena.stats().used > rust_only + 2000, "{} vs {rust_only}", arena.stats().used);
        arena.reset();
        // Warm-up, then the steady state: not one upstream call.
        for seed in 0..3 {
            on_shared_arena(&arena, seed, 2000);
            arena.reset();
        }
        let warm = arena.stats().upstream_allocs;
        for seed in 3..23 {
            on_shared_arena(&arena, seed, 2000);
            arena.reset();
        }
        assert_eq!(arena.stats().upstream_allocs, warm, "upstream calls after warm-up");
    }

    #[test]
    fn cxx_created_memres_resources_are_reached_from_rust_as_rust_resources() {
        let arena = make_resource(Resource::MemresMonotonic).unwrap();
        // SAFETY: `arena` outlives `cxx`'s uses.
        let cxx = unsafe { CxxResource::from_raw(NonNull::from(arena.as_ref().unwrap()).cast()) };
        let rust = cxx.as_monotonic().expect("a C++ memres::monotonic_buffer_resource");
        let mut v = Vec::new_in(&*rust);
        v.extend(0..1000u32);
        assert!(rust.stats().used >= 4000);
        // C++ allocates from the same arena after Rust.
        let before = rust.stats().used;
        // SAFETY: a live resource, used on this thread.
        unsafe { list_build_in(cxx.as_ptr().cast(), 100) }.unwrap();
        assert!(rust.stats().used > before);
        assert!(cxx.as_unsync_pool().is_none());

        let pool = make_resource(Resource::MemresUnsyncPool).unwrap();
        // SAFETY: as above.
        let cxx = unsafe { CxxResource::from_raw(NonNull::from(pool.as_ref().unwrap()).cast()) };
        let rust = cxx.as_unsync_pool().expect("a C++ memres::unsynchronized_pool_resource");
        assert_eq!(churn_on(&*rust), churn_on(&UnsyncPool::new()));
        let sync = make_resource(Resource::MemresSyncPool).unwrap();
        // SAFETY: as above.
        let cxx = unsafe { CxxResource::from_raw(NonNull::from(sync.as_ref().unwrap()).cast()) };
        let rust = cxx.as_sync_pool().expect("a C++ memres::synchronized_pool_resource");
        assert_eq!(churn_on(&*rust), churn_on(&SyncPool::new()));
        let std_pool = make_resource(Resource::StdUnsyncPool).unwrap();
        // SAFETY: as above.
        let cxx = unsafe { CxxResource::from_raw(NonNull::from(std_pool.as_ref().unwrap()).cast()) };
        assert!(cxx.as_unsync_pool().is_none(), "std's pool is not memres's");
    }

    /// A pool's `trim()` gives nothing back while Rust borrows the pool, and
    /// does once the borrow is gone.
    #[test]
    fn trim_gives_nothing_back_under_a_rust_borrow() {
        for kind in [Resource::MemresUnsyncPool, Resource::MemresSyncPool] {
            let pool = make_resource(kind).unwrap();
            let ptr = NonNull::from(pool.as_ref().unwrap());
            // SAFETY: `pool` outlives `cxx`'s uses, all on this thread.
            let cxx = unsafe { CxxResource::from_raw(ptr.cast()) };
            let layout = Layout::from_size_align(64, 8).unwrap();
            let held = {
                let blocks: std::vec::Vec<_> =
                    (0..1000).map(|_| MemoryResource::allocate(&cxx, layout).unwrap()).collect();
                for block in blocks {
                    // SAFETY: allocated just above with `layout`.
                    unsafe { MemoryResource::deallocate(&cxx, block.cast(), layout) };
                }
                // SAFETY: a live C++ resource, on this thread.
                let trim = |cxx: &CxxResource| unsafe { trim_if_memres_pool(cxx.as_ptr().cast()) };
                let unsync = matches!(kind, Resource::MemresUnsyncPool).then(|| cxx.as_unsync_pool().unwrap());
                let sync = matches!(kind, Resource::MemresSyncPool).then(|| cxx.as_sync_pool().unwrap());
                assert_eq!(trim(&cxx), Some(0), "{kind:?}: trim() under a borrow");
                drop((unsync, sync));
                trim(&cxx)
            };
            assert!(held.is_some_and(|n| n > 0), "{kind:?}: trim() after the borrow gave back {held:?}");
        }
    }

    /// What a child process runs for the abort tests below: the misuse named
    /// by `MEMRES_MISUSE`, under a live borrow.
    fn misuse_child() {
        let Ok(what) = std::env::var("MEMRES_MISUSE") else { return };
        let kind = if what.contains("pool") { Resource::MemresUnsyncPool } else { Resource::MemresMonotonic };
        let resource = make_resource(kind).unwrap();
        let ptr: *mut memres_cxx::memory_resource = NonNull::from(resource.as_ref().unwrap()).as_ptr();
        // SAFETY: `resource` outlives `cxx`'s uses, all on this thread.
        let cxx = unsafe { CxxResource::from_raw(NonNull::new(ptr).unwrap().cast()) };
        let arena = cxx.as_monotonic();
        let pool = cxx.as_unsync_pool();
        assert!(arena.is_some() || pool.is_some());
        eprintln!("misuse: {what}");
        // SAFETY: a live resource, on this thread; the misuse is the point.
        unsafe {
            match what.as_str() {
                "reset" => _ = reset_if_memres_arena(ptr),
                "release" | "pool release" => _ = release_if_memres(ptr),
                _ => drop(resource),
            }
        }
        eprintln!("misuse: not stopped");
        drop((arena, pool));
        std::process::exit(0);
    }

    /// C++ `reset()`, `release()` and destruction of a resource that Rust
    /// borrows abort with a message naming the call (a child process runs
    /// each); without the abort, the borrow's blocks would dangle.
    #[test]
    fn cxx_calls_that_would_break_a_rust_borrow_abort_with_a_message() {
        misuse_child();
        let cases = [
            ("reset", "monotonic_buffer_resource::reset"),
            ("release", "monotonic_buffer_resource::release"),
            ("destroy", "monotonic_buffer_resource::destructor"),
            ("pool release", "unsynchronized_pool_resource::release"),
            ("pool destroy", "unsynchronized_pool_resource::destructor"),
        ];
        for (what, message) in cases {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "mixed::tests::cxx_calls_that_would_break_a_rust_borrow_abort_with_a_message"])
                .args(["--nocapture", "--test-threads=1"])
                .env("MEMRES_MISUSE", what)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(&format!("misuse: {what}")), "{what}: the child did not run the case:\n{stderr}");
            assert!(!out.status.success(), "{what}: not stopped:\n{stderr}");
            assert!(
                stderr.contains(&format!("memres::{message} called while Rust code borrows the resource")),
                "{what}: no message naming the misuse:\n{stderr}"
            );
            assert!(!stderr.contains("not stopped"), "{what}:\n{stderr}");
        }
    }

    fn churn_on<A: Allocator>(alloc: A) -> u64 {
        crate::churn_rust(alloc, 2000)
    }

    /// An upstream that refuses, or panics, on demand.
    struct Moody(Cell<u8>);

    // SAFETY: forwards to `Global` when it serves.
    unsafe impl MemoryResource for Moody {
        fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
            match self.0.get() {
                0 => MemoryResource::allocate(&Global, layout),
                1 => Err(AllocError),
                _ => panic!("the upstream is in a mood"),
            }
        }

        unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
            // SAFETY: blocks come from `Global`.
            unsafe { MemoryResource::deallocate(&Global, ptr, layout) }
        }
    }

    #[test]
    fn rust_failures_reach_cxx_as_bad_alloc_and_panics_as_rust_panic() {
        let upstream = Moody(Cell::new(1));
        let pool = UnsyncPool::new_in(&upstream);
        let view = CxxView::of(&pool);
        // SAFETY: the view is live, used on this thread.
        let attempt = |size| unsafe { try_allocate(view.as_ptr(), size, 8) };
        assert!(attempt(1 << 20).starts_with("std::bad_alloc"), "{}", attempt(1 << 20));
        upstream.0.set(2);
        let panicked = attempt(1 << 20);
        assert_eq!(
            panicked,
            "memres::rust_panic: memres: Rust code panicked in an allocation: the upstream is in a mood"
        );
        upstream.0.set(0);
        assert_eq!(attempt(1 << 20), "", "the pool is usable after both");
        assert_eq!(attempt(24), "");
        // Bad input from C++: a non-power-of-two alignment is refused.
        // SAFETY: as above.
        let odd = unsafe { try_allocate(view.as_ptr(), 24, 3) };
        assert!(odd.contains("alignment is not a power of two"), "{odd}");
    }
}
