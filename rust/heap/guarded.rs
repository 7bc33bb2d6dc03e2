//! Sampled guarded allocations (secure mode, `MEMRES_GUARDED_SAMPLE_RATE=N`):
//! about one small allocation in `N` is served from a page of its own
//! between two inaccessible pages, placed so that it ends where the next
//! guard page starts, and made inaccessible when it is freed. An overflow
//! off its end, an underflow off its start, or a use after its free then
//! faults at the culprit instruction, and the fault handler prints what it
//! was, with where the block was allocated and freed (instruction
//! addresses, with the object and offset to look up, e.g. `addr2line -e`),
//! before the process dies of the fault as it would have. The idea is
//! GWP-ASan's (Google's sampled allocator for production, in Chromium,
//! Android and LLVM's scudo), at the sampling rates it uses.
//!
//! A pool of [`SLOTS`] slots, each an OS page, is reserved once (one
//! mapping: guard, slot, guard, slot, ..., guard); a freed slot is reused
//! last (oldest free first), so a dangling pointer faults for as long as
//! possible. With every slot live, allocations are not sampled.
//!
//! # Invariants
//! - `REGION` is set once, with the pool's mapping fully made (guards and
//!   free slots inaccessible) and the fault handler installed; the mapping
//!   is never unmapped.
//! - A slot is readable and writable exactly while it is `LIVE`; its
//!   record (`Slot`) is written only under `POOL`'s lock. The fault
//!   handler reads records without the lock (it may see one half written,
//!   which costs a wrong line in a report, not memory safety: it reads
//!   plain integers from a mapping that never goes away).

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::cell::Cell;
use std::sync::{Mutex, PoisonError};

use super::guard::{self, Misuse};
use crate::classes::class_size;
use crate::os;

/// Slots in the pool.
pub(super) const SLOTS: usize = 64;
/// Return addresses kept per stack.
const FRAMES: usize = 16;

const NEVER: u8 = 0;
const LIVE: u8 = 1;
const FREED: u8 = 2;

/// A stack: return addresses, innermost first.
#[derive(Clone, Copy)]
struct Trace {
    frames: [usize; FRAMES],
    len: usize,
}

impl Trace {
    const EMPTY: Trace = Trace { frames: [0; FRAMES], len: 0 };

    /// The calling thread's stack, without the allocator's own frames where
    /// the unwinder can tell them (it cannot always; the report says so).
    fn here() -> Trace {
        let mut trace = Trace::EMPTY;
        // SAFETY: `trace_unsynchronized` walks this thread's stack; the
        // closure only copies instruction addresses (no allocation, no
        // re-entry into the unwinder).
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                trace.frames[trace.len] = frame.ip().addr();
                trace.len += 1;
                trace.len < FRAMES
            })
        };
        trace
    }
}

/// One slot's record.
#[derive(Clone, Copy)]
struct Slot {
    state: u8,
    /// The block's address and requested size.
    addr: usize,
    size: usize,
    alloc_thread: i64,
    free_thread: i64,
    alloc: Trace,
    free: Trace,
}

struct Pool {
    /// Free slots, oldest free first (a ring of `len` from `head`).
    free: [u16; SLOTS],
    head: usize,
    len: usize,
}

impl Pool {
    /// Slot `i` goes to the back of the free ring (reused last).
    fn give_back(&mut self, i: usize) {
        let tail = (self.head + self.len) % SLOTS;
        self.free[tail] = i as u16;
        self.len += 1;
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool { free: [0; SLOTS], head: 0, len: 0 });
/// The pool's mapping (null until made).
static REGION: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());
/// The slots' records (a mapping of `SLOTS` records).
static RECORDS: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());
/// The sampling rate: 0 not read yet, 1 + N after (N = 0: off).
static RATE: AtomicUsize = AtomicUsize::new(0);
/// The fault handler in place before ours, to pass other faults to.
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(ptr::null_mut());

std::thread_local! {
    /// Allocations until this thread samples one (0: draw a new gap).
    static COUNTDOWN: Cell<u32> = const { Cell::new(0) };
}

fn page() -> usize {
    os::page_size()
}

