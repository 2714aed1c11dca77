#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz and runs each reader's target
# for SECONDS (default 600), starting from the seeds in tests/fuzz/corpus/<target>. Crashes,
# leaks, timeouts and OOMs are kept going past (-fork) and saved under OUT/<target>-*; the log of
# each run ends with libFuzzer's execution count.
# Usage: tests/fuzz/run.sh [SECONDS] [OUT] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-600}
out=${2:-/tmp/orrery-fuzz}
shift $(( $# > 2 ? 2 : $# ))
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(mtx zarr h5ad text)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DORRERY_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build-fuzz >/dev/null
mkdir -p "$out"
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus-$t"
  # Allocations HDF5 makes from corrupt metadata fail (NULL) as they would without ASan.
  ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 \
    build-fuzz/tests/fuzz/fuzz_$t -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -artifact_prefix="$out/$t-" \
    "$out/corpus-$t" "tests/fuzz/corpus/$t" >"$out/$t.log" 2>&1 || true
  echo "fuzz_$t: $(grep -E '^#[0-9]+' "$out/$t.log" | tail -1)"
  echo "  crashes: $(ls "$out" | grep -c "^$t-crash" || true), timeouts: $(ls "$out" | grep -c "^$t-timeout" || true), ooms: $(ls "$out" | grep -c "^$t-oom" || true)"
done
