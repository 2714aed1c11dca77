#include "point_pipeline.hpp"

#include <cstring>

#include "shaders/points_frag.h"
#include "shaders/points_vert.h"
#include "vk_check.hpp"

namespace orrery::render {
namespace {

struct PushConstants {
  float scale[2];
  float offset[2];
  float viewport[2];
  float point_size;
  float pad;
};

}  // namespace

PointPipeline::PointPipeline(VkPhysicalDevice physical, VkDevice device, VkRenderPass render_pass,
                             VkSampleCountFlagBits samples)
    : physical_(physical), device_(device) {
  VkShaderModule vert = make_shader_module(device, k_points_vert_spv, sizeof k_points_vert_spv);
  VkShaderModule frag = make_shader_module(device, k_points_frag_spv, sizeof k_points_frag_spv);

  VkPushConstantRange range{VK_SHADER_STAGE_VERTEX_BIT | VK_SHADER_STAGE_FRAGMENT_BIT, 0,
                            sizeof(PushConstants)};
  VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  layout_info.pushConstantRangeCount = 1;
  layout_info.pPushConstantRanges = &range;
  ORRERY_VK_CHECK(vkCreatePipelineLayout(device, &layout_info, nullptr, &layout_));

  VkVertexInputBindingDescription bindings[2] = {
      {0, sizeof(float) * 2, VK_VERTEX_INPUT_RATE_INSTANCE},
      {1, sizeof(std::uint32_t), VK_VERTEX_INPUT_RATE_INSTANCE}};
  VkVertexInputAttributeDescription attributes[2] = {{0, 0, VK_FORMAT_R32G32_SFLOAT, 0},
                                                     {1, 1, VK_FORMAT_R8G8B8A8_UNORM, 0}};
  VkPipelineVertexInputStateCreateInfo vertex_input{
      VK_STRUCTURE_TYPE_PIPELINE_VERTEX_INPUT_STATE_CREATE_INFO};
  vertex_input.vertexBindingDescriptionCount = 2;
  vertex_input.pVertexBindingDescriptions = bindings;
  vertex_input.vertexAttributeDescriptionCount = 2;
  vertex_input.pVertexAttributeDescriptions = attributes;

  try {
    pipeline_ = make_blended_pipeline(device, layout_, render_pass, samples, vert, frag,
                                      vertex_input, VK_PRIMITIVE_TOPOLOGY_TRIANGLE_STRIP);
  } catch (...) {
    vkDestroyShaderModule(device, vert, nullptr);
    vkDestroyShaderModule(device, frag, nullptr);
    vkDestroyPipelineLayout(device, layout_, nullptr);
    throw;
  }
  vkDestroyShaderModule(device, vert, nullptr);
  vkDestroyShaderModule(device, frag, nullptr);
}

PointPipeline::~PointPipeline() {
  destroy_buffer(device_, positions_);
  destroy_buffer(device_, colors_);
  vkDestroyPipeline(device_, pipeline_, nullptr);
  vkDestroyPipelineLayout(device_, layout_, nullptr);
}

void PointPipeline::upload(const PointSet& points) {
  external_positions_ = VK_NULL_HANDLE;
  count_ = points.size();
  if (count_ == 0) return;
  auto copy = [&](GpuBuffer& b, const void* src, VkDeviceSize bytes) {
    ensure_buffer(physical_, device_, b, bytes, VK_BUFFER_USAGE_VERTEX_BUFFER_BIT,
                  MemoryKind::Host);
    write_buffer(device_, b, src, bytes);
  };
  copy(positions_, points.positions.data(), count_ * sizeof(glm::vec2));
  copy(colors_, points.colors.data(), count_ * sizeof(std::uint32_t));
}

void PointPipeline::record(VkCommandBuffer cmd, const Camera& camera, VkExtent2D extent,
                           float point_size) const {
  VkViewport vp{0, 0, static_cast<float>(extent.width), static_cast<float>(extent.height), 0, 1};
  VkRect2D scissor{{0, 0}, extent};
  vkCmdSetViewport(cmd, 0, 1, &vp);
  vkCmdSetScissor(cmd, 0, 1, &scissor);
  if (count_ == 0) return;
  vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, pipeline_);
  const glm::vec2 s = camera.scale(), o = camera.offset();
  PushConstants pc{{s.x, s.y},
                   {o.x, o.y},
                   {static_cast<float>(extent.width), static_cast<float>(extent.height)},
                   point_size,
                   0.0f};
  vkCmdPushConstants(cmd, layout_, VK_SHADER_STAGE_VERTEX_BIT | VK_SHADER_STAGE_FRAGMENT_BIT, 0,
                     sizeof pc, &pc);
  VkBuffer buffers[2] = {external_positions_ ? external_positions_ : positions_.buffer,
                         colors_.buffer};
  VkDeviceSize offsets[2] = {0, 0};
  vkCmdBindVertexBuffers(cmd, 0, 2, buffers, offsets);
  vkCmdDraw(cmd, 4, static_cast<std::uint32_t>(count_), 0, 0);
}

}  // namespace orrery::render
