//! Records how the binary is compiled (rustc version, `-C target-cpu`) for `/info`.

fn main() {
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=EMBBENCH_RUSTC_VERSION={version}");
    // Flags arrive separated by 0x1f; "-C target-cpu=x" may be one flag or two.
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let target_cpu = flags
        .split('\x1f')
        .find_map(|f| f.trim_start_matches("-C").trim().strip_prefix("target-cpu="))
        .unwrap_or("x86-64 (rustc default)")
        .to_string();
    println!("cargo:rustc-env=EMBBENCH_TARGET_CPU={target_cpu}");
}
