#include "selection.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <limits>

namespace orrery::render {

PolygonSlabs polygon_slabs(const std::vector<glm::vec2>& polygon, int margin) {
  PolygonSlabs s;
  const std::size_t m = polygon.size();
  for (auto v : polygon) {
    s.lo = glm::min(s.lo, v);
    s.hi = glm::max(s.hi, v);
  }
  s.slabs = static_cast<int>(std::clamp<std::size_t>(2 * m, 1, 4096));
  std::vector<std::vector<std::uint32_t>> edges(static_cast<std::size_t>(s.slabs));
  for (std::size_t a = 0, b = m - 1; a < m; b = a++) {
    const float y0 = std::min(polygon[a].y, polygon[b].y),
                y1 = std::max(polygon[a].y, polygon[b].y);
    const int k0 = std::max(0, s.slab_of(y0) - margin),
              k1 = std::min(s.slabs - 1, s.slab_of(y1) + margin);
    for (int k = k0; k <= k1; ++k)
      edges[static_cast<std::size_t>(k)].push_back(static_cast<std::uint32_t>(a));
  }
  s.start.assign(1, 0);
  for (const auto& e : edges) {
    s.edges.insert(s.edges.end(), e.begin(), e.end());
    s.start.push_back(static_cast<std::uint32_t>(s.edges.size()));
  }
  return s;
}

std::vector<bool> points_in_polygon(const std::vector<glm::vec2>& points,
                                    const std::vector<glm::vec2>& polygon) {
  std::vector<char> inside(points.size(), 0);
  const std::size_t m = polygon.size();
  if (m >= 3) {
    const PolygonSlabs s = polygon_slabs(polygon, 0);
    tbb::parallel_for(
        tbb::blocked_range<std::size_t>(0, points.size(), 1 << 14),
        [&](const tbb::blocked_range<std::size_t>& r) {
          for (std::size_t i = r.begin(); i != r.end(); ++i) {
            const glm::vec2 p = points[i];
            if (p.x < s.lo.x || p.x > s.hi.x || p.y < s.lo.y || p.y > s.hi.y) continue;
            bool in = false;
            const int k = s.slab_of(p.y);
            for (auto e = s.start[k]; e < s.start[k + 1]; ++e) {
              const std::uint32_t a = s.edges[e];
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
