//! Debug aids, in one place: AddressSanitizer annotations (feature `asan`)
//! and the checks of feature `debug-checks`.
//!
//! # What memory goes through here
//! - [`hand_out`]: a block leaves an arena for a caller.
//! - [`retire`]: an arena takes memory back but keeps holding it (the unused
//!   room of a new chunk, a rolled-back block, everything after `reset`,
//!   `release` or a rewind).
//! - [`give_back`]: memory leaves the arena for good (a chunk returned to
//!   upstream, the caller's buffer when the arena is dropped).
//!
//! With `asan`, retired memory is poisoned and handed-out memory unpoisoned,
//! so AddressSanitizer reports a use after reset as `use-after-poison`; given
//! back memory is unpoisoned. The feature is only for builds linked with
//! AddressSanitizer's runtime (`RUSTFLAGS=-Zsanitizer=address` on nightly,
//! or a C++ program built with `-fsanitize=address`, which CMake's
//! `MEMRES_SANITIZE=address` sets up).
//!
//! With `tsan`, [`acquired`] and [`releasing`] tell ThreadSanitizer about
//! the pools' locks. A C++ program built with `-fsanitize=thread` links a
//! Rust core that is not instrumented, so TSan cannot see the core's mutexes
//! and would report the blocks they hand between threads as races; with the
//! annotations it sees the same happens-before edges the locks make. (Rust
//! programs built with `-Zsanitizer=thread -Zbuild-std` see the locks
//! themselves and do not need the feature.)
//!
//! With `debug-checks`, retired memory is filled with [`FREED_BYTE`], and a
//! [`Ledger`] of live blocks turns a double free, a free with the wrong
//! layout, and a free of a pointer the arena never handed out into a panic
//! that says which. Without the features, everything here is empty: the
//! ledger is a zero-sized type and the functions compile to nothing.

use core::alloc::Layout;

/// What `debug-checks` writes over memory an arena takes back.
pub const FREED_BYTE: u8 = 0xDD;

#[cfg(feature = "asan")]
unsafe extern "C" {
    fn __asan_poison_memory_region(addr: *const core::ffi::c_void, size: usize);
    fn __asan_unpoison_memory_region(addr: *const core::ffi::c_void, size: usize);
}

#[cfg(feature = "tsan")]
unsafe extern "C" {
    fn __tsan_acquire(addr: *const core::ffi::c_void);
    fn __tsan_release(addr: *const core::ffi::c_void);
}

/// The lock at `lock` was just taken (ThreadSanitizer annotation).
#[inline(always)]
pub(crate) fn acquired<T>(lock: *const T) {
    #[cfg(feature = "tsan")]
    // SAFETY: the runtime only records a synchronisation event for the address.
    unsafe {
        __tsan_acquire(lock.cast())
    }
    let _ = lock;
}

/// The lock at `lock` is about to be released (ThreadSanitizer annotation).
#[inline(always)]
pub(crate) fn releasing<T>(lock: *const T) {
    #[cfg(feature = "tsan")]
    // SAFETY: as for `acquired`.
    unsafe {
        __tsan_release(lock.cast())
    }
    let _ = lock;
}

/// A block of `len` bytes at `ptr` goes out to a caller.
#[inline(always)]
pub(crate) fn hand_out(ptr: *const u8, len: usize) {
    #[cfg(feature = "asan")]
    // SAFETY: the runtime only writes its shadow memory for the range, which
    // the arena owns.
    unsafe {
        __asan_unpoison_memory_region(ptr.cast(), len)
    }
    let _ = (ptr, len);
}

/// The arena takes `[ptr, ptr + len)` back and keeps holding it.
///
/// # Safety
/// The range must be memory the arena owns and that no live block overlaps.
#[inline(always)]
pub(crate) unsafe fn retire(ptr: *mut u8, len: usize) {
    #[cfg(feature = "debug-checks")]
    {
        // Unpoison first: the fill would otherwise be reported by ASan.
        hand_out(ptr, len);
        // SAFETY: the caller guarantees the range is owned and not live.
        unsafe { ptr.write_bytes(FREED_BYTE, len) };
    }
    #[cfg(feature = "asan")]
    // SAFETY: as for `hand_out`.
    unsafe {
        __asan_poison_memory_region(ptr.cast(), len)
    }
    let _ = (ptr, len);
}

/// `[ptr, ptr + len)` leaves the arena for good.
#[inline(always)]
pub(crate) fn give_back(ptr: *const u8, len: usize) {
    hand_out(ptr, len);
}

