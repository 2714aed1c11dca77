// Frame time of the point renderer: N synthetic cells (Gaussian blobs, one colour per blob) drawn
// offscreen at W x H for F frames on whatever Vulkan device is present (lavapipe here, a GPU on
// the device machine). Prints one JSON object: upload time, per-frame median/mean/max, fps.
// Usage: orrery_bench_render [N=1000000] [FRAMES=20] [W=1920] [H=1080] [POINT_PX=3]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>

#include "compute/palette.hpp"
#include "compute/rng.hpp"
#include "render/offscreen.hpp"
#include "render/scene.hpp"

int main(int argc, char** argv) {
  using namespace orrery;
  const auto arg = [&](int i, double fallback) { return argc > i ? std::atof(argv[i]) : fallback; };
  const auto n = static_cast<std::size_t>(arg(1, 1e6));
  const int frames = static_cast<int>(arg(2, 20));
  render::RenderOptions o;
  o.width = static_cast<std::uint32_t>(arg(3, 1920));
  o.height = static_cast<std::uint32_t>(arg(4, 1080));
  o.point_size = static_cast<float>(arg(5, 3));
  o.frames = frames;
  try {
    const int k = 20;
    const auto palette = compute::categorical_palette(k);
    compute::Rng rng(1);
    std::vector<float> xy(2 * n);
    std::vector<std::int32_t> labels(n);
    std::vector<double> cx(k), cy(k);
    for (int c = 0; c < k; ++c) cx[c] = 40 * rng.uniform(), cy[c] = 40 * rng.uniform();
    for (std::size_t i = 0; i < n; ++i) {
      const int c = static_cast<int>(i % k);
      const double r = std::sqrt(-2 * std::log(1 - rng.uniform())), t = 6.283185307 * rng.uniform();
      xy[2 * i] = static_cast<float>(cx[c] + r * std::cos(t));
      xy[2 * i + 1] = static_cast<float>(cy[c] + r * std::sin(t));
      labels[i] = c;
    }
    const render::PointSet points = render::categorical_points(xy, labels, palette);
    render::Camera camera;
    camera.fit(points, static_cast<float>(o.width), static_cast<float>(o.height));
    render::OffscreenRenderer renderer;
    const render::Image img = renderer.render(points, camera, o);
    std::vector<double> t = img.frame_ms;
    std::sort(t.begin(), t.end());
    const double mean = std::accumulate(t.begin(), t.end(), 0.0) / static_cast<double>(t.size());
    const double median = t[t.size() / 2];
    std::printf(
        "{\"points\": %zu, \"width\": %u, \"height\": %u, \"point_px\": %.1f, \"frames\": %zu, "
        "\"device\": \"%s\", \"upload_ms\": %.1f, \"frame_ms_median\": %.2f, \"frame_ms_mean\": "
        "%.2f, \"frame_ms_max\": %.2f, \"fps\": %.1f}\n",
        n, o.width, o.height, o.point_size, t.size(), renderer.device_name().c_str(), img.upload_ms,
        median, mean, t.back(), 1000.0 / median);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "orrery_bench_render: %s\n", e.what());
    return 2;
  }
}
