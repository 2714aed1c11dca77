// The parallel Leiden flavour on the CPU. Mirrors cuda/leiden.cu step for step: both decide
// with leiden_math.hpp from integer sums, so they give the same labels.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <utility>

#include "io/error.hpp"
#include "leiden.hpp"
#include "leiden_math.hpp"

namespace orrery::compute {
namespace {

using Level = FixedPointGraph;

template <class Body>
void for_vertices(std::int64_t n, const Body& body) {
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n, 512),
                    [&](const tbb::blocked_range<std::int64_t>& r) { body(r.begin(), r.end()); });
}

// A vertex's neighbours as runs: (key, weight) sorted by key, kLeidenSkip last.
struct Runs {
  std::vector<std::pair<std::int32_t, std::int64_t>> pairs;
  std::vector<std::int32_t> keys;
  std::vector<std::int64_t> weights;

  template <class Key>
  std::int64_t fill(const Level& g, std::int64_t i, const Key& key) {
    pairs.clear();
    for (auto e = g.indptr[i]; e < g.indptr[i + 1]; ++e)
      pairs.emplace_back(key(g.indices[e]), g.weights[e]);
    std::sort(pairs.begin(), pairs.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    keys.resize(pairs.size());
    weights.resize(pairs.size());
    for (std::size_t e = 0; e < pairs.size(); ++e) {
      keys[e] = pairs[e].first;
      weights[e] = pairs[e].second;
    }
    return static_cast<std::int64_t>(pairs.size());
  }
};

void totals(const Level& g, const std::vector<std::int32_t>& label, std::vector<std::int64_t>& K,
            std::vector<std::int32_t>& size) {
  std::fill(K.begin(), K.end(), 0);
  std::fill(size.begin(), size.end(), 0);
  for (std::int64_t i = 0; i < g.n; ++i) {
    K[label[i]] += g.degree[i];
    ++size[label[i]];
  }
}

struct Sweeps {
  std::uint64_t seed;
  int iteration, level;
  double g;  // gamma / 2m
  Progress* progress;
};

// One sweep over `label`: `decide(i, runs)` gives vertex i's new label (its own to stay), read
// from the state before the sweep; the labels after it replace `label`. Returns how many moved.
template <class Decide>
std::int64_t sweep_vertices(std::vector<std::int32_t>& label, std::vector<std::int32_t>& next,
                            const Decide& decide) {
  next = label;
  std::atomic<std::int64_t> moved{0};
  for_vertices(static_cast<std::int64_t>(label.size()), [&](std::int64_t begin, std::int64_t end) {
    Runs runs;
    std::int64_t local = 0;
    for (std::int64_t i = begin; i < end; ++i) {
      const std::int32_t t = decide(i, runs);
      if (t != label[i]) {
        next[i] = t;
        ++local;
      }
    }
    moved += local;
  });
  label.swap(next);
  return moved.load();
}

std::vector<std::int32_t> local_moving(const Level& G, std::vector<std::int32_t> label,
                                       const Sweeps& s) {
  std::vector<std::int64_t> K(G.n);
  std::vector<std::int32_t> size(G.n), next(G.n);
  LeidenPairs pairs{leiden_move_tolerance(G.n)};
  for (int sweep = 0; sweep < kLeidenMoveSweeps; ++sweep) {
    if (s.progress) s.progress->check();
    totals(G, label, K, size);
    const LeidenCoin eligible{s.seed, s.iteration, s.level, 0, sweep};
    const std::int64_t moved = sweep_vertices(label, next, [&](std::int64_t i, Runs& runs) {
      if (!eligible(i)) return label[i];
      const auto d =
          runs.fill(G, i, [&](std::int32_t j) { return j == i ? kLeidenSkip : label[j]; });
      return leiden_move_target(runs.keys.data(), runs.weights.data(), d,
                                static_cast<std::int32_t>(i), label[i], G.degree[i], K.data(),
                                size.data(), s.g);
    });
    if (pairs.done(sweep, moved)) break;
  }
  return label;
}

std::vector<std::int32_t> refine(const Level& G, const std::vector<std::int32_t>& P,
                                 const Sweeps& s) {
  std::vector<std::int32_t> R(G.n), next, sizeR(G.n), sizeP(G.n);
  std::iota(R.begin(), R.end(), 0);
  std::vector<std::int64_t> KP(G.n), KR(G.n), ext(G.n), ext_vertex(G.n);
  totals(G, P, KP, sizeP);
  LeidenPairs pairs{0};
  for (int sweep = 0; sweep < kLeidenRefineSweeps; ++sweep) {
    if (s.progress) s.progress->check();
    totals(G, R, KR, sizeR);
    // Each sub-community's weight to the rest of its community.
    for_vertices(G.n, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        std::int64_t sum = 0;
        for (auto e = G.indptr[i]; e < G.indptr[i + 1]; ++e) {
          const std::int32_t j = G.indices[e];
          if (P[j] == P[i] && R[j] != R[i]) sum += G.weights[e];
        }
        ext_vertex[i] = sum;
      }
    });
    std::fill(ext.begin(), ext.end(), 0);
    for (std::int64_t i = 0; i < G.n; ++i) ext[R[i]] += ext_vertex[i];

