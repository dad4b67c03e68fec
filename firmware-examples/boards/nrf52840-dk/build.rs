//! nRF52840 memory map for cortex-m-rt, with a link-time RAM check: cortex-m-rt lets the stack
//! grow down into .bss unchecked, so without it a model whose arena (a `static`) leaves less
//! than the stack reserve would link and then corrupt memory or lock up on the board.
//! `MICROCNN_STACK_RESERVE` (bytes, default 8192) sets the reserve.
fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let reserve: u32 = std::env::var("MICROCNN_STACK_RESERVE").ok().and_then(|v| v.parse().ok()).unwrap_or(8192);
    std::fs::write(
        out.join("memory.x"),
        format!(
            "MEMORY {{ FLASH : ORIGIN = 0x00000000, LENGTH = 1024K\n RAM : ORIGIN = 0x20000000, LENGTH = 256K }}\n\
             _stack_reserve = {reserve};\n\
             ASSERT(ORIGIN(RAM) + LENGTH(RAM) - __ebss >= _stack_reserve, \"microcnn: RAM overflow: static buffers (model arena) + {reserve} B of stack do not fit the nRF52840's 256 KiB of RAM\");\n"
        ),
    )
    .unwrap();
    println!("cargo:rerun-if-env-changed=MICROCNN_STACK_RESERVE");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");
}
