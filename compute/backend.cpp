#include "backend.hpp"

#include "io/error.hpp"

namespace orrery::compute {
namespace {

class CpuGramPass final : public GramPass {
 public:
  explicit CpuGramPass(const ScaledColumns& columns) : gram_(columns) {}
  void add(const CsrMatrix& lognorm) override { gram_.add(lognorm); }
  GramSums finish() override { return gram_.sums(); }

 private:
  GramAccumulator gram_;
};

}  // namespace

std::unique_ptr<GramPass> Backend::gram_pass(const ScaledColumns& columns) {
  return std::make_unique<CpuGramPass>(columns);
}

PcaModel Backend::pca(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& mean, int n_comps) {
  return pca_from_covariance(covariance, mean, n_comps);
}

DenseMatrix Backend::umap(const CsrMatrix& graph, DenseMatrix init, const UmapOptions& options,
                          Progress& progress, const EpochCallback& on_epoch) {
  return umap_layout(graph, std::move(init), options, progress, on_epoch);
}

KnnResult Backend::knn(const DenseMatrix& points, const KnnOptions& options, Progress& progress) {
  return compute::knn(points, options, progress);
}

std::unique_ptr<Backend> make_backend(const std::string& kind, std::string* note) {
  std::string why;
  if (kind == "cpu") {
    if (note) *note = "backend cpu (requested)";
    return make_cpu_backend();
  }
  if (kind == "cuda" || kind == "auto") {
    if (auto b = make_cuda_backend(&why)) {
      if (note) *note = "backend cuda (" + why + ")";
      return b;
    }
    if (kind == "cuda") throw Error("", "backend", "CUDA backend unavailable: " + why);
    if (note) *note = "backend cpu (CUDA unavailable: " + why + ")";
    return make_cpu_backend();
  }
  throw Error("", "backend", "unknown backend '" + kind + "' (expected cpu, cuda or auto)");
}

}  // namespace orrery::compute
