// Leiden benchmark: the igraph and parallel flavours on the fuzzy kNN graph (k = 15, NN-descent)
// of N points in 40 Gaussian blobs in 20 dimensions, with the CUDA backend's parallel flavour
// when a device exists. Prints one JSON object: seconds, clusters and quality (modularity with
// resolution 1) per flavour, the ARI between them, and whether the device's labels are the
// CPU's. With --umap-epochs E, also the CPU's UMAP layout of the same graph over E epochs
// (seconds per epoch, best of two; the layout starts from the points' first two coordinates),
// and the same epochs moving one vertex at a time as the CUDA kernel does (umap_move_vertex,
// best of two), with whether both gave the same bits. With
// --spectral, the spectral initial layout of that graph (seconds, its note, and the Lanczos
// iteration on its largest component: products, restarts, eigenvalues). With
// --no-leiden, no Leiden. With --graph STORE, the graph is a stored analysis's instead
// (obsp/connectivities, and obsm/X_pca for placing its components) and N is ignored. With
// --arpack, also the spectral layout with ARPACK solving every component (the default solves
// large ones by thick-restart Lanczos): seconds and its largest difference from the default.
// --centre-spread S scales the blobs' centres (default 4: 40 components; about 1: one component
// with 40 dense regions, as an atlas's graph, the spectral solver's hard case).
// Usage: orrery_bench_leiden [N] [--no-igraph] [--no-leiden] [--umap-epochs E] [--spectral]
//        [--graph STORE] [--arpack] [--centre-spread S]  (default N: 300000)
#include <tbb/parallel_for.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "compute/backend.hpp"
#include "compute/leiden.hpp"
#include "compute/metrics.hpp"
#include "compute/rng.hpp"
#include "compute/spectral.hpp"
#include "compute/umap.hpp"
#include "compute/umap_step.hpp"
#include "io/anndata_reader.hpp"

using namespace orrery;

namespace {

double now() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

DenseMatrix blobs(std::int64_t n, int dims, int k, double centre_spread) {
  compute::Rng rng(3);
  std::vector<float> centre(static_cast<std::size_t>(k) * dims);
  for (auto& c : centre) c = static_cast<float>(centre_spread * rng.normal());
  DenseMatrix x(n, dims);
  for (std::int64_t i = 0; i < n; ++i)
    for (int d = 0; d < dims; ++d)
      x.at(i, d) = centre[(i % k) * dims + d] + static_cast<float>(rng.normal());
  return x;
}

// umap_layout's epochs with every vertex moved on its own (umap_move_vertex, the device's
// per-thread order) instead of the host's interleaved umap_move_vertices.
DenseMatrix umap_one_vertex_at_a_time(const CsrMatrix& graph, DenseMatrix emb,
                                      const compute::UmapOptions& o) {
  const std::int64_t n = graph.n_rows;
  const int n_epochs = compute::umap_epochs(o, n);
  compute::UmapSchedule s = compute::umap_schedule(graph, n_epochs, o.negative_sample_rate);
  std::vector<float> start(emb.values.size());
  for (int epoch = 0; epoch < n_epochs; ++epoch) {
    start = emb.values;
    const compute::UmapEpoch u =
        compute::umap_epoch_args({s.first.data(), s.tail.data(), s.eps.data(), s.eps_neg.data(),
                                  s.next_sample.data(), s.next_neg.data()},
                                 start.data(), emb.values.data(), n,
                                 compute::find_ab_params(o.spread, o.min_dist), o, epoch, n_epochs);
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n, 1024), [&](const auto& r) {
      for (std::int64_t i = r.begin(); i < r.end(); ++i) compute::umap_move_vertex(u, i);
    });
  }
  return emb;
}

}  // namespace

