//! The unwind-table walk ([`Walk::Tables`](super::Walk::Tables)): the same
//! `.eh_frame` tables the platform unwinder reads, read in process by
//! `framehop`, which keeps the rule it found for each address in a cache,
//! so a walk through code it has seen costs a cache look-up and two or
//! three loads a frame, where libgcc's unwinder parses each frame's
//! description anew (2 000-3 000 instructions a frame).
//!
//! The modules (the program, its shared libraries, the vDSO) come from
//! `dl_iterate_phdr`: each one's address range, and its `.eh_frame_hdr`
//! (the `PT_GNU_EH_FRAME` segment, a sorted index of its functions) and
//! `.eh_frame`, read where the loader mapped them. The list is made anew
//! when the loader's counts of loads and unloads change.
//!
//! # Invariants
//! - A [`Mapped`] names bytes of a loaded module, and is read only while
//!   the walk runs inside `dl_iterate_phdr`'s callback, which holds the
//!   loader's lock (no `dlclose` can unmap a module meanwhile), and after
//!   the list was checked against the loader's counts under that lock: the
//!   bytes it names are mapped then.
//! - A `Mapped` covers read-only bytes only: the `PT_GNU_EH_FRAME` segment
//!   and `.eh_frame` up to the end of the file-backed part of a `PT_LOAD`
//!   segment that is not writable (a module whose tables lie elsewhere is
//!   left out: its frames end the walk or take framehop's frame-pointer
//!   fallback). Header arithmetic is checked; a module whose numbers
//!   overflow is left out.
//! - The stack is read only between the stack pointer at the walk's start
//!   and the thread's stack top, 8-aligned, and only if that stack pointer
//!   lies in the thread's stack (not on a signal's or a coroutine's stack),
//!   as the frame-pointer walk reads it (see the parent module's
//!   invariants).
//! - `WALKERS` counts the threads between asking for the loader's lock
//!   (`dl_iterate_phdr`) and letting it go. A child of `fork()` does not
//!   get back a lock that a thread it does not have held: glibc does not
//!   reset this one. So a child forked while `WALKERS` was not zero never
//!   calls `dl_iterate_phdr` from a walk (`LOADER_LOST`): its samples walk
//!   by frame pointers (not the unwinder: an older libgcc finds its tables
//!   through the same lock). The handler that sets `LOADER_LOST` is
//!   registered as the program is loaded, before any thread can walk.
//! - Lock order: the loader's lock, then (tried) `TABLES`, then what the
//!   heap takes when the callback allocates (a rebuilt module list). So
//!   nothing that holds a heap lock or the profile's lock may call into the
//!   loader: `record` walks holding neither, and names are looked up (by
//!   `backtrace`, which calls `dl_iterate_phdr`) outside the profile's lock.
//!   glibc's lock is recursive, which the rebuild's nested
//!   `dl_iterate_phdr` needs: this walk is for glibc only.
//! - `TABLES` is only ever tried (`try_lock`), never waited for, and only
//!   inside the loader's lock, so no order of locks can deadlock (a sample
//!   that finds it taken walks with the unwinder), and a child forked while
//!   a thread held it has `LOADER_LOST` and never tries it.

use core::ffi::{c_int, c_void};
use core::ops::Deref;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, TryLockError};

#[cfg(target_arch = "aarch64")]
use framehop::aarch64::{CacheAarch64 as Cache, UnwindRegsAarch64 as Regs, UnwinderAarch64 as Unwinder};
#[cfg(target_arch = "x86_64")]
use framehop::x86_64::{CacheX86_64 as Cache, UnwindRegsX86_64 as Regs, UnwinderX86_64 as Unwinder};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder as _};

/// Bytes of a loaded module: `len` bytes from address `start` (none by
/// default).
#[derive(Clone, Copy, Default)]
struct Mapped {
    start: usize,
    len: usize,
}

impl Deref for Mapped {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        let start = core::ptr::with_exposed_provenance::<u8>(self.start);
        // SAFETY: `Mapped` is private to this module, and its values live
        // only in the modules given to framehop, which reads them in
        // `unwind_frame` alone (`add_module` does not): in `each_first`,
        // with the loader's lock held and the list checked current, so the
        // module is loaded and these bytes, read-only ones of it (see the
        // module's invariants), are mapped and never written. Their
        // addresses come from the loader as integers: exposed provenance.
        unsafe { core::slice::from_raw_parts(start, self.len) }
    }
}

