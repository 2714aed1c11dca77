// Selection on the drawn points: which points fall inside a lasso polygon or a rectangle, in
// data coordinates. CPU (parallel) path; render/gpu_selection.hpp gives the same answers on the
// Vulkan device for tens of millions of points.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "scene.hpp"

namespace orrery::render {

// A polygon's edges by horizontal slab (CSR: slab k's edges are edges[start[k] .. start[k + 1]),
// edge a joining vertex a - 1 to a): a point tests only the edges of its slab, not all of them.
// Slab indices are a monotone function of y, so every edge that can cross a point's horizontal
// ray is in the point's slab and the answer is the full even-odd test's. `margin` adds each edge
// to that many neighbouring slabs too (the GPU path, whose division may round differently).
struct PolygonSlabs {
  glm::vec2 lo{std::numeric_limits<float>::max()}, hi{std::numeric_limits<float>::lowest()};
  int slabs = 1;
  std::vector<std::uint32_t> start, edges;
  int slab_of(float y) const {
    const float height = hi.y - lo.y;
    if (!(height > 0)) return 0;
    return std::clamp(static_cast<int>((y - lo.y) / height * slabs), 0, slabs - 1);
  }
};
PolygonSlabs polygon_slabs(const std::vector<glm::vec2>& polygon, int margin);

// Even-odd rule; the polygon is closed implicitly. Fewer than three vertices selects nothing.
std::vector<bool> points_in_polygon(const std::vector<glm::vec2>& points,
                                    const std::vector<glm::vec2>& polygon);

std::vector<bool> points_in_rect(const std::vector<glm::vec2>& points, glm::vec2 a, glm::vec2 b);

// Picking: the index of the point nearest to `at` within `radius` (data units), or -1. Only
// points for which `pickable(i)` holds count (e.g. not in a hidden category); empty: all. Ties go
// to the lower index, so the answer does not depend on threads.
std::int64_t nearest_point(const std::vector<glm::vec2>& points, glm::vec2 at, float radius,
                           const std::function<bool(std::size_t)>& pickable = {});

}  // namespace orrery::render
