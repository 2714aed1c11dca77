#include "spectral.hpp"

#include <igraph/igraph.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <numeric>

#include "lanczos.hpp"
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

// y = A x: rows in parallel, each summed in the same order, so the same vector on any number of
// threads.
igraph_error_t multiply(igraph_real_t* to, const igraph_real_t* from, int n, void* extra) {
  const auto& a = *static_cast<const SymmetricCsr*>(extra);
  // Isolated: while it waits, this thread (holding igraph's mutex) takes no other task that
  // might want the mutex too.
  tbb::this_task_arena::isolate([&] {
    tbb::parallel_for(tbb::blocked_range<int>(0, n, 2048), [&](const tbb::blocked_range<int>& r) {
      for (int i = r.begin(); i < r.end(); ++i) {
        double sum = 0.0;
        for (auto k = a.indptr[i]; k < a.indptr[i + 1]; ++k)
          sum += a.weights[k] * from[a.indices[k]];
        to[i] = sum;
      }
    });
  });
  return IGRAPH_SUCCESS;
}

}  // namespace

ComponentOperator component_operator(const CsrMatrix& g, const std::vector<std::int64_t>& members,
                                     const std::vector<std::int64_t>& local, std::string& why) {
  const auto n = static_cast<std::int64_t>(members.size());
  // Whether a vertex is in this component: edges out of it (one-way edges of an asymmetric
  // graph that joined another component first) are left out.
  const auto inside = [&](std::int64_t u) {
    const auto j = local[u];
    return j < n && members[j] == u;
  };
  ComponentOperator op;
  op.sqrt_degree.resize(n);
  op.a.indptr.assign(static_cast<std::size_t>(n) + 1, 0);
  std::atomic<bool> finite{true};
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n, 4096),
                    [&](const tbb::blocked_range<std::int64_t>& r) {
                      for (auto i = r.begin(); i < r.end(); ++i) {
                        double d = 0.0;
                        std::int64_t edges = 0;
                        const auto v = members[i];
                        for (auto k = g.indptr[v]; k < g.indptr[v + 1]; ++k)
                          if (!(g.data[k] > 0)) {
                            d += g.data[k];  // a NaN spoils the degree; zeros change nothing
                          } else if (inside(g.indices[k])) {
                            d += g.data[k];  // the degree of the edges kept, so that
                            ++edges;         // sqrt_degree stays A's eigenvector for 1
                          }
                        if (!(d > 0) || !std::isfinite(d)) finite = false;
                        op.sqrt_degree[i] = std::sqrt(d);
                        op.a.indptr[i + 1] = edges;
                      }
                    });
  if (!finite) {  // no eigenproblem to solve
    why = "a non-finite edge weight";
    return {};
  }
  std::partial_sum(op.a.indptr.begin(), op.a.indptr.end(), op.a.indptr.begin());
  op.a.indices.resize(static_cast<std::size_t>(op.a.indptr[n]));
  op.a.weights.resize(op.a.indices.size());
  tbb::parallel_for(
      tbb::blocked_range<std::int64_t>(0, n, 4096), [&](const tbb::blocked_range<std::int64_t>& r) {
        for (auto i = r.begin(); i < r.end(); ++i) {
          auto out = op.a.indptr[i];
          const auto v = members[i];
          for (auto k = g.indptr[v]; k < g.indptr[v + 1]; ++k)
            if (g.data[k] > 0 && inside(g.indices[k])) {
              const auto j = static_cast<std::int32_t>(local[g.indices[k]]);
              op.a.indices[out] = j;
              op.a.weights[out++] = g.data[k] / (op.sqrt_degree[i] * op.sqrt_degree[j]);
            }
        }
      });
  return op;
}

std::vector<double> spectral_start(std::int64_t n) {
  // A deterministic start: the ones vector (as umap-learn's v0) with a tiny seeded jitter so it
  // is not exactly orthogonal to anything.
  Rng rng(0x5eedULL + static_cast<std::uint64_t>(n));
  std::vector<double> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = 1.0 + 1e-3 * rng.uniform();
  return v;
}

LanczosOptions spectral_lanczos_options() {
  LanczosOptions o;
  o.nev = 2;
  o.ncv = 32;
  o.tol = 1e-4;  // umap-learn's eigsh tolerance
  return o;
}

std::vector<double> trivial_vector(const ComponentOperator& op) {
  double s = 0.0;
  for (double v : op.sqrt_degree) s += v * v;
  std::vector<double> u = op.sqrt_degree;
  for (double& v : u) v /= std::sqrt(s);
  return u;
}

LanczosResult spectral_lanczos(const ComponentOperator& op, LanczosOps& ops) {
  return lanczos_largest(ops, spectral_start(op.a.rows()), spectral_lanczos_options());
}

