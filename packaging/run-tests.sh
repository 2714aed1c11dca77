#!/usr/bin/env bash
# Installs dependencies, builds Orrery with warnings as errors and runs every test with CTest;
# GUI and render tests run under Xvfb with Mesa's software Vulkan (lavapipe).
# Real-data tests read ../shared (or $ORRERY_SHARED) and skip, saying so, when it is absent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/packaging/install-deps.sh"
cmake -S "$here" -B "$here/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DORRERY_WERROR=ON
cmake --build "$here/build"
cd "$here/build"
exec xvfb-run -a -s "-screen 0 1600x1200x24" ctest --output-on-failure --timeout 900
