//! memres's heap as the process allocator: `libmemres_malloc.so`.
//!
//! ```text
//! LD_PRELOAD=target/release/libmemres_malloc.so some-program
//! ```
//!
//! Exports the C allocation API (`malloc`, `free`, `calloc`, `realloc`,
//! `reallocarray`, `posix_memalign`, `aligned_alloc`, `memalign`, `valloc`,
//! `pvalloc`, `malloc_usable_size`) and C++'s `operator new`/`delete`
//! family, all served by [`memres::Heap`], plus `memres_stats`,
//! `memres_stats_print` and `memres_stats_json` (see
//! `include/memres/malloc.h`). With `MEMRES_STATS=1` the heap's totals are
//! printed to stderr at exit, one line; with `MEMRES_STATS=json`, its
//! [`memres::HeapReport`] as one line of JSON (for a monitoring system).
//! With `MEMRES_STATS_EVERY=10s` (or `500ms`) the same line is printed
//! every period too, by a thread of the library's own (text unless
//! `MEMRES_STATS=json`).
//!
//! With `MEMRES_PROFILE=interval` (bytes, `K`/`M`/`G` suffixes; `on` for
//! the default 512 KiB) the heap samples allocations for
//! [`memres::profile`] from the start, and writes the three views as
//! folded stacks to `<path>.<pid>.alloc.folded`, `.live.folded` and
//! `.peak.folded` at exit, on `SIGUSR2` (by the thread that takes the next
//! sample), and when the program calls `memres_profile_dump`; `path` is
//! `MEMRES_PROFILE_PATH`, or `memres-profile` in the working directory.
//! `MEMRES_PROFILE_WALK=fp` walks stacks by frame pointers (for programs
//! built to keep them), `unwinder` by the platform unwinder, instead of the
//! unwind tables (see [`memres::profile::Walk`]).
//!
//! # Semantics (glibc's, where C leaves a choice)
//! - `malloc(0)` returns a unique pointer; `free(NULL)` does nothing;
//!   `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p` and
//!   returns null. Blocks are 16-byte aligned.
//! - Failures return null with `errno = ENOMEM` (`EINVAL` for a bad
//!   alignment); `posix_memalign` returns the error instead. `calloc` and
//!   `reallocarray` detect overflow. `calloc` does not zero fresh OS pages.
//! - `operator new` calls the new-handler and retries, then throws
//!   `std::bad_alloc` (a small C++ helper, `src/new_handler.cpp`); the
//!   `nothrow` forms return null.
//!
//! # Invariants
//! - Nothing here allocates except through the heap, which never calls the
//!   global allocator: the text report is formatted on the stack and
//!   written with `write(2)`, the JSON one in a `String` of this library's
//!   global allocator (the heap); the environment is read with `getenv`.
//! - A pointer outside the heap's segments ([`Heap::owns`] says no: memory
//!   from before the library was loaded, from another allocator, the stack
//!   or statics) is never touched: `free` and `malloc_usable_size` report it
//!   on stderr and leave it alone; `realloc` reports it and returns null
//!   (`ENOMEM`), which leaves the caller's block as it was. A pointer into
//!   the heap's own memory that is not a live block (a double free, an
//!   interior pointer) is the heap's misuse checks' to catch: named on
//!   stderr, then abort, or `MEMRES_ON_MISUSE=report` to go on.
//! - `free` leaves `errno` unchanged.
#![allow(non_snake_case)] // the C++ operators' mangled names

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_int, c_void};
use core::fmt::Write as _;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use memres::Heap;

// Rust code inside this library allocates from the heap directly.
#[global_allocator]
static ALLOCATOR: Heap = Heap;

/// The alignment of every `malloc` block (`alignof(max_align_t)`).
const MALLOC_ALIGN: usize = 16;

fn set_errno(code: c_int) {
    // SAFETY: the calling thread's errno, always valid.
    unsafe { *libc::__errno_location() = code };
}

