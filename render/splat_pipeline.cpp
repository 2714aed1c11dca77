#include "splat_pipeline.hpp"

#include <cstring>

#include "point_pipeline.hpp"
#include "shaders/composite_frag.h"
#include "shaders/composite_vert.h"
#include "shaders/splat_comp.h"
#include "vk_check.hpp"

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
  VkDescriptorSetLayoutBinding bindings[3]{};
  for (std::uint32_t b = 0; b < 3; ++b) {
    bindings[b].binding = b;
    bindings[b].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    bindings[b].descriptorCount = 1;
    bindings[b].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT | VK_SHADER_STAGE_FRAGMENT_BIT;
  }
  VkDescriptorSetLayoutCreateInfo set_info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  set_info.bindingCount = 3;
  set_info.pBindings = bindings;
  ORRERY_VK_CHECK(vkCreateDescriptorSetLayout(device, &set_info, nullptr, &set_layout_));
  VkDescriptorPoolSize pool_size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 3};
  VkDescriptorPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  pool_info.maxSets = 1;
  pool_info.poolSizeCount = 1;
  pool_info.pPoolSizes = &pool_size;
  ORRERY_VK_CHECK(vkCreateDescriptorPool(device, &pool_info, nullptr, &descriptor_pool_));
  VkDescriptorSetAllocateInfo alloc{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
  alloc.descriptorPool = descriptor_pool_;
  alloc.descriptorSetCount = 1;
  alloc.pSetLayouts = &set_layout_;
  ORRERY_VK_CHECK(vkAllocateDescriptorSets(device, &alloc, &set_));

  VkPushConstantRange range{kStages, 0, sizeof(SplatPush)};
  VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  layout_info.setLayoutCount = 1;
  layout_info.pSetLayouts = &set_layout_;
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
  VkPipelineShaderStageCreateInfo stages[2]{};
  stages[0].sType = stages[1].sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  stages[0].stage = VK_SHADER_STAGE_VERTEX_BIT;
  stages[0].module = vert;
  stages[0].pName = "main";
  stages[1].stage = VK_SHADER_STAGE_FRAGMENT_BIT;
  stages[1].module = frag;
  stages[1].pName = "main";
  VkPipelineVertexInputStateCreateInfo vertex_input{
      VK_STRUCTURE_TYPE_PIPELINE_VERTEX_INPUT_STATE_CREATE_INFO};
  VkPipelineInputAssemblyStateCreateInfo assembly{
      VK_STRUCTURE_TYPE_PIPELINE_INPUT_ASSEMBLY_STATE_CREATE_INFO};
  assembly.topology = VK_PRIMITIVE_TOPOLOGY_TRIANGLE_LIST;
  VkPipelineViewportStateCreateInfo viewport{VK_STRUCTURE_TYPE_PIPELINE_VIEWPORT_STATE_CREATE_INFO};
  viewport.viewportCount = 1;
  viewport.scissorCount = 1;
  VkPipelineRasterizationStateCreateInfo raster{
      VK_STRUCTURE_TYPE_PIPELINE_RASTERIZATION_STATE_CREATE_INFO};
  raster.polygonMode = VK_POLYGON_MODE_FILL;
  raster.cullMode = VK_CULL_MODE_NONE;
  raster.lineWidth = 1.0f;
  VkPipelineMultisampleStateCreateInfo multisample{
      VK_STRUCTURE_TYPE_PIPELINE_MULTISAMPLE_STATE_CREATE_INFO};
  multisample.rasterizationSamples = samples;
  VkPipelineColorBlendAttachmentState blend{};
  blend.blendEnable = VK_TRUE;
  blend.srcColorBlendFactor = VK_BLEND_FACTOR_SRC_ALPHA;
  blend.dstColorBlendFactor = VK_BLEND_FACTOR_ONE_MINUS_SRC_ALPHA;
  blend.colorBlendOp = VK_BLEND_OP_ADD;
  blend.srcAlphaBlendFactor = VK_BLEND_FACTOR_ONE;
  blend.dstAlphaBlendFactor = VK_BLEND_FACTOR_ONE_MINUS_SRC_ALPHA;
  blend.alphaBlendOp = VK_BLEND_OP_ADD;
  blend.colorWriteMask = VK_COLOR_COMPONENT_R_BIT | VK_COLOR_COMPONENT_G_BIT |
                         VK_COLOR_COMPONENT_B_BIT | VK_COLOR_COMPONENT_A_BIT;
  VkPipelineColorBlendStateCreateInfo blend_state{
      VK_STRUCTURE_TYPE_PIPELINE_COLOR_BLEND_STATE_CREATE_INFO};
  blend_state.attachmentCount = 1;
  blend_state.pAttachments = &blend;
  VkPipelineDepthStencilStateCreateInfo depth{
      VK_STRUCTURE_TYPE_PIPELINE_DEPTH_STENCIL_STATE_CREATE_INFO};
  depth.depthCompareOp = VK_COMPARE_OP_ALWAYS;
  VkDynamicState dynamic_states[2] = {VK_DYNAMIC_STATE_VIEWPORT, VK_DYNAMIC_STATE_SCISSOR};
  VkPipelineDynamicStateCreateInfo dynamic{VK_STRUCTURE_TYPE_PIPELINE_DYNAMIC_STATE_CREATE_INFO};
  dynamic.dynamicStateCount = 2;
  dynamic.pDynamicStates = dynamic_states;
  VkGraphicsPipelineCreateInfo info{VK_STRUCTURE_TYPE_GRAPHICS_PIPELINE_CREATE_INFO};
  info.stageCount = 2;
  info.pStages = stages;
  info.pVertexInputState = &vertex_input;
  info.pInputAssemblyState = &assembly;
  info.pViewportState = &viewport;
  info.pRasterizationState = &raster;
  info.pMultisampleState = &multisample;
  info.pColorBlendState = &blend_state;
  info.pDepthStencilState = &depth;
  info.pDynamicState = &dynamic;
  info.layout = layout_;
  info.renderPass = render_pass;
  const VkResult rg =
      vkCreateGraphicsPipelines(device, VK_NULL_HANDLE, 1, &info, nullptr, &composite_);
  vkDestroyShaderModule(device, vert, nullptr);
  vkDestroyShaderModule(device, frag, nullptr);
  ORRERY_VK_CHECK(rg);
}

