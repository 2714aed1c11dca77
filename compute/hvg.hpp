// Highly variable genes from per-gene moments, as scanpy's highly_variable_genes:
// cell_ranger (dispersion of the log data, normalised by median/MAD within mean percentile bins)
// and seurat (log dispersion of expm1 data, z-scored within 20 equal-width mean bins); and
// seurat_v3 on counts (variance of counts clipped at a loess fit of log variance on log mean).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace orrery::compute {

struct HvgOptions {
  std::string flavor = "seurat";  // "seurat" | "cell_ranger" | "seurat_v3" (n_top_genes or 2000)
  int n_top_genes = 0;            // 0: use the cutoffs below
  double min_mean = 0.0125, max_mean = 3.0, min_disp = 0.5, max_disp = 1e300;
  int n_bins = 20;
  double span = 0.3;  // seurat_v3: loess span
  // obs column: genes are chosen per batch, then combined (cell_ranger, seurat).
  std::string batch_key = "";
  // Every field (C++17: the CUDA sources include this too).
  bool operator==(const HvgOptions& o) const {
    return flavor == o.flavor && n_top_genes == o.n_top_genes && min_mean == o.min_mean &&
           max_mean == o.max_mean && min_disp == o.min_disp && max_disp == o.max_disp &&
           n_bins == o.n_bins && span == o.span && batch_key == o.batch_key;
  }
};

struct HvgResult {
  std::vector<double> means, dispersions, dispersions_norm;
  std::vector<int> mean_bin;  // bin number per gene
  std::vector<char> highly_variable;
  // seurat_v3: variances of counts, their clipped standardised version, rank (0 = most variable,
  // NaN outside the selection, as scanpy).
  std::vector<double> variances, variances_norm, rank;
  // With a batch key: in how many batches each gene was highly variable, and whether in all.
  std::vector<int> n_batches;
  std::vector<char> intersection;
  int n_selected() const;
};

// `mean` and `var` (ddof = 1) per gene: of the log data for cell_ranger, of expm1(log data) for
// seurat.
HvgResult highly_variable_genes(const std::vector<double>& mean, const std::vector<double>& var,
                                const HvgOptions& options);

// highly_variable_genes(batch_key=...): `mean[b]`, `var[b]` are batch b's moments and
// `expressed[b]` flags the genes seen in at least one of its cells. Each batch selects among its
// expressed genes (the others count as mean, dispersion and normalised dispersion 0, not
// selected); means and dispersions are averaged over batches ignoring NaN, and the genes are
// ranked by the number of batches that selected them, then by mean normalised dispersion (top
// n_top_genes), or the cutoffs apply to the averages, as scanpy.
HvgResult highly_variable_genes_batched(const std::vector<std::vector<double>>& mean,
                                        const std::vector<std::vector<double>>& var,
                                        const std::vector<std::vector<char>>& expressed,
                                        const HvgOptions& options);

// seurat_v3, first half: per gene the regularised standard deviation sqrt(10^loess(log10 var
// on log10 mean)) of counts (0 for constant genes), and the value counts are clipped at,
// mean + sqrt(n_cells) * reg_std.
struct SeuratV3Clip {
  std::vector<double> reg_std, clip;
};
SeuratV3Clip seurat_v3_clip(const std::vector<double>& mean, const std::vector<double>& var,
                            std::int64_t n_cells, double span);

// seurat_v3, second half: from the clipped counts' per-gene sum and sum of squares, the
// standardised variances and the top n_top_genes (2000 when 0).
HvgResult seurat_v3_select(const std::vector<double>& mean, const std::vector<double>& var,
                           const SeuratV3Clip& clip, const std::vector<double>& clipped_sum,
                           const std::vector<double>& clipped_sumsq, std::int64_t n_cells,
                           const HvgOptions& options);

// seurat_v3 with a batch key (scanpy's): `per_batch[b]` is seurat_v3_select's answer on batch
// b's cells. Genes are ranked within each batch by standardised variance (0 = highest); a gene
// counts in highly_variable_nbatches where its rank is under n_top_genes, and its
// highly_variable_rank is the median of those ranks (NaN if none). The top n_top_genes by median
// rank, then by more batches, are selected; variances_norm is the mean over batches; means and
// variances are the whole data's.
HvgResult seurat_v3_combine(const std::vector<HvgResult>& per_batch,
                            const std::vector<double>& mean, const std::vector<double>& var,
                            const HvgOptions& options);

}  // namespace orrery::compute
