// The analysis pipeline over a store, streamed in row chunks: QC -> cell/gene filters (masks)
// -> normalize_total + log1p -> HVG -> scale -> PCA -> kNN -> connectivities -> UMAP + Leiden.
// Parameters default to the scanpy pbmc3k tutorial; every stage records time and peak RSS.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "backend.hpp"
#include "gene_major.hpp"
#include "hvg.hpp"
#include "io/store.hpp"
#include "knn.hpp"
#include "leiden.hpp"
#include "pca.hpp"
#include "progress.hpp"
#include "qc.hpp"
#include "umap.hpp"
#include "wilcoxon.hpp"

namespace orrery::compute {

struct PipelineParams {
  std::string qc_prefix = "MT-";  // qc_vars=["mt"]: genes whose names start with this
  std::vector<int> percent_top{50, 100, 200, 500};  // pct_counts_in_top_N_genes (ascending)
  int min_genes = 200;      // keep cells with n_genes_by_counts >= min_genes
  int max_genes = 2500;     // ... and <= max_genes (0: no upper bound)
  double max_pct_qc = 5.0;  // ... and pct_counts_mt < max_pct_qc (<= 0: no bound)
  double min_counts = 0;    // ... and total_counts >= min_counts (<= 0: no bound)
  double max_counts = 0;    // ... and total_counts <= max_counts (<= 0: no bound)
  int min_cells = 3;        // keep genes seen in at least min_cells kept cells
  double target_sum = 1e4;  // normalize_total; <= 0: median of cell totals
  // normalize_total(exclude_highly_expressed=True): genes above max_fraction of some cell's
  // total do not count towards any cell's total.
  bool exclude_highly_expressed = false;
  double max_fraction = 0.05;
  HvgOptions hvg{.flavor = "cell_ranger", .n_top_genes = 2000};
  // scale: values clipped above at max_value (infinity: scanpy's max_value=None, no clipping);
  // zero_center=false divides by the standard deviation without centering first (the data stay
  // sparse; PCA still centers its covariance), as scanpy's scale(zero_center=False).
  float scale_max_value = 10.0f;
  bool scale_zero_center = true;
  PcaOptions pca{.n_comps = 50};
  KnnOptions neighbors{.n_neighbors = 15, .n_pcs = 40};
  UmapOptions umap{};
  LeidenOptions leiden{.resolution = 0.6, .seed = 0};
  bool markers = true;  // rank_genes_groups(groupby=leiden) after clustering
  WilcoxonOptions wilcoxon{};
  std::size_t chunk_bytes = std::size_t{256} << 20;
  // PCA's first pass keeps the kept cells' HVG columns in memory up to this size, and its later
  // passes read them there instead of the store (0: every pass reads the store).
  std::size_t pca_cache_bytes = std::size_t{2048} << 20;
  // The kept counts may be held gene by gene in memory (GeneMajorCounts) up to this size: exact
  // markers then read the store once instead of once per gene block, and the viewer's gene
  // search and selection markers read memory (0: never; past it, they read the store).
  std::size_t gene_cache_bytes = std::size_t{4096} << 20;
  std::string backend = "auto";

