#include "qc.hpp"

#include <algorithm>
#include <limits>

namespace orrery::compute {

std::vector<char> genes_with_prefix(const std::vector<std::string>& names,
                                    const std::string& prefix) {
  std::vector<char> mask(names.size(), 0);
  if (prefix.empty()) return mask;
  for (std::size_t g = 0; g < names.size(); ++g) mask[g] = names[g].rfind(prefix, 0) == 0;
  return mask;
}

void accumulate_qc(const CsrMatrix& chunk, const std::vector<char>& qc_genes,
                   const std::vector<int>& percent_top, CellQc& cells, GeneQc& genes) {
  if (cells.top_n != percent_top) {
    cells.top_n = percent_top;
    cells.pct_counts_in_top.assign(percent_top.size(), {});
  }
  const std::size_t largest =
      percent_top.empty() ? 0 : static_cast<std::size_t>(percent_top.back());
  std::vector<float> row;
  for (std::int64_t r = 0; r < chunk.n_rows; ++r) {
    std::int32_t n_genes = 0;
    double total = 0.0, total_qc = 0.0;
    for (auto k = chunk.indptr[r]; k < chunk.indptr[r + 1]; ++k) {
      const float v = chunk.data[k];
      const auto g = chunk.indices[k];
      if (v > 0.0f) {
        ++n_genes;
        ++genes.n_cells_by_counts[g];
      }
      total += v;
      genes.total_counts[g] += v;
      if (qc_genes[g]) total_qc += v;
    }
    cells.n_genes_by_counts.push_back(n_genes);
    cells.total_counts.push_back(total);
    cells.total_counts_qc.push_back(total_qc);
    cells.pct_counts_qc.push_back(total > 0 ? 100.0 * total_qc / total
                                            : std::numeric_limits<double>::quiet_NaN());
    if (largest > 0) {
      // The N largest values, largest first (zeros beyond the stored entries add nothing).
      row.assign(chunk.data.begin() + chunk.indptr[r], chunk.data.begin() + chunk.indptr[r + 1]);
      const std::size_t keep = std::min(largest, row.size());
      std::partial_sort(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(keep), row.end(),
                        std::greater<>());
      double cumulative = 0.0;
      std::size_t taken = 0;
      for (std::size_t t = 0; t < percent_top.size(); ++t) {
        const auto n = std::min(static_cast<std::size_t>(percent_top[t]), keep);
        for (; taken < n; ++taken) cumulative += row[taken];
        cells.pct_counts_in_top[t].push_back(total > 0 ? 100.0 * cumulative / total
                                                       : std::numeric_limits<double>::quiet_NaN());
      }
    }
  }
  genes.n_cells += chunk.n_rows;
}

}  // namespace orrery::compute
