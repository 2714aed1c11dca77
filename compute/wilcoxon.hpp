// Marker genes as scanpy's rank_genes_groups(method="wilcoxon"): for each group vs the rest (or
// vs a reference group), the rank-sum z-score per gene over log-normalised data, two-sided
// normal p-values, Benjamini-Hochberg adjustment, log2 fold changes of expm1'd group means and
// the fraction of cells expressing the gene in and out of the group. Exact ranks are computed
// gene block by gene block from streamed row chunks; "binned" ranks values in per-group
// histograms in one pass (as rapids-singlecell's wilcoxon_binned).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/matrix.hpp"
#include "log_normalize.hpp"
#include "progress.hpp"

namespace orrery::compute {

// Calls `visit(chunk, first_row)` for consecutive row chunks covering all cells, in order. Each
// call makes its chunks afresh: a visitor may overwrite a chunk's values (to normalise them).
// Each row's genes are in increasing order (the stores' readers sort them).
using ChunkVisitor = std::function<void(CsrMatrix&, std::int64_t)>;
using ChunkSource = std::function<void(const ChunkVisitor&)>;

struct WilcoxonOptions {
  bool tie_correct = false;
  // "exact" | "binned" | "auto" (exact up to exact_max_cells, binned above: exact ranks take
  // one pass over the data per gene block, binned one pass for all genes).
  std::string method = "auto";
  std::int64_t exact_max_cells = 200000;
  int n_bins = 200;      // binned: histogram bins over (0, max value]
  float bin_max = 0.0f;  // binned: upper edge; 0 = the data maximum (one extra pass)
  int reference = -1;    // -1: each group vs the rest; else vs this group
  std::size_t block_bytes = std::size_t{512} << 20;  // exact: memory for one gene block
  // Exact: an upper bound on each gene's non-zero count over the compared cells (e.g. the
  // filter's cells-per-gene), if known before the data are read; then the statistics pass also
  // gathers the first gene block. Empty: blocks follow the counts the statistics pass finds.
  std::vector<std::int64_t> gene_nnz_bound{};
  // Every field (C++17: the CUDA sources include this too).
  bool operator==(const WilcoxonOptions& o) const {
    return tie_correct == o.tie_correct && method == o.method &&
           exact_max_cells == o.exact_max_cells && n_bins == o.n_bins && bin_max == o.bin_max &&
           reference == o.reference && block_bytes == o.block_bytes &&
           gene_nnz_bound == o.gene_nnz_bound;
  }
};

struct GroupMarkers {
  int group = 0;
  // Per gene, indexed by gene (not sorted): scanpy's fields plus expression fractions.
  std::vector<double> scores, pvals, pvals_adj, logfoldchanges, pct_in, pct_out;
  // Genes ordered by decreasing score (scanpy's `names` order).
  std::vector<std::int32_t> order;
};

// `labels[cell]` in [0, n_groups) or -1 to leave the cell out of every comparison.
std::vector<GroupMarkers> rank_genes_groups(const ChunkSource& source, std::int64_t n_cells,
                                            std::int64_t n_genes,
                                            const std::vector<std::int32_t>& labels, int n_groups,
                                            const WilcoxonOptions& options, Progress& progress);

class GeneMajorCounts;
// The same markers from counts held gene by gene (gene_major.hpp), normalised as `normalize`
// says with the CPU backend's arithmetic (bit for bit what the CPU gives from a pass over the
// same counts), without a pass: each gene is ranked from its own entries, genes in parallel.
std::vector<GroupMarkers> rank_genes_groups(const GeneMajorCounts& counts,
                                            const LogNormalize& normalize,
                                            const std::vector<std::int32_t>& labels, int n_groups,
                                            const WilcoxonOptions& options, Progress& progress);

// Checks the options, labels and groups (Error naming the field otherwise) and says whether
// the ranks are binned (method "binned", or "auto" above exact_max_cells).
// Whether `options` rank n_cells cells by bins (binned, or auto above exact_max_cells).
bool wilcoxon_binned(const WilcoxonOptions& options, std::int64_t n_cells);
bool wilcoxon_uses_bins(const WilcoxonOptions& options, const std::vector<std::int32_t>& labels,
                        std::int64_t n_cells, int n_groups);

// What a device backend's passes produce for each group against the rest, and the markers
// they give (the same arithmetic as rank_genes_groups: wilcoxon_math.hpp).
struct RankSumTable {
  std::vector<std::int64_t> size;  // cells per group
  // Per group l and gene g at [l * n_genes + g]: the sum and number of the group's non-zero
  // values, and the group's rank sum among all labelled cells.
  std::vector<double> sum;
  std::vector<std::int64_t> nnz;
  std::vector<double> r_in;
  std::vector<double> tie_sum;  // per gene
};
std::vector<GroupMarkers> markers_vs_rest(const RankSumTable& table, std::int64_t n_genes,
                                          int n_groups, bool tie_correct);

// Benjamini-Hochberg adjusted p-values (statsmodels' fdr_bh); NaN counts as 1.
std::vector<double> benjamini_hochberg(const std::vector<double>& pvals);

}  // namespace orrery::compute
