//! Sampling allocation profiler: who allocated what, from Rust and C++.
//!
//! [`start`] sets a mean sampling interval in bytes; from then on the
//! resources that sample pick allocations as a Poisson process over the
//! bytes they hand out (an allocation of `size` bytes is picked with
//! probability `1 - exp(-size / interval)`), record the call stack of each
//! pick, and weigh it by the bytes it stands for (`size` divided by that
//! probability), so that the weights add up to an unbiased estimate of the
//! bytes each stack allocated. [`folded`] gives the estimate per stack in
//! the folded format flame-graph tools read; [`folded_view`] gives the
//! bytes still live, or live at the peak, instead ([`View`]).
//!
//! Which resources sample: the heap ([`Heap`](crate::Heap), and through it
//! `malloc` in the shim and C++'s `heap_resource()`), and the monotonic
//! arena ([`Monotonic`](crate::Monotonic)),
//! from Rust and from C++ (`memres::monotonic_buffer_resource`), which share
//! its state. The arena decides on its slow path only: while sampling, the
//! end its fast paths bump against is the next sample point when that comes
//! before the region's end, so the allocation that crosses it leaves the
//! fast path, and with sampling off the fast paths are the same
//! instructions as without a profiler. An arena notices [`start`] and
//! [`stop`] when it next enters a region (a new chunk, a reset, a rewind).
//! [`SyncMonotonic`](crate::SyncMonotonic) carves its threads' regions from
//! a `Monotonic`, so there a region is sampled as one block, charged to the
//! allocation that made its thread take it. The heap counts a thread's
//! bytes down on its inline paths (one subtract and branch, in the thread's
//! record); the allocation that runs the count out takes the slow path,
//! which serves it as a block of its own mapping (a large block) so that
//! its free, which always looks such blocks up, tells the profiler: heap
//! samples are matched at free, and so make the live and peak views. An
//! arena's samples are freed when it takes their memory back (a reset, a
//! release, a rewind past them, its drop), not at `deallocate`, which
//! frees nothing but the newest block. The pools count down as the heap
//! does (in the unsynchronized pool's lists, in a thread's cache of a
//! synchronized pool), but serve a sampled block as any other: their frees
//! are not watched, so their samples are in the allocated view only. A
//! pool made, or a thread's cache of one, while the profiler is off
//! notices a start within 64 KiB of its allocations. See ARCHITECTURE.md,
//! "The profiler's sample points".
//!
//! The profile holds the samples that the live and peak views need one by
//! one (the tracked ones live now or at the peak), and folds the rest into
//! totals per resource and stack: its memory is bounded by the live
//! samples and the distinct stacks, not by how long a program runs.
//!
//! A sample costs about 5 000 instructions with the default stack walk
//! (the modules' unwind tables, each address's rule cached), about 40 000
//! with the platform unwinder and about 1 000 with frame pointers
//! ([`Walk`], [`set_walk`]); BENCHMARKS.md has what that is at the default
//! interval.
//!
//! Reentrancy: recording allocates (the stack, the list of samples), and
//! the global allocator may be the heap. While a thread holds the
//! profile's lock it is *in the profiler* (`may_record` is false): the
//! heap takes no sample then, and a sampled block freed then (the list's
//! old buffer, say) is noted in a small per-thread buffer and marked
//! freed once the lock is let go.
//!
//! # Invariants
//! - `INTERVAL` is the mean interval in bytes, 0 when off.
//! - A sample's stack holds the return addresses the walk in force finds
//!   ([`Walk`]: the unwind tables', the unwinder's or the frame
//!   pointers'), the innermost
//!   first (the walker's, the profiler's and the resource's own frames
//!   included); they are resolved to names, and those frames dropped, only
//!   when the profile is written ([`folded`]).
//! - Samples are kept, under `PROFILE`'s lock, until [`clear`] (not at
//!   [`stop`]: a stopped profile can still be written): one by one in
//!   `samples`, in the order of their ids, which increase, or as part of
//!   `totals`. A sample leaves `samples` for `totals` only when no view but
//!   the allocated one can count it: untracked at once; tracked once freed
//!   and not live at the peak (checked when freed samples are over half of
//!   `samples`, so each is looked at a bounded number of times). A freed id
//!   not in `samples` (folded, or taken before a [`clear`]) is ignored.
//! - `live` is the sum of the weights of the tracked samples not freed, and
//!   `peak` its largest value since the last [`clear`], reached at event
//!   `peak_event` (events number the profile's samples and frees).
//! - A thread's `IN_PROFILER` is set while it holds the lock (in
//!   `with_profile`) and while `record` walks its stack, and never while it
//!   asks for the lock (the lock is not reentrant).

