#include "loess.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "io/error.hpp"

namespace orrery::compute {

std::vector<double> loess_fit(const std::vector<double>& x, const std::vector<double>& y,
                              double span, int degree) {
  const std::size_t n = x.size();
  if (y.size() != n) throw Error("", "loess", "x and y differ in length");
  if (!(span > 0 && span <= 1)) throw Error("", "loess", "span must be in (0, 1]");
  if (degree < 1 || degree > 2) throw Error("", "loess", "degree must be 1 or 2");
  std::vector<double> fitted(n, 0.0);
  if (n == 0) return fitted;
  const auto q = std::max<std::size_t>(static_cast<std::size_t>(std::floor(span * n)),
                                       static_cast<std::size_t>(degree) + 1);
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return x[a] < x[b]; });
  std::vector<double> xs(n), ys(n);
  for (std::size_t i = 0; i < n; ++i) xs[i] = x[order[i]], ys[i] = y[order[i]];
  const std::size_t window = std::min(q, n);

  tbb::parallel_for(std::size_t{0}, n, [&](std::size_t i) {
    // The q nearest points in 1-D are a contiguous run of the sorted x containing i.
    std::size_t lo = i >= window ? i - window + 1 : 0;
    lo = std::min(lo, n - window);
    auto width = [&](std::size_t l) { return std::max(xs[i] - xs[l], xs[l + window - 1] - xs[i]); };
    // width(l) is convex in l: walk right while it shrinks.
    while (lo + window < n && lo < i && width(lo + 1) <= width(lo)) ++lo;
    double dmax = width(lo);
    if (q > n) dmax *= static_cast<double>(q) / n;  // span > 1 would widen; kept for safety
    // Weighted least squares in powers of (x - x_i): normal equations up to 3 x 3.
    double s[5] = {0, 0, 0, 0, 0}, t[3] = {0, 0, 0};
    for (std::size_t j = lo; j < lo + window; ++j) {
      const double d = std::fabs(xs[j] - xs[i]);
      double w = 1.0;
      if (dmax > 0) {
        const double u = d / dmax;
        w = u >= 1.0 ? 0.0 : std::pow(1.0 - u * u * u, 3);
      }
      if (w == 0.0) continue;
      const double dx = xs[j] - xs[i];
      double p = w;
      for (int k = 0; k < 5; ++k, p *= dx) s[k] += p;
      t[0] += w * ys[j];
      t[1] += w * dx * ys[j];
      t[2] += w * dx * dx * ys[j];
    }
    double value;
    if (degree == 2) {
      // Solve [[s0 s1 s2][s1 s2 s3][s2 s3 s4]] b = t for b0 (the fit at x_i), Cramer's rule.
      const double det = s[0] * (s[2] * s[4] - s[3] * s[3]) - s[1] * (s[1] * s[4] - s[3] * s[2]) +
                         s[2] * (s[1] * s[3] - s[2] * s[2]);
      const double num = t[0] * (s[2] * s[4] - s[3] * s[3]) - s[1] * (t[1] * s[4] - s[3] * t[2]) +
                         s[2] * (t[1] * s[3] - s[2] * t[2]);
      value = std::fabs(det) > 1e-12 * std::max(1.0, std::fabs(s[0] * s[2] * s[4]))
                  ? num / det
                  : (s[0] > 0 ? t[0] / s[0] : ys[i]);
    } else {
      const double det = s[0] * s[2] - s[1] * s[1];
      value = std::fabs(det) > 1e-12 * std::max(1.0, std::fabs(s[0] * s[2]))
                  ? (t[0] * s[2] - s[1] * t[1]) / det
                  : (s[0] > 0 ? t[0] / s[0] : ys[i]);
    }
    fitted[order[i]] = value;
  });
  return fitted;
}

}  // namespace orrery::compute
