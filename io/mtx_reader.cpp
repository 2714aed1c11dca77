#include "mtx_reader.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <unordered_set>

#include "anndata_reader.hpp"
#include "error.hpp"
#include "utf8.hpp"

namespace fs = std::filesystem;

namespace orrery::io {
namespace {

// Reads lines from a plain or gzip file (zlib reads both transparently).
class LineReader {
 public:
  explicit LineReader(const std::string& path) : path_(path) {
    // Read more than once (counted, then converted): a pipe or device would not read the same.
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) throw Error(path, "", "not a regular file");
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) throw Error(path, "", "cannot open file");
    gzbuffer(file_, 1 << 20);
  }
  ~LineReader() {
    if (file_) gzclose(file_);
  }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Returns false at end of file. Handles lines longer than the buffer.
  bool next(std::string& line) {
    line.clear();
    char buf[8192];
    while (true) {
      if (!gzgets(file_, buf, sizeof buf)) {
        int err = 0;
        const char* msg = gzerror(file_, &err);
        if (err != Z_OK && err != Z_STREAM_END)
          throw Error(path_, "line " + std::to_string(line_no_ + 1),
                      std::string("read failed (truncated or corrupt?): ") + msg);
        if (line.empty()) return false;
        break;
      }
      line += buf;
      if (!line.empty() && line.back() == '\n') break;
    }
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    ++line_no_;
    return true;
  }
  long line_no() const { return line_no_; }

 private:
  std::string path_;
  gzFile file_ = nullptr;
  long line_no_ = 0;
};

std::string find_file(const fs::path& dir, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (fs::exists(dir / n)) return (dir / n).string();
    if (fs::exists(dir / (std::string(n) + ".gz")))
      return (dir / (std::string(n) + ".gz")).string();
  }
  return {};
}

