// Leiden community detection on a weighted undirected graph with igraph, optimising the
// RB-configuration (modularity with resolution) objective as scanpy's leiden does via leidenalg.
// Labels are renumbered by decreasing cluster size.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "io/matrix.hpp"
#include "progress.hpp"

namespace orrery::compute {

struct LeidenOptions {
  double resolution = 1.0;
  int n_iterations = -1;  // negative: until an iteration leaves the partition unchanged
  double beta = 0.01;
  std::uint64_t seed = 0;
};

// With `progress`, a cancel stops the clustering between two iterations (Cancelled).
std::vector<std::int32_t> leiden(const CsrMatrix& graph, const LeidenOptions& options,
                                 Progress* progress = nullptr);
constexpr int kMaxLeidenIterations = 1000;  // "until stable" stops here at the latest

// igraph's RNG and error handlers are process-global: every igraph caller holds this lock.
std::mutex& igraph_mutex();

}  // namespace orrery::compute
