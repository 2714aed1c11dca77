// k nearest neighbours on an embedding (X_pca[:, :n_pcs]). Exact: blocked distance GEMM and
// per-row top-k; approximate: NN-descent. Each point is its own first neighbour at distance 0,
// as scanpy/umap expect.
#pragma once

#include <string>
#include <vector>

#include "io/matrix.hpp"
#include "progress.hpp"

namespace orrery::compute {

struct KnnOptions {
  int n_neighbors = 15;                        // including the point itself
  int n_pcs = 0;                               // 0: all columns
  std::string metric = "euclidean";            // "euclidean" | "cosine"
  std::string method = "auto";                 // "auto" | "exact" | "nndescent"
  std::int64_t exact_max_cells = 50000;        // auto: exact up to here, NN-descent above
  std::int64_t gpu_exact_max_cells = 4000000;  // auto on the CUDA backend: exact up to here
  // "ivf" (the CUDA backend's approximate method; auto above gpu_exact_max_cells): k-means lists
  // (0: sqrt(n)), each point searched in its `ivf_probes` nearest lists. The CPU runs NN-descent.
  int ivf_lists = 0;
  int ivf_probes = 32;
  int max_iterations = 12;  // NN-descent
  double delta = 0.001;     // NN-descent: stop when fewer updates than delta * n * k
  std::uint64_t seed = 0;
  // Every field (C++17: the CUDA sources include this too).
  bool operator==(const KnnOptions& o) const {
    return n_neighbors == o.n_neighbors && n_pcs == o.n_pcs && metric == o.metric &&
           method == o.method && exact_max_cells == o.exact_max_cells &&
           gpu_exact_max_cells == o.gpu_exact_max_cells && ivf_lists == o.ivf_lists &&
           ivf_probes == o.ivf_probes && max_iterations == o.max_iterations && delta == o.delta &&
           seed == o.seed;
  }
};

struct KnnResult {
  std::int64_t n = 0;
  int k = 0;
  std::vector<std::int64_t> indices;  // n x k, row-major, sorted by distance
  std::vector<float> distances;
};

KnnResult exact_knn(const DenseMatrix& points, const KnnOptions& options, Progress& progress);

// Approximate kNN by NN-descent (Dong, Charikar & Li 2011): neighbours of neighbours refine a
// first graph from random projection trees (as pynndescent's), filled up with random points
// where a list is short. Distances are computed in parallel, heap updates applied in a fixed order,
// so the result depends on the seed only, not on the thread count.
KnnResult nn_descent_knn(const DenseMatrix& points, const KnnOptions& options, Progress& progress);

// Chooses by options.method and the number of points.
KnnResult knn(const DenseMatrix& points, const KnnOptions& options, Progress& progress);

// Fraction of `approx`'s neighbours (excluding self) that are in `exact`'s lists.
double knn_recall(const KnnResult& approx, const KnnResult& exact);

}  // namespace orrery::compute