/// Allocates `size` bytes (a zero size as one) aligned to `align`; null
/// with `ENOMEM` on failure. Inlined, so `malloc`'s constant alignment
/// folds into the size-class computation.
#[inline(always)]
fn allocate(size: usize, align: usize, zeroed: bool) -> *mut c_void {
    let Ok(layout) = Layout::from_size_align(size.max(1), align) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    // SAFETY: a non-zero size.
    let block = unsafe { if zeroed { Heap.alloc_zeroed(layout) } else { Heap.alloc(layout) } };
    if block.is_null() {
        set_errno(libc::ENOMEM);
    }
    block.cast()
}

/// Frees `ptr` if the heap owns it; hands it to `foreign` (a report naming
/// the call) otherwise. Leaves `errno` as it was (POSIX.1-2024 and glibc
/// 2.33+ promise that of `free`).
#[inline(always)]
fn release(ptr: *mut c_void, foreign: fn(*mut u8)) {
    let Some(block) = NonNull::new(ptr.cast::<u8>()) else { return };
    // SAFETY: the C contract: a live block, freed once; memory the heap
    // does not hold is left alone (and reported by `foreign`).
    unsafe { Heap::free_c(block, foreign) }
}

/// `malloc(3)`.
#[unsafe(no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    Heap::malloc_c(size).cast()
}

/// `free(3)`.
///
/// # Safety
/// `ptr` is null or a live block from this allocator, freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    release(ptr, |p| report_foreign("free", p.cast()));
}

/// `calloc(3)`: zeroed, and null with `ENOMEM` if `count * size` overflows.
#[unsafe(no_mangle)]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        Some(bytes) => allocate(bytes, MALLOC_ALIGN, true),
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `realloc(3)`, as glibc's: `realloc(NULL, n)` allocates, `realloc(p, 0)`
/// frees and returns null.
///
/// # Safety
/// `ptr` is null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    let Some(block) = NonNull::new(ptr.cast::<u8>()) else {
        return malloc(size);
    };
    if size == 0 {
        release(ptr, |p| report_foreign("realloc", p.cast()));
        return ptr::null_mut();
    }
    if !Heap::owns(block.as_ptr()) {
        report_foreign("realloc", ptr);
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    }
    // SAFETY: a live block of the heap (the caller's contract), aligned to
    // at least MALLOC_ALIGN as every block is; a non-zero size.
    match unsafe { Heap::realloc_unsized(block, size, MALLOC_ALIGN) } {
        Some(moved) => moved.as_ptr().cast(),
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `reallocarray(3)`: `realloc(ptr, count * size)`, or null with `ENOMEM`
/// (and `ptr` untouched) if the product overflows.
///
/// # Safety
/// As for [`realloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        // SAFETY: the caller's contract.
        Some(bytes) => unsafe { realloc(ptr, bytes) },
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `posix_memalign(3)`: returns `EINVAL` unless `align` is a power of two
/// and a multiple of `sizeof(void *)`, `ENOMEM` on failure (`*out` is
/// untouched on error).
///
/// # Safety
/// `out` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align % size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    let saved = errno();
    let block = allocate(size, align.max(MALLOC_ALIGN), false);
    set_errno(saved); // posix_memalign reports through its result only
    if block.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller's contract.
    unsafe { out.write(block) };
    0
}

fn errno() -> c_int {
    // SAFETY: the calling thread's errno, always valid.
    unsafe { *libc::__errno_location() }
}

/// `aligned_alloc(3)`: null with `EINVAL` unless `align` is a power of two.
#[unsafe(no_mangle)]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    allocate(size, align.max(MALLOC_ALIGN), false)
}

/// `memalign(3)`, as glibc's: an alignment that is not a power of two is
/// rounded up to one.
#[unsafe(no_mangle)]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    match align.max(MALLOC_ALIGN).checked_next_power_of_two() {
        Some(align) => allocate(size, align, false),
        None => {
            set_errno(libc::EINVAL);
            ptr::null_mut()
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// `valloc(3)`: page-aligned.
#[unsafe(no_mangle)]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    allocate(size, page_size(), false)
}

