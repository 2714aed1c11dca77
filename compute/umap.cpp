#include "umap.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "io/error.hpp"
#include "rng.hpp"
#include "umap_step.hpp"

namespace orrery::compute {
namespace {

constexpr double kSmoothKTolerance = 1e-5;
constexpr double kMinKDistScale = 1e-3;

// umap-learn's smooth_knn_dist: per point rho (distance to the nearest non-identical neighbour)
// and sigma such that sum_j exp(-(d_j - rho) / sigma) = log2(k).
void smooth_knn_dist(const KnnResult& knn, double local_connectivity, std::vector<double>& sigma,
                     std::vector<double>& rho) {
  const std::int64_t n = knn.n;
  const int k = knn.k;
  const double target = std::log2(static_cast<double>(k));
  double mean_all = 0.0;
  for (float d : knn.distances) mean_all += d;
  mean_all /= static_cast<double>(knn.distances.size());
  sigma.assign(n, 0.0);
  rho.assign(n, 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    const float* d = knn.distances.data() + i * k;
    std::vector<double> nonzero;
    for (int j = 0; j < k; ++j)
      if (d[j] > 0.0f) nonzero.push_back(d[j]);
    if (static_cast<double>(nonzero.size()) >= local_connectivity) {
      const int index = static_cast<int>(std::floor(local_connectivity));
      const double interpolation = local_connectivity - index;
      if (index > 0) {
        rho[i] = nonzero[index - 1];
        if (interpolation > kSmoothKTolerance)
          rho[i] += interpolation * (nonzero[index] - nonzero[index - 1]);
      } else {
        rho[i] = interpolation * nonzero[0];
      }
    } else if (!nonzero.empty()) {
      rho[i] = *std::max_element(nonzero.begin(), nonzero.end());
    }
    double lo = 0.0, hi = std::numeric_limits<double>::infinity(), mid = 1.0;
    for (int it = 0; it < 64; ++it) {
      double psum = 0.0;
      for (int j = 1; j < k; ++j) {
        const double x = d[j] - rho[i];
        psum += x > 0 ? std::exp(-(x / mid)) : 1.0;
      }
      if (std::fabs(psum - target) < kSmoothKTolerance) break;
      if (psum > target) {
        hi = mid;
        mid = (lo + hi) / 2.0;
      } else {
        lo = mid;
        mid = std::isinf(hi) ? mid * 2 : (lo + hi) / 2.0;
      }
    }
    sigma[i] = mid;
    double mean_i = 0.0;
    for (int j = 0; j < k; ++j) mean_i += d[j];
    mean_i /= k;
    const double floor = kMinKDistScale * (rho[i] > 0.0 ? mean_i : mean_all);
    if (sigma[i] < floor) sigma[i] = floor;
  }
}

// CSR from per-row (column, value) lists that are already sorted by column; zeros dropped.
CsrMatrix csr_from_sorted_rows(std::int64_t n, const std::vector<std::int64_t>& ptr,
                               const std::vector<GeneIndex>& cols, const std::vector<float>& vals) {
  CsrMatrix m;
  m.n_rows = m.n_cols = n;
  m.indptr.assign(1, 0);
  m.indices.reserve(cols.size());
  m.data.reserve(vals.size());
  for (std::int64_t i = 0; i < n; ++i) {
    for (auto k = ptr[i]; k < ptr[i + 1]; ++k)
      if (vals[k] != 0.0f) {
        m.indices.push_back(cols[k]);
        m.data.push_back(vals[k]);
      }
    m.indptr.push_back(m.nnz());
  }
  return m;
}

}  // namespace

FuzzyGraph fuzzy_simplicial_set(const KnnResult& knn, double local_connectivity,
                                double set_op_mix_ratio) {
  const std::int64_t n = knn.n;
  const int k = knn.k;
  if (n > std::numeric_limits<GeneIndex>::max())
    throw Error("", "neighbors", "graphs above 2^31 cells are not supported yet");
  std::vector<double> sigma, rho;
  smooth_knn_dist(knn, local_connectivity, sigma, rho);

  // P: each point's memberships to its neighbours, rows sorted by column.
  std::vector<std::int64_t> ptr(n + 1, 0);
  std::vector<GeneIndex> cols;
  std::vector<float> weights, dists;
  cols.reserve(n * (k - 1));
  weights.reserve(n * (k - 1));
  dists.reserve(n * (k - 1));
  std::vector<std::tuple<std::int64_t, float, float>> row;
  for (std::int64_t i = 0; i < n; ++i) {
    row.clear();
    for (int c = 0; c < k; ++c) {
      const std::int64_t j = knn.indices[i * k + c];
      if (j < 0 || j == i) continue;
      const double d = knn.distances[i * k + c];
      const double w =
          (d - rho[i] <= 0.0 || sigma[i] == 0.0) ? 1.0 : std::exp(-((d - rho[i]) / sigma[i]));
      row.emplace_back(j, static_cast<float>(w), static_cast<float>(d));
    }
    std::sort(row.begin(), row.end());
    for (std::size_t t = 0; t < row.size(); ++t) {
      if (t > 0 && std::get<0>(row[t]) == std::get<0>(row[t - 1])) continue;  // duplicate neighbour
      cols.push_back(static_cast<GeneIndex>(std::get<0>(row[t])));
      weights.push_back(std::get<1>(row[t]));
      dists.push_back(std::get<2>(row[t]));
    }
    ptr[i + 1] = static_cast<std::int64_t>(cols.size());
  }
  // P^T by counting sort (rows come out sorted by column because i increases).
  std::vector<std::int64_t> tptr(n + 1, 0);
  for (auto c : cols) ++tptr[c + 1];
  for (std::int64_t i = 0; i < n; ++i) tptr[i + 1] += tptr[i];
  std::vector<GeneIndex> tcols(cols.size());
  std::vector<float> tw(cols.size());
  {
    std::vector<std::int64_t> fill(tptr.begin(), tptr.end() - 1);
    for (std::int64_t i = 0; i < n; ++i)
      for (auto q = ptr[i]; q < ptr[i + 1]; ++q) {
        const auto at = fill[cols[q]]++;
        tcols[at] = static_cast<GeneIndex>(i);
        tw[at] = weights[q];
      }
  }
  // Fuzzy union: P + P^T - P o P^T (set_op_mix_ratio = 1), intersection blended otherwise.
  std::vector<std::int64_t> sptr(n + 1, 0);
  std::vector<GeneIndex> scols;
  std::vector<float> svals;
  scols.reserve(cols.size() * 2);
  svals.reserve(cols.size() * 2);
  auto combine = [&](double a, double b) {
    const double prod = a * b;
    return static_cast<float>(set_op_mix_ratio * (a + b - prod) + (1.0 - set_op_mix_ratio) * prod);
  };
  for (std::int64_t i = 0; i < n; ++i) {
    auto x = ptr[i], xe = ptr[i + 1], y = tptr[i], ye = tptr[i + 1];
    while (x < xe || y < ye) {
      if (y >= ye || (x < xe && cols[x] < tcols[y])) {
        scols.push_back(cols[x]);
        svals.push_back(combine(weights[x], 0.0));
        ++x;
      } else if (x >= xe || tcols[y] < cols[x]) {
        scols.push_back(tcols[y]);
        svals.push_back(combine(0.0, tw[y]));
        ++y;
      } else {
        scols.push_back(cols[x]);
        svals.push_back(combine(weights[x], tw[y]));
        ++x;
        ++y;
      }
    }
    sptr[i + 1] = static_cast<std::int64_t>(scols.size());
  }
  FuzzyGraph g;
  g.connectivities = csr_from_sorted_rows(n, sptr, scols, svals);
  g.distances = csr_from_sorted_rows(n, ptr, cols, dists);
  return g;
}

std::pair<double, double> find_ab_params(double spread, double min_dist) {
  if (!(spread > 0) || !(min_dist >= 0) || min_dist > spread)
    throw Error("", "umap.min_dist", "need 0 <= min_dist <= spread and spread > 0");
  const int n = 300;
  std::vector<double> xs(n), ys(n);
  for (int i = 0; i < n; ++i) {
    xs[i] = spread * 3.0 * i / (n - 1);
    ys[i] = xs[i] < min_dist ? 1.0 : std::exp(-(xs[i] - min_dist) / spread);
  }
  auto residual = [&](double a, double b) {
    double s = 0;
    for (int i = 0; i < n; ++i) {
      const double f = 1.0 / (1.0 + a * std::pow(xs[i], 2 * b));
      s += (f - ys[i]) * (f - ys[i]);
    }
    return s;
  };
  // Levenberg-Marquardt from (1, 1), as scipy's curve_fit.
  double a = 1.0, b = 1.0, lambda = 1e-3, cost = residual(a, b);
  for (int it = 0; it < 500; ++it) {
    double jtj[2][2] = {{0, 0}, {0, 0}}, jtr[2] = {0, 0};
    for (int i = 0; i < n; ++i) {
      const double x = xs[i];
      const double x2b = x > 0 ? std::pow(x, 2 * b) : 0.0;
      const double den = 1.0 + a * x2b;
      const double f = 1.0 / den;
      const double da = -x2b / (den * den);
      const double db = x > 0 ? -a * x2b * 2.0 * std::log(x) / (den * den) : 0.0;
      const double r = f - ys[i];
      jtj[0][0] += da * da;
      jtj[0][1] += da * db;
      jtj[1][1] += db * db;
      jtr[0] += da * r;
      jtr[1] += db * r;
    }
    const double m00 = jtj[0][0] * (1 + lambda), m11 = jtj[1][1] * (1 + lambda), m01 = jtj[0][1];
    const double det = m00 * m11 - m01 * m01;
    if (det == 0) break;
    const double step_a = -(m11 * jtr[0] - m01 * jtr[1]) / det;
    const double step_b = -(m00 * jtr[1] - m01 * jtr[0]) / det;
    const double new_cost = residual(a + step_a, b + step_b);
    if (new_cost < cost) {
      a += step_a;
      b += step_b;
      const bool converged = cost - new_cost < 1e-15 * std::max(1.0, cost);
      cost = new_cost;
      lambda /= 10;
      if (converged) break;
    } else {
      lambda *= 10;
      if (lambda > 1e12) break;
    }
  }
  return {a, b};
}

DenseMatrix initial_layout_from_pca(const DenseMatrix& pca, std::uint64_t seed) {
  DenseMatrix init(pca.rows, 2);
  Rng rng(seed ^ 0x5eed5eedULL);
  for (std::int64_t i = 0; i < pca.rows; ++i)
    for (int d = 0; d < 2; ++d)
      init.at(i, d) =
          (d < pca.cols ? pca.at(i, d) : 0.0f) + static_cast<float>(1e-4 * (rng.uniform() - 0.5));
  for (int d = 0; d < 2; ++d) {
    float lo = std::numeric_limits<float>::max(), hi = std::numeric_limits<float>::lowest();
    for (std::int64_t i = 0; i < init.rows; ++i) {
      lo = std::min(lo, init.at(i, d));
      hi = std::max(hi, init.at(i, d));
    }
    const float range = hi > lo ? hi - lo : 1.0f;
    for (std::int64_t i = 0; i < init.rows; ++i)
      init.at(i, d) = 10.0f * (init.at(i, d) - lo) / range;
  }
  return init;
}

UmapSchedule umap_schedule(const CsrMatrix& graph, int n_epochs, int negative_sample_rate) {
  const std::int64_t n = graph.n_rows;
  float max_w = 0.0f;
  for (float w : graph.data) max_w = std::max(max_w, w);
  UmapSchedule s;
  s.first.assign(n + 1, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    for (auto kk = graph.indptr[i]; kk < graph.indptr[i + 1]; ++kk) {
      const float w = graph.data[kk];
      if (w < max_w / static_cast<float>(n_epochs)) continue;
      s.tail.push_back(graph.indices[kk]);
      s.eps.push_back(static_cast<double>(max_w) / w);  // n_epochs / (n_epochs * w / max_w)
    }
    s.first[i + 1] = static_cast<std::int64_t>(s.tail.size());
  }
  const std::size_t m = s.tail.size();
  s.next_sample = s.eps;
  s.eps_neg.resize(m);
  for (std::size_t e = 0; e < m; ++e) s.eps_neg[e] = s.eps[e] / negative_sample_rate;
  s.next_neg = s.eps_neg;
  return s;
}

UmapEpoch umap_epoch_args(const UmapArrays& arrays, const float* prev, float* y, std::int64_t n,
                          std::pair<double, double> ab, const UmapOptions& o, int epoch,
                          int n_epochs) {
  return UmapEpoch{.first = arrays.first,
                   .tail = arrays.tail,
                   .eps = arrays.eps,
                   .eps_neg = arrays.eps_neg,
                   .next_sample = arrays.next_sample,
                   .next_neg = arrays.next_neg,
                   .prev = prev,
                   .y = y,
                   .n = n,
                   .a = ab.first,
                   .b = ab.second,
                   .alpha = o.learning_rate * (1.0 - static_cast<double>(epoch) / n_epochs),
                   .repulsion = o.repulsion_strength,
                   .epoch = epoch,
                   .seed = o.seed};
}

int umap_epochs(const UmapOptions& o, std::int64_t n) {
  return o.n_epochs > 0 ? o.n_epochs : (n <= 10000 ? 500 : 200);
}

// umap-learn's optimize_layout_euclidean (epochs_per_sample schedule, negative sampling rate,
// clipped gradients, linearly decaying learning rate), made deterministic and parallel: within
// an epoch every vertex moves only itself and reads the others' positions as they were at the
// start of the epoch. The graph is symmetric, so the move umap-learn gives the other end of an
// edge (move_other) arrives through the reverse edge: each sampled edge counts twice for its head.
DenseMatrix umap_layout(const CsrMatrix& graph, DenseMatrix emb, const UmapOptions& o,
                        Progress& progress, const EpochCallback& on_epoch) {
  const std::int64_t n = graph.n_rows;
  if (emb.rows != n || emb.cols != 2) throw Error("", "umap", "initial layout must be n x 2");
  const int n_epochs = umap_epochs(o, n);
  const auto [a, b] = find_ab_params(o.spread, o.min_dist);
  UmapSchedule s = umap_schedule(graph, n_epochs, o.negative_sample_rate);
  std::vector<float> start(emb.values.size());
  for (int epoch = 0; epoch < n_epochs; ++epoch) {
    if (epoch % 10 == 0) {
      progress.check();
      progress.report("umap", static_cast<double>(epoch) / n_epochs);
      if (on_epoch) on_epoch(epoch, n_epochs, emb);
    }
    std::copy(emb.values.begin(), emb.values.end(), start.begin());
    const UmapEpoch u =
        umap_epoch_args({s.first.data(), s.tail.data(), s.eps.data(), s.eps_neg.data(),
                         s.next_sample.data(), s.next_neg.data()},
                        start.data(), emb.values.data(), n, {a, b}, o, epoch, n_epochs);
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n, 1024),
                      [&](const tbb::blocked_range<std::int64_t>& r) {
                        for (std::int64_t i = r.begin(); i < r.end(); ++i) umap_move_vertex(u, i);
                      });
  }
  progress.report("umap", 1.0);
  if (on_epoch) on_epoch(n_epochs, n_epochs, emb);
  return emb;
}

}  // namespace orrery::compute
