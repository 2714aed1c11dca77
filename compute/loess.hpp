// Local regression (Cleveland's loess) of y on one predictor x: at each x_i a weighted least
// squares polynomial of `degree` (1 or 2) over the span * n nearest points, tricube weights.
// Evaluated directly at every point (skmisc's surface="direct"); used by seurat_v3 HVG.
#pragma once

#include <vector>

namespace orrery::compute {

std::vector<double> loess_fit(const std::vector<double>& x, const std::vector<double>& y,
                              double span = 0.3, int degree = 2);

}  // namespace orrery::compute
