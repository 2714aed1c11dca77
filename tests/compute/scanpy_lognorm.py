"""pbmc3k log-normalised exactly as the reference run did it in scanpy 1.9.6, with numpy's own
float32 arithmetic, and scipy's rank-sum statistics on those values.

scanpy's normalize_total + log1p are float32 numpy operations; numpy's float32 log1p is a SIMD
routine on AVX-512 hosts and libm's elsewhere, and the two differ by one ulp for a few percent of
inputs. Wilcoxon ranks see those ulps wherever values are nearly tied, so the p-values of a
pipeline are only comparable to 1e-6 on identical inputs. This script makes those inputs.

Usage: scanpy_lognorm.py MTX_DIR LEIDEN_TSV OUT.h5ad OUT_STATS.tsv [portable]
"portable": numpy's AVX-512 routines are switched off (NPY_DISABLE_CPU_FEATURES), so float32
log1p is the portable one (libm's log1pf) that scanpy gets on any CPU without AVX-512.
OUT.h5ad: the filtered cells x genes, X = log1p(normalize_total(counts, 1e4)) as float32 CSR.
OUT_STATS.tsv: group, gene, z-score, p-value (scipy's rankdata and normal tail, as scanpy),
for the Leiden groups of LEIDEN_TSV vs the rest, without tie correction.
Exits 77 when numpy, scipy or anndata is missing."""
import gzip
import os
import sys

if sys.argv[5:] == ["portable"]:  # before numpy is imported
    os.environ["NPY_DISABLE_CPU_FEATURES"] = (
        "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL")

try:
    import anndata
    import numpy as np
    import scipy.io
    from scipy.stats import norm, rankdata
except ImportError:
    sys.exit(77)
except Exception as e:  # e.g. a numpy whose baseline has AVX-512 refuses to switch it off
    print(f"numpy's AVX-512 routines cannot be switched off here: {e}", file=sys.stderr)
    sys.exit(77)
if sys.argv[5:] == ["portable"]:
    try:
        from numpy.core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        features = {}
    if features.get("AVX512F") or features.get("AVX512_SKX"):
        print("numpy ignored NPY_DISABLE_CPU_FEATURES", file=sys.stderr)
        sys.exit(77)

folder, leiden_tsv, out_h5ad, out_stats = sys.argv[1:5]
path = os.path.join(folder, "matrix.mtx")
X = scipy.io.mmread(path if os.path.exists(path) else gzip.open(path + ".gz")).T.tocsr()
X = X.astype(np.float32)
with open(os.path.join(folder, "genes.tsv")) as f:
    genes = [line.rstrip("\n").split("\t")[1] for line in f]
with open(os.path.join(folder, "barcodes.tsv")) as f:
    barcodes = np.array([line.strip() for line in f])
adata = anndata.AnnData(X)
adata.obs_names = barcodes
adata.var_names = genes
adata.var_names_make_unique()

# calculate_qc_metrics + the reference filters (README of the reference).
counts = np.asarray(X.sum(axis=1)).ravel()
mito = np.asarray(adata[:, adata.var_names.str.startswith("MT-")].X.sum(axis=1)).ravel()
n_genes = np.diff(X.indptr)
keep = (n_genes >= 200) & (n_genes <= 2500) & (100 * mito / counts < 5)
adata = adata[keep].copy()
adata = adata[:, np.asarray((adata.X > 0).sum(axis=0)).ravel() >= 3].copy()

# normalize_total(target_sum=1e4) as scanpy 1.9.6's _normalize_data, then log1p, all float32.
X = adata.X
size = np.asarray(X.sum(axis=1)).ravel()
size = size / 1e4
X.data *= np.repeat(1 / size, np.diff(X.indptr))
np.log1p(X.data, out=X.data)
adata.X = X
adata.write_h5ad(out_h5ad)

labels = {}
with open(leiden_tsv) as f:
    next(f)
    for line in f:
        cell, group = line.rstrip("\n").split("\t")[:2]
        labels[cell] = int(group)
groups = np.array([labels[c] for c in adata.obs_names])
ranks = rankdata(X.toarray(), axis=0)
n = len(groups)
with open(out_stats, "w") as f:
    for g in range(groups.max() + 1):
        inside = groups == g
        n1 = int(inside.sum())
        n2 = n - n1
        z = (ranks[inside].sum(axis=0) - n1 * (n + 1) / 2.0) / np.sqrt(n1 * n2 * (n + 1) / 12.0)
        p = 2 * norm.sf(np.abs(z))
        for name, zi, pi in zip(adata.var_names, z, p):
            f.write(f"{g}\t{name}\t{zi:.17g}\t{pi:.17g}\n")
