// The fuzzy union on the device (umap.cpp's fuzzy_union, the same graph bit for bit): each
// row's memberships sorted by (neighbour, membership, distance) with repeats dropped, every
// entry paired with its transpose by a radix sort of (row, column) keys, each pair combined by
// fuzzy_math.hpp's fuzzy_combine, zeros dropped.
#pragma once

#include <cstdint>

#include "compute/cuda/device.cuh"
#include "compute/umap.hpp"

namespace orrery::compute::gpu {

// `indices`, `distances`, `memberships`: the n x k kNN lists and their memberships on the device.
FuzzyGraph fuzzy_union(Device& d, const std::int64_t* indices, const float* distances,
                       const float* memberships, std::int64_t n, int k, double set_op_mix_ratio);

}  // namespace orrery::compute::gpu
