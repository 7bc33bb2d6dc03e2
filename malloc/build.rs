//! Compiles the C++ helper of `operator new` (new-handler, `std::bad_alloc`)
//! without linking the C++ runtime: every symbol it takes from the runtime
//! becomes a weak reference (`objcopy --weaken`), satisfied by a C++
//! program's own libstdc++ and left null in a C program, which never calls
//! operator new (see src/new_handler.cpp).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let objects = cc::Build::new()
        .cpp(true)
        .cpp_link_stdlib(None)
        .file("src/new_handler.cpp")
        .std("c++17")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .compile_intermediates();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let objcopy = std::env::var("OBJCOPY").unwrap_or_else(|_| "objcopy".into());
    for (i, object) in objects.iter().enumerate() {
        let weak = out.join(format!("new_handler_weak_{i}.o"));
        let status = Command::new(&objcopy)
            .arg("--weaken")
            .arg(object)
            .arg(&weak)
            .status()
            .unwrap_or_else(|e| panic!("memres-malloc: running {objcopy} (binutils, or set OBJCOPY): {e}"));
        assert!(status.success(), "memres-malloc: {objcopy} --weaken {} failed", object.display());
        println!("cargo:rustc-link-arg-cdylib={}", weak.display());
    }
    println!("cargo:rerun-if-changed=src/new_handler.cpp");
    println!("cargo:rerun-if-env-changed=OBJCOPY");
}
