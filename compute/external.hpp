// Device memory and semaphores of another API — the renderer's Vulkan buffers — imported into
// CUDA by POSIX file descriptor, so a kernel can write what the renderer draws without a copy
// through the host. No Vulkan types here: render/interop.hpp exports, this imports.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace orrery::compute {

class ExternalBuffer {
 public:
  // Takes ownership of `fd` (closed when the import fails). `allocation_bytes` is the whole
  // exported allocation, `bytes` the part mapped (from offset 0). Throws orrery::Error when CUDA
  // cannot import it.
  ExternalBuffer(int fd, std::size_t allocation_bytes, std::size_t bytes);
  ~ExternalBuffer();
  ExternalBuffer(const ExternalBuffer&) = delete;
  ExternalBuffer& operator=(const ExternalBuffer&) = delete;

  void* device_pointer() const;
  std::size_t size() const;
  // CUDA-side access (synchronous): a host copy in, and out; `fill_sequence` runs a kernel
  // that writes word i = seed + i (a device-side write, for tests).
  void write(const void* data, std::size_t bytes);
  std::vector<std::uint8_t> read() const;
  void fill_sequence(std::uint32_t seed);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

class ExternalSemaphore {
 public:
  explicit ExternalSemaphore(int fd);  // takes ownership of `fd` (closed on failure)
  ~ExternalSemaphore();
  ExternalSemaphore(const ExternalSemaphore&) = delete;
  ExternalSemaphore& operator=(const ExternalSemaphore&) = delete;
  // Signals once the work queued on CUDA's default stream so far has finished; wait() makes
  // the work queued after it on that stream wait for the other API's signal.
  void signal();
  void wait();

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// UUID of CUDA device 0 (to match with the Vulkan device's), or nullopt-like all zeros.
std::array<std::uint8_t, 16> cuda_device_uuid();

}  // namespace orrery::compute
