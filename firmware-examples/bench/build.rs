//! The benchmark runs every ISA's code on a machine with enough RAM for the largest shape (two
//! 16 KiB tensors): thumbv6m (Cortex-M0) and thumbv7m (M3) code on QEMU's mps2-an386, whose M4
//! executes those instruction sets unchanged, so the retired-instruction counts are the M0's and
//! the M3's; thumbv8m code on the mps2-an505 (M33).
fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target = std::env::var("TARGET").unwrap_or_default();
    let memory = if target.starts_with("thumbv8m") {
        "MEMORY { FLASH : ORIGIN = 0x10000000, LENGTH = 4M\n RAM : ORIGIN = 0x38000000, LENGTH = 2M }\n"
    } else {
        "MEMORY { FLASH : ORIGIN = 0x00000000, LENGTH = 4M\n RAM : ORIGIN = 0x20000000, LENGTH = 4M }\n"
    };
    std::fs::write(out.join("memory.x"), memory).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    // The column of CMSIS-NN's figures that applies: the core this instruction set is for.
    let core = match target.as_str() {
        t if t.starts_with("thumbv6m") => "M0",
        t if t.starts_with("thumbv7m") => "M3",
        t if t.starts_with("thumbv8m") => "M33",
        _ => "M4",
    };
    std::fs::write(out.join("core.rs"), format!("const CORE_NAME: &str = {core:?};\n")).unwrap();
    println!("cargo:rerun-if-changed=build.rs");
}
