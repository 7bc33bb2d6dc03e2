//! Builds the cxx bridge and the C++ half of memres (the slow paths the
//! header's inline fast paths call) into this crate's static library.
//!
//! The header's fast paths depend on two features of the memres core
//! (`debug-checks`: defer every call to the core; `asan`: unpoison what they
//! hand out). Those are read from the core actually linked
//! (`DEP_MEMRES_DEBUG_CHECKS`/`DEP_MEMRES_ASAN`, published by memres's build
//! script), not from this crate's own features, so the C++ compiled here
//! always agrees with the Rust it calls; they are published again
//! (`DEP_MEMRES_CXX_*`) for crates that compile the header themselves.

fn main() {
    let core = |fact: &str| {
        let var = format!("DEP_MEMRES_{fact}");
        match std::env::var(&var).as_deref() {
            Ok("1") => true,
            Ok("0") => false,
            other => panic!("{var} is {other:?}: memres's build script publishes it (links = \"memres\")"),
        }
    };
    let (debug_checks, asan) = (core("DEBUG_CHECKS"), core("ASAN"));
    let mut build = cxx_build::bridge("src/lib.rs");
    if debug_checks {
        build.define("MEMRES_DEBUG_CHECKS", None);
    }
    if asan {
        build.define("MEMRES_ASAN", None);
    }
    build
        .file("src/memres.cpp")
        .include("include")
        .std("c++17")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .compile("memres-cxx");
    for path in
        ["src/lib.rs", "src/view.rs", "src/owned.rs", "src/memres.cpp", "src/bridge.hpp", "include/memres/memres.hpp"]
    {
        println!("cargo:rerun-if-changed={path}");
    }
    // Let dependents' build scripts find <memres/memres.hpp>, and compile it
    // as the core needs.
    let include = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("include");
    println!("cargo:include={}", include.display());
    println!("cargo:debug_checks={}", u8::from(debug_checks));
    println!("cargo:asan={}", u8::from(asan));
}
