#!/usr/bin/env bash
# Pipeline benchmark on synthetic stores: for each cell count, `orrery synth` a store, then
# `orrery run` it and print one JSON object per size with synth time, per-stage seconds, CPU
# seconds and peak RSS (from the run's --report), plus the process's peak RSS from GNU time.
# Usage: bench/run_pipeline.sh [--genes G] [--backend cpu|cuda|auto] N [N ...]   (default 20000)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
orrery=${ORRERY:-$here/build/orrery}
genes=2000 backend=cpu sizes=()
while [ $# -gt 0 ]; do
  case $1 in
    --genes) genes=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    *) sizes+=("$1"); shift ;;
  esac
done
[ ${#sizes[@]} -gt 0 ] || sizes=(20000)
work=${BENCH_DIR:-$(mktemp -d)}
for n in "${sizes[@]}"; do
  store=$work/synth-$n-$genes.h5ad
  t0=$(date +%s.%N)
  [ -f "$store" ] || "$orrery" synth -o "$store" --cells "$n" --genes "$genes" --quiet
  t1=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/rss" "$orrery" run "$store" -o "$work/out-$n.h5ad" \
    --backend "$backend" --report "$work/report-$n.json" --quiet
  /usr/bin/python3 - "$work/report-$n.json" "$(echo "$t1 - $t0" | bc)" "$(cat "$work/rss")" "$(nproc)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({
    "cells": r["n_cells"], "genes": r["n_genes"], "backend": r["backend"], "cores": int(sys.argv[4]),
    "synth_seconds": round(float(sys.argv[2]), 2),
    "stages": {s["stage"]: {"seconds": round(s["seconds"], 3), "cpu_seconds": round(s["cpu_seconds"], 3),
                            "read_wait_seconds": round(s.get("read_wait_seconds", 0), 3),
                            "staging_seconds": round(s.get("staging_seconds", 0), 3),
                            "device_wait_seconds": round(s.get("device_wait_seconds", 0), 3),
                            "peak_rss_mib": round(s["peak_rss_mib"], 1)} for s in r["stages"]},
    "total_seconds": round(sum(s["seconds"] for s in r["stages"]), 2),
    "open_seconds": round(r.get("open_seconds", 0), 2), "write_seconds": round(r.get("write_seconds", 0), 2),
    "peak_rss_mib": round(int(sys.argv[3]) / 1024, 1)}))
PY
done
