// The CUDA backend's streaming statistics: normalize_total + log1p of a chunk on the device,
// QC (per-cell sums and top-N shares, per-gene sums) and the per-gene moments of the log data
// for highly_variable_genes. Per-gene sums walk each gene's entries in row order (a stable sort
// of the chunk by column), and per-cell sums a cell's entries in stored order, with the CPU
// backend's arithmetic (qc_math.hpp, elementwise.hpp): QC adds the same numbers in the same
// order as the CPU; the moments add the same way numbers that may differ by an ulp (the
// device's log1pf, row totals of non-integer data summed by warps).
#pragma once

#include <memory>

#include "compute/backend.hpp"
#include "compute/cuda/chunks.cuh"
#include "compute/cuda/device.cuh"

namespace orrery::compute::gpu {

std::unique_ptr<QcPass> make_qc_pass(Device& d, const std::vector<char>& qc_genes,
                                     const std::vector<int>& percent_top, std::int64_t n_genes);

// Chunks are copied through page-locked buffers on a second stream, two in flight
// (chunks.cuh's BlockStager), so the next chunk is read from disk while this one is copied and
// reduced. The QC pass copies the same way but waits for each block's cell metrics.
std::unique_ptr<MomentPass> make_moment_pass(Device& d, const MomentOptions& options);

}  // namespace orrery::compute::gpu