/// Every live block of every memres resource, by address, with the name of
/// the resource that handed it out: a foreign free names the owner.
#[cfg(feature = "debug-checks")]
static OWNERS: std::sync::Mutex<std::collections::BTreeMap<usize, std::sync::Arc<Owner>>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

#[cfg(feature = "debug-checks")]
fn owners() -> std::sync::MutexGuard<'static, std::collections::BTreeMap<usize, std::sync::Arc<Owner>>> {
    OWNERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Who a ledger belongs to, for messages: the resource type and a number
/// (resources are numbered in creation order, per process).
#[cfg(feature = "debug-checks")]
struct Owner {
    kind: &'static str,
    number: u64,
}

#[cfg(feature = "debug-checks")]
impl core::fmt::Display for Owner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} #{}", self.kind, self.number)
    }
}

/// How many freed or taken-back addresses a ledger remembers, to say what
/// happened to a block freed again (older ones are forgotten).
#[cfg(feature = "debug-checks")]
const GONE_LIMIT: usize = 1 << 16;

/// The live blocks of one arena, under `debug-checks`; otherwise nothing.
///
/// With the checks on, the ledger also remembers recently gone blocks (and
/// why they went: a free, a reset, a release, a rewind), so a second free
/// says which, and registers live blocks in a process-wide table, so a free
/// to the wrong resource names the resource that owns the block.
pub(crate) struct Ledger {
    #[cfg(feature = "debug-checks")]
    live: core::cell::RefCell<std::collections::BTreeMap<usize, (Layout, u64)>>,
    #[cfg(feature = "debug-checks")]
    gone: core::cell::RefCell<std::collections::BTreeMap<usize, &'static str>>,
    #[cfg(feature = "debug-checks")]
    next: core::cell::Cell<u64>,
    #[cfg(feature = "debug-checks")]
    owner: std::sync::Arc<Owner>,
}

#[cfg(not(feature = "debug-checks"))]
const _: () = assert!(core::mem::size_of::<Ledger>() == 0, "debug checks must cost nothing when off");

/// A position in a ledger's history, for rewinds.
pub(crate) type Mark = u64;

