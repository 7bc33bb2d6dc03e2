//! Rust resources owned by C++ objects, and Rust's borrows of them.
//!
//! A C++ `memres::monotonic_buffer_resource` (or one of the two pools) owns a
//! boxed Rust core, an [`Owned`] resource. C++ code may `reset()`,
//! `release()`, `trim()` or destroy it whenever its own rules allow; Rust
//! code that reaches the same resource through
//! [`CxxResource::as_monotonic`](crate::CxxResource::as_monotonic) and its
//! siblings holds a [`CxxBorrow`], and blocks it allocates through the borrow
//! cannot outlive it. So safe Rust cannot reach a use-after-reset: a C++ call
//! that would invalidate the borrow stops the process instead.
//!
//! # Invariants
//! - `borrows` counts the live [`CxxBorrow`]s of the resource.
//! - The resource is reached mutably (reset, release, trim, drop) only with
//!   `borrows == 0`. Otherwise `reset()`, `release()` and destruction are a
//!   misuse that aborts with a message naming it (as a C++ contract violation
//!   would be, but reported); `trim()` gives nothing back and returns 0.
//! - C++ calls into a core only from threads its class allows, and a call
//!   that reaches the resource mutably overlaps no other call into the same
//!   core (std's rule for `release()` and destruction; the single-threaded
//!   classes have no concurrent calls at all). A `&mut` made while
//!   `borrows == 0` is therefore unique.

use core::cell::UnsafeCell;
use core::fmt;
use core::ops::Deref;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A Rust resource owned by a C++ object (the core of a C++ class).
pub(crate) struct Owned<R> {
    resource: UnsafeCell<R>,
    borrows: AtomicUsize,
}

impl<R> Owned<R> {
    pub(crate) fn new(resource: R) -> Self {
        Owned { resource: UnsafeCell::new(resource), borrows: AtomicUsize::new(0) }
    }

    /// The resource, for the calls that share it (allocation, stats).
    pub(crate) fn get(&self) -> &R {
        // SAFETY: a `&mut` to the resource exists only inside `exclusive`,
        // which no other call into this core overlaps (module invariants).
        unsafe { &*self.resource.get() }
    }

    /// A borrow that keeps C++ from resetting, releasing or destroying the
    /// resource while it lives.
    pub(crate) fn borrow(&self) -> CxxBorrow<'_, R> {
        self.borrows.fetch_add(1, Ordering::Relaxed);
        CxxBorrow { resource: self.get(), borrows: &self.borrows }
    }

    /// Is a Rust borrow live? (Acquire: the borrower's uses of the resource
    /// happen before whatever the caller does next with it.)
    fn borrowed(&self) -> bool {
        self.borrows.load(Ordering::Acquire) != 0
    }

    /// Runs `f` on the resource for a call that changes it wholesale
    /// (`action`, as C++ names it); aborts with a message if Rust borrows it.
    ///
    /// # Safety
    /// No other call into this core runs meanwhile, and the caller keeps no
    /// reference from [`get`](Self::get) across this call (module invariants).
    pub(crate) unsafe fn exclusive<T>(&self, class: &str, action: &str, f: impl FnOnce(&mut R) -> T) -> T {
        if self.borrowed() {
            misuse(class, action);
        }
        // SAFETY: no `CxxBorrow` lives (checked above) and no other call into
        // this core holds a reference (the caller's contract); the `&mut`
        // ends with `f`.
        f(unsafe { &mut *self.resource.get() })
    }

    /// As [`exclusive`](Self::exclusive), for a call that is skipped while
    /// Rust borrows the resource: `None` then.
    ///
    /// # Safety
    /// As for [`exclusive`](Self::exclusive).
    pub(crate) unsafe fn exclusive_if_free<T>(&self, f: impl FnOnce(&mut R) -> T) -> Option<T> {
        if self.borrowed() {
            return None;
        }
        // SAFETY: as in `exclusive`.
        Some(f(unsafe { &mut *self.resource.get() }))
    }

    /// Checks that C++ may destroy the resource now; aborts if Rust borrows it.
    pub(crate) fn check_destroy(&self, class: &str) {
        if self.borrowed() {
            misuse(class, "destructor");
        }
    }
}

/// Reports a C++ call that would pull a resource out from under a Rust
/// borrow, and aborts: carrying on would leave Rust with dangling blocks.
#[cold]
fn misuse(class: &str, action: &str) -> ! {
    eprintln!(
        "memres: {class}::{action} called while Rust code borrows the resource \
         (a CxxBorrow from CxxResource::as_*); drop the borrow first"
    );
    std::process::abort();
}

/// A Rust borrow of a resource owned by a C++ `memres::` object, from
/// [`CxxResource::as_monotonic`](crate::CxxResource::as_monotonic),
/// [`as_unsync_pool`](crate::CxxResource::as_unsync_pool) or
/// [`as_sync_pool`](crate::CxxResource::as_sync_pool).
///
/// It dereferences to the Rust resource, so `Vec::new_in(&*borrow)`
/// allocates from it directly (no virtual call). While it lives, the C++
/// object's `reset()`, `release()` and destructor abort the process with a
/// message (they would leave the borrow's blocks dangling), and its `trim()`
/// gives nothing back. Take the borrow for the work at hand and drop it
/// before C++ resets the resource.
pub struct CxxBorrow<'a, R> {
    resource: &'a R,
    borrows: &'a AtomicUsize,
}

impl<R> Deref for CxxBorrow<'_, R> {
    type Target = R;

    fn deref(&self) -> &R {
        self.resource
    }
}

impl<R> Drop for CxxBorrow<'_, R> {
    fn drop(&mut self) {
        // Release: this borrow's uses happen before a later reset's Acquire.
        self.borrows.fetch_sub(1, Ordering::Release);
    }
}

impl<R: fmt::Debug> fmt::Debug for CxxBorrow<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CxxBorrow").field(self.resource).finish()
    }
}
