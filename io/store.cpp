#include "store.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include "anndata_reader.hpp"
#include "error.hpp"
#include "mtx_reader.hpp"
#include "text_reader.hpp"

namespace orrery::io {

std::int64_t RowChunkReader::rows_for_budget(std::size_t budget_bytes) const {
  const std::int64_t rows = n_rows();
  if (rows == 0) return 1;
  // Bytes per row: 8 (indptr) + 8 per stored value (index + float), with the chunk decoded
  // twice in flight at most (file buffer and result).
  const double per_row = 8.0 + 16.0 * static_cast<double>(nnz()) / static_cast<double>(rows);
  auto r = static_cast<std::int64_t>(static_cast<double>(budget_bytes) / per_row);
  return std::clamp<std::int64_t>(r, 1, rows);
}

void for_each_chunk(RowChunkReader& reader, std::int64_t step,
                    const std::function<void(CsrMatrix&, std::int64_t)>& visit) {
  const std::int64_t n = reader.n_rows();
  step = std::max<std::int64_t>(1, step);
  if (n == 0) return;
  CsrMatrix buffers[2];  // declared before `next`, so they outlive a read in flight
  auto read = [&reader, &buffers, n, step](std::int64_t r0, int slot) {
    reader.read_rows_into(r0, std::min(n, r0 + step), buffers[slot]);
  };
  std::future<void> next = std::async(std::launch::async, read, 0, 0);
  for (std::int64_t r0 = 0, i = 0; r0 < n; r0 += step, ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    next.get();
    reader.add_wait(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    const int slot = static_cast<int>(i % 2);
    if (r0 + step < n) next = std::async(std::launch::async, read, r0 + step, 1 - slot);
    visit(buffers[slot], r0);  // on throw, `next`'s destructor waits for the read in flight
  }
}

void make_unique(std::vector<std::string>& names) {
  std::unordered_set<std::string> seen_once;
  std::vector<bool> dup(names.size(), false);
  bool any = false;
  for (std::size_t i = 0; i < names.size(); ++i)
    if (!seen_once.insert(names[i]).second) dup[i] = any = true;
  if (!any) return;
  std::unordered_set<std::string> all(names.begin(), names.end());
  std::unordered_map<std::string, int> counter;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!dup[i]) continue;
    while (true) {
      std::string candidate = names[i] + "-" + std::to_string(++counter[names[i]]);
      if (all.insert(candidate).second) {
        names[i] = candidate;
        break;
      }
    }
  }
}

CsrMatrix csr_with_row_lengths(const std::vector<std::int64_t>& row_nnz, std::int64_t r0,
                               std::int64_t r1, std::int64_t n_cols) {
  CsrMatrix m;
  m.n_rows = r1 - r0;
  m.n_cols = n_cols;
  m.indptr.assign(static_cast<std::size_t>(m.n_rows + 1), 0);
  for (std::int64_t r = r0; r < r1; ++r) m.indptr[r - r0 + 1] = m.indptr[r - r0] + row_nnz[r];
  m.indices.resize(static_cast<std::size_t>(m.indptr.back()));
  m.data.resize(static_cast<std::size_t>(m.indptr.back()));
  return m;
}

