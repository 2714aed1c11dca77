#include "colormap.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "io/error.hpp"

namespace orrery::render {
namespace {

// matplotlib viridis at t = 0, 1/9, ..., 1.
constexpr std::uint8_t kViridis[10][3] = {
    {0x44, 0x01, 0x54}, {0x48, 0x28, 0x78}, {0x3e, 0x49, 0x89}, {0x31, 0x68, 0x8e},
    {0x26, 0x82, 0x8e}, {0x1f, 0x9e, 0x89}, {0x35, 0xb7, 0x79}, {0x6e, 0xce, 0x58},
    {0xb5, 0xde, 0x2b}, {0xfd, 0xe7, 0x25}};

}  // namespace

std::uint32_t viridis(float t) {
  if (!std::isfinite(t)) t = 0;
  t = std::clamp(t, 0.0f, 1.0f) * 9.0f;
  const int i = std::min(8, static_cast<int>(t));
  const float f = t - static_cast<float>(i);
  std::uint8_t c[3];
  for (int k = 0; k < 3; ++k)
    c[k] = static_cast<std::uint8_t>(
        std::lround(kViridis[i][k] + f * (kViridis[i + 1][k] - kViridis[i][k])));
  return pack_rgba(c[0], c[1], c[2], 255);
}

float quantile(const std::vector<float>& values, double q) {
  std::vector<float> v;
  v.reserve(values.size());
  for (float x : values)
    if (std::isfinite(x)) v.push_back(x);
  if (v.empty()) return 0.0f;
  const auto k =
      static_cast<std::size_t>(std::clamp(q, 0.0, 1.0) * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

PointSet continuous_points(const std::vector<float>& xy, const std::vector<float>& values,
                           float vmin, float vmax, std::uint8_t alpha, bool sort_by_value) {
  const std::size_t n = xy.size() / 2;
  if (values.size() != n) throw Error("", "render", "values and positions differ in length");
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (sort_by_value)
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return values[a] < values[b]; });
  const float span = vmax > vmin ? vmax - vmin : 1.0f;
  PointSet p;
  p.positions.resize(n);
  p.colors.resize(n);
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = order[k];
    p.positions[k] = {xy[2 * i], xy[2 * i + 1]};
    p.colors[k] = (viridis((values[i] - vmin) / span) & 0x00ffffffu) |
                  (static_cast<std::uint32_t>(alpha) << 24);
  }
  return p;
}

}  // namespace orrery::render
