// Selection on the drawn points: which points fall inside a lasso polygon or a rectangle, in
// data coordinates. CPU (parallel) path; a GPU path can replace it for tens of millions of points.
#pragma once

#include <vector>

#include "scene.hpp"

namespace orrery::render {

// Even-odd rule; the polygon is closed implicitly. Fewer than three vertices selects nothing.
std::vector<bool> points_in_polygon(const std::vector<glm::vec2>& points,
                                    const std::vector<glm::vec2>& polygon);

std::vector<bool> points_in_rect(const std::vector<glm::vec2>& points, glm::vec2 a, glm::vec2 b);

}  // namespace orrery::render