fn region_bytes() -> usize {
    (2 * SLOTS + 1) * page()
}

/// The sampling rate (`MEMRES_GUARDED_SAMPLE_RATE`), 0 for off.
pub(super) fn rate() -> usize {
    let mut rate = RATE.load(Ordering::Relaxed);
    if rate == 0 {
        let asked = os::env(c"MEMRES_GUARDED_SAMPLE_RATE", |v| {
            core::str::from_utf8(v).ok().and_then(|s| s.trim().parse::<u32>().ok())
        });
        rate = 1 + asked.flatten().unwrap_or(0) as usize;
        RATE.store(rate, Ordering::Relaxed);
    }
    if os::CAN_PROTECT { rate - 1 } else { 0 }
}

/// Whether `ptr` lies in the pool's mapping.
pub(super) fn holds(ptr: *const u8) -> bool {
    let base = REGION.load(Ordering::Acquire);
    !base.is_null() && ptr.addr().wrapping_sub(base.addr()) < region_bytes()
}

/// Where slot `i`'s page starts.
fn slot_page(base: *mut u8, i: usize) -> *mut u8 {
    base.wrapping_add((2 * i + 1) * page())
}

/// A guarded block for a small allocation of `size` bytes in `class`, if
/// this one is sampled and a slot is free.
pub(super) fn sample(size: usize, class: usize) -> Option<NonNull<u8>> {
    let rate = rate();
    if rate == 0 || size > page() {
        return None;
    }
    // Gaps between samples: uniform in 1..2N-1, so one allocation in N on
    // average (every one for N = 1).
    let gap = || 1 + (crate::misuse::fresh_key(rate as u64) as u64 % (2 * rate as u64 - 1)) as u32;
    let due = COUNTDOWN.with(|c| {
        let left = if c.get() == 0 { gap() } else { c.get() };
        if left > 1 {
            c.set(left - 1);
            return false;
        }
        c.set(gap());
        true
    });
    if !due {
        return None;
    }
    let base = region()?;
    // The stack is walked before the lock is taken: the unwinder takes the
    // dynamic loader's lock, which a thread in `dlopen` holds while it
    // allocates (and might wait for ours).
    let trace = Trace::here();
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if pool.len == 0 {
        return None;
    }
    let i = pool.free[pool.head] as usize;
    pool.head = (pool.head + 1) % SLOTS;
    pool.len -= 1;
    let page_start = slot_page(base, i);
    // SAFETY: slot `i`'s page is the pool's, free, and nothing reaches it.
    if !unsafe { os::protect(page_start, page(), true) } {
        pool.give_back(i);
        return None;
    }
    // The block ends at the guard page after it, at the alignment its class
    // guarantees (the largest power of two dividing the class size).
    let align = 1usize << class_size(class).trailing_zeros().min(page().trailing_zeros());
    let offset = (page() - size.max(1)) & !(align - 1);
    let block = page_start.wrapping_add(offset);
    // SAFETY: the records' mapping has `SLOTS` entries; written under the lock.
    unsafe {
        *RECORDS.load(Ordering::Relaxed).add(i) = Slot {
            state: LIVE,
            addr: block.addr(),
            size,
            alloc_thread: thread_id(),
            free_thread: 0,
            alloc: trace,
            free: Trace::EMPTY,
        };
    }
    NonNull::new(block)
}

/// Frees a block of the pool: its slot becomes inaccessible. A pointer
/// that is not a live guarded block's start is reported (a double free if
/// it was one).
pub(super) fn free(ptr: *mut u8) {
    let base = REGION.load(Ordering::Acquire);
    let trace = Trace::here(); // before the lock, as in `sample`
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    let unit = (ptr.addr() - base.addr()) / page();
    let i = unit / 2;
    // SAFETY: the records' mapping has `SLOTS` entries (`i` is checked).
    let slot = (unit % 2 == 1 && i < SLOTS).then(|| unsafe { &mut *RECORDS.load(Ordering::Relaxed).add(i) });
    match slot {
        Some(slot) if slot.addr == ptr.addr() && slot.state == LIVE => {
            slot.state = FREED;
            slot.free_thread = thread_id();
            slot.free = trace;
            let page_start = slot_page(base, i);
            // SAFETY: the slot's page holds only this block, which is freed:
            // no one may touch it from here.
            unsafe {
                os::purge(page_start, page());
                os::protect(page_start, page(), false);
            }
            pool.give_back(i);
        }
        Some(slot) if slot.addr == ptr.addr() && slot.state == FREED => {
            drop(pool);
            guard::report(Misuse::DoubleFree, ptr.addr());
        }
        _ => {
            drop(pool);
            guard::report(Misuse::InvalidPointer, ptr.addr());
        }
    }
}

