//! Compiles the C++ workloads and the cxx bridge that exposes them.
//!
//! `<memres/memres.hpp>` comes from the `memres-cxx` crate, whose build
//! script publishes its include directory (`links = "memres-cxx"` turns its
//! `cargo:include=` line into `DEP_MEMRES_CXX_INCLUDE` here). Optimization
//! follows the Cargo profile (`-O3` under `--release`/`bench`).

fn main() {
    let memres_include = std::env::var("DEP_MEMRES_CXX_INCLUDE")
        .expect("DEP_MEMRES_CXX_INCLUDE is set by memres-cxx's build script (links = \"memres-cxx\")");
    let mut build = cxx_build::bridges(["src/lib.rs", "src/mixed.rs"]);
    // Compile the header as the linked core needs (see memres-cxx's build.rs).
    for (fact, define) in [("DEBUG_CHECKS", "MEMRES_DEBUG_CHECKS"), ("ASAN", "MEMRES_ASAN")] {
        if std::env::var(format!("DEP_MEMRES_CXX_{fact}")).as_deref() == Ok("1") {
            build.define(define, None);
        }
    }
    build
        .file("src/workloads.cpp")
        .file("src/mixed.cpp")
        .file("src/frames.cpp")
        .include(&memres_include)
        .std("c++17")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .compile("memres-workloads");
    for path in [
        "src/lib.rs",
        "src/workloads.cpp",
        "src/workloads.hpp",
        "src/mixed.rs",
        "src/mixed.cpp",
        "src/mixed.hpp",
        "src/frames.cpp",
        "src/frames.hpp",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    // The memres header is compiled into our workloads (its fast paths are inline).
    println!("cargo:rerun-if-changed={memres_include}/memres/memres.hpp");
}