  // Reads the keys present in `j` (e.g. {"leiden": {"resolution": 1.0}}), rejecting unknown
  // keys and absurd values with an error naming the field.
  void update_from_json(const nlohmann::json& j);
  void validate() const;
};

struct StageTiming {
  std::string name;
  double seconds = 0, cpu_seconds = 0;
  double read_wait_seconds = 0;  // of `seconds`, waiting for the store's chunks
  // Of `seconds`, a device backend's host time filling staging buffers and waiting for the
  // device to release one (Backend::stream_seconds; 0 on the CPU).
  double staging_seconds = 0, device_wait_seconds = 0;
  double peak_rss_mib = 0;
  std::int64_t rows = 0;
};

struct PipelineResult {
  std::int64_t n_cells_total = 0, n_genes_total = 0;
  CellQc cell_qc;  // every cell of the store
  GeneQc gene_qc;  // every gene, over every cell
  std::vector<char> cell_mask, gene_mask;
  std::vector<CellIndex> kept_cells;
  std::vector<GeneIndex> kept_genes;
  std::vector<std::int64_t> kept_gene_n_cells;  // n cells among kept cells, per kept gene
  std::vector<char> excluded_genes;     // per kept gene: left out of cell totals (may be empty)
  double target_sum = 0;                // normalize_total's: the given one or the median total
  HvgResult hvg;                        // over kept genes
  std::vector<std::int32_t> hvg_genes;  // positions among kept genes
  // The largest log value of the kept cells and genes, found by the HVG pass when it reads the
  // log data (not seurat_v3's) and the markers will be binned (else 0): their bins' upper edge.
  float log_max = 0;
  PcaModel pca;
  DenseMatrix x_pca;  // kept cells x n_comps
  KnnResult knn;
  FuzzyGraph graph;
  DenseMatrix x_umap;  // kept cells x 2
  std::vector<std::int32_t> leiden;
  int n_clusters = 0;
  std::vector<GroupMarkers> markers;  // per Leiden cluster vs rest
  std::vector<StageTiming> timings;
  std::string backend_note;
  // The QC metrics came from PipelineHooks::reuse_qc (no pass over X for them).
  bool qc_reused = false;
  std::string leiden_flavor;  // the flavour that ran: "igraph" or "parallel"
  std::string umap_init;      // how the layout was initialised (and why, after a fallback)
  std::vector<std::string> reused_stages;  // taken from PipelineHooks::reuse, in stage order
  std::vector<std::string> warnings;       // what the run warned of, in order
  std::int64_t device_peak_bytes = 0;      // the backend's device memory high-water mark
  // The HVG columns PCA's later passes read from memory (0: they read the store, or PCA did not
  // run; see PipelineParams::pca_cache_bytes).
  std::int64_t pca_cache_bytes = 0;
  // The kept counts gene by gene, when the markers pass kept them (see
  // PipelineParams::gene_cache_bytes and PipelineHooks::keep_counts_by_gene); else null.
  std::shared_ptr<const GeneMajorCounts> counts_by_gene;
};

// QC metrics of a store, reusable across runs that change only thresholds or later stages.
struct QcMetrics {
  std::string qc_prefix;
  CellQc cells;
  GeneQc genes;
};

struct PipelineHooks {
  // Called with the embedding while UMAP optimises (every few epochs) so a viewer can animate.
  EpochCallback on_umap_epoch;
  // Called once QC metrics exist (after the first pass, or at once when reused).
  std::function<void(std::shared_ptr<const QcMetrics>)> on_qc;
  // Metrics from an earlier run on the same store; the QC pass is skipped when the prefix matches.
  std::shared_ptr<const QcMetrics> reuse_qc;
  // An earlier run on the same store and its parameters (both alive during the call): the
  // stages whose parameters, and those of the stages they depend on, are unchanged are taken
  // from it instead of recomputed — QC through the neighbour graph as one, then UMAP, Leiden
  // and the markers (after Leiden) each on their own. PipelineResult::reused_stages names them.
  const PipelineResult* reuse = nullptr;
  const PipelineParams* reuse_params = nullptr;
  // The markers pass keeps the kept counts gene by gene (PipelineResult::counts_by_gene) within
  // params.gene_cache_bytes even when it reads them once (binned), for the caller's later use.
  bool keep_counts_by_gene = false;
  // The counts_by_gene of `reuse`'s run: when this run takes its graph from that run (the same
  // cells, genes and normalisation), the markers read them instead of the store (then they
  // are this run's counts_by_gene too).
  std::shared_ptr<const GeneMajorCounts> counts_by_gene;
};

// Which stages a run of `params` on a store of n_cells x n_genes with the backend named
// `backend_name` can take from hooks.reuse (see PipelineHooks::reuse).
struct ReusableStages {
  bool graph = false;  // QC through the neighbour graph
  bool umap = false, leiden = false, markers = false;
};
ReusableStages reusable_stages(const PipelineHooks& hooks, const PipelineParams& params,
                               std::int64_t n_cells, std::int64_t n_genes,
                               const std::string& backend_name);

// What the kept counts held gene by gene may take: params' gene_cache_bytes, and at most a
// quarter of the machine's memory.
std::size_t gene_cache_budget(const PipelineParams& params);

// The cell filter: whether cell i passes the QC thresholds of `params`.
bool keep_cell(const CellQc& qc, std::int64_t i, const PipelineParams& params);
std::int64_t count_kept_cells(const CellQc& qc, const PipelineParams& params);

PipelineResult run_pipeline(io::Store& store, const PipelineParams& params, Backend& backend,
                            Progress& progress, const PipelineHooks& hooks = {});

// The kept cells' rows of a chunk starting at store row `row0`, columns renumbered to the kept
// genes (values unchanged).
CsrMatrix kept_chunk(const CsrMatrix& raw, std::int64_t row0, const PipelineResult& result,
                     const std::vector<std::int32_t>& gene_map);
// The same into `out`, reusing its buffers (a pass keeps one `out` for all of its chunks).
void kept_chunk(const CsrMatrix& raw, std::int64_t row0, const PipelineResult& result,
                const std::vector<std::int32_t>& gene_map, CsrMatrix& out);

// A chunk of the store (starting at row `row0`) restricted to kept cells and genes, normalised
// and log1p'd into `out` (its buffers reused): the matrix every downstream stage sees.
void log_normalized_chunk(const CsrMatrix& raw, std::int64_t row0, const PipelineResult& result,
                          const std::vector<std::int32_t>& gene_map, const PipelineParams& params,
                          Backend& backend, CsrMatrix& out);
std::vector<std::int32_t> kept_gene_map(const PipelineResult& result);

// PCA's passes read only the HVG columns of the kept counts. normalize_total needs each cell's
// whole total, so with `rest` one more, last column carries the rest of it (the kept genes that
// are neither HVG nor excluded); the totals, and so the normalised HVG values, are those of the
// kept rows (exactly, for counts whose totals are integers below 2^24).
struct HvgColumns {
  static constexpr std::int32_t kRest = -2;
  std::vector<std::int32_t> of_store_gene;  // narrow column, kRest, or -1 (not read)
  std::int64_t width = 0;                   // HVG columns, plus one with the rest
  std::vector<char> excluded;               // per narrow column; empty when none is excluded
  bool rest = false;