namespace {

// The lowest of the values offered to `first` (what a serial pass would find first).
void offer_lowest(std::atomic<std::int64_t>& first, std::int64_t v) {
  std::int64_t seen = first.load();
  while (v < seen && !first.compare_exchange_weak(seen, v)) {
  }
}

// Whether every column index lies in [0, n_cols) and every value is finite.
bool row_entries_valid(const GeneIndex* indices, const float* data, std::int64_t n,
                       std::int64_t n_cols) {
  // 32-bit lanes: a negative index reads as an unsigned one of at least 2^31, past any limit.
  const auto limit = static_cast<std::uint32_t>(std::min<std::int64_t>(n_cols, 1LL << 31));
  std::uint32_t bad = 0;
  for (std::int64_t k = 0; k < n; ++k) {
    // A float is Inf or NaN when its exponent bits are all set.
    const auto column = static_cast<std::uint32_t>(indices[k]);
    const auto bits = std::bit_cast<std::uint32_t>(data[k]);
    bad |= (column >= limit ? 1u : 0u) | ((bits & 0x7f800000u) == 0x7f800000u ? 1u : 0u);
  }
  return bad == 0;
}

// Whether the column indices rise strictly.
bool row_ascending(const GeneIndex* indices, std::int64_t n) {
  std::uint32_t unsorted = 0;
  for (std::int64_t k = 1; k < n; ++k) unsorted |= indices[k - 1] < indices[k] ? 0u : 1u;
  return unsorted == 0;
}

// sort_rows, checking each entry as stored first where n_cols >= 0 (check_and_sort_rows).
void sort_rows(CsrMatrix& m, const std::string& file, const std::string& element,
               std::int64_t n_cols, const std::string& data_element) {
  // Rows in parallel; the first offending entry and the first row with a repeated column (as a
  // serial pass would find them) are reported once all are done. A row holding an offending
  // entry is left unsorted, so the entry is reported as stored.
  const std::int64_t nnz = m.nnz();
  std::atomic<std::int64_t> repeated{m.n_rows}, bad_column{nnz}, bad_value{nnz};
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, m.n_rows, 256),
                    [&](const tbb::blocked_range<std::int64_t>& rows) {
                      std::vector<std::pair<GeneIndex, float>> row;
                      for (std::int64_t r = rows.begin(); r < rows.end(); ++r) {
                        const auto b = m.indptr[r], e = m.indptr[r + 1];
                        // One branch-free sweep over the row (it vectorizes); the entries are
                        // looked at one by one only in a row that fails it.
                        if (n_cols >= 0 && !row_entries_valid(m.indices.data() + b,
                                                              m.data.data() + b, e - b, n_cols)) {
                          for (auto k = b; k < e; ++k) {
                            if (m.indices[k] < 0 || m.indices[k] >= n_cols)
                              offer_lowest(bad_column, k);
                            if (!std::isfinite(m.data[k])) offer_lowest(bad_value, k);
                          }
                          continue;
                        }
                        if (row_ascending(m.indices.data() + b, e - b)) continue;
                        row.clear();
                        for (auto k = b; k < e; ++k) row.emplace_back(m.indices[k], m.data[k]);
                        std::sort(row.begin(), row.end());
                        bool twice = false;
                        for (std::size_t k = 0; k < row.size(); ++k) {
                          twice = twice || (k > 0 && row[k].first == row[k - 1].first);
                          m.indices[b + k] = row[k].first;
                          m.data[b + k] = row[k].second;
                        }
                        if (twice) offer_lowest(repeated, r);
                      }
                    });
  if (const std::int64_t k = bad_column.load(); k < nnz)
    throw Error(file, element, "column index " + std::to_string(m.indices[k]) + " out of range");
  if (bad_value.load() < nnz) throw Error(file, data_element, "NaN or Inf value");
  const std::int64_t r = repeated.load();
  if (r == m.n_rows) return;
  for (auto k = m.indptr[r] + 1; k < m.indptr[r + 1]; ++k)
    if (m.indices[k] == m.indices[k - 1])
      throw Error(file, element,
                  "duplicate entry for column " + std::to_string(m.indices[k]) + " in row " +
                      std::to_string(r));
}

}  // namespace

void sort_rows(CsrMatrix& m, const std::string& file, const std::string& element) {
  sort_rows(m, file, element, -1, element);
}

void check_and_sort_rows(CsrMatrix& m, std::int64_t n_cols, const std::string& file,
                         const std::string& indices_element, const std::string& data_element) {
  sort_rows(m, file, indices_element, n_cols, data_element);
}

