//! Frame arenas: per-frame memory the way game engines use it.
//!
//! A frame builds thousands of short-lived objects (visible sets, command
//! lists, scratch strings) and forgets them all at once. Some of it must
//! survive one frame more: the render thread reads the commands the game
//! thread built last frame, interpolation reads last frame's positions.
//! [`FrameArenas`] double-buffers two arenas: frame *N* allocates from one
//! while frame *N − 1*'s stays intact, and when frame *N + 1* begins, the
//! arena of frame *N − 1* is reset and becomes the current one. Resetting
//! keeps the arena's memory (merged into one chunk), so once the first
//! frames have sized both arenas a frame makes no upstream call.
//!
//! - **Borrowed data** (`Vec::new_in(frames.current())`) lives as long as
//!   the borrow of the `FrameArenas`; [`begin_frame`](FrameArenas::begin_frame)
//!   takes `&mut self`, so nothing borrowed survives a frame change.
//! - **Data kept into the next frame** is held as a [`Kept`] handle, which
//!   has no lifetime (it can sit in a long-lived struct) and is read through
//!   [`FrameArenas::get`]: `Some` in the frame that made it and the next,
//!   `None` from then on, checked at run time against the frame number.
//! - **Jobs on threads**: with [`SyncMonotonic`](super::SyncMonotonic) in
//!   both slots, the frame arena is `Sync` and each thread allocates in a
//!   region of its own, with no lock on the fast path.
//! - **Nested phases** of a frame: [`FrameArenas::scope`] frees what a
//!   phase allocated when it ends (a checkpoint and a rewind).
//!
//! Destructors of kept values do not run (the memory goes with the arena,
//! as with any arena allocation that is not dropped in place).
//!
//! # Invariants
//! - `arenas[frame % 2]` serves the current frame and `arenas[(frame + 1)
//!   % 2]` holds the previous frame's allocations; `begin_frame` increments
//!   `frame` and then resets the arena that is now current, the one frame
//!   `frame - 2` used. No other code resets or rewinds either arena but
//!   `scope`, which rewinds the current one to a checkpoint made inside
//!   the same call (blocks from before it stay).
//! - A [`Kept`] made in frame `f` by the set whose `id` it records points
//!   at a value written into `arenas[f % 2]` in frame `f`; that memory is
//!   untouched until frame `f + 2` begins. So `get` hands out a reference
//!   only if the ids match and `frame <= kept.frame + 1`, and the reference
//!   borrows `self`, which `begin_frame` needs mutably.
//! - [`FrameArena`] is sealed: only arenas that never move or reuse a live
//!   block's memory before `reset_frame` implement it.

use core::alloc::Layout;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering};

use allocator_api2::alloc::{AllocError, Global};

use super::{Monotonic, MonotonicStats, SyncMonotonic};
use crate::resource::MemoryResource;

mod sealed {
    pub trait Sealed {}
}

/// An arena [`FrameArenas`] can double-buffer: [`Monotonic`] (one thread)
/// or [`SyncMonotonic`] (jobs on many threads). Sealed: the frame arenas'
/// handles rely on `reset_frame` being the only way memory is reused.
pub trait FrameArena: MemoryResource + sealed::Sealed {
    /// Frees everything allocated, keeping the memory for the next frame.
    fn reset_frame(&mut self);
    /// What the arena holds and has done (upstream calls included).
    fn frame_stats(&self) -> MonotonicStats;
}

impl<U: MemoryResource> sealed::Sealed for Monotonic<'_, U> {}
impl<U: MemoryResource> FrameArena for Monotonic<'_, U> {
    fn reset_frame(&mut self) {
        self.reset();
    }
    fn frame_stats(&self) -> MonotonicStats {
        self.stats()
    }
}

impl<U: MemoryResource> sealed::Sealed for SyncMonotonic<U> {}
impl<U: MemoryResource> FrameArena for SyncMonotonic<U> {
    fn reset_frame(&mut self) {
        self.reset();
    }
    fn frame_stats(&self) -> MonotonicStats {
        self.stats()
    }
}

