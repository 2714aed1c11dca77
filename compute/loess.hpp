// Local regression (Cleveland's loess) of y on one predictor x, as scikit-misc's `loess` (the
// netlib dloess code) computes it for scanpy's seurat_v3 flavor: at a point q, a weighted least
// squares polynomial of `degree` (1 or 2) in (x - q) over the floor(n * span) nearest points,
// tricube weights on the distance over the farthest of them (times sqrt(span) when span > 1).
//
// surface = interpolate (skmisc's default, what scanpy gets): the local fit is made only at the
// vertices of a k-d tree over x (cells split at the median, never between tied values, until a
// cell holds at most floor(n * span * cell) points), giving a value and a slope at each vertex;
// the fitted values are the cubic Hermite interpolation of those within each cell.
// surface = direct: the local fit at every x_i.
#pragma once

#include <vector>

namespace orrery::compute {

enum class LoessSurface { interpolate, direct };

struct LoessOptions {
  double span = 0.3;
  int degree = 2;
  LoessSurface surface = LoessSurface::interpolate;
  double cell = 0.2;  // interpolate: a cell is split while it holds more than n*span*cell points
};

// Fitted values at the x's, in the order given.
std::vector<double> loess_fit(const std::vector<double>& x, const std::vector<double>& y,
                              const LoessOptions& options = {});

// The k-d tree's vertices (ascending) for x, for tests of the interpolation grid.
std::vector<double> loess_vertices(const std::vector<double>& x, const LoessOptions& options = {});

}  // namespace orrery::compute