mod walk;

pub use walk::{Walk, set_walk, walk};

use core::cell::Cell;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

/// The mean sampling interval, in bytes (0: off).
static INTERVAL: AtomicUsize = AtomicUsize::new(0);

/// The samples taken since the last [`clear`], and the live and peak sums.
static PROFILE: Mutex<Profile> = Mutex::new(Profile {
    samples: Vec::new(),
    totals: None,
    taken: 0,
    freed_kept: 0,
    foldable: 0,
    next_id: 1,
    events: 0,
    live: 0.0,
    peak: 0.0,
    peak_event: 0,
});

/// When the first sample was taken (samples' times count from here).
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The numbers samples give their threads (1 up).
static THREADS: AtomicU64 = AtomicU64::new(1);

/// Set by [`request_dump`] (a signal handler may): the next sample
/// writes the views to `DUMP_PREFIX`.
static DUMP_REQUESTED: AtomicBool = AtomicBool::new(false);
/// Where [`request_dump`]'s views go (see [`set_dump_prefix`]).
static DUMP_PREFIX: Mutex<Option<String>> = Mutex::new(None);

/// Frees of sampled blocks a thread may note while in the profiler.
const PENDING: usize = 16;

std::thread_local! {
    /// Set while this thread holds `PROFILE`'s lock, or walks its stack
    /// for a sample.
    static IN_PROFILER: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread writes a profile (`Paused`): what it
    /// allocates then (the symbolizer's tables) is not sampled.
    static PAUSED: Cell<bool> = const { Cell::new(false) };
    /// Sampled blocks freed while in the profiler: their ids, to be marked
    /// freed when the lock is let go (0: an empty entry).
    static FREED_INSIDE: [Cell<u64>; PENDING] = const { [const { Cell::new(0) }; PENDING] };
    /// This thread's number in samples (0: none given yet).
    static THREAD: Cell<u64> = const { Cell::new(0) };
}

/// A resource and a stack (return addresses, innermost first): what the
/// profile's totals are kept by.
type StackOf = (Cow<'static, str>, Box<[usize]>);

/// The samples and the sums over them (see the module's invariants).
struct Profile {
    /// The samples kept one by one: the tracked ones that are live, or
    /// were live at the peak, and freed ones not yet folded into `totals`.
    samples: Vec<Sample>,
    /// The allocated bytes of the samples no longer kept one by one, by
    /// resource and stack (`None` until the first).
    totals: Option<HashMap<StackOf, f64>>,
    /// Samples taken since the last [`clear`].
    taken: usize,
    /// Samples in `samples` that are freed.
    freed_kept: usize,
    /// Of those, the ones no view but the allocated one counts any longer
    /// (not live at the peak).
    foldable: usize,
    next_id: u64,
    events: u64,
    live: f64,
    peak: f64,
    peak_event: u64,
}

/// The default mean interval, as jemalloc's `lg_prof_sample` default.
pub const DEFAULT_INTERVAL: usize = 512 << 10;

/// One sampled allocation.
#[derive(Debug, Clone)]
struct Sample {
    /// Its number (see `Profile`); a sampled heap block's header holds it.
    id: u64,
    /// Return addresses, innermost first (see the module's invariants).
    stack: Vec<usize>,
    /// The bytes this sample stands for (see the module doc).
    weight: f64,
    /// The bytes asked for.
    size: usize,
    /// The resource that served it: its name and kind, or its kind.
    resource: Cow<'static, str>,
    /// The thread that allocated it (numbered by the profiler, from 1).
    thread: u64,
    /// When, in nanoseconds since the profile's first sample.
    at_ns: u64,
    /// The walk that found its stack.
    walk: Walk,
    /// The event that took it, and the one that freed it (`None`: live).
    /// Every sample kept one by one is tracked (its free is seen); the
    /// others go straight into the totals.
    taken: u64,
    freed: Option<u64>,
}

/// Which bytes a profile counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Every sampled allocation since the last [`clear`], freed or not.
    Allocated,
    /// The tracked samples (the heap's and the arenas') not freed yet.
    Live,
    /// The tracked samples that were live when the live bytes peaked.
    Peak,
}

