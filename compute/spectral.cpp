#include "spectral.hpp"

#include <igraph/igraph.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <numeric>

#include "leiden.hpp"
#include "rng.hpp"

namespace orrery::compute {

namespace {

// Connected components: label per vertex, number of components.
int components(const CsrMatrix& g, std::vector<std::int32_t>& label) {
  const std::int64_t n = g.n_rows;
  label.assign(n, -1);
  int count = 0;
  std::vector<std::int64_t> stack;
  for (std::int64_t s = 0; s < n; ++s) {
    if (label[s] >= 0) continue;
    label[s] = count;
    stack.assign(1, s);
    while (!stack.empty()) {
      const auto v = stack.back();
      stack.pop_back();
      for (auto k = g.indptr[v]; k < g.indptr[v + 1]; ++k) {
        const auto u = g.indices[k];
        if (label[u] < 0 && g.data[k] > 0) {
          label[u] = count;
          stack.push_back(u);
        }
      }
    }
    ++count;
  }
  return count;
}

struct Operator {
  const CsrMatrix* g;
  const std::vector<std::int64_t>* members;  // global vertex ids of the component
  const std::vector<std::int64_t>* local;    // global -> local index
  std::vector<double> inv_sqrt_degree;
};

// y = D^-1/2 W D^-1/2 x on one component: its largest eigenvalues are 1 - the Laplacian's
// smallest. Rows in parallel, each summed in the same order: the same vector on any number of
// threads (ARPACK calls this hundreds of times on a large graph).
igraph_error_t multiply(igraph_real_t* to, const igraph_real_t* from, int n, void* extra) {
  const auto& op = *static_cast<const Operator*>(extra);
  // Isolated: while it waits, this thread (holding igraph's mutex) takes no other task that
  // might want the mutex too.
  tbb::this_task_arena::isolate([&] {
    tbb::parallel_for(tbb::blocked_range<int>(0, n, 2048), [&](const tbb::blocked_range<int>& r) {
      for (int i = r.begin(); i < r.end(); ++i) {
        const auto v = (*op.members)[i];
        double sum = 0.0;
        for (auto k = op.g->indptr[v]; k < op.g->indptr[v + 1]; ++k) {
          const auto j = (*op.local)[op.g->indices[k]];
          sum += op.g->data[k] * op.inv_sqrt_degree[j] * from[j];
        }
        to[i] = op.inv_sqrt_degree[i] * sum;
      }
    });
  });
  return IGRAPH_SUCCESS;
}

// Two non-trivial eigenvectors of one component (rows in `members` order), or false.
// False, with the reason in `why`, where the component has no spectral layout.
bool component_spectral(const CsrMatrix& g, const std::vector<std::int64_t>& members,
                        const std::vector<std::int64_t>& local, std::vector<double>& out,
                        std::string& why) {
  const int n = static_cast<int>(members.size());
  Operator op{&g, &members, &local, std::vector<double>(n, 0.0)};
  for (int i = 0; i < n; ++i) {
    double d = 0.0;
    const auto v = members[i];
    for (auto k = g.indptr[v]; k < g.indptr[v + 1]; ++k) d += g.data[k];
    if (!(d > 0) || !std::isfinite(d)) {  // no eigenproblem to solve
      why = "a non-finite edge weight";
      return false;
    }
    op.inv_sqrt_degree[i] = 1.0 / std::sqrt(d);
  }
  igraph_arpack_options_t options;
  igraph_arpack_options_init(&options);
  options.n = n;
  options.nev = 3;
  options.which[0] = 'L';
  options.which[1] = 'A';
  options.ncv = std::min(n, 32);
  options.tol = 1e-4;  // umap-learn's eigsh tolerance
  options.mxiter = 3000;
  options.start = 1;
  igraph_vector_t values;
  igraph_matrix_t vectors;
  igraph_vector_init(&values, 0);
  igraph_matrix_init(&vectors, n, 1);
  // A deterministic start: the ones vector (as umap-learn's v0) with a tiny seeded jitter so it
  // is not exactly orthogonal to anything.
  Rng rng(0x5eedULL + static_cast<std::uint64_t>(n));
  for (int i = 0; i < n; ++i) MATRIX(vectors, i, 0) = 1.0 + 1e-3 * rng.uniform();
  const igraph_error_t rc =
      igraph_arpack_rssolve(multiply, &op, &options, nullptr, &values, &vectors);
  bool ok =
      rc == IGRAPH_SUCCESS && igraph_vector_size(&values) >= 3 && igraph_matrix_ncol(&vectors) >= 3;
  if (ok) {
    // Eigenvalues come largest first; drop the trivial one (1, vector D^1/2 1).
    std::vector<int> order{0, 1, 2};
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return VECTOR(values)[a] > VECTOR(values)[b]; });
    out.assign(2 * static_cast<std::size_t>(n), 0.0);
    for (int i = 0; i < n; ++i)
      for (int d = 0; d < 2; ++d) {
        const double v = MATRIX(vectors, i, order[d + 1]);
        if (!std::isfinite(v)) ok = false;
        out[2 * static_cast<std::size_t>(i) + d] = v;
      }
  }
  igraph_vector_destroy(&values);
  igraph_matrix_destroy(&vectors);
  if (!ok) why = "the eigensolver did not converge";
  return ok;
}