/// `pvalloc(3)`: page-aligned, the size rounded up to whole pages (a zero
/// size to one page).
#[unsafe(no_mangle)]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    match size.max(1).checked_next_multiple_of(page) {
        Some(size) => allocate(size, page, false),
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `malloc_usable_size(3)`: 0 for null (and for pointers this allocator
/// did not hand out, which are reported).
///
/// # Safety
/// `ptr` is null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    let Some(block) = NonNull::new(ptr.cast::<u8>()) else { return 0 };
    if !Heap::owns(block.as_ptr()) {
        report_foreign("malloc_usable_size", ptr);
        return 0;
    }
    // SAFETY: a live block of the heap (the caller's contract).
    unsafe { Heap::usable_size(block) }
}

/// Internal (for `new_handler.cpp` and the operators, not in the header):
/// a block of `size` bytes aligned to `align`, or null (`errno` is then
/// `ENOMEM`).
#[unsafe(no_mangle)]
pub extern "C" fn memres_malloc_aligned(size: usize, align: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        return ptr::null_mut();
    }
    allocate(size, align.max(MALLOC_ALIGN), false)
}

unsafe extern "C-unwind" {
    /// C++ (`new_handler.cpp`): calls the new-handler and retries until an
    /// allocation succeeds, or throws `std::bad_alloc` if there is none.
    fn memres_new_failed(size: usize, align: usize) -> *mut c_void;
}

unsafe extern "C" {
    /// C++: as `memres_new_failed`, but null instead of an exception.
    fn memres_new_failed_nothrow(size: usize, align: usize) -> *mut c_void;
}

fn new(size: usize, align: usize) -> *mut c_void {
    let block = memres_malloc_aligned(size, align);
    if !block.is_null() {
        return block;
    }
    // SAFETY: a C++ function that returns a block or throws; this frame is
    // "C-unwind", so the exception passes through to the caller of new.
    unsafe { memres_new_failed(size, align) }
}

/// `operator new(size_t)`: a block from the thread's cache, inline; else
/// `new_plain_slow`, reached by a jump (the inline part keeps nothing for
/// after a call, so it saves no register).
#[inline(always)]
fn new_plain(size: usize) -> *mut c_void {
    let block = Heap::malloc_c_cached(size);
    if !block.is_null() {
        return block.cast();
    }
    new_plain_slow(size)
}

/// `operator new(size_t)` past the thread's cache: `malloc`, then the
/// new-handler.
#[inline(never)]
extern "C-unwind" fn new_plain_slow(size: usize) -> *mut c_void {
    let block = Heap::malloc_c(size);
    if !block.is_null() {
        return block.cast();
    }
    // SAFETY: as in `new`.
    unsafe { memres_new_failed(size, MALLOC_ALIGN) }
}

fn new_nothrow(size: usize, align: usize) -> *mut c_void {
    let block = memres_malloc_aligned(size, align);
    if !block.is_null() {
        return block;
    }
    // SAFETY: a C++ function that catches everything it throws.
    unsafe { memres_new_failed_nothrow(size, align) }
}

/// The C++ `operator new`/`delete` family, by their Itanium ABI names
/// (x86-64 and aarch64 Linux: `size_t` is `unsigned long`, `m`).
mod cxx_operators {
    use super::*;

    type Nothrow = *const c_void; // const std::nothrow_t&

