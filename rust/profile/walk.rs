//! The three stack walks a sample may take ([`Walk`]).
//!
//! - **The unwind tables** (the default, on glibc Linux, x86-64 and
//!   AArch64): the `.eh_frame` tables every module carries, read in
//!   process with each address's rule cached (`tables`): right for any
//!   code, whether or not it keeps frame pointers, and after the first
//!   walks through some code a few dozen instructions a frame.
//! - **The unwinder**: `backtrace`'s walk over the platform unwinder
//!   (libgcc's on Linux), which reads the same tables but parses each
//!   frame's anew, about 2 000-3 000 instructions a frame. The default
//!   where the tables walk cannot run, and the fallback of any walk that
//!   cannot.
//! - **Frame pointers**: follows the chain of saved frame pointers, two
//!   loads a frame. Right only where the code keeps them
//!   (`-C force-frame-pointers=yes`, `-fno-omit-frame-pointer`, as Fedora
//!   and Ubuntu now build their packages); a frame without one ends the
//!   walk early, or (if it used the register for something else) adds one
//!   stray address before the checks below stop it. x86-64 and AArch64
//!   only.
//!
//! # Invariants (the frame-pointer and tables walks)
//! - Every address they read on the stack lies between the stack pointer
//!   at the walk's start and the top of the calling thread's stack (from
//!   `pthread_getattr_np`, kept per thread), 8-aligned, with room for the
//!   word read: the part of the stack in use, which is mapped. A walk
//!   whose stack pointer is not in that stack (on a signal's alternate
//!   stack, a coroutine's) reads nothing. A wrong
//!   frame pointer or table can end the walk or give a wrong return
//!   address, never read outside that.
//! - Frame pointers strictly increase along the walk (stacks grow down), so
//!   it ends; the tables walk ends as `framehop` finds the stack's end (a
//!   frame that does not move up the stack ends it too) or when `Frames`
//!   is full.
//! - The loads are inline assembly: they read the stack as the machine
//!   sees it, outside the Rust abstract machine's view of other frames'
//!   locals (which no Rust pointer may read).

#[cfg(all(target_os = "linux", target_env = "gnu", any(target_arch = "x86_64", target_arch = "aarch64"), not(miri)))]
mod tables;

/// Where the tables walk cannot run (other than glibc Linux on x86-64 or
/// AArch64, or under Miri): it never walks, and needs no fork handler.
#[cfg(not(all(
    target_os = "linux",
    target_env = "gnu",
    any(target_arch = "x86_64", target_arch = "aarch64"),
    not(miri)
)))]
mod tables {
    pub(super) fn walk(_stack: &mut super::Frames) -> bool {
        false
    }

    pub(super) fn loader_lost() -> bool {
        false
    }

    #[allow(dead_code)] // Called by the heap's load-time constructor (Linux).
    pub(crate) fn install_fork_handler() {}
}

/// Installs the tables walk's `fork()` handler (see `tables`).
pub(crate) use tables::install_fork_handler as install_fork_handlers;

use core::cell::Cell;
use core::sync::atomic::{AtomicU8, Ordering};

/// How samples walk the stack (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The modules' unwind tables, each address's rule cached: right for
    /// any code. The default; where it cannot run (other than glibc Linux
    /// on x86-64 or AArch64), the unwinder walks instead, and in a child of
    /// `fork()` forked while a walk held the loader's lock, frame pointers.
    Tables,
    /// The platform unwinder: right for any code, slower.
    Unwinder,
    /// The chain of frame pointers: far cheaper, right only for code built
    /// to keep them.
    FramePointers,
}

/// The walk in force: 0 the tables, 1 frame pointers, 2 the unwinder.
static WALK: AtomicU8 = AtomicU8::new(0);

/// Sets how samples walk the stack from now on.
pub fn set_walk(walk: Walk) {
    let code = match walk {
        Walk::Tables => 0,
        Walk::FramePointers => 1,
        Walk::Unwinder => 2,
    };
    WALK.store(code, Ordering::Relaxed);
}

impl Walk {
    /// The walk a name gives, as `MEMRES_PROFILE_WALK` takes it: `tables`,
    /// `unwinder` or `fp` (frame pointers); `None` for any other.
    ///
    /// ```
    /// use memres::profile::Walk;
    /// assert_eq!(Walk::parse(b"fp"), Some(Walk::FramePointers));
    /// assert_eq!(Walk::parse(b"unwinder"), Some(Walk::Unwinder));
    /// assert_eq!(Walk::parse(b"tables"), Some(Walk::Tables));
    /// assert_eq!(Walk::parse(b"fast"), None);
    /// ```
    pub fn parse(name: &[u8]) -> Option<Walk> {
        match name {
            b"tables" => Some(Walk::Tables),
            b"unwinder" => Some(Walk::Unwinder),
            b"fp" => Some(Walk::FramePointers),
            _ => None,
        }
    }
}

/// How samples walk the stack.
pub fn walk() -> Walk {
    match WALK.load(Ordering::Relaxed) {
        0 => Walk::Tables,
        1 => Walk::FramePointers,
        _ => Walk::Unwinder,
    }
}

/// The return addresses a walk finds, innermost first: up to
/// [`Frames::MAX`], in place (a sample copies them out, sized to fit).
pub(super) struct Frames {
    addresses: [usize; Frames::MAX],
    len: usize,
}

impl Frames {
    /// The deepest stack a sample keeps (inner frames first).
    pub(super) const MAX: usize = 64;

    pub(super) fn new() -> Self {
        Frames { addresses: [0; Frames::MAX], len: 0 }
    }

