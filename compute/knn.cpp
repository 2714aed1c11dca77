#include "knn.hpp"

#include <tbb/parallel_for.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "io/error.hpp"

namespace orrery::compute {

KnnResult exact_knn(const DenseMatrix& points, const KnnOptions& o, Progress& progress) {
  const std::int64_t n = points.rows;
  const int dims = o.n_pcs > 0 ? std::min<int>(o.n_pcs, static_cast<int>(points.cols))
                               : static_cast<int>(points.cols);
  if (o.n_neighbors < 2) throw Error("", "neighbors.n_neighbors", "must be at least 2");
  if (o.metric != "euclidean" && o.metric != "cosine")
    throw Error("", "neighbors.metric", "unknown metric '" + o.metric + "'");
  if (n == 0) throw Error("", "neighbors", "no cells");
  const int k = static_cast<int>(std::min<std::int64_t>(o.n_neighbors, n));

  Eigen::MatrixXd x(n, dims);
  for (std::int64_t i = 0; i < n; ++i)
    for (int d = 0; d < dims; ++d) x(i, d) = points.at(i, d);
  if (o.metric == "cosine") {
    for (std::int64_t i = 0; i < n; ++i) {
      double norm = x.row(i).norm();
      if (norm > 0) x.row(i) /= norm;
    }
  }
  const Eigen::VectorXd sq = x.rowwise().squaredNorm();

  KnnResult r;
  r.n = n;
  r.k = k;
  r.indices.resize(n * k);
  r.distances.resize(n * k);
  const std::int64_t block = 256;
  for (std::int64_t b0 = 0; b0 < n; b0 += block) {
    progress.check();
    const std::int64_t b1 = std::min(n, b0 + block);
    Eigen::MatrixXd dots = x.middleRows(b0, b1 - b0) * x.transpose();
    tbb::parallel_for(b0, b1, [&](std::int64_t i) {
      std::vector<std::pair<double, std::int64_t>> cand(n);
      for (std::int64_t j = 0; j < n; ++j) {
        double d2 = sq(i) + sq(j) - 2.0 * dots(i - b0, j);
        cand[j] = {j == i ? -1.0 : std::max(0.0, d2), j};  // self first
      }
      std::partial_sort(cand.begin(), cand.begin() + k, cand.end());
      for (int c = 0; c < k; ++c) {
        double d2 = std::max(0.0, cand[c].first);
        double dist = o.metric == "cosine" ? d2 / 2.0 : std::sqrt(d2);  // 1 - cos = |a-b|^2 / 2
        r.indices[i * k + c] = cand[c].second;
        r.distances[i * k + c] = static_cast<float>(dist);
      }
    });
    progress.report("neighbors", static_cast<double>(b1) / static_cast<double>(n));
  }
  return r;
}

}  // namespace orrery::compute
