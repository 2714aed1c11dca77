// Lasso and brush selection computed on the Vulkan device (resources/shaders/select.comp): the
// points are uploaded once, then each query costs one dispatch and a readback — for tens of
// millions of points on a GPU. Same answers as render/selection.hpp's CPU path (the slab edges
// carry a one-slab margin against the device's division rounding).
#pragma once

#include <vulkan/vulkan.h>

#include <vector>

#include "offscreen.hpp"
#include "scene.hpp"
#include "vk_util.hpp"

namespace orrery::render {

class GpuSelection {
 public:
  explicit GpuSelection(const OffscreenRenderer::Context& context);
  ~GpuSelection();
  GpuSelection(const GpuSelection&) = delete;
  GpuSelection& operator=(const GpuSelection&) = delete;

  void set_points(const std::vector<glm::vec2>& points);
  std::vector<bool> in_polygon(const std::vector<glm::vec2>& polygon);
  std::vector<bool> in_rect(glm::vec2 a, glm::vec2 b);

 private:
  void fill(GpuBuffer& b, const void* data, VkDeviceSize bytes);
  std::vector<bool> run(glm::vec2 lo, glm::vec2 hi, std::uint32_t vertices, std::uint32_t slabs,
                        std::uint32_t mode);

  OffscreenRenderer::Context ctx_;
  StorageDescriptors descriptors_;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  VkPipeline pipeline_ = VK_NULL_HANDLE;
  GpuBuffer points_, polygon_, slab_start_, slab_edges_, inside_;
  std::size_t count_ = 0;
};

}  // namespace orrery::render
