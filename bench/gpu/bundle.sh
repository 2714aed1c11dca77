#!/usr/bin/env bash
# Packs what the GPU checks need for a machine without this one's Debian libraries (the lent
# device machine runs another distribution): the built GPU parity and interop tests, GPU and
# render benches
# (the Vulkan loader comes along; the driver is the target's), every
# shared library they load except the C library's own, and pbmc3k for the pipeline parity case.
# Usage: bench/gpu/bundle.sh [BUILD_DIR] [OUT_DIR]   (default build, .devbundle)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
out=${2:-$here/.devbundle}
shared=${ORRERY_SHARED:-$here/../shared}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$stage/shared/data/pbmc3k/filtered_gene_bc_matrices" "$out"
programs=("$build/tests/test_cuda_parity" "$build/tests/test_interop" "$build/tests/test_offscreen"
          "$build/orrery_bench_gpu" "$build/orrery-cli"
          "$build/orrery_bench_render" "$build/orrery_bench_leiden"
          "$build/orrery_bench_umap_stream")
cp "${programs[@]}" "$stage/bin/"
# glibc stays the target's own (it is newer there and backward compatible), and so do the CUDA
# libraries (hundreds of MiB; run_checks.sh finds the target's toolkit).
ldd "${programs[@]}" | awk '$3 ~ /^\// {print $3}' | sort -u |
  grep -vE '/(libc|libm|libdl|libpthread|librt|libresolv|ld-linux-x86-64)\.so|^/usr/local/cuda' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
cp -r "$shared/data/pbmc3k/filtered_gene_bc_matrices/hg19" \
  "$stage/shared/data/pbmc3k/filtered_gene_bc_matrices/"
cp "$here/bench/gpu/run_checks.sh" "$stage/"
XZ_OPT=-T0 tar -C "$stage" -cJf "$out/orrery-gpu.tar.xz" .
ls -la "$out/orrery-gpu.tar.xz"
