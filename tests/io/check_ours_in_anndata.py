"""Reads the store test_zarr's ourStoresReadBack wrote with AnnDataWriter (.h5ad or zarr v2)
with Debian's anndata and checks every value against the same formulas the test wrote them
from: X, obs (categorical with a missing value, bool, int64, float64), var, obsm, obsp, uns.
Usage: check_ours_in_anndata.py STORE. Exits 77 when anndata is missing."""
import sys

try:
    import anndata
    import numpy as np
except ImportError:
    sys.exit(77)

path = sys.argv[1]
a = anndata.read_h5ad(path) if path.endswith(".h5ad") else anndata.read_zarr(path)
n, g = 150_000, 40
assert a.shape == (n, g), a.shape

r = np.arange(n)
want = np.zeros((n, g), dtype=np.float32)
for k in range(6):
    c = r % 3 + 7 * k
    ok = c < g
    want[r[ok], c[ok]] = (r[ok] % 1000).astype(np.float32) * np.float32(0.5) + c[ok].astype(np.float32)
X = a.X.tocsr()
assert X.dtype == np.float32, X.dtype
# Every written entry is stored (row 0 holds an explicit 0 at column 0).
assert X.nnz == sum(int(((r % 3 + 7 * k) < g).sum()) for k in range(6)), X.nnz
assert np.array_equal(X.toarray(), want)

assert list(a.obs_names[:3]) == ["cell-0", "cell-1", "cell-2"] and a.obs_names[-1] == f"cell-{n-1}"
label = a.obs["label"]
assert str(label.dtype) == "category" and list(label.cat.categories) == ["α", "β"]
codes = label.cat.codes.to_numpy()
assert codes[7] == -1 and (np.delete(codes, 7) == 1).all()
assert a.obs["kept"].dtype == bool and a.obs["kept"].all()
assert a.obs["count"].dtype == np.int64 and (a.obs["count"] == 42).all()
assert a.obs["score"].dtype == np.float64 and (a.obs["score"] == -0.25).all()
assert list(a.var_names[:2]) == ["gene-0", "gene-1"]
assert a.var["means"].dtype == np.float32 and (a.var["means"] == 1.5).all()

umap = a.obsm["X_umap"]
assert umap.shape == (n, 2) and umap.dtype == np.float32
assert np.array_equal(umap.ravel(), np.arange(2 * n, dtype=np.float32) * np.float32(0.1))

G = a.obsp["connectivities"].tocsr()
assert G.shape == (n, n)
assert np.array_equal(G.indices, (r + 1) % n) and np.array_equal(G.indptr, np.arange(n + 1))
assert np.array_equal(G.data, np.full(n, 0.5, dtype=G.dtype))

assert list(a.uns["label_colors"]) == ["#ff0000", "#00ff00"]
assert a.uns["note"] == "second"
print("anndata reads every value of", path)
