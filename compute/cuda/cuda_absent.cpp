// Built instead of the CUDA backend when Orrery is configured with -DORRERY_CUDA=OFF.
#include <unistd.h>

#include "compute/backend.hpp"
#include "io/error.hpp"

namespace orrery::compute {

bool cuda_compiled() {
  return false;
}
int cuda_device_count() {
  return 0;
}
bool load_cuda_libraries(std::string* why) {
  if (why) *why = "built without CUDA (-DORRERY_CUDA=OFF)";
  return false;
}
std::unique_ptr<Backend> make_cuda_backend(std::string* why) {
  if (why) *why = "built without CUDA (-DORRERY_CUDA=OFF)";
  return nullptr;
}

struct ExternalBuffer::Impl {};
struct ExternalSemaphore::Impl {};
ExternalBuffer::ExternalBuffer(int fd, std::size_t, std::size_t) {
  if (fd >= 0) ::close(fd);  // as the CUDA build does when an import fails
  throw Error("", "cuda", "built without CUDA (-DORRERY_CUDA=OFF)");
}
ExternalBuffer::~ExternalBuffer() = default;
void* ExternalBuffer::device_pointer() const {
  return nullptr;
}
std::size_t ExternalBuffer::size() const {
  return 0;
}
void ExternalBuffer::write(const void*, std::size_t) {}
std::vector<std::uint8_t> ExternalBuffer::read() const {
  return {};
}
void ExternalBuffer::fill_sequence(std::uint32_t) {}
ExternalSemaphore::ExternalSemaphore(int fd) {
  if (fd >= 0) ::close(fd);
  throw Error("", "cuda", "built without CUDA (-DORRERY_CUDA=OFF)");
}
ExternalSemaphore::~ExternalSemaphore() = default;
void ExternalSemaphore::signal() {}
void ExternalSemaphore::wait() {}
std::array<std::uint8_t, 16> cuda_device_uuid() {
  return {};
}

}  // namespace orrery::compute
