#!/usr/bin/env bash
# `orrery run` on CellBench's Drop-seq CSV (genes in rows, gzipped) with its metadata table as
# --obs; Debian's anndata then reads the result: the imported columns typed as pandas would
# (categorical lines, int64 counts, bool flags), Leiden's clusters against the lines, and an
# imported column as hvg.batch_key.
# Usage: run_cellbench.sh ORRERY SOURCE_DIR OUT.h5ad
set -euo pipefail
orrery=$1 src=$2 out=$3
shared=${ORRERY_SHARED:-$src/../shared}
data=$shared/data/cellbench
if [ ! -f "$data/sc_dropseq.count.csv.gz" ]; then
  echo "SKIP: CellBench not found at $data (set ORRERY_SHARED)"
  exit 77
fi
params=${out%.*}-params.json
echo '{"qc": {"max_genes": 0}}' >"$params"
rm -rf "$out"
"$orrery" run "$data/sc_dropseq.count.csv.gz" -o "$out" --params "$params" --backend cpu \
  --obs "$data/sc_dropseq.metadata.csv.gz" --quiet
/usr/bin/python3 - "$out" <<'PY'
import collections, sys
try:
    import anndata
except ImportError as e:
    print(f"SKIP: python3-anndata not installed ({e})")
    sys.exit(77)
a = anndata.read_h5ad(sys.argv[1])
assert a.shape == (225, 15113), a.shape
obs = a.obs
assert obs["cell_line_demuxlet"].dtype.name == "category", obs.dtypes
assert list(obs["cell_line_demuxlet"].cat.categories) == ["H1975", "H2228", "HCC827"]
assert obs["number_of_genes"].dtype.name == "int64", obs.dtypes
assert obs["non_mt_percent"].dtype.name == "float64", obs.dtypes
assert obs["outliers"].dtype.name == "bool" and not obs["outliers"].any(), obs.dtypes
assert obs.loc["CELL_000002", "cell_line_demuxlet"] == "HCC827"
assert obs.loc["CELL_000001", "number_of_genes"] == 9284
sng = obs[obs["demuxlet_cls"] == "SNG"]
assert len(sng) == 210, len(sng)
pairs = collections.Counter(zip(sng["leiden"], sng["cell_line_demuxlet"]))
best = {}
for (cluster, line), n in pairs.items():
    if n > best.get(cluster, ("", 0))[1]:
        best[cluster] = (line, n)
right = sum(n for _, n in best.values())
assert right / len(sng) >= 0.97, (right, pairs)
assert len({line for line, _ in best.values()}) == 3, best
print("cellbench ok:", len(best), "clusters,", right, "of", len(sng), "singlets in their line's")
PY
# An imported column as the HVG batch key (demuxlet's singlet / doublet call: two batches).
echo '{"qc": {"max_genes": 0}, "hvg": {"batch_key": "demuxlet_cls"}}' >"$params"
"$orrery" run "$data/sc_dropseq.count.csv.gz" -o "$out" --params "$params" --backend cpu \
  --obs "$data/sc_dropseq.metadata.csv.gz" --quiet
/usr/bin/python3 - "$out" <<'PY'
import sys
import anndata
v = anndata.read_h5ad(sys.argv[1]).var
n = v["highly_variable_nbatches"]
assert n.min() == 0 and n.max() == 2, n.describe()
print("batch key from --obs ok:", n.value_counts().to_dict())
PY
