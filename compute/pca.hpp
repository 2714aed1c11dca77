// PCA by a streamed Gram matrix: each chunk of scaled HVG columns adds Z^T Z and column sums;
// the covariance's top eigenpairs (LAPACK dsyevr) give loadings and explained variance as
// sklearn/scanpy report them (variance with ddof = 1, ratio to the total variance).
#pragma once

#include <Eigen/Dense>
#include <vector>

#include "io/matrix.hpp"

namespace orrery::compute {

struct PcaOptions {
  int n_comps = 50;
};

class GramAccumulator {
 public:
  explicit GramAccumulator(int n_features);
  // Adds rows of a dense chunk (rows x n_features).
  void add(const Eigen::MatrixXf& chunk);
  std::int64_t n_rows() const { return n_; }
  // Covariance (ddof = 1) of everything added so far.
  Eigen::MatrixXd covariance() const;
  Eigen::VectorXd mean() const { return sum_ / static_cast<double>(n_); }

 private:
  Eigen::MatrixXd gram_;
  Eigen::VectorXd sum_;
  std::int64_t n_ = 0;
};

struct PcaModel {
  Eigen::VectorXd mean;        // n_features
  Eigen::MatrixXd components;  // n_features x n_comps, columns in decreasing variance
  std::vector<double> variance, variance_ratio;
};

// Top `n_comps` principal axes of a covariance matrix.
PcaModel pca_from_covariance(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& mean,
                             int n_comps);

// Projects a dense chunk onto the model: (chunk - mean) * components, appended to `out` rows.
void project(const PcaModel& model, const Eigen::MatrixXf& chunk, DenseMatrix& out,
             std::int64_t row0);

}  // namespace orrery::compute
