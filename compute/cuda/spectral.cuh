// The spectral initial layout's eigensolver on the device: spectral.hpp's spectral_lanczos
// (thick-restart Lanczos, lanczos.hpp) with the component's operator, the basis and every
// vector operation on the device (a row-per-thread product, cuBLAS for the projections and the
// restarts); only the small projected matrix is on the host. HostLanczosOps is its twin.
#pragma once

#include <cstdint>

#include "compute/cuda/device.cuh"
#include "compute/spectral.hpp"

namespace orrery::compute::gpu {

// Device memory spectral_lanczos takes for `op`.
std::size_t spectral_lanczos_bytes(const ComponentOperator& op);

LanczosResult spectral_lanczos(Device& d, const ComponentOperator& op);

}  // namespace orrery::compute::gpu
