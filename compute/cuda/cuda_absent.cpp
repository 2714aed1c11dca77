// Built instead of the CUDA backend when Orrery is configured with -DORRERY_CUDA=OFF.
#include "compute/backend.hpp"

namespace orrery::compute {

bool cuda_compiled() {
  return false;
}
int cuda_device_count() {
  return 0;
}
std::unique_ptr<Backend> make_cuda_backend(std::string* why) {
  if (why) *why = "built without CUDA (-DORRERY_CUDA=OFF)";
  return nullptr;
}

}  // namespace orrery::compute