/// Tells one set of frame arenas from another, so a handle cannot be read
/// through a set that did not make it.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Two arenas used in turn, one frame each: what frame *N* allocates stays
/// valid through frame *N + 1*.
///
/// ```
/// use allocator_api2::vec::Vec;
/// use memres::FrameArenas;
///
/// let mut frames = FrameArenas::new();
/// let mut last_positions = None;
/// for frame in 0..4u32 {
///     frames.begin_frame();
///     // Scratch for this frame only.
///     let mut visible: Vec<u32, _> = Vec::new_in(frames.current());
///     visible.extend((0..100).filter(|i| i % 3 == 0));
///     // Read what the previous frame kept (gone two frames later).
///     if let Some(kept) = &last_positions {
///         let previous: &[f32] = frames.get(kept).expect("kept one frame");
///         assert_eq!(previous[0], (frame - 1) as f32);
///     }
///     last_positions = Some(frames.keep_slice(&[frame as f32; 8]).unwrap());
/// }
/// // After warm-up the frames ask upstream for nothing.
/// let before = frames.upstream_allocs();
/// frames.begin_frame();
/// frames.begin_frame();
/// assert_eq!(frames.upstream_allocs(), before);
/// ```
///
/// Nothing borrowed from an arena survives a frame change:
///
/// ```compile_fail
/// let mut frames = memres::FrameArenas::new();
/// let scratch = allocator_api2::vec::Vec::<u8, _>::with_capacity_in(64, frames.current());
/// frames.begin_frame(); // error: `frames` is still borrowed by `scratch`
/// drop(scratch);
/// ```
pub struct FrameArenas<A: FrameArena = Monotonic<'static, Global>> {
    arenas: [A; 2],
    frame: u64,
    id: u64,
}

impl FrameArenas<Monotonic<'static, Global>> {
    /// Two empty arenas over the global allocator, at frame 0.
    pub fn new() -> Self {
        Self::from_arenas(Monotonic::new(), Monotonic::new())
    }

    /// Two arenas of `bytes` each over the global allocator (allocated
    /// now), at frame 0.
    pub fn with_capacity(bytes: usize) -> Self {
        Self::from_arenas(Monotonic::with_capacity(bytes), Monotonic::with_capacity(bytes))
    }
}

impl Default for FrameArenas<Monotonic<'static, Global>> {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameArenas<SyncMonotonic<Global>> {
    /// Two empty thread-safe arenas over the global allocator, at frame 0:
    /// jobs on many threads allocate from [`current`](Self::current) at once.
    pub fn new_sync() -> Self {
        Self::from_arenas(SyncMonotonic::new(), SyncMonotonic::new())
    }
}

impl<A: FrameArena> FrameArenas<A> {
    /// Frame arenas over two arenas of the caller's making, at frame 0 with
    /// `first` current. Both are reset now: what they held is freed.
    pub fn from_arenas(mut first: A, mut second: A) -> Self {
        first.reset_frame();
        second.reset_frame();
        FrameArenas { arenas: [first, second], frame: 0, id: NEXT_ID.fetch_add(1, Ordering::Relaxed) }
    }

    /// The current frame's number: 0 at first, one more per
    /// [`begin_frame`](Self::begin_frame).
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// Starts the next frame: the arena of the frame before the previous
    /// one is reset (everything in it goes; its memory stays) and becomes
    /// current. The previous frame's allocations stay valid.
    pub fn begin_frame(&mut self) {
        self.frame += 1;
        self.arenas[Self::slot(self.frame)].reset_frame();
    }

    /// The arena of the current frame.
    pub fn current(&self) -> &A {
        &self.arenas[Self::slot(self.frame)]
    }

    /// The arena of the previous frame (read what it built; allocating here
    /// makes blocks that go one frame sooner).
    pub fn previous(&self) -> &A {
        &self.arenas[Self::slot(self.frame + 1)]
    }

    /// Upstream allocations both arenas have made so far: unchanged from
    /// frame to frame once the arenas have grown to the frames' needs.
    pub fn upstream_allocs(&self) -> u64 {
        self.arenas.iter().map(|a| a.frame_stats().upstream_allocs).sum()
    }

    /// Both arenas' stats, the current frame's first.
    pub fn stats(&self) -> [MonotonicStats; 2] {
        [self.current().frame_stats(), self.previous().frame_stats()]
    }

    /// Moves `value` into the current frame's arena, readable through
    /// [`get`](Self::get) in this frame and the next. Its destructor never
    /// runs.
    ///
    /// # Errors
    /// `AllocError` if the arena cannot get memory.
    pub fn keep<T>(&self, value: T) -> Result<Kept<T>, AllocError> {
        let ptr = self.current().allocate(Layout::new::<T>())?.cast::<T>();
        // SAFETY: a fresh block for a `T` (a zero size gets an aligned
        // dangling pointer, which a zero-sized write accepts).
        unsafe { ptr.as_ptr().write(value) };
        Ok(self.handle(ptr))
    }

    /// Copies `items` into the current frame's arena, readable through
    /// [`get`](Self::get) in this frame and the next.
    ///
    /// # Errors
    /// `AllocError` if the arena cannot get memory (or the slice's size
    /// overflows).
    pub fn keep_slice<T: Copy>(&self, items: &[T]) -> Result<Kept<[T]>, AllocError> {
        let layout = Layout::array::<T>(items.len()).map_err(|_| AllocError)?;
        let block = self.current().allocate(layout)?.cast::<T>();
        // SAFETY: a fresh block for `items.len()` values of `T`, which does
        // not overlap `items` (a live borrow of other memory); `T: Copy`.
        unsafe { ptr::copy_nonoverlapping(items.as_ptr(), block.as_ptr(), items.len()) };
        Ok(self.handle(NonNull::slice_from_raw_parts(block, items.len())))
    }