    /// Adds `address` if there is room.
    fn push(&mut self, address: usize) {
        if let Some(slot) = self.addresses.get_mut(self.len) {
            *slot = address;
            self.len += 1;
        }
    }

    fn is_full(&self) -> bool {
        self.len == Frames::MAX
    }

    #[cfg_attr(
        not(all(
            target_os = "linux",
            target_env = "gnu",
            any(target_arch = "x86_64", target_arch = "aarch64"),
            not(miri)
        )),
        allow(dead_code)
    )]
    fn clear(&mut self) {
        self.len = 0;
    }

    pub(super) fn as_slice(&self) -> &[usize] {
        &self.addresses[..self.len]
    }
}

/// Pushes the return addresses of the calling thread's stack onto `stack`,
/// innermost first, as many as fit, by the walk in force, or by the
/// unwinder where that one cannot run; returns the walk that ran.
#[inline(never)]
pub(super) fn trace(stack: &mut Frames) -> Walk {
    let walk = walk();
    let walked = match walk {
        Walk::Tables if tables::loader_lost() => {
            // A child of `fork()` that may have lost the loader's lock: the
            // unwinder may need that lock too (see `tables`).
            frame_pointers(stack);
            return Walk::FramePointers;
        }
        Walk::Tables => tables::walk(stack),
        Walk::FramePointers => frame_pointers(stack),
        Walk::Unwinder => false,
    };
    if walked {
        return walk;
    }
    // Addresses only: names are looked up when the profile is written.
    backtrace::trace(|frame| {
        let ip = frame.ip().addr();
        // A zero return address ends the stack (the thread's first frame).
        if ip == 0 {
            return false;
        }
        stack.push(ip);
        !stack.is_full()
    });
    Walk::Unwinder
}

std::thread_local! {
    /// The calling thread's stack: `[low, high)`, (0, 0) until looked up,
    /// (1, 1) if it cannot be.
    static BOUNDS: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// The calling thread's stack bounds, looked up once per thread.
#[cfg_attr(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri))), allow(dead_code))]
fn stack_bounds() -> Option<(usize, usize)> {
    let bounds = BOUNDS.try_with(Cell::get).ok()?;
    let bounds = if bounds == (0, 0) {
        let found = look_up_stack().unwrap_or((1, 1));
        let _ = BOUNDS.try_with(|b| b.set(found));
        found
    } else {
        bounds
    };
    (bounds != (1, 1)).then_some(bounds)
}

#[cfg(target_os = "linux")]
fn look_up_stack() -> Option<(usize, usize)> {
    // SAFETY: a zeroed pthread_attr_t is what pthread_getattr_np fills in;
    // it is destroyed once read.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut base: *mut libc::c_void = core::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut base, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        ok.then(|| (base.addr(), base.addr() + size))
    }
}

#[cfg(not(target_os = "linux"))]
fn look_up_stack() -> Option<(usize, usize)> {
    None
}

/// The frame-pointer walk; false if it cannot run here (then the caller
/// takes the unwinder's).
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri)))]
fn frame_pointers(stack: &mut Frames) -> bool {
    let Some((stack_low, high)) = stack_bounds() else { return false };
    let (mut fp, low) = registers();
    if !(stack_low..high).contains(&low) {
        // On another stack (a signal's, a coroutine's): the unwinder's.
        return false;
    }
    // The first frame is this function's own (kept by `inline(never)` on
    // `trace` and here): its caller's return address is the first pushed.
    while !stack.is_full() && fp >= low && fp % 8 == 0 && fp < high - 16 {
        // SAFETY: `fp` and `fp + 8` lie inside this thread's stack (checked
        // above), which is mapped and readable for as long as the thread
        // runs; the loads are machine loads (see the module's invariants).
        let (next, ret) = unsafe { (load(fp), load(fp + 8)) };
        if ret == 0 {
            break;
        }
        stack.push(ret);
        if next <= fp {
            break;
        }
        fp = next;
    }
    true
}

#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri))))]
fn frame_pointers(_stack: &mut Frames) -> bool {
    false
}

/// The frame pointer and stack pointer registers of `frame_pointers` (into
/// which this is inlined). In a build that keeps frame pointers (memres's
/// too: `RUSTFLAGS=-C force-frame-pointers=yes`) the first is its frame;
/// in one that does not, the walk ends at once or soon.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline(always)]
fn registers() -> (usize, usize) {
    let (fp, sp): (usize, usize);
    // SAFETY: reads two registers.
    unsafe {
        core::arch::asm!("mov {}, rbp", "mov {}, rsp", out(reg) fp, out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    (fp, sp)
}

#[cfg(all(target_arch = "aarch64", not(miri)))]
#[inline(always)]
fn registers() -> (usize, usize) {
    let (fp, sp): (usize, usize);
    // SAFETY: reads two registers.
    unsafe {
        core::arch::asm!("mov {}, x29", "mov {}, sp", out(reg) fp, out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    (fp, sp)
}

/// One machine word at `addr`.
///
/// # Safety
/// `addr` is mapped, readable and 8-aligned.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline(always)]
unsafe fn load(addr: usize) -> usize {
    let value: usize;
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!("mov {}, [{}]", out(reg) value, in(reg) addr, options(readonly, nostack, preserves_flags))
    };
    value
}

#[cfg(all(target_arch = "aarch64", not(miri)))]
#[inline(always)]
unsafe fn load(addr: usize) -> usize {
    let value: usize;
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!("ldr {}, [{}]", out(reg) value, in(reg) addr, options(readonly, nostack, preserves_flags))
    };
    value
}
