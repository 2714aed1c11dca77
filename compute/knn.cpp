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
  // Rows a block of kRows at a time, the points a tile of kCols at a time: each tile's dot
  // products with the block (kCols x kRows doubles, 32 MiB; Eigen's product on all cores), then
  // each row's k nearest so far (in parallel over rows), by (squared distance, index) with the
  // row itself first. The memory is the tile's, not n per row.
  constexpr std::int64_t kRows = 512, kCols = 8192;
  Eigen::MatrixXd dots(std::min(kCols, n), std::min(kRows, n));  // column i: row r0 + i's dots
  std::vector<std::pair<double, std::int64_t>> best(
      static_cast<std::size_t>(std::min(kRows, n) * k));
  std::vector<int> kept(static_cast<std::size_t>(std::min(kRows, n)));
  for (std::int64_t r0 = 0; r0 < n; r0 += kRows) {
    const std::int64_t rows = std::min(kRows, n - r0);
    std::fill(kept.begin(), kept.end(), 0);
    for (std::int64_t c0 = 0; c0 < n; c0 += kCols) {
      progress.check();
      const std::int64_t cols = std::min(kCols, n - c0);
      dots.topLeftCorner(cols, rows).noalias() =
          x.middleRows(c0, cols) * x.middleRows(r0, rows).transpose();
      tbb::parallel_for(std::int64_t{0}, rows, [&](std::int64_t i) {
        auto* top = best.data() + i * k;
        int& m = kept[static_cast<std::size_t>(i)];
        const double sq_i = sq(r0 + i);
        const double* d = dots.col(i).data();
        for (std::int64_t j = 0; j < cols; ++j) {
          const std::int64_t id = c0 + j;
          const double d2 = id == r0 + i ? -1.0 : std::max(0.0, sq_i + sq(id) - 2.0 * d[j]);
          // Indices only grow: a candidate displaces the last kept one only when strictly
          // nearer, and goes after every kept one at its distance.
          if (m == k && !(d2 < top[k - 1].first)) continue;
          int at = m < k ? m++ : k - 1;
          while (at > 0 && d2 < top[at - 1].first) {
            top[at] = top[at - 1];
            --at;
          }
          top[at] = {d2, id};
        }
      });
    }
    for (std::int64_t i = 0; i < rows; ++i)
      for (int c = 0; c < k; ++c) {
        const auto [d2, id] = best[static_cast<std::size_t>(i * k + c)];
        const double dist = o.metric == "cosine" ? std::max(0.0, d2) / 2.0  // 1 - cos
                                                 : std::sqrt(std::max(0.0, d2));
        r.indices[(r0 + i) * k + c] = id;
        r.distances[(r0 + i) * k + c] = static_cast<float>(dist);
      }
    progress.report("neighbors", static_cast<double>(r0 + rows) / static_cast<double>(n));
  }
  return r;
}

}  // namespace orrery::compute