std::vector<std::vector<std::string>> read_tsv(const std::string& path) {
  LineReader reader(path);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (reader.next(line)) {
    if (!valid_utf8(line))
      throw Error(path, "line " + std::to_string(reader.line_no()),
                  "not UTF-8 text; re-encode the names as UTF-8");
    std::vector<std::string> fields;
    std::size_t start = 0;
    while (true) {
      std::size_t tab = line.find('\t', start);
      fields.push_back(
          line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    rows.push_back(std::move(fields));
  }
  return rows;
}

// A Matrix Market coordinate file as a stream of entries (gene, cell, value), zero-based,
// validated as they are read; the header is read and checked on construction.
class EntryReader {
 public:
  explicit EntryReader(const std::string& file) : file_(file), lines_(file) {
    std::string line;
    if (!lines_.next(line) || line.rfind("%%MatrixMarket", 0) != 0)
      throw Error(file, "header", "not a Matrix Market file (missing %%MatrixMarket banner)");
    if (line.find("coordinate") == std::string::npos)
      throw Error(file, "header", "only coordinate Matrix Market files are supported");
    pattern_ = line.find("pattern") != std::string::npos;
    if (line.find("symmetric") != std::string::npos)
      throw Error(file, "header", "symmetric matrices are not count matrices");
    do {
      if (!lines_.next(line)) throw Error(file, "header", "missing size line");
    } while (!line.empty() && line[0] == '%');
    if (std::sscanf(line.c_str(), "%lld %lld %lld", &n_genes_, &n_cells_, &nnz_) != 3 ||
        n_genes_ < 0 || n_cells_ < 0 || nnz_ < 0)
      throw Error(file, "size line", "expected 'rows cols nnz', got '" + line + "'");
    if (n_genes_ > INT32_MAX) throw Error(file, "size line", "more than 2^31 genes");
    if (n_cells_ > (std::int64_t{1} << 40))
      throw Error(file, "size line", "absurd number of columns " + std::to_string(n_cells_));
    // Entries are bounded by the file itself (each is read before it is kept), but the count
    // must at least fit the shape; checked without overflowing rows * cols.
    if (n_genes_ == 0 || n_cells_ == 0 ? nnz_ > 0 : nnz_ / n_genes_ > n_cells_)
      throw Error(file, "size line", "nnz exceeds rows*cols");
  }

  std::int64_t n_genes() const { return n_genes_; }
  std::int64_t n_cells() const { return n_cells_; }
  std::int64_t nnz() const { return nnz_; }

  // The next entry, or false at the end (after checking that nnz entries were found).
  bool next(std::int32_t& gene, std::int64_t& cell, float& value) {
    while (lines_.next(line_)) {
      if (line_.empty() || line_[0] == '%') continue;
      const char* p = line_.c_str();
      char* end = nullptr;
      const long long g = std::strtoll(p, &end, 10);
      if (end == p) fail("bad entry");
      p = end;
      const long long c = std::strtoll(p, &end, 10);
      if (end == p) fail("bad entry");
      p = end;
      double v = 1.0;
      if (!pattern_) {
        v = std::strtod(p, &end);
        if (end == p) fail("missing value");
      }
      if (g < 1 || g > n_genes_ || c < 1 || c > n_cells_)
        fail("index out of range (" + std::to_string(g) + ", " + std::to_string(c) + ")");
      if (!std::isfinite(v)) fail("value is NaN or Inf");
      if (seen_ >= nnz_)
        throw Error(file_, "entries", "more entries than the declared nnz " + std::to_string(nnz_));
      ++seen_;
      gene = static_cast<std::int32_t>(g - 1);
      cell = c - 1;
      value = static_cast<float>(v);
      return true;
    }
    if (seen_ != nnz_)
      throw Error(file_, "entries",
                  "declared nnz " + std::to_string(nnz_) + " but found " + std::to_string(seen_) +
                      " (truncated file?)");
    return false;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(file_, "line " + std::to_string(lines_.line_no()), what);
  }

  std::string file_;
  LineReader lines_;
  std::string line_;
  bool pattern_ = false;
  long long n_genes_ = 0, n_cells_ = 0, nnz_ = 0;
  std::int64_t seen_ = 0;
};

// Fills cells [c0, c1) of `m` (sized by csr_with_row_lengths) with their entries, taken from
// `next` until it returns false (entries of other cells are skipped); rows sorted by gene,
// duplicates refused.
void fill_cells(CsrMatrix& m, std::int64_t c0, std::int64_t c1, const std::string& file,
                const std::function<bool(std::int32_t&, std::int64_t&, float&)>& next) {
  std::vector<std::int64_t> fill(m.indptr.begin(), m.indptr.end() - 1);
  std::int32_t gene = 0;
  std::int64_t cell = 0;
  float value = 0;
  // The row lengths come from an earlier pass over the file: a file that reads differently now
  // (rewritten meanwhile) must not write past a row.
  auto changed = [&] {
    return Error(file, "entries",
                 "the file changed while it was read (entries per cell differ "
                 "between passes)");
  };
  while (next(gene, cell, value)) {
    if (cell < c0 || cell >= c1) continue;
    auto& at = fill[cell - c0];
    if (at == m.indptr[cell - c0 + 1]) throw changed();
    m.indices[at] = gene;
    m.data[at] = value;
    ++at;
  }
  for (std::int64_t r = 0; r < m.n_rows; ++r)
    if (fill[r] != m.indptr[r + 1]) throw changed();
  // 10x writes genes in decreasing order within a cell.
  sort_rows(m, file, "entries");
}

// The checks every caller makes before allocating anything by the declared shape.
void check_shape(const EntryReader& r, const std::string& file, std::int64_t genes_listed,
                 std::int64_t cells_listed) {
  // Without names files the declared shape is all there is: bounded so that a few bytes of
  // header cannot ask for more than ~250 MB of per-cell counts and generated names.
  constexpr std::int64_t kMaxUnlisted = std::int64_t{1} << 22;
  if (cells_listed >= 0 && r.n_cells() != cells_listed)
    throw Error(file, "size line",
                std::to_string(r.n_cells()) + " columns (cells) but the barcodes file lists " +
                    std::to_string(cells_listed));
  if (genes_listed >= 0 && r.n_genes() != genes_listed)
    throw Error(file, "size line",
                std::to_string(r.n_genes()) + " rows (genes) but the features file lists " +
                    std::to_string(genes_listed));
  if ((cells_listed < 0 && r.n_cells() > kMaxUnlisted) ||
      (genes_listed < 0 && r.n_genes() > kMaxUnlisted))
    throw Error(file, "size line",
                "declares " + std::to_string(r.n_genes()) + " x " + std::to_string(r.n_cells()) +
                    " without barcodes / features files naming them; more than " +
                    std::to_string(kMaxUnlisted) + " need those files");
}

// Pass 1 over a file: its shape, the entries per cell (the CSR row lengths), and whether cells
// come in order (Cell Ranger writes them so) so that one more pass can stream them in blocks.
struct EntryCounts {
  std::int64_t n_genes = 0, n_cells = 0, nnz = 0;
  std::vector<std::int64_t> row_nnz;
  bool sorted = true;
};

EntryCounts count_entries(const std::string& file, std::int64_t genes_listed,
                          std::int64_t cells_listed,
                          const std::function<void(std::string_view, double)>& progress) {
  EntryReader counts(file);
  check_shape(counts, file, genes_listed, cells_listed);
  EntryCounts out;
  out.n_genes = counts.n_genes();
  out.n_cells = counts.n_cells();
  out.nnz = counts.nnz();
  out.row_nnz.assign(static_cast<std::size_t>(out.n_cells), 0);
  std::int32_t gene = 0;
  std::int64_t cell = 0, last = 0, seen = 0;
  float value = 0;
  while (counts.next(gene, cell, value)) {
    ++out.row_nnz[cell];
    out.sorted = out.sorted && cell >= last;
    last = cell;
    // Progress (and, through it, Cancel) for the minutes a large .gz takes to count.
    if (++seen % (1 << 20) == 0 && progress)
      progress("counting Matrix Market entries",
               static_cast<double>(seen) / static_cast<double>(out.nnz));
  }
  return out;
}

// Pass 2 when the whole matrix fits in memory.
CsrMatrix whole_matrix(const std::string& file, const EntryCounts& counts) {
  EntryReader entries(file);
  CsrMatrix m = csr_with_row_lengths(counts.row_nnz, 0, counts.n_cells, counts.n_genes);
  fill_cells(m, 0, counts.n_cells, file,
             [&](auto& g, auto& c, auto& v) { return entries.next(g, c, v); });
  return m;
}

// An unsorted file larger than the budget: one pass deals each entry into the bucket of its
// block (an anonymous temporary file of (gene, cell - block start, value) records), and each
// block is then filled from its bucket: one parse of the text instead of one per block.
class Buckets {
 public:
  struct Record {
    std::int32_t gene;
    std::int32_t cell;  // from the block's first cell
    float value;
  };

  Buckets(const std::string& file, std::vector<std::int64_t> starts)
      : file_(file), starts_(std::move(starts)) {
    const std::size_t n = starts_.size() - 1;
    const std::size_t buffer = n <= 64 ? (1u << 20) : (1u << 16);
    for (std::size_t b = 0; b < n; ++b) {
      std::FILE* f = std::tmpfile();
      if (!f) throw Error(file_, "", "cannot create a temporary file to sort the entries by cell");
      buckets_.push_back(f);
      std::setvbuf(f, nullptr, _IOFBF, buffer);
    }
  }
  ~Buckets() {
    for (std::FILE* f : buckets_)
      if (f) std::fclose(f);
  }
  Buckets(const Buckets&) = delete;
  Buckets& operator=(const Buckets&) = delete;

  // Every cell block fits a record's 32-bit offset, and there are few enough blocks to hold a
  // file open for each (a budget of a few bytes makes a block per cell: passes per block then).
  static bool fit(const std::vector<std::int64_t>& starts) {
    if (starts.size() > 513) return false;
    for (std::size_t b = 0; b + 1 < starts.size(); ++b)
      if (starts[b + 1] - starts[b] > std::numeric_limits<std::int32_t>::max()) return false;
    return true;
  }

  void deal(std::int64_t nnz, const std::function<void(std::string_view, double)>& progress) {
    EntryReader entries(file_);
    std::int32_t gene = 0;
    std::int64_t cell = 0, seen = 0;
    float value = 0;
    while (entries.next(gene, cell, value)) {
      const auto b = static_cast<std::size_t>(
          std::upper_bound(starts_.begin(), starts_.end(), cell) - starts_.begin() - 1);
      const Record r{gene, static_cast<std::int32_t>(cell - starts_[b]), value};
      if (std::fwrite(&r, sizeof r, 1, buckets_[b]) != 1) throw write_failed();
      if (++seen % (1 << 20) == 0 && progress)
        progress("sorting Matrix Market entries by cell",
                 static_cast<double>(seen) / static_cast<double>(nnz));
    }
    for (std::FILE* f : buckets_)
      if (std::fflush(f) != 0) throw write_failed();
  }

  // Cells [starts[b], starts[b + 1]) of `block` from bucket b.
  void fill(std::int64_t c0, std::int64_t c1, CsrMatrix& block) {
    const auto b = static_cast<std::size_t>(std::lower_bound(starts_.begin(), starts_.end(), c0) -
                                            starts_.begin());
    if (b + 1 >= starts_.size() || starts_[b] != c0 || starts_[b + 1] != c1)
      throw Error(file_, "",
                  "internal: cell block " + std::to_string(c0) + ".." + std::to_string(c1) +
                      " is not a bucket");
    std::FILE* f = buckets_[b];
    if (!f) throw Error(file_, "", "internal: cell block " + std::to_string(c0) + " read twice");
    std::rewind(f);
    std::vector<Record> chunk(1 << 16);
    std::size_t have = 0, at = 0;
    fill_cells(block, c0, c1, file_, [&](auto& g, auto& c, auto& v) {
      if (at == have) {
        have = std::fread(chunk.data(), sizeof(Record), chunk.size(), f);
        at = 0;
        if (have == 0) {
          if (std::ferror(f)) throw Error(file_, "", "cannot read back a temporary file");
          return false;
        }
      }
      const Record& r = chunk[at++];
      g = r.gene;
      c = c0 + r.cell;
      v = r.value;
      return true;
    });
    // The bucket is done with: give its disk space back.
    std::fclose(f);
    buckets_[b] = nullptr;
  }

 private:
  Error write_failed() const {
    return Error(file_, "",
                 "cannot write a temporary file while sorting the entries by cell "
                 "(disk full?)");
  }
  std::string file_;
  std::vector<std::int64_t> starts_;
  std::vector<std::FILE*> buckets_;
};

}  // namespace

CsrMatrix read_mtx_transposed(const std::string& file) {
  return whole_matrix(file, count_entries(file, -1, -1, nullptr));
}

std::unique_ptr<RowChunkReader> open_mtx_matrix(const std::string& file, std::int64_t genes_listed,
                                                std::int64_t cells_listed,
                                                const OpenOptions& options, std::string* encoding) {
  auto report = [&](double f) {
    if (options.progress) options.progress("reading Matrix Market into a temporary CSR store", f);
  };
  const EntryCounts counts = count_entries(file, genes_listed, cells_listed, options.progress);
  if (static_cast<std::size_t>(counts.nnz) * 8 <=
      std::max<std::size_t>(options.transpose_bytes, 8)) {
    if (encoding) *encoding = "Matrix Market coordinate (genes x cells), parsed into CSR in memory";
    return make_memory_reader(whole_matrix(file, counts));
  }
  if (encoding) *encoding = "Matrix Market coordinate (genes x cells), via a temporary CSR store";
  // Larger than the budget: cell blocks written to a temporary CSR store; sorted files take one
  // more pass, unsorted ones one more pass into per-block buckets.
  std::unique_ptr<Buckets> buckets;
  if (!counts.sorted) {
    std::vector<std::int64_t> starts = row_blocks(counts.row_nnz, options.transpose_bytes);
    if (Buckets::fit(starts)) {
      buckets = std::make_unique<Buckets>(file, std::move(starts));
      buckets->deal(counts.nnz, options.progress);
      if (encoding) *encoding += " (unsorted: entries dealt to cell blocks in one pass)";
    }
  }
  std::unique_ptr<EntryReader> stream;
  bool pending = false;  // a sorted stream's entry read past the previous block's end
  std::int32_t p_gene = 0;
  std::int64_t p_cell = 0;
  float p_value = 0;
  return temporary_csr_store(
      counts.row_nnz, counts.n_genes, options.transpose_bytes, file,
      [&](std::int64_t c0, std::int64_t c1, CsrMatrix& block) {
        if (buckets) {
          buckets->fill(c0, c1, block);
          return;
        }
        if (!counts.sorted) {  // a block of more than 2^31 cells: a pass of its own
          EntryReader entries(file);
          fill_cells(block, c0, c1, file,
                     [&](auto& g, auto& c, auto& v) { return entries.next(g, c, v); });
          return;
        }
        if (!stream) stream = std::make_unique<EntryReader>(file);
        fill_cells(block, c0, c1, file, [&](auto& g, auto& c, auto& v) {
          if (!pending && !stream->next(p_gene, p_cell, p_value)) return false;
          pending = p_cell >= c1;  // the next block's first entry: kept for it
          if (pending) return false;
          g = p_gene;
          c = p_cell;
          v = p_value;
          return true;
        });
      },
      report);
}

bool is_mtx_store(const std::string& path) {
  fs::path p(path);
  if (fs::is_directory(p)) return !find_file(p, {"matrix.mtx"}).empty();
  auto name = p.filename().string();
  return name.ends_with(".mtx") || name.ends_with(".mtx.gz");
}

Store open_mtx(const std::string& path, const OpenOptions& options) {
  fs::path p(path);
  fs::path dir = fs::is_directory(p) ? p : p.parent_path();
  std::string matrix = fs::is_directory(p) ? find_file(dir, {"matrix.mtx"}) : p.string();
  if (matrix.empty()) throw Error(path, "", "no matrix.mtx[.gz] in this folder");
  std::string genes = find_file(dir, {"features.tsv", "genes.tsv"});
  std::string barcodes = find_file(dir, {"barcodes.tsv"});

  Store store;
  store.path = path;
  store.format = "mtx";
  std::vector<std::string> ids, symbols;
  if (!genes.empty())
    for (auto& r : read_tsv(genes)) {
      ids.push_back(r[0]);
      symbols.push_back(r.size() > 1 ? r[1] : r[0]);
    }
  if (!barcodes.empty())
    for (auto& r : read_tsv(barcodes)) store.obs.index.push_back(r[0]);
  store.X =
      open_mtx_matrix(matrix, genes.empty() ? -1 : static_cast<std::int64_t>(symbols.size()),
                      barcodes.empty() ? -1 : static_cast<std::int64_t>(store.obs.index.size()),
                      options, &store.x_encoding);
  if (genes.empty()) {
    for (std::int64_t g = 0; g < store.X->n_cols(); ++g)
      symbols.push_back("gene" + std::to_string(g));
    ids = symbols;
  }
  if (barcodes.empty())
    for (std::int64_t c = 0; c < store.X->n_rows(); ++c)
      store.obs.index.push_back("cell" + std::to_string(c));
  make_unique(symbols);
  store.var.index = std::move(symbols);
  store.var.columns.push_back({"gene_ids", std::move(ids)});
  return store;
}

}  // namespace orrery::io