    const LeidenCoin eligible{s.seed, s.iteration, s.level, 1, sweep};
    const std::int64_t moved = sweep_vertices(R, next, [&](std::int64_t i, Runs& runs) {
      if (sizeR[R[i]] != 1 || !eligible(i)) return R[i];
      const auto d = runs.fill(
          G, i, [&](std::int32_t j) { return j == i || P[j] != P[i] ? kLeidenSkip : R[j]; });
      return leiden_refine_target(runs.keys.data(), runs.weights.data(), d,
                                  static_cast<std::int32_t>(i), G.degree[i], KP[P[i]], KR.data(),
                                  sizeR.data(), ext.data(), s.g, eligible);
    });
    if (pairs.done(sweep, moved)) break;
  }
  return R;
}

// The graph of the `ids` (n_coarse of them): edge weights between groups summed, a group's
// inner weight on its diagonal.
Level aggregate(const Level& G, const std::vector<std::int32_t>& ids, std::int32_t n_coarse) {
  Level c;
  c.n = n_coarse;
  c.total = G.total;
  std::vector<std::int64_t> first(n_coarse + 1, 0);
  for (std::int64_t i = 0; i < G.n; ++i) ++first[ids[i] + 1];
  std::partial_sum(first.begin(), first.end(), first.begin());
  std::vector<std::int32_t> members(G.n);
  {
    auto at = first;
    for (std::int64_t i = 0; i < G.n; ++i) members[at[ids[i]]++] = static_cast<std::int32_t>(i);
  }
  std::vector<std::vector<std::pair<std::int32_t, std::int64_t>>> rows(n_coarse);
  c.degree.assign(n_coarse, 0);
  for_vertices(n_coarse, [&](std::int64_t begin, std::int64_t end) {
    std::vector<std::pair<std::int32_t, std::int64_t>> edges;
    for (std::int64_t v = begin; v < end; ++v) {
      edges.clear();
      for (auto m = first[v]; m < first[v + 1]; ++m) {
        const std::int32_t i = members[m];
        c.degree[v] += G.degree[i];
        for (auto e = G.indptr[i]; e < G.indptr[i + 1]; ++e)
          edges.emplace_back(ids[G.indices[e]], G.weights[e]);
      }
      std::sort(edges.begin(), edges.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      auto& row = rows[v];
      for (const auto& [j, w] : edges) {
        if (!row.empty() && row.back().first == j)
          row.back().second += w;
        else
          row.emplace_back(j, w);
      }
    }
  });
  c.indptr.assign(n_coarse + 1, 0);
  for (std::int32_t v = 0; v < n_coarse; ++v)
    c.indptr[v + 1] = c.indptr[v] + static_cast<std::int64_t>(rows[v].size());
  c.indices.resize(c.indptr.back());
  c.weights.resize(c.indptr.back());
  for (std::int32_t v = 0; v < n_coarse; ++v) {
    auto at = c.indptr[v];
    for (const auto& [j, w] : rows[v]) {
      c.indices[at] = j;
      c.weights[at++] = w;
    }
    std::vector<std::pair<std::int32_t, std::int64_t>>().swap(rows[v]);
  }
  return c;
}

}  // namespace

FixedPointGraph fixed_point_graph(const CsrMatrix& graph) {
  if (graph.n_rows != graph.n_cols)
    throw Error("", "leiden",
                "the graph is not square (" + std::to_string(graph.n_rows) + " x " +
                    std::to_string(graph.n_cols) + ")");
  if (graph.n_rows >= kLeidenSkip)
    throw Error("", "leiden", "too many cells for the parallel flavour");
  double sum = 0;
  for (const float w : graph.data) {
    if (!(w >= 0) || !std::isfinite(w))
      throw Error("", "leiden", "edge weights must be finite and non-negative");
    sum += w;
  }
  // Each rounded weight is at most w * 2^shift + 1/2: keep the total below 2^62.
  const double bound = sum + 0.5 * static_cast<double>(graph.nnz()) + 1.0;
  const int shift = std::min(40, static_cast<int>(std::floor(62.0 - std::log2(bound))));
  if (shift < 8) throw Error("", "leiden", "edge weights too large for the parallel flavour");
  FixedPointGraph g;
  g.n = graph.n_rows;
  g.indptr.assign(g.n + 1, 0);
  g.indices.reserve(graph.indices.size());
  g.weights.reserve(graph.data.size());
  g.degree.assign(g.n, 0);
  for (std::int64_t i = 0; i < g.n; ++i) {
    for (auto e = graph.indptr[i]; e < graph.indptr[i + 1]; ++e) {
      if (graph.indices[e] == i) continue;  // self-loops dropped, as the igraph flavour does
      const auto w = std::llround(std::ldexp(static_cast<double>(graph.data[e]), shift));
      g.indices.push_back(graph.indices[e]);
      g.weights.push_back(w);
      g.degree[i] += w;
    }
    g.indptr[i + 1] = static_cast<std::int64_t>(g.indices.size());
  }
  for (const auto k : g.degree) g.total += k;
  return g;
}

