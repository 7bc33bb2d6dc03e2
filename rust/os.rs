//! The OS layer: every call memres makes into the operating system is here.
//!
//! Page size and protection (the guard pages of `debug-checks`), and the
//! heap's memory: aligned mappings ([`map`], [`unmap`]) and handing pages
//! back ([`purge`]). Under Miri, which cannot run these calls, mappings come
//! from `std::alloc::System` (so the heap's logic runs under Miri), and
//! protection reports that it did nothing (no guard pages under Miri).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(all(unix, not(miri))))]
use std::alloc::GlobalAlloc;

/// Bytes mapped by [`map`] and not yet unmapped, for the heap's stats.
pub(crate) static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// Maps `size` bytes of zeroed, readable and writable memory aligned to
/// `align` (a power of two, at least the page size); `None` if the OS
/// refuses or the sizes overflow.
pub(crate) fn map(size: usize, align: usize) -> Option<NonNull<u8>> {
    debug_assert!(align.is_power_of_two() && size % page_size() == 0);
    #[cfg(all(unix, not(miri)))]
    let block = {
        // Over-map by `align` and cut the ends off: the OS only promises
        // page alignment.
        let over = size.checked_add(align)?;
        // SAFETY: an anonymous private mapping at an address of the OS's
        // choosing touches no existing memory.
        let raw = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                over,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let raw = raw.cast::<u8>();
        let lead = raw.addr().next_multiple_of(align) - raw.addr();
        let start = raw.wrapping_add(lead);
        // SAFETY: both ends are whole pages of the mapping just made, which
        // nothing else uses.
        unsafe {
            if lead > 0 {
                libc::munmap(raw.cast(), lead);
            }
            if align - lead > 0 {
                libc::munmap(start.wrapping_add(size).cast(), align - lead);
            }
        }
        NonNull::new(start)?
    };
    #[cfg(not(all(unix, not(miri))))]
    let block = {
        let layout = core::alloc::Layout::from_size_align(size, align).ok()?;
        // SAFETY: `size` is not zero (a whole number of pages, at least one).
        NonNull::new(unsafe { std::alloc::System.alloc_zeroed(layout) })?
    };
    MAPPED.fetch_add(size, Ordering::Relaxed);
    Some(block)
}

/// Gives back a mapping made by [`map`] with this `size` and `align`.
///
/// # Safety
/// `ptr` came from `map(size, align)` and nothing uses it any more.
pub(crate) unsafe fn unmap(ptr: NonNull<u8>, size: usize, align: usize) {
    MAPPED.fetch_sub(size, Ordering::Relaxed);
    #[cfg(all(unix, not(miri)))]
    {
        let _ = align;
        // SAFETY: the caller's contract: our own, unused mapping.
        unsafe { libc::munmap(ptr.as_ptr().cast(), size) };
    }
    #[cfg(not(all(unix, not(miri))))]
    // SAFETY: the caller's contract: `map` allocated it with this layout.
    unsafe {
        std::alloc::System.dealloc(ptr.as_ptr(), core::alloc::Layout::from_size_align_unchecked(size, align))
    }
}

/// Tells the OS that the whole pages of `[ptr, ptr + len)` may be dropped:
/// they read as zero when touched again. Returns the bytes handed back.
///
/// # Safety
/// The range lies in a mapping from [`map`] and holds nothing anyone reads.
pub(crate) unsafe fn purge(ptr: *mut u8, len: usize) -> usize {
    #[cfg(all(unix, not(miri)))]
    {
        let page = page_size();
        let start = ptr.addr().next_multiple_of(page);
        let end = (ptr.addr() + len) & !(page - 1);
        if end <= start {
            return 0;
        }
        // SAFETY: whole pages of our own mapping that hold nothing.
        let done = unsafe { libc::madvise(ptr.with_addr(start).cast(), end - start, libc::MADV_DONTNEED) };
        if done == 0 { end - start } else { 0 }
    }
    #[cfg(not(all(unix, not(miri))))]
    {
        // Zero them, as the OS would: callers may rely on it.
        // SAFETY: the caller's contract.
        unsafe { ptr.write_bytes(0, len) };
        len
    }
}

