// The "parallel" Leiden flavour (leiden.hpp): the per-vertex decisions, shared by the CPU
// implementation (leiden_parallel.cpp) and the CUDA kernels (cuda/leiden.cu).
//
// Every vertex decides from the state before a sweep, and all sums are of integer edge weights
// (fixed point), so the order in which a thread or a GPU adds them does not matter: both
// backends, any thread count, give the same labels bit for bit. Scores are doubles computed
// from those integers with each product rounded on its own (product_rn).
//
// A vertex sees its neighbours as runs: the neighbours' community (or sub-community) ids sorted
// ascending, each with its edge weight, entries that do not count (the vertex itself; in the
// refinement, neighbours outside its community) carrying kLeidenSkip and sorted last.
#pragma once

#include <cstdint>

#include "elementwise.hpp"

namespace orrery::compute {

constexpr std::int32_t kLeidenSkip = 0x7fffffff;

// splitmix64's finaliser: the per-vertex coin of a sweep.
ORRERY_HD inline std::uint64_t leiden_mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Which half of the vertices a sweep moves: sweeps go in pairs, the pair's coin splits the
// vertices in two and the pair's first sweep moves one half, the second the other. A pair that
// moves nothing therefore means no vertex wants to move; phases stop only at a pair's end.
ORRERY_HD inline bool leiden_eligible(std::uint64_t seed, int iteration, int level, int phase,
                                      int sweep, std::int64_t vertex) {
  std::uint64_t h =
      leiden_mix(seed + 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(iteration + 1));
  h = leiden_mix(h ^ (static_cast<std::uint64_t>(level) << 40) ^
                 (static_cast<std::uint64_t>(phase) << 32) ^ static_cast<std::uint64_t>(sweep / 2));
  h = leiden_mix(h ^ static_cast<std::uint64_t>(vertex));
  return static_cast<int>(h & 1) == (sweep & 1);
}

// When a phase stops, fed each sweep's count of moved vertices: at the end of a sweep pair that
// moved at most `tolerance` of them. Local moving allows one vertex in 1000 (none below 1000
// vertices; later pairs only move the last boundary vertices of a community one layer at a
// time, which the aggregate graph does at once), refinement none; both also stop after
// kLeidenMoveSweeps / kLeidenRefineSweeps (leiden.hpp).
struct LeidenPairs {
  std::int64_t tolerance;
  std::int64_t pair_moved = 0;
  ORRERY_HD bool done(int sweep, std::int64_t moved) {
    pair_moved += moved;
    if (sweep % 2 == 0) return false;
    const bool settled = pair_moved <= tolerance;
    pair_moved = 0;
    return settled;
  }
};
ORRERY_HD inline std::int64_t leiden_move_tolerance(std::int64_t n) {
  return n / 1000;
}

// leiden_eligible of one sweep, as a function of the vertex.
struct LeidenCoin {
  std::uint64_t seed;
  int iteration, level, phase, sweep;
  ORRERY_HD bool operator()(std::int64_t vertex) const {
    return leiden_eligible(seed, iteration, level, phase, sweep, vertex);
  }
};

// k_ic - gamma / 2m * k_i * K_c: a vertex's quality with community c, up to terms equal for all
// c. `g` = gamma / 2m.
ORRERY_HD inline double leiden_score(std::int64_t k_ic, std::int64_t k_i, std::int64_t K_c,
                                     double g) {
  return static_cast<double>(k_ic) -
         product_rn(product_rn(g, static_cast<double>(k_i)), static_cast<double>(K_c));
}

// The run at entry `e` of a vertex's runs: its key in `c`, its weight in `sum`, `e` moved past
// it; false at the end (or where the skipped entries start).
ORRERY_HD inline bool leiden_next_run(const std::int32_t* keys, const std::int64_t* w,
                                      std::int64_t d, std::int64_t& e, std::int32_t& c,
                                      std::int64_t& sum) {
  if (e >= d || keys[e] == kLeidenSkip) return false;
  c = keys[e];
  sum = 0;
  for (; e < d && keys[e] == c; ++e) sum += w[e];
  return true;
}

// Leiden's "well connected": edges >= gamma / 2m * size * (total - size).
ORRERY_HD inline bool leiden_well_connected(std::int64_t edges, std::int64_t size,
                                            std::int64_t total, double g) {
  return static_cast<double>(edges) >=
         product_rn(product_rn(g, static_cast<double>(size)), static_cast<double>(total - size));
}

// Local moving: where vertex `self` of community `a`, of weighted degree k_i, goes. `comm`,
// `w`: its neighbours' communities and weights as runs (see above), `d` entries. `K` and `size`:
// each community's total degree and vertex count. A vertex moves only for a strictly better
// score (ties go to the smallest community id); a singleton joins another singleton only of a
// smaller id (two singletons would otherwise swap forever); a vertex may start a community of
// its own, under its own id, when that id is free.
ORRERY_HD inline std::int32_t leiden_move_target(const std::int32_t* comm, const std::int64_t* w,
                                                 std::int64_t d, std::int32_t self, std::int32_t a,
                                                 std::int64_t k_i, const std::int64_t* K,
                                                 const std::int32_t* size, double g) {
  std::int64_t k_ia = 0, sum = 0;
  std::int32_t best_c = -1, c = 0;
  double best = 0;
  for (std::int64_t e = 0; leiden_next_run(comm, w, d, e, c, sum);) {
    if (c == a) {
      k_ia = sum;
      continue;
    }
    const double s = leiden_score(sum, k_i, K[c], g);
    if (best_c < 0 || s > best) {
      best = s;
      best_c = c;
    }
  }
  const bool singleton = size[a] == 1;
  if (!singleton && size[self] == 0 && (best_c < 0 || 0.0 > best)) {  // a community of its own
    best = 0.0;
    best_c = self;
  }
  if (best_c < 0) return a;
  const double stay = leiden_score(k_ia, k_i, K[a] - k_i, g);
  if (!(best > stay)) return a;
  if (singleton && size[best_c] == 1 && best_c > a) return a;
  return best_c;
}

// Refinement: the sub-community singleton `self` joins, or `self` to stay alone. `sub`, `w`:
// runs of the sub-communities of its neighbours in the same community S (others skipped);
// `K_S`: S's total degree; `K`, `size`, `ext`: each sub-community's total degree, vertex count
// and weight of edges to the rest of S. As leidenalg: only a vertex well connected to S moves,
// only into a sub-community well connected to S, and only for a positive gain; the greedy best
// is taken (leidenalg draws among the positive ones). A singleton that may move in this sweep
// cannot be joined in it (`eligible`), so no two decisions conflict.
ORRERY_HD inline std::int32_t leiden_refine_target(const std::int32_t* sub, const std::int64_t* w,
                                                   std::int64_t d, std::int32_t self,
                                                   std::int64_t k_i, std::int64_t K_S,
                                                   const std::int64_t* K, const std::int32_t* size,
                                                   const std::int64_t* ext, double g,
                                                   const LeidenCoin& eligible) {
  std::int64_t k_iS = 0;
  for (std::int64_t e = 0; e < d && sub[e] != kLeidenSkip; ++e) k_iS += w[e];
  if (!leiden_well_connected(k_iS, k_i, K_S, g)) return self;  // E(v, S - v) too small
  std::int32_t best_c = self, c = 0;
  std::int64_t sum = 0;
  double best = 0;
  for (std::int64_t e = 0; leiden_next_run(sub, w, d, e, c, sum);) {
    if (size[c] == 1 && eligible(c)) continue;
    if (!leiden_well_connected(ext[c], K[c], K_S, g)) continue;
    const double s = leiden_score(sum, k_i, K[c], g);
    if (s > best) {
      best = s;
      best_c = c;
    }
  }
  return best_c;
}

}  // namespace orrery::compute
