// What the renderer draws: 2-D positions with a colour per point, and the camera that maps the
// data plane onto the viewport (pan, zoom to cursor, fit to data). No Vulkan here.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <glm/common.hpp>
#include <glm/vec2.hpp>

namespace orrery::render {

struct PointSet {
  std::vector<glm::vec2> positions;
  std::vector<std::uint32_t> colors;  // RGBA8, R in the low byte
  std::size_t size() const { return positions.size(); }
};

std::uint32_t pack_rgba(std::uint8_t r, std::uint8_t g, std::uint8_t b, std::uint8_t a = 255);

// Density-aware default opacity: opaque up to 50k points, then falling with log(n) so dense
// regions of millions of points still show their structure.
std::uint8_t default_alpha(std::size_t n_points);

// Colours points by category (palette "#rrggbb"); hidden categories are fully transparent,
// and when `selected` is non-empty, unselected points turn grey at `dim_alpha` (grey, not just
// fainter: thousands of overlapping faint points would add up to their full colour again).
PointSet categorical_points(const std::vector<float>& xy, const std::vector<std::int32_t>& labels,
                            const std::vector<std::string>& palette,
                            const std::vector<bool>& hidden = {},
                            const std::vector<bool>& selected = {}, std::uint8_t alpha = 230,
                            std::uint8_t dim_alpha = 40);

class Camera {
 public:
  // Fits the bounding box of `points` into a viewport with a margin.
  void fit(const PointSet& points, float width, float height, float margin = 0.05f);
  // Fits the box [lo, hi] (lo > hi: nothing to fit, the default view).
  void fit_box(glm::vec2 lo, glm::vec2 hi, float width, float height, float margin = 0.05f);
  void pan_pixels(float dx, float dy);
  // Zooms by `factor` keeping the data point under the cursor (pixel coordinates) fixed.
  void zoom_at(float px, float py, float factor);
  void resize(float width, float height) {
    width_ = width;
    height_ = height;
  }

  // NDC = world * scale + offset (Vulkan: y down, so y is flipped to keep "up" up).
  glm::vec2 scale() const;
  glm::vec2 offset() const;
  glm::vec2 to_pixels(glm::vec2 world) const;
  glm::vec2 to_world(glm::vec2 pixels) const;
  float width() const { return width_; }
  float height() const { return height_; }

 private:
  glm::vec2 center_{0.0f, 0.0f};
  float pixels_per_unit_ = 1.0f;
  float width_ = 1.0f, height_ = 1.0f;
};

// An outline (a lasso being drawn, a brush rectangle) as dots every `spacing` pixels along the
// path through `vertices` (data coordinates; `closed` adds the last-to-first edge), for the point
// pipeline to draw over the scene: one pipeline serves points and overlays.
PointSet outline_dots(const std::vector<glm::vec2>& vertices, bool closed, const Camera& camera,
                      float spacing, std::uint32_t color);

}  // namespace orrery::render
