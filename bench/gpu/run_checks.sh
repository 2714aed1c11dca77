#!/usr/bin/env bash
# Runs on the GPU machine from the bundle made by bundle.sh: device facts, the CUDA parity
# suite, the GPU stage bench (JSON), then the interop test and render bench on the GPU's
# Vulkan driver. Logs go to $OUT when set. SKIP_PARITY=1 / SKIP_BENCH=1 / SKIP_RENDER=1 leave
# out the parity suite / stage bench / Vulkan part; PARITY_TESTS names parity test functions
# to run alone; E2E_CELLS=N adds the end-to-end CLI run (see below); LEIDEN_CELLS=N adds the
# Leiden flavours on an N-cell blob graph (orrery_bench_leiden: igraph, parallel on the host
# cores and on the device, and whether the device's labels are the host's).
# Usage: run_checks.sh [BENCH_ARGS...]
set -uo pipefail
root=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$root/out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export ORRERY_SHARED=$root/shared QT_QPA_PLATFORM=offscreen
# The CUDA libraries come from the target's toolkit or its Python wheels: add the folder of each
# one the programs miss.
for lib in $(ldd "$root"/bin/* | awk '/not found/ {print $1}' | sort -u); do
  found=$(find /usr/local /opt /usr/lib -name "$lib" 2>/dev/null | head -1)
  [ -n "$found" ] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$(dirname "$found")
  echo "$lib -> ${found:-NOT FOUND}"
done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv |
  tee "$out/device.txt"
if [ -z "${SKIP_PARITY:-}" ]; then
  # shellcheck disable=SC2086  # PARITY_TESTS: test function names, word-split on purpose
  timeout 300 "$root/bin/test_cuda_parity" ${PARITY_TESTS:-} -o "$out/parity.txt",txt -o -,txt 2>&1 |
    tail -40
  echo "parity exit: ${PIPESTATUS[0]}"
fi
if [ -z "${SKIP_BENCH:-}" ]; then
  timeout 300 "$root/bin/orrery_bench_gpu" "$@" 2>"$out/bench.err" | tee "$out/bench.json"
  echo "bench exit: ${PIPESTATUS[0]}"
  tail -5 "$out/bench.err"
fi
if [ -n "${LEIDEN_CELLS:-}" ]; then
  timeout 300 "$root/bin/orrery_bench_leiden" "$LEIDEN_CELLS" | tee "$out/leiden.json"
  echo "leiden bench exit: ${PIPESTATUS[0]}"
fi
if [ -n "${E2E_CELLS:-}" ]; then
  # End to end: `orrery-cli run --backend cuda` on a synthetic store of E2E_CELLS x 28k genes
  # made here (and, with E2E_CPU=1, the CPU backend on the same store), reports as JSON. The
  # output leaves out X (--results-only): at 11M cells the store (~31 GB) and a full copy would
  # not fit the machine's 64 GB disk.
  store=/tmp/orrery-e2e-$E2E_CELLS.h5ad
  /usr/bin/time -f "synth: %e s, peak RSS %M KB" "$root/bin/orrery-cli" synth -o "$store" \
    --cells "$E2E_CELLS" --genes 28000 --quiet
  for backend in cuda ${E2E_CPU:+cpu}; do
    /usr/bin/time -f "run $backend: %e s, peak RSS %M KB" timeout 540 "$root/bin/orrery-cli" run \
      "$store" -o "/tmp/orrery-e2e-out-$backend.h5ad" --backend "$backend" --quiet --results-only \
      --report "$out/e2e-$backend-$E2E_CELLS.json"
    echo "e2e $backend exit: $?"
    cat "$out/e2e-$backend-$E2E_CELLS.json"
    rm -f "/tmp/orrery-e2e-out-$backend.h5ad"
  done
fi
[ -n "${SKIP_RENDER:-}" ] && exit 0
# The renderer on the GPU's own Vulkan driver (its loader's libraries carried as .debs, see
# RESULTS.md): CUDA-Vulkan interop and offscreen pixel tests, frame times at 1M and 11M points,
# 1920x1080, sprites and compute splatting.
icd=$(find /usr/local/nvidia /usr/share/vulkan /etc/vulkan -name 'nvidia_icd*.json' 2>/dev/null | head -1)
echo "Vulkan ICD: ${icd:-none found}"
[ -n "$icd" ] && export VK_DRIVER_FILES=$icd && cat "$icd"
export VK_LOADER_DEBUG=error
timeout 120 "$root/bin/test_interop" -o "$out/interop.txt",txt -o -,txt 2>&1 | tail -20
echo "interop exit: ${PIPESTATUS[0]}"
timeout 120 "$root/bin/test_offscreen" -o "$out/offscreen.txt",txt -o -,txt 2>&1 | tail -4
echo "offscreen exit: ${PIPESTATUS[0]}"
for n in 1000000 11000000; do
  for mode in ${RENDER_MODES:-sprites splat}; do
    timeout 120 "$root/bin/orrery_bench_render" "$n" 60 1920 1080 3 "$mode" | tee -a "$out/render.json"
  done
done
