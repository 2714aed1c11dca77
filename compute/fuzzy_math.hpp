// umap-learn's fuzzy simplicial set, per kNN row: smooth_knn_dist's rho (distance to the
// local_connectivity-th nearest non-identical neighbour) and sigma (binary search so the row's
// memberships sum to log2(k)), and the membership of each neighbour. Shared by the CPU
// (umap.cpp) and the CUDA kernel (__host__ __device__).
#pragma once

#include "elementwise.hpp"

namespace orrery::compute {

constexpr double kSmoothKTolerance = 1e-5;
constexpr double kMinKDistScale = 1e-3;

struct SmoothKnn {
  double sigma = 0, rho = 0;
};

// `d`: the row's k distances, ascending (self first, at 0). `mean_all`: the mean of all rows'
// distances (the floor of sigma for rows whose rho is 0).
ORRERY_HD inline SmoothKnn smooth_knn_row(const float* d, int k, double local_connectivity,
                                          double mean_all) {
  SmoothKnn s;
  int nonzero = 0;
  for (int j = 0; j < k; ++j) nonzero += d[j] > 0.0f;
  // The t-th (0-based) distance above 0, in the row's order.
  auto nth_nonzero = [&](int t) {
    for (int j = 0; j < k; ++j)
      if (d[j] > 0.0f && t-- == 0) return static_cast<double>(d[j]);
    return 0.0;
  };
  if (static_cast<double>(nonzero) >= local_connectivity) {
    const int index = static_cast<int>(floor(local_connectivity));
    const double interpolation = local_connectivity - index;
    if (index > 0) {
      s.rho = nth_nonzero(index - 1);
      if (interpolation > kSmoothKTolerance)
        s.rho += product_rn(interpolation, nth_nonzero(index) - nth_nonzero(index - 1));
    } else {
      s.rho = interpolation * nth_nonzero(0);
    }
  } else if (nonzero > 0) {
    for (int j = 0; j < k; ++j)
      if (d[j] > 0.0f && d[j] > s.rho) s.rho = d[j];
  }
  const double target = log2(static_cast<double>(k));
  double lo = 0.0, hi = INFINITY, mid = 1.0;
  for (int it = 0; it < 64; ++it) {
    double psum = 0.0;
    for (int j = 1; j < k; ++j) {
      const double x = d[j] - s.rho;
      psum += x > 0 ? exp(-(x / mid)) : 1.0;
    }
    if (fabs(psum - target) < kSmoothKTolerance) break;
    if (psum > target) {
      hi = mid;
      mid = (lo + hi) / 2.0;
    } else {
      lo = mid;
      mid = hi == INFINITY ? mid * 2 : (lo + hi) / 2.0;
    }
  }
  s.sigma = mid;
  double mean_i = 0.0;
  for (int j = 0; j < k; ++j) mean_i += d[j];
  mean_i /= k;
  const double floor_sigma = kMinKDistScale * (s.rho > 0.0 ? mean_i : mean_all);
  if (s.sigma < floor_sigma) s.sigma = floor_sigma;
  return s;
}

// A neighbour's membership: 1 within rho, exp(-(d - rho) / sigma) beyond.
ORRERY_HD inline float fuzzy_membership(double d, const SmoothKnn& s) {
  return static_cast<float>((d - s.rho <= 0.0 || s.sigma == 0.0) ? 1.0
                                                                 : exp(-((d - s.rho) / s.sigma)));
}

// The fuzzy union of the two directed memberships a = P_ij and b = P_ji (0 where absent):
// a + b - ab at set_op_mix_ratio 1, blended with the intersection ab below it. Symmetric in a and
// b, so both directions of an edge get the same float.
ORRERY_HD inline float fuzzy_combine(double a, double b, double set_op_mix_ratio) {
  const double prod = product_rn(a, b);
  return static_cast<float>(product_rn(set_op_mix_ratio, a + b - prod) +
                            product_rn(1.0 - set_op_mix_ratio, prod));
}

}  // namespace orrery::compute
