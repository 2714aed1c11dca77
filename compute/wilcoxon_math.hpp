// Rank-sum arithmetic shared by the CPU and CUDA backends (__host__ __device__): one gene's
// rank sums for every group at once (each group against all other cells), the z-score and
// p-value, the log fold change and the binned method's bin of a value. Ranks are multiples of
// 1/2 and their sums stay far below 2^52, so the rank sums are exact whatever the order of
// the additions. Tie sums (t^3 - t) are not exact beyond t ~ 208k; both backends add them in
// the same order with the same roundings (product_rn: no fused multiply-add on the device).
#pragma once

#include <cmath>
#include <cstdint>

#include "compute/elementwise.hpp"

namespace orrery::compute {

// Walks one gene's non-zero entries (`e.value(j)`, `e.label(j)` in [0, n_groups),
// `e.weight(j)` cells; j in [0, n)) sorted by value, equal values adjacent. The gene's zeros
// (`zeros[l]` in group l, `zeros_total` in all) form one tie block between the negative and
// the positive values; ties share their average rank. Adds each group's rank sum to
// r_in[group] and returns the tie sum over blocks (t^3 - t) that tie_correct uses.
template <typename Entries>
ORRERY_HD double rank_sums_vs_rest(const Entries& e, std::int64_t n, const double* zeros,
                                   double zeros_total, int n_groups, double* r_in) {
  double position = 0, tie_sum = 0;  // cells ranked so far
  bool zeros_done = false;
  std::int64_t i = 0;
  while (i < n || !zeros_done) {
    if (!zeros_done && (i == n || e.value(i) > 0)) {
      zeros_done = true;
      if (zeros_total > 0) {
        const double rank = position + (zeros_total + 1) / 2.0;
        for (int l = 0; l < n_groups; ++l) r_in[l] += zeros[l] * rank;
        tie_sum += product_rn(product_rn(zeros_total, zeros_total), zeros_total) - zeros_total;
        position += zeros_total;
      }
      continue;
    }
    const float v = e.value(i);
    std::int64_t j = i;
    double t = 0;
    for (; j < n && e.value(j) == v; ++j) t += e.weight(j);
    if (t > 0) {
      const double rank = position + (t + 1) / 2.0;
      for (std::int64_t k = i; k < j; ++k) r_in[e.label(k)] += e.weight(k) * rank;
      tie_sum += product_rn(product_rn(t, t), t) - t;
      position += t;
    }
    i = j;
  }
  return tie_sum;
}

// The rank-sum z-score of a group of n_in cells against n_out others (scanpy's, with its
// optional tie correction); 0 where undefined, as scanpy sets NaN scores.
ORRERY_HD inline double wilcoxon_z(double r_in, double n_in, double n_out, double tie_sum,
                                   bool tie_correct) {
  const double n = n_in + n_out;
  double tie = 1.0;
  if (tie_correct && n > 1) tie = 1.0 - tie_sum / (n * n * n - n);
  const double sd = sqrt(tie * n_in * n_out * (n + 1) / 12.0);
  const double z = (r_in - n_in * (n + 1) / 2.0) / sd;
#if defined(__CUDA_ARCH__)
  return isfinite(z) ? z : 0.0;
#else
  return std::isfinite(z) ? z : 0.0;
#endif
}

ORRERY_HD inline double two_sided_p(double z) {
  return erfc(fabs(z) / sqrt(2.0));
}

// log2 of the ratio of expm1'd mean log values, scanpy's pseudo-count 1e-9.
ORRERY_HD inline double log_fold_change(double mean_in, double mean_out) {
  return log2((expm1(mean_in) + 1e-9) / (expm1(mean_out) + 1e-9));
}

// wilcoxon_binned: the bin of a value in (0, bin_max] among n_bins (values above, infinity and
// NaN go last; the float is compared before its conversion, which would be undefined for them).
ORRERY_HD inline int wilcoxon_bin(float v, float bin_max, int n_bins) {
  const float x = v / bin_max * static_cast<float>(n_bins);
  if (!(x < static_cast<float>(n_bins - 1))) return n_bins - 1;
  return x > 0.0f ? static_cast<int>(x) : 0;
}

}  // namespace orrery::compute
