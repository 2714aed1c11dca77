// Opening a store: io::open_store(path) recognises h5ad files, zarr v2/v3 directories, Cell Ranger
// .h5 files, 10x Matrix Market folders and dense text tables, and returns obs/var plus X as a
// RowChunkReader, which hands out rows [r0, r1) as CSR so that passes over the data are bounded by
// the chunk, not by the dataset.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dataframe.hpp"
#include "element.hpp"
#include "matrix.hpp"

namespace orrery::io {

class RowChunkReader {
 public:
  virtual ~RowChunkReader() = default;
  virtual std::int64_t n_rows() const = 0;
  virtual std::int64_t n_cols() const = 0;
  virtual std::int64_t nnz() const = 0;
  // Rows [r0, r1) as CSR with indptr starting at 0.
  virtual CsrMatrix read_rows(std::int64_t r0, std::int64_t r1) = 0;
  // The same into `out`, reusing its buffers: a pass that reads chunk after chunk into the same
  // matrices allocates (and the kernel zero-fills) their pages once, not once per chunk.
  virtual void read_rows_into(std::int64_t r0, std::int64_t r1, CsrMatrix& out) {
    out = read_rows(r0, r1);
  }

  // Rows per chunk so that one chunk stays within `budget_bytes` (at least one row).
  std::int64_t rows_for_budget(std::size_t budget_bytes) const;

  // Seconds for_each_chunk's visitors have waited for this reader's chunks (the chunk being
  // read while the previous one is visited was not ready): a pass whose waits approach its
  // time is bound by reading and decoding, not by its work.
  double waited_seconds() const { return waited_seconds_; }
  void add_wait(double seconds) { waited_seconds_ += seconds; }

 private:
  double waited_seconds_ = 0;
};

// Which way a dense text table (.csv, .tsv, .txt) holds its matrix. Guess: from its names (cell
// barcodes, Ensembl gene ids) and else its shape (more rows than columns: genes in rows).
enum class TextLayout { Guess, CellsInRows, GenesInRows };

struct Store {
  std::string path;
  std::string format;  // "h5ad", "zarr", "10x-h5", "mtx", "text"
  DataFrame obs;       // index = cell barcodes / obs_names
  DataFrame var;       // index = gene names (unique), column "gene_ids" when known
  std::unique_ptr<RowChunkReader> X;
  std::string x_encoding;              // e.g. "csr_matrix", "array", "10x csc (genes x cells)"
  std::vector<std::string> obsm_keys;  // AnnData stores: keys present in obsm, obsp, layers, uns
  std::vector<std::string> obsp_keys;
  std::vector<std::string> layer_keys;
  std::vector<std::string> uns_keys;
  bool has_raw = false;  // raw/X present
  // Text tables: which way the rows went (CellsInRows or GenesInRows, never Guess).
  TextLayout text_layout = TextLayout::Guess;
  // AnnData stores: the tree, for reading layers, raw/X, obsm and obsp (null for other formats).
  std::shared_ptr<const Element> root;

  // X's shape, or obs/var's for a store opened without X or holding none (anndata allows it).
  std::int64_t n_obs() const {
    return X ? X->n_rows() : static_cast<std::int64_t>(obs.index.size());
  }
  std::int64_t n_vars() const {
    return X ? X->n_cols() : static_cast<std::int64_t>(var.index.size());
  }
};

struct OpenOptions {
  // Reports long preparatory work (e.g. "transposing CSC X", fraction).
  std::function<void(std::string_view, double)> progress;
  // Memory for one block when a CSC X is transposed to a temporary CSR store.
  std::size_t transpose_bytes = std::size_t{1} << 30;
  // False: AnnData stores are opened without X (Store::X stays null), e.g. to check obs/var.
  bool open_x = true;
  TextLayout text_layout = TextLayout::Guess;
};

Store open_store(const std::string& path, const OpenOptions& options = {});

// Visits rows in chunks of `step` in order, reading the next chunk on a second thread while
// `visit(chunk, first_row)` works on the current one. The two chunk matrices are reused from
// chunk to chunk (a visitor may modify or move from its chunk). Exceptions from either side
// propagate.
void for_each_chunk(RowChunkReader& reader, std::int64_t step,
                    const std::function<void(CsrMatrix&, std::int64_t)>& visit);

// What `orrery info` prints and the app's Store panel shows: format, X encoding, shape, nnz,
// the first names, obs/var columns with their types, obsm/obsp/layers/raw/uns keys. One
// "label   value" line each.
std::string describe_store(const Store& store, const std::string& path);

// anndata's var_names_make_unique: second and later duplicates of "X" become "X-1", "X-2", ...
void make_unique(std::vector<std::string>& names);

// Sorts each row's entries by column (stores may keep them in any order) and rejects duplicate
// columns within a row with an error naming `file` and `element` (the first such row). Rows are
// sorted in parallel: `m.indptr` must be monotone and within the entries.
void sort_rows(CsrMatrix& m, const std::string& file, const std::string& element);
// sort_rows with every entry checked as stored, in the same pass: its column in [0, n_cols)
// (else an error naming `indices_element` and the column) and its value finite (else
// `data_element`). The first offending entry in stored order is reported, a column before a
// value, either before a repeated column.
void check_and_sort_rows(CsrMatrix& m, std::int64_t n_cols, const std::string& file,
                         const std::string& indices_element, const std::string& data_element);

// Rows [r0, r1) of an n_cols-column CSR matrix whose row lengths are `row_nnz`: indptr set,
// indices and data sized for the entries to be filled in.
CsrMatrix csr_with_row_lengths(const std::vector<std::int64_t>& row_nnz, std::int64_t r0,
                               std::int64_t r1, std::int64_t n_cols);

// In-memory reader, used for formats that cannot be sliced on disk (Matrix Market) and tests.
std::unique_ptr<RowChunkReader> make_memory_reader(CsrMatrix matrix);

}  // namespace orrery::io
