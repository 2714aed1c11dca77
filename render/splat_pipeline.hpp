// Points drawn by compute splatting (resources/shaders/splat.comp): for millions of points on
// GPUs whose rasterisers are few (the H100 has graphics on 2 of its TPCs), every compute unit
// adds the points' footprints to per-pixel sums, then one full-screen pass composites them.
// Order-independent: overlapping points show their alpha-weighted mean colour, where the
// sprite pipeline (point_pipeline.hpp) shows the last drawn. Same interface otherwise.
#pragma once

#include <vulkan/vulkan.h>

#include "scene.hpp"
#include "vk_util.hpp"

namespace orrery::render {

class SplatPipeline {
 public:
  SplatPipeline(VkPhysicalDevice physical, VkDevice device, VkRenderPass render_pass,
                VkSampleCountFlagBits samples);
  ~SplatPipeline();
  SplatPipeline(const SplatPipeline&) = delete;
  SplatPipeline& operator=(const SplatPipeline&) = delete;

  // As PointPipeline::upload / use_positions; not while a frame using the buffers is in flight.
  void upload(const PointSet& points);
  void use_positions(VkBuffer buffer);
  // Outside a render pass: clears the per-pixel sums for `extent` and splats every point.
  void record_splat(VkCommandBuffer cmd, const Camera& camera, VkExtent2D extent, float point_size);
  // Inside the render pass that follows: composites the sums over what the pass drew.
  void record_composite(VkCommandBuffer cmd, VkExtent2D extent) const;
  std::size_t count() const { return count_; }

 private:
  void update_descriptors();

  VkPhysicalDevice physical_;
  VkDevice device_;
  StorageDescriptors descriptors_;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  VkPipeline splat_ = VK_NULL_HANDLE, composite_ = VK_NULL_HANDLE;
  GpuBuffer positions_, colors_, accum_;
  VkBuffer external_positions_ = VK_NULL_HANDLE;
  std::size_t count_ = 0;
  VkExtent2D accum_extent_{0, 0};
};

}  // namespace orrery::render
