#include "pca.hpp"

#include <algorithm>

#include "io/error.hpp"

extern "C" void dsyevr_(const char* jobz, const char* range, const char* uplo, const int* n,
                        double* a, const int* lda, const double* vl, const double* vu,
                        const int* il, const int* iu, const double* abstol, int* m, double* w,
                        double* z, const int* ldz, int* isuppz, double* work, const int* lwork,
                        int* iwork, const int* liwork, int* info);

namespace orrery::compute {

GramAccumulator::GramAccumulator(int n_features)
    : gram_(Eigen::MatrixXd::Zero(n_features, n_features)),
      sum_(Eigen::VectorXd::Zero(n_features)) {}

void GramAccumulator::add(const Eigen::MatrixXf& chunk) {
  if (chunk.rows() == 0) return;
  // Single precision within a chunk (fast GEMM), double across chunks.
  Eigen::MatrixXf g = chunk.transpose() * chunk;
  gram_ += g.cast<double>();
  sum_ += chunk.cast<double>().colwise().sum().transpose();
  n_ += chunk.rows();
}

Eigen::MatrixXd GramAccumulator::covariance() const {
  if (n_ < 2) throw Error("", "pca", "need at least two cells");
  Eigen::VectorXd mu = mean();
  Eigen::MatrixXd cov = gram_ - static_cast<double>(n_) * mu * mu.transpose();
  cov /= static_cast<double>(n_ - 1);
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

  PcaModel model;
  model.mean = mean;
  model.components.resize(n, n_comps);
  const double total = covariance.trace();
  for (int c = 0; c < n_comps; ++c) {
    const int src = n_comps - 1 - c;  // dsyevr returns ascending eigenvalues
    Eigen::VectorXd v = z.col(src);
    // Deterministic sign: the largest-magnitude loading is positive.
    Eigen::Index arg = 0;
    v.cwiseAbs().maxCoeff(&arg);
    if (v(arg) < 0) v = -v;
    model.components.col(c) = v;
    const double var = std::max(0.0, w[src]);
    model.variance.push_back(var);
    model.variance_ratio.push_back(total > 0 ? var / total : 0.0);
  }
  return model;
}

void project(const PcaModel& model, const Eigen::MatrixXf& chunk, DenseMatrix& out,
             std::int64_t row0) {
  const Eigen::MatrixXf comps = model.components.cast<float>();
  const Eigen::RowVectorXf shift = (model.mean.transpose() * model.components).cast<float>();
  Eigen::MatrixXf p = chunk * comps;
  p.rowwise() -= shift;
  for (Eigen::Index r = 0; r < p.rows(); ++r)
    for (Eigen::Index c = 0; c < p.cols(); ++c) out.at(row0 + r, c) = p(r, c);
}

}  // namespace orrery::compute
