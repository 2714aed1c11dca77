// How a pass normalises the kept counts it is given (normalize_total + log1p), shared by the
// backends' passes and the CUDA staging (no Eigen: the CUDA sources include it on their own).
#pragma once

#include <cstdint>
#include <vector>

namespace orrery::compute {

// normalize_log1p's arguments as the passes after the HVG selection apply them to the kept
// counts they are given; with `apply` false the chunks are log data already.
struct LogNormalize {
  bool apply = true;
  double target_sum = 1e4;
  const std::vector<char>* excluded = nullptr;  // outlives the pass
};

// A row's total as normalize_total sums it on the CPU: its stored values in column order, in
// double, leaving out `excluded` columns (null or empty: none). Every host path that
// normalises uses it, so their values agree to the bit.
template <typename Csr>
double row_total(const Csr& c, std::int64_t r, const std::vector<char>* excluded) {
  const bool none = !excluded || excluded->empty();
  double total = 0.0;
  for (auto k = c.indptr[r]; k < c.indptr[r + 1]; ++k)
    if (none || !(*excluded)[c.indices[k]]) total += c.data[k];
  return total;
}

}  // namespace orrery::compute
