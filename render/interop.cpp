#include "interop.hpp"

#include <cstring>

#include "offscreen.hpp"
#include "vk_check.hpp"
#include "vk_util.hpp"

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

bool interop_extensions_offered(VkPhysicalDevice physical) {
  std::uint32_t n = 0;
  vkEnumerateDeviceExtensionProperties(physical, nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> ext(n);
  vkEnumerateDeviceExtensionProperties(physical, nullptr, &n, ext.data());
  int found = 0;
  for (const auto& e : ext)
    for (const char* want : kInteropExtensions) found += std::strcmp(e.extensionName, want) == 0;
  return found == 2;
}

std::array<std::uint8_t, 16> device_uuid(VkPhysicalDevice physical) {
  VkPhysicalDeviceIDProperties id{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES};
  VkPhysicalDeviceProperties2 props{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props.pNext = &id;
  vkGetPhysicalDeviceProperties2(physical, &props);
  std::array<std::uint8_t, 16> uuid{};
  std::memcpy(uuid.data(), id.deviceUUID, 16);
  return uuid;
}

SharedSemaphore::SharedSemaphore(OffscreenRenderer& r)
    : SharedSemaphore((require_interop(r), r.context()), true) {}

SharedSemaphore::SharedSemaphore(const OffscreenRenderer::Context& ctx, bool exportable)
    : device_(ctx.device) {
  VkExportSemaphoreCreateInfo export_info{VK_STRUCTURE_TYPE_EXPORT_SEMAPHORE_CREATE_INFO};
  export_info.handleTypes = VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT;
  VkSemaphoreCreateInfo info{VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
  info.pNext = exportable ? &export_info : nullptr;
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

SharedBuffer::SharedBuffer(OffscreenRenderer& r, std::size_t bytes)
    : SharedBuffer((require_interop(r), r.context()), bytes, true) {}

SharedBuffer::SharedBuffer(const OffscreenRenderer::Context& ctx, std::size_t bytes,
                           bool exportable)
    : ctx_(ctx), bytes_(bytes) {
  if (bytes == 0) throw Error("", "vulkan", "shared buffer of 0 bytes");
  VkExternalMemoryBufferCreateInfo external{VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO};
  external.handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT;
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.pNext = exportable ? &external : nullptr;
  info.size = bytes;
  info.usage = VK_BUFFER_USAGE_VERTEX_BUFFER_BIT | VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
               VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  ORRERY_VK_CHECK(vkCreateBuffer(ctx.device, &info, nullptr, &buffer_));
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(ctx.device, buffer_, &req);
  VkExportMemoryAllocateInfo export_info{VK_STRUCTURE_TYPE_EXPORT_MEMORY_ALLOCATE_INFO};
  export_info.handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT;
  VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.pNext = exportable ? &export_info : nullptr;
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
  const VkDevice device = ctx_.device;
  vkDestroyBuffer(device, buffer_, nullptr);
  vkFreeMemory(device, memory_, nullptr);
}

ExportedMemory SharedBuffer::export_memory() {
  const VkDevice device = ctx_.device;
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

void SharedBuffer::write(const void* data, std::size_t bytes, const SharedSemaphore* wait,
                         const SharedSemaphore* signal) {
  transfer(true, const_cast<void*>(data), std::min(bytes, bytes_), wait, signal);
}

std::vector<std::uint8_t> SharedBuffer::read(const SharedSemaphore* wait) {
  std::vector<std::uint8_t> out(bytes_);
  transfer(false, out.data(), bytes_, wait, nullptr);
  return out;
}

void SharedBuffer::transfer(bool to_device, void* host, std::size_t bytes,
                            const SharedSemaphore* wait, const SharedSemaphore* signal) {
  const auto& ctx = ctx_;
  struct Staging {
    VkDevice device;
    GpuBuffer b;
    ~Staging() { destroy_buffer(device, b); }
  } staging{ctx.device, {}};
  ensure_buffer(ctx.physical, ctx.device, staging.b, bytes,
                VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                to_device ? MemoryKind::Host : MemoryKind::HostCached);
  if (to_device) write_buffer(ctx.device, staging.b, host, bytes);
  submit_and_wait(
      ctx.device, ctx.queue, ctx.pool,
      [&](VkCommandBuffer cmd) {
        VkBufferCopy region{0, 0, bytes};
        if (to_device)
          vkCmdCopyBuffer(cmd, staging.b.buffer, buffer_, 1, &region);
        else
          vkCmdCopyBuffer(cmd, buffer_, staging.b.buffer, 1, &region);
        VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
        barrier.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
        barrier.dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_MEMORY_READ_BIT;
        vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1,
                             &barrier, 0, nullptr, 0, nullptr);
      },
      wait ? wait->handle() : VK_NULL_HANDLE, VK_PIPELINE_STAGE_TRANSFER_BIT,
      signal ? signal->handle() : VK_NULL_HANDLE);
  if (!to_device) read_buffer(ctx.device, staging.b, host, bytes);
}

}  // namespace orrery::render
