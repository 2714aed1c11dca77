// The CUDA backend's rank_genes_groups, each group against the rest: the statistics pass and
// the rank passes on the device (exact: each gene's values gathered in row order and sorted by
// a segmented stable sort; binned: per gene, group and bin counts in one pass), then
// markers_vs_rest on the host. The rank sums and statistics are the CPU's numbers
// (wilcoxon_math.hpp; per-gene sums in row order).
#pragma once

#include <vector>

#include "compute/backend.hpp"
#include "compute/cuda/device.cuh"
#include "compute/wilcoxon.hpp"

namespace orrery::compute::gpu {

// `source`'s chunks are normalised on the device as `normalize` says.
std::vector<GroupMarkers> rank_genes_groups(Device& d, const ChunkSource& source,
                                            const LogNormalize& normalize, std::int64_t n_cells,
                                            std::int64_t n_genes,
                                            const std::vector<std::int32_t>& labels, int n_groups,
                                            const WilcoxonOptions& options, Progress& progress);

}  // namespace orrery::compute::gpu
