// AnnData stores (h5ad files, zarr v2/v3 directories) and Cell Ranger .h5 files, decoded from
// an Element tree: obs/var dataframes in every anndata encoding, and X (or a layer, or raw/X) as
// a RowChunkReader that reads rows on demand, so a matrix is never loaded whole.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "element.hpp"
#include "store.hpp"

namespace orrery::io {

Store open_h5ad(const std::string& path, const OpenOptions& options = {});
Store open_zarr(const std::string& path, const OpenOptions& options = {});

// The AnnData store below `root` (or a Cell Ranger .h5 when there is no obs and no X).
Store open_anndata(std::shared_ptr<const Element> root, const std::string& format,
                   const OpenOptions& options);

// A cells x genes matrix element (csr_matrix / csc_matrix group or dense 2-D array) with the
// given shape as a RowChunkReader; CSC is transposed once to a temporary CSR store.
std::unique_ptr<RowChunkReader> open_matrix(std::shared_ptr<const Element> matrix,
                                            std::int64_t n_obs, std::int64_t n_vars,
                                            const OpenOptions& options,
                                            std::string* encoding = nullptr);

// The first row of each block when rows go in blocks of at most `budget_bytes` (8 per entry by
// `row_nnz`; a block has one row at least), then the row count.
std::vector<std::int64_t> row_blocks(const std::vector<std::int64_t>& row_nnz,
                                     std::size_t budget_bytes);

// A CSR matrix too large for memory (a CSC X transposed, a Matrix Market file) built as a
// temporary HDF5 store: rows go in the blocks of row_blocks(row_nnz, budget_bytes), `fill(r0, r1,
// block)` fills each block's indices and data (indptr and sizes already set from row_nnz),
// `progress(fraction)` follows. The file is unlinked once reopened (and on failure); errors name
// `source`.
std::unique_ptr<RowChunkReader> temporary_csr_store(
    const std::vector<std::int64_t>& row_nnz, std::int64_t n_cols, std::size_t budget_bytes,
    const std::string& source,
    const std::function<void(std::int64_t, std::int64_t, CsrMatrix&)>& fill,
    const std::function<void(double)>& progress);

// An obsm entry (dense 2-D array) with n_obs rows.
DenseMatrix read_dense(const Element& array, std::int64_t n_obs);
// The first `n_cols` columns of such an entry (an embedding's first two axes out of fifty PCs),
// read in blocks of rows so that the whole array is never held.
DenseMatrix read_dense_columns(const Element& array, std::int64_t n_obs, std::int64_t n_cols);
// Rows `rows` (rising; all when null) and the first `n_cols` columns (all when negative) of such
// an entry, read a block of rows (block_bytes of doubles) at a time from each row wanted: the
// memory is the result's and one block's, and blocks holding no row wanted are not read.
DenseMatrix read_dense_rows(const Element& array, std::int64_t n_obs,
                            const std::vector<CellIndex>* rows, std::int64_t n_cols = -1,
                            std::size_t block_bytes = std::size_t{16} << 20);

}  // namespace orrery::io
