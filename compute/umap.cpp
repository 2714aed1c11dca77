#include "umap.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <tuple>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "fuzzy_math.hpp"
#include "io/error.hpp"
#include "rng.hpp"
#include "umap_step.hpp"

namespace orrery::compute {
namespace {

// A CSR matrix built in parallel: `count(i)` entries in row i, written by `fill(i, cols, vals)`.
template <typename Count, typename Fill>
CsrMatrix parallel_csr(std::int64_t n, std::int64_t n_cols, Count&& count, Fill&& fill) {
  CsrMatrix m;
  m.n_rows = n;
  m.n_cols = n_cols;
  m.indptr.assign(n + 1, 0);
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n), [&](const auto& r) {
    for (auto i = r.begin(); i < r.end(); ++i) m.indptr[i + 1] = count(i);
  });
  for (std::int64_t i = 0; i < n; ++i) m.indptr[i + 1] += m.indptr[i];
  m.indices.resize(m.indptr[n]);
  m.data.resize(m.indptr[n]);
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n), [&](const auto& r) {
    for (auto i = r.begin(); i < r.end(); ++i)
      fill(i, m.indices.data() + m.indptr[i], m.data.data() + m.indptr[i]);
  });
  return m;
}

}  // namespace

double mean_knn_distance(const KnnResult& knn) {
  double mean_all = 0.0;
  for (float d : knn.distances) mean_all += d;
  return knn.distances.empty() ? 0.0 : mean_all / static_cast<double>(knn.distances.size());
}

std::vector<float> fuzzy_memberships(const KnnResult& knn, double local_connectivity) {
  const std::int64_t n = knn.n;
  const int k = knn.k;
  const double mean_all = mean_knn_distance(knn);
  std::vector<float> w(knn.indices.size(), 0.0f);
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n), [&](const auto& r) {
    for (auto i = r.begin(); i < r.end(); ++i) {
      const float* d = knn.distances.data() + i * k;
      const SmoothKnn s = smooth_knn_row(d, k, local_connectivity, mean_all);
      for (int c = 0; c < k; ++c) {
        const std::int64_t j = knn.indices[i * k + c];
        if (j >= 0 && j != i) w[i * k + c] = fuzzy_membership(d[c], s);
      }
    }
  });
  return w;
}

