//! Builds the cxx bridge and the C++ half of memres (the slow paths the
//! header's inline fast paths call) into this crate's static library.

fn main() {
    cxx_build::bridge("src/lib.rs")
        .file("src/memres.cpp")
        .include("include")
        .std("c++17")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .compile("memres-cxx");
    for path in ["src/lib.rs", "src/memres.cpp", "src/bridge.hpp", "include/memres/memres.hpp"] {
        println!("cargo:rerun-if-changed={path}");
    }
    // Let dependents' build scripts find <memres/memres.hpp>.
    let include = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("include");
    println!("cargo:include={}", include.display());
}
