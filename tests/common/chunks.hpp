// Chunks of a matrix for tests that feed stages chunk by chunk.
#pragma once

#include <cstdint>

#include "io/matrix.hpp"

namespace orrery::test {

// Rows [r0, r1) of `m` as a chunk of their own (offsets from 0).
inline CsrMatrix slice_rows(const CsrMatrix& m, std::int64_t r0, std::int64_t r1) {
  CsrMatrix c;
  c.n_rows = r1 - r0;
  c.n_cols = m.n_cols;
  const auto e0 = m.indptr[r0], e1 = m.indptr[r1];
  c.indptr.clear();
  for (std::int64_t r = r0; r <= r1; ++r) c.indptr.push_back(m.indptr[r] - e0);
  c.indices.assign(m.indices.begin() + e0, m.indices.begin() + e1);
  c.data.assign(m.data.begin() + e0, m.data.begin() + e1);
  return c;
}

}  // namespace orrery::test
