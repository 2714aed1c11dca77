#include "layout_stream.hpp"

#include <cstring>

#include "vk_check.hpp"
#include "vk_util.hpp"

namespace orrery::render {
namespace {

// Transfer writes made available to every later read (the frames that draw, the next copy).
void after_transfer(VkCommandBuffer cmd) {
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_MEMORY_READ_BIT;
  vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0,
                       1, &barrier, 0, nullptr, 0, nullptr);
}

// The source buffer passes from the external API (CUDA) to this queue's family for the copy
// and back after it (an exclusive buffer shared through external memory).
void ownership(VkCommandBuffer cmd, VkBuffer buffer, std::uint32_t family, bool acquire) {
  VkBufferMemoryBarrier b{VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER};
  b.srcAccessMask = 0;
  b.dstAccessMask = acquire ? VK_ACCESS_TRANSFER_READ_BIT : 0;
  b.srcQueueFamilyIndex = acquire ? VK_QUEUE_FAMILY_EXTERNAL : family;
  b.dstQueueFamilyIndex = acquire ? family : VK_QUEUE_FAMILY_EXTERNAL;
  b.buffer = buffer;
  b.offset = 0;
  b.size = VK_WHOLE_SIZE;
  vkCmdPipelineBarrier(
      cmd, acquire ? VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT : VK_PIPELINE_STAGE_TRANSFER_BIT,
      acquire ? VK_PIPELINE_STAGE_TRANSFER_BIT : VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, 0, 0,
      nullptr, 1, &b, 0, nullptr);
}

}  // namespace

LayoutStream::LayoutStream(const OffscreenRenderer::Context& ctx, std::size_t points,
                           bool exportable)
    : ctx_(ctx), points_(points), exportable_(exportable) {
  if (points == 0) throw Error("", "vulkan", "a streamed layout of 0 points");
  const std::size_t bytes = points * 2 * sizeof(float);
  source_ = std::make_unique<SharedBuffer>(ctx, bytes, exportable);
  ready_ = std::make_unique<SharedSemaphore>(ctx, exportable);
  consumed_ = std::make_unique<SharedSemaphore>(ctx, exportable);
  positions_ = std::make_unique<SharedBuffer>(ctx, bytes, false);
}

LayoutStream::~LayoutStream() {
  vkQueueWaitIdle(ctx_.queue);
}

void LayoutStream::consume() {
  submit_and_wait(
      ctx_.device, ctx_.queue, ctx_.pool,
      [&](VkCommandBuffer cmd) {
        const bool external = exportable_ && ctx_.queue_family != VK_QUEUE_FAMILY_IGNORED;
        if (external) ownership(cmd, source_->buffer(), ctx_.queue_family, true);
        const VkBufferCopy region{0, 0, points_ * 2 * sizeof(float)};
        vkCmdCopyBuffer(cmd, source_->buffer(), positions_->buffer(), 1, &region);
        after_transfer(cmd);
        if (external) ownership(cmd, source_->buffer(), ctx_.queue_family, false);
      },
      ready_->handle(), VK_PIPELINE_STAGE_TRANSFER_BIT, consumed_->handle());
}

void LayoutStream::write_source(const float* xy, bool wait_consumed) {
  source_->write(xy, points_ * 2 * sizeof(float), wait_consumed ? consumed_.get() : nullptr,
                 ready_.get());
}

std::vector<float> LayoutStream::read_positions() {
  const std::vector<std::uint8_t> bytes = positions_->read();
  std::vector<float> xy(points_ * 2);
  std::memcpy(xy.data(), bytes.data(), xy.size() * sizeof(float));
  return xy;
}

}  // namespace orrery::render
