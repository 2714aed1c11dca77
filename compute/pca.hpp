// PCA by a streamed Gram matrix: each chunk of scaled HVG columns adds Z^T Z and column sums;
// the covariance's top eigenpairs (LAPACK dsyevr) give loadings and explained variance as
// sklearn/scanpy report them (variance with ddof = 1, ratio to the total variance).
#pragma once

#include <Eigen/Dense>
#include <vector>

#include "elementwise.hpp"

#include "io/matrix.hpp"

namespace orrery::compute {

struct PcaOptions {
  int n_comps = 50;
  // Every field (C++17: the CUDA sources include this too).
  bool operator==(const PcaOptions& o) const { return n_comps == o.n_comps; }
};

// The scaled HVG matrix Z (zero-centred, unit variance, clipped above: scale_value) kept sparse.
// A zero scales to z0 = scale_value(0) in every row, so Z = 1 z0^T + W with W non-zero only where
// the log data are: Z^T Z = W^T W + w z0^T + z0 w^T + n z0 z0^T (w = W^T 1). Each chunk costs
// the squared HVG entries per row, not rows x n_hvg^2, and clipping is exact.
struct ScaledColumns {
  std::vector<std::int32_t> column;  // per log-data column: its HVG column, or -1
  std::vector<float> mean, inv_std;  // per HVG column
  float max_value = 10.0f;

  int width() const { return static_cast<int>(mean.size()); }
  float zero(int c) const;  // scaled value of a zero in HVG column c
  // A chunk's HVG entries as rows of (column, z - z0), columns increasing: what a Gram pass adds.
  struct Offsets {
    std::vector<std::int64_t> start;  // n_rows + 1
    std::vector<std::int32_t> column;
    std::vector<double> value;
  };
  Offsets offsets(const CsrMatrix& lognorm) const;
  // Visits row r's HVG entries in increasing column order as (column, z - z0).
  template <class F>
  void for_each_offset(const CsrMatrix& lognorm, std::int64_t r, F&& f) const;
};

// What a Gram pass adds up over the rows of W: W^T W (lower triangle), W^T 1 and the row count.
struct GramSums {
  Eigen::MatrixXd ww;
  Eigen::VectorXd w;
  std::int64_t n = 0;
};

// Column means and covariance (ddof = 1) of Z from the sums of its W.
Eigen::VectorXd gram_mean(const ScaledColumns& columns, const GramSums& sums);
Eigen::MatrixXd gram_covariance(const ScaledColumns& columns, const GramSums& sums);

// The CPU Gram pass (the CUDA backend's twin adds the same sums with DSYRK on the device).
class GramAccumulator {
 public:
  explicit GramAccumulator(const ScaledColumns& columns);
  // Adds the rows of a chunk of log data.
  void add(const CsrMatrix& lognorm);
  std::int64_t n_rows() const { return sums_.n; }
  const GramSums& sums() const { return sums_; }
  // Covariance (ddof = 1) and column means of Z over everything added so far.
  Eigen::MatrixXd covariance() const { return gram_covariance(columns_, sums_); }
  Eigen::VectorXd mean() const { return gram_mean(columns_, sums_); }

 private:
  const ScaledColumns& columns_;
  GramSums sums_;
};

struct PcaModel {
  Eigen::VectorXd mean;        // n_features
  Eigen::MatrixXd components;  // n_features x n_comps, columns in decreasing variance
  std::vector<double> variance, variance_ratio;
};

// Top `n_comps` principal axes of a covariance matrix.
PcaModel pca_from_covariance(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& mean,
                             int n_comps);

// The model from eigenpairs of the covariance in decreasing order (any solver): each axis's sign
// is fixed (largest-magnitude loading positive), ratios are to the covariance's trace.
PcaModel pca_from_eigenpairs(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& mean,
                             const std::vector<double>& values, const Eigen::MatrixXd& vectors);

// What every row's projection starts from: (z0 - mean) * components, the projection of a row
// of zeros (Z - mean = W + (z0 - mean) for W's offsets).
Eigen::RowVectorXd projection_shift(const PcaModel& model, const ScaledColumns& columns);

// Projects the scaled rows of a chunk of log data onto the model, (Z - mean) * components, into
// rows [row0, row0 + chunk rows) of `out`.
void project(const PcaModel& model, const ScaledColumns& columns, const CsrMatrix& lognorm,
             DenseMatrix& out, std::int64_t row0);

inline float ScaledColumns::zero(int c) const {
  return scale_value(0.0f, mean[c], inv_std[c], max_value);
}

template <class F>
void ScaledColumns::for_each_offset(const CsrMatrix& lognorm, std::int64_t r, F&& f) const {
  for (auto k = lognorm.indptr[r]; k < lognorm.indptr[r + 1]; ++k)
    if (const int c = column[lognorm.indices[k]]; c >= 0)
      f(c, scaled_offset(lognorm.data[k], mean[c], inv_std[c], max_value));
}

}  // namespace orrery::compute
