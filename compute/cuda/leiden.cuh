// The parallel Leiden flavour on the device: leiden_parallel.cpp's phases with one thread per
// vertex deciding by leiden_math.hpp, each vertex's neighbours sorted by community with a
// segmented sort, community totals by integer atomics, the aggregate graph by a radix sort and
// a reduction by key. Every sum is of integers, so the labels are the CPU's.
#pragma once

#include <cstdint>
#include <vector>

#include "compute/cuda/device.cuh"
#include "compute/leiden.hpp"

namespace orrery::compute::gpu {

std::vector<std::int32_t> leiden(Device& d, const CsrMatrix& graph, const LeidenOptions& options,
                                 Progress* progress);

}  // namespace orrery::compute::gpu
