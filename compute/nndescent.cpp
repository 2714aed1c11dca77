#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <unordered_set>
#include <utility>

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

// Eight running sums, so that the compiler vectorises the loop (a single float sum has to be
// added in order); the same sum whatever the thread.
float sq_dist(const float* a, const float* b, int d) {
  float lane[8] = {};
  int i = 0;
  for (; i + 8 <= d; i += 8)
    for (int l = 0; l < 8; ++l) {
      const float t = a[i + l] - b[i + l];
      lane[l] += t * t;
    }
  float s =
      ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
  for (; i < d; ++i) {
    const float t = a[i] - b[i];
    s += t * t;
  }
  return s;
}

// A pair of points and their distance: a candidate for a's list and b's (as a push: for a's).
struct Update {
  std::int32_t a, b;
  float d;
};

// Items that sources [0, m) hand over for targets in [0, n), regrouped so that one thread takes
// all the items of a range of targets, in the order a serial loop over the sources would have
// handed them over: what the items do to a target then does not depend on the threads.
// emit(u, put) calls put(target, item) for each item of source u, the same items in the same
// order each time (it is called twice: to count, then to fill). apply(begin, end) gets each
// range's items on one thread, once per `window` sources (which bounds the items held).
template <typename Item, typename Emit, typename Apply>
void regroup_by_target(std::int64_t n, std::int64_t m, std::int64_t window, Emit&& emit,
                       Apply&& apply) {
  const std::int64_t parts =
      std::clamp<std::int64_t>(tbb::this_task_arena::max_concurrency(), 1, 64);
  const auto part_of = [&](std::int64_t target) { return target * parts / n; };
  constexpr std::int64_t kBlock = 256;  // sources counted and filled together, in order
  std::vector<std::int64_t> at;
  std::vector<std::vector<Item>> items(static_cast<std::size_t>(parts));
  for (std::int64_t s0 = 0; s0 < m; s0 += window) {
    const std::int64_t s1 = std::min(m, s0 + window), blocks = (s1 - s0 + kBlock - 1) / kBlock;
    auto block_sources = [&](std::int64_t b, auto&& each) {
      for (std::int64_t u = s0 + b * kBlock; u < std::min(s1, s0 + (b + 1) * kBlock); ++u) each(u);
    };
    at.assign(static_cast<std::size_t>(blocks * parts), 0);  // [block * parts + part]
    tbb::parallel_for(std::int64_t{0}, blocks, [&](std::int64_t b) {
      std::int64_t* count = at.data() + b * parts;
      block_sources(b, [&](std::int64_t u) {
        emit(u, [&](std::int64_t target, const Item&) { ++count[part_of(target)]; });
      });
    });
    for (std::int64_t p = 0; p < parts; ++p) {  // counts to each block's first position
      std::int64_t total = 0;
      for (std::int64_t b = 0; b < blocks; ++b) total += std::exchange(at[b * parts + p], total);
      items[p].resize(static_cast<std::size_t>(total));
    }
    tbb::parallel_for(std::int64_t{0}, blocks, [&](std::int64_t b) {
      std::int64_t* next = at.data() + b * parts;
      block_sources(b, [&](std::int64_t u) {
        emit(u, [&](std::int64_t target, const Item& item) {
          const auto p = part_of(target);
          items[p][next[p]++] = item;
        });
      });
    });
    tbb::parallel_for(std::int64_t{0}, parts, [&](std::int64_t p) {
      apply(items[p].data(), items[p].data() + items[p].size());
    });
  }
}