double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m > 0 ? m : 1.0;
}

}  // namespace

void scale_to_box(DenseMatrix& e) {
  for (std::int64_t d = 0; d < e.cols; ++d) {
    float lo = std::numeric_limits<float>::max(), hi = std::numeric_limits<float>::lowest();
    for (std::int64_t i = 0; i < e.rows; ++i) {
      lo = std::min(lo, e.at(i, d));
      hi = std::max(hi, e.at(i, d));
    }
    const float range = hi > lo ? hi - lo : 1.0f;
    for (std::int64_t i = 0; i < e.rows; ++i) e.at(i, d) = 10.0f * (e.at(i, d) - lo) / range;
  }
}

DenseMatrix random_layout(std::int64_t n, std::uint64_t seed) {
  DenseMatrix e(n, 2);
  Rng rng(seed ^ 0x7a4d0aULL);
  for (auto& v : e.values) v = static_cast<float>(10.0 * rng.uniform());
  return e;
}

SpectralResult spectral_layout(const CsrMatrix& graph, const DenseMatrix& data,
                               std::uint64_t seed) {
  const std::int64_t n = graph.n_rows;
  SpectralResult result;
  std::vector<std::int32_t> label;
  const int n_comp = components(graph, label);
  std::vector<std::vector<std::int64_t>> members(n_comp);
  for (std::int64_t i = 0; i < n; ++i) members[label[i]].push_back(i);
  std::vector<std::int64_t> local(n);
  for (const auto& m : members)
    for (std::size_t i = 0; i < m.size(); ++i) local[m[i]] = static_cast<std::int64_t>(i);

  // Where each component goes: its centroid in the first two data dimensions, scaled to [-1, 1],
  // with room up to half the distance to the nearest other component.
  std::vector<double> meta(2 * static_cast<std::size_t>(n_comp), 0.0), room(n_comp, 1.0);
  if (n_comp > 1) {
    for (int c = 0; c < n_comp; ++c) {
      for (auto i : members[c])
        for (int d = 0; d < 2 && d < data.cols; ++d) meta[2 * c + d] += data.at(i, d);
      for (int d = 0; d < 2; ++d) meta[2 * c + d] /= static_cast<double>(members[c].size());
    }
    const double scale = max_abs(meta);
    for (auto& v : meta) v /= scale;
    for (int c = 0; c < n_comp; ++c) {
      double nearest = std::numeric_limits<double>::max();
      for (int o = 0; o < n_comp; ++o)
        if (o != c)
          nearest = std::min(
              nearest, std::hypot(meta[2 * c] - meta[2 * o], meta[2 * c + 1] - meta[2 * o + 1]));
      room[c] = nearest > 0 && nearest < std::numeric_limits<double>::max() ? nearest / 2 : 0.1;
    }
  }

  std::vector<double> out(2 * static_cast<std::size_t>(n), 0.0);
  Rng rng(seed ^ 0x5ec7ULL);
  int failed = 0;
  std::string why;
  {
    std::lock_guard lock(igraph_mutex());
    igraph_set_error_handler(igraph_error_handler_ignore);
    igraph_set_warning_handler(igraph_warning_handler_ignore);
    for (int c = 0; c < n_comp; ++c) {
      const auto& m = members[c];
      std::vector<double> coords;
      // umap-learn lays tiny components out at random.
      const bool spectral = m.size() >= 4 && component_spectral(graph, m, local, coords, why);
      if (!spectral) {
        if (m.size() >= 4) ++failed;
        coords.resize(2 * m.size());
        for (auto& v : coords) v = 2.0 * rng.uniform() - 1.0;
      }
      const double expansion = room[c] / max_abs(coords);
      for (std::size_t i = 0; i < m.size(); ++i)
        for (int d = 0; d < 2; ++d)
          out[2 * static_cast<std::size_t>(m[i]) + d] =
              coords[2 * i + d] * expansion + meta[2 * c + d];
    }
  }
  if (n_comp == 1 && failed == 1) {
    result.embedding = random_layout(n, seed);
    result.note = "random (" + why + "; as umap-learn, random fallback)";
    return result;
  }
  // umap-learn: scale to max |x| = 10, add N(0, 1e-4) noise, then rescale to [0, 10].
  const double expansion = 10.0 / max_abs(out);
  result.embedding = DenseMatrix(n, 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const double noise = 1e-4 * rng.normal();
    result.embedding.values[i] = static_cast<float>(out[i] * expansion + noise);
  }
  scale_to_box(result.embedding);
  result.note =
      n_comp == 1 ? "spectral"
                  : "spectral (" + std::to_string(n_comp) + " components" +
                        (failed ? ", " + std::to_string(failed) + " laid out at random" : "") + ")";
  return result;
}

}  // namespace orrery::compute