/// One sample as [`samples_taken`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleInfo {
    /// The bytes asked for.
    pub size: usize,
    /// The bytes it stands for in the estimates.
    pub weight: f64,
    /// The resource that served it (`Heap`, `request-arena (Monotonic)`).
    pub resource: String,
    /// The profiler's number for the allocating thread (1 up; 0 for a
    /// thread past the end of its thread-locals).
    pub thread: u64,
    /// Nanoseconds from the profile's first sample to this one.
    pub at_ns: u64,
    /// The stack walk that found its stack: the one in force ([`walk`]),
    /// or a fallback where that one could not run (the unwinder; frame
    /// pointers in a child of `fork()` that may have lost the loader's
    /// lock, see [`Walk`]).
    pub walk: Walk,
    /// Whether it was freed.
    pub freed: bool,
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
    crate::Heap::profiler_changed();
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
    let previous = INTERVAL.swap(interval, Ordering::Relaxed);
    crate::Heap::profiler_changed();
    Scope { previous }
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
        crate::Heap::profiler_changed();
    }
}

/// Stops sampling (the samples are kept for [`folded`]).
pub fn stop() {
    INTERVAL.store(0, Ordering::Relaxed);
    crate::Heap::profiler_changed();
}

/// The mean sampling interval in bytes, 0 when off.
pub fn interval() -> usize {
    INTERVAL.load(Ordering::Relaxed)
}

/// Drops every sample taken so far (and the live and peak sums).
pub fn clear() {
    let old = with_profile(|profile| {
        profile.live = 0.0;
        profile.peak = 0.0;
        profile.peak_event = profile.events;
        profile.taken = 0;
        profile.freed_kept = 0;
        profile.foldable = 0;
        (core::mem::take(&mut profile.samples), profile.totals.take())
    });
    drop(old);
}

/// Runs `f` on the profile under its lock, in the profiler (see the
/// module doc), then marks the sampled blocks freed meanwhile.
fn with_profile<T>(f: impl FnOnce(&mut Profile) -> T) -> T {
    // (A thread whose thread-locals are gone has no flags: it samples
    // nothing, see `may_record`, and notes no frees.)
    // The heap's fork handlers hold this lock across a `fork()`: they must
    // be installed before anyone takes it (or a child can find it held).
    crate::Heap::install_fork_handlers();
    let was = IN_PROFILER.try_with(|inside| inside.replace(true)).unwrap_or(false);
    // The lock is not reentrant: a thread in the profiler never asks again
    // (`freed` defers, the heap samples nothing).
    debug_assert!(!was, "the profiler re-entered itself");
    let mut profile = PROFILE.lock().unwrap_or_else(PoisonError::into_inner);
    let value = f(&mut profile);
    if !was {
        // Marking allocates nothing, so no more can come while it runs.
        let pending = FREED_INSIDE.try_with(|ids| ids.each_ref().map(|id| id.replace(0))).unwrap_or([0; PENDING]);
        for entry in pending {
            if entry != 0 {
                profile.mark_freed(entry);
            }
        }
    }
    drop(profile);
    let _ = IN_PROFILER.try_with(|inside| inside.set(was));
    value
}

impl Profile {
    /// Marks sample `id` freed, if it is one of this profile's.
    fn mark_freed(&mut self, id: u64) {
        let Ok(at) = self.samples.binary_search_by_key(&id, |s| s.id) else { return };
        self.events += 1;
        let sample = &mut self.samples[at];
        if sample.freed.is_none() {
            sample.freed = Some(self.events);
            self.live -= sample.weight;
            self.freed_kept += 1;
            // Taken after the peak, it was not live then; one taken before
            // it was, and the peak view needs it until a higher peak.
            if sample.taken > self.peak_event {
                self.foldable += 1;
                self.fold_if_worth_it();
            }
        }
    }

