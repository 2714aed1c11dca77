// Highly variable genes from per-gene moments, as scanpy's highly_variable_genes:
// cell_ranger (dispersion of the log data, normalised by median/MAD within mean percentile bins)
// and seurat (log dispersion of expm1 data, z-scored within 20 equal-width mean bins).
#pragma once

#include <string>
#include <vector>

namespace orrery::compute {

struct HvgOptions {
  std::string flavor = "seurat";  // "seurat" | "cell_ranger"
  int n_top_genes = 0;            // 0: use the cutoffs below
  double min_mean = 0.0125, max_mean = 3.0, min_disp = 0.5, max_disp = 1e300;
  int n_bins = 20;
};

struct HvgResult {
  std::vector<double> means, dispersions, dispersions_norm;
  std::vector<int> mean_bin;  // bin number per gene
  std::vector<char> highly_variable;
  int n_selected() const;
};

// `mean` and `var` (ddof = 1) per gene: of the log data for cell_ranger, of expm1(log data) for
// seurat.
HvgResult highly_variable_genes(const std::vector<double>& mean, const std::vector<double>& var,
                                const HvgOptions& options);

}  // namespace orrery::compute
