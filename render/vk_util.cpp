#include "vk_util.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "vk_check.hpp"

namespace orrery::render {

VkShaderModule make_shader_module(VkDevice device, const std::uint32_t* code, std::size_t bytes) {
  VkShaderModuleCreateInfo info{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  info.codeSize = bytes;
  info.pCode = code;
  VkShaderModule module = VK_NULL_HANDLE;
  ORRERY_VK_CHECK(vkCreateShaderModule(device, &info, nullptr, &module));
  return module;
}

std::uint32_t find_memory_type(VkPhysicalDevice physical, std::uint32_t type_bits,
                               VkMemoryPropertyFlags flags) {
  VkPhysicalDeviceMemoryProperties props;
  vkGetPhysicalDeviceMemoryProperties(physical, &props);
  for (std::uint32_t i = 0; i < props.memoryTypeCount; ++i)
    if ((type_bits & (1u << i)) && (props.memoryTypes[i].propertyFlags & flags) == flags) return i;
  throw Error("", "vulkan", "no suitable memory type");
}

void destroy_buffer(VkDevice device, GpuBuffer& b) {
  if (b.buffer) vkDestroyBuffer(device, b.buffer, nullptr);
  if (b.memory) vkFreeMemory(device, b.memory, nullptr);
  b = GpuBuffer{};
}

void ensure_buffer(VkPhysicalDevice physical, VkDevice device, GpuBuffer& b, VkDeviceSize bytes,
                   VkBufferUsageFlags usage, MemoryKind kind) {
  if (b.buffer && b.capacity >= bytes) return;
  destroy_buffer(device, b);
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = std::max<VkDeviceSize>(bytes, 256);
  info.usage = usage;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  ORRERY_VK_CHECK(vkCreateBuffer(device, &info, nullptr, &b.buffer));
  try {  // on failure `b` is left empty, not half made
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(device, b.buffer, &req);
    VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    alloc.allocationSize = req.size;
    const VkMemoryPropertyFlags host =
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    try {
      alloc.memoryTypeIndex = find_memory_type(
          physical, req.memoryTypeBits,
          kind == MemoryKind::Device ? VkMemoryPropertyFlags{VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT}
          : kind == MemoryKind::HostCached ? host | VK_MEMORY_PROPERTY_HOST_CACHED_BIT
                                           : host);
    } catch (const Error&) {
      if (kind != MemoryKind::HostCached) throw;
      alloc.memoryTypeIndex = find_memory_type(physical, req.memoryTypeBits, host);
    }
    ORRERY_VK_CHECK(vkAllocateMemory(device, &alloc, nullptr, &b.memory));
    ORRERY_VK_CHECK(vkBindBufferMemory(device, b.buffer, b.memory, 0));
  } catch (...) {
    destroy_buffer(device, b);
    throw;
  }
  b.capacity = info.size;
}

void write_buffer(VkDevice device, const GpuBuffer& b, const void* data, VkDeviceSize bytes) {
  if (bytes == 0) return;
  void* dst = nullptr;
  ORRERY_VK_CHECK(vkMapMemory(device, b.memory, 0, bytes, 0, &dst));
  std::memcpy(dst, data, bytes);
  vkUnmapMemory(device, b.memory);
}

void read_buffer(VkDevice device, const GpuBuffer& b, void* data, VkDeviceSize bytes) {
  if (bytes == 0) return;
  void* src = nullptr;
  ORRERY_VK_CHECK(vkMapMemory(device, b.memory, 0, bytes, 0, &src));
  std::memcpy(data, src, bytes);
  vkUnmapMemory(device, b.memory);
}

StorageDescriptors make_storage_descriptors(VkDevice device, std::uint32_t bindings,
                                            VkShaderStageFlags stages) {
  StorageDescriptors d;
  std::vector<VkDescriptorSetLayoutBinding> b(bindings);
  for (std::uint32_t i = 0; i < bindings; ++i)
    b[i] = {i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, stages, nullptr};
  VkDescriptorSetLayoutCreateInfo set_info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  set_info.bindingCount = bindings;
  set_info.pBindings = b.data();
  ORRERY_VK_CHECK(vkCreateDescriptorSetLayout(device, &set_info, nullptr, &d.layout));
  VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, bindings};
  VkDescriptorPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  pool_info.maxSets = 1;
  pool_info.poolSizeCount = 1;
  pool_info.pPoolSizes = &size;
  if (VkResult r = vkCreateDescriptorPool(device, &pool_info, nullptr, &d.pool); r != VK_SUCCESS) {
    destroy_storage_descriptors(device, d);
    ORRERY_VK_CHECK(r);
  }
  VkDescriptorSetAllocateInfo alloc{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
  alloc.descriptorPool = d.pool;
  alloc.descriptorSetCount = 1;
  alloc.pSetLayouts = &d.layout;
  if (VkResult r = vkAllocateDescriptorSets(device, &alloc, &d.set); r != VK_SUCCESS) {
    destroy_storage_descriptors(device, d);
    ORRERY_VK_CHECK(r);
  }
  return d;
}

void destroy_storage_descriptors(VkDevice device, StorageDescriptors& d) {
  if (d.pool) vkDestroyDescriptorPool(device, d.pool, nullptr);  // frees the set
  if (d.layout) vkDestroyDescriptorSetLayout(device, d.layout, nullptr);
  d = StorageDescriptors{};
}

void write_storage_descriptors(VkDevice device, VkDescriptorSet set,
                               std::initializer_list<VkBuffer> buffers) {
  std::vector<VkDescriptorBufferInfo> infos;
  for (VkBuffer b : buffers) infos.push_back({b, 0, VK_WHOLE_SIZE});
  std::vector<VkWriteDescriptorSet> writes(infos.size());
  for (std::uint32_t i = 0; i < writes.size(); ++i) {
    writes[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
    writes[i].dstSet = set;
    writes[i].dstBinding = i;
    writes[i].descriptorCount = 1;
    writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[i].pBufferInfo = &infos[i];
  }
  vkUpdateDescriptorSets(device, static_cast<std::uint32_t>(writes.size()), writes.data(), 0,
                         nullptr);
}

VkPipeline make_blended_pipeline(VkDevice device, VkPipelineLayout layout, VkRenderPass pass,
                                 VkSampleCountFlagBits samples, VkShaderModule vert,
                                 VkShaderModule frag,
                                 const VkPipelineVertexInputStateCreateInfo& vertex_input,
                                 VkPrimitiveTopology topology) {
  VkPipelineShaderStageCreateInfo stages[2]{};
  stages[0].sType = stages[1].sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  stages[0].stage = VK_SHADER_STAGE_VERTEX_BIT;
  stages[0].module = vert;
  stages[0].pName = "main";
  stages[1].stage = VK_SHADER_STAGE_FRAGMENT_BIT;
  stages[1].module = frag;
  stages[1].pName = "main";
  VkPipelineInputAssemblyStateCreateInfo assembly{
      VK_STRUCTURE_TYPE_PIPELINE_INPUT_ASSEMBLY_STATE_CREATE_INFO};
  assembly.topology = topology;
  VkPipelineViewportStateCreateInfo viewport{VK_STRUCTURE_TYPE_PIPELINE_VIEWPORT_STATE_CREATE_INFO};
  viewport.viewportCount = 1;
  viewport.scissorCount = 1;
  VkPipelineRasterizationStateCreateInfo raster{
      VK_STRUCTURE_TYPE_PIPELINE_RASTERIZATION_STATE_CREATE_INFO};
  raster.polygonMode = VK_POLYGON_MODE_FILL;
  raster.cullMode = VK_CULL_MODE_NONE;
  raster.frontFace = VK_FRONT_FACE_COUNTER_CLOCKWISE;
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
  // Depth is neither tested nor written; the state is still required when the render pass has
  // a depth attachment (as QVulkanWindow's default pass does).
  VkPipelineDepthStencilStateCreateInfo depth{
      VK_STRUCTURE_TYPE_PIPELINE_DEPTH_STENCIL_STATE_CREATE_INFO};
  depth.depthTestEnable = VK_FALSE;
  depth.depthWriteEnable = VK_FALSE;
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
  info.layout = layout;
  info.renderPass = pass;
  VkPipeline pipeline = VK_NULL_HANDLE;
  ORRERY_VK_CHECK(vkCreateGraphicsPipelines(device, VK_NULL_HANDLE, 1, &info, nullptr, &pipeline));
  return pipeline;
}

void submit_and_wait(VkDevice device, VkQueue queue, VkCommandPool pool,
                     const std::function<void(VkCommandBuffer)>& record, VkSemaphore wait,
                     VkPipelineStageFlags wait_stage, VkSemaphore signal) {
  struct Guard {
    VkDevice device;
    VkCommandPool pool;
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    ~Guard() {
      if (fence) vkDestroyFence(device, fence, nullptr);
      if (cmd) vkFreeCommandBuffers(device, pool, 1, &cmd);
    }
  } g{device, pool};
  VkCommandBufferAllocateInfo cmd_info{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  cmd_info.commandPool = pool;
  cmd_info.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  cmd_info.commandBufferCount = 1;
  ORRERY_VK_CHECK(vkAllocateCommandBuffers(device, &cmd_info, &g.cmd));
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  ORRERY_VK_CHECK(vkBeginCommandBuffer(g.cmd, &begin));
  record(g.cmd);
  ORRERY_VK_CHECK(vkEndCommandBuffer(g.cmd));
  VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  ORRERY_VK_CHECK(vkCreateFence(device, &fence_info, nullptr, &g.fence));
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.waitSemaphoreCount = wait ? 1 : 0;
  submit.pWaitSemaphores = &wait;
  submit.pWaitDstStageMask = &wait_stage;
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &g.cmd;
  submit.signalSemaphoreCount = signal ? 1 : 0;
  submit.pSignalSemaphores = &signal;
  ORRERY_VK_CHECK(vkQueueSubmit(queue, 1, &submit, g.fence));
  ORRERY_VK_CHECK(vkWaitForFences(device, 1, &g.fence, VK_TRUE, UINT64_MAX));
}

}  // namespace orrery::render
