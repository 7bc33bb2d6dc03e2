//! The OS layer: every call memres makes into the operating system is here.
//!
//! Today that is page size and page protection, for the guard pages of
//! `debug-checks`; the heap's memory mapping will join them. Under Miri,
//! which cannot run these calls, and off Unix, the functions report that
//! they did nothing and callers go without (no guard pages under Miri).
#![cfg_attr(not(feature = "debug-checks"), allow(dead_code))] // until the heap uses it too

/// The size of a virtual-memory page.
pub(crate) fn page_size() -> usize {
    #[cfg(all(unix, not(miri)))]
    {
        use core::sync::atomic::{AtomicUsize, Ordering};
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
