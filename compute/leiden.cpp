#include "leiden.hpp"

#include <igraph/igraph.h>

#include <algorithm>
#include <mutex>
#include <numeric>

#include "io/error.hpp"

namespace orrery::compute {
namespace {

struct IgraphVector {
  igraph_vector_t v;
  explicit IgraphVector(igraph_integer_t n = 0) { igraph_vector_init(&v, n); }
  ~IgraphVector() { igraph_vector_destroy(&v); }
};
struct IgraphIntVector {
  igraph_vector_int_t v;
  explicit IgraphIntVector(igraph_integer_t n = 0) { igraph_vector_int_init(&v, n); }
  ~IgraphIntVector() { igraph_vector_int_destroy(&v); }
};
struct IgraphGraph {
  igraph_t g;
  bool live = false;
  ~IgraphGraph() {
    if (live) igraph_destroy(&g);
  }
};

void check(igraph_error_t status, const char* what) {
  if (status != IGRAPH_SUCCESS)
    throw Error("", "leiden", std::string(what) + " failed: " + igraph_strerror(status));
}

std::vector<std::int32_t> labels_of(const igraph_vector_int_t& membership) {
  std::vector<std::int32_t> labels(igraph_vector_int_size(&membership));
  for (std::size_t i = 0; i < labels.size(); ++i)
    labels[i] = static_cast<std::int32_t>(VECTOR(membership)[i]);
  return labels;
}

}  // namespace

std::mutex& igraph_mutex() {
  static std::mutex m;
  return m;
}

std::vector<std::int32_t> leiden(const CsrMatrix& graph, const LeidenOptions& o,
                                 Progress* progress) {
  if (!(o.resolution > 0)) throw Error("", "leiden.resolution", "must be positive");
  const std::int64_t n = graph.n_rows;
  std::lock_guard lock(igraph_mutex());
  igraph_set_error_handler(igraph_error_handler_ignore);

  IgraphIntVector edges;
  IgraphVector weights;
  for (std::int64_t i = 0; i < n; ++i)
    for (auto k = graph.indptr[i]; k < graph.indptr[i + 1]; ++k) {
      const std::int64_t j = graph.indices[k];
      if (j <= i) continue;  // each undirected edge once
      igraph_vector_int_push_back(&edges.v, i);
      igraph_vector_int_push_back(&edges.v, j);
      igraph_vector_push_back(&weights.v, graph.data[k]);
    }
  IgraphGraph g;
  check(igraph_create(&g.g, &edges.v, n, IGRAPH_UNDIRECTED), "igraph_create");
  g.live = true;

  // Modularity with resolution gamma: node weights = strengths, resolution = gamma / (2m).
  IgraphVector strength(n);
  igraph_vs_t all;
  igraph_vs_all(&all);
  check(igraph_strength(&g.g, &strength.v, all, IGRAPH_ALL, IGRAPH_LOOPS, &weights.v),
        "igraph_strength");
  igraph_vs_destroy(&all);
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i) total += VECTOR(strength.v)[i];
  if (total <= 0) throw Error("", "leiden", "graph has no edges");

  igraph_rng_seed(igraph_rng_default(), o.seed);
  IgraphIntVector membership(n);
  igraph_integer_t n_clusters = 0;
  igraph_real_t quality = 0;
  // One iteration per call, each starting from the last one's partition (the RNG goes on), so
  // a cancel is seen between iterations. n_iterations < 0: until an iteration leaves the
  // partition as it was, as leidenalg (scanpy) does; igraph 0.10.2's own loop for a negative
  // count stops after the first iteration that changes anything, i.e. after one.
  auto iterate = [&](bool start, int n_iterations) {
    check(igraph_community_leiden(&g.g, &weights.v, &strength.v, o.resolution / total, o.beta,
                                  start, n_iterations, &membership.v, &n_clusters, &quality),
          "igraph_community_leiden");
  };
  if (o.n_iterations == 0) iterate(false, 0);  // no iteration: the singletons
  std::vector<std::int32_t> before;
  for (int it = 0; o.n_iterations < 0 || it < o.n_iterations; ++it) {
    if (progress) {
      progress->check();
      if (it > 0) progress->report("leiden: iteration " + std::to_string(it + 1), 0.0);
    }
    if (o.n_iterations < 0 && it > 0) before = first_appearance_labels(labels_of(membership.v));
    iterate(it > 0, 1);
    if (o.n_iterations < 0 && it > 0 && first_appearance_labels(labels_of(membership.v)) == before)
      break;
    if (o.n_iterations < 0 && it + 1 >= kMaxLeidenIterations) {
      if (progress) progress->warn(leiden_unstable_warning());
      break;
    }
  }

  return labels_by_size(labels_of(membership.v));
}

}  // namespace orrery::compute
