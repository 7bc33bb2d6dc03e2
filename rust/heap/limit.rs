//! The heap's optional memory limit.
//!
//! Every byte of new memory the heap is about to touch — a clean page, a
//! segment header, a large block or its growth — is *charged* here first,
//! against the resident count (`counters::RESIDENT`). Past the soft limit
//! the heap purges: the empty segments and large blocks it keeps, the
//! calling thread's free pages, and it asks every other thread to purge
//! its own at its next slow path. Past the hard limit (after that purge)
//! the allocation fails, so a program sees null / `Err` / `std::bad_alloc`
//! it can handle instead of being killed by the OOM killer.
//!
//! This module decides; it does not purge. A charge that needs a purge
//! first says so ([`Short::PurgeFirst`]); the heap's top level
//! (`Heap::with_purge` in `heap/mod.rs`) purges, marks the thread
//! [`purged`], and tries the allocation once more, whose charge then
//! decides without asking again.
//!
//! Limits come from [`Heap::set_limits`](super::Heap::set_limits) or, read
//! at the first charge, the environment: `MEMRES_HEAP_LIMIT` (hard) and
//! `MEMRES_HEAP_SOFT_LIMIT`, in bytes with an optional `K`, `M` or `G`
//! suffix (powers of 1024).
//!
//! # Invariants
//! - `RESIDENT` (in `counters.rs`) counts every byte charged here and not yet
//!   given back; a refused charge is taken back before `charge` returns.
//! - The environment is read once, before any limit is read or set (a
//!   limit set by the API is never overwritten by a late read); `usize::MAX`
//!   stands for "no limit".
//! - `PURGE_REQUESTS` only grows; a thread heap serves each request once
//!   (`purge_seen`), at its next slow path.
//! - `charge` takes no heap lock of its own but `LAST_SOFT_PURGE` (with
//!   `try_lock`), so it may run under the orphan heap's lock.

use core::cell::Cell;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, TryLockError};
use std::time::{Duration, Instant};

use super::counters::{self, RESIDENT};

/// Limits on the heap's resident memory (see
/// [`HeapStats::resident`](super::HeapStats::resident)); `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapLimits {
    /// Past this, the heap hands its free memory back to the OS before it
    /// takes more.
    pub soft: Option<usize>,
    /// Past this, allocations fail.
    pub hard: Option<usize>,
}

static SOFT: AtomicUsize = AtomicUsize::new(usize::MAX);
static HARD: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Reads the environment once; callers wait until it is read, so a limit
/// set by the API is never overwritten by a late read.
static ENV_READ: Once = Once::new();
/// Bumped to ask every thread to purge its free pages.
pub(super) static PURGE_REQUESTS: AtomicUsize = AtomicUsize::new(0);
/// When the soft limit last made the heap purge: at most one purge per
/// [`SOFT_PURGE_EVERY`], so a heap that stays past it does not spend its
/// time purging.
static LAST_SOFT_PURGE: Mutex<Option<Instant>> = Mutex::new(None);
const SOFT_PURGE_EVERY: Duration = Duration::from_millis(10);

pub(super) fn read_env() {
    ENV_READ.call_once(|| {
        let size = |name: &core::ffi::CStr| crate::os::env(name, crate::os::parse_size).flatten();
        if let Some(hard) = size(c"MEMRES_HEAP_LIMIT") {
            HARD.store(hard, Ordering::Relaxed);
        }
        if let Some(soft) = size(c"MEMRES_HEAP_SOFT_LIMIT") {
            SOFT.store(soft, Ordering::Relaxed);
        }
    });
}

pub(super) fn set(limits: HeapLimits) {
    read_env();
    SOFT.store(limits.soft.unwrap_or(usize::MAX), Ordering::Relaxed);
    HARD.store(limits.hard.unwrap_or(usize::MAX), Ordering::Relaxed);
}

pub(super) fn get() -> HeapLimits {
    read_env();
    let limit = |v: usize| (v != usize::MAX).then_some(v);
    HeapLimits { soft: limit(SOFT.load(Ordering::Relaxed)), hard: limit(HARD.load(Ordering::Relaxed)) }
}

/// Why a charge did not go through (nothing is counted then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Short {
    /// Past the hard limit, after a purge: the allocation fails.
    Refused,
    /// Past a limit: purge, then try again (see the module doc).
    PurgeFirst,
}

std::thread_local! {
    /// This thread purged for a `PurgeFirst` and is trying again.
    static PURGED: Cell<bool> = const { Cell::new(false) };
}

/// Counts `bytes` of new memory as resident, or says why not.
pub(super) fn charge(bytes: usize) -> Result<(), Short> {
    read_env();
    let now = RESIDENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    let (soft, hard) = (SOFT.load(Ordering::Relaxed), HARD.load(Ordering::Relaxed));
    if now <= soft.min(hard) {
        return Ok(());
    }
    let purged = PURGED.with(Cell::get);
    if !purged && (now > hard || soft_purge_due()) {
        counters::sub(&RESIDENT, bytes);
        PURGE_REQUESTS.fetch_add(1, Ordering::Relaxed);
        return Err(Short::PurgeFirst);
    }
    if now > hard {
        counters::sub(&RESIDENT, bytes);
        return Err(Short::Refused);
    }
    Ok(())
}

/// The calling thread has purged for a `PurgeFirst` (`true`) and tries
/// again, or is done trying (`false`).
pub(super) fn set_purged(purged: bool) {
    PURGED.with(|p| p.set(purged));
}

static FORK: super::fork::ForkSlot<std::sync::MutexGuard<'static, Option<Instant>>> = super::fork::ForkSlot::new();

/// Holds the limit's lock across a `fork()` (see `fork.rs`).
pub(super) fn fork_hold() {
    FORK.hold(LAST_SOFT_PURGE.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
}

pub(super) fn fork_release() {
    FORK.release();
}

fn soft_purge_due() -> bool {
    let mut last = match LAST_SOFT_PURGE.try_lock() {
        Ok(last) => last,
        Err(TryLockError::Poisoned(last)) => last.into_inner(),
        Err(TryLockError::WouldBlock) => return false, // another thread is purging now
    };
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < SOFT_PURGE_EVERY) {
        return false;
    }
    *last = Some(now);
    true
}

#[cfg(test)]
mod tests {
    use crate::os::parse_size;

    #[test]
    fn sizes_take_binary_suffixes_and_reject_junk() {
        assert_eq!(parse_size(b"4096"), Some(4096));
        assert_eq!(parse_size(b"64K"), Some(64 << 10));
        assert_eq!(parse_size(b"512m"), Some(512 << 20));
        assert_eq!(parse_size(b"2G"), Some(2 << 30));
        assert_eq!(parse_size(b"99999999999999999999G"), None);
        for junk in [&b""[..], b"G", b"12 M", b"-1", b"1.5G", b"12MB"] {
            assert_eq!(parse_size(junk), None, "{:?}", core::str::from_utf8(junk));
        }
    }
}
