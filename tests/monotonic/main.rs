//! `Monotonic`'s suite, one module per aspect. Single-threaded: runs under Miri.
#![cfg_attr(feature = "nightly", feature(allocator_api))]

#[path = "../support/mod.rs"]
mod support;

mod alias_models;
mod alloc;
#[cfg(feature = "asan")]
mod asan;
mod bad_input;
mod collections;
#[cfg(feature = "debug-checks")]
mod debug_checks;
mod frame;
mod lifecycle;
#[cfg(feature = "nightly")]
mod nightly;