impl Ledger {
    /// The ledger of a new resource of type `kind` (e.g. `"memres::Monotonic"`).
    pub(crate) fn new(kind: &'static str) -> Self {
        #[cfg(feature = "debug-checks")]
        {
            static NUMBER: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);
            let number = NUMBER.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            Ledger {
                live: Default::default(),
                gone: Default::default(),
                next: Default::default(),
                owner: std::sync::Arc::new(Owner { kind, number }),
            }
        }
        #[cfg(not(feature = "debug-checks"))]
        {
            let _ = kind;
            Ledger {}
        }
    }

    /// Records a block handed out (zero-size blocks are not tracked: they
    /// share addresses and their deallocation does nothing).
    #[inline(always)]
    pub(crate) fn record(&self, ptr: *const u8, layout: Layout) {
        #[cfg(feature = "debug-checks")]
        if layout.size() != 0 {
            let seq = self.next.get();
            self.next.set(seq + 1);
            self.live.borrow_mut().insert(ptr.addr(), (layout, seq));
            self.gone.borrow_mut().remove(&ptr.addr());
            owners().insert(ptr.addr(), self.owner.clone());
        }
        let _ = (ptr, layout);
    }

    /// Checks that `ptr` is a live block with `layout` and forgets it;
    /// panics, naming the mistake, if it is not. `owned` says whether the
    /// address lies in memory the arena holds.
    #[inline(always)]
    pub(crate) fn check_free(&self, what: &str, ptr: *const u8, layout: Layout, owned: impl FnOnce() -> bool) {
        #[cfg(feature = "debug-checks")]
        if layout.size() != 0 {
            let me = &self.owner;
            let found = self.live.borrow_mut().remove(&ptr.addr());
            match found {
                Some((recorded, _)) if recorded == layout => {
                    owners().remove(&ptr.addr());
                    self.remember_gone(ptr.addr(), "freed");
                }
                Some((recorded, _)) => panic!(
                    "memres: {what} of {ptr:p} with size {} and alignment {}, but the block was allocated with \
                     size {} and alignment {}",
                    layout.size(),
                    layout.align(),
                    recorded.size(),
                    recorded.align()
                ),
                None => {
                    // Another resource's live block first: its address may
                    // have been ours once, but the free is still a wrong one.
                    let other = owners().get(&ptr.addr()).cloned();
                    if let Some(owner) = other {
                        panic!(
                            "memres: {what} of {ptr:p}: foreign pointer, not allocated by this arena ({me}): \
                             a wrong-allocator free; the block belongs to {owner}"
                        );
                    }
                    let gone = self.gone.borrow().get(&ptr.addr()).copied();
                    if let Some(how) = gone {
                        if how == "freed" {
                            panic!("memres: {what} of {ptr:p}: double free (the block was already freed, on {me})");
                        }
                        panic!(
                            "memres: {what} of {ptr:p}: double free (the block was {how}, and no block may be \
                             used or freed after that), on {me}"
                        );
                    }
                    if owned() {
                        panic!(
                            "memres: {what} of {ptr:p}: double free (the block was already freed, or reset or \
                             rewound away), on {me}"
                        );
                    }
                    panic!(
                        "memres: {what} of {ptr:p}: foreign pointer, not allocated by this arena ({me}) nor by any \
                         live memres resource"
                    );
                }
            }
        }
        let _ = (what, ptr, layout, owned);
    }

    #[cfg(feature = "debug-checks")]
    fn remember_gone(&self, addr: usize, how: &'static str) {
        let mut gone = self.gone.borrow_mut();
        if gone.len() >= GONE_LIMIT {
            gone.clear();
        }
        gone.insert(addr, how);
    }

    /// Where the history is now.
    pub(crate) fn mark(&self) -> Mark {
        #[cfg(feature = "debug-checks")]
        return self.next.get();
        #[cfg(not(feature = "debug-checks"))]
        0
    }

    /// Forgets the blocks recorded since `mark` (a rewind freed them).
    pub(crate) fn forget_since(&self, mark: Mark) {
        #[cfg(feature = "debug-checks")]
        {
            let mut live = self.live.borrow_mut();
            let mut owners = owners();
            let gone: std::vec::Vec<usize> =
                live.iter().filter(|&(_, &(_, seq))| seq >= mark).map(|(&addr, _)| addr).collect();
            for addr in gone {
                live.remove(&addr);
                owners.remove(&addr);
                self.remember_gone(addr, "rewound away by a checkpoint rewind");
            }
        }
        let _ = mark;
    }

    /// Forgets every block; `how` says what took them ("reset", "released").
    pub(crate) fn forget_all(&self, how: &'static str) {
        #[cfg(feature = "debug-checks")]
        {
            let live = core::mem::take(&mut *self.live.borrow_mut());
            let mut owners = owners();
            for &addr in live.keys() {
                owners.remove(&addr);
                self.remember_gone(addr, how);
            }
        }
        let _ = how;
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        #[cfg(feature = "debug-checks")]
        {
            let mut owners = owners();
            for addr in self.live.get_mut().keys() {
                owners.remove(addr);
            }
        }
    }
}

/// A [`Ledger`] that threads share (behind a lock), under `debug-checks`;
/// otherwise nothing.
pub(crate) struct SharedLedger {
    #[cfg(feature = "debug-checks")]
    inner: std::sync::Mutex<Ledger>,
}

#[cfg(not(feature = "debug-checks"))]
const _: () = assert!(core::mem::size_of::<SharedLedger>() == 0, "debug checks must cost nothing when off");

impl SharedLedger {
    /// As [`Ledger::new`].
    pub(crate) fn new(kind: &'static str) -> Self {
        #[cfg(feature = "debug-checks")]
        return SharedLedger { inner: std::sync::Mutex::new(Ledger::new(kind)) };
        #[cfg(not(feature = "debug-checks"))]
        {
            let _ = kind;
            SharedLedger {}
        }
    }

    #[cfg(feature = "debug-checks")]
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// As [`Ledger::record`].
    #[inline(always)]
    pub(crate) fn record(&self, ptr: *const u8, layout: Layout) {
        #[cfg(feature = "debug-checks")]
        self.ledger().record(ptr, layout);
        let _ = (ptr, layout);
    }

    /// As [`Ledger::check_free`].
    #[inline(always)]
    pub(crate) fn check_free(&self, what: &str, ptr: *const u8, layout: Layout, owned: impl FnOnce() -> bool) {
        #[cfg(feature = "debug-checks")]
        self.ledger().check_free(what, ptr, layout, owned);
        #[cfg(not(feature = "debug-checks"))]
        let _ = (what, ptr, layout, owned);
    }

    /// As [`Ledger::forget_all`].
    pub(crate) fn forget_all(&self, how: &'static str) {
        #[cfg(feature = "debug-checks")]
        self.ledger().forget_all(how);
        let _ = how;
    }
}
