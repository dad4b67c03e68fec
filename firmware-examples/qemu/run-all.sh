#!/usr/bin/env bash
# Builds and runs every QEMU example on every emulated core, fails on any mismatch, and prints
# one table of instructions per inference (QEMU -icount shift=0 + SysTick), flash and RAM.
#   bash qemu/run-all.sh            (from firmware-examples/)
set -uo pipefail
cd "$(dirname "$0")/.."
export QEMU_TIMEOUT=${QEMU_TIMEOUT:-300}

# core  machine  target  binary  model
RUNS=(
  "M0  microbit     thumbv6m-none-eabi        golden        kernels"
  "M0  microbit     thumbv6m-none-eabi        kernel_props  properties"
  "M3  lm3s6965evb  thumbv7m-none-eabi        golden        kernels"
  "M3  lm3s6965evb  thumbv7m-none-eabi        kernel_props  properties"
  "M4  mps2-an386   thumbv7em-none-eabihf     kernel_props  properties"
  "M33 mps2-an505   thumbv8m.main-none-eabihf kernel_props  properties"
  "M0  microbit     thumbv6m-none-eabi        classify_tiny tiny"
  "M3  lm3s6965evb  thumbv7m-none-eabi        classify      fashion"
  "M3  lm3s6965evb  thumbv7m-none-eabi        classify_tiny tiny"
  "M4  mps2-an386   thumbv7em-none-eabihf     golden        kernels"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      fashion"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify_tiny tiny"
  "M7  mps2-an500   thumbv7em-none-eabihf     classify      fashion"
  "M33 mps2-an505   thumbv8m.main-none-eabihf golden        kernels"
  "M33 mps2-an505   thumbv8m.main-none-eabihf classify      fashion"
)

fail=0
out=target/qemu-logs
mkdir -p "$out"
for t in thumbv6m-none-eabi thumbv7m-none-eabi thumbv7em-none-eabihf thumbv8m.main-none-eabihf; do
  bins=$(printf '%s\n' "${RUNS[@]}" | awk -v t="$t" '$3==t {printf "--bin %s ", $4}')
  # shellcheck disable=SC2086
  if ! cargo build --quiet --release --target "$t" $bins; then
    echo "build failed for $t" >&2
    exit 1
  fi
done

# A model too large for the chip must fail at link time, not at run time: the Fashion-MNIST
# model's 15.7 KiB arena plus the stack reserve does not fit the micro:bit's 16 KiB of RAM.
if cargo build --quiet --release --target thumbv6m-none-eabi --bin classify >"$out/m0-too-big.log" 2>&1; then
  echo "FAIL: the Fashion-MNIST model linked for a 16 KiB Cortex-M0; the RAM check did not fire" >&2
  fail=1
elif grep -q "microcnn: RAM overflow" "$out/m0-too-big.log"; then
  echo "ok: Fashion-MNIST model on the 16 KiB micro:bit fails at link time (RAM overflow)"
else
  echo "FAIL: the M0 build failed for another reason:" >&2
  cat "$out/m0-too-big.log" >&2
  fail=1
fi

# The same check guards the real-board example: with a stack reserve that leaves no room for the
# model's arena (a .bss static) in the nRF52840's 256 KiB, the link must fail.
if MICROCNN_STACK_RESERVE=250000 cargo build --quiet --release -p nrf52840-dk >"$out/nrf-too-big.log" 2>&1; then
  echo "FAIL: the nRF52840 example linked although arena + stack reserve exceed its RAM" >&2
  fail=1
elif grep -q "microcnn: RAM overflow" "$out/nrf-too-big.log"; then
  echo "ok: nRF52840 example with arena + 250,000 B stack reserve fails at link time (RAM overflow)"
else
  echo "FAIL: the nRF52840 build failed for another reason:" >&2
  cat "$out/nrf-too-big.log" >&2
  fail=1
fi

# Imported TFLite models (models/imported_*: Keras → TF converter → `microcnn import`), built
# into their own target folder so the default builds above stay as they are; each ELF is copied
# aside, since the next model rebuilds the app in the same folder.
IMPORTED=(
  "M0  microbit     thumbv6m-none-eabi        classify      imported_residual"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      imported_residual"
  "M33 mps2-an505   thumbv8m.main-none-eabihf classify      imported_residual"
  "M0  microbit     thumbv6m-none-eabi        classify      imported_dscnn_float_io"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      imported_dscnn_float_io"
  "M33 mps2-an505   thumbv8m.main-none-eabihf classify      imported_dscnn_float_io"
  "M0  microbit     thumbv6m-none-eabi        classify      imported_dag_concat_pad"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      imported_dag_concat_pad"
  "M33 mps2-an505   thumbv8m.main-none-eabihf classify      imported_dag_concat_pad"
  "M3  lm3s6965evb  thumbv7m-none-eabi        classify      imported_resnet8"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      imported_resnet8"
  "M33 mps2-an505   thumbv8m.main-none-eabihf classify      imported_resnet8"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      imported_mobilenet_v1_025"
  "M33 mps2-an505   thumbv8m.main-none-eabihf classify      imported_mobilenet_v1_025"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      imported_fc_autoencoder"
  "M0  microbit     thumbv6m-none-eabi        classify      imported_broadcast_ops"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      imported_broadcast_ops"
  "M0  microbit     thumbv6m-none-eabi        classify      imported_squash"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      imported_squash"
  "M0  microbit     thumbv6m-none-eabi        classify      imported_requant_leaky"
  "M33 mps2-an505   thumbv8m.main-none-eabihf classify      imported_requant_leaky"
  "M0  microbit     thumbv6m-none-eabi        classify      imported_mobilenet_v3_block"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      imported_mobilenet_v3_block"
  "M0  microbit     thumbv6m-none-eabi        classify      imported_torch_cnn"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      imported_torch_cnn"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      imported_unet_tiny"
  "M33 mps2-an505   thumbv8m.main-none-eabihf classify      imported_unet_tiny"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      fomo"
  "M7  mps2-an500   thumbv7em-none-eabihf     classify      fomo"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      segment"
  "M4  mps2-an386   thumbv7em-none-eabihf     classify      localize"
  "M7  mps2-an500   thumbv7em-none-eabihf     classify      localize"
  "M33 mps2-an505   thumbv8m.main-none-eabihf classify      imported_fc_autoencoder"
)
mkdir -p target/imported/elf
for run in "${IMPORTED[@]}"; do
  read -r core machine target bin model <<<"$run"
  if ! MICROCNN_MODEL="$PWD/../models/$model" cargo build --quiet --release --target "$target" --bin "$bin" --target-dir target/imported; then
    echo "build failed for $model on $target" >&2
    exit 1
  fi
  cp "target/imported/$target/release/$bin" "target/imported/elf/$model-$target-$bin"
