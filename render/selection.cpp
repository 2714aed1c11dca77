#include "selection.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <limits>

namespace orrery::render {

std::vector<bool> points_in_polygon(const std::vector<glm::vec2>& points,
                                    const std::vector<glm::vec2>& polygon) {
  std::vector<char> inside(points.size(), 0);
  const std::size_t m = polygon.size();
  if (m >= 3) {
    glm::vec2 lo(std::numeric_limits<float>::max()), hi(std::numeric_limits<float>::lowest());
    for (auto v : polygon) {
      lo = glm::min(lo, v);
      hi = glm::max(hi, v);
    }
    // Horizontal slabs, each listing the edges whose y-range meets it: a point tests only the
    // edges of its slab (a hand-drawn lasso of hundreds of vertices costs a few edges per point,
    // not all of them). Slab indices are a monotone function of y, so every edge that can cross
    // a point's horizontal ray is in the point's slab: the answer is the full even-odd test's.
    const int slabs = static_cast<int>(std::clamp<std::size_t>(2 * m, 1, 4096));
    const float height = hi.y - lo.y;
    auto slab_of = [&](float y) {
      if (!(height > 0)) return 0;
      return std::clamp(static_cast<int>((y - lo.y) / height * slabs), 0, slabs - 1);
    };
    std::vector<std::vector<std::uint32_t>> edges(static_cast<std::size_t>(slabs));
    for (std::size_t a = 0, b = m - 1; a < m; b = a++) {
      const float y0 = std::min(polygon[a].y, polygon[b].y),
                  y1 = std::max(polygon[a].y, polygon[b].y);
      for (int k = slab_of(y0); k <= slab_of(y1); ++k)
        edges[static_cast<std::size_t>(k)].push_back(static_cast<std::uint32_t>(a));
    }
    tbb::parallel_for(
        tbb::blocked_range<std::size_t>(0, points.size(), 1 << 14),
        [&](const tbb::blocked_range<std::size_t>& r) {
          for (std::size_t i = r.begin(); i != r.end(); ++i) {
            const glm::vec2 p = points[i];
            if (p.x < lo.x || p.x > hi.x || p.y < lo.y || p.y > hi.y) continue;
            bool in = false;
            for (const std::uint32_t a : edges[static_cast<std::size_t>(slab_of(p.y))]) {
              const glm::vec2 u = polygon[a], v = polygon[a == 0 ? m - 1 : a - 1];
              if ((u.y > p.y) != (v.y > p.y) && p.x < (v.x - u.x) * (p.y - u.y) / (v.y - u.y) + u.x)
                in = !in;
            }
            inside[i] = in;
          }
        });
  }
  return std::vector<bool>(inside.begin(), inside.end());
}

std::vector<bool> points_in_rect(const std::vector<glm::vec2>& points, glm::vec2 a, glm::vec2 b) {
  const glm::vec2 lo = glm::min(a, b), hi = glm::max(a, b);
  std::vector<bool> out(points.size());
  for (std::size_t i = 0; i < points.size(); ++i)
    out[i] =
        points[i].x >= lo.x && points[i].x <= hi.x && points[i].y >= lo.y && points[i].y <= hi.y;
  return out;
}

std::int64_t nearest_point(const std::vector<glm::vec2>& points, glm::vec2 at, float radius,
                           const std::function<bool(std::size_t)>& pickable) {
  struct Best {
    float d2;
    std::int64_t index;
  };
  const Best none{radius * radius, -1};
  const auto better = [](const Best& a, const Best& b) {
    if (a.index < 0) return b;
    if (b.index < 0) return a;
    return (b.d2 < a.d2 || (b.d2 == a.d2 && b.index < a.index)) ? b : a;
  };
  return tbb::parallel_reduce(
             tbb::blocked_range<std::size_t>(0, points.size(), 1 << 16), none,
             [&](const tbb::blocked_range<std::size_t>& r, Best best) {
               for (std::size_t i = r.begin(); i < r.end(); ++i) {
                 const glm::vec2 d = points[i] - at;
                 const float d2 = d.x * d.x + d.y * d.y;
                 if (d2 <= radius * radius && (best.index < 0 || d2 < best.d2) &&
                     (!pickable || pickable(i)))
                   best = {d2, static_cast<std::int64_t>(i)};
               }
               return best;
             },
             better)
      .index;
}

}  // namespace orrery::render