/// The bytes usable in a live guarded block: up to its page's end.
pub(super) fn usable(ptr: *const u8) -> usize {
    page() - (ptr.addr() & (page() - 1))
}

/// Whether `ptr` is a live guarded block's start.
pub(super) fn is_live(ptr: *const u8) -> bool {
    let base = REGION.load(Ordering::Acquire);
    let unit = (ptr.addr() - base.addr()) / page();
    let i = unit / 2;
    let _pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    // SAFETY: the records' mapping has `SLOTS` entries (`i` is checked).
    unit % 2 == 1
        && i < SLOTS
        && unsafe {
            let slot = &*RECORDS.load(Ordering::Relaxed).add(i);
            slot.state == LIVE && slot.addr == ptr.addr()
        }
}

fn thread_id() -> i64 {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions.
    return i64::from(unsafe { libc::gettid() });
    #[allow(unreachable_code)]
    0
}

/// The pool's mapping, made (with the fault handler) on first use.
fn region() -> Option<*mut u8> {
    let base = REGION.load(Ordering::Acquire);
    if !base.is_null() {
        return Some(base);
    }
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    let base = REGION.load(Ordering::Acquire);
    if !base.is_null() {
        return Some(base);
    }
    let records_bytes = (SLOTS * size_of::<Slot>()).next_multiple_of(page());
    let records = os::map(records_bytes, page())?.cast::<Slot>();
    let map = os::map(region_bytes(), page())?.as_ptr();
    // SAFETY: a fresh mapping of ours, nothing in it yet.
    if !unsafe { os::protect(map, region_bytes(), false) } {
        return None;
    }
    for i in 0..SLOTS {
        pool.free[i] = i as u16;
        // SAFETY: `SLOTS` records fit the records' mapping.
        unsafe {
            records.as_ptr().add(i).write(Slot {
                state: NEVER,
                addr: 0,
                size: 0,
                alloc_thread: 0,
                free_thread: 0,
                alloc: Trace::EMPTY,
                free: Trace::EMPTY,
            })
        };
    }
    pool.head = 0;
    pool.len = SLOTS;
    RECORDS.store(records.as_ptr(), Ordering::Relaxed);
    install_handler();
    REGION.store(map, Ordering::Release);
    Some(map)
}

/// Puts [`on_fault`] in place for `SIGSEGV` (and `SIGBUS`), keeping the
/// handler before it for faults elsewhere.
fn install_handler() {
    let previous = os::map(page(), page()).map(|p| p.cast::<libc::sigaction>().as_ptr());
    let Some(previous) = previous else { return };
    // SAFETY: plain `sigaction` calls with valid structures; the previous
    // action is kept in memory that is never freed.
    unsafe {
        let mut action: libc::sigaction = core::mem::zeroed();
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_fault;
        action.sa_sigaction = handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGSEGV, &action, previous) == 0 {
            PREVIOUS.store(previous, Ordering::Release);
        }
    }
}

