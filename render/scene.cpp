#include "scene.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <glm/geometric.hpp>
#include <limits>

#include "io/error.hpp"

namespace orrery::render {

std::uint32_t pack_rgba(std::uint8_t r, std::uint8_t g, std::uint8_t b, std::uint8_t a) {
  return static_cast<std::uint32_t>(r) | (static_cast<std::uint32_t>(g) << 8) |
         (static_cast<std::uint32_t>(b) << 16) | (static_cast<std::uint32_t>(a) << 24);
}

std::uint8_t default_alpha(std::size_t n) {
  if (n <= 50000) return 255;
  const double t = std::min(1.0, std::log(static_cast<double>(n) / 5e4) / std::log(100.0));
  return static_cast<std::uint8_t>(255.0 - t * (255.0 - 64.0));
}

PointSet categorical_points(const std::vector<float>& xy, const std::vector<std::int32_t>& labels,
                            const std::vector<std::string>& palette,
                            const std::vector<bool>& hidden, const std::vector<bool>& selected,
                            std::uint8_t alpha, std::uint8_t dim_alpha) {
  const std::size_t n = xy.size() / 2;
  if (labels.size() != n) throw Error("", "render", "labels and positions differ in length");
  std::vector<std::uint32_t> lut;
  for (const auto& hex : palette) {
    unsigned r = 0, g = 0, b = 0;
    if (hex.size() != 7 || std::sscanf(hex.c_str() + 1, "%02x%02x%02x", &r, &g, &b) != 3)
      throw Error("", "palette", "expected #rrggbb, got '" + hex + "'");
    lut.push_back(pack_rgba(static_cast<std::uint8_t>(r), static_cast<std::uint8_t>(g),
                            static_cast<std::uint8_t>(b), 0));
  }
  PointSet p;
  p.positions.resize(n);
  p.colors.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    p.positions[i] = {xy[2 * i], xy[2 * i + 1]};
    const std::int32_t l = labels[i];
    std::uint32_t rgb =
        (l >= 0 && static_cast<std::size_t>(l) < lut.size()) ? lut[l] : pack_rgba(160, 160, 160, 0);
    std::uint8_t a = alpha;
    if (l >= 0 && static_cast<std::size_t>(l) < hidden.size() && hidden[l])
      a = 0;
    else if (!selected.empty() && !selected[i])
      a = dim_alpha, rgb = pack_rgba(190, 190, 190, 0);  // grey: stacked dim points stay grey
    p.colors[i] = rgb | (static_cast<std::uint32_t>(a) << 24);
  }
  return p;
}

void Camera::fit(const PointSet& points, float width, float height, float margin) {
  // Non-finite positions (a stored embedding with NaN or Inf rows) are not drawn and must not
  // pull the view to infinity.
  glm::vec2 lo(std::numeric_limits<float>::max()), hi(std::numeric_limits<float>::lowest());
  for (auto p : points.positions)
    if (std::isfinite(p.x) && std::isfinite(p.y)) {
      lo = glm::min(lo, p);
      hi = glm::max(hi, p);
    }
  fit_box(lo, hi, width, height, margin);
}

void Camera::fit_box(glm::vec2 lo, glm::vec2 hi, float width, float height, float margin) {
  width_ = std::max(1.0f, width);
  height_ = std::max(1.0f, height);
  if (!(lo.x <= hi.x && lo.y <= hi.y)) {  // nothing finite
    center_ = {0, 0};
    pixels_per_unit_ = 1;
    return;
  }
  center_ = (lo + hi) * 0.5f;
  const glm::vec2 extent = glm::max(hi - lo, glm::vec2(1e-6f));
  const float usable = 1.0f - 2.0f * margin;
  pixels_per_unit_ = std::min(width_ * usable / extent.x, height_ * usable / extent.y);
}

void Camera::pan_pixels(float dx, float dy) {
  center_.x -= dx / pixels_per_unit_;
  center_.y += dy / pixels_per_unit_;
}

void Camera::zoom_at(float px, float py, float factor) {
  const glm::vec2 before = to_world({px, py});
  pixels_per_unit_ = std::clamp(pixels_per_unit_ * factor, 1e-6f, 1e9f);
  const glm::vec2 after = to_world({px, py});
  center_ += before - after;
}

glm::vec2 Camera::scale() const {
  return {2.0f * pixels_per_unit_ / width_, -2.0f * pixels_per_unit_ / height_};
}

glm::vec2 Camera::offset() const {
  return -center_ * scale();
}

glm::vec2 Camera::to_pixels(glm::vec2 world) const {
  const glm::vec2 ndc = world * scale() + offset();
  return {(ndc.x + 1.0f) * 0.5f * width_, (ndc.y + 1.0f) * 0.5f * height_};
}

glm::vec2 Camera::to_world(glm::vec2 pixels) const {
  const glm::vec2 ndc{pixels.x / width_ * 2.0f - 1.0f, pixels.y / height_ * 2.0f - 1.0f};
  return (ndc - offset()) / scale();
}

PointSet outline_dots(const std::vector<glm::vec2>& vertices, bool closed, const Camera& camera,
                      float spacing, std::uint32_t color) {
  PointSet dots;
  if (vertices.empty() || spacing <= 0) return dots;
  const std::size_t edges = closed ? vertices.size() : vertices.size() - 1;
  float carry = 0;  // distance already walked past the last dot
  for (std::size_t e = 0; e < edges; ++e) {
    const glm::vec2 a = camera.to_pixels(vertices[e]);
    const glm::vec2 b = camera.to_pixels(vertices[(e + 1) % vertices.size()]);
    const float length = glm::length(b - a);
    float t = carry > 0 ? spacing - carry : 0;
    for (; t <= length; t += spacing)
      dots.positions.push_back(camera.to_world(length > 0 ? a + (b - a) * (t / length) : a));
    carry = length - (t - spacing);
  }
  if (vertices.size() == 1) dots.positions.push_back(vertices.front());
  dots.colors.assign(dots.positions.size(), color);
  return dots;
}

}  // namespace orrery::render
