// The point pipeline: instanced round sprites with alpha blending, recorded into any render
// pass (the Qt viewport's swapchain pass or the offscreen export pass). Points live in
// host-visible vertex buffers (the host upload path), or positions come from a buffer CUDA
// writes (use_positions, render/interop.hpp). From millions of points splat_pipeline.hpp is
// faster on GPUs with few rasterisers.
#pragma once

#include <vulkan/vulkan.h>

#include "scene.hpp"
#include "vk_util.hpp"

namespace orrery::render {

class PointPipeline {
 public:
  PointPipeline(VkPhysicalDevice physical, VkDevice device, VkRenderPass render_pass,
                VkSampleCountFlagBits samples);
  ~PointPipeline();
  PointPipeline(const PointPipeline&) = delete;
  PointPipeline& operator=(const PointPipeline&) = delete;

  // Copies positions and colours into device-visible buffers (grows them as needed). Must not be
  // called while a frame that uses the buffers is in flight.
  void upload(const PointSet& points);
  // Draws positions from `buffer` (a buffer CUDA writes, render/interop.hpp) instead of the
  // uploaded ones, until the next upload.
  void use_positions(VkBuffer buffer) { external_positions_ = buffer; }
  void record(VkCommandBuffer cmd, const Camera& camera, VkExtent2D extent, float point_size) const;
  std::size_t count() const { return count_; }

 private:
  VkPhysicalDevice physical_;
  VkDevice device_;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  VkPipeline pipeline_ = VK_NULL_HANDLE;
  GpuBuffer positions_, colors_;
  VkBuffer external_positions_ = VK_NULL_HANDLE;
  std::size_t count_ = 0;
};

}  // namespace orrery::render
