//! nRF52840 memory map for cortex-m-rt.
fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(
        out.join("memory.x"),
        "MEMORY { FLASH : ORIGIN = 0x00000000, LENGTH = 1024K\n RAM : ORIGIN = 0x20000000, LENGTH = 256K }\n",
    )
    .unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");
}