FuzzyGraph fuzzy_union(const KnnResult& knn, const std::vector<float>& memberships,
                       double set_op_mix_ratio) {
  const std::int64_t n = knn.n;
  const int k = knn.k;
  if (n > std::numeric_limits<GeneIndex>::max())
    throw Error("", "neighbors", "graphs above 2^31 cells are not supported yet");
  if (memberships.size() != knn.indices.size())
    throw Error("", "neighbors", "memberships and kNN lists differ in size");

  // P: each point's memberships to its neighbours, rows sorted by (column, weight, distance)
  // and a repeated neighbour kept once; k slots per row.
  std::vector<int> count(n, 0);
  std::vector<GeneIndex> cols(n * k);
  std::vector<float> weights(n * k), dists(n * k);
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n), [&](const auto& r) {
    std::vector<std::tuple<std::int64_t, float, float>> row;
    for (auto i = r.begin(); i < r.end(); ++i) {
      row.clear();
      for (int c = 0; c < k; ++c) {
        const std::int64_t j = knn.indices[i * k + c];
        if (j < 0 || j == i) continue;
        row.emplace_back(j, memberships[i * k + c], knn.distances[i * k + c]);
      }
      std::sort(row.begin(), row.end());
      int kept = 0;
      for (std::size_t t = 0; t < row.size(); ++t) {
        if (t > 0 && std::get<0>(row[t]) == std::get<0>(row[t - 1])) continue;
        cols[i * k + kept] = static_cast<GeneIndex>(std::get<0>(row[t]));
        weights[i * k + kept] = std::get<1>(row[t]);
        dists[i * k + kept] = std::get<2>(row[t]);
        ++kept;
      }
      count[i] = kept;
    }
  });
  // P^T: slots by atomic counters, then each row sorted by column (one entry per source row).
  std::vector<std::int64_t> tptr(n + 1, 0);
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n), [&](const auto& r) {
    for (auto i = r.begin(); i < r.end(); ++i)
      for (int t = 0; t < count[i]; ++t)
        std::atomic_ref<std::int64_t>(tptr[cols[i * k + t] + 1])
            .fetch_add(1, std::memory_order_relaxed);
  });
  for (std::int64_t i = 0; i < n; ++i) tptr[i + 1] += tptr[i];
  std::vector<std::pair<GeneIndex, float>> transposed(tptr[n]);
  {
    std::vector<std::int64_t> fill(tptr.begin(), tptr.end() - 1);
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n), [&](const auto& r) {
      for (auto i = r.begin(); i < r.end(); ++i)
        for (int t = 0; t < count[i]; ++t) {
          const auto at = std::atomic_ref<std::int64_t>(fill[cols[i * k + t]])
                              .fetch_add(1, std::memory_order_relaxed);
          transposed[at] = {static_cast<GeneIndex>(i), weights[i * k + t]};
        }
    });
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n), [&](const auto& r) {
      for (auto i = r.begin(); i < r.end(); ++i)
        std::sort(transposed.begin() + tptr[i], transposed.begin() + tptr[i + 1]);
    });
  }
  // Fuzzy union: P + P^T - P o P^T (set_op_mix_ratio = 1), intersection blended otherwise;
  // entries that come out 0 are dropped.
  auto combine = [&](double a, double b) { return fuzzy_combine(a, b, set_op_mix_ratio); };
  auto merge_row = [&](std::int64_t i, auto&& emit) {
    const GeneIndex* c = cols.data() + i * k;
    const float* w = weights.data() + i * k;
    int x = 0;
    const int xe = count[i];
    auto y = tptr[i];
    const auto ye = tptr[i + 1];
    while (x < xe || y < ye) {
      if (y >= ye || (x < xe && c[x] < transposed[y].first)) {
        emit(c[x], combine(w[x], 0.0));
        ++x;
      } else if (x >= xe || transposed[y].first < c[x]) {
        emit(transposed[y].first, combine(0.0, transposed[y].second));
        ++y;
      } else {
        emit(c[x], combine(w[x], transposed[y].second));
        ++x;
        ++y;
      }
    }
  };
  FuzzyGraph g;
  g.connectivities = parallel_csr(
      n, n,
      [&](std::int64_t i) {
        std::int64_t m = 0;
        merge_row(i, [&](GeneIndex, float v) { m += v != 0.0f; });
        return m;
      },
      [&](std::int64_t i, GeneIndex* out_c, float* out_v) {
        merge_row(i, [&](GeneIndex col, float v) {
          if (v == 0.0f) return;
          *out_c++ = col;
          *out_v++ = v;
        });
      });
  g.distances = parallel_csr(
      n, n,
      [&](std::int64_t i) {
        return std::count_if(dists.begin() + i * k, dists.begin() + i * k + count[i],
                             [](float d) { return d != 0.0f; });
      },
      [&](std::int64_t i, GeneIndex* out_c, float* out_v) {
        for (int t = 0; t < count[i]; ++t)
          if (dists[i * k + t] != 0.0f) {
            *out_c++ = cols[i * k + t];
            *out_v++ = dists[i * k + t];
          }
      });
  return g;
}

