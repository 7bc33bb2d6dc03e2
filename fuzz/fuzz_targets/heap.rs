//! Differential fuzzing of `memres::Heap` against the model in
//! `shared/heap_model.rs`, in the default mode.
#![no_main]

#[path = "shared/heap_model.rs"]
mod heap_model;

libfuzzer_sys::fuzz_target!(|ops: Vec<heap_model::Op>| heap_model::run(ops, false));
