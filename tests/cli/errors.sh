#!/usr/bin/env bash
# Bad input and bad parameters give a clear error naming the file/field, exit code 2, no crash,
# and no output file.
set -uo pipefail
orrery=$1
cli=${2:-}  # orrery-cli, the executable without Qt (optional)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

expect_error() {  # expect_error PATTERN CMD...
  local pattern=$1; shift
  local out rc
  out=$("$@" 2>&1); rc=$?
  [ "$rc" -eq 2 ] || fail "exit $rc (want 2) for: $* -- $out"
  grep -q -- "$pattern" <<<"$out" || fail "message lacks '$pattern' for: $* -- $out"
}

# Help after a command prints the usage (exit 0), as before one.
for args in "--help" "run --help" "synth -h"; do
  # shellcheck disable=SC2086
  out=$("$orrery" $args 2>&1) || fail "exit $? for: orrery $args"
  grep -q "usage:" <<<"$out" || fail "no usage for: orrery $args -- $out"
done

printf 'not hdf5' > "$tmp/bad.h5ad"
expect_error "bad.h5ad" "$orrery" run "$tmp/bad.h5ad" -o "$tmp/out.h5ad"
expect_error "no such file" "$orrery" run "$tmp/missing.h5ad" -o "$tmp/out.h5ad"

mkdir -p "$tmp/mtx"
printf '%%%%MatrixMarket matrix coordinate integer general\n3 2 4\n1 1 5\n2 1 3\n3 2 1\n' > "$tmp/mtx/matrix.mtx"
expect_error "truncated" "$orrery" run "$tmp/mtx" -o "$tmp/out.h5ad"
printf '%%%%MatrixMarket matrix coordinate integer general\n3 2 2\n1 1 5\n9 1 3\n' > "$tmp/mtx/matrix.mtx"
expect_error "out of range" "$orrery" run "$tmp/mtx" -o "$tmp/out.h5ad"
printf '%%%%MatrixMarket matrix coordinate real general\n3 2 2\n1 1 nan\n2 1 3\n' > "$tmp/mtx/matrix.mtx"
expect_error "NaN" "$orrery" run "$tmp/mtx" -o "$tmp/out.h5ad"
: > "$tmp/mtx/matrix.mtx"
expect_error "matrix.mtx" "$orrery" run "$tmp/mtx" -o "$tmp/out.h5ad"

# Text tables: a value that is not a number, a ragged row, a layout that is neither.
printf 'c1,c2\ng1,1,NA\n' > "$tmp/na.csv"
expect_error "na.csv: line 2, column 3: 'NA' is not a finite number" "$orrery" run "$tmp/na.csv" -o "$tmp/out.h5ad"
printf 'c1,c2\ng1,1,2\ng2,1\n' > "$tmp/ragged.tsv"
expect_error "ragged.tsv: line 3" "$orrery" info "$tmp/ragged.tsv"
printf 'c1,c2\ng1,1,2\n' > "$tmp/ok.csv"
expect_error "text-layout" "$orrery" info "$tmp/ok.csv" --text-layout sideways

"$orrery" synth -o "$tmp/small.h5ad" --cells 400 --genes 1000 --quiet || fail "synth failed"
# Annotations that name no cell, or a cell twice.
printf 'cell,label\nnobody,x\n' > "$tmp/strangers.csv"
expect_error "strangers.csv: row names: none of its 1 rows names a cell" "$orrery" run "$tmp/small.h5ad" -o "$tmp/out.h5ad" --obs "$tmp/strangers.csv"
# A uns group hard-linked into itself: the guard's walk and the copy of uns both stop at it.
cp "$tmp/small.h5ad" "$tmp/cycle.h5ad"
/usr/bin/python3 -c "import h5py, sys; f = h5py.File(sys.argv[1], 'a'); f.require_group('uns/a')['loop'] = f['uns']" "$tmp/cycle.h5ad" || fail "cannot make cycle.h5ad"
expect_error "a cycle of links" "$orrery" run "$tmp/cycle.h5ad" -o "$tmp/out.h5ad"
expect_error "cycle.h5ad: uns/a/loop.*a cycle of links" env ORRERY_HDF5_GUARD=0 "$orrery" run "$tmp/cycle.h5ad" -o "$tmp/out.h5ad"
rm "$tmp/cycle.h5ad"
# Damaged values and encodings, each named by file and element: a NaN in X, an indptr that
# disagrees with nnz, an obs column in an unknown encoding, a name that is not UTF-8, no cells.
/usr/bin/python3 - "$tmp" <<'PY' || fail "cannot make the damaged h5ad files"
import shutil, sys
import anndata, h5py, numpy as np, pandas as pd, scipy.sparse as sp
tmp = sys.argv[1]
for name in ("nan", "nnz", "encoding", "latin1"):
    shutil.copy(f"{tmp}/small.h5ad", f"{tmp}/{name}.h5ad")
