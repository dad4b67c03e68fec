#!/usr/bin/env bash
# Kernel flash of the Fashion-MNIST model's firmware (classify) per core, at the release
# profile (opt-level 3) and at opt-level "s":   bash bench/size.sh   (from firmware-examples/)
# Sums the sizes of the text symbols of the runtime crate (`microcnn::…`) and its assembly
# routines (`microcnn_*_s8`); the model's own code and tables, the app, defmt and
# compiler-builtins (memcpy) are not counted. Needs llvm-nm (LLVM tools or rustup's
# llvm-tools component: `cargo install cargo-binutils` gives `rust-nm`).
set -euo pipefail
cd "$(dirname "$0")/.."
nm=$(command -v llvm-nm || command -v rust-nm || true)
if [ -z "$nm" ]; then
  echo "size.sh: needs llvm-nm (apt-get install llvm) or rust-nm (cargo install cargo-binutils; rustup component add llvm-tools)" >&2
  exit 1
fi
printf '| core | kernel flash, opt-level 3 (B) | kernel flash, opt-level "s" (B) |\n|---|---:|---:|\n'
for spec in "M3 thumbv7m-none-eabi" "M4 thumbv7em-none-eabihf" "M33 thumbv8m.main-none-eabihf"; do
  set -- $spec
  row="| $1 |"
  for opt in 3 s; do
    CARGO_PROFILE_RELEASE_OPT_LEVEL=$opt cargo build -q --release --target "$2" -p microcnn-qemu --bin classify --target-dir "target/size-$opt"
    bytes=$("$nm" --print-size --size-sort -C --radix=d "target/size-$opt/$2/release/classify" |
      awk 'tolower($3) == "t" { s = $2 + 0; $1 = $2 = $3 = ""; sub(/^ +/, ""); print s, $0 }' |
      grep -E '^[0-9]+ (microcnn::|microcnn_[a-z0-9_]+_s8$)' | awk '{ t += $1 } END { print t + 0 }')
    row="$row $bytes |"
  done
  echo "$row"
done
