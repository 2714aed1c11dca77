#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <unordered_set>

#include "io/error.hpp"
#include "knn.hpp"
#include "rng.hpp"

namespace orrery::compute {
namespace {

// Fixed-size neighbour list kept sorted by distance, with a "new" flag per entry.
struct Heaps {
  int k = 0;
  std::vector<std::int32_t> index;
  std::vector<float> dist;
  std::vector<std::uint8_t> fresh;

  Heaps(std::int64_t n, int k_)
      : k(k_), index(n * k_, -1), dist(n * k_, INFINITY), fresh(n * k_, 0) {}

  // Inserts j into i's list if closer than the worst and not present; returns whether it did.
  bool push(std::int64_t i, std::int32_t j, float d) {
    float* D = dist.data() + i * k;
    std::int32_t* I = index.data() + i * k;
    std::uint8_t* F = fresh.data() + i * k;
    if (!(d < D[k - 1])) return false;
    for (int c = 0; c < k; ++c)
      if (I[c] == j) return false;
    int pos = k - 1;
    while (pos > 0 && D[pos - 1] > d) {
      D[pos] = D[pos - 1];
      I[pos] = I[pos - 1];
      F[pos] = F[pos - 1];
      --pos;
    }
    D[pos] = d;
    I[pos] = j;
    F[pos] = 1;
    return true;
  }
};

float sq_dist(const float* a, const float* b, int d) {
  float s = 0;
  for (int i = 0; i < d; ++i) {
    const float t = a[i] - b[i];
    s += t * t;
  }
  return s;
}

struct Update {
  std::int32_t a, b;
  float d;
};

// Calls visit(lo, hi) for ranges [lo, hi) that cut [0, n), one range per thread. A visitor that
// walks its sources in the serial order and acts only on targets in [lo, hi) does to each target
// what a serial walk does, in the same order: the answer does not depend on the number of ranges.
template <typename F>
void for_each_target_range(std::int64_t n, F&& visit) {
  const std::int64_t parts =
      std::clamp<std::int64_t>(tbb::this_task_arena::max_concurrency(), 1, 16);
  tbb::parallel_for(std::int64_t{0}, parts,
                    [&](std::int64_t p) { visit(n * p / parts, n * (p + 1) / parts); });
}

}  // namespace

KnnResult nn_descent_knn(const DenseMatrix& points, const KnnOptions& o, Progress& progress) {
  const std::int64_t n = points.rows;
  const int dims = o.n_pcs > 0 ? std::min<int>(o.n_pcs, static_cast<int>(points.cols))
                               : static_cast<int>(points.cols);
  if (n > INT32_MAX) throw Error("", "neighbors", "more than 2^31 cells");
  const int k_out = static_cast<int>(std::min<std::int64_t>(o.n_neighbors, n));
  const int k = k_out - 1;  // neighbours other than self
  KnnResult r;
  r.n = n;
  r.k = k_out;
  r.indices.resize(n * k_out);
  r.distances.resize(n * k_out);
  if (k <= 0) {
    for (std::int64_t i = 0; i < n; ++i) r.indices[i * k_out] = i;
    return r;
  }

  std::vector<float> x(n * dims);
  for (std::int64_t i = 0; i < n; ++i) {
    double norm = 0;
    for (int d = 0; d < dims; ++d) norm += static_cast<double>(points.at(i, d)) * points.at(i, d);
    const float scale =
        (o.metric == "cosine" && norm > 0) ? static_cast<float>(1 / std::sqrt(norm)) : 1.0f;
    for (int d = 0; d < dims; ++d) x[i * dims + d] = points.at(i, d) * scale;
  }
  auto point = [&](std::int64_t i) { return x.data() + i * dims; };

  Heaps heaps(n, k);
  tbb::parallel_for(std::int64_t{0}, n, [&](std::int64_t i) {
    Rng rng(o.seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(i));
    int tries = 0;
    while (heaps.index[i * k + k - 1] < 0 && tries++ < 20 * k) {
      const auto j = static_cast<std::int32_t>(rng.next() % static_cast<std::uint64_t>(n));
      if (j != i) heaps.push(i, j, sq_dist(point(i), point(j), dims));
    }
  });

  // Candidate lists: up to 2k new and 2k old neighbours (forward and reverse) per point.
  const int cap = 2 * k;
  std::vector<std::int32_t> new_list(n * cap), old_list(n * cap);
  std::vector<int> new_count(n), old_count(n);
  const std::int64_t batch = 1 << 15;
  std::vector<std::vector<Update>> updates(batch);
  for (int iter = 0; iter < o.max_iterations; ++iter) {
    progress.check();
    std::fill(new_count.begin(), new_count.end(), 0);
    std::fill(old_count.begin(), old_count.end(), 0);
    auto add = [&](std::vector<std::int32_t>& list, std::vector<int>& count, std::int64_t i,
                   std::int32_t j) {
      int& c = count[i];
      std::int32_t* l = list.data() + i * cap;
      for (int t = 0; t < c; ++t)
        if (l[t] == j) return;
      if (c < cap) l[c++] = j;
    };
    // Forward lists first (each point's own neighbours), then reverse ones while room remains.
    tbb::parallel_for(std::int64_t{0}, n, [&](std::int64_t i) {
      for (int c = 0; c < k; ++c) {
        const auto j = heaps.index[i * k + c];
        if (j < 0) continue;
        if (heaps.fresh[i * k + c]) {
          add(new_list, new_count, i, j);
          heaps.fresh[i * k + c] = 0;
        } else {
          add(old_list, old_count, i, j);
        }
      }
    });
    // Reverse entries go to j's list in the order of i, as in a serial walk. Each thread owns
    // the lists of a range of j; the forward entries it reads (below forward_*[i]) stay put.
    std::vector<int> forward_new(new_count), forward_old(old_count);
    for_each_target_range(n, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = 0; i < n; ++i) {
        for (int t = 0; t < forward_new[i]; ++t)
          if (const auto j = new_list[i * cap + t]; j >= lo && j < hi)
            add(new_list, new_count, j, static_cast<std::int32_t>(i));
        for (int t = 0; t < forward_old[i]; ++t)
          if (const auto j = old_list[i * cap + t]; j >= lo && j < hi)
            add(old_list, old_count, j, static_cast<std::int32_t>(i));
      }
    });

