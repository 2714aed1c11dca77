#include "qc.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>

#include "by_columns.hpp"
#include "qc_math.hpp"

namespace orrery::compute {

std::vector<char> genes_with_prefix(const std::vector<std::string>& names,
                                    const std::string& prefix) {
  std::vector<char> mask(names.size(), 0);
  if (prefix.empty()) return mask;
  for (std::size_t g = 0; g < names.size(); ++g) mask[g] = names[g].rfind(prefix, 0) == 0;
  return mask;
}

std::size_t append_cells(CellQc& cells, const std::vector<int>& percent_top, std::int64_t n) {
  if (cells.top_n != percent_top) {
    cells.top_n = percent_top;
    cells.pct_counts_in_top.assign(percent_top.size(), {});
  }
  const std::size_t base = cells.total_counts.size();
  const std::size_t size = base + static_cast<std::size_t>(n);
  cells.n_genes_by_counts.resize(size);
  cells.total_counts.resize(size);
  cells.total_counts_qc.resize(size);
  cells.pct_counts_qc.resize(size);
  for (auto& top : cells.pct_counts_in_top) top.resize(size);
  return base;
}

namespace {

// pct_counts_in_top for a cell whose values are whole numbers below 2^24 (counts): their sums
// are exact in double in any order, so counting the values below 256 and sorting the few above
// gives the sums of the sorted values (top_n_percents') bit for bit, without sorting them all.
// Returns false, writing nothing, when a value is not such a number (negative, fractional, NaN).
bool top_n_percents_of_counts(const float* values, std::int64_t n, const std::vector<int>& top_n,
                              double total, CellQc& cells, std::size_t at,
                              std::vector<float>& large) {
  std::array<std::int64_t, 256> small{};
  large.clear();
  for (std::int64_t k = 0; k < n; ++k) {
    const float v = values[k];
    if (!(v >= 0.0f && v < 16777216.0f)) return false;
    const auto whole = static_cast<std::int32_t>(v);
    if (static_cast<float>(whole) != v) return false;
    if (whole < 256)
      ++small[whole];
    else
      large.push_back(v);
  }
  std::sort(large.begin(), large.end(), std::greater<>());
  std::size_t t = 0;
  std::int64_t taken = 0;
  double cumulative = 0.0;
  // `count` more values equal to `value`, the largest not yet taken.
  auto take = [&](double value, std::int64_t count) {
    while (t < top_n.size()) {
      const std::int64_t want = std::min<std::int64_t>(top_n[t], n);
      const std::int64_t step = std::min(count, want - taken);
      cumulative += value * static_cast<double>(step);
      taken += step;
      count -= step;
      if (taken < want) return;
      cells.pct_counts_in_top[t++][at] = percent_of(cumulative, total);
    }
  };
  for (const float v : large) take(v, 1);
  for (int c = 255; c >= 0; --c)
    if (small[c] > 0) take(c, small[c]);
  take(0.0, 0);  // sizes N beyond the cell's values: all of them
  return true;
}

}  // namespace

void accumulate_qc(const CsrMatrix& chunk, const std::vector<char>& qc_genes,
                   const std::vector<int>& percent_top, CellQc& cells, GeneQc& genes,
                   const std::function<bool(std::int64_t)>& keep,
                   std::vector<std::int64_t>* n_cells_kept) {
  const std::size_t base = append_cells(cells, percent_top, chunk.n_rows);
  const std::size_t largest =
      percent_top.empty() ? 0 : static_cast<std::size_t>(percent_top.back());
  const std::size_t n = static_cast<std::size_t>(chunk.n_rows);
  // Per cell, in parallel: each cell's values are summed in stored order (qc_math.hpp, as the
  // CUDA backend does), so the answer does not depend on the number of threads.
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 256), [&](const auto& range) {
    std::vector<float> row, large;
    for (std::size_t r = range.begin(); r < range.end(); ++r) {
      const auto b = chunk.indptr[r], len = chunk.indptr[r + 1] - b;
      const CellSums s = cell_sums(chunk.data.data() + b, chunk.indices.data() + b, len,
                                   qc_genes.empty() ? nullptr : qc_genes.data());
      const std::size_t at = base + r;
      cells.n_genes_by_counts[at] = s.n_genes;
      cells.total_counts[at] = s.total;
      cells.total_counts_qc[at] = s.total_qc;
      cells.pct_counts_qc[at] = percent_of(s.total_qc, s.total);
      if (largest == 0 || top_n_percents_of_counts(chunk.data.data() + b, len, percent_top, s.total,
                                                   cells, at, large))
        continue;
      // The N largest values, largest first (selected, then sorted: twice as fast as a
      // partial sort at thousands of values a cell; the same values in the same order).
      row.assign(chunk.data.begin() + b, chunk.data.begin() + b + len);
      const auto top = static_cast<std::ptrdiff_t>(std::min(largest, row.size()));
      if (top > 0) {
        std::nth_element(row.begin(), row.begin() + (top - 1), row.end(), std::greater<>());
        std::sort(row.begin(), row.begin() + top, std::greater<>());
      }
      for (std::size_t t = 0; t < percent_top.size(); ++t)
        top_n_percents(row.data(), static_cast<std::int64_t>(row.size()), percent_top.data() + t, 1,
                       s.total, &cells.pct_counts_in_top[t][at], 0);
    }
  });
  std::vector<char> kept;
  if (n_cells_kept) {
    kept.resize(n);
    for (std::size_t r = 0; r < n; ++r) kept[r] = keep(static_cast<std::int64_t>(r));
  }
  // Per gene, each gene's cells in order (the same sums as a serial pass).
  for_each_entry_by_columns(chunk, [&](std::int64_t r, std::int64_t k) {
    const float v = chunk.data[k];
    const auto g = chunk.indices[k];
    genes.n_cells_by_counts[g] += v > 0.0f;
    genes.total_counts[g] += v;
    if (n_cells_kept && kept[r] && v > 0.0f) ++(*n_cells_kept)[g];
  });
  genes.n_cells += chunk.n_rows;
}

}  // namespace orrery::compute
