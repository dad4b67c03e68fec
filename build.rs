//! Chooses the kernels' arithmetic path at build time: `microcnn_dsp` for cores with the DSP
//! extension's SIMD instructions (SXTB16, SXTAB16, SMLAD):
//!
//! - every `thumbv7em-*` target (Cortex-M4, M7);
//! - `thumbv8m.main-*` (Cortex-M33, M35P, M55, M85), where the extension is optional, when the
//!   `dsp` feature says the core has it (`microcnn_v8m` then tells the assembly to switch the
//!   assembler to Armv7E-M for each DSP instruction, whose encoding is the same).
//!
//! `microcnn_compact` when the crate is built for size (`opt-level = "s"` or `"z"`): the fast
//! paths that cost flash for speed are left out; `microcnn_dense_groups` where the dense layer
//! goes in groups of rows (the Armv6-M cores, and the Armv7-M and later ones except those with
//! the DSP extension built for speed).
//!
//! Stable Rust shows no `target_feature` for the extension on these targets, so the target name,
//! the feature and the CPU decide.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(microcnn_dsp)");
    println!("cargo::rustc-check-cfg=cfg(microcnn_v8m)");
    println!("cargo::rustc-check-cfg=cfg(microcnn_no_hw_divide)");
    println!("cargo::rustc-check-cfg=cfg(microcnn_v6m)");
    println!("cargo::rustc-check-cfg=cfg(microcnn_armv7)");
    println!("cargo::rustc-check-cfg=cfg(microcnn_compact)");
    println!("cargo::rustc-check-cfg=cfg(microcnn_dense_groups)");
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    // Built for size (opt-level "s" or "z"): `microcnn_compact` leaves out the fast paths that
    // cost flash for speed (the dense routines of four rows and of unpacked pairs, the 1×1
    // convolution's direct column copy, short row copies).
    let compact = matches!(std::env::var("OPT_LEVEL").as_deref(), Ok("s" | "z"));
    if compact {
        println!("cargo:rustc-cfg=microcnn_compact");
    }
    let dsp_feature = std::env::var_os("CARGO_FEATURE_DSP").is_some();
    // Armv6-M (Cortex-M0/M0+/M1) has no divide instruction: kernels divide by reciprocals.
    let v6m = target.starts_with("thumbv6m");
    if v6m {
        println!("cargo:rustc-cfg=microcnn_no_hw_divide");
        println!("cargo:rustc-cfg=microcnn_v6m");
    }
    // Armv7-M and later Mainline cores (M3, M4, M7, M33…): LDRSB/MLA/SMULL/SSAT, the
    // instructions of the blocked convolution's assembly loop.
    let armv7 = ["thumbv7m", "thumbv7em", "thumbv8m.main"].iter().any(|t| target.starts_with(t));
    if armv7 {
        println!("cargo:rustc-cfg=microcnn_armv7");
    }
    // The dense layer in groups of rows against the input's bytes or words (`dense.rs`): on
    // the M0 and M3, and on cores with the DSP extension built for size; built for speed those
    // take the unpacked-pairs assembly routine (1.2 KB of it, and 1.6 KB of Rust around it),
    // and every other target the same code with the instructions in plain Rust.
    let dsp = target.starts_with("thumbv7em") || (target.starts_with("thumbv8m.main") && dsp_feature);
    if v6m || (armv7 && (!dsp || compact)) {
        println!("cargo:rustc-cfg=microcnn_dense_groups");
    }
    if target.starts_with("thumbv7em") {
        println!("cargo:rustc-cfg=microcnn_dsp");
    } else if target.starts_with("thumbv8m.main") && dsp_feature {
        println!("cargo:rustc-cfg=microcnn_dsp");
        println!("cargo:rustc-cfg=microcnn_v8m");
    } else if dsp_feature && (target.starts_with("thumbv") || target.starts_with("arm")) {
        println!("cargo:warning=microcnn: the `dsp` feature has no effect on {target} (no DSP extension)");
    }
}
