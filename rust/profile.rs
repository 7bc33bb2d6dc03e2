//! Sampling allocation profiler: who allocated what, from Rust and C++.
//!
//! [`start`] sets a mean sampling interval in bytes; from then on the
//! resources that sample pick allocations as a Poisson process over the
//! bytes they hand out (an allocation of `size` bytes is picked with
//! probability `1 - exp(-size / interval)`), record the call stack of each
//! pick, and weigh it by the bytes it stands for (`size` divided by that
//! probability), so that the weights add up to an unbiased estimate of the
//! bytes each stack allocated. [`folded`] gives the estimate per stack in
//! the folded format flame-graph tools read.
//!
//! Which resources sample: the monotonic arena ([`Monotonic`](crate::Monotonic)),
//! from Rust and from C++ (`memres::monotonic_buffer_resource`), which share
//! its state. The arena decides on its slow path only: while sampling, the
//! end its fast paths bump against is the next sample point when that comes
//! before the region's end, so the allocation that crosses it leaves the
//! fast path, and with sampling off the fast paths are the same
//! instructions as without a profiler. An arena notices [`start`] and
//! [`stop`] when it next enters a region (a new chunk, a reset, a rewind).
//! [`SyncMonotonic`](crate::SyncMonotonic) carves its threads' regions from
//! a `Monotonic`, so there a region is sampled as one block, charged to the
//! allocation that made its thread take it. The heap and the pools do not
//! sample yet (see ARCHITECTURE.md, "The profiler's sample points").
//!
//! # Invariants
//! - `INTERVAL` is the mean interval in bytes, 0 when off.
//! - A sample's stack holds the return addresses `backtrace` walks, the
//!   innermost first (the walker's, the profiler's and the resource's own
//!   frames included); they are resolved to names, and those frames
//!   dropped, only when the profile is written ([`folded`]).
//! - Samples are kept, under `SAMPLES`' lock, until [`clear`] (not at
//!   [`stop`]: a stopped profile can still be written).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// The mean sampling interval, in bytes (0: off).
static INTERVAL: AtomicUsize = AtomicUsize::new(0);

/// The samples taken since the last [`clear`].
static SAMPLES: Mutex<Vec<Sample>> = Mutex::new(Vec::new());

/// The deepest stack a sample keeps (inner frames first).
const MAX_FRAMES: usize = 64;

/// The default mean interval, as jemalloc's `lg_prof_sample` default.
pub const DEFAULT_INTERVAL: usize = 512 << 10;

/// One sampled allocation.
#[derive(Debug, Clone)]
struct Sample {
    /// Return addresses, innermost first, the profiler's frames left out.
    stack: Vec<usize>,
    /// The bytes this sample stands for (see the module doc).
    weight: f64,
    /// The resource that served it: its name and kind, or its kind.
    resource: String,
}

/// Starts sampling with a mean interval of `interval` bytes (0 stops it);
/// [`DEFAULT_INTERVAL`] is 512 KiB. Samples taken before are kept.
///
/// ```standalone_crate
/// use core::alloc::Layout;
/// memres::profile::start(4096);
/// let arena = memres::Monotonic::new();
/// for _ in 0..1000 {
///     let _ = arena.allocate(Layout::new::<[u8; 256]>()).unwrap();
/// }
/// memres::profile::stop();
/// assert!(memres::profile::folded().lines().count() > 0);
/// ```
pub fn start(interval: usize) {
    INTERVAL.store(interval, Ordering::Relaxed);
}

/// Profiles until the returned guard is dropped: samples at `interval`
/// bytes from now, then goes back to the interval in force before (off,
/// usually). Guards nest.
///
/// ```standalone_crate
/// let arena = memres::Monotonic::new();
/// {
///     let _profiling = memres::profile::scope(1024);
///     assert_eq!(memres::profile::interval(), 1024);
///     let _ = arena.allocate(core::alloc::Layout::new::<[u8; 64]>());
/// }
/// assert_eq!(memres::profile::interval(), 0);
/// ```
pub fn scope(interval: usize) -> Scope {
    Scope { previous: INTERVAL.swap(interval, Ordering::Relaxed) }
}

/// The guard of [`scope`]: restores the sampling interval in force before
/// it when dropped.
#[must_use = "profiling stops when the guard is dropped"]
#[derive(Debug)]
pub struct Scope {
    previous: usize,
}

impl Drop for Scope {
    fn drop(&mut self) {
        INTERVAL.store(self.previous, Ordering::Relaxed);
    }
}

/// Stops sampling (the samples are kept for [`folded`]).
pub fn stop() {
    INTERVAL.store(0, Ordering::Relaxed);
}

/// The mean sampling interval in bytes, 0 when off.
pub fn interval() -> usize {
    INTERVAL.load(Ordering::Relaxed)
}

/// Drops every sample taken so far.
pub fn clear() {
    SAMPLES.lock().unwrap_or_else(PoisonError::into_inner).clear();
}