int main(int argc, char** argv) try {
  std::int64_t n = 300000;
  bool igraph = true;
  int umap_epochs = 0;
  bool spectral = false, leiden = true, arpack = false;
  std::string graph_store;
  double centre_spread = 4.0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-igraph") == 0)
      igraph = false;
    else if (std::strcmp(argv[i], "--no-leiden") == 0)
      leiden = false;
    else if (std::strcmp(argv[i], "--spectral") == 0)
      spectral = true;
    else if (std::strcmp(argv[i], "--arpack") == 0)
      spectral = arpack = true;
    else if (std::strcmp(argv[i], "--centre-spread") == 0 && i + 1 < argc)
      centre_spread = std::atof(argv[++i]);
    else if (std::strcmp(argv[i], "--graph") == 0 && i + 1 < argc)
      graph_store = argv[++i];
    else if (std::strcmp(argv[i], "--umap-epochs") == 0 && i + 1 < argc)
      umap_epochs = std::atoi(argv[++i]);
    else
      n = std::atoll(argv[i]);
  }
  compute::Progress quiet;
  const double t0 = now();
  DenseMatrix points;
  compute::FuzzyGraph g;
  if (graph_store.empty()) {
    compute::KnnOptions ko;
    ko.n_neighbors = 15;
    points = blobs(n, 20, 40, centre_spread);
    g = compute::fuzzy_simplicial_set(compute::nn_descent_knn(points, ko, quiet));
  } else {
    io::OpenOptions oo;
    oo.open_x = false;
    const io::Store store = io::open_store(graph_store, oo);
    n = store.n_obs();
    std::shared_ptr<const io::Element> graph =
        store.root->require("obsp")->require("connectivities");
    g.connectivities = io::open_matrix(graph, n, n, oo)->read_rows(0, n);
    points = io::read_dense(*store.root->require("obsm")->require("X_pca"), n);
  }
  nlohmann::json out = {{"cells", n}};
  out["graph_seconds"] = now() - t0;
  out["graph_nnz"] = g.connectivities.nnz();
  if (umap_epochs > 0) {
    compute::UmapOptions uo;
    uo.n_epochs = umap_epochs;
    const DenseMatrix init = compute::initial_layout_from_pca(points, 0);
    double best = 1e300, best_one = 1e300;
    bool same = true;
    for (int round = 0; round < 2; ++round) {
      double t = now();
      const DenseMatrix a = compute::umap_layout(g.connectivities, init, uo, quiet);
      best = std::min(best, now() - t);
      t = now();
      const DenseMatrix b = umap_one_vertex_at_a_time(g.connectivities, init, uo);
      best_one = std::min(best_one, now() - t);
      same = same && a.values.size() == b.values.size() &&
             std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(float)) == 0;
    }
    out["umap_seconds_per_epoch"] = best / umap_epochs;
    out["umap_one_vertex_seconds_per_epoch"] = best_one / umap_epochs;
    out["umap_same_bits"] = same;
  }
  if (spectral) {
    // The default host Lanczos solver, recording its largest component's iteration.
    nlohmann::json largest = nullptr;
    std::int64_t largest_rows = 0;
    const compute::ComponentEigensolver lanczos = compute::host_lanczos_eigensolver(
        0,
        [&](const compute::ComponentOperator& op, const compute::LanczosResult& r, double seconds) {
          if (op.a.rows() <= largest_rows) return;
          largest_rows = op.a.rows();
          largest = {{"vertices", largest_rows}, {"converged", r.converged},
                     {"products", r.products},   {"restarts", r.restarts},
                     {"seconds", seconds},       {"values", r.values}};
        });
    const double t = now();
    const compute::SpectralResult s =
        compute::spectral_layout(g.connectivities, points, 0, lanczos);
    out["spectral_seconds"] = now() - t;
    out["spectral_largest_component"] = largest;
    out["spectral_note"] = s.note;
    double sum = 0;  // the layout itself, to compare builds
    for (float v : s.embedding.values) sum += v;
    out["spectral_sum"] = sum;
    if (arpack) {  // ARPACK (umap-learn's solver) on every component, and how far apart
      const double t2 = now();
      const compute::SpectralResult l = compute::spectral_layout(
          g.connectivities, points, 0,
          [](const compute::ComponentOperator&, std::vector<double>&) { return false; });
      out["arpack_seconds"] = now() - t2;
      double most = 0;
      for (std::size_t i = 0; i < l.embedding.values.size(); ++i)
        most = std::max(
            most, static_cast<double>(std::fabs(l.embedding.values[i] - s.embedding.values[i])));
      out["arpack_max_difference"] = most;  // in the [0, 10] box
    }
  }
  if (!leiden) {
    std::printf("%s\n", out.dump(1).c_str());
    return 0;
  }

  auto run = [&](compute::Backend& backend, const std::string& flavor) {
    compute::LeidenOptions o;
    o.flavor = flavor;
    const double t = now();
    auto labels = backend.leiden(g.connectivities, o, quiet);
    const double s = now() - t;
    const int k = labels.empty() ? 0 : *std::max_element(labels.begin(), labels.end()) + 1;
    out[backend.name() + "_" + flavor] = {
        {"seconds", s},
        {"clusters", k},
        {"quality", compute::leiden_quality(g.connectivities, labels, o.resolution)}};
    return labels;
  };
  auto cpu = compute::make_cpu_backend();
  const auto parallel = run(*cpu, "parallel");
  if (igraph)
    out["ari_igraph_vs_parallel"] = compute::adjusted_rand_index(run(*cpu, "igraph"), parallel);
  std::string why;
  if (auto cuda = compute::make_cuda_backend(&why)) {
    out["cuda_same_labels"] = run(*cuda, "parallel") == parallel;
  } else {
    out["cuda"] = why;
  }
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "orrery_bench_leiden: %s\n", e.what());
  return 1;
}
