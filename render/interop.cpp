#include "interop.hpp"

#include <cstring>

#include "offscreen.hpp"
#include "point_pipeline.hpp"
#include "vk_check.hpp"

namespace orrery::render {
namespace {

template <typename F>
F device_function(VkDevice device, const char* name) {
  auto f = reinterpret_cast<F>(vkGetDeviceProcAddr(device, name));
  if (!f) throw Error("", "vulkan", std::string(name) + " is not available");
  return f;
}

void require_interop(const OffscreenRenderer& r) {
  if (!r.interop_supported())
    throw Error("", "vulkan",
                "device " + r.device_name() +
                    " lacks VK_KHR_external_memory_fd / VK_KHR_external_semaphore_fd");
}

}  // namespace

SharedSemaphore::SharedSemaphore(OffscreenRenderer& r) : device_(r.context().device) {
  require_interop(r);
  VkExportSemaphoreCreateInfo export_info{VK_STRUCTURE_TYPE_EXPORT_SEMAPHORE_CREATE_INFO};
  export_info.handleTypes = VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT;
  VkSemaphoreCreateInfo info{VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
  info.pNext = &export_info;
  ORRERY_VK_CHECK(vkCreateSemaphore(device_, &info, nullptr, &semaphore_));
}

SharedSemaphore::~SharedSemaphore() {
  vkDestroySemaphore(device_, semaphore_, nullptr);
}

int SharedSemaphore::export_fd() {
  auto get_fd = device_function<PFN_vkGetSemaphoreFdKHR>(device_, "vkGetSemaphoreFdKHR");
  VkSemaphoreGetFdInfoKHR info{VK_STRUCTURE_TYPE_SEMAPHORE_GET_FD_INFO_KHR};
  info.semaphore = semaphore_;
  info.handleType = VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT;
  int fd = -1;
  ORRERY_VK_CHECK(get_fd(device_, &info, &fd));
  return fd;
}

SharedBuffer::SharedBuffer(OffscreenRenderer& r, std::size_t bytes) : renderer_(r), bytes_(bytes) {
  require_interop(r);
  if (bytes == 0) throw Error("", "vulkan", "shared buffer of 0 bytes");
  const auto ctx = r.context();
  VkExternalMemoryBufferCreateInfo external{VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO};
  external.handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT;
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.pNext = &external;
  info.size = bytes;
  info.usage = VK_BUFFER_USAGE_VERTEX_BUFFER_BIT | VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
               VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  ORRERY_VK_CHECK(vkCreateBuffer(ctx.device, &info, nullptr, &buffer_));
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(ctx.device, buffer_, &req);
  VkExportMemoryAllocateInfo export_info{VK_STRUCTURE_TYPE_EXPORT_MEMORY_ALLOCATE_INFO};
  export_info.handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT;
  VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.pNext = &export_info;
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex =
      find_memory_type(ctx.physical, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
  VkResult result = vkAllocateMemory(ctx.device, &alloc, nullptr, &memory_);
  if (result != VK_SUCCESS) {
    vkDestroyBuffer(ctx.device, buffer_, nullptr);
    ORRERY_VK_CHECK(result);
  }
  allocation_ = req.size;
  ORRERY_VK_CHECK(vkBindBufferMemory(ctx.device, buffer_, memory_, 0));
}

SharedBuffer::~SharedBuffer() {
  const VkDevice device = renderer_.context().device;
  vkDeviceWaitIdle(device);
  vkDestroyBuffer(device, buffer_, nullptr);
  vkFreeMemory(device, memory_, nullptr);
}

ExportedMemory SharedBuffer::export_memory() {
  const VkDevice device = renderer_.context().device;
  auto get_fd = device_function<PFN_vkGetMemoryFdKHR>(device, "vkGetMemoryFdKHR");
  VkMemoryGetFdInfoKHR info{VK_STRUCTURE_TYPE_MEMORY_GET_FD_INFO_KHR};
  info.memory = memory_;
  info.handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT;
  ExportedMemory m;
  ORRERY_VK_CHECK(get_fd(device, &info, &m.fd));
  m.allocation_bytes = allocation_;
  m.bytes = bytes_;
  return m;
}

void SharedBuffer::write(const void* data, std::size_t bytes) {
  transfer(true, const_cast<void*>(data), std::min(bytes, bytes_), nullptr);
}

std::vector<std::uint8_t> SharedBuffer::read(const SharedSemaphore* ready) {
  std::vector<std::uint8_t> out(bytes_);
  transfer(false, out.data(), bytes_, ready);
  return out;
}

void SharedBuffer::transfer(bool to_device, void* host, std::size_t bytes,
                            const SharedSemaphore* ready) {
  const auto ctx = renderer_.context();
  struct Staging {
    VkDevice device;
    VkBuffer buffer = VK_NULL_HANDLE;
    VkDeviceMemory memory = VK_NULL_HANDLE;
    VkCommandPool pool;
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    ~Staging() {
      if (fence) vkDestroyFence(device, fence, nullptr);
      if (cmd) vkFreeCommandBuffers(device, pool, 1, &cmd);
      if (buffer) vkDestroyBuffer(device, buffer, nullptr);
      if (memory) vkFreeMemory(device, memory, nullptr);
    }
  } s{ctx.device, VK_NULL_HANDLE, VK_NULL_HANDLE, ctx.pool};
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = bytes;
  info.usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  ORRERY_VK_CHECK(vkCreateBuffer(ctx.device, &info, nullptr, &s.buffer));
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(ctx.device, s.buffer, &req);
  VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex =
      find_memory_type(ctx.physical, req.memoryTypeBits,
                       VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
  ORRERY_VK_CHECK(vkAllocateMemory(ctx.device, &alloc, nullptr, &s.memory));
  ORRERY_VK_CHECK(vkBindBufferMemory(ctx.device, s.buffer, s.memory, 0));
  void* mapped = nullptr;
  ORRERY_VK_CHECK(vkMapMemory(ctx.device, s.memory, 0, bytes, 0, &mapped));
  if (to_device) std::memcpy(mapped, host, bytes);

  VkCommandBufferAllocateInfo cmd_info{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  cmd_info.commandPool = ctx.pool;
  cmd_info.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  cmd_info.commandBufferCount = 1;
  ORRERY_VK_CHECK(vkAllocateCommandBuffers(ctx.device, &cmd_info, &s.cmd));
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  ORRERY_VK_CHECK(vkBeginCommandBuffer(s.cmd, &begin));
  VkBufferCopy region{0, 0, bytes};
  if (to_device)
    vkCmdCopyBuffer(s.cmd, s.buffer, buffer_, 1, &region);
  else
    vkCmdCopyBuffer(s.cmd, buffer_, s.buffer, 1, &region);
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_MEMORY_READ_BIT;
  vkCmdPipelineBarrier(s.cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1,
                       &barrier, 0, nullptr, 0, nullptr);
  ORRERY_VK_CHECK(vkEndCommandBuffer(s.cmd));
  VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  ORRERY_VK_CHECK(vkCreateFence(ctx.device, &fence_info, nullptr, &s.fence));
  const VkSemaphore wait = ready ? ready->handle() : VK_NULL_HANDLE;
  const VkPipelineStageFlags wait_stage = VK_PIPELINE_STAGE_TRANSFER_BIT;
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.waitSemaphoreCount = ready ? 1 : 0;
  submit.pWaitSemaphores = &wait;
  submit.pWaitDstStageMask = &wait_stage;
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &s.cmd;
  ORRERY_VK_CHECK(vkQueueSubmit(ctx.queue, 1, &submit, s.fence));
  ORRERY_VK_CHECK(vkWaitForFences(ctx.device, 1, &s.fence, VK_TRUE, UINT64_MAX));
  if (!to_device) std::memcpy(host, mapped, bytes);
  vkUnmapMemory(ctx.device, s.memory);
}

}  // namespace orrery::render