    /// `operator new(size_t)`
    #[unsafe(no_mangle)]
    pub extern "C-unwind" fn _Znwm(size: usize) -> *mut c_void {
        new_plain(size)
    }
    /// `operator new[](size_t)`
    #[unsafe(no_mangle)]
    pub extern "C-unwind" fn _Znam(size: usize) -> *mut c_void {
        new_plain(size)
    }
    /// `operator new(size_t, const nothrow_t&)`
    #[unsafe(no_mangle)]
    pub extern "C" fn _ZnwmRKSt9nothrow_t(size: usize, _: Nothrow) -> *mut c_void {
        new_nothrow(size, MALLOC_ALIGN)
    }
    /// `operator new[](size_t, const nothrow_t&)`
    #[unsafe(no_mangle)]
    pub extern "C" fn _ZnamRKSt9nothrow_t(size: usize, _: Nothrow) -> *mut c_void {
        new_nothrow(size, MALLOC_ALIGN)
    }
    /// `operator new(size_t, align_val_t)`
    #[unsafe(no_mangle)]
    pub extern "C-unwind" fn _ZnwmSt11align_val_t(size: usize, align: usize) -> *mut c_void {
        new(size, align)
    }
    /// `operator new[](size_t, align_val_t)`
    #[unsafe(no_mangle)]
    pub extern "C-unwind" fn _ZnamSt11align_val_t(size: usize, align: usize) -> *mut c_void {
        new(size, align)
    }
    /// `operator new(size_t, align_val_t, const nothrow_t&)`
    #[unsafe(no_mangle)]
    pub extern "C" fn _ZnwmSt11align_val_tRKSt9nothrow_t(size: usize, align: usize, _: Nothrow) -> *mut c_void {
        new_nothrow(size, align)
    }
    /// `operator new[](size_t, align_val_t, const nothrow_t&)`
    #[unsafe(no_mangle)]
    pub extern "C" fn _ZnamSt11align_val_tRKSt9nothrow_t(size: usize, align: usize, _: Nothrow) -> *mut c_void {
        new_nothrow(size, align)
    }

    /// Every `operator delete` frees the block, whatever size, alignment or
    /// tag it is given: the heap knows the block's size.
    macro_rules! deletes {
        ($($name:ident($($arg:ty),*) $what:literal;)*) => {$(
            #[doc = concat!("`", $what, "`")]
            ///
            /// # Safety
            /// The pointer is null or a live block of this allocator.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn $name(ptr: *mut c_void, $(_: $arg),*) {
                release(ptr, |p| report_foreign("operator delete", p.cast()));
            }
        )*};
    }
    deletes! {
        _ZdlPv() "operator delete(void*)";
        _ZdaPv() "operator delete[](void*)";
        _ZdlPvm(usize) "operator delete(void*, size_t)";
        _ZdaPvm(usize) "operator delete[](void*, size_t)";
        _ZdlPvSt11align_val_t(usize) "operator delete(void*, align_val_t)";
        _ZdaPvSt11align_val_t(usize) "operator delete[](void*, align_val_t)";
        _ZdlPvmSt11align_val_t(usize, usize) "operator delete(void*, size_t, align_val_t)";
        _ZdaPvmSt11align_val_t(usize, usize) "operator delete[](void*, size_t, align_val_t)";
        _ZdlPvRKSt9nothrow_t(Nothrow) "operator delete(void*, const nothrow_t&)";
        _ZdaPvRKSt9nothrow_t(Nothrow) "operator delete[](void*, const nothrow_t&)";
        _ZdlPvSt11align_val_tRKSt9nothrow_t(usize, Nothrow) "operator delete(void*, align_val_t, const nothrow_t&)";
        _ZdaPvSt11align_val_tRKSt9nothrow_t(usize, Nothrow) "operator delete[](void*, align_val_t, const nothrow_t&)";
    }
}

/// The heap's totals, as `include/memres/malloc.h`'s `struct memres_stats`.
#[repr(C)]
pub struct MemresStats {
    /// Bytes in live blocks.
    pub allocated: usize,
    /// Bytes of pages holding live blocks.
    pub active: usize,
    /// Bytes touched and not handed back to the OS (an upper bound).
    pub resident: usize,
    /// Bytes mapped from the OS.
    pub mapped: usize,
    /// Mapped but not resident.
    pub retained: usize,
}

/// Fills `*out` with the heap's totals (see `memres::HeapStats`).
///
/// # Safety
/// `out` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memres_stats(out: *mut MemresStats) {
    let s = Heap::stats();
    let stats = MemresStats {
        allocated: s.allocated,
        active: s.active,
        resident: s.resident,
        mapped: s.mapped,
        retained: s.retained,
    };
    // SAFETY: the caller's contract.
    unsafe { out.write(stats) };
}

/// Prints the heap's totals to stderr, one line.
#[unsafe(no_mangle)]
pub extern "C" fn memres_stats_print() {
    print_stats(2);
}

