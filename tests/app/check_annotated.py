#!/usr/bin/python3
"""Checks an .h5ad saved by the GUI after cluster edits: PATH N_CATEGORIES N_T_CELLS."""
import sys

try:
    import anndata
except ImportError:
    sys.exit(77)

ad = anndata.read_h5ad(sys.argv[1])
cats = list(ad.obs["leiden"].cat.categories)
colors = list(ad.uns["leiden_colors"])
assert cats[0] == "T cells", cats
assert "#ff00ff" in colors, colors
assert len(cats) == int(sys.argv[2]) == len(colors), (cats, colors)
assert (ad.obs["leiden"] == "T cells").sum() == int(sys.argv[3])
