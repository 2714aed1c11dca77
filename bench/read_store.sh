#!/usr/bin/env bash
# Reader benchmark: `orrery synth` stores (h5ad and zarr) of N cells, then `orrery check` streams
# every row of X in chunks of the given budget (reading ahead on a second thread, as the pipeline
# does). One JSON object per store: rows/s, open/read seconds, and the process's peak RSS (GNU
# time) next to the chunk budget, which the issue bounds at budget + 2 GiB.
# Usage: bench/read_store.sh [--genes G] [--chunk-mib M] [--formats "h5ad zarr"] N [N ...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
orrery=${ORRERY:-$here/build/orrery}
genes=28000 chunk=256 formats="h5ad zarr" sizes=()
while [ $# -gt 0 ]; do
  case $1 in
    --genes) genes=$2; shift 2 ;;
    --chunk-mib) chunk=$2; shift 2 ;;
    --formats) formats=$2; shift 2 ;;
    *) sizes+=("$1"); shift ;;
  esac
done
[ ${#sizes[@]} -gt 0 ] || sizes=(100000)
work=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$work"
for n in "${sizes[@]}"; do
  for fmt in $formats; do
    store=$work/synth-$n-$genes.$fmt
    t0=$(date +%s.%N)
    [ -e "$store" ] || "$orrery" synth -o "$store" --cells "$n" --genes "$genes" --quiet
    t1=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$work/rss" "$orrery" check "$store" --chunk-mib "$chunk" --quiet \
      > "$work/check.json"
    /usr/bin/python3 - "$work/check.json" "$(cat "$work/rss")" "$store" "$(echo "$t1 - $t0" | bc)" <<'PY'
import json, os, subprocess, sys
r = json.load(open(sys.argv[1]))
size = int(subprocess.run(["du", "-sb", sys.argv[3]], capture_output=True, text=True).stdout.split()[0])
peak = int(sys.argv[2]) / 1024
print(json.dumps({
    "store": os.path.basename(sys.argv[3]), "format": r["format"], "cells": r["rows"],
    "genes": r["cols"], "nnz": r["nnz"], "store_gib": round(size / 2**30, 2),
    "synth_seconds": round(float(sys.argv[4]), 1), "chunk_mib": r["chunk_mib"],
    "rows_per_chunk": r["rows_per_chunk"], "open_seconds": round(r["open_seconds"], 2),
    "read_seconds": round(r["read_seconds"], 1), "rows_per_second": round(r["rows_per_second"]),
    "peak_rss_mib": round(peak, 1), "rss_above_budget_mib": round(peak - r["chunk_mib"], 1)}))
PY
  done
done
