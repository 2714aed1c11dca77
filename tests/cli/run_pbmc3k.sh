#!/usr/bin/env bash
# `orrery run` on pbmc3k (10x mtx) with the reference parameters; checks the report's counts.
# Usage: run_pbmc3k.sh ORRERY SOURCE_DIR OUT.h5ad|OUT.zarr [RUN_OPTION...]
set -euo pipefail
orrery=$1 src=$2 out=$3
shift 3
shared=${ORRERY_SHARED:-$src/../shared}
data=$shared/data/pbmc3k/filtered_gene_bc_matrices/hg19
if [ ! -d "$data" ]; then echo "SKIP: pbmc3k not found at $data (set ORRERY_SHARED)"; exit 77; fi
report=${out%.*}-report.json
rm -rf "$out" "$report"
"$orrery" run "$data" -o "$out" --report "$report" --backend cpu "$@"
/usr/bin/python3 - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["n_cells_after_filter"] == 2638, r["n_cells_after_filter"]
assert r["n_genes_after_filter"] == 13656, r["n_genes_after_filter"]
assert r["n_hvg"] == 2000, r["n_hvg"]
assert r["leiden_flavor"] == "igraph", r["leiden_flavor"]  # auto on the CPU backend
stages = [s["stage"] for s in r["stages"]]
for s in ["qc", "filter", "hvg", "pca", "neighbors", "umap", "leiden"]:
    assert s in stages, (s, stages)
assert all(s["seconds"] >= 0 and s["peak_rss_mib"] > 0 for s in r["stages"])
# Waiting for the store's chunks is part of a stage's time; stages that read none wait none.
assert all(0 <= s["read_wait_seconds"] <= s["seconds"] + 1e-6 for s in r["stages"]), r["stages"]
waits = {s["stage"]: s["read_wait_seconds"] for s in r["stages"]}
assert waits["neighbors"] == 0 and waits["umap"] == 0 and waits["leiden"] == 0, waits
assert waits["qc"] > 0, waits  # the first chunk is always waited for
# A device's staging copies and waits are part of a stage's time; the CPU backend has none.
assert all(0 <= s["staging_seconds"] + s["device_wait_seconds"] <= s["seconds"] + 1e-6
           for s in r["stages"]), r["stages"]
if r["backend"].startswith("cpu"):
    assert all(s["staging_seconds"] == 0 and s["device_wait_seconds"] == 0 for s in r["stages"])
# Outside the stages: opening the store and writing the output (X among it: never instant).
assert 0 <= r["open_seconds"] < 60 and r["write_seconds"] > 0, (r["open_seconds"], r["write_seconds"])
print("report ok:", {s["stage"]: round(s["seconds"], 2) for s in r["stages"]})
PY