/// The fault handler: a fault in the pool is reported, then the previous
/// handler is put back so that the fault, re-raised when this returns,
/// ends the process as it would have; any other fault goes to the previous
/// handler. Only async-signal-safe calls (`write`, `sigaction`, `dladdr`
/// reads the loader's tables).
extern "C" fn on_fault(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let previous = PREVIOUS.load(Ordering::Acquire);
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() }.addr();
    if holds(ptr::without_provenance(addr)) {
        report_fault(addr);
        // SAFETY: `previous` holds the action read when ours went in.
        unsafe { libc::sigaction(signal, previous, ptr::null_mut()) };
        return;
    }
    // SAFETY: as above; calling the previous handler as the kernel would.
    unsafe {
        let prev = &*previous;
        match prev.sa_sigaction {
            libc::SIG_DFL | libc::SIG_IGN => {
                libc::sigaction(signal, previous, ptr::null_mut());
            }
            handler if prev.sa_flags & libc::SA_SIGINFO != 0 => {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    core::mem::transmute(handler);
                f(signal, info, context);
            }
            handler => {
                let f: extern "C" fn(libc::c_int) = core::mem::transmute(handler);
                f(signal);
            }
        }
    }
}

/// Writes the report of a fault at `addr` in the pool.
fn report_fault(addr: usize) {
    let base = REGION.load(Ordering::Acquire).addr();
    let unit = (addr - base) / page();
    // SAFETY: the records' mapping is never unmapped; read without the lock
    // (see the module invariants).
    let record = |i: usize| unsafe { *RECORDS.load(Ordering::Relaxed).add(i) };
    let mut out = Writer;
    use core::fmt::Write;
    let (i, what) = if unit % 2 == 1 {
        if record(unit / 2).state != FREED {
            let _ = writeln!(out, "memres: fault at {addr:#x} in an unused slot of the guarded pool");
            return;
        }
        (unit / 2, "use after free")
    } else {
        // A guard page: the overflow of the live block before it, or the
        // underflow of the one after.
        let before = (unit / 2).checked_sub(1).filter(|&i| record(i).state == LIVE);
        let after = (unit / 2 < SLOTS && record(unit / 2).state == LIVE).then_some(unit / 2);
        match (before, after) {
            (Some(i), _) => (i, "buffer overflow"),
            (None, Some(i)) => (i, "buffer underflow"),
            (None, None) => {
                let _ = writeln!(
                    out,
                    "memres: fault at {addr:#x} in a guard page of the guarded pool (no live block beside it)"
                );
                return;
            }
        }
    };
    let slot = record(i);
    let (distance, relation) = if addr < slot.addr {
        (slot.addr - addr, "before")
    } else if addr >= slot.addr + slot.size {
        (addr - (slot.addr + slot.size), "after")
    } else {
        (addr - slot.addr, "into")
    };
    let _ = writeln!(
        out,
        "memres: {what} at {addr:#x}: {distance} bytes {relation} the {}-byte block at {:#x}",
        slot.size, slot.addr
    );
    let _ = writeln!(out, "  allocated by thread {} at:", slot.alloc_thread);
    write_trace(&mut out, &slot.alloc);
    if slot.state == FREED {
        let _ = writeln!(out, "  freed by thread {} at:", slot.free_thread);
        write_trace(&mut out, &slot.free);
    }
}

fn write_trace(out: &mut Writer, trace: &Trace) {
    use core::fmt::Write;
    for (n, &ip) in trace.frames[..trace.len].iter().take_while(|&&ip| ip != 0).enumerate() {
        // SAFETY: `Dl_info` is plain pointers, for which zero is valid.
        let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
        // SAFETY: `dladdr` only reads the loader's tables; `info` is ours.
        let found = unsafe { libc::dladdr(ptr::without_provenance(ip), &mut info) } != 0;
        if found && !info.dli_fname.is_null() {
            // SAFETY: `dladdr` gives a NUL-terminated path that lives as long
            // as the object is loaded.
            let name = unsafe { core::ffi::CStr::from_ptr(info.dli_fname) }.to_bytes();
            let offset = ip - info.dli_fbase.addr();
            let _ = write!(out, "    #{n} {ip:#x} (");
            out.bytes(name);
            let _ = writeln!(out, "+{offset:#x})");
        } else {
            let _ = writeln!(out, "    #{n} {ip:#x}");
        }
    }
}

/// Writes to standard error as it goes (no buffer to allocate).
struct Writer;

impl Writer {
    fn bytes(&mut self, bytes: &[u8]) {
        // SAFETY: `write` of a valid buffer; a short write loses text only.
        unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
    }
}

impl core::fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}
