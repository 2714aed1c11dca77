// Frame time of the point renderer: N synthetic cells (Gaussian blobs, one colour per blob) drawn
// offscreen at W x H for F frames on whatever Vulkan device is present (lavapipe here, a GPU on
// the device machine). Prints one JSON object: upload time, per-frame median/mean/max, fps, and the
// time to select the points inside a 400-vertex lasso and a brush rectangle (median of five), on
// the CPU and on the Vulkan device (render/gpu_selection.hpp).
// Usage: orrery_bench_render [N=1000000] [FRAMES=20] [W=1920] [H=1080] [POINT_PX=3]
//                            [MODE=auto|sprites|splat]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>

#include "compute/palette.hpp"
#include "compute/rng.hpp"
#include "render/gpu_selection.hpp"
#include "render/offscreen.hpp"
#include "render/scene.hpp"
#include "render/selection.hpp"

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
  const std::string mode = argc > 6 ? argv[6] : "auto";
  o.points = mode == "sprites" ? render::RenderOptions::Points::Sprites
             : mode == "splat" ? render::RenderOptions::Points::Splat
                               : render::RenderOptions::Points::Auto;
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
    const auto median_ms = [](auto&& work) {
      std::vector<double> ms;
      for (int r = 0; r < 5; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        work();
        ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count());
      }
      std::sort(ms.begin(), ms.end());
      return ms[2];
    };
    std::vector<glm::vec2> lasso;  // a wobbly loop around the first blob and part of others
    for (int v = 0; v < 400; ++v) {
      const double a = 6.283185307 * v / 400, r = 8 + 2 * std::sin(9 * a);
      lasso.push_back({static_cast<float>(cx[0] + r * std::cos(a)),
                       static_cast<float>(cy[0] + r * std::sin(a))});
    }
    std::size_t lassoed = 0;
    const double lasso_ms = median_ms([&] {
      const auto in = render::points_in_polygon(points.positions, lasso);
      lassoed = static_cast<std::size_t>(std::count(in.begin(), in.end(), true));
    });
    const glm::vec2 c0(static_cast<float>(cx[0]), static_cast<float>(cy[0]));
    const double brush_ms = median_ms(
        [&] { render::points_in_rect(points.positions, c0 - glm::vec2(8), c0 + glm::vec2(8)); });
    render::OffscreenRenderer renderer;
    // The same selections on the Vulkan device (points uploaded once, timed apart).
    render::GpuSelection gpu(renderer.context());
    const auto t_set = std::chrono::steady_clock::now();
    gpu.set_points(points.positions);
    const double gpu_upload_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_set).count();
    const double lasso_gpu_ms = median_ms([&] { gpu.in_polygon(lasso); });
    const double brush_gpu_ms =
        median_ms([&] { gpu.in_rect(c0 - glm::vec2(8), c0 + glm::vec2(8)); });
    const render::Image img = renderer.render(points, camera, o);
    std::vector<double> t = img.frame_ms;
    std::sort(t.begin(), t.end());
    const double mean = std::accumulate(t.begin(), t.end(), 0.0) / static_cast<double>(t.size());
    const double median = t[t.size() / 2];
    std::printf(
        "{\"points\": %zu, \"width\": %u, \"height\": %u, \"point_px\": %.1f, \"frames\": %zu, "
        "\"device\": \"%s\", \"upload_ms\": %.1f, \"frame_ms_median\": %.2f, \"frame_ms_mean\": "
        "%.2f, \"frame_ms_max\": %.2f, \"fps\": %.1f, \"lasso_400_vertices_ms\": %.1f, "
        "\"lassoed\": %zu, \"brush_ms\": %.1f, \"points_mode\": \"%s\", \"gpu_select_upload_ms\": "
        "%.1f, \"lasso_gpu_ms\": %.1f, \"brush_gpu_ms\": %.1f}\n",
        n, o.width, o.height, o.point_size, t.size(), renderer.device_name().c_str(), img.upload_ms,
        median, mean, t.back(), 1000.0 / median, lasso_ms, lassoed, brush_ms, mode.c_str(),
        gpu_upload_ms, lasso_gpu_ms, brush_gpu_ms);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "orrery_bench_render: %s\n", e.what());
    return 2;
  }
}
