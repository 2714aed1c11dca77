#include "mtx_reader.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <unordered_set>

#include "entry_matrix.hpp"
#include "error.hpp"
#include "utf8.hpp"

namespace fs = std::filesystem;

namespace orrery::io {
namespace {

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
class EntryReader final : public EntryStream {
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
  bool next(std::int32_t& gene, std::int64_t& cell, float& value) override {
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
      if (std::fabs(v) > std::numeric_limits<float>::max())
        fail("value is beyond single precision (the matrix's floats)");
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

// Pass 1 over a file: its shape, the entries per cell and whether cells come in order.
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

}  // namespace

CsrMatrix read_mtx_transposed(const std::string& file) {
  OpenOptions in_memory;
  in_memory.transpose_bytes = std::numeric_limits<std::size_t>::max();
  const std::unique_ptr<RowChunkReader> m = open_mtx_matrix(file, -1, -1, in_memory);
  return m->read_rows(0, m->n_rows());
}

std::unique_ptr<RowChunkReader> open_mtx_matrix(const std::string& file, std::int64_t genes_listed,
                                                std::int64_t cells_listed,
                                                const OpenOptions& options, std::string* encoding) {
  const EntryCounts counts = count_entries(file, genes_listed, cells_listed, options.progress);
  if (encoding) *encoding = "Matrix Market coordinate (genes x cells)";
  return cells_from_entries(
      file, "Matrix Market", counts, [&] { return std::make_unique<EntryReader>(file); }, options,
      encoding);
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