/// Writes the heap's [`memres::HeapReport`] as JSON (one object, no newline)
/// into `buf`, as `snprintf` does: at most `len - 1` bytes and a NUL (nothing
/// if `len` is 0). Returns the JSON's length, so a return of `len` or more
/// means it was cut short (call again with a larger buffer).
///
/// # Safety
/// `buf` is valid for writes of `len` bytes (or `len` is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memres_stats_json(buf: *mut core::ffi::c_char, len: usize) -> usize {
    let json = report_json();
    if len > 0 {
        let n = json.len().min(len - 1);
        // SAFETY: the caller's contract: `buf` holds `len > n` bytes, and the
        // String is ours (no overlap).
        unsafe {
            ptr::copy_nonoverlapping(json.as_ptr(), buf.cast::<u8>(), n);
            buf.add(n).write(0);
        }
    }
    json.len()
}

/// Starts (or, with 0, stops) the heap profiler at a mean interval of
/// `interval` bytes.
#[unsafe(no_mangle)]
pub extern "C" fn memres_profile_start(interval: usize) {
    memres::profile::start(interval);
}

/// Writes the profile's three views now to `<prefix>.{alloc,live,peak}.folded`
/// (`prefix` null: `MEMRES_PROFILE_PATH`'s `<path>.<pid>`). Returns 0, or
/// -1 with `errno` set if a file could not be written.
///
/// # Safety
/// `prefix` is null or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memres_profile_dump(prefix: *const core::ffi::c_char) -> c_int {
    let prefix = if prefix.is_null() {
        memres::profile::dump_prefix()
            .unwrap_or_else(|| profile_prefix().replace("{pid}", &std::process::id().to_string()))
    } else {
        // SAFETY: the caller's contract.
        unsafe { core::ffi::CStr::from_ptr(prefix) }.to_string_lossy().into_owned()
    };
    match memres::profile::dump_views(&prefix) {
        Ok(()) => 0,
        Err(e) => {
            set_errno(e.raw_os_error().unwrap_or(libc::EIO));
            -1
        }
    }
}

/// The heap's report as one JSON object.
fn report_json() -> String {
    // Serializing numbers and a Vec into a String cannot fail.
    serde_json::to_string(&Heap::report()).unwrap_or_default()
}

/// What `MEMRES_STATS` asked for at exit.
static STATS_MODE: AtomicU8 = AtomicU8::new(STATS_TEXT);
const STATS_TEXT: u8 = 0;
const STATS_JSON: u8 = 1;

/// A copy of stderr taken at load time for `MEMRES_STATS`'s report: many
/// programs close stderr before exit (coreutils' `close_stdout`), and the
/// report runs after them. With the file it named (device, inode): a
/// program may close the copy too and open another file under its number,
/// which must not receive the report.
static STATS_FD: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(-1);
static STATS_FILE: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// The (device, inode) of an open descriptor.
fn file_id(fd: c_int) -> Option<(u64, u64)> {
    // SAFETY: a zeroed stat is a valid out-buffer; fstat fills it or fails.
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some((st.st_dev, st.st_ino))
    }
}

fn print_stats(fd: c_int) {
    let s = Heap::stats();
    let mut line = StackText::new();
    let kib = |b: usize| b.div_ceil(1024);
    let _ = writeln!(
        line,
        "memres: allocated {} KiB, active {} KiB, resident {} KiB, mapped {} KiB, retained {} KiB",
        kib(s.allocated),
        kib(s.active),
        kib(s.resident),
        kib(s.mapped),
        kib(s.retained)
    );
    line.write_to(fd);
}

extern "C" fn print_at_exit() {
    print_report();
}

/// `MEMRES_STATS`'s report, to the copy of stderr taken at load time (if
/// it still names the same file).
fn print_report() {
    let fd = STATS_FD.load(Ordering::Relaxed);
    let saved = (STATS_FILE[0].load(Ordering::Relaxed), STATS_FILE[1].load(Ordering::Relaxed));
    if fd < 0 || file_id(fd) != Some(saved) {
        return;
    }
    if STATS_MODE.load(Ordering::Relaxed) == STATS_JSON {
        let mut line = report_json();
        line.push('\n');
        // SAFETY: writes bytes of our own string (a bad descriptor fails).
        unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
    } else {
        print_stats(fd);
    }
}

