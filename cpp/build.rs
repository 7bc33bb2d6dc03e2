//! Builds the cxx bridge and the C++ half of memres (the slow paths the
//! header's inline fast paths call) into this crate's static library.

fn main() {
    let mut build = cxx_build::bridge("src/lib.rs");
    // The views of Rust-owned resources run the header's inline fast paths
    // inside this library: they must agree with the core's checks.
    if std::env::var_os("CARGO_FEATURE_DEBUG_CHECKS").is_some() {
        build.define("MEMRES_DEBUG_CHECKS", None);
    }
    if std::env::var_os("CARGO_FEATURE_ASAN").is_some() {
        build.define("MEMRES_ASAN", None);
    }
    build
        .file("src/memres.cpp")
        .include("include")
        .std("c++17")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .compile("memres-cxx");
    for path in ["src/lib.rs", "src/view.rs", "src/memres.cpp", "src/bridge.hpp", "include/memres/memres.hpp"] {
        println!("cargo:rerun-if-changed={path}");
    }
    // Let dependents' build scripts find <memres/memres.hpp>.
    let include = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("include");
    println!("cargo:include={}", include.display());
}