/// The profile so far in folded form: one line per distinct stack,
/// `resource;outermost;...;innermost bytes` (the resource is the arena's
/// name and kind, `request-arena (Monotonic)`, or its kind, `Monotonic`,
/// when it has no name), the bytes being the estimate
/// of what that stack allocated, rounded; frames are function names
/// (Rust's and C++'s demangled), or addresses where no name is known.
/// Heaviest stacks first.
pub fn folded() -> String {
    let samples = SAMPLES.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut names: HashMap<usize, String> = HashMap::new();
    let mut stacks: HashMap<String, f64> = HashMap::new();
    for sample in &samples {
        for &ip in &sample.stack {
            names.entry(ip).or_insert_with(|| frame_name(ip));
        }
        let frames: Vec<&str> = sample.stack.iter().map(|ip| names[ip].as_str()).collect();
        // The innermost frames are the stack walk's, the profiler's and the
        // sampling resource's own: the stack starts at its caller.
        let outer = frames.iter().position(|name| !is_internal(name)).unwrap_or(frames.len());
        let mut line = sample.resource.clone();
        for name in frames[outer..].iter().rev() {
            line.push(';');
            line.push_str(name);
        }
        *stacks.entry(line).or_insert(0.0) += sample.weight;
    }
    let mut stacks: Vec<(String, f64)> = stacks.into_iter().collect();
    stacks.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = String::new();
    for (stack, bytes) in stacks {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{stack} {}", bytes.round() as u64);
    }
    out
}

/// The samples taken since the last [`clear`].
pub fn samples() -> usize {
    SAMPLES.lock().unwrap_or_else(PoisonError::into_inner).len()
}

/// Writes [`folded`] to `path`.
///
/// # Errors
/// What writing the file returns.
pub fn dump_folded(path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
    std::fs::write(path, folded())
}

/// The name of the function holding return address `ip` (the innermost of
/// its inlined frames), without the hash rustc appends.
fn frame_name(ip: usize) -> String {
    let mut name = None;
    // A return address points after the call: look up the call itself.
    backtrace::resolve(ip.saturating_sub(1) as *mut core::ffi::c_void, |symbol| {
        if name.is_none() {
            name = symbol.name().map(|n| format!("{n:#}"));
        }
    });
    // `;` separates frames in the folded format (the count follows the
    // last space, so spaces may stay).
    name.map_or_else(|| format!("{ip:#x}"), |n| n.replace(';', ":"))
}

/// Draws the bytes until the next sample: exponential with mean
/// `interval` (at least 1).
pub(crate) fn next_interval(interval: usize) -> usize {
    // A per-thread xorshift generator, seeded from the address of the
    // thread's state and the clock; a uniform draw in (0, 1].
    std::thread_local! {
        static STATE: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
    }
    let bits = STATE.with(|state| {
        let mut x = state.get();
        if x == 0 {
            let clock =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
            x = (state as *const _ as u64) ^ clock.rotate_left(17) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    });
    let uniform = ((bits >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    ((-uniform.ln() * interval as f64) as usize).max(1)
}

/// Records a sampled allocation of `size` bytes served by a `resource`
/// sampling at `interval` bytes, with the caller's stack.
#[cold]
#[inline(never)]
pub(crate) fn record(size: usize, interval: usize, resource: String) {
    let mut stack = Vec::with_capacity(MAX_FRAMES);
    // Addresses only: names are looked up when the profile is written (the
    // profiler's own frames are dropped then).
    backtrace::trace(|frame| {
        let ip = frame.ip() as usize;
        // A zero return address ends the stack (the thread's first frame).
        if ip == 0 {
            return false;
        }
        stack.push(ip);
        stack.len() < MAX_FRAMES
    });
    let sample = Sample { stack, weight: weight(size, interval), resource };
    SAMPLES.lock().unwrap_or_else(PoisonError::into_inner).push(sample);
}

/// The bytes a sampled allocation of `size` stands for, at a mean interval
/// of `interval`: its size over its chance of being picked.
fn weight(size: usize, interval: usize) -> f64 {
    let size = size.max(1) as f64;
    size / (1.0 - (-size / interval.max(1) as f64).exp())
}

/// Whether a frame named `name` is the profiler's or the sampling path's
/// (or the stack walker's), to be left out of a sample.
fn is_internal(name: &str) -> bool {
    const OURS: [&str; 10] = [
        "backtrace::",
        "memres::profile::",
        // Rust's arena and its `Allocator` impls.
        "memres::monotonic::",
        "<memres::monotonic::",
        "<&memres::monotonic::",
        // The C++ classes' slow paths into the core, and the bridge.
        "memres::monotonic_buffer_resource::",
        "memres::synchronized_monotonic_buffer_resource::",
        "memres::detail::",
        "memres$",
        "memres_cxx::",
    ];
    OURS.iter().any(|prefix| name.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_exponential_with_the_mean_asked() {
        let n = 20_000;
        let draws: Vec<usize> = (0..n).map(|_| next_interval(1000)).collect();
        let mean = draws.iter().sum::<usize>() as f64 / n as f64;
        // The mean of 20 000 exponential draws: within 5% (about 7 standard
        // errors) of 1000.
        assert!((950.0..1050.0).contains(&mean), "mean {mean}");
        // An exponential's median is ln 2 times its mean.
        let mut sorted = draws.clone();
        sorted.sort_unstable();
        let median = sorted[n / 2] as f64;
        assert!((640.0..750.0).contains(&median), "median {median}");
        assert!(draws.iter().all(|&d| d >= 1));
    }

    #[test]
    fn weights_undo_the_chance_of_being_picked() {
        // A block as large as the interval is picked with chance 1 - 1/e; a
        // tiny one with chance size / interval; a huge one always.
        let e = 1.0 - (-1.0f64).exp();
        assert!((weight(1000, 1000) - 1000.0 / e).abs() < 1e-6);
        assert!((weight(8, 1 << 20) - (1 << 20) as f64).abs() < 8.0);
        assert!((weight(64 << 20, 1024) - (64 << 20) as f64).abs() < 1e-6);
    }
}
