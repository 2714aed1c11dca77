#!/usr/bin/env bash
# Renderer frame times for 1M and 11M points (or the sizes given) at 1920x1080, one JSON line
# each, on the Vulkan device present (Mesa lavapipe on a machine without a GPU).
# Usage: bench/render_fps.sh [N ...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bench=${ORRERY_BENCH_RENDER:-$here/build/orrery_bench_render}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 11000000)
for n in "${sizes[@]}"; do
  frames=20
  [ "$n" -gt 5000000 ] && frames=5
  "$bench" "$n" "$frames" 1920 1080 3
done
