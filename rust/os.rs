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

/// The size of a virtual-memory page.
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
