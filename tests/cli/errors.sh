#!/usr/bin/env bash
# Bad input and bad parameters give a clear error naming the file/field, exit code 2, no crash,
# and no output file.
set -uo pipefail
orrery=$1
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

"$orrery" synth -o "$tmp/small.h5ad" --cells 400 --genes 1000 --quiet || fail "synth failed"
# A synthetic store written as zarr checks clean; a damaged X chunk is named by `orrery check`.
"$orrery" synth -o "$tmp/small.zarr" --cells 400 --genes 1000 --quiet || fail "zarr synth failed"
"$orrery" check "$tmp/small.zarr" --quiet | grep -q '"rows":400' || fail "check of small.zarr"
head -c 100 "$tmp/small.zarr/X/data/0" > "$tmp/chunk" && mv "$tmp/chunk" "$tmp/small.zarr/X/data/0"
expect_error "X/data chunk 0" "$orrery" check "$tmp/small.zarr" --quiet
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
"$orrery" run "$tmp/small.h5ad" -o "$tmp/ok.h5ad" --quiet || fail "valid run failed"
[ "$before" = "$(sha256sum "$tmp/small.h5ad")" ] || fail "input store changed"
[ -s "$tmp/ok.h5ad" ] || fail "no output"
echo "all error cases ok"
