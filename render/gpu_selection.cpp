#include "gpu_selection.hpp"

#include <cstring>

#include "point_pipeline.hpp"
#include "selection.hpp"
#include "shaders/select_comp.h"
#include "vk_check.hpp"

namespace orrery::render {
namespace {

struct SelectPush {
  float lo[2];
  float hi[2];
  std::uint32_t count, vertices, slabs, mode;
};

}  // namespace

GpuSelection::GpuSelection(const OffscreenRenderer::Context& context) : ctx_(context) {
  VkDescriptorSetLayoutBinding bindings[5]{};
  for (std::uint32_t b = 0; b < 5; ++b) {
    bindings[b].binding = b;
    bindings[b].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    bindings[b].descriptorCount = 1;
    bindings[b].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
  }
  VkDescriptorSetLayoutCreateInfo set_info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  set_info.bindingCount = 5;
  set_info.pBindings = bindings;
  ORRERY_VK_CHECK(vkCreateDescriptorSetLayout(ctx_.device, &set_info, nullptr, &set_layout_));
  VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 5};
  VkDescriptorPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  pool_info.maxSets = 1;
  pool_info.poolSizeCount = 1;
  pool_info.pPoolSizes = &size;
  ORRERY_VK_CHECK(vkCreateDescriptorPool(ctx_.device, &pool_info, nullptr, &descriptor_pool_));
  VkDescriptorSetAllocateInfo alloc{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
  alloc.descriptorPool = descriptor_pool_;
  alloc.descriptorSetCount = 1;
  alloc.pSetLayouts = &set_layout_;
  ORRERY_VK_CHECK(vkAllocateDescriptorSets(ctx_.device, &alloc, &set_));
  VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(SelectPush)};
  VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  layout_info.setLayoutCount = 1;
  layout_info.pSetLayouts = &set_layout_;
  layout_info.pushConstantRangeCount = 1;
  layout_info.pPushConstantRanges = &range;
  ORRERY_VK_CHECK(vkCreatePipelineLayout(ctx_.device, &layout_info, nullptr, &layout_));
  VkShaderModule module =
      make_shader_module(ctx_.device, k_select_comp_spv, sizeof k_select_comp_spv);
  VkComputePipelineCreateInfo info{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  info.stage.module = module;
  info.stage.pName = "main";
  info.layout = layout_;
  const VkResult r =
      vkCreateComputePipelines(ctx_.device, VK_NULL_HANDLE, 1, &info, nullptr, &pipeline_);
  vkDestroyShaderModule(ctx_.device, module, nullptr);
  ORRERY_VK_CHECK(r);
}

GpuSelection::~GpuSelection() {
  for (Buffer* b : {&points_, &polygon_, &slab_start_, &slab_edges_, &inside_}) destroy(*b);
  vkDestroyPipeline(ctx_.device, pipeline_, nullptr);
  vkDestroyPipelineLayout(ctx_.device, layout_, nullptr);
  vkDestroyDescriptorPool(ctx_.device, descriptor_pool_, nullptr);
  vkDestroyDescriptorSetLayout(ctx_.device, set_layout_, nullptr);
}

void GpuSelection::destroy(Buffer& b) {
  if (b.buffer) vkDestroyBuffer(ctx_.device, b.buffer, nullptr);
  if (b.memory) vkFreeMemory(ctx_.device, b.memory, nullptr);
  b = Buffer{};
}

void GpuSelection::ensure(Buffer& b, VkDeviceSize bytes) {
  bytes = std::max<VkDeviceSize>(bytes, 16);
  if (b.buffer && b.capacity >= bytes) return;
  destroy(b);
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = bytes;
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  ORRERY_VK_CHECK(vkCreateBuffer(ctx_.device, &info, nullptr, &b.buffer));
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(ctx_.device, b.buffer, &req);
  VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.allocationSize = req.size;
  // Cached where the device offers it: the host reads the answers back (uncached, write-combined
  // memory reads slowly).
  const VkMemoryPropertyFlags host =
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  try {
    alloc.memoryTypeIndex = find_memory_type(ctx_.physical, req.memoryTypeBits,
                                             host | VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
  } catch (const Error&) {
    alloc.memoryTypeIndex = find_memory_type(ctx_.physical, req.memoryTypeBits, host);
  }
  ORRERY_VK_CHECK(vkAllocateMemory(ctx_.device, &alloc, nullptr, &b.memory));
  ORRERY_VK_CHECK(vkBindBufferMemory(ctx_.device, b.buffer, b.memory, 0));
  b.capacity = bytes;
}

void GpuSelection::fill(Buffer& b, const void* data, VkDeviceSize bytes) {
  ensure(b, bytes);
  if (bytes == 0) return;
  void* dst = nullptr;
  ORRERY_VK_CHECK(vkMapMemory(ctx_.device, b.memory, 0, bytes, 0, &dst));
  std::memcpy(dst, data, bytes);
  vkUnmapMemory(ctx_.device, b.memory);
}

void GpuSelection::set_points(const std::vector<glm::vec2>& points) {
  count_ = points.size();
  fill(points_, points.data(), count_ * sizeof(glm::vec2));
  ensure(inside_, (count_ + 31) / 32 * sizeof(std::uint32_t));
}

std::vector<bool> GpuSelection::in_polygon(const std::vector<glm::vec2>& polygon) {
  if (polygon.size() < 3) return std::vector<bool>(count_, false);
  const PolygonSlabs s = polygon_slabs(polygon, 1);
  fill(polygon_, polygon.data(), polygon.size() * sizeof(glm::vec2));
  fill(slab_start_, s.start.data(), s.start.size() * sizeof(std::uint32_t));
  fill(slab_edges_, s.edges.data(), s.edges.size() * sizeof(std::uint32_t));
  return run(s.lo, s.hi, static_cast<std::uint32_t>(polygon.size()),
             static_cast<std::uint32_t>(s.slabs), 0);
}

std::vector<bool> GpuSelection::in_rect(glm::vec2 a, glm::vec2 b) {
  for (Buffer* buf : {&polygon_, &slab_start_, &slab_edges_}) ensure(*buf, 16);
  return run(glm::min(a, b), glm::max(a, b), 0, 1, 1);
}

std::vector<bool> GpuSelection::run(glm::vec2 lo, glm::vec2 hi, std::uint32_t vertices,
                                    std::uint32_t slabs, std::uint32_t mode) {
  if (count_ == 0) return {};
  Buffer* buffers[5] = {&points_, &polygon_, &slab_start_, &slab_edges_, &inside_};
  VkDescriptorBufferInfo infos[5];
  VkWriteDescriptorSet writes[5]{};
  for (std::uint32_t b = 0; b < 5; ++b) {
    infos[b] = {buffers[b]->buffer, 0, VK_WHOLE_SIZE};
    writes[b].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
    writes[b].dstSet = set_;
    writes[b].dstBinding = b;
    writes[b].descriptorCount = 1;
    writes[b].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[b].pBufferInfo = &infos[b];
  }
  vkUpdateDescriptorSets(ctx_.device, 5, writes, 0, nullptr);
  struct Guard {
    VkDevice device;
    VkCommandPool pool;
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    ~Guard() {
      if (fence) vkDestroyFence(device, fence, nullptr);
      if (cmd) vkFreeCommandBuffers(device, pool, 1, &cmd);
    }
  } g{ctx_.device, ctx_.pool};
  VkCommandBufferAllocateInfo cmd_info{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  cmd_info.commandPool = ctx_.pool;
  cmd_info.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  cmd_info.commandBufferCount = 1;
  ORRERY_VK_CHECK(vkAllocateCommandBuffers(ctx_.device, &cmd_info, &g.cmd));
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  ORRERY_VK_CHECK(vkBeginCommandBuffer(g.cmd, &begin));
  const SelectPush pc{{lo.x, lo.y}, {hi.x, hi.y}, static_cast<std::uint32_t>(count_),
                      vertices,     slabs,        mode};
  const VkDeviceSize words = (count_ + 31) / 32 * sizeof(std::uint32_t);
  vkCmdFillBuffer(g.cmd, inside_.buffer, 0, words, 0);
  VkMemoryBarrier zeroed{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  zeroed.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  zeroed.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
  vkCmdPipelineBarrier(g.cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                       0, 1, &zeroed, 0, nullptr, 0, nullptr);
  vkCmdBindPipeline(g.cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline_);
  vkCmdBindDescriptorSets(g.cmd, VK_PIPELINE_BIND_POINT_COMPUTE, layout_, 0, 1, &set_, 0, nullptr);
  vkCmdPushConstants(g.cmd, layout_, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof pc, &pc);
  vkCmdDispatch(g.cmd, static_cast<std::uint32_t>((count_ + 255) / 256), 1, 1);
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  vkCmdPipelineBarrier(g.cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0,
                       1, &barrier, 0, nullptr, 0, nullptr);
  ORRERY_VK_CHECK(vkEndCommandBuffer(g.cmd));
  VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  ORRERY_VK_CHECK(vkCreateFence(ctx_.device, &fence_info, nullptr, &g.fence));
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &g.cmd;
  ORRERY_VK_CHECK(vkQueueSubmit(ctx_.queue, 1, &submit, g.fence));
  ORRERY_VK_CHECK(vkWaitForFences(ctx_.device, 1, &g.fence, VK_TRUE, UINT64_MAX));
  void* mapped = nullptr;
  ORRERY_VK_CHECK(vkMapMemory(ctx_.device, inside_.memory, 0, words, 0, &mapped));
  const auto* in = static_cast<const std::uint32_t*>(mapped);
  std::vector<bool> out(count_);
  for (std::size_t w = 0; w < (count_ + 31) / 32; ++w)
    if (const std::uint32_t bits = in[w])
      for (std::size_t b = 0; b < 32 && 32 * w + b < count_; ++b)
        if (bits >> b & 1u) out[32 * w + b] = true;
  vkUnmapMemory(ctx_.device, inside_.memory);
  return out;
}

}  // namespace orrery::render
