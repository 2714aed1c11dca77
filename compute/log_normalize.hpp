// How a pass normalises the kept counts it is given (normalize_total + log1p), shared by the
// backends' passes and the CUDA staging (no Eigen: the CUDA sources include it on their own).
#pragma once

#include <vector>

namespace orrery::compute {

// normalize_log1p's arguments as the passes after the HVG selection apply them to the kept
// counts they are given; with `apply` false the chunks are log data already.
struct LogNormalize {
  bool apply = true;
  double target_sum = 1e4;
  const std::vector<char>* excluded = nullptr;  // outlives the pass
};

}  // namespace orrery::compute
