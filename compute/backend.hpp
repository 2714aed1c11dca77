// The Backend interface: one implementation per device family (cpu/, cuda/). The pipeline calls
// backends for the per-chunk transforms; make_backend("auto") picks CUDA when a device exists and
// says why it did not otherwise.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compute/knn.hpp"
#include "compute/layout_channel.hpp"
#include "compute/leiden.hpp"
#include "compute/log_normalize.hpp"
#include "compute/pca.hpp"
#include "compute/qc.hpp"
#include "compute/spectral.hpp"
#include "compute/umap.hpp"
#include "compute/wilcoxon.hpp"
#include "io/matrix.hpp"

namespace orrery::compute {

// QC's pass (qc.hpp's accumulate_qc): chunks of counts in, per-cell metrics appended as each
// chunk is added, per-gene sums at the end. The gene counts over kept cells (the filter's
// min_cells) come from the same pass: `keep(i)` says whether row i of the chunk just added is
// kept, once its metrics are in `cells`.
class QcPass {
 public:
  virtual ~QcPass() = default;
  virtual void add(const CsrMatrix& counts, CellQc& cells,
                   const std::function<bool(std::int64_t)>& keep) = 0;
  // The per-gene QC of the cells added, and per gene the kept cells with a count > 0.
  virtual void finish(GeneQc& genes, std::vector<std::int64_t>& n_cells_kept) = 0;
};

// Per-gene moments of log-normalised data (highly_variable_genes and scale's statistics):
// sums and sums of squares of the log values and, for seurat, of expm1 of them; with batches,
// per batch of the flavor's value (expm1 for seurat, the log value otherwise). For seurat_v3
// the same of counts, optionally clipped.
struct MomentOptions {
  std::int64_t n_genes = 0;
  bool expm1 = false;  // seurat's moments of expm1(log data)
  int n_batches = 0;   // 0: no batch key
  // How the counts are log-normalised (target sum, excluded genes). seurat_v3 works on the
  // counts themselves (normalize.apply false), and its second pass on counts clipped above per
  // gene: `clip` (one per gene) for the all-cell sums, `batch_clip` ([batch * n_genes + gene])
  // for the batch sums.
  LogNormalize normalize;
  const std::vector<double>* clip = nullptr;
  const std::vector<double>* batch_clip = nullptr;
};

struct GeneMoments {
  std::vector<double> sum, sumsq;          // of the log values (or counts), per gene
  std::vector<double> exp_sum, exp_sumsq;  // of expm1 (with MomentOptions::expm1)
  // Per batch b and gene g at [b * n_genes + g]: the flavor's sums and whether any cell of
  // the batch expresses the gene; cells per batch.
  std::vector<double> batch_sum, batch_sumsq;
  std::vector<char> batch_seen;
  std::vector<std::int64_t> batch_cells;
};

class MomentPass {
 public:
  virtual ~MomentPass() = default;
  // Counts of kept cells and genes in (their values may be overwritten with the log data);
  // `batch` has the chunk's rows' batches (nullptr without batches). The pass is done with
  // both when add returns (a device pass copies them first).
  virtual void add(CsrMatrix& counts, const std::int32_t* batch) = 0;
  virtual GeneMoments finish() = 0;
};

// PCA's Gram pass (pca.hpp): chunks of counts in, the sums of W out. The pipeline gives it the
// kept cells' HVG columns plus the rest of each cell's total (pipeline.hpp's HvgColumns), or log
// data; `columns` and the LogNormalize say which columns are scaled and how they normalise.
// Their values may be overwritten with the log data.
class GramPass {
 public:
  virtual ~GramPass() = default;
  virtual void add(CsrMatrix& counts) = 0;
  virtual GramSums finish() = 0;
};

// PCA's projection (pca.hpp's project: (Z - mean) V): chunks in as the Gram pass takes them; each
// chunk's rows go to rows [row0, ...) of `out`, which must outlive the pass. A device pass may
// write them later: all are in `out` once finish() has returned (required; without it the last
// chunk's rows may be missing).
class ProjectionPass {
 public:
  virtual ~ProjectionPass() = default;
  virtual void add(CsrMatrix& counts, DenseMatrix& out, std::int64_t row0) = 0;
  virtual void finish() {}
};

// Every stage has a CPU implementation (the defaults below); a device backend overrides the
// stages it runs and says which in device_stages().
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // The pipeline stages this backend runs on its device ("" for the CPU backend).
  virtual std::string device_stages() const { return ""; }
  // The stages it ran on the host instead, each with why, since the last call (the pipeline
  // passes them on as warnings).
  std::vector<std::string> take_host_fallbacks() { return std::exchange(host_fallbacks_, {}); }
  // Peak device memory taken so far (0 without a device).
  virtual std::int64_t device_peak_bytes() const { return 0; }
  // Device memory a stage could plan for now (0 without a device).
  virtual std::int64_t device_free_bytes() const { return 0; }
  // Host seconds of the streamed passes so far (0 without a device): copying chunks into the
  // page-locked staging buffers, and waiting for the device to be done with one. With the
  // store's read waits, what a pass's time on the host went to.
  struct StreamSeconds {
    double staging = 0, device_wait = 0;
  };
  virtual StreamSeconds stream_seconds() const { return {}; }
  // In place: each row scaled to sum to target_sum, then log1p. With `excluded` (one flag per
  // column), flagged columns do not count towards a row's total (normalize_total's
  // exclude_highly_expressed) but are scaled like the others.
  virtual void normalize_log1p(CsrMatrix& chunk, double target_sum,
                               const std::vector<char>* excluded = nullptr) = 0;
  // normalize_log1p as `n` says (nothing where it does not apply).
  void log_normalize(CsrMatrix& chunk, const LogNormalize& n) {
    if (n.apply) normalize_log1p(chunk, n.target_sum, n.excluded);
  }
  // QC of every cell and gene; `qc_genes` (one flag per gene) outlives the pass.
  virtual std::unique_ptr<QcPass> qc_pass(const std::vector<char>& qc_genes,
                                          const std::vector<int>& percent_top,
                                          std::int64_t n_genes);
  // Moments of the log-normalised data (normalized here, with this backend's normalize_log1p).
  virtual std::unique_ptr<MomentPass> moment_pass(const MomentOptions& options);
  // The Gram pass over the scaled HVG columns of the chunks normalised as `normalize` says;
  // `columns` outlives the pass.
  virtual std::unique_ptr<GramPass> gram_pass(const ScaledColumns& columns,
                                              const LogNormalize& normalize);
  // The projection of such chunks on the model's axes; `model` and `columns` outlive the pass.
  virtual std::unique_ptr<ProjectionPass> projection_pass(const PcaModel& model,
                                                          const ScaledColumns& columns,
                                                          const LogNormalize& normalize);
  // Top `n_comps` principal axes of a covariance matrix (pca_from_covariance's answer).
  virtual PcaModel pca(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& mean, int n_comps);
  // k nearest neighbours (knn.hpp's answer, chosen by options.method).
  virtual KnnResult knn(const DenseMatrix& points, const KnnOptions& options, Progress& progress);
  // Marker genes (wilcoxon.hpp's rank_genes_groups; the same arithmetic: wilcoxon_math.hpp) of
  // the chunks `source` gives, normalised as `normalize` says.
  virtual std::vector<GroupMarkers> rank_genes_groups(const ChunkSource& source,
                                                      const LogNormalize& normalize,
                                                      std::int64_t n_cells, std::int64_t n_genes,
                                                      const std::vector<std::int32_t>& labels,
                                                      int n_groups, const WilcoxonOptions& options,
                                                      Progress& progress);
  // Each kNN entry's fuzzy membership (umap.hpp's fuzzy_memberships; fuzzy_math.hpp's
  // arithmetic).
  virtual std::vector<float> fuzzy_memberships(const KnnResult& knn, double local_connectivity);
  // The fuzzy simplicial set: these memberships and their union (umap.hpp's fuzzy_union; a
  // device backend gives the graph the host would make of its memberships, bit for bit).
  virtual FuzzyGraph fuzzy_simplicial_set(const KnnResult& knn, double local_connectivity,
                                          double set_op_mix_ratio = 1.0);
  // Where the UMAP layout goes while it optimises (layout_channel.hpp): from the next umap()
  // on, the layout is written on the device into the channel's buffer whenever the renderer
  // asks, and the epoch callback is called only for the final layout. nullptr stops it. Returns
  // false where the backend cannot (the CPU backend: the host upload path applies).
  virtual bool stream_layout_to(LayoutChannel* /*channel*/) { return false; }
  // The eigensolver spectral_layout uses on each connected component: thick-restart Lanczos
  // (spectral.hpp's spectral_lanczos); a device backend runs it on the device for components of
  // at least `device_min_vertices` vertices (on smaller ones the transfers cost more than the
  // host's products).
  virtual ComponentEigensolver spectral_eigensolver(std::int64_t device_min_vertices = 50000);
  // UMAP's SGD layout (umap_layout's answer, same arithmetic: umap_step.hpp).
  virtual DenseMatrix umap(const CsrMatrix& graph, DenseMatrix init, const UmapOptions& options,
                           Progress& progress, const EpochCallback& on_epoch);
  // The Leiden flavour options.flavor names here ("auto": this backend's default; "leidenalg"
  // is igraph's): "igraph" or "parallel".
  virtual std::string leiden_flavor(const LeidenOptions& options) const;
  // Leiden in that flavour (leiden.hpp; a device backend runs the parallel one on the device,
  // with the same labels).
  virtual std::vector<std::int32_t> leiden(const CsrMatrix& graph, const LeidenOptions& options,
                                           Progress& progress);

 protected:
  void note_host_fallback(std::string why) { host_fallbacks_.push_back(std::move(why)); }

 private:
  std::vector<std::string> host_fallbacks_;
};

// The chunks of `counts`, each normalised by `backend` as `n` says before `visit` sees it.
ChunkSource log_normalized(ChunkSource counts, const LogNormalize& n, Backend& backend);

std::unique_ptr<Backend> make_cpu_backend();

// Available only when built with CUDA; returns nullptr with `why` set when no device is usable.
std::unique_ptr<Backend> make_cuda_backend(std::string* why);
bool cuda_compiled();
int cuda_device_count();
// Opens cuBLAS and cuSOLVER, which a CUDA backend needs (make_cuda_backend does, once a device
// is found; they are not linked, so a process without a device never maps them). False, with
// `why`, where they cannot be opened or lack a function the backend calls.
bool load_cuda_libraries(std::string* why);

// "cpu", "cuda" or "auto". `note` receives a one-line explanation of the choice.
std::unique_ptr<Backend> make_backend(const std::string& kind, std::string* note);

}  // namespace orrery::compute