/// Registers handlers to run around `fork()` (`pthread_atfork`): before
/// it, and after it in the parent and in the child. Nothing under Miri.
pub(crate) fn at_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    #[cfg(all(unix, not(miri)))]
    // SAFETY: plain functions that live as long as the program. If the C
    // library cannot register them (out of memory), forks go unprotected,
    // as before this call.
    unsafe {
        libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
    }
    #[cfg(not(all(unix, not(miri))))]
    let _ = (prepare, parent, child);
}

/// Asks for transparent huge pages on the whole 2 MiB pages of
/// `[ptr, ptr + len)` (a hint; ignored where the OS has none).
pub(crate) fn advise_huge(ptr: *mut u8, len: usize) {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        const HUGE: usize = 2 << 20;
        let start = ptr.addr().next_multiple_of(HUGE);
        let end = (ptr.addr() + len) & !(HUGE - 1);
        // Where a fault in an advised region would compact memory to make a
        // huge page (the THP `defrag` mode), it can stall for milliseconds:
        // advise only when the kernel has enough free 2 MiB blocks at hand.
        if end > start && (!huge_faults_may_stall() || free_huge_blocks() >= (end - start) / HUGE) {
            // SAFETY: a hint on whole pages of a mapping of ours; it does
            // not change their contents.
            unsafe { libc::madvise(ptr.with_addr(start).cast(), end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    let _ = (ptr, len);
}

/// Whether a fault in a `MADV_HUGEPAGE` region may wait for direct
/// compaction: the THP `defrag` mode is `always`, `madvise` or
/// `defer+madvise` (read once; assumed so if unreadable).
#[cfg(all(target_os = "linux", not(miri)))]
fn huge_faults_may_stall() -> bool {
    // 0: not read yet; 1: no; 2: yes.
    static STALL: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
    let mut known = STALL.load(Ordering::Relaxed);
    if known == 0 {
        let mut buf = [0u8; 128];
        let text = read_small(c"/sys/kernel/mm/transparent_hugepage/defrag", &mut buf);
        known = if text.and_then(parse_defrag_stalls) == Some(false) { 1 } else { 2 };
        STALL.store(known, Ordering::Relaxed);
    }
    known == 2
}

/// The free memory blocks of 2 MiB the kernel holds (larger ones counted
/// as that many), from `/proc/buddyinfo`; 0 if unreadable.
#[cfg(all(target_os = "linux", not(miri)))]
fn free_huge_blocks() -> usize {
    let mut buf = [0u8; 2048];
    read_small(c"/proc/buddyinfo", &mut buf).map_or(0, parse_buddyinfo_huge)
}

/// Reads up to `buf.len()` bytes of a small file (a kernel one: one read),
/// with no allocation.
#[cfg(all(target_os = "linux", not(miri)))]
fn read_small<'a>(path: &core::ffi::CStr, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    // SAFETY: open/read/close on a NUL-terminated path into a buffer of
    // the length passed.
    let len = unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let len = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        len
    };
    Some(&buf[..usize::try_from(len).ok()?])
}

/// From the THP `defrag` file (`always defer [madvise] never`): whether its
/// mode makes an advised region's fault compact directly.
// A parser of a Linux file: used on Linux, tested everywhere.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_defrag_stalls(text: &[u8]) -> Option<bool> {
    let text = core::str::from_utf8(text).ok()?;
    let mode = text.split_whitespace().find(|w| w.starts_with('['))?;
    Some(matches!(mode, "[always]" | "[madvise]" | "[defer+madvise]"))
}

/// From `/proc/buddyinfo` (`Node 0, zone Normal <free blocks of order 0>
/// ... <order 10>`, 4 KiB pages): the free blocks of order 9 (2 MiB) and
/// above, in 2 MiB units, over every zone.
// A parser of a Linux file: used on Linux, tested everywhere.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_buddyinfo_huge(text: &[u8]) -> usize {
    let Ok(text) = core::str::from_utf8(text) else { return 0 };
    let mut total = 0usize;
    for line in text.lines() {
        let Some((_, counts)) = line.split_once("zone") else { continue };
        // The zone's name, then the counts by order.
        for (order, count) in counts.split_whitespace().skip(1).enumerate() {
            if order >= 9 {
                let count: usize = count.parse().unwrap_or(0);
                total = total.saturating_add(count.saturating_mul(1 << (order - 9)));
            }
        }
    }
    total
}

/// The size of a virtual-memory page.
/// "Out of memory", as `errno` says it.
#[cfg(unix)]
pub(crate) const ENOMEM: i32 = libc::ENOMEM;
#[cfg(not(unix))]
pub(crate) const ENOMEM: i32 = 12;