/// `MEMRES_PROFILE`'s value as an interval: `on` is the default.
fn profile_interval(value: &[u8]) -> Option<usize> {
    if value == b"on" { Some(memres::profile::DEFAULT_INTERVAL) } else { memres::profile::parse_interval(value) }
}

/// The value of environment variable `name`, if set.
fn env_bytes(name: &core::ffi::CStr) -> Option<Vec<u8>> {
    // SAFETY: getenv with a NUL-terminated name; the value is copied at once.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    // SAFETY: a non-null getenv result is a NUL-terminated string.
    (!value.is_null()).then(|| unsafe { core::ffi::CStr::from_ptr(value) }.to_bytes().to_vec())
}

/// The prefix of the profile files: `<path>.{pid}`, where `{pid}` stands
/// for the id of the process writing them (see
/// [`memres::profile::set_dump_prefix`]): a child of `fork()` writes its own.
fn profile_prefix() -> String {
    let path = env_bytes(c"MEMRES_PROFILE_PATH").map(|p| String::from_utf8_lossy(&p).into_owned());
    format!("{}.{{pid}}", path.as_deref().unwrap_or("memres-profile"))
}

/// Reports on stderr that environment variable `name` holds `value`, which
/// is `what` (the variable is then ignored, or its default used).
fn report_malformed(name: &str, value: &[u8], what: &str) {
    let mut line = StackText::new();
    let _ = writeln!(line, "memres: {name}={}: {what}", String::from_utf8_lossy(value));
    line.write_to(2);
}

/// Starts the profiler as `MEMRES_PROFILE` asks, with its dumps at exit and
/// on `SIGUSR2`. A malformed value is reported and ignored.
fn start_profile() {
    let Some(value) = env_bytes(c"MEMRES_PROFILE") else { return };
    let Some(interval) = profile_interval(&value).filter(|&i| i > 0) else {
        report_malformed("MEMRES_PROFILE", &value, "not an interval in bytes");
        return;
    };
    memres::profile::set_dump_prefix(profile_prefix());
    if let Some(name) = env_bytes(c"MEMRES_PROFILE_WALK") {
        match memres::profile::Walk::parse(&name) {
            Some(walk) => memres::profile::set_walk(walk),
            None => report_malformed("MEMRES_PROFILE_WALK", &name, "not tables, unwinder or fp; walking by the tables"),
        }
    }
    memres::profile::start(interval);
    extern "C" fn on_sigusr2(_: c_int) {
        memres::profile::request_dump();
    }
    extern "C" fn dump_at_exit() {
        memres::profile::stop();
        if let Some(prefix) = memres::profile::dump_prefix() {
            match memres::profile::dump_views(&prefix) {
                Ok(()) => eprintln!(
                    "memres: heap profile ({} samples) in {prefix}.{{alloc,live,peak}}.folded",
                    memres::profile::samples()
                ),
                Err(e) => eprintln!("memres: could not write the profile to {prefix}.*.folded: {e}"),
            }
        }
    }
    // SAFETY: a handler that makes one atomic store (async-signal-safe),
    // installed with an otherwise zeroed sigaction; a plain function that
    // lives as long as the program for atexit.
    unsafe {
        let mut action: libc::sigaction = core::mem::zeroed();
        action.sa_sigaction = on_sigusr2 as extern "C" fn(c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGUSR2, &action, ptr::null_mut());
        libc::atexit(dump_at_exit);
    }
}

