//! `UnsyncPool`'s suite, one module per aspect. Single-threaded: runs under Miri.

#[path = "../support/mod.rs"]
mod support;

mod alloc;
mod lifecycle;
