// The point pipeline: instanced round sprites with alpha blending, recorded into any render
// pass (the Qt viewport's swapchain pass or the offscreen export pass). Points live in
// host-visible vertex buffers (the host upload path used when CUDA is absent).
#pragma once

#include <vulkan/vulkan.h>

#include "scene.hpp"

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
  struct Buffer {
    VkBuffer buffer = VK_NULL_HANDLE;
    VkDeviceMemory memory = VK_NULL_HANDLE;
    VkDeviceSize capacity = 0;
  };
  void ensure(Buffer& b, VkDeviceSize bytes);
  void destroy(Buffer& b);

  VkPhysicalDevice physical_;
  VkDevice device_;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  VkPipeline pipeline_ = VK_NULL_HANDLE;
  Buffer positions_, colors_;
  VkBuffer external_positions_ = VK_NULL_HANDLE;
  std::size_t count_ = 0;
};

VkShaderModule make_shader_module(VkDevice device, const std::uint32_t* code, std::size_t bytes);

// Index of a memory type allowed by `type_bits` with all of `flags`.
std::uint32_t find_memory_type(VkPhysicalDevice physical, std::uint32_t type_bits,
                               VkMemoryPropertyFlags flags);

}  // namespace orrery::render
