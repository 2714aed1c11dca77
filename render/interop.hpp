// Buffers and semaphores on the renderer's Vulkan device that another API (CUDA) can import by
// POSIX file descriptor (VK_KHR_external_memory_fd, VK_KHR_external_semaphore_fd): the UMAP
// kernel writes positions straight into the buffer the point pipeline draws, and signals a
// semaphore the renderer waits on. render/ exports; compute/external.hpp imports (no Vulkan
// types cross).
#pragma once

#include <vulkan/vulkan.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "offscreen.hpp"

namespace orrery::render {

// Whether `physical` offers the device extensions shared buffers and semaphores need
// (VK_KHR_external_memory_fd, VK_KHR_external_semaphore_fd), and its UUID (to match it with a
// CUDA device's).
bool interop_extensions_offered(VkPhysicalDevice physical);
std::array<std::uint8_t, 16> device_uuid(VkPhysicalDevice physical);
inline constexpr const char* kInteropExtensions[] = {VK_KHR_EXTERNAL_MEMORY_FD_EXTENSION_NAME,
                                                     VK_KHR_EXTERNAL_SEMAPHORE_FD_EXTENSION_NAME};

// What an importer needs: the descriptor (ownership passes to the importer), the size of the
// whole allocation (CUDA's import wants it) and the buffer's size.
struct ExportedMemory {
  int fd = -1;
  std::size_t allocation_bytes = 0;
  std::size_t bytes = 0;
};

// A binary semaphore; `exportable` ones need a device with the external-semaphore extensions
// enabled (OffscreenRenderer enables them where offered: interop_supported()).
class SharedSemaphore {
 public:
  explicit SharedSemaphore(OffscreenRenderer& renderer);
  SharedSemaphore(const OffscreenRenderer::Context& context, bool exportable);
  ~SharedSemaphore();
  SharedSemaphore(const SharedSemaphore&) = delete;
  SharedSemaphore& operator=(const SharedSemaphore&) = delete;
  int export_fd();
  VkSemaphore handle() const { return semaphore_; }

 private:
  VkDevice device_;
  VkSemaphore semaphore_ = VK_NULL_HANDLE;
};

// A device-local buffer usable as vertex data and for transfers, exportable (as above). Not
// destroyed while a submitted command uses it (its destructor does not wait for the queue, so
// that any thread may drop one that was never submitted).
class SharedBuffer {
 public:
  SharedBuffer(OffscreenRenderer& renderer, std::size_t bytes);
  SharedBuffer(const OffscreenRenderer::Context& context, std::size_t bytes, bool exportable);
  ~SharedBuffer();
  SharedBuffer(const SharedBuffer&) = delete;
  SharedBuffer& operator=(const SharedBuffer&) = delete;

  ExportedMemory export_memory();
  VkBuffer buffer() const { return buffer_; }
  std::size_t size() const { return bytes_; }
  // Vulkan-side access through a staging buffer; both wait for the copy to finish. The copy
  // first waits on `wait` when given (e.g. signalled by CUDA after writing) and signals
  // `signal` when given.
  void write(const void* data, std::size_t bytes, const SharedSemaphore* wait = nullptr,
             const SharedSemaphore* signal = nullptr);
  std::vector<std::uint8_t> read(const SharedSemaphore* wait = nullptr);

 private:
  void transfer(bool to_device, void* host, std::size_t bytes, const SharedSemaphore* wait,
                const SharedSemaphore* signal);
  OffscreenRenderer::Context ctx_;
  std::size_t bytes_, allocation_ = 0;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
};

}  // namespace orrery::render
