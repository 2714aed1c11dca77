// k nearest neighbours on an embedding (X_pca[:, :n_pcs]). Exact: blocked distance GEMM and
// per-row top-k; each point is its own first neighbour at distance 0, as scanpy/umap expect.
#pragma once

#include <string>
#include <vector>

#include "io/matrix.hpp"
#include "progress.hpp"

namespace orrery::compute {

struct KnnOptions {
  int n_neighbors = 15;              // including the point itself
  int n_pcs = 0;                     // 0: all columns
  std::string metric = "euclidean";  // "euclidean" | "cosine"
};

struct KnnResult {
  std::int64_t n = 0;
  int k = 0;
  std::vector<std::int64_t> indices;  // n x k, row-major, sorted by distance
  std::vector<float> distances;
};

KnnResult exact_knn(const DenseMatrix& points, const KnnOptions& options, Progress& progress);

}  // namespace orrery::compute
