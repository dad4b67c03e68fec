//! `cargo xtask <command>`: the project's two entry points and their helpers.
//!
//! - `cargo xtask demo`  — images → trained model → int8 → Rust → firmware → QEMU Cortex-M4.
//! - `cargo xtask test`  — every check CI runs: fmt, clippy, docs, host tests, thumb builds,
//!   generated-code drift, QEMU runs.
//!
//! Both install what a fresh machine lacks (rustup targets, `qemu-system-arm`, the
//! Fashion-MNIST package) and say what they install.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const THUMB_TARGETS: [&str; 4] =
    ["thumbv6m-none-eabi", "thumbv7m-none-eabi", "thumbv7em-none-eabihf", "thumbv8m.main-none-eabihf"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn say(msg: &str) {
    eprintln!("\x1b[1;36m==>\x1b[0m {msg}");
}

/// Runs a command in `dir`, echoing it; returns an error naming it if it fails.
fn run(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("\x1b[2m$ {program} {}\x1b[0m", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .map_err(|e| format!("could not start `{program}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs rustup targets, QEMU and the dataset package if missing.
fn setup(need_dataset: bool) -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let missing: Vec<&str> = THUMB_TARGETS.iter().copied().filter(|t| !installed.lines().any(|l| l == *t)).collect();
    if !missing.is_empty() {
        say(&format!("installing Rust targets for Cortex-M: {}", missing.join(", ")));
        let mut args = vec!["target", "add"];
        args.extend(&missing);
        run(&root(), "rustup", &args)?;
    }
    let mut pkgs = Vec::new();
    if !have("qemu-system-arm") {
        pkgs.push("qemu-system-arm");
    }
    if need_dataset && !Path::new("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists() {
        pkgs.push("dataset-fashion-mnist");
    }
    if !have("defmt-print")
        && !Path::new(&format!("{}/.cargo/bin/defmt-print", std::env::var("HOME").unwrap_or_default())).exists()
    {
        say("installing defmt-print (decodes the firmware's defmt logs on the host; a few minutes, once)");
        run(&root(), "cargo", &["install", "defmt-print", "--locked", "--quiet"])?;
    }
    if !pkgs.is_empty() {
        say(&format!(
            "installing Debian packages: {} (QEMU for the Cortex-M emulator, Fashion-MNIST data)",
            pkgs.join(", ")
        ));
        let sudo =
            if Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0")) { "" } else { "sudo " };
        let script = format!(
            "{sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive {sudo}apt-get install -y -qq --no-install-recommends {}",
            pkgs.join(" ")
        );
        run(&root(), "sh", &["-c", &script])?;
    }
    Ok(())
}

/// Installs what the fuzz and Miri steps need: a nightly toolchain with Miri and the standard
/// library's source, and cargo-fuzz.
fn setup_nightly() -> Result<(), String> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nightly {
        say("installing a nightly Rust toolchain with Miri (for fuzzing and Miri; once)");
        run(
            &root(),
            "rustup",
            &["toolchain", "install", "nightly", "--profile", "minimal", "--component", "miri,rust-src"],
        )?;
    } else {
        run(&root(), "rustup", &["component", "add", "--toolchain", "nightly", "miri", "rust-src"])?;
    }
    if !have("cargo-fuzz")
        && !Path::new(&format!("{}/.cargo/bin/cargo-fuzz", std::env::var("HOME").unwrap_or_default())).exists()
    {
        say("installing cargo-fuzz (coverage-guided fuzzing with libFuzzer; a minute or two, once)");
        run(&root(), "cargo", &["install", "cargo-fuzz", "--locked", "--quiet"])?;
    }
    Ok(())
}

/// Every fuzz target in both profiles for `secs` seconds each (`fuzz/run.sh`).
fn fuzz(secs: &str) -> Result<(), String> {
    setup_nightly()?;
    run(&root(), "bash", &["fuzz/run.sh", secs])
}

/// The runtime's unit, extremes, golden and property tests under Miri (fewer cases there).
fn miri() -> Result<(), String> {
    setup_nightly()?;
    let status = Command::new("cargo")
        .args([
            "+nightly",
            "miri",
            "test",
            "-q",
            "-p",
            "microcnn",
            "--lib",
            "--test",
            "extremes",
            "--test",
            "golden",
            "--test",
            "properties",
        ])
        .env("MIRIFLAGS", "-Zmiri-disable-isolation")
        .current_dir(root())
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("Miri found undefined behaviour, a leak or a failing test".into());
    }
    Ok(())
}

fn test_all() -> Result<(), String> {
    let r = root();
    let fw = r.join("firmware-examples");
    setup(false)?;
    let t0 = Instant::now();
    say("formatting (cargo fmt --check)");
    run(&r, "cargo", &["fmt", "--all", "--", "--check"])?;
    if fw.join("Cargo.toml").exists() {
        run(&fw, "cargo", &["fmt", "--all", "--", "--check"])?;
    }
    say("lints (cargo clippy -D warnings)");
    run(&r, "cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    say("runtime builds for every Cortex-M target, with and without defmt");
    for t in THUMB_TARGETS {
        run(&r, "cargo", &["build", "-q", "-p", "microcnn", "--target", t])?;
        run(&r, "cargo", &["build", "-q", "-p", "microcnn", "--target", t, "--features", "defmt"])?;
        run(
            &r,
            "cargo",
            &["clippy", "-q", "-p", "microcnn", "--target", t, "--features", "defmt", "--", "-D", "warnings"],
        )?;
    }
    say("docs without warnings");
    let status = Command::new("cargo")
        .args(["doc", "--no-deps", "--workspace", "-q"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .current_dir(&r)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("cargo doc reported warnings".into());
    }
    say("host tests (unit, golden vs TFLite Micro, property, extremes, bad input, integration)");
    run(&r, "cargo", &["test", "--workspace", "--release"])?;
    say("the runtime's tests and the CLI's bad-input suite again with overflow checks on");
    run(&r, "cargo", &["test", "-q", "-p", "microcnn"])?;
    run(&r, "cargo", &["test", "-q", "-p", "host-train", "--test", "bad_input"])?;
    say("coverage-guided fuzzing: every target, overflow-checked and release, 10 s each (long runs: cargo xtask fuzz 3600)");
    fuzz("10")?;
    say("Miri: the runtime's tests for undefined behaviour and leaks (reduced case counts)");
    miri()?;
    if r.join("models").exists() {
        say("generated-code drift check (microcnn emit --check on every committed model)");
        drift_check()?;
    }
    if fw.join("Cargo.toml").exists() {
        say("firmware lints (clippy -D warnings, Cortex-M4 and Cortex-M0 builds)");
        run(&fw, "cargo", &["clippy", "-q", "--release", "--target", "thumbv7em-none-eabihf", "--", "-D", "warnings"])?;
        run(
            &fw,
            "cargo",
            &[
                "clippy",
                "-q",
                "--release",
                "--target",
                "thumbv6m-none-eabi",
                "-p",
                "microcnn-qemu",
                "--bin",
                "golden",
                "--bin",
                "classify_tiny",
                "--",
                "-D",
                "warnings",
            ],
        )?;
        say("real-board example (nRF52840-DK): lint and link; no board needed");
        run(&fw, "cargo", &["clippy", "-q", "--release", "-p", "nrf52840-dk", "--", "-D", "warnings"])?;
        run(&fw, "cargo", &["build", "-q", "--release", "-p", "nrf52840-dk"])?;
        say("firmware: QEMU runs on every Cortex-M core");
        run(&fw, "bash", &["qemu/run-all.sh"])?;
    }
    say(&format!("all checks passed in {:.0?}", t0.elapsed()));
    Ok(())
}

fn drift_check() -> Result<(), String> {
    let r = root();
    let mut models: Vec<PathBuf> = std::fs::read_dir(r.join("models"))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        // Deployable models (with generated code); a pre-training checkpoint alone has none.
        .filter(|p| p.is_dir() && p.join("quantized.json").exists())
        .collect();
    models.sort();
    for m in models {
        let name = m.file_name().unwrap_or_default().to_string_lossy().to_string();
        run(
            &r,
            "cargo",
            &[
                "run",
                "-q",
                "--release",
                "-p",
                "host-train",
                "--",
                "emit",
                "--check",
                "--model-dir",
                &format!("models/{name}"),
            ],
        )?;
    }
    Ok(())
}

/// Runs a command, streaming its output to the terminal and also returning it.
fn run_capture(dir: &Path, program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<String, String> {
    eprintln!("\x1b[2m$ {program} {}\x1b[0m", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start `{program}`: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    print!("{text}");
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("`{program} {}` failed ({})", args.join(" "), out.status))
    }
}

fn after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().rev().find_map(|l| l.find(key).map(|i| l[i + key.len()..].trim()))
}

/// The whole product in one command: train → quantize → emit → firmware → QEMU Cortex-M4.
fn demo(args: &[String]) -> Result<(), String> {
    let r = root();
    let full = args.iter().any(|a| a == "--full");
    let epochs = if full { "15" } else { "2" };
    let t0 = Instant::now();
    say("1/6 checking tools (Rust targets, qemu-system-arm, Fashion-MNIST, defmt-print)");
    setup(true)?;
    say("2/6 building the host tools");
    run(&r, "cargo", &["build", "-q", "--release", "-p", "host-train"])?;
    let cli = r.join("target/release/microcnn");
    let cli = cli.to_str().ok_or("non-UTF-8 path")?;
    say(&format!(
        "3/6 training the default CNN (models/fashion/model.toml, 65k parameters) on 60,000 Fashion-MNIST images for {epochs} epochs{}",
        if full { "" } else { " (add --full for the 15-epoch model, ~91 %)" }
    ));
    run(&r, cli, &["train", "--epochs", epochs, "--augment", "none", "--out", "out/demo"])?;
    say("4/6 quantizing to int8 (per-channel weights, calibrated activations) and measuring int8 accuracy with the runtime");
    let q = run_capture(
        &r,
        cli,
        &["quantize", "--checkpoint", "out/demo/model.safetensors", "--out", "out/demo", "--max-accuracy-drop", "1.0"],
        &[],
    )?;
    say("5/6 generating Rust (out/demo/model.rs) with 50 test images and the host's expected outputs");
    run(&r, cli, &["emit", "--model-dir", "out/demo", "--test-images", "50"])?;
    say("6/6 building the firmware for Cortex-M4 and running it in QEMU (mps2-an386)");
    let fw = r.join("firmware-examples");
    let model_dir = r.join("out/demo");
    let model_dir = model_dir.to_str().ok_or("non-UTF-8 path")?;
    let env = [("MICROCNN_MODEL", model_dir)];
    let status = Command::new("cargo")
        .args(["build", "-q", "--release", "--bin", "classify"])
        .envs(env)
        .current_dir(&fw)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("firmware build failed".into());
    }
    let elf = "target/thumbv7em-none-eabihf/release/classify";
    let dev = run_capture(&fw, "bash", &["qemu/run.sh", elf, "mps2-an386"], &[])?;
    let size = Command::new("size").args(["-A", elf]).current_dir(&fw).output().map_err(|e| e.to_string())?;
    let (mut flash, mut ram) = (0u64, 0u64);
    for line in String::from_utf8_lossy(&size.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [name, bytes, ..] = f[..] {
            let b: u64 = bytes.parse().unwrap_or(0);
            match name {
                ".vector_table" | ".text" | ".rodata" => flash += b,
                ".data" => {
                    flash += b;
                    ram += b
                }
                ".bss" | ".uninit" => ram += b,
                _ => {}
            }
        }
    }
    let accs = after(&q, "test images: ").unwrap_or("?");
    let exact = after(&dev, "bit-exact with host: ").unwrap_or("?");
    let instr = after(&dev, "PERF inference ").unwrap_or("?");
    let dev_acc = after(&dev, "RESULT accuracy ").and_then(|s| s.split(',').next()).unwrap_or("?");
    println!("\n\x1b[1m── microcnn demo summary ──────────────────────────────────────────────\x1b[0m");
    println!("accuracy on the 10,000 test images   {accs}");
    println!("on the emulated Cortex-M4             {dev_acc} of the embedded test images correct");
    println!("device output == host output          {exact} images, bit for bit");
    println!("instructions per inference (M4)      {instr}  (QEMU -icount, SysTick)");
    println!(
        "firmware flash / static RAM          {flash} B / {ram} B (whole program: model, images, runtime, logging)"
    );
    println!(
        "generated model                       out/demo/model.rs  (report: out/demo/report.txt, plots: out/demo/*.png)"
    );
    println!("total time                            {:.0?}", t0.elapsed());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test_all(),
        Some("demo") => demo(&args[1..]),
        Some("setup") => setup(true),
        Some("drift") => drift_check(),
        Some("fuzz") => fuzz(args.get(1).map(String::as_str).unwrap_or("600")),
        Some("miri") => miri(),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  demo [--full]  train on Fashion-MNIST, quantize, emit, run on an emulated Cortex-M4\n  test           every check CI runs (fmt, clippy, docs, tests, thumb builds, drift, QEMU)\n  setup          install Rust targets, qemu-system-arm and dataset-fashion-mnist\n  drift          check committed generated models against their generator\n  fuzz [SECS]    every fuzz target in both profiles for SECS seconds each (default 600)\n  miri           the runtime's tests under Miri"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\x1b[1;31merror:\x1b[0m {e}");
            ExitCode::FAILURE
        }
    }
}
