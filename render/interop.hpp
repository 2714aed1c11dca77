// Buffers and semaphores on the renderer's Vulkan device that another API (CUDA) can import by
// POSIX file descriptor (VK_KHR_external_memory_fd, VK_KHR_external_semaphore_fd): the UMAP
// kernel writes positions straight into the buffer the point pipeline draws, and signals a
// semaphore the renderer waits on. render/ exports; compute/external.hpp imports (no Vulkan
// types cross).
#pragma once

#include <vulkan/vulkan.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace orrery::render {

class OffscreenRenderer;

// What an importer needs: the descriptor (ownership passes to the importer), the size of the
// whole allocation (CUDA's import wants it) and the buffer's size.
struct ExportedMemory {
  int fd = -1;
  std::size_t allocation_bytes = 0;
  std::size_t bytes = 0;
};

class SharedSemaphore {
 public:
  explicit SharedSemaphore(OffscreenRenderer& renderer);
  ~SharedSemaphore();
  SharedSemaphore(const SharedSemaphore&) = delete;
  SharedSemaphore& operator=(const SharedSemaphore&) = delete;
  int export_fd();
  VkSemaphore handle() const { return semaphore_; }

 private:
  VkDevice device_;
  VkSemaphore semaphore_ = VK_NULL_HANDLE;
};

// A device-local buffer usable as vertex data and for transfers, exportable.
class SharedBuffer {
 public:
  SharedBuffer(OffscreenRenderer& renderer, std::size_t bytes);
  ~SharedBuffer();
  SharedBuffer(const SharedBuffer&) = delete;
  SharedBuffer& operator=(const SharedBuffer&) = delete;

  ExportedMemory export_memory();
  VkBuffer buffer() const { return buffer_; }
  std::size_t size() const { return bytes_; }
  // Vulkan-side access through a staging buffer; both wait for the queue to finish. `read`
  // first waits on `ready` when given (e.g. signalled by CUDA after writing).
  void write(const void* data, std::size_t bytes);
  std::vector<std::uint8_t> read(const SharedSemaphore* ready = nullptr);

 private:
  void transfer(bool to_device, void* host, std::size_t bytes, const SharedSemaphore* ready);
  OffscreenRenderer& renderer_;
  std::size_t bytes_, allocation_ = 0;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
};

}  // namespace orrery::render
