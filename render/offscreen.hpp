// Offscreen rendering of a point scene into an RGBA8 image of any size, with its own headless
// Vulkan instance and device (Mesa lavapipe in CI). Used for figure export and pixel tests.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <vulkan/vulkan.h>

#include <array>

#include "scene.hpp"

namespace orrery::render {

class SharedBuffer;
class SharedSemaphore;

struct Image {
  std::uint32_t width = 0, height = 0;
  std::vector<std::uint8_t> rgba;  // row-major, top row first
  // Timings: copying the points to the device, and each frame drawn (submit to fence).
  double upload_ms = 0;
  std::vector<double> frame_ms;
  std::array<std::uint8_t, 4> pixel(std::uint32_t x, std::uint32_t y) const {
    const std::size_t i = (static_cast<std::size_t>(y) * width + x) * 4;
    return {rgba[i], rgba[i + 1], rgba[i + 2], rgba[i + 3]};
  }
};

struct RenderOptions {
  std::uint32_t width = 800, height = 800;
  float point_size = 4.0f;  // pixels
  std::array<float, 4> background{1.f, 1.f, 1.f, 1.f};
  int frames = 1;  // draw the scene this many times (benchmarks); the image is the last one
  // Positions from a shared buffer (written by CUDA) instead of points.positions, after waiting
  // on `wait` when given. The colours still come from the PointSet.
  const SharedBuffer* positions = nullptr;
  const SharedSemaphore* wait = nullptr;
  // Or positions from this buffer of at least as many float2 (LayoutStream::positions()).
  VkBuffer position_buffer = VK_NULL_HANDLE;
  // Sprites (point_pipeline.hpp, drawing order decides overlaps) or compute splatting
  // (splat_pipeline.hpp, order-independent); auto splats from kSplatPoints points on.
  enum class Points { Auto, Sprites, Splat };
  Points points = Points::Auto;
  static constexpr std::size_t kSplatPoints = 2000000;
};

class OffscreenRenderer {
 public:
  OffscreenRenderer();
  ~OffscreenRenderer();
  OffscreenRenderer(const OffscreenRenderer&) = delete;
  OffscreenRenderer& operator=(const OffscreenRenderer&) = delete;

  // Renders `points` as seen by `camera` (resized to the image). Throws orrery::Error on failure.
  Image render(const PointSet& points, Camera camera, const RenderOptions& options);
  std::string device_name() const;

  // Whether buffers and semaphores can be shared with CUDA (render/interop.hpp), and the
  // device's UUID (to match it with a CUDA device's).
  bool interop_supported() const;
  std::array<std::uint8_t, 16> device_uuid() const;
  struct Context {
    VkPhysicalDevice physical;
    VkDevice device;
    VkQueue queue;
    VkCommandPool pool;
    std::uint32_t queue_family = VK_QUEUE_FAMILY_IGNORED;  // the queue's (ownership transfers)
  };
  Context context() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace orrery::render
