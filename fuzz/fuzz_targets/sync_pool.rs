//! Differential fuzzing of `SyncPool` against the model in `shared/pool_model.rs`:
//! single-threaded, but with frees from short-lived threads, so batches move
//! between caches and the central lists and exiting threads' caches drain.
#![no_main]

#[path = "shared/pool_model.rs"]
mod pool_model;

libfuzzer_sys::fuzz_target!(|input: pool_model::Input| pool_model::run::<memres::SyncPool<pool_model::Upstream>>(
    input
));
