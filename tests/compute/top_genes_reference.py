"""pct_counts_in_top_N_genes of every pbmc3k cell, computed with numpy from the Matrix Market
file (scanpy's definition: the N largest counts of a cell over its total, in percent).
Usage: top_genes_reference.py MTX_DIR OUT.tsv N [N ...]. Exits 77 without numpy/scipy."""
import gzip
import os
import sys

try:
    import numpy as np
    import scipy.io
except ImportError:
    sys.exit(77)

folder, out, tops = sys.argv[1], sys.argv[2], [int(n) for n in sys.argv[3:]]
path = os.path.join(folder, "matrix.mtx")
m = scipy.io.mmread(path if os.path.exists(path) else gzip.open(path + ".gz")).T.tocsr()
m = m.astype(np.float64)
with open(out, "w") as f:
    for r in range(m.shape[0]):
        row = np.sort(m.data[m.indptr[r]:m.indptr[r + 1]])[::-1]
        total = row.sum()
        f.write("\t".join(f"{100 * row[:n].sum() / total:.17g}" for n in tops) + "\n")
