// Leiden community detection on a weighted undirected graph with igraph, optimising the
// RB-configuration (modularity with resolution) objective as scanpy's leiden does via leidenalg.
// Labels are renumbered by decreasing cluster size.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "io/matrix.hpp"
#include "progress.hpp"

namespace orrery::compute {

struct LeidenOptions {
  double resolution = 1.0;
  int n_iterations = -1;  // negative: until an iteration leaves the partition unchanged
  double beta = 0.01;
  std::uint64_t seed = 0;
  // "igraph": igraph's Leiden (scanpy's algorithm; one thread, on the CPU). "parallel":
  // Orrery's synchronous Leiden (leiden_math.hpp), multithreaded on the CPU and on the GPU with
  // the CUDA backend, the same labels on both. "auto": parallel with the CUDA backend, igraph
  // otherwise.
  std::string flavor = "auto";
  // Every field (C++17: the CUDA sources include this too).
  bool operator==(const LeidenOptions& o) const {
    return resolution == o.resolution && n_iterations == o.n_iterations && beta == o.beta &&
           seed == o.seed && flavor == o.flavor;
  }
};

// igraph's Leiden. With `progress`, a cancel stops the clustering between two iterations
// (Cancelled).
std::vector<std::int32_t> leiden(const CsrMatrix& graph, const LeidenOptions& options,
                                 Progress* progress = nullptr);
constexpr int kMaxLeidenIterations = 1000;  // "until stable" stops here at the latest
inline std::string leiden_unstable_warning() {
  return "leiden: no iteration left the partition unchanged within " +
         std::to_string(kMaxLeidenIterations) + " iterations; the last partition is kept";
}

// The parallel flavour on the CPU (leiden_parallel.cpp): Leiden's phases (local moving,
// refinement within each community, aggregation) with every vertex of a half-sweep deciding at
// once from the state before it, on integer (fixed-point) edge weights; deterministic for a
// seed whatever the thread count, and equal to the CUDA backend's.
std::vector<std::int32_t> leiden_parallel(const CsrMatrix& graph, const LeidenOptions& options,
                                          Progress* progress = nullptr);

// The graph in the parallel flavour's integers: each weight times 2^shift, rounded, the shift
// the largest (up to 40) that keeps the total below 2^62; self-loops dropped (igraph's flavour
// drops them too). Throws for a non-square graph or
// negative / non-finite weights, naming the field.
struct FixedPointGraph {
  std::int64_t n = 0;
  std::vector<std::int64_t> indptr, degree;  // degree: row sums, self-loops included
  std::vector<std::int32_t> indices;
  std::vector<std::int64_t> weights;
  std::int64_t total = 0;  // 2m: the sum of all degrees
};
FixedPointGraph fixed_point_graph(const CsrMatrix& graph);
constexpr int kLeidenMoveSweeps = 64;    // local moving stops here at the latest (32 pairs)
constexpr int kLeidenRefineSweeps = 32;  // and refinement here

// Dense ids 0..k-1 for the distinct values of `labels` (in [0, n)), in increasing value order;
// returns k.
std::int32_t compact_labels(const std::vector<std::int32_t>& labels,
                            std::vector<std::int32_t>& ids);

// Labels by order of first appearance: equal for equal partitions, whatever the numbering.
std::vector<std::int32_t> first_appearance_labels(const std::vector<std::int32_t>& labels);

// Labels renumbered 0.. by decreasing cluster size (ties: by increasing old label value), the
// order every flavour returns.
std::vector<std::int32_t> labels_by_size(const std::vector<std::int32_t>& membership);

// Modularity with resolution (leidenalg's RBConfiguration quality divided by 2m) of a
// partition: (sum of within-community weight - gamma * sum_c K_c^2 / 2m) / 2m, self-loops left
// out as both flavours leave them out.
double leiden_quality(const CsrMatrix& graph, const std::vector<std::int32_t>& labels,
                      double resolution);

// igraph's RNG and error handlers are process-global: every igraph caller holds this lock.
std::mutex& igraph_mutex();

}  // namespace orrery::compute
