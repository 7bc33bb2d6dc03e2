//! # memres: memory resources for Rust and C++
//!
//! memres is a set of allocators that Rust uses through allocator-api2's
//! [`Allocator`] and C++ uses as
//! `std::pmr::memory_resource` (through the `memres-cxx` bridge crate and
//! `<memres/memres.hpp>`). One Rust core serves both languages.
//!
//! | resource | Rust | C++ |
//! |---|---|---|
//! | monotonic (bump) arena | [`Monotonic`] | `memres::monotonic_buffer_resource` |
//! | unsynchronized pool | [`UnsyncPool`] | `memres::unsynchronized_pool_resource` |
//! | synchronized pool (per-thread caches) | [`SyncPool`] | `memres::synchronized_pool_resource` |
//! | thread-caching general heap | [`Heap`] (also `#[global_allocator]`) | `memres::heap_resource()` |
//!
//! Every resource implements [`MemoryResource`], the pmr-shaped trait, and takes
//! an *upstream* resource to get its memory from, so resources chain as in
//! `std::pmr`. The default upstream is [`Global`], the program's global
//! allocator: with `#[global_allocator] static A: Heap = Heap;` that is
//! memres's [`Heap`] (or pass it: `Monotonic::new_in(Heap)`).
//!
//! ```
//! use allocator_api2::vec::Vec;
//! use memres::Monotonic;
//!
//! let mut arena = Monotonic::new();
//! for request in 0..3 {
//!     let mut v = Vec::new_in(&arena);
//!     v.extend(0..100 * request);
//!     assert_eq!(v.len(), 100 * request);
//!     drop(v);
//!     arena.reset(); // keeps the memory for the next request
//! }
//! ```
//!
//! ## Layers
//! `resource` (the trait and the system upstreams), `os` (the only calls
//! into the operating system) and `classes` (the size classes) →
//! `monotonic`, `pool`, `heap` (resources); `debug` holds the debug aids
//! every resource uses. A lower layer never names a higher one;
//! see `ARCHITECTURE.md`.
#![cfg_attr(feature = "nightly", feature(allocator_api))]
#![warn(missing_docs)]

mod classes;
mod debug;
mod foreign;
mod heap;
mod misuse;
mod monotonic;
mod os;
mod pool;
mod resource;

pub use allocator_api2::alloc::{AllocError, Allocator, Global};
pub use debug::FREED_BYTE;
pub use foreign::ForeignLayout;
pub use heap::{HEAP_CLASS_COUNT, Heap, HeapClassStats, HeapFastPath, HeapLimits, HeapStats};
pub use misuse::OnMisuse;
pub use monotonic::{
    BumpState, Checkpoint, FrameArena, FrameArenas, Kept, Monotonic, MonotonicStats, StaleCheckpoint, SyncMonotonic,
};
pub use pool::{ClassStats, POOL_CLASS_COUNT, PoolOptions, SyncPool, UnsyncPool};
pub use resource::MemoryResource;

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
