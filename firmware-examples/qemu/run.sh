#!/usr/bin/env bash
# Runs a firmware ELF in QEMU with instruction counting, decoding defmt output on the host.
# Usage: qemu/run.sh <elf> [machine]   (the machine defaults from the target in the path)
# Exit status: the firmware's semihosting exit (0 pass, 1 fail), 124 on timeout.
set -uo pipefail
elf=$1
machine=${2:-}
if [ -z "$machine" ]; then
  case "$elf" in
    *thumbv6m-none-eabi*) machine=microbit ;;
    *thumbv7m-none-eabi*) machine=lm3s6965evb ;;
    *thumbv8m.main-none-eabihf*) machine=mps2-an505 ;;
    *) machine=mps2-an386 ;;
  esac
fi
case "$machine" in
  microbit) cpu=cortex-m0 ;;
  lm3s6965evb) cpu=cortex-m3 ;;
  mps2-an386) cpu=cortex-m4 ;;
  mps2-an500) cpu=cortex-m7 ;;
  mps2-an505) cpu=cortex-m33 ;;
  *) echo "unknown machine $machine" >&2; exit 2 ;;
esac
decoder=$(command -v defmt-print || echo "$HOME/.cargo/bin/defmt-print")
timeout "${QEMU_TIMEOUT:-300}" qemu-system-arm -cpu "$cpu" -machine "$machine" -nographic -monitor none \
  -serial none -semihosting-config enable=on,target=native -icount shift=0 -kernel "$elf" \
  | "$decoder" -e "$elf" --log-format '{L} {s}'
status=${PIPESTATUS[0]}
exit "$status"
