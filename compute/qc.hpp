// Quality-control metrics as scanpy's calculate_qc_metrics: per cell n_genes_by_counts,
// total_counts, pct_counts for a gene set (e.g. mitochondrial) and pct_counts_in_top_N_genes;
// per gene n_cells_by_counts,
// total_counts, mean_counts and pct_dropout_by_counts. Accumulated chunk by chunk.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/matrix.hpp"

namespace orrery::compute {

struct CellQc {
  std::vector<std::int32_t> n_genes_by_counts;
  std::vector<double> total_counts;
  std::vector<double> total_counts_qc;  // counts in the qc gene set (e.g. "mt")
  std::vector<double> pct_counts_qc;    // 100 * total_counts_qc / total_counts (NaN if empty)
  // scanpy's percent_top: for each N, 100 * (counts in the cell's N largest genes) / total.
  std::vector<int> top_n;
  std::vector<std::vector<double>> pct_counts_in_top;  // [N index][cell]
};

struct GeneQc {
  std::vector<std::int64_t> n_cells_by_counts;
  std::vector<double> total_counts;
  std::int64_t n_cells = 0;
  double mean_counts(std::size_t g) const { return n_cells ? total_counts[g] / n_cells : 0.0; }
  double pct_dropout(std::size_t g) const {
    return n_cells ? 100.0 * (1.0 - static_cast<double>(n_cells_by_counts[g]) / n_cells) : 0.0;
  }
};

// Genes whose name starts with `prefix` (scanpy's var_names.str.startswith("MT-")).
std::vector<char> genes_with_prefix(const std::vector<std::string>& names,
                                    const std::string& prefix);

// Makes room for `n` more cells in every column of `cells` (pct_counts_in_top for
// `percent_top`, reset when it changes) and returns the first new cell's index.
std::size_t append_cells(CellQc& cells, const std::vector<int>& percent_top, std::int64_t n);

// Appends the chunk's cells to `cells` and adds its counts to `genes` (sized n_cols beforehand).
// `percent_top` (ascending N) must be the same for every chunk of a pass. With `n_cells_kept`
// (sized n_cols), the same walk over the genes counts the cells with a count > 0 that `keep`
// keeps (keep(i): row i of the chunk, asked once its metrics are in `cells`).
void accumulate_qc(const CsrMatrix& chunk, const std::vector<char>& qc_genes,
                   const std::vector<int>& percent_top, CellQc& cells, GeneQc& genes,
                   const std::function<bool(std::int64_t)>& keep = {},
                   std::vector<std::int64_t>* n_cells_kept = nullptr);

}  // namespace orrery::compute
