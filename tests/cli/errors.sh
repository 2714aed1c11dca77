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
# A uns group hard-linked into itself: the guard's walk and the copy of uns both stop at it.
cp "$tmp/small.h5ad" "$tmp/cycle.h5ad"
/usr/bin/python3 -c "import h5py, sys; f = h5py.File(sys.argv[1], 'a'); f.require_group('uns/a')['loop'] = f['uns']" "$tmp/cycle.h5ad" || fail "cannot make cycle.h5ad"
expect_error "a cycle of links" "$orrery" run "$tmp/cycle.h5ad" -o "$tmp/out.h5ad"
expect_error "cycle.h5ad: uns/a/loop.*a cycle of links" env ORRERY_HDF5_GUARD=0 "$orrery" run "$tmp/cycle.h5ad" -o "$tmp/out.h5ad"
rm "$tmp/cycle.h5ad"
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
"$orrery" run "$tmp/small.h5ad" -o "$tmp/ok.h5ad" --quiet || fail "valid run failed"
[ "$before" = "$(sha256sum "$tmp/small.h5ad")" ] || fail "input store changed"
[ -s "$tmp/ok.h5ad" ] || fail "no output"
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
