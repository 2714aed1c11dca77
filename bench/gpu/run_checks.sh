#!/usr/bin/env bash
# Runs on the GPU machine from the bundle made by bundle.sh: device facts, the CUDA parity
# suite, the GPU stage bench (JSON), then the interop test and render bench on the GPU's
# Vulkan driver. Logs go to $OUT when set. SKIP_PARITY=1 / SKIP_BENCH=1 / SKIP_RENDER=1 leave
# out the parity suite / stage bench / Vulkan part; PARITY_TESTS names parity test functions
# to run alone; E2E_CELLS=N adds the end-to-end CLI run (see below; E2E_STEPS, E2E_KEEP,
# SYNTH_LIMIT and RUN_LIMIT split it over two calls at 11M cells); LEIDEN_CELLS=N adds the
# Leiden flavours on an N-cell blob graph (orrery_bench_leiden: igraph, parallel on the host
# cores and on the device, and whether the device's labels are the host's); E2E_FORMAT=zarr
# writes the end-to-end store as zarr (blosc-lz4: synth is then bound by its parallel
# generator, not by serial deflate); STREAM_CELLS=N adds what streaming the UMAP layout into the
# renderer costs (orrery_bench_umap_stream); RENDER_SIZES lists the render bench's point counts
# ("" for none). DEADLINE=S (seconds from the start, default 540) bounds every step's timeout,
# so that a slow step leaves the later ones out instead of outrunning the lease.
# Usage: run_checks.sh [BENCH_ARGS...]
set -uo pipefail
root=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$root/out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export ORRERY_SHARED=$root/shared QT_QPA_PLATFORM=offscreen
# The CUDA libraries come from the target's toolkit or its Python wheels: add the folder of each
# one the programs miss, and of cuBLAS and cuSOLVER, which the CUDA backend opens by name
# (compute/cuda/libraries.cu; ldd does not list them).
add_folder_of() {  # add_folder_of LIB: adds the first folder holding LIB; its path in $found
  found=$(find /usr/local /opt /usr/lib -name "$1" 2>/dev/null | head -1)
  [ -n "$found" ] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$(dirname "$found")
  echo "$1 -> ${found:-NOT FOUND}"
}
for lib in $(ldd "$root"/bin/* | awk '/not found/ {print $1}' | sort -u); do
  add_folder_of "$lib"
done
# The opened libraries' own dependencies (cuSOLVER needs cuSPARSE, nvJitLink, ...) where the
# folders added so far miss them (e.g. separate Python wheels).
for lib in $(grep -aoE 'libcu(blas|solver)\.so\.[0-9]+' "$root/bin/orrery-cli" | sort -u); do
  add_folder_of "$lib"
  [ -n "$found" ] || continue
  for dep in $(ldd "$found" | awk '/not found/ {print $1}' | sort -u); do
    add_folder_of "$dep"
  done
done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv |
  tee "$out/device.txt"
deadline=${DEADLINE:-540}
# At most $1 seconds, and no later than the deadline; 0 when too little is left to start.
budget() {
  local left=$((deadline - SECONDS))
  [ "$left" -lt 10 ] && { echo 0; return; }
  [ "$1" -lt "$left" ] && echo "$1" || echo "$left"
}
# run_for MAX CMD...: CMD under `timeout`, or a line saying it was left out.
run_for() {
  local t
  t=$(budget "$1")
  shift
  if [ "$t" = 0 ]; then
    echo "LEFT OUT (deadline): $*"
    return 124
  fi
  timeout -k 5 "$t" "$@"
}
if [ -z "${SKIP_PARITY:-}" ]; then
  # One process per test function: a crash or a sticky CUDA error in one leaves the others' results.
  : >"$out/parity.txt"
  for f in ${PARITY_TESTS:-$("$root/bin/test_cuda_parity" -functions | sed 's/()$//')}; do
    run_for 150 "$root/bin/test_cuda_parity" "$f" -o -,txt >>"$out/parity.txt" 2>&1
    echo "parity $f exit: $?" | tee -a "$out/parity.txt"
  done
  grep -E '^(PASS|FAIL!|SKIP|XFAIL|XPASS) ' "$out/parity.txt" | grep -v -E '::(initTestCase|cleanupTestCase)\(\)'
  grep -E -A1 '^FAIL!' "$out/parity.txt" | head -60
  grep -E '^(QWARN|QINFO|QDEBUG)' "$out/parity.txt" | head -40
fi
if [ -z "${SKIP_BENCH:-}" ]; then
  run_for 300 "$root/bin/orrery_bench_gpu" "$@" 2>"$out/bench.err" | tee "$out/bench.json"
  echo "bench exit: ${PIPESTATUS[0]}"
  tail -5 "$out/bench.err"
fi
if [ -n "${LEIDEN_CELLS:-}" ]; then
  run_for 300 "$root/bin/orrery_bench_leiden" "$LEIDEN_CELLS" | tee "$out/leiden.json"
  echo "leiden bench exit: ${PIPESTATUS[0]}"
fi
if [ -n "${E2E_CELLS:-}" ]; then
  # End to end: `orrery-cli run --backend cuda` on a synthetic store of E2E_CELLS x 28k genes
  # made here (and, with E2E_CPU=1, the CPU backend on the same store), reports as JSON. The
  # output leaves out X (--results-only): at 11M cells the store (~31 GB) and a full copy would
  # not fit the machine's 64 GB disk.
  # At atlas scale the store and the run take a call each (E2E_STEPS=synth, then E2E_STEPS=run
  # on the same warm machine): a store already there (synth renames it into place only when
  # whole) is used as it is, and E2E_KEEP=1 keeps it for the next call. SYNTH_LIMIT / RUN_LIMIT
  # bound each step (300 / 540 s, within DEADLINE).
  store=/tmp/orrery-e2e-$E2E_CELLS.${E2E_FORMAT:-h5ad}
  steps=${E2E_STEPS:-synth run}
  # (bash's `time`: the image may lack /usr/bin/time; the reports hold the peak RSS.)
  TIMEFORMAT="synth: %R s wall"
  if [ -e "$store" ]; then
    echo "synth: using $store ($(du -sh "$store" | cut -f1))"
  elif [[ " $steps " == *" synth "* ]]; then
    # A synth killed by the timeout leaves its temporary store (tens of GB at 11M): not twice.
    rm -rf "$store".tmp-*
    time run_for "${SYNTH_LIMIT:-300}" "$root/bin/orrery-cli" synth -o "$store" \
      --cells "$E2E_CELLS" --genes 28000 --quiet
    echo "synth exit: $? ($(du -sh "$store" 2>/dev/null | cut -f1) on disk; $(df -h /tmp | tail -1))"
    [ -e "$store" ] || rm -rf "$store".tmp-*
  fi
  [ -e "$store" ] || echo "e2e: no store at $store, nothing to run"
  for backend in cuda ${E2E_CPU:+cpu}; do
    [[ " $steps " == *" run "* ]] && [ -e "$store" ] || break
    TIMEFORMAT="run $backend: %R s wall"
    time run_for "${RUN_LIMIT:-540}" "$root/bin/orrery-cli" run "$store" -o "/tmp/orrery-e2e-out-$backend.h5ad" \
      --backend "$backend" --quiet --results-only --report "$out/e2e-$backend-$E2E_CELLS.json"
    echo "e2e $backend exit: $?"
    cat "$out/e2e-$backend-$E2E_CELLS.json"
    rm -f "/tmp/orrery-e2e-out-$backend.h5ad"
  done
fi
[ -n "${E2E_CELLS:-}" ] && [ -z "${E2E_KEEP:-}" ] && rm -rf "/tmp/orrery-e2e-$E2E_CELLS."*
[ -n "${SKIP_RENDER:-}" ] && exit 0
# The renderer on the GPU's own Vulkan driver (its loader's libraries carried as .debs, see
# RESULTS.md): CUDA-Vulkan interop and offscreen pixel tests, frame times at 1M and 11M points,
# 1920x1080, sprites and compute splatting.
icd=$(find /usr/local/nvidia /usr/share/vulkan /etc/vulkan -name 'nvidia_icd*.json' 2>/dev/null | head -1)
echo "Vulkan ICD: ${icd:-none found}"
[ -n "$icd" ] && export VK_DRIVER_FILES=$icd && cat "$icd"
export VK_LOADER_DEBUG=error
run_for 120 "$root/bin/test_interop" -o "$out/interop.txt",txt -o -,txt 2>&1 | tail -20
echo "interop exit: ${PIPESTATUS[0]}"
run_for 120 "$root/bin/test_offscreen" -o "$out/offscreen.txt",txt -o -,txt 2>&1 | tail -4
echo "offscreen exit: ${PIPESTATUS[0]}"
if [ -n "${STREAM_CELLS:-}" ]; then
  run_for 200 "$root/bin/orrery_bench_umap_stream" "$STREAM_CELLS" | tee "$out/stream.json"
  echo "umap stream bench exit: ${PIPESTATUS[0]}"
fi
for n in ${RENDER_SIZES-1000000 11000000}; do
  for mode in ${RENDER_MODES:-sprites splat}; do
    run_for 120 "$root/bin/orrery_bench_render" "$n" 60 1920 1080 3 "$mode" | tee -a "$out/render.json"
  done
done
