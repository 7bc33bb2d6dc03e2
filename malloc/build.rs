//! Compiles the C++ helper of `operator new` (new-handler, `std::bad_alloc`).

fn main() {
    cc::Build::new()
        .cpp(true)
        .file("src/new_handler.cpp")
        .std("c++17")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .compile("memres-malloc-cxx");
    println!("cargo:rerun-if-changed=src/new_handler.cpp");
}
