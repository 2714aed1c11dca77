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

// Calls visit(row, k) for every stored entry k of `chunk` (rows sorted by column), each
// column's entries in row order; entries of different column ranges run concurrently.
template <typename F>
void for_each_entry_by_columns(const CsrMatrix& chunk, F&& visit) {
  constexpr std::int64_t kRanges = 64;
  const std::int64_t n_cols = chunk.n_cols;
  if (chunk.nnz() == 0 || n_cols <= 0) return;
  tbb::parallel_for(std::int64_t{0}, kRanges, [&](std::int64_t part) {
    const auto g0 = static_cast<GeneIndex>(n_cols * part / kRanges);
    const auto g1 = static_cast<GeneIndex>(n_cols * (part + 1) / kRanges);
    if (g0 == g1) return;
    const GeneIndex* indices = chunk.indices.data();
    for (std::int64_t r = 0; r < chunk.n_rows; ++r) {
      const GeneIndex* end = indices + chunk.indptr[r + 1];
      for (const GeneIndex* it = std::lower_bound(indices + chunk.indptr[r], end, g0);
           it != end && *it < g1; ++it)
        visit(r, it - indices);
    }
  });
}

}  // namespace orrery::compute
