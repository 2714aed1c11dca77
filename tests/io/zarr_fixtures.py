"""Writes the zarr stores test_zarr reads, next to an h5ad of the same AnnData.

v2 stores come from Debian's anndata (0.8) and zarr (2.13), re-chunked and re-compressed with
every codec numcodecs has. zarr-python 3 is not packaged here, so the v3 stores are laid out by
this script from the v3 specification: zarr.json metadata, "c/i/j" chunk keys, bytes / gzip /
zstd / blosc / crc32c codecs, and sharding_indexed with an index at the end of each shard.
Usage: zarr_fixtures.py OUTDIR. Exits 77 when anndata or zarr is missing.
"""
import json
import os
import sys

try:
    import anndata
    import numcodecs
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
    import zarr
except ImportError:
    sys.exit(77)

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(11)
n_obs, n_vars = 61, 33
dense = rng.poisson(0.5, size=(n_obs, n_vars)).astype(np.float32)
dense[dense > 0] += rng.random(int((dense > 0).sum())).astype(np.float32)
cell_type = pd.Categorical(rng.choice(["T", "B", "NK"], n_obs), categories=["B", "NK", "T"])
cell_type[3] = np.nan
obs = pd.DataFrame(
    {
        "cell_type": cell_type,
        "n_genes": rng.integers(0, 500, n_obs).astype(np.int64),
        "score": rng.normal(size=n_obs),
        "flag": rng.random(n_obs) > 0.5,
        "note": [f"cell-{i}-é-Ω" for i in range(n_obs)],
        "batch_count": pd.array([None if i % 7 == 0 else i for i in range(n_obs)], dtype="Int64"),
    },
    index=[f"AAAC-{i}" for i in range(n_obs)],
)
var = pd.DataFrame(
    {
        "gene_ids": [f"ENSG{i:05d}" for i in range(n_vars)],
        "highly_variable": rng.random(n_vars) > 0.7,
        "means": rng.random(n_vars).astype(np.float32),
    },
    index=[f"Gene{i}" for i in range(n_vars)],
)
layout = sys.argv[2] if len(sys.argv) > 2 else "csr"
X = sp.csr_matrix(dense)
adata = anndata.AnnData(X=X, obs=obs, var=var)
adata.layers["counts"] = sp.csr_matrix(np.floor(dense).astype(np.int32))
adata.obsm["X_pca"] = rng.normal(size=(n_obs, 5)).astype(np.float32)
adata.raw = adata
adata.uns["cell_type_colors"] = np.array(["#1f77b4", "#ff7f0e", "#2ca02c"], dtype=object)
adata.uns["title"] = "é-title"
adata.uns["nested"] = {"value": 3.5, "flag": True}
adata.write_h5ad(os.path.join(out, "ref.h5ad"))
adata.write_zarr(os.path.join(out, "v2-anndata.zarr"))
dense_adata = adata.copy()
dense_adata.X = dense
dense_adata.write_zarr(os.path.join(out, "v2-dense.zarr"))
csc_adata = adata.copy()
csc_adata.X = sp.csc_matrix(dense)
csc_adata.write_zarr(os.path.join(out, "v2-csc.zarr"))

source = zarr.open_group(os.path.join(out, "v2-anndata.zarr"), mode="r")


def walk(group, prefix=""):
    """(path, node) for every group and array below `group`, parents first."""
    for name, node in sorted(group.items()):
        path = prefix + name
        yield path, node
        if isinstance(node, zarr.hierarchy.Group):
            yield from walk(node, path + "/")


def chunks_for(shape):
    return tuple(max(1, min(s, 7 if i == 0 else 11)) for i, s in enumerate(shape))


def rewrite_v2(name, compressor, big_endian=False, separator="."):
    dst = zarr.open_group(os.path.join(out, name), mode="w")
    dst.attrs.update(source.attrs.asdict())
    for path, node in walk(source):
        if isinstance(node, zarr.hierarchy.Group):
            dst.create_group(path).attrs.update(node.attrs.asdict())
            continue
        data = node[...]
        kwargs = {}
        if data.dtype == object:
            kwargs["object_codec"] = numcodecs.VLenUTF8()
        elif big_endian and data.dtype.itemsize > 1:
            data = data.astype(data.dtype.newbyteorder(">"))
        arr = dst.create_dataset(
            path, data=data, chunks=chunks_for(data.shape), compressor=compressor,
            dimension_separator=separator, **kwargs)
        arr.attrs.update(node.attrs.asdict())


rewrite_v2("v2-zstd.zarr", numcodecs.Zstd(level=3))
rewrite_v2("v2-gzip.zarr", numcodecs.GZip(level=5))
rewrite_v2("v2-zlib.zarr", numcodecs.Zlib(level=5), separator="/")
rewrite_v2("v2-lz4.zarr", numcodecs.LZ4())
rewrite_v2("v2-none-bigendian.zarr", None, big_endian=True)
rewrite_v2("v2-blosc-zstd-bitshuffle.zarr",
           numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE))

# --- zarr v3 by hand -------------------------------------------------------------------------
CRC_TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (0x82F63B78 ^ (c >> 1)) if c & 1 else c >> 1
    CRC_TABLE.append(c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return (crc ^ 0xFFFFFFFF).to_bytes(4, "little")


V3_TYPES = {"bool": "bool", "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
            "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
            "float32": "float32", "float64": "float64", "object": "string"}
COMPRESSORS = {
    "gzip": ({"name": "gzip", "configuration": {"level": 5}}, numcodecs.GZip(5)),
    "zstd": ({"name": "zstd", "configuration": {"level": 3, "checksum": False}}, numcodecs.Zstd(3)),
    "blosc": ({"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle",
                                                  "typesize": 4, "blocksize": 0}},
              numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)),
}


