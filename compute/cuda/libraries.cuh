// cuBLAS and cuSOLVER are opened when a CUDA backend is made, not when Orrery starts: linked,
// they are ~1 GiB of libraries to map and relocate in every process, GPU or not (0.55 s and 28k
// page faults per start on the 2-core build machine). libraries.cu defines the few functions
// the backend calls, each forwarding to the library's own.
#pragma once

#include <string>

namespace orrery::compute::gpu {

// Opens both libraries and finds every function the backend calls (once per process; later
// calls give the first answer). False, with the library and the reason in `why`, where one is
// missing.
bool load_libraries(std::string* why);

}  // namespace orrery::compute::gpu
