#include "gpu_selection.hpp"

#include "selection.hpp"
#include "shaders/select_comp.h"
#include "vk_check.hpp"
#include "vk_util.hpp"

namespace orrery::render {
namespace {

struct SelectPush {
  float lo[2];
  float hi[2];
  std::uint32_t count, vertices, slabs, mode;
};

}  // namespace

GpuSelection::GpuSelection(const OffscreenRenderer::Context& context) : ctx_(context) {
  descriptors_ = make_storage_descriptors(ctx_.device, 5, VK_SHADER_STAGE_COMPUTE_BIT);
  VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(SelectPush)};
  VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  layout_info.setLayoutCount = 1;
  layout_info.pSetLayouts = &descriptors_.layout;
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
  for (GpuBuffer* b : {&points_, &polygon_, &slab_start_, &slab_edges_, &inside_})
    destroy_buffer(ctx_.device, *b);
  vkDestroyPipeline(ctx_.device, pipeline_, nullptr);
  vkDestroyPipelineLayout(ctx_.device, layout_, nullptr);
  destroy_storage_descriptors(ctx_.device, descriptors_);
}

void GpuSelection::fill(GpuBuffer& b, const void* data, VkDeviceSize bytes) {
  ensure_buffer(ctx_.physical, ctx_.device, b, bytes, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
                MemoryKind::Host);
  write_buffer(ctx_.device, b, data, bytes);
}

void GpuSelection::set_points(const std::vector<glm::vec2>& points) {
  count_ = points.size();
  fill(points_, points.data(), count_ * sizeof(glm::vec2));
  // Read back by the host: cached memory where the device offers it.
  ensure_buffer(ctx_.physical, ctx_.device, inside_, (count_ + 31) / 32 * sizeof(std::uint32_t),
                VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                MemoryKind::HostCached);
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
  for (GpuBuffer* buf : {&polygon_, &slab_start_, &slab_edges_})
    ensure_buffer(ctx_.physical, ctx_.device, *buf, 16, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
                  MemoryKind::Host);
  return run(glm::min(a, b), glm::max(a, b), 0, 1, 1);
}

std::vector<bool> GpuSelection::run(glm::vec2 lo, glm::vec2 hi, std::uint32_t vertices,
                                    std::uint32_t slabs, std::uint32_t mode) {
  if (count_ == 0) return {};
  write_storage_descriptors(
      ctx_.device, descriptors_.set,
      {points_.buffer, polygon_.buffer, slab_start_.buffer, slab_edges_.buffer, inside_.buffer});
  const VkDeviceSize words = (count_ + 31) / 32 * sizeof(std::uint32_t);
  submit_and_wait(ctx_.device, ctx_.queue, ctx_.pool, [&](VkCommandBuffer cmd) {
    vkCmdFillBuffer(cmd, inside_.buffer, 0, words, 0);
    VkMemoryBarrier zeroed{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    zeroed.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    zeroed.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                         0, 1, &zeroed, 0, nullptr, 0, nullptr);
    const SelectPush pc{{lo.x, lo.y}, {hi.x, hi.y}, static_cast<std::uint32_t>(count_),
                        vertices,     slabs,        mode};
    vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline_);
    vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, layout_, 0, 1, &descriptors_.set,
                            0, nullptr);
    vkCmdPushConstants(cmd, layout_, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof pc, &pc);
    vkCmdDispatch(cmd, static_cast<std::uint32_t>((count_ + 255) / 256), 1, 1);
    VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
    barrier.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0,
                         1, &barrier, 0, nullptr, 0, nullptr);
  });
  std::vector<std::uint32_t> in((count_ + 31) / 32);
  read_buffer(ctx_.device, inside_, in.data(), words);
  std::vector<bool> out(count_);
  for (std::size_t w = 0; w < in.size(); ++w)
    if (const std::uint32_t bits = in[w])
      for (std::size_t b = 0; b < 32 && 32 * w + b < count_; ++b)
        if (bits >> b & 1u) out[32 * w + b] = true;
  return out;
}

}  // namespace orrery::render
