#!/usr/bin/python3
"""Checks a zarr v3 store written by `orrery run --zarr-format 3` against the v2 store of the same
run as Debian's anndata (0.8, zarr-python 2) reads it. Debian has no zarr-python 3, so the v3
store is decoded here from the v3 spec with numcodecs and numpy only: zarr.json per node, regular
chunk grid, default chunk keys (c/i/j), the bytes or vlen-utf8 codec then blosc, and the
"structured" data type (zarr-python 3.1's form) for anndata's record arrays; each node's
metadata is also checked field by field (data type, fill value, codec configurations).
Usage: check_zarr_v3.py V3.zarr V2.zarr"""
import base64
import json
import os
import sys

try:
    import anndata
    import numcodecs
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"SKIP: python3-anndata / numcodecs not installed ({e})")
    sys.exit(77)

v3, v2 = sys.argv[1], sys.argv[2]
for p in (v3, v2):
    if not os.path.exists(p):
        print(f"SKIP: {p} was not written (its producing test skipped)")
        sys.exit(77)

CORE = {"bool": "?", "int8": "i1", "int32": "<i4", "int64": "<i8", "float32": "<f4",
        "float64": "<f8"}


def numpy_type(t):
    if isinstance(t, str):
        assert t in CORE, t
        return np.dtype(CORE[t])
    assert set(t) == {"name", "configuration"}, t
    if t["name"] == "fixed_length_utf32":
        assert set(t["configuration"]) == {"length_bytes"}, t
        length = t["configuration"]["length_bytes"]
        assert isinstance(length, int) and length > 0 and length % 4 == 0, t
        return np.dtype(f"<U{length // 4}")
    assert t["name"] == "structured" and set(t["configuration"]) == {"fields"}, t
    fields = t["configuration"]["fields"]
    assert all(isinstance(f, list) and len(f) == 2 and isinstance(f[0], str) for f in fields), t
    return np.dtype([(name, numpy_type(ft)) for name, ft in fields])


def check_fill(m):
    """The fill value is valid JSON for the data type (zarr v3 core spec, zarr-python 3.1)."""
    t, fill = m["data_type"], m["fill_value"]
    if t == "bool":
        assert isinstance(fill, bool), m
    elif t in ("int8", "int32", "int64"):
        assert isinstance(fill, int) and not isinstance(fill, bool), m
    elif t in ("float32", "float64"):
        assert isinstance(fill, (int, float)) and not isinstance(fill, bool), m
    elif t == "string":
        assert isinstance(fill, str), m
    else:  # structured: base64 of one record
        raw = base64.b64decode(fill, validate=True)
        assert len(raw) == numpy_type(t).itemsize, (len(raw), numpy_type(t).itemsize)


def check_codecs(m, strings):
    codecs = m["codecs"]
    assert all(set(c) <= {"name", "configuration"} for c in codecs), codecs
    first = codecs[0]
    if strings:
        assert first == {"name": "vlen-utf8", "configuration": {}}, first
    else:
        assert first["name"] == "bytes" and first["configuration"] in (
            {"endian": "little"}, {"endian": "big"}), first
    for c in codecs[1:]:
        assert c["name"] == "blosc", c
        conf = c["configuration"]
        assert set(conf) == {"cname", "clevel", "shuffle", "typesize", "blocksize"}, conf
        assert conf["cname"] in ("lz4", "lz4hc", "blosclz", "zstd", "snappy", "zlib"), conf
        assert conf["shuffle"] in ("noshuffle", "shuffle", "bitshuffle"), conf
        assert isinstance(conf["typesize"], int) and conf["typesize"] >= 1, conf
        assert isinstance(conf["clevel"], int) and 0 <= conf["clevel"] <= 9, conf


def meta(path):
    with open(os.path.join(v3, path, "zarr.json")) as f:
        m = json.load(f)
    assert m["zarr_format"] == 3, (path, m)
    return m


