// The Backend interface: one implementation per device family (cpu/, cuda/). The pipeline calls
// backends for the per-chunk transforms; make_backend("auto") picks CUDA when a device exists and
// says why it did not otherwise.
#pragma once

#include <memory>
#include <string>

#include "compute/external.hpp"
#include "compute/knn.hpp"
#include "compute/pca.hpp"
#include "compute/umap.hpp"
#include "io/matrix.hpp"

namespace orrery::compute {

// PCA's Gram pass (pca.hpp): chunks of log data in, the sums of W out.
class GramPass {
 public:
  virtual ~GramPass() = default;
  virtual void add(const CsrMatrix& lognorm) = 0;
  virtual GramSums finish() = 0;
};

// Every stage has a CPU implementation (the defaults below); a device backend overrides the
// stages it runs and says which in device_stages().
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // The pipeline stages this backend runs on its device ("" for the CPU backend).
  virtual std::string device_stages() const { return ""; }
  // Peak device memory taken so far (0 without a device).
  virtual std::int64_t device_peak_bytes() const { return 0; }
  // In place: each row scaled to sum to target_sum, then log1p. With `excluded` (one flag per
  // column), flagged columns do not count towards a row's total (normalize_total's
  // exclude_highly_expressed) but are scaled like the others.
  virtual void normalize_log1p(CsrMatrix& chunk, double target_sum,
                               const std::vector<char>* excluded = nullptr) = 0;
  // The Gram pass over the scaled HVG columns; `columns` outlives the pass.
  virtual std::unique_ptr<GramPass> gram_pass(const ScaledColumns& columns);
  // Top `n_comps` principal axes of a covariance matrix (pca_from_covariance's answer).
  virtual PcaModel pca(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& mean, int n_comps);
  // k nearest neighbours (knn.hpp's answer, chosen by options.method).
  virtual KnnResult knn(const DenseMatrix& points, const KnnOptions& options, Progress& progress);
  // Where the UMAP layout also goes when it is final: positions (n x float2) written on the
  // device into `positions` and then `ready` signalled. Returns false where the backend cannot
  // (the CPU backend: the host upload path applies).
  virtual bool stream_layout_to(ExternalBuffer* /*positions*/, ExternalSemaphore* /*ready*/) {
    return false;
  }
  // UMAP's SGD layout (umap_layout's answer, same arithmetic: umap_step.hpp).
  virtual DenseMatrix umap(const CsrMatrix& graph, DenseMatrix init, const UmapOptions& options,
                           Progress& progress, const EpochCallback& on_epoch);
};

std::unique_ptr<Backend> make_cpu_backend();

// Available only when built with CUDA; returns nullptr with `why` set when no device is usable.
std::unique_ptr<Backend> make_cuda_backend(std::string* why);
bool cuda_compiled();
int cuda_device_count();

// "cpu", "cuda" or "auto". `note` receives a one-line explanation of the choice.
std::unique_ptr<Backend> make_backend(const std::string& kind, std::string* note);

}  // namespace orrery::compute
