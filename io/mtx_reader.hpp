// Matrix Market stores as written by Cell Ranger: matrix.mtx[.gz] (genes x cells) with
// genes.tsv / features.tsv[.gz] and barcodes.tsv[.gz]. Text cannot be sliced: a first pass
// counts each cell's entries, then the matrix becomes cell-major CSR in memory when it fits
// OpenOptions::transpose_bytes, else a temporary CSR store built block by block (one more pass
// when cells come in order, as Cell Ranger writes them; otherwise one more pass dealing the
// entries into a temporary file per block, each block then filled from its file).
#pragma once

#include <string>

#include "store.hpp"

namespace orrery::io {

bool is_mtx_store(const std::string& path);
Store open_mtx(const std::string& path, const OpenOptions& options = {});

// Parses one Matrix Market coordinate file (rows = genes, columns = cells) into cell-major CSR
// in memory.
CsrMatrix read_mtx_transposed(const std::string& file);
// The same as a RowChunkReader within options.transpose_bytes (see above). `genes_listed` /
// `cells_listed`: the names files' lengths, which the declared shape must equal (-1: none).
// `encoding` (optional) says which of the two ways it took.
std::unique_ptr<RowChunkReader> open_mtx_matrix(const std::string& file, std::int64_t genes_listed,
                                                std::int64_t cells_listed,
                                                const OpenOptions& options,
                                                std::string* encoding = nullptr);

}  // namespace orrery::io