FuzzyGraph fuzzy_simplicial_set(const KnnResult& knn, double local_connectivity,
                                double set_op_mix_ratio) {
  return fuzzy_union(knn, fuzzy_memberships(knn, local_connectivity), set_op_mix_ratio);
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
  const float floor_w = max_w / static_cast<float>(n_epochs);
  // Rows in parallel (an atlas graph has hundreds of millions of edges): each row's kept edges
  // counted, the offsets summed, then every array filled in place (the serial order's arrays).
  UmapSchedule s;
  s.first.assign(n + 1, 0);
  const tbb::blocked_range<std::int64_t> rows(0, n, 4096);
  tbb::parallel_for(rows, [&](const tbb::blocked_range<std::int64_t>& r) {
    for (auto i = r.begin(); i < r.end(); ++i) {
      std::int64_t kept = 0;
      for (auto kk = graph.indptr[i]; kk < graph.indptr[i + 1]; ++kk)
        kept += !(graph.data[kk] < floor_w);
      s.first[i + 1] = kept;
    }
  });
  for (std::int64_t i = 0; i < n; ++i) s.first[i + 1] += s.first[i];
  const auto m = static_cast<std::size_t>(s.first[n]);
  s.tail.resize(m);
  s.eps.resize(m);
  s.eps_neg.resize(m);
  tbb::parallel_for(rows, [&](const tbb::blocked_range<std::int64_t>& r) {
    for (auto i = r.begin(); i < r.end(); ++i) {
      auto e = static_cast<std::size_t>(s.first[i]);
      for (auto kk = graph.indptr[i]; kk < graph.indptr[i + 1]; ++kk) {
        const float w = graph.data[kk];
        if (w < floor_w) continue;
        s.tail[e] = graph.indices[kk];
        s.eps[e] = static_cast<double>(max_w) / w;  // n_epochs / (n_epochs * w / max_w)
        s.eps_neg[e] = s.eps[e] / negative_sample_rate;
        ++e;
      }
    }
  });
  s.next_sample = s.eps;
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

namespace {

// The host's epoch: vertices moved several at a time, interleaved sample by sample. A vertex's
// samples form one serial chain (each moves the point the next starts from, through a pow), so
// moving one vertex at a time leaves the core waiting on that chain; other vertices' chains are
// independent and fill the wait. Per vertex: umap_move_vertex's draws and arithmetic, in its
// order (the same bits; umapInterleavedSameBits).
constexpr int kUmapLanes = 4;
// An edge's first negative samples are drawn before its attraction and their positions
// prefetched: at millions of points each is a cache miss.
constexpr int kUmapAhead = 16;

struct UmapLane {
  std::int64_t i = 0;
  std::vector<std::int64_t> due;    // the vertex's edges due this epoch, found without branches
  std::size_t next = 0, n_due = 0;  // due[next] is the current edge
  std::int64_t e = 0;
  float* cur = nullptr;
  UmapSplitMix rng{0, 0, 0};
  int p = -1;  // edge e's next negative sample; -1 before its attraction
  int n_neg = 0;
  std::int64_t ahead[kUmapAhead] = {};
};

void start_vertex(const UmapEpoch& u, UmapLane& l, std::int64_t i) {
  l.i = i;
  const std::int64_t e0 = u.first[i], e1 = u.first[i + 1];
  if (l.due.size() < static_cast<std::size_t>(e1 - e0)) l.due.resize(e1 - e0);
  std::size_t n = 0;
  for (auto e = e0; e < e1; ++e) {
    l.due[n] = e;
    n += !(u.next_sample[e] > u.epoch);  // umap_move_vertex's test, NaN (a NaN weight) due
  }
  l.n_due = n;
  l.next = 0;
  l.cur = u.y + 2 * i;
  l.rng = UmapSplitMix(u.seed, static_cast<std::uint64_t>(u.epoch), static_cast<std::uint64_t>(i));
  l.p = -1;
}

// One step of a lane's vertex: the next due edge's attraction, or one of its negative samples.
// False when the vertex has no due edge left.
bool step_vertex(const UmapEpoch& u, UmapLane& l) {
  if (l.p < 0) {
    if (l.next == l.n_due) return false;
    l.e = l.due[l.next];
    l.n_neg = umap_negatives_due(u, l.e);
    const int drawn = std::min(l.n_neg, kUmapAhead);
    for (int q = 0; q < drawn; ++q) {
      l.ahead[q] = umap_draw(l.rng, u);
      __builtin_prefetch(u.prev + 2 * l.ahead[q]);
    }
    if (l.next + 1 < l.n_due) __builtin_prefetch(u.prev + 2 * u.tail[l.due[l.next + 1]]);
    umap_attract(u, l.cur, u.prev + 2 * u.tail[l.e]);
    u.next_sample[l.e] += u.eps[l.e];
    l.p = 0;
  } else {
    const auto k = l.p < kUmapAhead ? l.ahead[l.p] : umap_draw(l.rng, u);
    if (k != l.i) umap_repel(u, l.cur, u.prev + 2 * k);
    ++l.p;
  }
  if (l.p == l.n_neg) {
    u.next_neg[l.e] += l.n_neg * u.eps_neg[l.e];
    ++l.next;
    l.p = -1;
  }
  return true;
}

}  // namespace

void umap_move_vertices(const UmapEpoch& u, std::int64_t begin, std::int64_t end) {
  UmapLane lanes[kUmapLanes];
  bool live[kUmapLanes];
  int n_live = 0;
  for (int k = 0; k < kUmapLanes; ++k) {
    live[k] = begin < end;
    if (live[k]) start_vertex(u, lanes[k], begin++), ++n_live;
  }
  while (n_live > 0) {
    for (int k = 0; k < kUmapLanes; ++k) {
      if (!live[k]) continue;
      while (!step_vertex(u, lanes[k])) {  // the vertex is done: the lane takes the next
        if (begin == end) {
          live[k] = false;
          --n_live;
          break;
        }
        start_vertex(u, lanes[k], begin++);
      }
    }
  }
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
                        umap_move_vertices(u, r.begin(), r.end());
                      });
  }
  progress.report("umap", 1.0);
  if (on_epoch) on_epoch(n_epochs, n_epochs, emb);
  return emb;
}

}  // namespace orrery::compute