def read(path):
    m = meta(path)
    assert m["node_type"] == "array", (path, m["node_type"])
    assert m["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "/"}}
    shape, chunks = m["shape"], m["chunk_grid"]["configuration"]["chunk_shape"]
    assert m["chunk_grid"]["name"] == "regular" and len(chunks) == len(shape), (path, m)
    assert all(c == s for c, s in zip(chunks[1:], shape[1:])), "chunked along axis 0 only"
    codecs = [c["name"] for c in m["codecs"]]
    strings = m["data_type"] == "string"
    assert codecs[0] == ("vlen-utf8" if strings else "bytes"), (path, codecs)
    if not strings:
        assert m["codecs"][0]["configuration"]["endian"] == "little"
    assert codecs[1:] in ([], ["blosc"]), (path, codecs)
    check_codecs(m, strings)
    check_fill(m)
    blosc = numcodecs.Blosc() if codecs[1:] else None
    dtype = object if strings else numpy_type(m["data_type"])
    if not shape:  # 0-d: one chunk called "c"
        keys, per = ["c"], 1
    else:
        n_chunks = -(-shape[0] // chunks[0]) if shape[0] else 0
        keys = ["c/" + "/".join([str(i)] + ["0"] * (len(shape) - 1)) for i in range(n_chunks)]
        per = chunks[0]
    rows = []
    for key in keys:
        with open(os.path.join(v3, path, key), "rb") as f:
            raw = f.read()
        if blosc:
            raw = blosc.decode(raw)
        if strings:
            part = numcodecs.VLenUTF8().decode(raw)
        else:
            part = np.frombuffer(bytes(raw), dtype=dtype)
        inner = int(np.prod(shape[1:])) if shape else 1
        assert len(part) == per * inner, (path, key, len(part), per, inner)
        rows.append(np.asarray(part).reshape([per] + list(shape[1:])) if shape else part)
    out = np.concatenate(rows)[: shape[0]] if shape else np.asarray(rows[0]).reshape(())
    return out, m["attributes"]


# A pure v3 store: every node has zarr.json, no v2 metadata file anywhere.
for root, dirs, files in os.walk(v3):
    assert not {".zarray", ".zgroup", ".zattrs", ".zmetadata"} & set(files), (root, files)
    rel = os.path.relpath(root, v3)
    if not any(p == "c" for p in rel.split(os.sep)):
        assert "zarr.json" in files, root
assert meta("")["attributes"]["encoding-type"] == "anndata"

ad = anndata.read_zarr(v2)
data, attrs = read("X/data")
indices, _ = read("X/indices")
indptr, _ = read("X/indptr")
x_attrs = meta("X")["attributes"]
assert x_attrs["encoding-type"] == "csr_matrix" and tuple(x_attrs["shape"]) == ad.shape, x_attrs
assert np.array_equal(data, ad.X.data) and np.array_equal(indices, ad.X.indices)
assert np.array_equal(indptr, ad.X.indptr)
index, _ = read("obs/_index")
assert list(index) == list(ad.obs_names)
codes, _ = read("obs/leiden/codes")
categories, cat_attrs = read("obs/leiden/categories")
assert meta("obs/leiden")["attributes"]["encoding-type"] == "categorical"
assert list(categories) == list(ad.obs["leiden"].cat.categories)
assert np.array_equal(codes, ad.obs["leiden"].cat.codes.to_numpy())
hvg, _ = read("var/highly_variable")
assert np.array_equal(hvg, ad.var["highly_variable"].to_numpy())
umap, _ = read("obsm/X_umap")
assert np.array_equal(umap, ad.obsm["X_umap"])
method, method_attrs = read("uns/rank_genes_groups/params/method")
assert method_attrs["encoding-type"] == "string" and str(method) == "wilcoxon", (method, method_attrs)
colors, _ = read("uns/leiden_colors")
assert list(colors) == list(ad.uns["leiden_colors"])
# anndata's rec-arrays as the structured data type, field for field equal to the v2 ones.
for key in ("names", "scores", "pvals_adj", "logfoldchanges"):
    rec, rec_attrs = read(f"uns/rank_genes_groups/{key}")
    assert rec_attrs["encoding-type"] == "rec-array", rec_attrs
    ref = ad.uns["rank_genes_groups"][key]
    assert rec.dtype.names == ref.dtype.names, (key, rec.dtype.names, ref.dtype.names)
    for field in ref.dtype.names:
        assert np.array_equal(rec[field], ref[field]), (key, field)
print(f"zarr v3 ok: {ad.n_obs} cells, {ad.n_vars} genes, {len(categories)} clusters, "
      f"{len(rec.dtype.names)} marker groups equal to the v2 store")
