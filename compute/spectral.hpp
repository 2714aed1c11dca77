// UMAP's default initial layout, as umap-learn's spectral_layout: the eigenvectors of the fuzzy
// graph's normalised Laplacian with the two smallest non-trivial eigenvalues (ARPACK through
// igraph), each connected component laid out on its own and placed by its centroid; random
// positions where the eigensolver fails, with the reason reported.
#pragma once

#include <cstdint>
#include <string>

#include "io/matrix.hpp"

namespace orrery::compute {

struct SpectralResult {
  DenseMatrix embedding;  // n x 2, scaled to [0, 10] per axis like every UMAP initialisation
  std::string note;       // "spectral", "spectral (3 components)", or why it fell back
};

// `graph`: symmetric weights (fuzzy simplicial set); `data`: the points (e.g. X_pca), used to
// place disconnected components relative to each other.
SpectralResult spectral_layout(const CsrMatrix& graph, const DenseMatrix& data, std::uint64_t seed);

// Uniform random positions in [0, 10]^2 (umap-learn's init="random", rescaled).
DenseMatrix random_layout(std::int64_t n, std::uint64_t seed);

// Rescales each axis to [0, 10], as umap-learn does before optimising any initialisation.
void scale_to_box(DenseMatrix& embedding);

}  // namespace orrery::compute
