//! Debug aids, in one place: AddressSanitizer annotations.
//!
//! With the `asan` feature, memory an arena holds but has not handed out
//! (the unused room of a chunk, everything after `reset`, `release` or a
//! rewind, a block rolled back by `deallocate`) is *poisoned*, and each block
//! is unpoisoned as it is handed out, so AddressSanitizer reports a use after
//! reset as `use-after-poison`. Memory goes back to upstream, and the
//! caller's buffer back to the caller, unpoisoned.
//!
//! The feature is only for builds linked with AddressSanitizer's runtime
//! (`RUSTFLAGS=-Zsanitizer=address` on nightly, or a C++ program built with
//! `-fsanitize=address`, which CMake's `MEMRES_SANITIZE=address` sets up).
//! Without it, every function here is empty and compiles to nothing.

#[cfg(feature = "asan")]
unsafe extern "C" {
    fn __asan_poison_memory_region(addr: *const core::ffi::c_void, size: usize);
    fn __asan_unpoison_memory_region(addr: *const core::ffi::c_void, size: usize);
}

/// Marks `[ptr, ptr + len)` as not to be touched until unpoisoned.
#[inline(always)]
pub(crate) fn poison(ptr: *const u8, len: usize) {
    #[cfg(feature = "asan")]
    // SAFETY: the runtime only writes its shadow memory for the range; the
    // callers pass ranges the arena owns.
    unsafe {
        __asan_poison_memory_region(ptr.cast(), len)
    }
    #[cfg(not(feature = "asan"))]
    let _ = (ptr, len);
}

/// Marks `[ptr, ptr + len)` as usable again.
#[inline(always)]
pub(crate) fn unpoison(ptr: *const u8, len: usize) {
    #[cfg(feature = "asan")]
    // SAFETY: as for `poison`.
    unsafe {
        __asan_unpoison_memory_region(ptr.cast(), len)
    }
    #[cfg(not(feature = "asan"))]
    let _ = (ptr, len);
}
