// UMAP's default initial layout, as umap-learn's spectral_layout: the eigenvectors of the fuzzy
// graph's normalised Laplacian with the two smallest non-trivial eigenvalues, each connected
// component laid out on its own and placed by its centroid; random positions where the
// eigensolver fails, with the reason reported. umap-learn asks ARPACK (scipy's eigsh) for them;
// here thick-restart Lanczos (lanczos.hpp: the same Krylov method, start vector and tolerance,
// with the trivial eigenvector locked) solves components of 128 vertices and more, on the host
// or on a device with the same iteration, and ARPACK (through igraph) the smaller ones and any
// Lanczos gives up on. Near-degenerate eigenvalues (nearly separate clusters) leave the vectors
// within their span loosely fixed at that tolerance, so two solvers' layouts can differ there;
// the Lanczos answer is the same on either backend.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/matrix.hpp"
#include "lanczos.hpp"

namespace orrery::compute {

struct SpectralResult {
  DenseMatrix embedding;  // n x 2, scaled to [0, 10] per axis like every UMAP initialisation
  std::string note;       // "spectral", "spectral (3 components)", or why it fell back
};

// One connected component's eigenproblem: A = D^-1/2 W D^-1/2 over its vertices (local column
// indices, edges without weight left out), whose largest eigenvalue is 1 with the eigenvector
// sqrt_degree (normalised); the layout takes the next two.
struct ComponentOperator {
  SymmetricCsr a;
  std::vector<double> sqrt_degree;
};

// `members`: the component's vertices; `local`: each vertex's index within its component. Empty
// (no sqrt_degree), with `why` set, where a degree is not positive and finite.
ComponentOperator component_operator(const CsrMatrix& graph,
                                     const std::vector<std::int64_t>& members,
                                     const std::vector<std::int64_t>& local, std::string& why);

// The start vector every solver uses for an n-vertex component (ones, slightly jittered, as
// umap-learn's v0).
std::vector<double> spectral_start(std::int64_t n);

// Another solver for a component's two eigenvectors after the trivial one (a device's): fills
// `out` (n x 2, row-major) and returns true, or returns false to leave the component to ARPACK
// on the host (having said why, where that is news, through its own channel).
using ComponentEigensolver =
    std::function<bool(const ComponentOperator&, std::vector<double>& out)>;

// The same two eigenvectors by thick-restart Lanczos (lanczos.hpp) with the trivial one locked
// and ARPACK's basis size and tolerance: `ops` must hold op.a with trivial_vector(op) locked and
// spectral_lanczos_options().ncv + 1 columns (a device's LanczosOps or HostLanczosOps).
LanczosOptions spectral_lanczos_options();
std::vector<double> trivial_vector(const ComponentOperator& op);  // sqrt_degree, unit length
LanczosResult spectral_lanczos(const ComponentOperator& op, LanczosOps& ops);
// spectral_lanczos with HostLanczosOps on components of at least `min_vertices` (the device
// solver's twin, for tests and benchmarks). `observe`, when given, sees each component's
// operator and iteration (converged or not) and how long it took.
using LanczosObserver =
    std::function<void(const ComponentOperator&, const LanczosResult&, double seconds)>;
ComponentEigensolver host_lanczos_eigensolver(std::int64_t min_vertices = 0,
                                              LanczosObserver observe = {});

// `graph`: symmetric weights (fuzzy simplicial set); `data`: the points (e.g. X_pca), used to
// place disconnected components relative to each other; `eigensolver`: tried first on each
// component (a backend's spectral_eigensolver()). Each eigenvector's sign is fixed by
// orient_columns against a seeded reference vector, so solvers agree.
// ARPACK takes a component `eigensolver` gave up on only up to `arpack_max_vertices`: above
// that (umap-learn leaves eigsh above 2M points too) a component the Lanczos iteration did not
// solve within its restarts would keep ARPACK, the same iteration, for minutes; it is laid out
// at random instead, as umap-learn does when its solver fails, and the note says why.
constexpr std::int64_t kArpackMaxVertices = 2'000'000;
SpectralResult spectral_layout(const CsrMatrix& graph, const DenseMatrix& data, std::uint64_t seed,
                               const ComponentEigensolver& eigensolver = host_lanczos_eigensolver(),
                               std::int64_t arpack_max_vertices = kArpackMaxVertices);

// For each of the points (x, y pairs), the distance to the nearest other point (the largest
// double where there is none): where spectral_layout places components apart.
std::vector<double> nearest_other_distances(const std::vector<double>& xy);

// Uniform random positions in [0, 10]^2 (umap-learn's init="random", rescaled).
DenseMatrix random_layout(std::int64_t n, std::uint64_t seed);

// Rescales each axis to [0, 10], as umap-learn does before optimising any initialisation.
void scale_to_box(DenseMatrix& embedding);

}  // namespace orrery::compute