std::vector<std::int32_t> first_appearance_labels(const std::vector<std::int32_t>& labels) {
  std::vector<std::int32_t> relabel(labels.size(), -1), out(labels.size());
  std::int32_t next = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    auto& r = relabel[labels[i]];
    if (r < 0) r = next++;
    out[i] = r;
  }
  return out;
}

std::int32_t compact_labels(const std::vector<std::int32_t>& labels,
                            std::vector<std::int32_t>& ids) {
  std::vector<std::int32_t> id(labels.size() + 1, 0);
  for (const auto l : labels) id[l] = 1;
  std::int32_t next = 0;
  for (auto& v : id) {
    const bool present = v != 0;
    v = present ? next++ : -1;
  }
  ids.resize(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) ids[i] = id[labels[i]];
  return next;
}

std::vector<std::int32_t> labels_by_size(const std::vector<std::int32_t>& membership) {
  std::vector<std::int32_t> ids;
  const std::int32_t k = compact_labels(membership, ids);
  std::vector<std::int64_t> size(k, 0);
  for (const auto c : ids) ++size[c];
  std::vector<std::int32_t> order(k);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int32_t x, std::int32_t y) { return size[x] > size[y]; });
  std::vector<std::int32_t> rank(k);
  for (std::int32_t r = 0; r < k; ++r) rank[order[r]] = r;
  for (auto& c : ids) c = rank[c];
  return ids;
}

double leiden_quality(const CsrMatrix& graph, const std::vector<std::int32_t>& labels,
                      double resolution) {
  const std::int64_t n = graph.n_rows;
  std::vector<double> K(n + 1, 0.0);
  double inner = 0, total = 0;
  for (std::int64_t i = 0; i < n; ++i)
    for (auto e = graph.indptr[i]; e < graph.indptr[i + 1]; ++e) {
      if (graph.indices[e] == i) continue;  // self-loops do not count (as both flavours)
      const double w = graph.data[e];
      total += w;
      K[labels[i]] += w;
      if (labels[graph.indices[e]] == labels[i]) inner += w;
    }
  if (total <= 0) return 0.0;
  double expected = 0;
  for (const double k : K) expected += k * k;
  return (inner - resolution * expected / total) / total;
}

std::vector<std::int32_t> leiden_parallel(const CsrMatrix& graph, const LeidenOptions& o,
                                          Progress* progress) {
  if (!(o.resolution > 0)) throw Error("", "leiden.resolution", "must be positive");
  const Level level0 = fixed_point_graph(graph);
  if (level0.total <= 0) throw Error("", "leiden", "graph has no edges");
  const std::int64_t n = level0.n;
  std::vector<std::int32_t> membership(n);
  std::iota(membership.begin(), membership.end(), 0);
  const double g = o.resolution / static_cast<double>(level0.total);

  std::vector<std::int32_t> before, ids, pid;
  for (int it = 0; o.n_iterations < 0 || it < o.n_iterations; ++it) {
    if (progress && it > 0) progress->report("leiden: iteration " + std::to_string(it + 1), 0.0);
    if (o.n_iterations < 0 && it > 0) before = first_appearance_labels(membership);
    Level coarse;
    const Level* G = &level0;
    std::vector<std::int32_t> map(n), M;
    std::iota(map.begin(), map.end(), 0);
    compact_labels(membership, M);
    for (int level = 0;; ++level) {
      const Sweeps s{o.seed, it, level, g, progress};
      std::vector<std::int32_t> P = local_moving(*G, std::move(M), s);
      const std::int32_t n_p = compact_labels(P, pid);
      if (n_p == G->n) {
        for (std::int64_t v = 0; v < n; ++v) membership[v] = pid[map[v]];
        break;
      }
      std::vector<std::int32_t> R = refine(*G, P, s);
      std::int32_t n_r = compact_labels(R, ids);
      if (n_r == G->n) n_r = compact_labels(P, ids);  // nothing merged: aggregate by P
      M.assign(n_r, 0);
      for (std::int64_t i = 0; i < G->n; ++i) M[ids[i]] = pid[i];
      for (auto& v : map) v = ids[v];
      coarse = aggregate(*G, ids, n_r);
      G = &coarse;
    }
    if (o.n_iterations < 0 && it > 0 && first_appearance_labels(membership) == before) break;
    if (o.n_iterations < 0 && it + 1 >= kMaxLeidenIterations) {
      if (progress) progress->warn(leiden_unstable_warning());
      break;
    }
  }
  return labels_by_size(membership);
}

}  // namespace orrery::compute
