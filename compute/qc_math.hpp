// QC arithmetic shared by the CPU and CUDA backends (__host__ __device__): one cell's sums over
// its stored values in stored order, and its pct_counts_in_top_N from its values sorted largest
// first. Both backends call these, so their QC columns are the same floating-point numbers.
#pragma once

#include <cstdint>

#include "compute/elementwise.hpp"

namespace orrery::compute {

struct CellSums {
  std::int32_t n_genes = 0;  // values > 0
  double total = 0.0;
  double total_qc = 0.0;  // over the qc gene set
};

// `qc_genes` has one flag per column (nullptr: no gene set).
ORRERY_HD inline CellSums cell_sums(const float* values, const std::int32_t* columns,
                                    std::int64_t n, const char* qc_genes) {
  CellSums s;
  for (std::int64_t k = 0; k < n; ++k) {
    const float v = values[k];
    s.n_genes += v > 0.0f;
    s.total += v;
    if (qc_genes && qc_genes[columns[k]]) s.total_qc += v;
  }
  return s;
}

// 100 * part / total, NaN for an empty cell (scanpy divides by zero there).
ORRERY_HD inline double percent_of(double part, double total) {
  return total > 0 ? 100.0 * part / total : static_cast<double>(NAN);
}

// For each N in top_n[0..m) (ascending): 100 * (sum of the N largest values) / total into
// out[t * stride]. `largest_first` holds the cell's n stored values, at least the first
// min(n, top_n[m-1]) of them sorted largest first; zeros beyond the stored values add nothing.
ORRERY_HD inline void top_n_percents(const float* largest_first, std::int64_t n, const int* top_n,
                                     int m, double total, double* out, std::int64_t stride) {
  double cumulative = 0.0;
  std::int64_t taken = 0;
  for (int t = 0; t < m; ++t) {
    const std::int64_t top = top_n[t] < n ? top_n[t] : n;
    for (; taken < top; ++taken) cumulative += largest_first[taken];
    out[t * stride] = percent_of(cumulative, total);
  }
}

}  // namespace orrery::compute
