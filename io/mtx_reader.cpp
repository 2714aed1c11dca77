#include "mtx_reader.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <unordered_set>

#include "error.hpp"

namespace fs = std::filesystem;

namespace orrery::io {
namespace {

// Reads lines from a plain or gzip file (zlib reads both transparently).
class LineReader {
 public:
  explicit LineReader(const std::string& path) : path_(path) {
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

}  // namespace

CsrMatrix read_mtx_transposed(const std::string& file) {
  LineReader reader(file);
  std::string line;
  if (!reader.next(line) || line.rfind("%%MatrixMarket", 0) != 0)
    throw Error(file, "header", "not a Matrix Market file (missing %%MatrixMarket banner)");
  if (line.find("coordinate") == std::string::npos)
    throw Error(file, "header", "only coordinate Matrix Market files are supported");
  const bool pattern = line.find("pattern") != std::string::npos;
  const bool symmetric = line.find("symmetric") != std::string::npos;
  if (symmetric) throw Error(file, "header", "symmetric matrices are not count matrices");
  do {
    if (!reader.next(line)) throw Error(file, "header", "missing size line");
  } while (!line.empty() && line[0] == '%');

  long long n_genes = 0, n_cells = 0, nnz = 0;
  if (std::sscanf(line.c_str(), "%lld %lld %lld", &n_genes, &n_cells, &nnz) != 3 || n_genes < 0 ||
      n_cells < 0 || nnz < 0)
    throw Error(file, "size line", "expected 'rows cols nnz', got '" + line + "'");
  if (n_genes > INT32_MAX) throw Error(file, "size line", "more than 2^31 genes");
  // Entries are bounded by the file itself; never trust the declared count for allocation
  // beyond what the text can hold.
  if (nnz > n_genes * n_cells) throw Error(file, "size line", "nnz exceeds rows*cols");

  std::vector<std::int32_t> gene;
  std::vector<std::int64_t> cell;
  std::vector<float> value;
  const std::size_t reserve = static_cast<std::size_t>(std::min<long long>(nnz, 1LL << 26));
  gene.reserve(reserve);
  cell.reserve(reserve);
  value.reserve(reserve);
  while (reader.next(line)) {
    if (line.empty() || line[0] == '%') continue;
    const char* p = line.c_str();
    char* end = nullptr;
    long long g = std::strtoll(p, &end, 10);
    if (end == p) throw Error(file, "line " + std::to_string(reader.line_no()), "bad entry");
    p = end;
    long long c = std::strtoll(p, &end, 10);
    if (end == p) throw Error(file, "line " + std::to_string(reader.line_no()), "bad entry");
    p = end;
    double v = 1.0;
    if (!pattern) {
      v = std::strtod(p, &end);
      if (end == p) throw Error(file, "line " + std::to_string(reader.line_no()), "missing value");
    }
    if (g < 1 || g > n_genes || c < 1 || c > n_cells)
      throw Error(file, "line " + std::to_string(reader.line_no()),
                  "index out of range (" + std::to_string(g) + ", " + std::to_string(c) + ")");
    if (!std::isfinite(v))
      throw Error(file, "line " + std::to_string(reader.line_no()), "value is NaN or Inf");
    if (static_cast<long long>(gene.size()) >= nnz)
      throw Error(file, "entries", "more entries than the declared nnz " + std::to_string(nnz));
    gene.push_back(static_cast<std::int32_t>(g - 1));
    cell.push_back(c - 1);
    value.push_back(static_cast<float>(v));
  }
  if (static_cast<long long>(gene.size()) != nnz)
    throw Error(file, "entries",
                "declared nnz " + std::to_string(nnz) + " but found " +
                    std::to_string(gene.size()) + " (truncated file?)");

  CsrMatrix m;
  m.n_rows = n_cells;
  m.n_cols = n_genes;
  m.indptr.assign(n_cells + 1, 0);
  for (auto c : cell) ++m.indptr[c + 1];
  for (long long i = 0; i < n_cells; ++i) m.indptr[i + 1] += m.indptr[i];
  m.indices.resize(nnz);
  m.data.resize(nnz);
  std::vector<std::int64_t> fill(m.indptr.begin(), m.indptr.end() - 1);
  for (std::size_t k = 0; k < gene.size(); ++k) {
    auto pos = fill[cell[k]]++;
    m.indices[pos] = gene[k];
    m.data[pos] = value[k];
  }
  // 10x writes genes in decreasing order within a cell.
  sort_rows(m, file, "entries");
  return m;
}

bool is_mtx_store(const std::string& path) {
  fs::path p(path);
  if (fs::is_directory(p)) return !find_file(p, {"matrix.mtx"}).empty();
  auto name = p.filename().string();
  return name.ends_with(".mtx") || name.ends_with(".mtx.gz");
}

Store open_mtx(const std::string& path) {
  fs::path p(path);
  fs::path dir = fs::is_directory(p) ? p : p.parent_path();
  std::string matrix = fs::is_directory(p) ? find_file(dir, {"matrix.mtx"}) : p.string();
  if (matrix.empty()) throw Error(path, "", "no matrix.mtx[.gz] in this folder");
  std::string genes = find_file(dir, {"features.tsv", "genes.tsv"});
  std::string barcodes = find_file(dir, {"barcodes.tsv"});

  Store store;
  store.path = path;
  store.format = "mtx";
  store.x_encoding = "Matrix Market coordinate (genes x cells), parsed into CSR in memory";
  CsrMatrix x = read_mtx_transposed(matrix);

  std::vector<std::string> ids, symbols;
  if (!genes.empty()) {
    auto rows = read_tsv(genes);
    if (static_cast<std::int64_t>(rows.size()) != x.n_cols)
      throw Error(genes, "",
                  std::to_string(rows.size()) + " genes but the matrix has " +
                      std::to_string(x.n_cols) + " rows");
    for (auto& r : rows) {
      ids.push_back(r[0]);
      symbols.push_back(r.size() > 1 ? r[1] : r[0]);
    }
  } else {
    for (std::int64_t g = 0; g < x.n_cols; ++g) symbols.push_back("gene" + std::to_string(g));
    ids = symbols;
  }
  if (!barcodes.empty()) {
    auto rows = read_tsv(barcodes);
    if (static_cast<std::int64_t>(rows.size()) != x.n_rows)
      throw Error(barcodes, "",
                  std::to_string(rows.size()) + " barcodes but the matrix has " +
                      std::to_string(x.n_rows) + " columns");
    for (auto& r : rows) store.obs.index.push_back(r[0]);
  } else {
    for (std::int64_t c = 0; c < x.n_rows; ++c)
      store.obs.index.push_back("cell" + std::to_string(c));
  }
  make_unique(symbols);
  store.var.index = std::move(symbols);
  store.var.columns.push_back({"gene_ids", std::move(ids)});
  store.X = make_memory_reader(std::move(x));
  return store;
}

}  // namespace orrery::io