    /// Adds a sample's bytes to the allocated totals of its resource and
    /// stack.
    fn add_to_totals(&mut self, sample: Sample) {
        let key = (sample.resource, sample.stack.into_boxed_slice());
        *self.totals.get_or_insert_with(HashMap::new).entry(key).or_insert(0.0) += sample.weight;
    }

    /// Folds the freed samples that the peak view does not need into the
    /// totals, once they are over half of the samples kept: each fold
    /// removes at least half, so a sample is looked at a bounded number of
    /// times on average.
    fn fold_if_worth_it(&mut self) {
        if self.foldable * 2 <= self.samples.len() {
            return;
        }
        let peak = self.peak_event;
        let samples = core::mem::take(&mut self.samples);
        let mut kept = Vec::with_capacity(samples.len() - self.foldable);
        for sample in samples {
            match sample.freed {
                Some(freed) if sample.taken > peak || freed <= peak => {
                    self.freed_kept -= 1;
                    self.add_to_totals(sample);
                }
                _ => kept.push(sample),
            }
        }
        self.foldable = 0;
        self.samples = kept;
    }

    /// The live bytes reached a new peak (at the latest event): every freed
    /// sample kept for the old one is foldable now.
    fn new_peak(&mut self) {
        self.peak = self.live;
        self.peak_event = self.events;
        self.foldable = self.freed_kept;
        self.fold_if_worth_it();
    }

    /// Whether `sample` counts in `view`.
    fn counts(&self, sample: &Sample, view: View) -> bool {
        match view {
            View::Allocated => true,
            View::Live => sample.freed.is_none(),
            View::Peak => sample.taken <= self.peak_event && sample.freed.is_none_or(|f| f > self.peak_event),
        }
    }
}

