// One vertex's move in one epoch of UMAP's SGD, shared by the CPU layout (umap.cpp) and the
// CUDA kernel (__host__ __device__), so both run the same arithmetic and the same negative
// samples: a counter-based stream gives vertex i in epoch t the samples of (seed, t, i).
#pragma once

#include <cmath>
#include <cstdint>

#include "elementwise.hpp"

namespace orrery::compute {

struct UmapSplitMix {
  std::uint64_t state;
  ORRERY_HD UmapSplitMix(std::uint64_t seed, std::uint64_t epoch, std::uint64_t vertex)
      : state(seed ^ (epoch * 0xd1b54a32d192ed03ULL) ^ (vertex * 0x9e3779b97f4a7c15ULL)) {}
  ORRERY_HD std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

// The arrays of one epoch (host or device pointers alike). Edges of head i are
// [first[i], first[i + 1]); each vertex writes only its own position in `y`, its own edges'
// schedules, and reads the others' positions from `prev` (the epoch's start).
struct UmapEpoch {
  const std::int64_t* first;
  const std::int64_t* tail;
  const double* eps;      // epochs per sample
  const double* eps_neg;  // epochs per negative sample
  double* next_sample;
  double* next_neg;
  const float* prev;
  float* y;
  std::int64_t n;
  double a, b, alpha, repulsion;
  int epoch;
  std::uint64_t seed;
};

ORRERY_HD inline double umap_clip(double g) {
  return g > 4.0 ? 4.0 : (g < -4.0 ? -4.0 : g);
}

// Negative samples due on edge e in this epoch. negative_sample_rate 0 makes eps_neg infinite,
// `due` NaN and so none.
ORRERY_HD inline int umap_negatives_due(const UmapEpoch& u, std::int64_t e) {
  const double due = (u.epoch - u.next_neg[e]) / u.eps_neg[e];
  return due > 0 ? static_cast<int>(due) : 0;
}

// A vertex's negative sample: a uniform vertex from its counter-based stream.
ORRERY_HD inline std::int64_t umap_draw(UmapSplitMix& rng, const UmapEpoch& u) {
  return static_cast<std::int64_t>(rng.next() % static_cast<std::uint64_t>(u.n));
}

// The attraction of an edge: `cur` moves toward `oth` (the edge's tail at the epoch's start).
ORRERY_HD inline void umap_attract(const UmapEpoch& u, float* cur, const float* oth) {
  const double dx = cur[0] - oth[0], dy = cur[1] - oth[1];
  const double d2 = dx * dx + dy * dy;
  if (d2 > 0.0) {
    const double d2b = pow(d2, u.b);  // umap-learn's pow(d2, b - 1) is d2b / d2: one pow
    const double coeff = -2.0 * u.a * u.b * (d2b / d2) / (u.a * d2b + 1.0);
    cur[0] += static_cast<float>(2.0 * umap_clip(coeff * dx) * u.alpha);
    cur[1] += static_cast<float>(2.0 * umap_clip(coeff * dy) * u.alpha);
  }
}

// One negative sample's repulsion: `cur` moves away from `other`.
ORRERY_HD inline void umap_repel(const UmapEpoch& u, float* cur, const float* other) {
  const double dx = cur[0] - other[0], dy = cur[1] - other[1];
  const double d2 = dx * dx + dy * dy;
  double gx = 4.0, gy = 4.0;
  if (d2 > 0.0) {
    const double coeff = 2.0 * u.repulsion * u.b / ((0.001 + d2) * (u.a * pow(d2, u.b) + 1.0));
    gx = umap_clip(coeff * dx);
    gy = umap_clip(coeff * dy);
  }
  cur[0] += static_cast<float>(gx * u.alpha);
  cur[1] += static_cast<float>(gy * u.alpha);
}

// Vertex i's move in the epoch: for each edge due, its attraction, then its negative samples.
// The CUDA kernel runs it per vertex; the host interleaves several vertices' moves
// (umap_move_vertices in umap.cpp) in exactly this order per vertex, so the same bits.
ORRERY_HD inline void umap_move_vertex(const UmapEpoch& u, std::int64_t i) {
  float* cur = u.y + 2 * i;
  UmapSplitMix rng(u.seed, static_cast<std::uint64_t>(u.epoch), static_cast<std::uint64_t>(i));
  for (auto e = u.first[i]; e < u.first[i + 1]; ++e) {
    if (u.next_sample[e] > u.epoch) continue;
    const int n_neg = umap_negatives_due(u, e);
    umap_attract(u, cur, u.prev + 2 * u.tail[e]);
    u.next_sample[e] += u.eps[e];
    for (int p = 0; p < n_neg; ++p) {
      const auto k = umap_draw(rng, u);
      if (k != i) umap_repel(u, cur, u.prev + 2 * k);
    }
    u.next_neg[e] += n_neg * u.eps_neg[e];
  }
}

}  // namespace orrery::compute
