//! Differential fuzzing of `UnsyncPool` against the model in `shared/pool_model.rs`.
#![no_main]

#[path = "shared/pool_model.rs"]
mod pool_model;

libfuzzer_sys::fuzz_target!(|input: pool_model::Input| pool_model::run::<memres::UnsyncPool<pool_model::Upstream>>(
    input
));
