#!/usr/bin/python3
"""Opens an .h5ad or .zarr written by Orrery with Debian's anndata and checks the scanpy layout."""
import argparse
import sys

try:
    import anndata
    import numpy as np
    import scipy.sparse as sp
except ImportError as e:  # pragma: no cover
    print(f"SKIP: python3-anndata not installed ({e})")
    sys.exit(77)

p = argparse.ArgumentParser()
p.add_argument("path")
p.add_argument("--min-cells", type=int, default=1)
p.add_argument("--max-cells", type=int, default=10**12)
p.add_argument("--genes", type=int, default=None)
a = p.parse_args()
import os
if not os.path.exists(a.path):
    # The producing test was skipped (no ../shared data): nothing to check.
    print(f"SKIP: {a.path} was not written (its producing test skipped)")
    sys.exit(77)

ad = anndata.read_zarr(a.path) if a.path.rstrip("/").endswith(".zarr") else anndata.read_h5ad(a.path)
n, g = ad.shape
assert a.min_cells <= n <= a.max_cells, (n, a.min_cells, a.max_cells)
if a.genes is not None:
    assert g == a.genes, (g, a.genes)
assert sp.issparse(ad.X) and ad.X.format == "csr", type(ad.X)
assert np.isfinite(ad.X.data).all()
# log1p(normalize_total(1e4)): expm1 of each row sums to 1e4.
sums = np.expm1(ad.X[:50].toarray().astype(np.float64)).sum(axis=1)
assert np.allclose(sums, 1e4, rtol=1e-3), sums[:5]
assert ad.obs["leiden"].dtype.name == "category", ad.obs["leiden"].dtype
k = len(ad.obs["leiden"].cat.categories)
assert k >= 2, k
assert len(ad.uns["leiden_colors"]) == k
for col in ["n_genes_by_counts", "total_counts", "pct_counts_mt", "total_counts_mt",
            "pct_counts_in_top_50_genes", "pct_counts_in_top_500_genes"]:
    assert col in ad.obs.columns, col
assert ad.var["highly_variable"].dtype == bool, ad.var["highly_variable"].dtype
assert ad.obsm["X_pca"].shape[0] == n and ad.obsm["X_pca"].shape[1] >= 2
assert ad.obsm["X_umap"].shape == (n, 2)
c = ad.obsp["connectivities"]
assert c.shape == (n, n) and abs(c - c.T).max() < 1e-6
assert ad.obsp["distances"].shape == (n, n)
assert ad.obs_names.is_unique and ad.var_names.is_unique
nb = ad.uns["neighbors"]
assert nb["connectivities_key"] == "connectivities" and nb["params"]["n_neighbors"] == 15, nb
assert nb["params"]["method"] == "umap"
assert 0 < ad.uns["umap"]["params"]["a"] and 0 < ad.uns["umap"]["params"]["b"]
assert "resolution" in ad.uns["leiden"]["params"]
assert ad.uns["leiden"]["params"]["flavor"] == "igraph", ad.uns["leiden"]["params"]
# Integer parameters stay integers, as scanpy writes them.
for section, key in [("neighbors", "n_neighbors"), ("neighbors", "random_state"),
                     ("leiden", "random_state"), ("leiden", "n_iterations")]:
    value = ad.uns[section]["params"][key]
    assert np.issubdtype(type(value), np.integer), (section, key, value, type(value))
assert ad.uns["leiden"]["params"]["n_iterations"] == -1
vr = np.asarray(ad.uns["pca"]["variance_ratio"])
assert len(vr) == ad.obsm["X_pca"].shape[1] and (np.diff(vr) <= 1e-12).all() and vr.sum() < 1
rgg = ad.uns["rank_genes_groups"]
assert rgg["params"]["groupby"] == "leiden" and rgg["params"]["method"].startswith("wilcoxon")
groups = list(rgg["names"].dtype.names)
assert groups == list(ad.obs["leiden"].cat.categories), groups
assert len(rgg["names"]) == g
for grp in groups:
    sc = rgg["scores"][grp]
    assert (np.diff(sc) <= 1e-6).all(), "scores not sorted"
    assert set(rgg["names"][grp]) == set(ad.var_names)
    assert (rgg["pvals_adj"][grp] >= rgg["pvals"][grp] * (1 - 1e-12)).all()
# A top marker of cluster 0 is higher in cluster 0 than elsewhere.
top = rgg["names"][groups[0]][0]
x = ad[:, top].X.toarray().ravel()
in0 = (ad.obs["leiden"] == groups[0]).values
assert x[in0].mean() > x[~in0].mean(), top
print(f"anndata {anndata.__version__} read {a.path}: {n} x {g}, {k} leiden clusters, "
      f"X_pca {ad.obsm['X_pca'].shape}, HVG {int(ad.var['highly_variable'].sum())}")