SplatPipeline::~SplatPipeline() {
  destroy(positions_);
  destroy(colors_);
  destroy(accum_);
  vkDestroyPipeline(device_, composite_, nullptr);
  vkDestroyPipeline(device_, splat_, nullptr);
  vkDestroyPipelineLayout(device_, layout_, nullptr);
  vkDestroyDescriptorPool(device_, descriptor_pool_, nullptr);
  vkDestroyDescriptorSetLayout(device_, set_layout_, nullptr);
}

void SplatPipeline::destroy(Buffer& b) {
  if (b.buffer) vkDestroyBuffer(device_, b.buffer, nullptr);
  if (b.memory) vkFreeMemory(device_, b.memory, nullptr);
  b = Buffer{};
}

void SplatPipeline::ensure(Buffer& b, VkDeviceSize bytes, bool host_visible) {
  if (b.capacity >= bytes && b.buffer) return;
  destroy(b);
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = std::max<VkDeviceSize>(bytes, 256);
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  ORRERY_VK_CHECK(vkCreateBuffer(device_, &info, nullptr, &b.buffer));
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(device_, b.buffer, &req);
  VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex = find_memory_type(
      physical_, req.memoryTypeBits,
      host_visible ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
                   : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
  ORRERY_VK_CHECK(vkAllocateMemory(device_, &alloc, nullptr, &b.memory));
  ORRERY_VK_CHECK(vkBindBufferMemory(device_, b.buffer, b.memory, 0));
  b.capacity = info.size;
}

void SplatPipeline::upload(const PointSet& points) {
  external_positions_ = VK_NULL_HANDLE;
  count_ = points.size();
  auto copy = [&](Buffer& b, const void* src, VkDeviceSize bytes) {
    ensure(b, bytes, true);
    if (bytes == 0) return;
    void* dst = nullptr;
    ORRERY_VK_CHECK(vkMapMemory(device_, b.memory, 0, bytes, 0, &dst));
    std::memcpy(dst, src, bytes);
    vkUnmapMemory(device_, b.memory);
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
  VkDescriptorBufferInfo infos[3] = {
      {external_positions_ ? external_positions_ : positions_.buffer, 0, VK_WHOLE_SIZE},
      {colors_.buffer, 0, VK_WHOLE_SIZE},
      {accum_.buffer, 0, VK_WHOLE_SIZE}};
  VkWriteDescriptorSet writes[3]{};
  for (std::uint32_t b = 0; b < 3; ++b) {
    writes[b].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
    writes[b].dstSet = set_;
    writes[b].dstBinding = b;
    writes[b].descriptorCount = 1;
    writes[b].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[b].pBufferInfo = &infos[b];
  }
  vkUpdateDescriptorSets(device_, 3, writes, 0, nullptr);
}

void SplatPipeline::record_splat(VkCommandBuffer cmd, const Camera& camera, VkExtent2D extent,
                                 float point_size) {
  const VkDeviceSize bytes = VkDeviceSize{extent.width} * extent.height * 5 * 4;
  if (accum_.capacity < bytes || !accum_.buffer) {
    vkDeviceWaitIdle(device_);  // earlier frames may still read the old sums
    ensure(accum_, bytes, false);
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
    vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, layout_, 0, 1, &set_, 0, nullptr);
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
  vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, layout_, 0, 1, &set_, 0, nullptr);
  vkCmdPushConstants(cmd, layout_, kStages, 0, sizeof pc, &pc);
  vkCmdDraw(cmd, 3, 1, 0, 0);
}

}  // namespace orrery::render
