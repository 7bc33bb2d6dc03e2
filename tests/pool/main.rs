//! `UnsyncPool`'s suite, one module per aspect. Single-threaded: runs under Miri.

#[path = "../support/mod.rs"]
mod support;

mod alloc;
#[cfg(feature = "debug-checks")]
mod debug_checks;
mod lifecycle;
