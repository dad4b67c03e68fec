#!/usr/bin/env bash
# The kernel benchmark on every instruction set, as one table with CMSIS-NN's figures beside
# ours:   bash bench/run.sh      (from firmware-examples/)
# thumbv6m (M0) and thumbv7m (M3) code runs on QEMU's mps2-an386, whose Cortex-M4 executes those
# instruction sets unchanged (the M0's 16 KiB micro:bit cannot hold the largest shapes), so the
# counts are those an M0 or M3 retires; thumbv7em on the M4 (mps2-an386), thumbv8m on the M33
# (mps2-an505).
set -uo pipefail
cd "$(dirname "$0")/.."
out=target/bench-logs
mkdir -p "$out"
fail=0
printf '| core | kernel | MACs (pools: outputs) | instructions | per MAC | CMSIS-NN | ratio |\n|---|---|---:|---:|---:|---:|---:|\n'
for spec in "thumbv6m-none-eabi mps2-an386" "thumbv7m-none-eabi mps2-an386" "thumbv7em-none-eabihf mps2-an386" "thumbv8m.main-none-eabihf mps2-an505"; do
  set -- $spec
  if ! cargo build --quiet --release -p microcnn-bench --target "$1" --bin kernels; then
    echo "build failed for $1" >&2
    exit 1
  fi
  log="$out/$1.log"
  if ! bash qemu/run.sh "target/$1/release/kernels" "$2" >"$log" 2>&1; then
    echo "FAIL: benchmark on $1 (see $log)" >&2
    fail=1
  fi
  grep -oE 'BENCH .*' "$log" | sed -E 's/^BENCH /| /; s/$/ |/' | awk -F'|' 'BEGIN{OFS="|"} {for(i=6;i<=8;i++){$i=sprintf(" %.2f ", $i)} print}'
done
exit $fail
