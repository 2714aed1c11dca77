// UMAP as umap-learn: the fuzzy simplicial set of a kNN graph (smooth kNN distances, fuzzy
// union), which is also scanpy's `connectivities`, and the SGD layout with negative sampling.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "io/matrix.hpp"
#include "knn.hpp"
#include "progress.hpp"
#include "umap_step.hpp"

namespace orrery::compute {

struct FuzzyGraph {
  CsrMatrix connectivities;  // symmetric, n x n
  CsrMatrix distances;       // kNN distances without self, n x n
};

FuzzyGraph fuzzy_simplicial_set(const KnnResult& knn, double local_connectivity = 1.0,
                                double set_op_mix_ratio = 1.0);

// Its two steps. Each kNN entry's membership (n x k in the lists' order; 0 for self and missing
// neighbours), from each row's smooth kNN distances (fuzzy_math.hpp) ...
std::vector<float> fuzzy_memberships(const KnnResult& knn, double local_connectivity = 1.0);
double mean_knn_distance(const KnnResult& knn);  // the sigma floor of rows whose rho is 0
// ... and their fuzzy union (P + P^T - P o P^T at set_op_mix_ratio 1) with the distances graph.
// Both run in parallel over rows and give the same bits for any thread count.
FuzzyGraph fuzzy_union(const KnnResult& knn, const std::vector<float>& memberships,
                       double set_op_mix_ratio = 1.0);

struct UmapOptions {
  double min_dist = 0.5;
  double spread = 1.0;
  int n_epochs = 0;  // 0: 500 for up to 10k cells, else 200 (umap-learn)
  double learning_rate = 1.0;
  double repulsion_strength = 1.0;
  int negative_sample_rate = 5;
  std::string init = "spectral";  // "spectral" (umap-learn, scanpy) | "pca" | "random"
  std::uint64_t seed = 0;
  // Every field (C++17: the CUDA sources include this too).
  bool operator==(const UmapOptions& o) const {
    return min_dist == o.min_dist && spread == o.spread && n_epochs == o.n_epochs &&
           learning_rate == o.learning_rate && repulsion_strength == o.repulsion_strength &&
           negative_sample_rate == o.negative_sample_rate && init == o.init && seed == o.seed;
  }
};

// a, b of the low-dimensional similarity 1 / (1 + a d^(2b)) fitted as umap-learn's find_ab_params.
std::pair<double, double> find_ab_params(double spread, double min_dist);

// Lays out `graph` starting from `init` (n x 2). `on_epoch(epoch, n_epochs, embedding)` may be
// used to animate the layout while it optimises.
using EpochCallback = std::function<void(int, int, const DenseMatrix&)>;
DenseMatrix umap_layout(const CsrMatrix& graph, DenseMatrix init, const UmapOptions& options,
                        Progress& progress, const EpochCallback& on_epoch = {});

// The SGD's edge schedule as umap-learn builds it: edges below max weight / n_epochs dropped,
// each sampled every max_w / w epochs and its negatives negative_sample_rate times as often.
// Per head i the edges are [first[i], first[i + 1]) (umap_step.hpp runs one epoch of them).
struct UmapSchedule {
  std::vector<std::int64_t> first, tail;
  std::vector<double> eps, eps_neg, next_sample, next_neg;
};
UmapSchedule umap_schedule(const CsrMatrix& graph, int n_epochs, int negative_sample_rate);
int umap_epochs(const UmapOptions& options, std::int64_t n_cells);  // n_epochs = 0 resolved

// Vertices [begin, end) of one epoch moved on the host: umap_move_vertex's arithmetic and
// samples per vertex (the same bits), several vertices interleaved.
void umap_move_vertices(const UmapEpoch& u, std::int64_t begin, std::int64_t end);

// One epoch's arguments for umap_move_vertex over a schedule's arrays (the host vectors or their
// device copies, in UmapSchedule's order: first, tail, eps, eps_neg, next_sample, next_neg):
// the learning rate decays linearly with the epoch, as umap-learn's.
struct UmapArrays {
  const std::int64_t *first, *tail;
  const double *eps, *eps_neg;
  double *next_sample, *next_neg;
};
UmapEpoch umap_epoch_args(const UmapArrays& arrays, const float* prev, float* y, std::int64_t n,
                          std::pair<double, double> ab, const UmapOptions& options, int epoch,
                          int n_epochs);

// Initial 2-D positions from the first two PCs, scaled to [0, 10] as umap-learn scales its init.
DenseMatrix initial_layout_from_pca(const DenseMatrix& pca, std::uint64_t seed);

}  // namespace orrery::compute
