//! Differential fuzzing of `memres::Heap` in secure mode (guard pages,
//! random carve order, quarantine, no reuse of large mappings) against the
//! model in `shared/heap_model.rs`. Guarded sampling stays off: its blocks
//! are not counted in the stats the model checks.
#![no_main]

#[path = "shared/heap_model.rs"]
mod heap_model;

libfuzzer_sys::fuzz_target!(
    init: {
        // The mode is read at the heap's first use, which is below: nothing
        // else in this process allocates from `memres::Heap`.
        // SAFETY: set before any thread of the target starts.
        unsafe { std::env::set_var("MEMRES_SECURE", "1") };
    },
    |ops: Vec<heap_model::Op>| heap_model::run(ops, true)
);