/// Runs when the library is loaded: installs the heap's `fork()` handlers
/// now, before the program's libraries install theirs (so the heap's locks
/// are taken last before a fork and released first after it), reads the
/// CPU count (which opens a file: better here than inside a `malloc`),
/// starts the profiler if `MEMRES_PROFILE` asks, and arranges
/// `MEMRES_STATS`'s report (`1`: the totals' line; `json`: the report as
/// JSON) at exit, and every `MEMRES_STATS_EVERY` if set.
extern "C" fn on_load() {
    Heap::install_fork_handlers();
    let _ = Heap::cpus();
    start_profile();
    let every = env_bytes(c"MEMRES_STATS_EVERY").and_then(|value| {
        let period = parse_period(&value);
        if period.is_none() {
            report_malformed("MEMRES_STATS_EVERY", &value, "not a period (10s, 500ms)");
        }
        period
    });
    let mode = match env_bytes(c"MEMRES_STATS").as_deref() {
        Some(b"1") => Some(STATS_TEXT),
        Some(b"json") => Some(STATS_JSON),
        // A period alone asks for the text line.
        _ => every.map(|_| STATS_TEXT),
    };
    if let Some(mode) = mode {
        STATS_MODE.store(mode, Ordering::Relaxed);
        // SAFETY: duplicating a descriptor (a closed one gives -1, and the
        // report is then lost); a plain function that lives as long as the
        // program.
        unsafe {
            let fd = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3);
            if let Some((dev, ino)) = file_id(fd) {
                STATS_FILE[0].store(dev, Ordering::Relaxed);
                STATS_FILE[1].store(ino, Ordering::Relaxed);
                STATS_FD.store(fd, Ordering::Relaxed);
            }
            libc::atexit(print_at_exit);
        }
        if let Some(every) = every {
            report_every(every);
        }
    }
}

/// A period as `MEMRES_STATS_EVERY` takes it: a whole number of seconds,
/// with `s` or without, or of milliseconds with `ms`; not zero.
fn parse_period(text: &[u8]) -> Option<core::time::Duration> {
    let (digits, unit_ms) =
        if let Some(ms) = text.strip_suffix(b"ms") { (ms, 1) } else { (text.strip_suffix(b"s").unwrap_or(text), 1000) };
    let n: u64 = core::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(core::time::Duration::from_millis(n.checked_mul(unit_ms)?)).filter(|d| !d.is_zero())
}

/// Starts a thread that prints `MEMRES_STATS`'s report every `every`, for
/// a long-running program to be watched while it runs (a thread of its
/// own: the heap's paths stay as they are). A child of `fork()` does not
/// have it.
fn report_every(every: core::time::Duration) {
    let spawned = std::thread::Builder::new().name("memres-stats".into()).stack_size(256 << 10).spawn(move || {
        loop {
            std::thread::sleep(every);
            print_report();
        }
    });
    if spawned.is_err() {
        let mut line = StackText::new();
        let _ = writeln!(line, "memres: MEMRES_STATS_EVERY: could not start the reporting thread");
        line.write_to(2);
    }
}

// The C library calls `.init_array` entries with (argc, argv, envp); a
// function that takes no arguments ignores them (SysV calling convention).
#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

/// Text formatted into a fixed buffer on the stack (no allocation).
struct StackText {
    buf: [u8; 256],
    len: usize,
}

impl StackText {
    fn new() -> Self {
        StackText { buf: [0; 256], len: 0 }
    }

    fn write_to(&self, fd: c_int) {
        // SAFETY: writes bytes of our own buffer (a bad descriptor fails).
        unsafe { libc::write(fd, self.buf.as_ptr().cast(), self.len) };
    }
}

impl core::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Reports a pointer this allocator did not hand out (the first 16; then
/// one line saying the rest are not shown).
#[cold]
#[inline(never)]
fn report_foreign(call: &str, ptr: *mut c_void) {
    let saved = errno(); // the report's write must not change it
    report_foreign_line(call, ptr);
    set_errno(saved);
}

fn report_foreign_line(call: &str, ptr: *mut c_void) {
    const SHOWN: usize = 16;
    static REPORTED: AtomicUsize = AtomicUsize::new(0);
    let n = REPORTED.fetch_add(1, Ordering::Relaxed);
    let mut line = StackText::new();
    if n < SHOWN {
        let _ = writeln!(
            line,
            "memres: {call}({ptr:p}): not a block memres allocated (made before the library was loaded, or by \
             another allocator); left alone"
        );
    } else if n == SHOWN {
        let _ = writeln!(line, "memres: more pointers memres did not allocate; no longer reported");
    }
    line.write_to(2);
}