def encode_chunk(block, is_string, compressor, crc):
    raw = numcodecs.VLenUTF8().encode(block.ravel()) if is_string else block.astype(
        block.dtype.newbyteorder("<")).tobytes()
    if compressor:
        raw = bytes(COMPRESSORS[compressor][1].encode(raw))
    if crc:
        raw += crc32c(raw)
    return raw


def pad(data, chunk, index, is_string):
    """The chunk at grid `index`, padded with the fill value to the full chunk shape."""
    block = np.full(chunk, "" if is_string else 0, dtype=data.dtype)
    sl = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(index, chunk, data.shape))
    part = data[sl]
    if not isinstance(part, np.ndarray):  # a 0-d array's element
        block[()] = part
        return block
    block[tuple(slice(0, n) for n in part.shape)] = part
    return block


def write_v3(name, compressor, crc=False, shard=False):
    root = os.path.join(out, name)

    def meta(path, doc):
        os.makedirs(os.path.join(root, path), exist_ok=True)
        with open(os.path.join(root, path, "zarr.json"), "w") as f:
            json.dump(doc, f)

    meta("", {"zarr_format": 3, "node_type": "group", "attributes": source.attrs.asdict()})
    for path, node in walk(source):
        if isinstance(node, zarr.hierarchy.Group):
            meta(path, {"zarr_format": 3, "node_type": "group", "attributes": node.attrs.asdict()})
            continue
        data = node[...]
        if data.dtype.kind == "U":  # numpy fixed-width unicode: a v3 string array
            data = data.astype(object)
        is_string = data.dtype == object
        inner = chunks_for(data.shape)
        codecs = [{"name": "vlen-utf8"} if is_string else
                  {"name": "bytes", "configuration": {"endian": "little"}}]
        if compressor:
            codecs.append(COMPRESSORS[compressor][0])
        if crc:
            codecs.append({"name": "crc32c"})
        grid = inner
        if shard:
            grid = tuple(c * (3 if i == 0 else 2) for i, c in enumerate(inner))
            codecs = [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": list(inner), "codecs": codecs,
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                 {"name": "crc32c"}],
                "index_location": "end"}}]
        meta(path, {
            "zarr_format": 3, "node_type": "array", "shape": list(data.shape),
            "data_type": V3_TYPES[str(data.dtype)],
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(grid)}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": "" if is_string else (False if data.dtype == bool else 0),
            "codecs": codecs, "attributes": node.attrs.asdict()})
        counts = [-(-s // c) for s, c in zip(data.shape, grid)]
        for index in np.ndindex(*counts):
            key = os.path.join(root, path, "c", *map(str, index))
            if shard:
                per = [g // c for g, c in zip(grid, inner)]
                body, table = b"", b""
                for sub in np.ndindex(*per):
                    at = [i * p + j for i, p, j in zip(index, per, sub)]
                    if any(a * c >= s for a, c, s in zip(at, inner, data.shape)):
                        table += (2**64 - 1).to_bytes(8, "little") * 2  # empty inner chunk
                        continue
                    enc = encode_chunk(pad(data, inner, at, is_string), is_string, compressor, crc)
                    table += len(body).to_bytes(8, "little") + len(enc).to_bytes(8, "little")
                    body += enc
                blob = body + table + crc32c(table)
            else:
                block = pad(data, grid, index, is_string)
                if not is_string and not block.any():
                    continue  # never written: readers see the fill value
                blob = encode_chunk(block, is_string, compressor, crc)
            os.makedirs(os.path.dirname(key), exist_ok=True)
            with open(key, "wb") as f:
                f.write(blob)


write_v3("v3-none.zarr", None)
write_v3("v3-gzip-crc32c.zarr", "gzip", crc=True)
write_v3("v3-zstd.zarr", "zstd")
write_v3("v3-blosc.zarr", "blosc")
write_v3("v3-sharded.zarr", "zstd", crc=True, shard=True)

# --- record arrays (anndata's rec-arrays, as scanpy's rank_genes_groups stores them) ---------
rec = anndata.AnnData(X=sp.csr_matrix(dense[:5]), obs=obs.iloc[:5].copy(), var=var.copy())
rec.uns["markers"] = {
    "names": np.rec.fromarrays(
        [[f"g{i}-é" for i in range(6)], [f"h{i}" * (i + 1) for i in range(6)]], names=["a", "b"]),
    "scores": np.rec.fromarrays(
        [np.arange(6, dtype=np.float32) / 4, -np.arange(6, dtype=np.float32)], names=["a", "b"]),
    "pvals": np.rec.fromarrays(
        [np.linspace(1e-300, 0.5, 6), np.linspace(0.1, 0.9, 6)], names=["a", "b"]),
}
rec.uns["mixed"] = np.rec.fromarrays([["x", "y"], [1.5, 2.5]], names=["name", "value"])
rec.uns["counts"] = np.rec.fromarrays([np.array([2**53 + 1, 7]), np.array([1, 2])], names=["a", "b"])
rec.write_h5ad(os.path.join(out, "rec.h5ad"))
rec.write_zarr(os.path.join(out, "v2-rec.zarr"))
# The same scores with big-endian fields, as numpy writes them on such machines.
group = zarr.open_group(os.path.join(out, "v2-rec.zarr"), mode="r+")
scores = group["uns/markers/scores"]
attrs = scores.attrs.asdict()
swapped = scores[...].astype([("a", ">f4"), ("b", ">f4")])
del group["uns/markers/scores"]
group.create_dataset("uns/markers/scores", data=swapped, chunks=(4,)).attrs.update(attrs)
