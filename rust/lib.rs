//! # memres: memory resources for Rust and C++
//!
//! memres is a set of allocators that Rust uses through allocator-api2's
//! [`Allocator`] and C++ uses as
//! `std::pmr::memory_resource` (through the `memres-cxx` bridge crate and
//! `<memres/memres.hpp>`). One Rust core serves both languages.
//!
//! ## Choosing a resource
//!
//! | you have | take | C++ |
//! |---|---|---|
//! | many small objects that die together (a request, a parse, a frame) | [`Monotonic`]: a pointer bump, freed all at once by `reset()` (memory kept) | `memres::monotonic_buffer_resource` |
//! | the same, filled by several threads at once | [`SyncMonotonic`]: each thread bumps in its own region | `memres::synchronized_monotonic_buffer_resource` |
//! | frames whose data is read one frame later (engines) | [`FrameArenas`]: two arenas in turn, [`Kept`] handles | `memres::frame_arenas<>` |
//! | objects of a few sizes, freed one by one, one thread | [`UnsyncPool`]: size classes, no header per block | `memres::unsynchronized_pool_resource` |
//! | the same, shared by threads | [`SyncPool`]: per-thread caches, any thread frees any block | `memres::synchronized_pool_resource` |
//! | anything else, or a whole program | [`Heap`]: thread-caching, also `#[global_allocator]` and `malloc` (`libmemres_malloc.so`) | `memres::heap_resource()` |
//!
//! Every resource implements [`MemoryResource`], the pmr-shaped trait, and takes
//! an *upstream* resource to get its memory from, so resources chain as in
//! `std::pmr`. The default upstream is [`Global`], the program's global
//! allocator: with `#[global_allocator] static A: Heap = Heap;` that is
//! memres's [`Heap`] (or pass it: `Monotonic::new_in(Heap)`). `&Monotonic`,
//! `&UnsyncPool`, `&SyncPool` and `Heap` are allocator-api2 [`Allocator`]s
//! (`Vec::new_in(&arena)`, hashbrown's maps), and with the `nightly`
//! feature `core::alloc::Allocator`s.
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
//! ## The C++ side
//! The crate `memres-cxx` builds the same resources as
//! `std::pmr::memory_resource` classes (`<memres/memres.hpp>`, std's
//! constructors and semantics, inline fast paths over the Rust-owned
//! state); CMake builds it (`add_subdirectory`, `FetchContent`, or an
//! installed package found with `find_package(memres)` or pkg-config). One
//! arena or pool can serve Rust and C++ code in the same request
//! (`memres_cxx::CxxResource`).
//!
//! ## Safety rules
//! - Safe code cannot use a block after its arena frees it: `reset`,
//!   `release` and `rewind` take `&mut self`, so nothing allocated from
//!   `&arena` is still borrowed then; [`Kept`] handles are checked at run
//!   time.
//! - The unsafe surface is the allocator contract (`deallocate`, `grow`,
//!   `shrink` with a block this resource handed out and its layout) and
//!   the raw-buffer constructors. Breaking it is detected where it can be
//!   cheaply: the heap and the pools check every free (double free, a
//!   pointer that starts no block, corrupt free lists) and report and stop
//!   (or, with [`OnMisuse::Report`], report and leave the memory alone);
//!   the `debug-checks` feature checks every deallocation of every
//!   resource.
//! - Allocation failure is `Err(AllocError)`, never a panic or an abort
//!   (a `#[global_allocator]` returns null, as `GlobalAlloc` requires).
//!
//! ## Features
//! | feature | what it does |
//! |---|---|
//! | `nightly` | also implement `core::alloc::Allocator` (nightly Rust; with hashbrown in the build, its `nightly` too) |
//! | `debug-checks` | check every deallocation, fill freed memory with [`FREED_BYTE`], guard pages after chunks (slow; for tests) |
//! | `secure` | the heap's secure mode always on: guard pages, random carve order, a quarantine of zeroed freed blocks, sampled guarded allocations |
//! | `asan`, `tsan` | tell AddressSanitizer / ThreadSanitizer about the arenas' memory and the pools' locks (for sanitized C++ programs around this core) |
//! | `initial-exec-tls` | the heap's thread record through initial-exec TLS (for `libmemres_malloc.so`) |
//! | `unchecked-heap`, `unchecked-pools` | compile the default misuse checks out, only to measure what they cost |
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
pub mod profile;
mod resource;

pub use allocator_api2::alloc::{AllocError, Allocator, Global};

/// This crate's version, `"major.minor.patch"`: the one version of memres's
/// Rust crates, its CMake package and its C++ header (`MEMRES_VERSION_*`,
/// `memres::version()`). What counts as a breaking change on each face is in
/// `CHANGELOG.md`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub use debug::FREED_BYTE;
pub use foreign::ForeignLayout;
pub use heap::{HEAP_CLASS_COUNT, Heap, HeapClassStats, HeapFastPath, HeapLimits, HeapReport, HeapStats};
pub use misuse::OnMisuse;
pub use monotonic::{
    BumpState, Checkpoint, Forgetting, FrameArena, FrameArenas, Kept, Monotonic, MonotonicStats, StaleCheckpoint,
    SyncMonotonic,
};
pub use pool::{ClassStats, POOL_CLASS_COUNT, PoolOptions, PoolStats, SyncPool, UnsyncPool};
pub use resource::MemoryResource;

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