/// How many rule caches a walk spreads its frames over, by depth.
/// framehop's cache is direct-mapped (509 slots, by address): two return
/// addresses of one stack in the same slot would evict each other at
/// every sample (seen: a pool benchmark's stack missed twice a sample, a
/// quarter of a sample's cost). With a cache per depth modulo `WAYS`, they
/// collide only if their depths agree too.
const WAYS: usize = 4;

/// The modules' unwind tables and the rules found so far.
struct Tables {
    unwinder: Unwinder<Mapped>,
    caches: [Cache; WAYS],
    /// The loader's counts of loads and unloads when the list was made.
    loads: (u64, u64),
}

/// The tables, made at the first walk.
static TABLES: Mutex<Option<Tables>> = Mutex::new(None);

/// The threads that may hold the loader's lock for a walk.
static WALKERS: AtomicUsize = AtomicUsize::new(0);
/// Set in a child forked while a walk may have held the loader's lock.
static LOADER_LOST: AtomicBool = AtomicBool::new(false);
/// Whether `in_child` is registered (or being registered) to run after
/// `fork()`.
static AT_FORK: AtomicBool = AtomicBool::new(false);

/// Registers `in_child`, once: as the program is loaded (the heap's
/// constructor calls this), and at the first walk should that not have run.
pub(crate) fn install_fork_handler() {
    if !AT_FORK.load(Ordering::Acquire) && !AT_FORK.swap(true, Ordering::AcqRel) {
        crate::os::at_fork(nothing, nothing, in_child);
    }
}

/// Whether a child of `fork()` lost the loader's lock (see the module's
/// invariants): then walks go by frame pointers.
pub(super) fn loader_lost() -> bool {
    LOADER_LOST.load(Ordering::Relaxed)
}

/// After `fork()`, in the child: a walk that was under way in the parent
/// may have left the loader's lock held for good.
extern "C" fn in_child() {
    if WALKERS.load(Ordering::SeqCst) != 0 {
        LOADER_LOST.store(true, Ordering::Relaxed);
    }
}

extern "C" fn nothing() {}

/// What the walk's callback needs, and what it found.
struct Walking<'a> {
    registers: Registers,
    low: usize,
    high: usize,
    stack: &'a mut super::Frames,
    walked: bool,
}

/// Pushes the calling thread's return addresses onto `stack` (innermost
/// first, this function's own address first) by the unwind tables; false
/// if it cannot (then the caller walks another way).
#[inline(never)]
pub(super) fn walk(stack: &mut super::Frames) -> bool {
    let Some((stack_low, high)) = super::stack_bounds() else { return false };
    let registers = registers();
    let low = registers.sp as usize;
    if !(stack_low..high).contains(&low) || loader_lost() {
        return false;
    }
    install_fork_handler();
    let mut walking = Walking { registers, low, high, stack, walked: false };
    // Counted before the lock is asked for: a fork from now on may find it
    // held (see the module's invariants).
    WALKERS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: `each_first` is the callback `dl_iterate_phdr` expects, and
    // `walking` outlives the call. The walk starts from this function's
    // registers, in a frame that stays put until the call returns.
    unsafe { libc::dl_iterate_phdr(Some(each_first), (&raw mut walking).cast()) };
    WALKERS.fetch_sub(1, Ordering::SeqCst);
    let walked = walking.walked;
    if !walked || stack.as_slice().len() < 3 {
        // Fewer frames than the walker's and the profiler's own: no use.
        stack.clear();
        return false;
    }
    true
}