/// The calling thread's `errno` (0 where memres does not know where it is).
pub(crate) fn errno() -> i32 {
    // SAFETY: the calling thread's errno, valid while the thread lives.
    errno_location().map_or(0, |at| unsafe { *at })
}

/// Sets the calling thread's `errno` (nothing where memres does not know
/// where it is).
pub(crate) fn set_errno(value: i32) {
    if let Some(at) = errno_location() {
        // SAFETY: as in `errno`.
        unsafe { *at = value };
    }
}

fn errno_location() -> Option<*mut i32> {
    #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
    // SAFETY: libc's accessor of the calling thread's errno; no preconditions.
    return Some(unsafe { libc::__errno_location() });
    #[cfg(all(any(target_os = "macos", target_os = "ios", target_os = "freebsd"), not(miri)))]
    // SAFETY: as above.
    return Some(unsafe { libc::__error() });
    #[allow(unreachable_code)]
    None
}

/// Runs `f`, a part of `free` that may call the OS or wait on a lock, and
/// for `C` puts `errno` back as it was (C's `free` must not change it).
#[inline(always)]
pub(crate) fn keeping_errno<const C: bool>(f: impl FnOnce()) {
    if C {
        let saved = errno();
        f();
        set_errno(saved);
    } else {
        f();
    }
}

pub(crate) fn page_size() -> usize {
    #[cfg(all(unix, not(miri)))]
    {
        static PAGE: AtomicUsize = AtomicUsize::new(0);
        let mut page = PAGE.load(Ordering::Relaxed);
        if page == 0 {
            // SAFETY: sysconf has no preconditions.
            let answer = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            page = usize::try_from(answer).ok().filter(|p| p.is_power_of_two()).unwrap_or(4096);
            PAGE.store(page, Ordering::Relaxed);
        }
        page
    }
    #[cfg(not(all(unix, not(miri))))]
    4096
}

/// Whether this build can protect pages (guard pages need it).
pub(crate) const CAN_PROTECT: bool = cfg!(all(unix, not(miri)));

/// Makes the pages of `[ptr, ptr + len)` inaccessible (`accessible: false`)
/// or readable and writable again. Returns whether the OS did it.
///
/// # Safety
/// `ptr` must be page-aligned and `[ptr, ptr + len)` whole pages owned by
/// the caller (no one else's data may share them), and nothing may access
/// them while they are inaccessible.
pub(crate) unsafe fn protect(ptr: *mut u8, len: usize, accessible: bool) -> bool {
    #[cfg(all(unix, not(miri)))]
    {
        let prot = if accessible { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_NONE };
        // SAFETY: the caller owns these whole pages and keeps off them.
        unsafe { libc::mprotect(ptr.cast(), len, prot) == 0 }
    }
    #[cfg(not(all(unix, not(miri))))]
    {
        let _ = (ptr, len, accessible);
        false
    }
}

/// A size as the environment gives it: `123`, `64K`, `512M`, `2G` (powers of
/// 1024); `None` if malformed. (`MEMRES_HEAP_LIMIT`, `MEMRES_PROFILE`.)
pub(crate) fn parse_size(text: &[u8]) -> Option<usize> {
    let (digits, unit) = match text.last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1 << 10),
        b'm' | b'M' => (&text[..text.len() - 1], 1 << 20),
        b'g' | b'G' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    let number: usize = core::str::from_utf8(digits).ok()?.parse().ok()?;
    number.checked_mul(unit)
}

/// Runs `f` on the value of environment variable `name`, if it is set.
/// Reads the C environment directly: it must not allocate, as the heap asks
/// before it is ready. (Under Miri, whose isolation hides the host's
/// environment: never set.)
pub(crate) fn env<R>(name: &core::ffi::CStr, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    #[cfg(all(unix, not(miri)))]
    {
        // SAFETY: getenv reads the environment; the string it returns is
        // only read here, before this thread could change the environment.
        let value = unsafe { libc::getenv(name.as_ptr()) };
        if value.is_null() {
            return None;
        }
        // SAFETY: a non-null getenv result is a NUL-terminated string.
        Some(f(unsafe { core::ffi::CStr::from_ptr(value) }.to_bytes()))
    }
    #[cfg(not(all(unix, not(miri))))]
    {
        let _ = (name, f);
        None
    }
}

