// Selection on the drawn points: which points fall inside a lasso polygon or a rectangle, in
// data coordinates. CPU (parallel) path; a GPU path can replace it for tens of millions of points.
#pragma once

#include <functional>
#include <vector>

#include "scene.hpp"

namespace orrery::render {

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
