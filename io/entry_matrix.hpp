// Genes x cells matrices that arrive as text, entry by entry (Matrix Market coordinates, dense
// text tables), turned into cell-major CSR: in memory within the conversion budget, else a
// temporary CSR store built in cell blocks. Text cannot be sliced, so a first pass (the
// format's own) counts each cell's entries and the passes here fill them in.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "store.hpp"

namespace orrery::io {

// Reads lines from a plain or gzip file (zlib reads both). Only regular files: they are read
// more than once, and a pipe or device would not read the same.
class LineReader {
 public:
  explicit LineReader(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its line end; false at the end of the file. Lines of any length.
  bool next(std::string& line);
  long line_no() const { return line_no_; }
  // How far through the file (its compressed bytes for a .gz) reading has got, 0 to 1.
  double fraction() const;

 private:
  std::string path_;
  gzFile file_ = nullptr;
  double size_ = 0;
  long line_no_ = 0;
};

// A matrix's stored entries (gene, cell, value), zero-based, read from the start of its file.
class EntryStream {
 public:
  virtual ~EntryStream() = default;
  // The next entry; false at the end.
  virtual bool next(std::int32_t& gene, std::int64_t& cell, float& value) = 0;
};
using EntryStreamFactory = std::function<std::unique_ptr<EntryStream>()>;

// What the first pass found: the shape, the entries of each cell (the CSR row lengths), and
// whether cells came in order (then one more pass streams them block by block).
struct EntryCounts {
  std::int64_t n_genes = 0, n_cells = 0, nnz = 0;
  std::vector<std::int64_t> row_nnz;
  bool sorted = true;
};

// The cells x genes CSR matrix of the entries `open()` streams, which must be those `counts`
// counted: in memory when 8 bytes an entry fit options.transpose_bytes, else a temporary CSR
// store (one more pass when cells come in order; otherwise one pass dealing the entries to a
// temporary file per cell block). Rows sorted by gene; a gene twice in a cell is an error.
// `what` names the format in progress messages; the way taken is appended to *encoding.
std::unique_ptr<RowChunkReader> cells_from_entries(const std::string& file, const std::string& what,
                                                   const EntryCounts& counts,
                                                   const EntryStreamFactory& open,
                                                   const OpenOptions& options,
                                                   std::string* encoding = nullptr);

}  // namespace orrery::io