/// `dl_iterate_phdr`'s callback for the walk: called first for the
/// program, with the loader's lock held; walks and stops the iteration.
///
/// # Safety
/// `info` is the loader's and `data` a `Walking`.
unsafe extern "C" fn each_first(info: *mut libc::dl_phdr_info, size: usize, data: *mut c_void) -> c_int {
    // SAFETY: `walk` passed a `Walking` it holds no other reference to.
    let walking = unsafe { &mut *data.cast::<Walking>() };
    // The counts are there since glibc 2.4; without them the list could not
    // be known to be current.
    if size < core::mem::offset_of!(libc::dl_phdr_info, dlpi_subs) + size_of::<u64>() {
        return 1;
    }
    // SAFETY: the loader's record, whose size was checked to hold the counts.
    let loads = unsafe { ((*info).dlpi_adds, (*info).dlpi_subs) };
    // Lock order: see the module's invariants.
    let mut tables = match TABLES.try_lock() {
        Ok(tables) => tables,
        Err(TryLockError::Poisoned(tables)) => tables.into_inner(),
        Err(TryLockError::WouldBlock) => return 1,
    };
    if tables.as_ref().is_none_or(|t| t.loads != loads) {
        let mut unwinder = Unwinder::new();
        // SAFETY: `each_module` is a callback `dl_iterate_phdr` expects, fed
        // an `Unwinder`; glibc's loader lock is recursive (held here).
        unsafe { libc::dl_iterate_phdr(Some(each_module), (&raw mut unwinder).cast()) };
        // A new cache: rules cached for the old list must not be used.
        *tables = Some(Tables { unwinder, caches: core::array::from_fn(|_| Cache::new()), loads });
    }
    let Some(Tables { unwinder, caches, .. }) = tables.as_mut() else { return 1 };
    let (low, high) = (walking.low, walking.high);
    let mut read_stack = |addr: u64| {
        let addr = usize::try_from(addr).map_err(|_| ())?;
        if addr < low || addr % 8 != 0 || addr >= high - 8 {
            return Err(());
        }
        // SAFETY: `addr` lies in the part of this thread's stack in use,
        // which is mapped (checked above); a machine load.
        Ok(unsafe { super::load(addr) } as u64)
    };
    let mut regs = walking.registers.for_unwinder(unwinder);
    // Frame by frame (as framehop's `iter_frames`), each depth with its
    // cache: this function's own address first, then return addresses
    // until the stack's end, an unreadable frame or a full stack.
    let mut frame = FrameAddress::from_instruction_pointer(walking.registers.pc);
    for depth in 0.. {
        let Ok(address) = usize::try_from(frame.address()) else { break };
        walking.stack.push(address);
        if walking.stack.is_full() {
            break;
        }
        let cache = &mut caches[depth % WAYS];
        let Ok(Some(next)) = unwinder.unwind_frame(frame, &mut regs, cache, &mut read_stack) else { break };
        let Some(next) = FrameAddress::from_return_address(next) else { break };
        frame = next;
    }
    walking.walked = true;
    1
}

/// `dl_iterate_phdr`'s callback that adds each module with unwind tables.
///
/// # Safety
/// `info` is the loader's and `data` an `Unwinder<Mapped>`.
unsafe extern "C" fn each_module(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
    // SAFETY: `each_first` passed the unwinder it is building.
    let unwinder = unsafe { &mut *data.cast::<Unwinder<Mapped>>() };
    // SAFETY: the loader's record of a loaded module, and its program
    // headers (`dlpi_phnum` of them), mapped while it is loaded.
    let (bias, headers) = unsafe {
        let info = &*info;
        let headers = if info.dlpi_phdr.is_null() {
            &[][..]
        } else {
            core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum))
        };
        (info.dlpi_addr as usize, headers)
    };
    if let Some(module) = module(bias, headers) {
        unwinder.add_module(module);
    }
    0
}

