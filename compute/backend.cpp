#include "backend.hpp"

#include "io/error.hpp"

namespace orrery::compute {

std::unique_ptr<Backend> make_backend(const std::string& kind, std::string* note) {
  std::string why;
  if (kind == "cpu") {
    if (note) *note = "backend cpu (requested)";
    return make_cpu_backend();
  }
  if (kind == "cuda" || kind == "auto") {
    if (auto b = make_cuda_backend(&why)) {
      if (note) *note = "backend cuda (" + why + ")";
      return b;
    }
    if (kind == "cuda") throw Error("", "backend", "CUDA backend unavailable: " + why);
    if (note) *note = "backend cpu (CUDA unavailable: " + why + ")";
    return make_cpu_backend();
  }
  throw Error("", "backend", "unknown backend '" + kind + "' (expected cpu, cuda or auto)");
}

}  // namespace orrery::compute
