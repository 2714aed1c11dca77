"""Compares a --results-only output of the pbmc3k run with the full output of the same run:
anndata reads it with X None and no layers or raw, the same shape, obs, var, obsm, obsp and
uns (rank_genes_groups included), and holds no X at all; `orrery info` describes it
and `orrery run` on it is an error naming X.
Usage: check_results_only.py ORRERY RESULTS_ONLY.h5ad FULL.h5ad. Exits 77 without anndata."""
import os
import subprocess
import sys

try:
    import anndata
    import h5py
    import numpy as np
except ImportError:
    sys.exit(77)

orrery, small_path, full_path = sys.argv[1:4]
small, full = anndata.read_h5ad(small_path), anndata.read_h5ad(full_path)
assert small.X is None, type(small.X)
assert small.shape == full.shape == (2638, 13656), (small.shape, full.shape)
assert not small.layers and small.raw is None
assert small.obs.equals(full.obs) and small.var.equals(full.var)
for key in ("X_pca", "X_umap"):
    assert np.array_equal(small.obsm[key], full.obsm[key]), key
for key in ("connectivities", "distances"):
    assert (small.obsp[key] != full.obsp[key]).nnz == 0, key
a, b = small.uns["rank_genes_groups"], full.uns["rank_genes_groups"]
for field in ("names", "scores", "pvals_adj"):
    assert np.array_equal(np.asarray(a[field].tolist()), np.asarray(b[field].tolist())), field
assert list(small.uns["leiden_colors"]) == list(full.uns["leiden_colors"])
with h5py.File(small_path, "r") as f:  # nothing of X, not even an empty group
    assert "X" not in f and "raw" not in f, list(f)
ratio = os.path.getsize(small_path) / os.path.getsize(full_path)
assert ratio < 0.75, ratio  # at pbmc3k the markers of every gene are most of what is left

info = subprocess.run([orrery, "info", small_path], capture_output=True, text=True)
assert info.returncode == 0, info.stderr
assert "none (an AnnData without X)" in info.stdout and "2638 cells x 13656 genes" in info.stdout, info.stdout
rerun = subprocess.run([orrery, "run", small_path, "-o", small_path + ".again.h5ad", "--quiet"],
                       capture_output=True, text=True)
assert rerun.returncode == 2 and "X: the store has no X" in rerun.stderr, rerun.stderr
print(f"results-only output: {ratio:.1%} of the full one, same results")
