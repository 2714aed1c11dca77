"""The parts of an AnnData that a result copies from its input: raw, varm, obsp and uns.

make IN OUT: adds to the AnnData at IN a raw (all genes, with a raw.var column), varm["PCs"]
  (float32), obsp["spatial"] (a sparse cell graph), nested uns entries (strings, numbers,
  booleans, arrays), a stale uns["leiden"] that a result must replace, and pandas' nullable obs
  columns (boolean and Int64, with missing values); writes OUT (.h5ad or .zarr by extension).
check IN OUT: OUT (a result of IN) must hold IN's raw for its cells, varm for its genes, obsp for
  its cells both ways, every uns entry unchanged except the ones the run wrote, and the nullable
  obs columns with their dtypes and missing values for its cells.
Exits 77 without anndata."""
import sys

try:
    import anndata
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
except ImportError:
    sys.exit(77)


def read(path):
    return anndata.read_zarr(path) if path.rstrip("/").endswith(".zarr") else anndata.read_h5ad(path)


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


mode, src, dst = sys.argv[1:4]
if mode == "make":
    a = read(src)
    rng = np.random.default_rng(3)
    a.raw = a
    a.raw.var["raw_note"] = [f"note{i}" for i in range(a.n_vars)]
    a.varm["PCs"] = rng.standard_normal((a.n_vars, 3)).astype(np.float32)
    a.obsp["spatial"] = sp.random(a.n_obs, a.n_obs, density=0.01, format="csr", dtype=np.float32,
                                  random_state=4)
    a.uns["title"] = "lymph node, donor 7"
    a.uns["spatial_meta"] = {"scale": 0.25, "flags": np.array([True, False, True]),
                             "ids": np.arange(5, dtype=np.int64),
                             "names": np.array(["a", "b"], dtype=object),
                             "nested": {"unit": "um", "count": 3}}
    a.uns["leiden"] = {"stale": "from an earlier run"}
    a.obs["doublet"] = pd.array(
        [None if i % 7 == 0 else i % 3 == 0 for i in range(a.n_obs)], dtype="boolean")
    a.obs["donor_age"] = pd.array(
        [None if i % 5 == 0 else 20 + i % 50 for i in range(a.n_obs)], dtype="Int64")
    a.obs["lane"] = pd.array(
        [None if i % 9 == 0 else i % 4 for i in range(a.n_obs)], dtype="Int8")
    if dst.rstrip("/").endswith(".zarr"):
        a.write_zarr(dst)
    else:
        a.write_h5ad(dst)
    sys.exit(0)

a, b = read(src), read(dst)
cells = a.obs_names.get_indexer(b.obs_names)
genes = a.var_names.get_indexer(b.var_names)
if (cells < 0).any() or (genes < 0).any():
    fail("result cells or genes are not the input's")
if b.raw is None:
    fail("result has no raw")
if b.raw.shape != (b.n_obs, a.raw.n_vars):
    fail(f"raw shape {b.raw.shape}")
if (b.raw.X != a.raw.X[cells]).nnz:
    fail("raw.X differs")
if list(b.raw.var["raw_note"]) != list(a.raw.var["raw_note"]):
    fail("raw.var differs")
if not np.array_equal(b.varm["PCs"], a.varm["PCs"][genes]) or b.varm["PCs"].dtype != np.float32:
    fail("varm PCs differ")
if (b.obsp["spatial"] != a.obsp["spatial"][cells][:, cells]).nnz:
    fail("obsp spatial differs")
if b.uns["title"] != a.uns["title"]:
    fail("uns title differs")
m, n = b.uns["spatial_meta"], a.uns["spatial_meta"]
if (m["scale"] != n["scale"] or list(m["flags"]) != list(n["flags"])
        or list(m["ids"]) != list(n["ids"]) or list(m["names"]) != list(n["names"])
        or m["nested"]["unit"] != "um" or m["nested"]["count"] != 3):
    fail(f"uns spatial_meta differs: {m}")
if "stale" in b.uns["leiden"] or "params" not in b.uns["leiden"]:
    fail("uns leiden was not replaced by the run's")
for column, dtype in (("doublet", "boolean"), ("donor_age", "Int64"), ("lane", "Int8")):
    got, want = b.obs[column], a.obs[column].iloc[cells]
    if str(got.dtype) != dtype:
        fail(f"obs {column}: dtype {got.dtype}, want {dtype}")
    if not (got.isna().values == want.isna().values).all() or got.isna().sum() == 0:
        fail(f"obs {column}: missing values differ")
    if not (got.dropna().values == want.dropna().values).all():
        fail(f"obs {column}: values differ")
