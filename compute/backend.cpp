#include "backend.hpp"

#include "by_columns.hpp"
#include "elementwise.hpp"
#include "io/error.hpp"

namespace orrery::compute {
namespace {

class CpuQcPass final : public QcPass {
 public:
  CpuQcPass(const std::vector<char>& qc_genes, std::vector<int> percent_top, std::int64_t n_genes)
      : qc_genes_(qc_genes), percent_top_(std::move(percent_top)), kept_(n_genes, 0) {
    genes_.n_cells_by_counts.assign(n_genes, 0);
    genes_.total_counts.assign(n_genes, 0.0);
  }
  void add(const CsrMatrix& c, CellQc& cells,
           const std::function<bool(std::int64_t)>& keep) override {
    accumulate_qc(c, qc_genes_, percent_top_, cells, genes_, keep, &kept_);
  }
  void finish(GeneQc& genes, std::vector<std::int64_t>& n_cells_kept) override {
    genes = std::move(genes_);
    n_cells_kept = std::move(kept_);
  }

 private:
  const std::vector<char>& qc_genes_;
  std::vector<int> percent_top_;
  GeneQc genes_;
  std::vector<std::int64_t> kept_;
};

class CpuMomentPass final : public MomentPass {
 public:
  CpuMomentPass(Backend& backend, const MomentOptions& o) : backend_(backend), o_(o) {
    const auto n = static_cast<std::size_t>(o.n_genes);
    m_.sum.assign(n, 0.0);
    m_.sumsq.assign(n, 0.0);
    if (o.expm1) {
      m_.exp_sum.assign(n, 0.0);
      m_.exp_sumsq.assign(n, 0.0);
    }
    m_.batch_sum.assign(n * o.n_batches, 0.0);
    m_.batch_sumsq.assign(n * o.n_batches, 0.0);
    m_.batch_seen.assign(n * o.n_batches, 0);
    m_.batch_cells.assign(o.n_batches, 0);
  }
  void add(CsrMatrix& c, const std::int32_t* batch) override {
    backend_.log_normalize(c, o_.normalize);
    if (batch)
      for (std::int64_t i = 0; i < c.n_rows; ++i) ++m_.batch_cells[batch[i]];
    const auto n = static_cast<std::size_t>(o_.n_genes);
    const double* clip = o_.clip ? o_.clip->data() : nullptr;
    const double* batch_clip = o_.batch_clip ? o_.batch_clip->data() : nullptr;
    // Term for term as the CUDA pass (stats.cu's gene_moments).
    for_each_entry_by_columns(c, [&](std::int64_t i, std::int64_t k) {
      const auto g = static_cast<std::size_t>(c.indices[k]);
      const double raw = c.data[k];
      const double v = clip ? clip_above(raw, clip[g]) : raw;
      m_.sum[g] += v;
      m_.sumsq[g] += product_rn(v, v);
      const double e = o_.expm1 ? expm1_value(raw) : raw;  // the flavor's value
      if (o_.expm1) {
        m_.exp_sum[g] += e;
        m_.exp_sumsq[g] += product_rn(e, e);
      }
      if (batch) {
        const std::size_t at = static_cast<std::size_t>(batch[i]) * n + g;
        const double b = batch_clip ? clip_above(e, batch_clip[at]) : e;
        m_.batch_sum[at] += b;
        m_.batch_sumsq[at] += product_rn(b, b);
        m_.batch_seen[at] |= raw != 0;
      }
    });
  }
  GeneMoments finish() override { return std::move(m_); }

 private:
  Backend& backend_;
  MomentOptions o_;
  GeneMoments m_;
};

class CpuGramPass final : public GramPass {
 public:
  CpuGramPass(Backend& backend, const ScaledColumns& columns, const LogNormalize& n)
      : backend_(backend), normalize_(n), gram_(columns) {}
  void add(CsrMatrix& counts) override {
    backend_.log_normalize(counts, normalize_);
    gram_.add(counts);
  }
  GramSums finish() override { return gram_.sums(); }

