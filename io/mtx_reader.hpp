// Matrix Market stores as written by Cell Ranger: matrix.mtx[.gz] (genes x cells) with
// genes.tsv / features.tsv[.gz] and barcodes.tsv[.gz]. Text cannot be sliced, so the matrix is
// parsed once into cell-major CSR in memory.
#pragma once

#include <string>

#include "store.hpp"

namespace orrery::io {

bool is_mtx_store(const std::string& path);
Store open_mtx(const std::string& path);

// Parses one Matrix Market coordinate file (rows = genes, columns = cells) into cell-major CSR.
CsrMatrix read_mtx_transposed(const std::string& file);

}  // namespace orrery::io