    /// Copies `text` into the current frame's arena, readable through
    /// [`get`](Self::get) in this frame and the next.
    ///
    /// # Errors
    /// `AllocError` if the arena cannot get memory.
    pub fn keep_str(&self, text: &str) -> Result<Kept<str>, AllocError> {
        let bytes = self.keep_slice(text.as_bytes())?;
        // A `[u8]` pointer to UTF-8 copied from a `str`, as a `str` pointer
        // (same metadata: the length in bytes).
        let ptr = NonNull::new(bytes.ptr.as_ptr() as *mut str).ok_or(AllocError)?;
        Ok(Kept { ptr, frame: bytes.frame, owner: bytes.owner, _owns: PhantomData })
    }

    /// The value behind `kept`, if it is still valid: made by these frame
    /// arenas in this frame or the previous one.
    pub fn get<'a, T: ?Sized>(&'a self, kept: &'a Kept<T>) -> Option<&'a T> {
        // SAFETY: `live` holds: the value was written in frame `kept.frame`
        // into the arena that keeps it until frame `kept.frame + 2` begins,
        // which needs `&mut self` while this borrows `self` (module
        // invariants); shared with nothing mutable: `kept` is borrowed too.
        // The reference is made only after the check (never eagerly).
        if self.live(kept) { Some(unsafe { kept.ptr.as_ref() }) } else { None }
    }

    /// The value behind `kept`, mutably, if it is still valid (as for
    /// [`get`](Self::get)).
    pub fn get_mut<'a, T: ?Sized>(&'a self, kept: &'a mut Kept<T>) -> Option<&'a mut T> {
        // SAFETY: as for `get`; the handle is the value's only one (not
        // `Clone`) and is borrowed mutably, so this is the only reference.
        if self.live(kept) { Some(unsafe { kept.ptr.as_mut() }) } else { None }
    }

    /// Whether `kept` may be read: made by these frame arenas, in this
    /// frame or the previous one.
    pub fn live<T: ?Sized>(&self, kept: &Kept<T>) -> bool {
        kept.owner == self.id && self.frame <= kept.frame.saturating_add(1)
    }

    fn handle<T: ?Sized>(&self, ptr: NonNull<T>) -> Kept<T> {
        Kept { ptr, frame: self.frame, owner: self.id, _owns: PhantomData }
    }

    fn slot(frame: u64) -> usize {
        (frame % 2) as usize
    }
}

impl<U: MemoryResource> FrameArenas<Monotonic<'static, U>> {
    /// Runs a nested phase of the frame: `f` allocates from the current
    /// arena, and what it allocated is freed when it returns (values kept
    /// before stay valid).
    ///
    /// ```
    /// let mut frames = memres::FrameArenas::new();
    /// let kept = frames.keep(7u64).unwrap();
    /// let used = frames.current().stats().used;
    /// let n = frames.scope(|arena| {
    ///     let scratch = allocator_api2::vec::Vec::<u8, _>::with_capacity_in(4096, arena);
    ///     scratch.capacity()
    /// });
    /// assert!(n >= 4096);
    /// assert_eq!(frames.current().stats().used, used);
    /// assert_eq!(frames.get(&kept), Some(&7));
    /// ```
    pub fn scope<R>(&mut self, f: impl FnOnce(&Monotonic<'static, U>) -> R) -> R {
        let slot = Self::slot(self.frame);
        self.arenas[slot].scope(f)
    }
}

impl<A: FrameArena> core::fmt::Debug for FrameArenas<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameArenas").field("frame", &self.frame).field("stats", &self.stats()).finish()
    }
}

/// A value [`FrameArenas::keep`] put in a frame's arena: read it through
/// [`FrameArenas::get`] in that frame and the next. It has no lifetime, so
/// it can live in a struct that outlasts the frame; after the next frame
/// `get` answers `None`. Not `Clone`: one handle per value, so
/// [`get_mut`](FrameArenas::get_mut) is the only way to its value.
pub struct Kept<T: ?Sized> {
    ptr: NonNull<T>,
    frame: u64,
    owner: u64,
    /// Reads and writes a `T` (through the frame arenas).
    _owns: PhantomData<T>,
}

impl<T: ?Sized> Kept<T> {
    /// The frame that made it.
    pub fn frame(&self) -> u64 {
        self.frame
    }
}

impl<T: ?Sized> core::fmt::Debug for Kept<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kept").field("frame", &self.frame).finish_non_exhaustive()
    }
}

// SAFETY: a `Kept` is the only way to its value, like a `Box`: sending it
// sends the value (`T: Send`), sharing it shares `&T` (`T: Sync`). The
// frame arenas' borrow rules are the same on every thread.
unsafe impl<T: ?Sized + Send> Send for Kept<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for Kept<T> {}