with h5py.File(f"{tmp}/nan.h5ad", "r+") as f:
    v = f["X/data"][:5]
    v[3] = np.nan
    f["X/data"][:5] = v
with h5py.File(f"{tmp}/nnz.h5ad", "r+") as f:
    f["X/indptr"][-1] = f["X/indptr"][-1] - 7
with h5py.File(f"{tmp}/encoding.h5ad", "r+") as f:
    f["obs/true_cluster"].attrs["encoding-type"] = "sparse-categorical-v9"
with h5py.File(f"{tmp}/latin1.h5ad", "r+") as f:
    names = f["obs/_index"][:]
    names[2] = b"caf\xe9"
    del f["obs/_index"]
    f["obs"].create_dataset("_index", data=names, dtype=h5py.string_dtype("utf-8"))
empty = anndata.AnnData(X=sp.csr_matrix((0, 10), dtype=np.float32),
                        var=pd.DataFrame(index=[f"g{i}" for i in range(10)]))
empty.write_h5ad(f"{tmp}/empty.h5ad")
PY
expect_error "nan.h5ad: X/data: NaN or Inf" "$orrery" run "$tmp/nan.h5ad" -o "$tmp/out.h5ad"
expect_error "nnz.h5ad: X/indptr: last entry" "$orrery" run "$tmp/nnz.h5ad" -o "$tmp/out.h5ad"
expect_error "encoding.h5ad: obs/true_cluster: unknown column encoding" "$orrery" run "$tmp/encoding.h5ad" -o "$tmp/out.h5ad"
expect_error "latin1.h5ad: obs/_index: string 2 is not UTF-8" "$orrery" run "$tmp/latin1.h5ad" -o "$tmp/out.h5ad"
expect_error "empty.h5ad: X: matrix is empty" "$orrery" run "$tmp/empty.h5ad" -o "$tmp/out.h5ad"
rm -f "$tmp"/{nan,nnz,encoding,latin1,empty}.h5ad
# A Matrix Market header declaring half a billion cells and no barcodes: refused, not allocated.
printf '%%%%MatrixMarket matrix coordinate integer general\n2 500000000 0\n' > "$tmp/mtx/matrix.mtx"
expect_error "matrix.mtx: size line: declares" "$orrery" run "$tmp/mtx" -o "$tmp/out.h5ad"
# A synthetic store written as zarr checks clean; a damaged X chunk is named by `orrery check`.
"$orrery" synth -o "$tmp/small.zarr" --cells 400 --genes 1000 --quiet || fail "zarr synth failed"
"$orrery" check "$tmp/small.zarr" --quiet | grep -q '"rows":400' || fail "check of small.zarr"
head -c 100 "$tmp/small.zarr/X/data/0" > "$tmp/chunk" && mv "$tmp/chunk" "$tmp/small.zarr/X/data/0"
expect_error "X/data chunk 0" "$orrery" check "$tmp/small.zarr" --quiet
# Hostile HDF5 files (tests/io/hostile): inputs fuzz_h5ad found to crash (SIGSEGV), hang or
# exhaust memory inside libhdf5 1.10.8 (unguarded, `orrery info` dies on four of the six and hangs on two). The
# HDF5 guard reads their structure in a child process first, so each is an error naming the file.
hostile=("$(dirname "$0")"/../io/hostile/*.h5ad)
[ "${#hostile[@]}" -eq 6 ] && [ -f "${hostile[0]}" ] || fail "expected 6 files in tests/io/hostile"
for f in "${hostile[@]}"; do
  cp "$f" "$tmp/hostile.h5ad" || fail "cannot copy $f"
  # A guard that stopped working would hang or crash here: `timeout` turns a hang into a failure.
  expect_error "hostile.h5ad: " timeout 60 env ORRERY_HDF5_GUARD_TIMEOUT=3 "$orrery" info "$tmp/hostile.h5ad"
done
cp "$(dirname "$0")/../io/hostile/crash-e29dda65.h5ad" "$tmp/crash.h5ad"
expect_error "crash.h5ad: obs/_index: the HDF5 library crashed" "$orrery" run "$tmp/crash.h5ad" -o "$tmp/out.h5ad"

echo '{"leiden": {"resolution": -1}}' > "$tmp/p.json"
expect_error "leiden.resolution" "$orrery" run "$tmp/small.h5ad" -o "$tmp/out.h5ad" --params "$tmp/p.json"
echo '{"pca": {"n_comps": "fifty"}}' > "$tmp/p.json"
expect_error "pca.n_comps" "$orrery" run "$tmp/small.h5ad" -o "$tmp/out.h5ad" --params "$tmp/p.json"
echo '{"umap": {"min_dsit": 0.1}}' > "$tmp/p.json"
expect_error "umap.min_dsit" "$orrery" run "$tmp/small.h5ad" -o "$tmp/out.h5ad" --params "$tmp/p.json"
echo '{not json' > "$tmp/p.json"
expect_error "invalid JSON" "$orrery" run "$tmp/small.h5ad" -o "$tmp/out.h5ad" --params "$tmp/p.json"
expect_error "backend" "$orrery" run "$tmp/small.h5ad" -o "$tmp/out.h5ad" --backend gpu
expect_error "--threads" "$orrery" run "$tmp/small.h5ad" -o "$tmp/out.h5ad" --threads 0
# Thresholds that keep no cell.
echo '{"qc": {"min_genes": 100000}}' > "$tmp/p.json"
expect_error "QC thresholds" "$orrery" run "$tmp/small.h5ad" -o "$tmp/out.h5ad" --params "$tmp/p.json"
[ ! -e "$tmp/out.h5ad" ] || fail "an output file was left behind"
ls "$tmp" | grep -q "tmp-" && fail "a temporary file was left behind"
# The input was never modified.
before=$(sha256sum "$tmp/small.h5ad")
"$orrery" run "$tmp/small.h5ad" -o "$tmp/ok.h5ad" --quiet --threads 1 --report "$tmp/ok.json" ||
  fail "valid run failed"
[ "$before" = "$(sha256sum "$tmp/small.h5ad")" ] || fail "input store changed"
[ -s "$tmp/ok.h5ad" ] || fail "no output"
# The report: per stage wall and CPU seconds, peak RSS and rows/s; the target_sum used.
/usr/bin/python3 - "$tmp/ok.json" <<'PY' || fail "report incomplete"
import json, sys
r = json.load(open(sys.argv[1]))
names = [s["stage"] for s in r["stages"]]
assert names[:2] == ["qc", "filter"] and "leiden" in names and "markers" in names, names
for s in r["stages"]:
    for key in ("seconds", "cpu_seconds", "peak_rss_mib", "rows", "rows_per_second"):
        assert isinstance(s[key], (int, float)) and s[key] >= 0, (s["stage"], key)
    assert s["peak_rss_mib"] > 0 and (s["seconds"] == 0 or s["rows_per_second"] > 0), s
assert r["target_sum"] == 1e4 and r["n_cells"] == 400, r
PY
# Ctrl-C during a run: exit 130, "cancelled", no output and no temporary file left.
"$orrery" synth -o "$tmp/mid.h5ad" --cells 20000 --genes 2000 --quiet || fail "synth failed"
"$orrery" run "$tmp/mid.h5ad" -o "$tmp/cancelled.h5ad" --threads 1 2> "$tmp/cancel.err" &
pid=$!
for _ in $(seq 600); do grep -q '^pca' "$tmp/cancel.err" && break; sleep 0.1; done
grep -q '^pca' "$tmp/cancel.err" || fail "the run never reached pca: $(cat "$tmp/cancel.err")"
kill -INT "$pid"
wait "$pid"; rc=$?
[ "$rc" -eq 130 ] || fail "exit $rc after SIGINT (want 130): $(tail -3 "$tmp/cancel.err")"
grep -q "cancelled; no output written" "$tmp/cancel.err" || fail "no cancel message"
[ ! -e "$tmp/cancelled.h5ad" ] || fail "a cancelled run left its output"
ls "$tmp" | grep -q "tmp-" && fail "a cancelled run left a temporary file"
rm "$tmp/mid.h5ad"
if [ -n "$cli" ]; then
  # The Qt-free twin: no Qt or Vulkan library, the same guard, the same pipeline.
  ldd "$cli" | grep -qiE 'libQt|libvulkan' && fail "orrery-cli links Qt or Vulkan"
  cp "$(dirname "$0")/../io/hostile/crash-e29dda65.h5ad" "$tmp/crash.h5ad"
  expect_error "crash.h5ad: obs/_index: the HDF5 library crashed" "$cli" info "$tmp/crash.h5ad"
  "$cli" run "$tmp/small.h5ad" -o "$tmp/cli.h5ad" --quiet --report "$tmp/cli.json" ||
    fail "orrery-cli run failed"
  grep -q '"leiden"' "$tmp/cli.json" || fail "orrery-cli report lacks the leiden stage"
  expect_error "expected a subcommand" "$cli"
fi
echo "all error cases ok"