done

# The Armv7-M and later cores built for size (opt-level "s": `microcnn_compact`, whose dense
# layer and window copies differ from the release build's): the property tests and the golden
# cases again.
SIZE_RUNS=(
  "M3  lm3s6965evb  thumbv7m-none-eabi        kernel_props  properties-s"
  "M3  lm3s6965evb  thumbv7m-none-eabi        golden        kernels-s"
  "M4  mps2-an386   thumbv7em-none-eabihf     kernel_props  properties-s"
  "M4  mps2-an386   thumbv7em-none-eabihf     golden        kernels-s"
  "M33 mps2-an505   thumbv8m.main-none-eabihf kernel_props  properties-s"
  "M33 mps2-an505   thumbv8m.main-none-eabihf golden        kernels-s"
)
for t in thumbv7m-none-eabi thumbv7em-none-eabihf thumbv8m.main-none-eabihf; do
  if ! CARGO_PROFILE_RELEASE_OPT_LEVEL=s cargo build --quiet --release --target "$t" --bin kernel_props --bin golden --target-dir target/size-s; then
    echo "opt-level s build failed for $t" >&2
    exit 1
  fi
done

table="| core | QEMU machine | program | instructions / inference | flash (B) | static RAM (B) | accuracy | bit-exact with host |\n|---|---|---|---:|---:|---:|---|---|\n"
layers=""
props=""
for run in "${RUNS[@]}" "${IMPORTED[@]}" "${SIZE_RUNS[@]}"; do
  read -r core machine target bin model <<<"$run"
  elf="target/$target/release/$bin"
  case "$model" in
    imported_* | fomo | segment | localize) elf="target/imported/elf/$model-$target-$bin" ;;
    *-s) elf="target/size-s/$target/release/$bin" ;;
  esac
  log="$out/$core-$bin-$model.log"
  printf '%-4s %-12s %-14s ... ' "$core" "$machine" "$bin"
  bash qemu/run.sh "$elf" "$machine" >"$log" 2>&1
  status=$?
  if [ "$status" -ne 0 ]; then
    echo "FAILED (exit $status) — see $log"
    tail -n 20 "$log"
    fail=1
    continue
  fi
  echo "ok"
  flash=$(size -A "$elf" | awk '$1==".vector_table"||$1==".text"||$1==".rodata"||$1==".data" {s+=$2} END {print s}')
  ram=$(size -A "$elf" | awk '$1==".data"||$1==".bss"||$1==".uninit" {s+=$2} END {print s}')
  if [ "$bin" = golden ]; then
    res=$(grep -o 'RESULT golden: .*' "$log" | sed 's/RESULT golden: //')
    label="$model"
    case "$model" in *-s) label="${model%-s}, opt-level s" ;; esac
    table+="| $core | $machine | golden kernels ($label) | – | $flash | $ram | – | $res |\n"
  elif [ "$bin" = kernel_props ]; then
    res=$(grep -o 'RESULT kernel properties: .*' "$log" | sed 's/RESULT kernel properties: //')
    case "$model" in *-s) core="$core (opt-level s)" ;; esac
    props+="| $core | $res |\n"
  else
    instr=$(grep -o 'PERF inference [0-9]*' "$log" | awk '{print $3}')
    acc=$(grep -o 'RESULT accuracy [0-9]*/[0-9]*' "$log" | awk '{print $3}')
    exact=$(grep -o 'bit-exact with host: [0-9]*/[0-9]*' "$log" | awk '{print $4}')
    table+="| $core | $machine | $model | ${instr:-n/a} | $flash | $ram | $acc | $exact |\n"
    if [ "$model" = fashion ]; then
      layers+="$core $(grep -o 'PERF layer [a-z0-9_]* [0-9]*' "$log" | awk '{printf "%s=%s ", $3, $4}')\n"
    fi
  fi
done

echo
printf "%b" "$table" | tee "$out/table.md"
echo
echo "On-target kernel property tests (every optimised kernel against the reference):"
printf "| core | result |\n|---|---|\n%b" "$props" | tee "$out/props.md"
echo
echo "Instructions per layer, Fashion-MNIST model (mean over the embedded test images):"
printf "%b" "$layers" | tee "$out/layers.txt"
if [ "$fail" -ne 0 ]; then
  echo "QEMU runs: FAILED" >&2
  exit 1
fi
echo "QEMU runs: all passed"