/// A module's unwind tables, from its program headers: `None` if it has
/// no `.eh_frame_hdr` the walk can read (see the module's invariants).
fn module(bias: usize, headers: &[libc::Elf64_Phdr]) -> Option<Module<Mapped>> {
    let segments = || headers.iter().filter(|h| h.p_type == libc::PT_LOAD);
    // A segment's bytes in memory, and the part the file backs.
    let span = |h: &libc::Elf64_Phdr, size: u64| {
        let start = usize::try_from(h.p_vaddr).ok()?;
        Some((start, start.checked_add(usize::try_from(size).ok()?)?))
    };
    let read_only = |start: usize, end: usize| {
        segments()
            .filter(|h| h.p_flags & libc::PF_W == 0)
            .filter_map(|h| span(h, h.p_filesz))
            .find(|&(s, e)| s <= start && start < e && end <= e)
    };
    let mut low = usize::MAX;
    let mut high = 0;
    for h in segments() {
        let (start, end) = span(h, h.p_memsz)?;
        (low, high) = (low.min(start), high.max(end));
    }
    let hdr = headers.iter().find(|h| h.p_type == libc::PT_GNU_EH_FRAME).and_then(|h| span(h, h.p_memsz))?;
    if hdr.1 - hdr.0 < 8 || read_only(hdr.0, hdr.1).is_none() {
        return None;
    }
    // SAFETY: the PT_GNU_EH_FRAME segment lies in a loaded read-only
    // segment's file-backed bytes (checked above), mapped while the module
    // is loaded (the loader's lock is held), 8 bytes or more.
    let (version, encoding, pointer) = unsafe {
        let at = core::ptr::with_exposed_provenance::<u8>(bias.wrapping_add(hdr.0));
        (at.read(), at.add(1).read(), at.add(4).cast::<i32>().read_unaligned())
    };
    // `.eh_frame`'s address: linkers write it 4-byte, relative to where it
    // is stored (DW_EH_PE_pcrel | DW_EH_PE_sdata4), or absolute (udata4).
    let eh_frame = match encoding {
        0x1b => (hdr.0 + 4).checked_add_signed(pointer as isize)?,
        0x03 => pointer as u32 as usize,
        _ => return None,
    };
    if version != 1 {
        return None;
    }
    // It runs to the end of the read-only bytes holding it at most.
    let (_, end) = read_only(eh_frame, eh_frame.checked_add(1)?)?;
    let mapped = |(start, end): (usize, usize)| Mapped { start: bias.wrapping_add(start), len: end - start };
    let info = ExplicitModuleSectionInfo {
        base_svma: 0,
        eh_frame_svma: Some(eh_frame as u64..end as u64),
        eh_frame: Some(mapped((eh_frame, end))),
        eh_frame_hdr_svma: Some(hdr.0 as u64..hdr.1 as u64),
        eh_frame_hdr: Some(mapped(hdr)),
        ..Default::default()
    };
    let avma = bias.wrapping_add(low) as u64..bias.wrapping_add(high) as u64;
    Some(Module::new(String::new(), avma, bias as u64, info))
}

/// The registers a walk starts from: the program counter, the stack
/// pointer, the frame pointer and (AArch64) the link register.
#[derive(Clone, Copy)]
struct Registers {
    pc: u64,
    sp: u64,
    fp: u64,
    #[cfg(target_arch = "aarch64")]
    lr: u64,
}

impl Registers {
    #[cfg(target_arch = "x86_64")]
    fn for_unwinder(self, _unwinder: &Unwinder<Mapped>) -> Regs {
        Regs::new(self.pc, self.sp, self.fp)
    }

    /// With the mask that strips pointer authentication from return
    /// addresses (signed by code built with `-mbranch-protection`).
    #[cfg(target_arch = "aarch64")]
    fn for_unwinder(self, unwinder: &Unwinder<Mapped>) -> Regs {
        let mask = framehop::aarch64::PtrAuthMask::from_max_known_address(unwinder.max_known_code_address());
        Regs::new_with_ptr_auth_mask(mask, self.lr, self.sp, self.fp)
    }
}

/// The program counter and registers where this is inlined (`walk`: its
/// `inline(always)` makes them `walk`'s).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn registers() -> Registers {
    let (pc, sp, fp): (u64, u64, u64);
    // SAFETY: reads the address of the next instruction and two registers;
    // touches no memory, no flags, no other register.
    unsafe {
        core::arch::asm!(
            "lea {}, [rip]", "mov {}, rsp", "mov {}, rbp",
            out(reg) pc, out(reg) sp, out(reg) fp,
            options(nomem, nostack, preserves_flags)
        )
    };
    Registers { pc, sp, fp }
}

/// As on x86-64. The link register read here may be stale by the time of
/// the walk's first step, which does not use it: past `walk`'s prologue
/// its tables restore the return address from the stack.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn registers() -> Registers {
    let (pc, sp, fp, lr): (u64, u64, u64, u64);
    // SAFETY: reads this instruction's address and three registers;
    // touches no memory, no flags, no other register.
    unsafe {
        core::arch::asm!(
            "adr {}, .", "mov {}, sp", "mov {}, x29", "mov {}, x30",
            out(reg) pc, out(reg) sp, out(reg) fp, out(reg) lr,
            options(nomem, nostack, preserves_flags)
        )
    };
    Registers { pc, sp, fp, lr }
}
