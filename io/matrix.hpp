// Value types shared by every layer: a CSR block of rows with 64-bit offsets and a dense
// row-major matrix. Chunks of a store's X arrive as CsrMatrix; results such as X_pca are
// DenseMatrix.
#pragma once

#include <cstdint>
#include <vector>

namespace orrery {

using CellIndex = std::int64_t;
using GeneIndex = std::int32_t;

struct CsrMatrix {
  std::int64_t n_rows = 0;
  std::int64_t n_cols = 0;
  std::vector<std::int64_t> indptr{0};  // n_rows + 1 entries
  std::vector<GeneIndex> indices;
  std::vector<float> data;

  std::int64_t nnz() const { return static_cast<std::int64_t>(indices.size()); }
  std::size_t bytes() const {
    return indptr.size() * sizeof(std::int64_t) + indices.size() * sizeof(GeneIndex) +
           data.size() * sizeof(float);
  }
};

struct DenseMatrix {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::vector<float> values;  // row-major

  DenseMatrix() = default;
  DenseMatrix(std::int64_t r, std::int64_t c) : rows(r), cols(c), values(r * c, 0.0f) {}
  float& at(std::int64_t r, std::int64_t c) { return values[r * cols + c]; }
  float at(std::int64_t r, std::int64_t c) const { return values[r * cols + c]; }
  float* row(std::int64_t r) { return values.data() + r * cols; }
  const float* row(std::int64_t r) const { return values.data() + r * cols; }
};

}  // namespace orrery