 private:
  Backend& backend_;
  LogNormalize normalize_;
  GramAccumulator gram_;
};

class CpuProjectionPass final : public ProjectionPass {
 public:
  CpuProjectionPass(Backend& backend, const PcaModel& model, const ScaledColumns& columns,
                    const LogNormalize& n)
      : backend_(backend), model_(model), columns_(columns), normalize_(n) {}
  void add(CsrMatrix& counts, DenseMatrix& out, std::int64_t row0) override {
    backend_.log_normalize(counts, normalize_);
    compute::project(model_, columns_, counts, out, row0);
  }

 private:
  Backend& backend_;
  const PcaModel& model_;
  const ScaledColumns& columns_;
  LogNormalize normalize_;
};

}  // namespace

std::unique_ptr<QcPass> Backend::qc_pass(const std::vector<char>& qc_genes,
                                         const std::vector<int>& percent_top,
                                         std::int64_t n_genes) {
  return std::make_unique<CpuQcPass>(qc_genes, percent_top, n_genes);
}

std::unique_ptr<MomentPass> Backend::moment_pass(const MomentOptions& options) {
  return std::make_unique<CpuMomentPass>(*this, options);
}

std::unique_ptr<GramPass> Backend::gram_pass(const ScaledColumns& columns,
                                             const LogNormalize& normalize) {
  return std::make_unique<CpuGramPass>(*this, columns, normalize);
}

std::unique_ptr<ProjectionPass> Backend::projection_pass(const PcaModel& model,
                                                         const ScaledColumns& columns,
                                                         const LogNormalize& normalize) {
  return std::make_unique<CpuProjectionPass>(*this, model, columns, normalize);
}

PcaModel Backend::pca(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& mean, int n_comps) {
  return pca_from_covariance(covariance, mean, n_comps);
}

ComponentEigensolver Backend::spectral_eigensolver(std::int64_t /*device_min_vertices*/) {
  return host_lanczos_eigensolver();
}

DenseMatrix Backend::umap(const CsrMatrix& graph, DenseMatrix init, const UmapOptions& options,
                          Progress& progress, const EpochCallback& on_epoch) {
  return umap_layout(graph, std::move(init), options, progress, on_epoch);
}

std::vector<GroupMarkers> Backend::rank_genes_groups(const ChunkSource& source,
                                                     const LogNormalize& normalize,
                                                     std::int64_t n_cells, std::int64_t n_genes,
                                                     const std::vector<std::int32_t>& labels,
                                                     int n_groups, const WilcoxonOptions& options,
                                                     Progress& progress) {
  return compute::rank_genes_groups(log_normalized(source, normalize, *this), n_cells, n_genes,
                                    labels, n_groups, options, progress);
}

ChunkSource log_normalized(ChunkSource counts, const LogNormalize& n, Backend& backend) {
  if (!n.apply) return counts;
  return [counts = std::move(counts), n, &backend](const ChunkVisitor& visit) {
    counts([&](CsrMatrix& chunk, std::int64_t row0) {
      backend.log_normalize(chunk, n);
      visit(chunk, row0);
    });
  };
}

KnnResult Backend::knn(const DenseMatrix& points, const KnnOptions& options, Progress& progress) {
  return compute::knn(points, options, progress);
}

std::string Backend::leiden_flavor(const LeidenOptions& options) const {
  if (options.flavor == "parallel") return "parallel";
  if (options.flavor == "igraph" || options.flavor == "leidenalg" || options.flavor == "auto")
    return "igraph";
  throw Error("", "leiden.flavor", "unknown flavour '" + options.flavor + "'");
}

std::vector<std::int32_t> Backend::leiden(const CsrMatrix& graph, const LeidenOptions& options,
                                          Progress& progress) {
  return leiden_flavor(options) == "parallel" ? leiden_parallel(graph, options, &progress)
                                              : compute::leiden(graph, options, &progress);
}

FuzzyGraph Backend::fuzzy_simplicial_set(const KnnResult& knn, double local_connectivity,
                                         double set_op_mix_ratio) {
  return fuzzy_union(knn, fuzzy_memberships(knn, local_connectivity), set_op_mix_ratio);
}

std::vector<float> Backend::fuzzy_memberships(const KnnResult& knn, double local_connectivity) {
  return compute::fuzzy_memberships(knn, local_connectivity);
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
