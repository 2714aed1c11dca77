// `orrery synth`: a deterministic synthetic count matrix with cluster structure (negative
// binomial counts around per-cluster gene profiles, log-normal library sizes, mitochondrial
// genes named "MT-"), generated cell by cell so any row range can be produced independently.
// Only expressed genes cost time (thinned geometric skipping over genes sorted by expression),
// so atlas-sized stores (millions of cells x 28k genes) generate at the rate of their nnz.
#pragma once

#include <cstdint>
#include <string>

#include "io/dataframe.hpp"
#include "io/matrix.hpp"
#include "progress.hpp"

namespace orrery::compute {

struct SynthOptions {
  std::int64_t n_cells = 3000;
  std::int32_t n_genes = 2000;
  int n_clusters = 8;
  double mean_umis = 2500;  // mean library size
  double dispersion = 0.3;  // negative-binomial overdispersion (1 / shape)
  double marker_fraction = 0.04;
  std::uint64_t seed = 0;
  int zarr_format = 2;  // when the output is a .zarr store
};

class SynthGenerator {
 public:
  explicit SynthGenerator(const SynthOptions& options);
  CsrMatrix rows(std::int64_t r0, std::int64_t r1) const;
  std::int32_t cluster_of(std::int64_t cell) const;
  DataFrame obs() const;  // index + "true_cluster" categorical
  DataFrame var() const;  // index = gene names
  const SynthOptions& options() const { return o_; }

 private:
  SynthOptions o_;
  std::vector<std::vector<std::int32_t>>
      by_weight_;  // per cluster, genes by decreasing probability
  // Per cluster, the genes' probabilities (summing to 1) in by_weight_ order.
  std::vector<std::vector<double>> sorted_weight_;
};

// Writes a synthetic store to `path` (.h5ad) in row chunks.
void write_synth_h5ad(const SynthOptions& options, const std::string& path, Progress& progress);

}  // namespace orrery::compute
