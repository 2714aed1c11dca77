// Per-column sums over a CSR chunk in parallel without changing their value: the columns are cut
// into a fixed number of ranges (not one per thread), each range is summed by one task, and
// within a range every column still sees its rows in order. So a column's sum is the same
// floating-point sum as in a serial pass, whatever the number of threads.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

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
  const std::int64_t width = c1 - c0, n_rows = chunk.n_rows;
  if (chunk.nnz() == 0 || width <= 0) return;
  const auto bound = [&](std::int64_t part) {
    return static_cast<GeneIndex>(c0 + width * part / kColumnRanges);
  };
  // starts[part * n_rows + r]: row r's first entry whose column is at least range part's first
  // (part kColumnRanges: at least c1). One walk along each row finds all of them; a binary
  // search per range and row took half of a pass's time, in scattered reads.
  std::vector<std::int64_t> starts(static_cast<std::size_t>((kColumnRanges + 1) * n_rows));
  const GeneIndex* indices = chunk.indices.data();
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n_rows, 64), [&](const auto& rows) {
    for (std::int64_t r = rows.begin(); r < rows.end(); ++r) {
      const GeneIndex* it = indices + chunk.indptr[r];
      const GeneIndex* end = indices + chunk.indptr[r + 1];
      for (std::int64_t part = 0; part <= kColumnRanges; ++part) {
        // Galloping from the last range's start: the next one is usually a few entries on.
        const GeneIndex g = bound(part);
        std::ptrdiff_t step = 8;
        while (end - it > step && it[step] < g) {  // entries up to it[step] are below g
          it += step + 1;
          step *= 2;
        }
        it = std::lower_bound(it, it + std::min<std::ptrdiff_t>(step, end - it), g);
        starts[static_cast<std::size_t>(part * n_rows + r)] = it - indices;
      }
    }
  });
  tbb::parallel_for(std::int64_t{0}, kColumnRanges, [&](std::int64_t part) {
    if (bound(part) == bound(part + 1)) return;
    const std::int64_t* from = starts.data() + part * n_rows;
    const std::int64_t* to = from + n_rows;
    for (std::int64_t r = 0; r < n_rows; ++r)
      for (std::int64_t k = from[r]; k < to[r]; ++k) visit(part, r, k);
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