// A random projection tree (pynndescent's initialisation): a node is cut by the hyperplane
// halfway between two of its points drawn at random, until it has at most `leaf` points.
// Returns the points in leaf order, and in `leaf_start` each leaf's first position (then n).
// Every cut depends only on its node's points and seed: the tree is the same on any thread.
std::vector<std::int32_t> rp_tree(const float* x, std::int64_t n, int dims, std::int64_t leaf,
                                  std::uint64_t seed, std::vector<std::int64_t>& leaf_start) {
  std::vector<std::int32_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[i] = static_cast<std::int32_t>(i);
  std::vector<std::int32_t> scratch(order.size());
  std::vector<float> normal(dims);
  leaf_start.clear();
  struct Node {
    std::int64_t begin, end;
    std::uint64_t seed;
  };
  std::vector<Node> stack{{0, n, seed}};
  while (!stack.empty()) {
    const Node node = stack.back();
    stack.pop_back();
    const std::int64_t size = node.end - node.begin;
    if (size <= leaf) {
      leaf_start.push_back(node.begin);
      continue;
    }
    Rng rng(node.seed);
    const auto a = static_cast<std::int64_t>(rng.next() % static_cast<std::uint64_t>(size));
    auto b = static_cast<std::int64_t>(rng.next() % static_cast<std::uint64_t>(size - 1));
    b += b >= a;
    const float* pa = x + static_cast<std::int64_t>(order[node.begin + a]) * dims;
    const float* pb = x + static_cast<std::int64_t>(order[node.begin + b]) * dims;
    double offset = 0;
    for (int d = 0; d < dims; ++d) {
      normal[d] = pa[d] - pb[d];
      offset += 0.5 * normal[d] * (static_cast<double>(pa[d]) + pb[d]);
    }
    // Below the plane first, then above, each in its earlier order; on the plane: alternately.
    std::int64_t lo = node.begin, hi = node.end;
    bool tie_low = false;
    for (std::int64_t q = node.begin; q < node.end; ++q) {
      const float* p = x + static_cast<std::int64_t>(order[q]) * dims;
      double m = -offset;
      for (int d = 0; d < dims; ++d) m += static_cast<double>(normal[d]) * p[d];
      if (m == 0) tie_low = !tie_low;
      if (m < 0 || (m == 0 && tie_low))
        scratch[lo++] = order[q];
      else
        scratch[--hi] = order[q];
    }
    std::copy(scratch.begin() + node.begin, scratch.begin() + lo, order.begin() + node.begin);
    std::reverse_copy(scratch.begin() + lo, scratch.begin() + node.end, order.begin() + lo);
    std::int64_t cut = lo;
    if (cut == node.begin || cut == node.end) cut = node.begin + size / 2;  // no cut: halves
    // The upper half is pushed first, so leaves come out in order.
    const std::uint64_t low_seed = rng.next(), high_seed = rng.next();
    stack.push_back({cut, node.end, high_seed});
    stack.push_back({node.begin, cut, low_seed});
  }
  leaf_start.push_back(n);
  return order;
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
  const std::int64_t batch = 1 << 15;
  std::vector<std::vector<Update>> updates(batch);
  // Pushes updates[0, count) into the heaps, each point's in the serial order (updates[0]'s
  // first, each update to a then to b), a range of points per thread; returns how many the
  // heaps took.
  auto push_updates = [&](std::int64_t count) {
    std::atomic<std::int64_t> taken{0};
    regroup_by_target<Update>(
        n, count, 4096,
        [&](std::int64_t u, auto&& put) {
          for (const auto& up : updates[u]) {
            put(up.a, up);
            put(up.b, Update{up.b, up.a, up.d});
          }
        },
        [&](const Update* p, const Update* end) {
          std::int64_t mine = 0;
          for (; p != end; ++p) mine += heaps.push(p->a, p->b, p->d);
          taken += mine;
        });
    return taken.load();
  };
  // A pair neither of whose lists would take it now never will: the lists' worst distances
  // only fall while updates are pushed, and no list changes while they are made.
  auto offer = [&](std::vector<Update>& out, std::int32_t a, std::int32_t b) {
    const float d = sq_dist(point(a), point(b), dims);
    const float* dist = heaps.dist.data() + k - 1;  // worst distances, at i * k + k - 1
    if (d < dist[std::int64_t{a} * k] || d < dist[std::int64_t{b} * k]) out.push_back({a, b, d});
  };
  // Random projection trees: the points of a leaf are each other's first candidates. Six trees
  // of leaves up to 24 points (orrery_bench_leiden's 1.3M blobs in 20 dimensions, 2 cores: the
  // descent converges in 8 iterations, 45.7 s, where from random lists it stopped unconverged
  // at 12, 65.5 s, the fuzzy graph aside; test_stages' 200k cells: half the time at the same
  // recall).
  constexpr int kTrees = 6;
  const std::int64_t leaf = std::max(24, k + 1);
  std::vector<std::vector<std::int32_t>> tree_order(kTrees);
  std::vector<std::vector<std::int64_t>> tree_leaves(kTrees);
  std::uint64_t tree_seed[kTrees];
  Rng seeds(o.seed ^ 0x7265e5eedULL);
  for (auto& seed : tree_seed) seed = seeds.next();
  tbb::parallel_for(0, kTrees, [&](int t) {
    tree_order[t] = rp_tree(x.data(), n, dims, leaf, tree_seed[t], tree_leaves[t]);
  });
  for (int t = 0; t < kTrees; ++t) {
    progress.check();
    const auto& order = tree_order[t];
    const auto& starts = tree_leaves[t];
    const auto n_leaves = static_cast<std::int64_t>(starts.size()) - 1;
    for (std::int64_t l0 = 0; l0 < n_leaves; l0 += batch) {
      const std::int64_t l1 = std::min(n_leaves, l0 + batch);
      tbb::parallel_for(l0, l1, [&](std::int64_t l) {
        auto& out = updates[l - l0];
        out.clear();
        for (auto p = starts[l]; p < starts[l + 1]; ++p)
          for (auto q = p + 1; q < starts[l + 1]; ++q) offer(out, order[p], order[q]);
      });
      push_updates(l1 - l0);
    }
    std::vector<std::int32_t>().swap(tree_order[t]);
  }
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
    // Reverse entries go to j's list in the order of i, as in a serial walk, from the forward
    // entries (the first forward_*[i] of i's lists, which stay put while the lists grow).
    std::vector<int> forward_new(new_count), forward_old(old_count);
    struct Reverse {
      std::int32_t target, source;
      bool fresh;
    };
    regroup_by_target<Reverse>(
        n, n, 1 << 16,
        [&](std::int64_t i, auto&& put) {
          const auto source = static_cast<std::int32_t>(i);
          for (int t = 0; t < forward_new[i]; ++t)
            put(new_list[i * cap + t], Reverse{new_list[i * cap + t], source, true});
          for (int t = 0; t < forward_old[i]; ++t)
            put(old_list[i * cap + t], Reverse{old_list[i * cap + t], source, false});
        },
        [&](const Reverse* r, const Reverse* end) {
          for (; r != end; ++r)
            if (r->fresh)
              add(new_list, new_count, r->target, r->source);
            else
              add(old_list, old_count, r->target, r->source);
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
        for (int a = 0; a < nn; ++a) {
          for (int c = a + 1; c < nn; ++c) offer(out, nw[a], nw[c]);
          for (int c = 0; c < no; ++c)
            if (nw[a] != od[c]) offer(out, nw[a], od[c]);
        }
      });
      changes += push_updates(b1 - b0);
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
