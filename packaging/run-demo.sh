#!/usr/bin/env bash
# Installs dependencies, builds Orrery (Release) and runs the main job on the built-in demo
# dataset: the GUI by default, or with --headless the CLI pipeline, which writes
# orrery-demo.h5ad and orrery-demo-report.json in the current folder.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/packaging/install-deps.sh"
cmake -S "$here" -B "$here/build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$here/build"
exec "$here/build/orrery" "$@"
