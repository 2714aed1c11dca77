#include "pca.hpp"

#include <algorithm>
#include <cmath>

#include <tbb/parallel_for.h>

#include "io/error.hpp"

extern "C" void dsyevr_(const char* jobz, const char* range, const char* uplo, const int* n,
                        double* a, const int* lda, const double* vl, const double* vu,
                        const int* il, const int* iu, const double* abstol, int* m, double* w,
                        double* z, const int* ldz, int* isuppz, double* work, const int* lwork,
                        int* iwork, const int* liwork, int* info);

namespace orrery::compute {

ScaledColumns::Offsets ScaledColumns::offsets(const CsrMatrix& lognorm) const {
  Offsets o;
  o.start.assign(lognorm.n_rows + 1, 0);
  for (std::int64_t r = 0; r < lognorm.n_rows; ++r) {
    for_each_offset(lognorm, r, [&](int c, double v) {
      o.column.push_back(c);
      o.value.push_back(v);
    });
    o.start[r + 1] = static_cast<std::int64_t>(o.column.size());
  }
  return o;
}

GramAccumulator::GramAccumulator(const ScaledColumns& columns) : columns_(columns) {
  sums_.ww = Eigen::MatrixXd::Zero(columns.width(), columns.width());
  sums_.w = Eigen::VectorXd::Zero(columns.width());
}

void GramAccumulator::add(const CsrMatrix& lognorm) {
  const int h = columns_.width();
  // Each row's HVG entries once, as (column, offset) runs in increasing column order.
  const ScaledColumns::Offsets o = columns_.offsets(lognorm);
  const auto& start = o.start;
  const auto& cols = o.column;
  const auto& vals = o.value;
  for (std::size_t k = 0; k < cols.size(); ++k) sums_.w(cols[k]) += vals[k];
  // Gram rows are split into fixed blocks (not per thread) and each block adds rows in order, so
  // the sums are the same for any thread count. Low columns pair with more entries of the upper
  // triangle, so block edges follow h (1 - sqrt(1 - t / blocks)).
  constexpr int kBlocks = 64;
  std::vector<int> edge(kBlocks + 1);
  for (int t = 0; t <= kBlocks; ++t)
    edge[t] = static_cast<int>(std::lround(h * (1.0 - std::sqrt(1.0 - double(t) / kBlocks))));
  tbb::parallel_for(0, kBlocks, [&](int t) {
    const int a0 = edge[t], a1 = edge[t + 1];
    if (a0 == a1) return;
    for (std::int64_t r = 0; r < lognorm.n_rows; ++r) {
      const auto b = cols.begin() + start[r], e = cols.begin() + start[r + 1];
      for (auto i = std::lower_bound(b, e, a0); i != e && *i < a1; ++i) {
        const auto ki = i - cols.begin();
        const double vi = vals[ki];
        double* column = sums_.ww.col(*i).data();  // lower triangle: rows b >= a of column a
        for (auto kj = ki; kj < start[r + 1]; ++kj) column[cols[kj]] += vi * vals[kj];
      }
    }
  });
  sums_.n += lognorm.n_rows;
}

Eigen::VectorXd gram_mean(const ScaledColumns& columns, const GramSums& sums) {
  Eigen::VectorXd m(columns.width());
  for (int c = 0; c < columns.width(); ++c)
    m(c) = sums.w(c) / static_cast<double>(sums.n) + columns.zero(c);
  return m;
}

Eigen::MatrixXd gram_covariance(const ScaledColumns& columns, const GramSums& sums) {
  if (sums.n < 2) throw Error("", "pca", "need at least two cells");
  const int h = columns.width();
  Eigen::VectorXd z0(h);
  for (int c = 0; c < h; ++c) z0(c) = columns.zero(c);
  Eigen::MatrixXd gram = sums.ww.selfadjointView<Eigen::Lower>();
  const double n = static_cast<double>(sums.n);
  gram += sums.w * z0.transpose() + z0 * sums.w.transpose() + n * z0 * z0.transpose();
  const Eigen::VectorXd mu = gram_mean(columns, sums);
  Eigen::MatrixXd cov = gram - n * mu * mu.transpose();
  cov /= n - 1;
  return cov;
}

PcaModel pca_from_covariance(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& mean,
                             int n_comps) {
  const int n = static_cast<int>(covariance.rows());
  if (n_comps < 1) throw Error("", "pca.n_comps", "must be at least 1");
  n_comps = std::min(n_comps, n);
  Eigen::MatrixXd a = covariance;
  const char jobz = 'V', range = 'I', uplo = 'L';
  const int il = n - n_comps + 1, iu = n;
  const double vl = 0, vu = 0, abstol = 0;
  int m = 0, info = 0;
  std::vector<double> w(n);
  Eigen::MatrixXd z(n, n_comps);
  std::vector<int> isuppz(2 * std::max(1, n_comps));
  int lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevr_(&jobz, &range, &uplo, &n, a.data(), &n, &vl, &vu, &il, &iu, &abstol, &m, w.data(),
          z.data(), &n, isuppz.data(), &work_query, &lwork, &iwork_query, &liwork, &info);
  lwork = static_cast<int>(work_query);
  liwork = iwork_query;
  std::vector<double> work(lwork);
  std::vector<int> iwork(liwork);
  dsyevr_(&jobz, &range, &uplo, &n, a.data(), &n, &vl, &vu, &il, &iu, &abstol, &m, w.data(),
          z.data(), &n, isuppz.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
  if (info != 0 || m != n_comps)
    throw Error("", "pca", "eigensolver failed (info " + std::to_string(info) + ")");

  std::vector<double> values(n_comps);
  Eigen::MatrixXd vectors(n, n_comps);
  for (int c = 0; c < n_comps; ++c) {
    const int src = n_comps - 1 - c;  // dsyevr returns ascending eigenvalues
    values[c] = w[src];
    vectors.col(c) = z.col(src);
  }
  return pca_from_eigenpairs(covariance, mean, values, vectors);
}

PcaModel pca_from_eigenpairs(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& mean,
                             const std::vector<double>& values, const Eigen::MatrixXd& vectors) {
  const int n_comps = static_cast<int>(values.size());
  PcaModel model;
  model.mean = mean;
  model.components.resize(covariance.rows(), n_comps);
  const double total = covariance.trace();
  for (int c = 0; c < n_comps; ++c) {
    Eigen::VectorXd v = vectors.col(c);
    // Deterministic sign: the largest-magnitude loading is positive.
    Eigen::Index arg = 0;
    v.cwiseAbs().maxCoeff(&arg);
    if (v(arg) < 0) v = -v;
    model.components.col(c) = v;
    const double var = std::max(0.0, values[c]);
    model.variance.push_back(var);
    model.variance_ratio.push_back(total > 0 ? var / total : 0.0);
  }
  return model;
}

Eigen::RowVectorXd projection_shift(const PcaModel& model, const ScaledColumns& columns) {
  const int h = columns.width();
  Eigen::VectorXd z0(h);
  for (int c = 0; c < h; ++c) z0(c) = columns.zero(c);
  return (z0 - model.mean).transpose() * model.components;
}

void project(const PcaModel& model, const ScaledColumns& columns, const CsrMatrix& lognorm,
             DenseMatrix& out, std::int64_t row0) {
  // (Z - mean) V = W V + (z0 - mean) V for every row.
  const Eigen::RowVectorXd shift = projection_shift(model, columns);
  const Eigen::Index k = model.components.cols();
  tbb::parallel_for(std::int64_t{0}, lognorm.n_rows, [&](std::int64_t r) {
    Eigen::RowVectorXd p = shift;
    columns.for_each_offset(lognorm, r, [&](int c, double v) { p += v * model.components.row(c); });
    for (Eigen::Index j = 0; j < k; ++j) out.at(row0 + r, j) = static_cast<float>(p(j));
  });
}

}  // namespace orrery::compute