  // The pass's normalisation and scaled columns over the narrow columns (both refer to this).
  LogNormalize normalize(const LogNormalize& kept) const;
  std::vector<std::int32_t> scaled_column() const;  // HVG column c -> c, the rest -> -1
};
HvgColumns hvg_columns(const PipelineResult& result, bool rest);
// The kept cells' rows of a chunk starting at store row `row0`, in `columns`' narrow columns.
void hvg_chunk(const CsrMatrix& raw, std::int64_t row0, const PipelineResult& result,
               const HvgColumns& columns, CsrMatrix& out);

// How the stages after the HVG selection normalise kept counts: params' target_sum, or the
// median the run found where it is null; normalize_total's excluded genes.
LogNormalize log_normalize_of(const PipelineResult& result, const PipelineParams& params);

// The kept cells x kept genes as a chunk source (row indices among kept cells): their counts,
// or log-normalised by `backend`.
ChunkSource kept_counts_source(io::Store& store, const PipelineResult& result,
                               const PipelineParams& params);
ChunkSource log_normalized_source(io::Store& store, const PipelineResult& result,
                                  const PipelineParams& params, Backend& backend);

nlohmann::json report_json(const PipelineResult& result, const PipelineParams& params);

double peak_rss_mib();

}  // namespace orrery::compute
