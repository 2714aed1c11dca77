#!/usr/bin/env bash
# Builds orrery_<version>_amd64.deb (the application, its desktop entry and icon) in build-deb/.
# CPU backend only: a package cannot depend on NVIDIA's CUDA runtime, which is not in Debian;
# build from source where /usr/local/cuda exists for the CUDA backend. Dependencies are the
# Debian packages dpkg-shlibdeps reads off the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/packaging/install-deps.sh"
cmake -S "$here" -B "$here/build-deb" -G Ninja -DCMAKE_BUILD_TYPE=Release -DORRERY_CUDA=OFF \
  -DORRERY_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr
cmake --build "$here/build-deb" --target orrery
(cd "$here/build-deb" && cpack -G DEB)
deb=$(ls "$here"/build-deb/orrery_*.deb)
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb"
echo "built $deb"