/// The profile's lock, held across a `fork()` by the heap's fork handlers
/// (outermost: a thread holding it may allocate, which takes heap locks),
/// so that a child never finds it held by a thread it does not have.
pub(crate) struct ForkHold(#[allow(dead_code)] std::sync::MutexGuard<'static, Profile>);

/// Takes the profile's lock for a `fork()` (see [`ForkHold`]).
pub(crate) fn fork_hold() -> ForkHold {
    ForkHold(PROFILE.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Installs what the profiler needs around `fork()` (the stack walk's
/// handler; the profile's own lock is the heap's handlers' to hold).
// Called by the heap's load-time constructor (Linux, not Miri).
#[cfg_attr(not(all(target_os = "linux", not(miri))), allow(dead_code))]
pub(crate) fn install_fork_handlers() {
    walk::install_fork_handlers();
}

/// Whether the calling thread may take a sample now: false while it is
/// in the profiler or writing a profile (whose own allocations are not
/// sampled).
pub(crate) fn may_record() -> bool {
    !IN_PROFILER.try_with(Cell::get).unwrap_or(true) && !PAUSED.try_with(Cell::get).unwrap_or(true)
}

/// While alive, the calling thread takes no sample (it is writing a
/// profile); guards nest.
struct Paused(bool);

impl Paused {
    fn new() -> Paused {
        Paused(PAUSED.try_with(|paused| paused.replace(true)).unwrap_or(true))
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = PAUSED.try_with(|paused| paused.set(self.0));
    }
}

/// The sampled block `id` (a number [`record`] gave) was freed.
pub(crate) fn freed(id: u64) {
    if IN_PROFILER.try_with(Cell::get).unwrap_or(true) {
        // Noted for when the lock is let go; with every entry taken (16
        // sampled frees inside one call into the profiler), the sample
        // stays live in the profile.
        let _ = FREED_INSIDE.try_with(|ids| {
            if let Some(free) = ids.iter().find(|id| id.get() == 0) {
                free.set(id);
            }
        });
        return;
    }
    with_profile(|profile| profile.mark_freed(id));
}

/// The samples the profile keeps one by one, oldest first: the live ones
/// the heap and the arenas track, and freed ones that were live at the
/// peak or are not folded into the totals yet (see the module doc); for a
/// test or a tool that wants more than the folded stacks.
pub fn samples_taken() -> Vec<SampleInfo> {
    let _paused = Paused::new();
    with_profile(|profile| {
        profile
            .samples
            .iter()
            .map(|s| SampleInfo {
                size: s.size,
                weight: s.weight,
                resource: s.resource.to_string(),
                thread: s.thread,
                at_ns: s.at_ns,
                walk: s.walk,
                freed: s.freed.is_some(),
            })
            .collect()
    })
}

/// The profile so far in folded form: one line per distinct stack,
/// `resource;outermost;...;innermost bytes` (the resource is the arena's
/// name and kind, `request-arena (Monotonic)`, or its kind, `Monotonic`,
/// when it has no name), the bytes being the estimate
/// of what that stack allocated, rounded; frames are function names
/// (Rust's and C++'s demangled), or addresses where no name is known.
/// Heaviest stacks first. This is the allocated view: see [`folded_view`]
/// for the others.
pub fn folded() -> String {
    folded_view(View::Allocated)
}

/// [`folded`] for the samples of `view`: every allocation, the live ones
/// now, or those live at the peak.
///
/// ```standalone_crate
/// use memres::profile::{self, View};
/// profile::start(1024);
/// let kept: Vec<Box<[u8; 512]>> = (0..64).map(|_| Box::new([0u8; 512])).collect();
/// let freed: Vec<Box<[u8; 512]>> = (0..64).map(|_| Box::new([0u8; 512])).collect();
/// drop(freed);
/// profile::stop();
/// // Whatever the global allocator, the views are there to read; with
/// // `memres::Heap` as the global allocator the live view holds only
/// // `kept`'s share.
/// let _ = (profile::folded_view(View::Live), profile::folded_view(View::Peak));
/// drop(kept);
/// ```
pub fn folded_view(view: View) -> String {
    let _paused = Paused::new();
    // (resource, stack, bytes), copied under the lock.
    let counted: Vec<(Cow<'static, str>, Box<[usize]>, f64)> = with_profile(|profile| {
        let kept = profile.samples.iter().filter(|s| profile.counts(s, view));
        let mut counted: Vec<_> = kept.map(|s| (s.resource.clone(), s.stack.clone().into(), s.weight)).collect();
        if view == View::Allocated
            && let Some(totals) = &profile.totals
        {
            counted.extend(totals.iter().map(|((resource, stack), &bytes)| (resource.clone(), stack.clone(), bytes)));
        }
        counted
    });
    let mut names: HashMap<usize, Vec<String>> = HashMap::new();
    let mut stacks: HashMap<String, f64> = HashMap::new();
    for (resource, stack, bytes) in &counted {
        for &ip in stack {
            names.entry(ip).or_insert_with(|| frame_names(ip));
        }
        let frames: Vec<&str> = stack.iter().flat_map(|ip| names[ip].iter().map(String::as_str)).collect();
        let outer = callers_start(&frames);
        let mut line = resource.to_string();
        for name in frames[outer..].iter().rev() {
            line.push(';');
            line.push_str(name);
        }
        *stacks.entry(line).or_insert(0.0) += bytes;
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

/// The samples taken since the last [`clear`] (kept one by one or folded
/// into the totals).
pub fn samples() -> usize {
    with_profile(|profile| profile.taken)
}

/// Writes [`folded`] to `path`.
///
/// # Errors
/// What writing the file returns.
pub fn dump_folded(path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
    std::fs::write(path, folded())
}

/// Writes the three views to `<prefix>.alloc.folded`, `<prefix>.live.folded`
/// and `<prefix>.peak.folded` (what the malloc shim writes at exit and on
/// `SIGUSR2`).
///
/// # Errors
/// What writing the first file that fails returns.
pub fn dump_views(prefix: &str) -> std::io::Result<()> {
    let _paused = Paused::new();
    for (view, suffix) in [(View::Allocated, "alloc"), (View::Live, "live"), (View::Peak, "peak")] {
        std::fs::write(format!("{prefix}.{suffix}.folded"), folded_view(view))?;
    }
    Ok(())
}

/// The names of the functions at return address `ip`, innermost first:
/// the functions inlined there, then the one holding it (a function
/// inlined into its caller, as `Box::new` always is, would otherwise stand
/// in for the caller). The address when no name is known.
fn frame_names(ip: usize) -> Vec<String> {
    let mut names = Vec::new();
    // A return address points after the call: look up the call itself.
    backtrace::resolve(ip.saturating_sub(1) as *mut core::ffi::c_void, |symbol| {
        if let Some(name) = symbol.name() {
            // `;` separates frames in the folded format (the count follows
            // the last space, so spaces may stay).
            names.push(format!("{name:#}").replace(';', ":"));
        }
    });
    if names.is_empty() {
        names.push(format!("{ip:#x}"));
    }
    names
}

/// The bytes a thread (or pool) allocates between looks at whether the
/// profiler has been started, while it is off: a resource that counts its
/// bytes on its fast path (the heap, the pools) runs its count down from
/// here, and its slow path then only re-reads the switch (one call of some
/// 20 instructions per 64 KiB: 0.05% of a loop of 48-byte blocks). A
/// start is noticed within as many bytes.
pub(crate) const LOOK_EVERY: isize = 64 << 10;

/// The count a fast path runs down to its next sample: an exponential
/// draw around `interval`, or [`LOOK_EVERY`] while the profiler is off (0).
pub(crate) fn countdown(interval: usize) -> isize {
    let left = if interval == 0 { LOOK_EVERY } else { isize::try_from(next_interval(interval)).unwrap_or(isize::MAX) };
    left.max(1)
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
/// sampling at `interval` bytes, with the caller's stack; `tracked` if its
/// free will be reported ([`freed`]). Returns the sample's number.
#[cold]
#[inline(never)]
pub(crate) fn record(size: usize, interval: usize, resource: Cow<'static, str>, tracked: bool) -> u64 {
    let was = IN_PROFILER.try_with(|inside| inside.replace(true)).unwrap_or(false);
    let sample = take(size, interval, resource);
    let _ = IN_PROFILER.try_with(|inside| inside.set(was));
    let id = with_profile(|profile| {
        let mut sample = sample;
        sample.id = profile.next_id;
        profile.next_id += 1;
        profile.events += 1;
        sample.taken = profile.events;
        profile.taken += 1;
        let id = sample.id;
        if !tracked {
            // Only the allocated view counts it.
            profile.add_to_totals(sample);
            return id;
        }
        profile.live += sample.weight;
        profile.samples.push(sample);
        if profile.live > profile.peak {
            profile.new_peak();
        }
        id
    });
    if DUMP_REQUESTED.load(Ordering::Relaxed) && DUMP_REQUESTED.swap(false, Ordering::Relaxed) {
        dump_as_requested();
    }
    id
}

/// What a sample calls the resource that served it: `name (Kind)` for a
/// named resource, `Kind` for one without a name.
pub(crate) fn resource_name(kind: &'static str, name: Option<&str>) -> Cow<'static, str> {
    match name {
        Some(name) => format!("{name} ({kind})").into(),
        None => kind.into(),
    }
}

/// A resource's name as [`resource_name`] shows it: `;`, which separates
/// frames in the folded form, becomes `:`.
pub(crate) fn clean_name(name: &str) -> std::sync::Arc<str> {
    name.replace(';', ":").into()
}

/// Asks for the views to be written to the prefix [`set_dump_prefix`]
/// gave, by the thread that takes the next sample (async-signal-safe: one
/// atomic store; the malloc shim calls it on `SIGUSR2`). Nothing is written
/// if no prefix was set.
pub fn request_dump() {
    DUMP_REQUESTED.store(true, Ordering::Relaxed);
}

/// Where [`request_dump`] writes: [`dump_views`]`(prefix)`. A `{pid}` in
/// `prefix` stands for the process's id when the dump is written, so a
/// child of `fork()` writes files of its own.
///
/// ```
/// memres::profile::set_dump_prefix("/tmp/app.{pid}");
/// let prefix = memres::profile::dump_prefix().unwrap();
/// assert_eq!(prefix, format!("/tmp/app.{}", std::process::id()));
/// ```
pub fn set_dump_prefix(prefix: impl Into<String>) {
    let prefix = prefix.into();
    *DUMP_PREFIX.lock().unwrap_or_else(PoisonError::into_inner) = Some(prefix);
}

/// The prefix [`set_dump_prefix`] gave, if any, with `{pid}` replaced by
/// the calling process's id.
pub fn dump_prefix() -> Option<String> {
    let prefix = DUMP_PREFIX.lock().unwrap_or_else(PoisonError::into_inner).clone()?;
    Some(prefix.replace("{pid}", &std::process::id().to_string()))
}

/// Writes the views as [`request_dump`] asked (errors go to stderr: there
/// is no caller to return them to).
#[cold]
fn dump_as_requested() {
    if let Some(prefix) = dump_prefix()
        && let Err(e) = dump_views(&prefix)
    {
        eprintln!("memres: could not write the profile to {prefix}.*.folded: {e}");
    }
}

/// A sampling interval as the environment gives it: bytes, with an
/// optional `K`, `M` or `G` suffix (powers of 1024), as `MEMRES_PROFILE`
/// takes it; `None` if malformed.
///
/// ```
/// assert_eq!(memres::profile::parse_interval(b"512K"), Some(512 << 10));
/// assert_eq!(memres::profile::parse_interval(b"4096"), Some(4096));
/// assert_eq!(memres::profile::parse_interval(b"lots"), None);
/// ```
pub fn parse_interval(text: &[u8]) -> Option<usize> {
    crate::os::parse_size(text)
}

/// A sample's record (not numbered yet), with the caller's stack.
fn take(size: usize, interval: usize, resource: Cow<'static, str>) -> Sample {
    let mut frames = walk::Frames::new();
    let walk = walk::trace(&mut frames);
    // One allocation, sized to fit (most stacks are far shorter than the
    // most kept).
    let stack = frames.as_slice().to_vec();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let thread = THREAD
        .try_with(|t| {
            if t.get() == 0 {
                t.set(THREADS.fetch_add(1, Ordering::Relaxed));
            }
            t.get()
        })
        .unwrap_or(0);
    Sample {
        id: 0,
        stack,
        weight: weight(size, interval),
        size,
        resource,
        thread,
        at_ns: u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX),
        walk,
        taken: 0,
        freed: None,
    }
}

/// The bytes a sampled allocation of `size` stands for, at a mean interval
/// of `interval`: its size over its chance of being picked.
fn weight(size: usize, interval: usize) -> f64 {
    let size = size.max(1) as f64;
    size / (1.0 - (-size / interval.max(1) as f64).exp())
}

/// Where the caller's frames start in a sample's frames (innermost first):
/// past the stack walk's, the profiler's and the sampling resource's own,
/// and past Rust's generic library frames inlined among those (an
/// `Option::and_then` in the heap's slow path), but not past library frames
/// that only the caller's code reaches (`Box::new`, `std::pmr`'s allocate).
fn callers_start(frames: &[&str]) -> usize {
    let glue = |name: &str| {
        ["core::", "<core::", "alloc::", "<alloc::", "std::", "<std::"].iter().any(|p| name.starts_with(p))
    };
    let mut start = 0;
    for (i, name) in frames.iter().enumerate() {
        if is_internal(name) {
            start = i + 1;
        } else if !glue(name) {
            break;
        }
    }
    start
}

/// Whether a frame named `name` is the profiler's or the sampling path's
/// (or the stack walker's), to be left out of a sample.
fn is_internal(name: &str) -> bool {
    const OURS: [&str; 21] = [
        "backtrace::",
        "memres::profile::",
        // Rust's global allocator shims.
        "__rustc::",
        "__rust_",
        "__rdl_",
        // The heap's paths, and the shim's entry points (below).
        "memres::heap::",
        "<memres::heap::",
        "memres_malloc::",
        // The pools and their `Allocator` impls, and C++'s pool classes.
        "memres::pool::",
        "<memres::pool::",
        "<&memres::pool::",
        "memres::unsynchronized_pool_resource::",
        "memres::synchronized_pool_resource::",
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
    // The C library's entry points the malloc shim exports, and C++'s
    // `operator new` (which it exports too).
    const ENTRIES: [&str; 9] = [
        "malloc",
        "calloc",
        "realloc",
        "reallocarray",
        "posix_memalign",
        "aligned_alloc",
        "memalign",
        "valloc",
        "pvalloc",
    ];
    OURS.iter().any(|prefix| name.starts_with(prefix))
        || ENTRIES.contains(&name)
        || name.starts_with("operator new")
        || name.contains("heap_resource_impl::")
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
