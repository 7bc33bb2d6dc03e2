//! `fork()`: the child must find every heap lock free.
//!
//! A thread that forks while another thread holds one of the heap's locks
//! would leave the lock held forever in the child, whose only thread then
//! deadlocks at its next slow path. So, through `pthread_atfork`, the
//! forking thread takes every heap lock before the fork (in the heap's one
//! lock order, outermost first) and releases them after it, in the parent
//! and in the child.
//!
//! In the child, the other threads' records and segments stay as they were:
//! their blocks may be freed (they go to remote lists nobody collects, so
//! their memory is not reused), never corrupted.
//!
//! This module is a leaf: each module with a lock keeps its guard in a
//! [`ForkSlot`]; the handlers that take and release them all, in order,
//! are the heap's (`heap/mod.rs`), registered with [`register_once`].
//!
//! # Invariants
//! Each [`ForkSlot`] is written only by the forking thread, between the
//! prepare handler and the parent or child handler, which the C library
//! runs in that thread.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A lock guard kept across `fork()` (see the module doc).
pub(super) struct ForkSlot<T>(UnsafeCell<Option<T>>);

// SAFETY: only the forking thread touches a slot, between the atfork
// handlers (see the module doc).
unsafe impl<T> Sync for ForkSlot<T> {}

impl<T> ForkSlot<T> {
    pub(super) const fn new() -> Self {
        ForkSlot(UnsafeCell::new(None))
    }

    pub(super) fn hold(&self, guard: T) {
        // SAFETY: the forking thread alone, in the prepare handler.
        unsafe { *self.0.get() = Some(guard) };
    }

    pub(super) fn release(&self) {
        // SAFETY: the forking thread alone, in the parent or child handler.
        drop(unsafe { (*self.0.get()).take() });
    }
}

/// Installs `prepare` (before a fork) and `after` (after it, in the parent
/// and in the child), once per process; later calls do nothing.
pub(super) fn register_once(prepare: extern "C" fn(), after: extern "C" fn()) {
    static DONE: AtomicBool = AtomicBool::new(false);
    // A plain load first: every small slow path calls this, and only the
    // first call of the process needs the read-modify-write.
    if !DONE.load(Ordering::Acquire) && !DONE.swap(true, Ordering::AcqRel) {
        crate::os::at_fork(prepare, after, after);
    }
}