ComponentEigensolver host_lanczos_eigensolver(std::int64_t min_vertices, LanczosObserver observe) {
  return [min_vertices, observe](const ComponentOperator& op, std::vector<double>& out) {
    // Small components (where the basis would be much of the space) go to ARPACK.
    if (op.a.rows() < std::max<std::int64_t>(min_vertices, 4 * spectral_lanczos_options().ncv))
      return false;
    HostLanczosOps ops(op.a, trivial_vector(op), spectral_lanczos_options().ncv + 1);
    const auto t0 = std::chrono::steady_clock::now();
    LanczosResult r = spectral_lanczos(op, ops);
    if (observe)
      observe(op, r, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (!r.converged) return false;
    out = std::move(r.vectors);
    return true;
  };
}

namespace {

// ARPACK's three largest eigenpairs of the operator (through igraph); the trivial one (1, the
// square-root degrees) is dropped: two vectors, row-major, into `out`.
bool arpack_vectors(const ComponentOperator& op, std::vector<double>& out, std::string& why) {
  const int n = static_cast<int>(op.a.rows());
  std::lock_guard lock(igraph_mutex());
  igraph_set_error_handler(igraph_error_handler_ignore);
  igraph_set_warning_handler(igraph_warning_handler_ignore);
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
  const std::vector<double> start = spectral_start(n);
  for (int i = 0; i < n; ++i) MATRIX(vectors, i, 0) = start[i];
  const igraph_error_t rc = igraph_arpack_rssolve(multiply, const_cast<SymmetricCsr*>(&op.a),
                                                  &options, nullptr, &values, &vectors);
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

// What each eigenvector's sign is fixed against: seeded entries in [-1, 1], far from
// orthogonal to any vector (the start vector is nearly the trivial eigenvector, to which the
// wanted ones are orthogonal).
std::vector<double> orientation_reference(std::int64_t n) {
  Rng rng(0x0a1e47ULL + static_cast<std::uint64_t>(n));
  std::vector<double> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = 2.0 * rng.uniform() - 1.0;
  return v;
}

// Two non-trivial eigenvectors of one component (rows in `members` order, each turned by
// orient_columns), from `eigensolver` where it takes the component, else ARPACK; false, with
// the reason in `why`, where the component has no spectral layout.
bool component_spectral(const CsrMatrix& g, const std::vector<std::int64_t>& members,
                        const std::vector<std::int64_t>& local,
                        const ComponentEigensolver& eigensolver, std::int64_t arpack_max_vertices,
                        std::vector<double>& out, std::string& why) {
  const ComponentOperator op = component_operator(g, members, local, why);
  if (op.sqrt_degree.empty()) return false;
  if (!(eigensolver && eigensolver(op, out))) {
    if (op.a.rows() > arpack_max_vertices) {
      why = "no eigenvectors for a component of " + std::to_string(op.a.rows()) +
            " vertices (ARPACK is not tried above " + std::to_string(arpack_max_vertices) + ")";
      return false;
    }
    if (!arpack_vectors(op, out, why)) return false;
  }
  orient_columns(out, op.a.rows(), 2, orientation_reference(op.a.rows()));
  return true;
}

double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m > 0 ? m : 1.0;
}

}  // namespace

std::vector<double> nearest_other_distances(const std::vector<double>& xy) {
  // A sweep along x from each point outwards, stopped where the x gap alone is no closer:
  // C log C for points spread in the plane (a graph can have hundreds of thousands of
  // components), where all pairs were C^2.
  const std::size_t n = xy.size() / 2;
  std::vector<std::size_t> by_x(n);
  std::iota(by_x.begin(), by_x.end(), std::size_t{0});
  std::sort(by_x.begin(), by_x.end(), [&](std::size_t a, std::size_t b) {
    return xy[2 * a] < xy[2 * b] || (xy[2 * a] == xy[2 * b] && a < b);
  });
  std::vector<double> nearest(n, std::numeric_limits<double>::max());
  for (std::size_t at = 0; at < n; ++at) {
    const std::size_t c = by_x[at];
    double& best = nearest[c];
    auto look = [&](std::size_t other) {
      const double dx = xy[2 * other] - xy[2 * c];
      if (std::fabs(dx) > best) return false;
      best = std::min(best, std::hypot(dx, xy[2 * other + 1] - xy[2 * c + 1]));
      return true;
    };
    for (std::size_t o = at + 1; o < n && look(by_x[o]); ++o) {
    }
    for (std::size_t o = at; o-- > 0 && look(by_x[o]);) {
    }
  }
  return nearest;
}

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

SpectralResult spectral_layout(const CsrMatrix& graph, const DenseMatrix& data, std::uint64_t seed,
                               const ComponentEigensolver& eigensolver,
                               std::int64_t arpack_max_vertices) {
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
    const std::vector<double> nearest = nearest_other_distances(meta);
    for (int c = 0; c < n_comp; ++c)
      room[c] =
          nearest[c] > 0 && nearest[c] < std::numeric_limits<double>::max() ? nearest[c] / 2 : 0.1;
  }

  std::vector<double> out(2 * static_cast<std::size_t>(n), 0.0);
  Rng rng(seed ^ 0x5ec7ULL);
  int failed = 0;
  std::string why;
  {
    for (int c = 0; c < n_comp; ++c) {
      const auto& m = members[c];
      std::vector<double> coords;
      // umap-learn lays tiny components out at random.
      const bool spectral = m.size() >= 4 && component_spectral(graph, m, local, eigensolver,
                                                                arpack_max_vertices, coords, why);
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
      n_comp == 1
          ? "spectral"
          : "spectral (" + std::to_string(n_comp) + " components" +
                (failed ? ", " + std::to_string(failed) + " laid out at random: " + why : "") + ")";
  return result;
}

}  // namespace orrery::compute