namespace {

class MemoryReader final : public RowChunkReader {
 public:
  explicit MemoryReader(CsrMatrix m) : m_(std::move(m)) {}
  std::int64_t n_rows() const override { return m_.n_rows; }
  std::int64_t n_cols() const override { return m_.n_cols; }
  std::int64_t nnz() const override { return m_.nnz(); }
  CsrMatrix read_rows(std::int64_t r0, std::int64_t r1) override {
    if (r0 < 0 || r1 > m_.n_rows || r0 > r1) throw Error("rows out of range");
    CsrMatrix out;
    out.n_rows = r1 - r0;
    out.n_cols = m_.n_cols;
    const auto b = m_.indptr[r0], e = m_.indptr[r1];
    out.indptr.resize(out.n_rows + 1);
    for (std::int64_t r = 0; r <= out.n_rows; ++r) out.indptr[r] = m_.indptr[r0 + r] - b;
    out.indices.assign(m_.indices.begin() + b, m_.indices.begin() + e);
    out.data.assign(m_.data.begin() + b, m_.data.begin() + e);
    return out;
  }

 private:
  CsrMatrix m_;
};

bool has_hdf5_signature(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char sig[8] = {};
  in.read(sig, 8);
  return in.gcount() == 8 && std::string(sig, 8) == "\x89HDF\r\n\x1a\n";
}

}  // namespace

std::unique_ptr<RowChunkReader> make_memory_reader(CsrMatrix matrix) {
  return std::make_unique<MemoryReader>(std::move(matrix));
}

Store open_store(const std::string& path, const OpenOptions& options) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw Error(path, "", "no such file or folder");
  if (is_mtx_store(path)) return open_mtx(path, options);
  if (is_text_matrix(path)) return open_text_matrix(path, options);
  if (fs::is_regular_file(path) && has_hdf5_signature(path)) return open_h5ad(path, options);
  if (fs::is_directory(path) &&
      (fs::exists(fs::path(path) / ".zgroup") || fs::exists(fs::path(path) / "zarr.json")))
    return open_zarr(path, options);
  throw Error(path, "",
              "unrecognised store (expected .h5ad, .zarr, 10x .h5, a Matrix Market folder or a "
              ".csv/.tsv/.txt table)");
}

namespace {

std::string column_type(const Column& c) {
  if (c.nullable == "nullable-boolean") return "bool (nullable)";
  if (c.nullable == "nullable-integer") return "int (nullable)";
  const ColumnValues& v = c.values;
  return std::visit(
      [](const auto& x) -> std::string {
        using V = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<V, Categorical>)
          return "categorical (" + std::to_string(x.categories.size()) + " categories)";
        else if constexpr (std::is_same_v<V, std::vector<std::string>>)
          return "string";
        else if constexpr (std::is_same_v<V, std::vector<bool>>)
          return "bool";
        else if constexpr (std::is_same_v<V, std::vector<double>> ||
                           std::is_same_v<V, std::vector<float>>)
          return "float";
        else
          return "int";
      },
      v);
}

std::string first_names(const std::vector<std::string>& v, std::size_t most = 8) {
  std::string s;
  for (std::size_t i = 0; i < std::min(most, v.size()); ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > most) s += ", ... (" + std::to_string(v.size()) + ")";
  return s.empty() ? "-" : s;
}

}  // namespace

std::string describe_store(const Store& store, const std::string& path) {
  std::string out;
  auto line = [&](const std::string& label, const std::string& value) {
    out += label + std::string(label.size() < 9 ? 9 - label.size() : 1, ' ') + value + "\n";
  };
  line("store", path);
  line("format", store.format);
  line("X", store.x_encoding);
  line("shape",
       std::to_string(store.n_obs()) + " cells x " + std::to_string(store.n_vars()) + " genes");
  line("nnz", store.X ? std::to_string(store.X->nnz()) : std::string("-"));
  line("obs", first_names(store.obs.index, 3));
  line("var", first_names(store.var.index, 3));
  auto columns = [&](const char* label, const DataFrame& df) {
    for (const auto& c : df.columns) {
      std::string name = c.name;
      if (name.size() < 24) name.resize(24, ' ');
      line(label, name + " " + column_type(c));
    }
  };
  columns("obs col", store.obs);
  columns("var col", store.var);
  line("obsm", first_names(store.obsm_keys));
  line("obsp", first_names(store.obsp_keys));
  line("layers", first_names(store.layer_keys));
  line("raw", store.has_raw ? "raw/X present" : "-");
  line("uns", first_names(store.uns_keys));
  return out;
}

}  // namespace orrery::io
