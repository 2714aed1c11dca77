// Element-wise arithmetic shared by the CPU and CUDA backends (__host__ __device__), so the CPU
// tests cover the formulas the GPU kernels run.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define ORRERY_HD __host__ __device__
#else
#define ORRERY_HD
#endif

namespace orrery::compute {

// normalize_total: scale a count so its cell sums to target_sum (cells with no counts stay 0).
// Single precision in scanpy's order of operations (size factor = total / target, then the
// reciprocal, then the product) so values, and therefore Wilcoxon ranks, match scanpy's float32.
ORRERY_HD inline float normalize_value(float count, double cell_total, double target_sum) {
  if (cell_total <= 0.0) return 0.0f;
  const float size_factor = static_cast<float>(cell_total) / static_cast<float>(target_sum);
  return count * (1.0f / size_factor);
}

ORRERY_HD inline float log1p_value(float x) {
  return log1pf(x);
}

ORRERY_HD inline float normalize_log1p_value(float count, double cell_total, double target_sum) {
  return log1p_value(normalize_value(count, cell_total, target_sum));
}

// a * b rounded on its own: sums of squares then add the same numbers on both backends (nvcc
// would otherwise fuse the product into the sum's add).
ORRERY_HD inline double product_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// min(x, limit) as std::min writes it (seurat_v3's clipped counts).
ORRERY_HD inline double clip_above(double x, double limit) {
  return limit < x ? limit : x;
}

// seurat's moments are of expm1 of the log data (scanpy's np.expm1 in float64).
ORRERY_HD inline double expm1_value(double v) {
  return expm1(v);
}

// scanpy's scale: zero-centre by the gene mean, divide by the (ddof=1) std, clip above max_value.
ORRERY_HD inline float scale_value(float x, float mean, float inv_std, float max_value) {
  float z = (x - mean) * inv_std;
  return z > max_value ? max_value : z;
}

// A log value's scaled value less the scaled zero of its column (z - z0): what PCA's Gram pass
// and projection add, on the host and in the device's tiles.
ORRERY_HD inline double scaled_offset(float x, float mean, float inv_std, float max_value) {
  return static_cast<double>(scale_value(x, mean, inv_std, max_value)) -
         static_cast<double>(scale_value(0.0f, mean, inv_std, max_value));
}

}  // namespace orrery::compute
