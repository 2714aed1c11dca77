// Per-column sums over a CSR chunk in parallel without changing their value: the columns are cut
// into a fixed number of ranges (not one per thread), each range is summed by one task, and
// within a range every column still sees its rows in order. So a column's sum is the same
// floating-point sum as in a serial pass, whatever the number of threads.
#pragma once

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdint>

#include "io/matrix.hpp"

namespace orrery::compute {

// The column ranges: fixed, so a range's work does not depend on the number of threads.
constexpr std::int64_t kColumnRanges = 64;

// Calls visit(part, row, k) for every stored entry k of `chunk` (rows sorted by column) whose
// column is in [c0, c1), each column's entries in row order; [c0, c1) is cut into kColumnRanges
// ranges (part: 0 .. kColumnRanges - 1), whose entries run concurrently.
template <typename F>
void for_each_entry_by_column_ranges(const CsrMatrix& chunk, std::int64_t c0, std::int64_t c1,
                                     F&& visit) {
  const std::int64_t width = c1 - c0;
  if (chunk.nnz() == 0 || width <= 0) return;
  tbb::parallel_for(std::int64_t{0}, kColumnRanges, [&](std::int64_t part) {
    const auto g0 = static_cast<GeneIndex>(c0 + width * part / kColumnRanges);
    const auto g1 = static_cast<GeneIndex>(c0 + width * (part + 1) / kColumnRanges);
    if (g0 == g1) return;
    const GeneIndex* indices = chunk.indices.data();
    for (std::int64_t r = 0; r < chunk.n_rows; ++r) {
      const GeneIndex* end = indices + chunk.indptr[r + 1];
      for (const GeneIndex* it = std::lower_bound(indices + chunk.indptr[r], end, g0);
           it != end && *it < g1; ++it)
        visit(part, r, it - indices);
    }
  });
}

// Calls visit(row, k) for every stored entry k of `chunk` (rows sorted by column), each
// column's entries in row order; entries of different column ranges run concurrently.
template <typename F>
void for_each_entry_by_columns(const CsrMatrix& chunk, F&& visit) {
  for_each_entry_by_column_ranges(
      chunk, 0, chunk.n_cols, [&](std::int64_t, std::int64_t r, std::int64_t k) { visit(r, k); });
}

}  // namespace orrery::compute
