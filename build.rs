//! Publishes the features that change what foreign code must do around the
//! core (`links = "memres"` turns these lines into `DEP_MEMRES_*` for the
//! build scripts of crates that depend on memres directly, such as
//! memres-cxx, whose C++ must follow the core it is linked with).

fn main() {
    let on = |feature: &str| u8::from(std::env::var_os(format!("CARGO_FEATURE_{feature}")).is_some());
    println!("cargo:debug_checks={}", on("DEBUG_CHECKS"));
    println!("cargo:asan={}", on("ASAN"));
    println!("cargo:rerun-if-changed=build.rs");
}