    std::atomic<std::int64_t> changes{0};
    for (std::int64_t b0 = 0; b0 < n; b0 += batch) {
      progress.check();
      const std::int64_t b1 = std::min(n, b0 + batch);
      tbb::parallel_for(b0, b1, [&](std::int64_t u) {
        auto& out = updates[u - b0];
        out.clear();
        const std::int32_t* nw = new_list.data() + u * cap;
        const std::int32_t* od = old_list.data() + u * cap;
        const int nn = new_count[u], no = old_count[u];
        // A pair neither of whose lists would take it now never will: the lists' worst
        // distances only fall while the updates are pushed (no heap changes during this loop).
        auto offer = [&](std::int32_t a, std::int32_t b) {
          const float d = sq_dist(point(a), point(b), dims);
          if (d < heaps.dist[a * k + k - 1] || d < heaps.dist[b * k + k - 1])
            out.push_back({a, b, d});
        };
        for (int a = 0; a < nn; ++a) {
          for (int c = a + 1; c < nn; ++c) offer(nw[a], nw[c]);
          for (int c = 0; c < no; ++c)
            if (nw[a] != od[c]) offer(nw[a], od[c]);
        }
      });
      // Each thread pushes into the heaps of its range of points, in the serial order.
      for_each_target_range(n, [&](std::int64_t lo, std::int64_t hi) {
        std::int64_t mine = 0;
        for (std::int64_t u = b0; u < b1; ++u)
          for (const auto& up : updates[u - b0]) {
            if (up.a >= lo && up.a < hi) mine += heaps.push(up.a, up.b, up.d);
            if (up.b >= lo && up.b < hi) mine += heaps.push(up.b, up.a, up.d);
          }
        changes += mine;
      });
    }
    progress.report("neighbors", static_cast<double>(iter + 1) / o.max_iterations);
    if (static_cast<double>(changes.load()) < o.delta * static_cast<double>(n) * k) break;
  }

  tbb::parallel_for(std::int64_t{0}, n, [&](std::int64_t i) {
    r.indices[i * k_out] = i;
    r.distances[i * k_out] = 0.0f;
    for (int c = 0; c < k; ++c) {
      const float d2 = heaps.dist[i * k + c];
      r.indices[i * k_out + 1 + c] = heaps.index[i * k + c];
      r.distances[i * k_out + 1 + c] = o.metric == "cosine" ? d2 / 2.0f : std::sqrt(d2);
    }
  });
  return r;
}

double knn_recall(const KnnResult& approx, const KnnResult& exact) {
  if (approx.n != exact.n || approx.k != exact.k) throw Error("", "knn_recall", "shapes differ");
  std::int64_t hit = 0, total = 0;
  for (std::int64_t i = 0; i < approx.n; ++i) {
    std::unordered_set<std::int64_t> truth(exact.indices.begin() + i * exact.k + 1,
                                           exact.indices.begin() + (i + 1) * exact.k);
    for (int c = 1; c < approx.k; ++c) hit += truth.count(approx.indices[i * approx.k + c]);
    total += approx.k - 1;
  }
  return total ? static_cast<double>(hit) / total : 1.0;
}

KnnResult knn(const DenseMatrix& points, const KnnOptions& o, Progress& progress) {
  if (o.method == "exact" || (o.method == "auto" && points.rows <= o.exact_max_cells))
    return exact_knn(points, o, progress);
  if (o.method == "ivf") progress.warn("neighbors: ivf runs on the CUDA backend; NN-descent here");
  if (o.method == "nndescent" || o.method == "auto" || o.method == "ivf")
    return nn_descent_knn(points, o, progress);
  throw Error("", "neighbors.method",
              "unknown method '" + o.method + "' (auto, exact, nndescent, ivf)");
}

}  // namespace orrery::compute
