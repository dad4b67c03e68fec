#!/usr/bin/env bash
# Runs the cargo-fuzz targets, each in both profiles the runtime must survive:
#   checked  — optimised, with overflow checks and debug assertions (cargo-fuzz's default)
#   release  — optimised, overflow checks off (-O), as firmware is built
#
#   fuzz/run.sh [SECONDS_PER_TARGET_AND_PROFILE] [TARGET ...]     (default: 10 s, every target)
#   FUZZ_PROFILES=checked fuzz/run.sh 600 conv                   (one profile only)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo xtask setup-fuzz` installs both). The corpus
# grows in fuzz/corpus/<target> (git-ignored) and is seeded from the committed models; crashes
# land in fuzz/artifacts/<target>/ and fail the run; once fixed, copy them to
# fuzz/regressions/<target>/ (committed: seeds for every run, and replayed by
# `cargo test --test extremes`). Prints the run count per target.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-10}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(conv depthwise dense pool elementwise quant geometry model loaders)
fi

# Seeds for the loaders target: its first byte picks the loader (0 IDX, 1 CSV, 2 safetensors,
# 3 TOML, 4 quantized.json; +0x80 gzips the rest).
seed=corpus/loaders
mkdir -p "$seed"
idx() { printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02\x01\x02\x03\x04\x05\x06\x07\x08'; }
{ printf '\x00\x18'; idx; printf '\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02'; } > "$seed/idx"
{ printf '\x80\x18'; idx; printf '\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02'; } > "$seed/idx-gz"
printf '\x01pixel,a,b,c,label\n1,2,3,4,5\n0,0,255,9,1\n' > "$seed/csv"
{ printf '\x02'; cat ../models/tiny/model.safetensors; } > "$seed/safetensors"
{ printf '\x03'; cat ../models/tiny/model.toml; } > "$seed/toml"
{ printf '\x03'; cat ../models/fashion/model.toml; } > "$seed/toml-fashion"
{ printf '\x05'; cat ../models/tiny/quantized.json; } > "$seed/quantized"
{ printf '\x04'; cat ../models/tiny/model.tflite; } > "$seed/tflite-tiny"
{ printf '\x04'; cat ../host-train/tests/fixtures/tflite/cnn_residual.tflite; } > "$seed/tflite-residual"

status=0
for profile in ${FUZZ_PROFILES:-checked release}; do
    flags=()
    [ "$profile" = release ] && flags=(-O)
    for t in "${targets[@]}"; do
        mkdir -p "corpus/$t"
        max_len=4096
        [ "$t" = loaders ] && max_len=65536
        log=$(mktemp)
        extra=()
        [ -d "regressions/$t" ] && extra=("regressions/$t")
        if cargo +nightly fuzz run -s none "${flags[@]}" --target-dir "target/$profile" "$t" "corpus/$t" "${extra[@]}" -- \
            -max_total_time="$secs" -max_len="$max_len" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
            runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
            printf '%-8s %-12s %12s runs in %ss\n' "$profile" "$t" "$runs" "$secs"
        else
            echo "FAILED: $profile $t"
            grep -E 'panicked|SUMMARY|ERROR|Test unit written|assert' "$log" | head -20
            status=1
        fi
        rm -f "$log"
    done
done
exit $status
