#include "splat_pipeline.hpp"

#include "shaders/composite_frag.h"
#include "shaders/composite_vert.h"
#include "shaders/splat_comp.h"
#include "vk_check.hpp"
#include "vk_util.hpp"

namespace orrery::render {
namespace {

struct SplatPush {
  float scale[2];
  float offset[2];
  float viewport[2];
  float point_size;
  std::uint32_t count;
};

constexpr VkShaderStageFlags kStages =
    VK_SHADER_STAGE_COMPUTE_BIT | VK_SHADER_STAGE_VERTEX_BIT | VK_SHADER_STAGE_FRAGMENT_BIT;

}  // namespace

SplatPipeline::SplatPipeline(VkPhysicalDevice physical, VkDevice device, VkRenderPass render_pass,
                             VkSampleCountFlagBits samples)
    : physical_(physical), device_(device) {
  descriptors_ = make_storage_descriptors(
      device, 3, VK_SHADER_STAGE_COMPUTE_BIT | VK_SHADER_STAGE_FRAGMENT_BIT);
  VkPushConstantRange range{kStages, 0, sizeof(SplatPush)};
  VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  layout_info.setLayoutCount = 1;
  layout_info.pSetLayouts = &descriptors_.layout;
  layout_info.pushConstantRangeCount = 1;
  layout_info.pPushConstantRanges = &range;
  ORRERY_VK_CHECK(vkCreatePipelineLayout(device, &layout_info, nullptr, &layout_));

  VkShaderModule comp = make_shader_module(device, k_splat_comp_spv, sizeof k_splat_comp_spv);
  VkComputePipelineCreateInfo compute{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  compute.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  compute.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  compute.stage.module = comp;
  compute.stage.pName = "main";
  compute.layout = layout_;
  const VkResult rc =
      vkCreateComputePipelines(device, VK_NULL_HANDLE, 1, &compute, nullptr, &splat_);
  vkDestroyShaderModule(device, comp, nullptr);
  ORRERY_VK_CHECK(rc);

  VkShaderModule vert =
      make_shader_module(device, k_composite_vert_spv, sizeof k_composite_vert_spv);
  VkShaderModule frag =
      make_shader_module(device, k_composite_frag_spv, sizeof k_composite_frag_spv);
  const VkPipelineVertexInputStateCreateInfo no_vertices{
      VK_STRUCTURE_TYPE_PIPELINE_VERTEX_INPUT_STATE_CREATE_INFO};
  try {
    composite_ = make_blended_pipeline(device, layout_, render_pass, samples, vert, frag,
                                       no_vertices, VK_PRIMITIVE_TOPOLOGY_TRIANGLE_LIST);
  } catch (...) {
    vkDestroyShaderModule(device, vert, nullptr);
    vkDestroyShaderModule(device, frag, nullptr);
    throw;
  }
  vkDestroyShaderModule(device, vert, nullptr);
  vkDestroyShaderModule(device, frag, nullptr);
}

SplatPipeline::~SplatPipeline() {
  for (GpuBuffer* b : {&positions_, &colors_, &accum_}) destroy_buffer(device_, *b);
  vkDestroyPipeline(device_, composite_, nullptr);
  vkDestroyPipeline(device_, splat_, nullptr);
  vkDestroyPipelineLayout(device_, layout_, nullptr);
  destroy_storage_descriptors(device_, descriptors_);
}

void SplatPipeline::upload(const PointSet& points) {
  external_positions_ = VK_NULL_HANDLE;
  count_ = points.size();
  auto copy = [&](GpuBuffer& b, const void* src, VkDeviceSize bytes) {
    ensure_buffer(physical_, device_, b, bytes, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
                  MemoryKind::Host);
    write_buffer(device_, b, src, bytes);
  };
  copy(positions_, points.positions.data(), count_ * sizeof(glm::vec2));
  copy(colors_, points.colors.data(), count_ * sizeof(std::uint32_t));
  update_descriptors();
}

void SplatPipeline::use_positions(VkBuffer buffer) {
  external_positions_ = buffer;
  update_descriptors();
}

void SplatPipeline::update_descriptors() {
  if (!accum_.buffer || !colors_.buffer) return;
  write_storage_descriptors(device_, descriptors_.set,
                            {external_positions_ ? external_positions_ : positions_.buffer,
                             colors_.buffer, accum_.buffer});
}

void SplatPipeline::record_splat(VkCommandBuffer cmd, const Camera& camera, VkExtent2D extent,
                                 float point_size) {
  const VkDeviceSize bytes = VkDeviceSize{extent.width} * extent.height * 5 * 4;
  if (accum_.capacity < bytes || !accum_.buffer) {
    vkDeviceWaitIdle(device_);  // earlier frames may still read the old sums
    ensure_buffer(physical_, device_, accum_, bytes,
                  VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                  MemoryKind::Device);
    update_descriptors();
  }
  accum_extent_ = extent;
  // The previous frame's composite reads the sums this frame clears (frames share them).
  vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
                       0, 0, nullptr, 0, nullptr, 0, nullptr);
  vkCmdFillBuffer(cmd, accum_.buffer, 0, bytes, 0);
  VkMemoryBarrier cleared{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  cleared.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  cleared.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
  vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0,
                       1, &cleared, 0, nullptr, 0, nullptr);
  if (count_ > 0) {
    const glm::vec2 s = camera.scale(), o = camera.offset();
    const SplatPush pc{{s.x, s.y},
                       {o.x, o.y},
                       {static_cast<float>(extent.width), static_cast<float>(extent.height)},
                       point_size,
                       static_cast<std::uint32_t>(count_)};
    vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, splat_);
    vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, layout_, 0, 1, &descriptors_.set,
                            0, nullptr);
    vkCmdPushConstants(cmd, layout_, kStages, 0, sizeof pc, &pc);
    vkCmdDispatch(cmd, static_cast<std::uint32_t>((count_ + 255) / 256), 1, 1);
  }
  VkMemoryBarrier splatted{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  splatted.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
  splatted.dstAccessMask = VK_ACCESS_SHADER_READ_BIT;
  vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                       VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT, 0, 1, &splatted, 0, nullptr, 0,
                       nullptr);
}

void SplatPipeline::record_composite(VkCommandBuffer cmd, VkExtent2D extent) const {
  VkViewport vp{0, 0, static_cast<float>(extent.width), static_cast<float>(extent.height), 0, 1};
  VkRect2D scissor{{0, 0}, extent};
  vkCmdSetViewport(cmd, 0, 1, &vp);
  vkCmdSetScissor(cmd, 0, 1, &scissor);
  if (accum_extent_.width != extent.width || accum_extent_.height != extent.height)
    return;  // record_splat was not called for this extent
  const SplatPush pc{{0, 0},
                     {0, 0},
                     {static_cast<float>(extent.width), static_cast<float>(extent.height)},
                     0.0f,
                     static_cast<std::uint32_t>(count_)};
  vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, composite_);
  vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, layout_, 0, 1, &descriptors_.set, 0,
                          nullptr);
  vkCmdPushConstants(cmd, layout_, kStages, 0, sizeof pc, &pc);
  vkCmdDraw(cmd, 3, 1, 0, 0);
}

}  // namespace orrery::render
