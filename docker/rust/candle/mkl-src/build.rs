//! Links MKL statically from `$MKLROOT/lib`: the LP64 interface, the Intel OpenMP threading layer,
//! the core, and Intel's OpenMP runtime (`libiomp5.a`), so the binary needs no MKL at run time.
//! The three MKL archives are bundled into this crate's rlib, where the linker resolves their
//! circular references within one archive, as intel-mkl-src does.

use std::path::PathBuf;

const MKL_ARCHIVES: [&str; 3] = ["mkl_intel_lp64", "mkl_intel_thread", "mkl_core"];

fn main() {
    println!("cargo:rerun-if-env-changed=MKLROOT");
    let root = match std::env::var_os("MKLROOT") {
        Some(root) => PathBuf::from(root),
        None => panic!("MKLROOT is not set: candle's `mkl` feature links MKL from $MKLROOT/lib (see docker/candle/Dockerfile)"),
    };
    let lib = root.join("lib");
    for name in MKL_ARCHIVES.iter().copied().chain(["iomp5"]) {
        let file = lib.join(format!("lib{name}.a"));
        if !file.is_file() {
            panic!("{} is missing: MKLROOT must hold MKL's static libraries and libiomp5.a", file.display());
        }
        println!("cargo:rerun-if-changed={}", file.display());
    }
    println!("cargo:rustc-link-search=native={}", lib.display());
    for name in MKL_ARCHIVES {
        println!("cargo:rustc-link-lib=static={name}");
    }
    println!("cargo:rustc-link-lib=static=iomp5");
    // What MKL and libiomp5 need from the system (all in glibc's libc since 2.34; named for older ones).
    for name in ["pthread", "m", "dl"] {
        println!("cargo:rustc-link-lib=dylib={name}");
    }
    println!("cargo:root={}", root.display());
}
