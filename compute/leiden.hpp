// Leiden community detection on a weighted undirected graph with igraph, optimising the
// RB-configuration (modularity with resolution) objective as scanpy's leiden does via leidenalg.
// Labels are renumbered by decreasing cluster size.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "io/matrix.hpp"

namespace orrery::compute {

struct LeidenOptions {
  double resolution = 1.0;
  int n_iterations = -1;  // negative: until the partition is stable
  double beta = 0.01;
  std::uint64_t seed = 0;
};

std::vector<std::int32_t> leiden(const CsrMatrix& graph, const LeidenOptions& options);

// igraph's RNG and error handlers are process-global: every igraph caller holds this lock.
std::mutex& igraph_mutex();

}  // namespace orrery::compute
