#!/usr/bin/env bash
# Installs (idempotently, from Debian 12's apt) everything Orrery needs to build, run and test.
# CUDA is not installed here: the CUDA backend is compiled when /usr/local/cuda/bin/nvcc exists.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git time bc
  qt6-base-dev qt6-base-dev-tools qt6-svg-dev libgl-dev libxkbcommon-dev
  libvulkan-dev glslc mesa-vulkan-drivers vulkan-tools
  libhdf5-dev liblzf-dev libblosc-dev libzstd-dev liblz4-dev zlib1g-dev libdeflate-dev
  libeigen3-dev libopenblas-dev libigraph-dev libarpack2-dev libglpk-dev libplfit-dev libgmp-dev libxml2-dev
  libtbb-dev libglm-dev
  libimgui-dev nlohmann-json3-dev
  xvfb xauth
  python3 python3-anndata python3-h5py python3-numpy python3-scipy python3-pandas python3-zarr
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