/// The CPUs this process may use: `MEMRES_HEAP_CPUS` if set, else the
/// fewer of the CPUs it may run on (affinity) and its container's CPU quota
/// (cgroup v2 `cpu.max`, rounded up); 8 where neither is known. Read once;
/// does not allocate.
pub(crate) fn cpus() -> usize {
    static CPUS: AtomicUsize = AtomicUsize::new(0);
    let mut cpus = CPUS.load(Ordering::Relaxed);
    if cpus == 0 {
        let from_env = env(c"MEMRES_HEAP_CPUS", |v| core::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
        // Neither known (not Linux, or Miri): assume a small machine.
        let found = affinity_cpus().min(quota_cpus());
        let found = if found == usize::MAX { 8 } else { found };
        cpus = from_env.flatten().unwrap_or(found).clamp(1, 1 << 16);
        CPUS.store(cpus, Ordering::Relaxed);
    }
    cpus
}

/// CPUs in this thread's affinity mask.
fn affinity_cpus() -> usize {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        // SAFETY: a zeroed cpu_set_t is a valid empty set, filled in by the
        // call for this thread (pid 0).
        unsafe {
            let mut set: libc::cpu_set_t = core::mem::zeroed();
            if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) == 0 {
                return (libc::CPU_COUNT(&set) as usize).max(1);
            }
        }
    }
    usize::MAX
}

/// The cgroup v2 CPU quota, rounded up; unlimited if there is none.
fn quota_cpus() -> usize {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        let mut buf = [0u8; 64];
        if let Some(text) = read_small(c"/sys/fs/cgroup/cpu.max", &mut buf) {
            return parse_cpu_max(text).unwrap_or(usize::MAX);
        }
    }
    usize::MAX
}

/// `"quota period"` → CPUs (rounded up); `None` for `"max ..."` or junk.
// A parser of a Linux file: used on Linux, tested everywhere.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_cpu_max(text: &[u8]) -> Option<usize> {
    let text = core::str::from_utf8(text).ok()?;
    let mut fields = text.split_whitespace();
    let quota: u64 = fields.next()?.parse().ok()?;
    let period: u64 = fields.next().map_or(Some(100_000), |p| p.parse().ok())?;
    if period == 0 {
        return None;
    }
    usize::try_from(quota.div_ceil(period).max(1)).ok()
}

#[cfg(test)]
mod tests {
    use super::{parse_buddyinfo_huge, parse_cpu_max, parse_defrag_stalls};

    #[test]
    fn defrag_modes_that_compact_on_an_advised_fault() {
        let stalls = |t: &str| parse_defrag_stalls(t.as_bytes());
        assert_eq!(stalls("always defer defer+madvise [madvise] never\n"), Some(true));
        assert_eq!(stalls("[always] defer defer+madvise madvise never\n"), Some(true));
        assert_eq!(stalls("always defer [defer+madvise] madvise never\n"), Some(true));
        assert_eq!(stalls("always [defer] defer+madvise madvise never\n"), Some(false));
        assert_eq!(stalls("always defer defer+madvise madvise [never]\n"), Some(false));
        assert_eq!(stalls("garbage"), None);
    }

    #[test]
    fn buddyinfo_counts_free_2mib_blocks_over_zones() {
        let text = "Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3 \n\
                    Node 0, zone    DMA32      5      4      3      2      1      1      1      1      1      2      4 \n\
                    Node 0, zone   Normal    100     50     25     12      6      3      2      1      0      5      1 \n";
        // Order 9 counts once, order 10 twice: DMA 1 + 6, DMA32 2 + 8, Normal 5 + 2.
        assert_eq!(parse_buddyinfo_huge(text.as_bytes()), 24);
        assert_eq!(parse_buddyinfo_huge(b""), 0);
    }

    #[test]
    fn cpu_max_is_quota_over_period_rounded_up() {
        assert_eq!(parse_cpu_max(b"200000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max(b"150000 100000"), Some(2));
        assert_eq!(parse_cpu_max(b"50000 100000"), Some(1));
        assert_eq!(parse_cpu_max(b"400000"), Some(4));
        assert_eq!(parse_cpu_max(b"max 100000\n"), None);
        assert_eq!(parse_cpu_max(b"100 0"), None);
        assert_eq!(parse_cpu_max(b""), None);
    }
}
