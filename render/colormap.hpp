// Continuous colour maps for gene expression and QC values: viridis (matplotlib's stops,
// linearly interpolated), with clipping to a value window such as the 1st-99th percentile.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "scene.hpp"

namespace orrery::render {

// RGBA8 (R in the low byte, alpha 255) for t in [0, 1]; t is clamped.
std::uint32_t viridis(float t);

// The q-quantile (q in [0, 1]) of the finite values; 0 when there are none.
float quantile(const std::vector<float>& values, double q);

// Points coloured by `values` mapped from [vmin, vmax] through viridis; with `sort_by_value`
// the highest values are drawn last so expressing cells are not hidden under the rest.
PointSet continuous_points(const std::vector<float>& xy, const std::vector<float>& values,
                           float vmin, float vmax, std::uint8_t alpha = 255,
                           bool sort_by_value = true);

}  // namespace orrery::render
