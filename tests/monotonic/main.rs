//! `Monotonic`'s suite, one module per aspect. Single-threaded: runs under Miri.

#[path = "../support/mod.rs"]
mod support;

mod alloc;
mod bad_input;
mod collections;
mod lifecycle;
