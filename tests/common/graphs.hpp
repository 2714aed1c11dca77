// Lattice graphs for the spectral layout's tests: each vertex joined to its four neighbours,
// whose Laplacian eigenvectors are known (cosine modes along each side).
#pragma once

#include <algorithm>
#include <cstdint>

#include "io/matrix.hpp"

namespace orrery::test {

// A w x h lattice (vertex v at column v % w, row v / w) with the weight `weight(u, v)` on the
// entry of row v, column u (the same both ways for a symmetric graph).
template <typename Weight>
CsrMatrix lattice_graph(int w, int h, Weight weight) {
  const int n = w * h;
  CsrMatrix g;
  g.n_rows = g.n_cols = n;
  for (int v = 0; v < n; ++v) {
    for (int u : {v - w, v - 1, v + 1, v + w}) {
      if (u < 0 || u >= n || (u == v - 1 && v % w == 0) || (u == v + 1 && v % w == w - 1)) continue;
      g.indices.push_back(u);
      g.data.push_back(weight(u, v));
    }
    g.indptr.push_back(g.nnz());
  }
  return g;
}

// Uneven symmetric weights in [1, 2) from a hash of the pair: no mirror symmetry that would
// hide a cosine mode from a near-constant start vector.
inline float uneven_weight(int u, int v) {
  const auto pair = static_cast<std::uint64_t>(std::min(u, v)) * 7919 +
                    static_cast<std::uint64_t>(std::max(u, v));
  return 1.0f + static_cast<float>((pair * 2654435761ULL >> 7) % 1000) / 1000.0f;
}

}  // namespace orrery::test
