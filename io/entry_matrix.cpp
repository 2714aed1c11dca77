#include "entry_matrix.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "anndata_reader.hpp"
#include "error.hpp"

namespace fs = std::filesystem;

namespace orrery::io {

LineReader::LineReader(const std::string& path) : path_(path) {
  // Read more than once (counted, then converted): a pipe or device would not read the same.
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(path, "", "not a regular file");
  file_ = gzopen(path.c_str(), "rb");
  if (!file_) throw Error(path, "", "cannot open file");
  gzbuffer(file_, 1 << 20);
  size_ = static_cast<double>(fs::file_size(path, ec));
}

double LineReader::fraction() const {
  const double at = static_cast<double>(gzoffset(file_));
  return size_ > 0 ? std::min(1.0, std::max(0.0, at / size_)) : 0.0;
}
LineReader::~LineReader() {
  if (file_) gzclose(file_);
}
bool LineReader::next(std::string& line) {
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
  // A UTF-8 byte order mark (Excel's "CSV UTF-8", pandas' utf-8-sig) is not part of a name.
  if (line_no_ == 0 && line.rfind("\xef\xbb\xbf", 0) == 0) line.erase(0, 3);
  ++line_no_;
  return true;
}

namespace {

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

// Pass 2 when the whole matrix fits in memory; `report(fraction)` follows (and may cancel).
CsrMatrix whole_matrix(const std::string& file, const EntryCounts& counts,
                       const EntryStreamFactory& open, const std::function<void(double)>& report) {
  const std::unique_ptr<EntryStream> entries = open();
  CsrMatrix m = csr_with_row_lengths(counts.row_nnz, 0, counts.n_cells, counts.n_genes);
  std::int64_t seen = 0;
  fill_cells(m, 0, counts.n_cells, file, [&](auto& g, auto& c, auto& v) {
    if (++seen % (1 << 20) == 0) report(static_cast<double>(seen) / counts.nnz);
    return entries->next(g, c, v);
  });
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

  Buckets(const std::string& file, const std::string& what, std::vector<std::int64_t> starts)
      : file_(file), what_(what), starts_(std::move(starts)) {
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

  void deal(std::int64_t nnz, const EntryStreamFactory& open,
            const std::function<void(std::string_view, double)>& progress) {
    const std::unique_ptr<EntryStream> entries = open();
    std::int32_t gene = 0;
    std::int64_t cell = 0, seen = 0;
    float value = 0;
    while (entries->next(gene, cell, value)) {
      const auto b = static_cast<std::size_t>(
          std::upper_bound(starts_.begin(), starts_.end(), cell) - starts_.begin() - 1);
      const Record r{gene, static_cast<std::int32_t>(cell - starts_[b]), value};
      if (std::fwrite(&r, sizeof r, 1, buckets_[b]) != 1) throw write_failed();
      if (++seen % (1 << 20) == 0 && progress)
        progress("sorting " + what_ + " entries by cell",
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
  std::string file_, what_;
  std::vector<std::int64_t> starts_;
  std::vector<std::FILE*> buckets_;
};

}  // namespace

std::unique_ptr<RowChunkReader> cells_from_entries(const std::string& file, const std::string& what,
                                                   const EntryCounts& counts,
                                                   const EntryStreamFactory& open,
                                                   const OpenOptions& options,
                                                   std::string* encoding) {
  auto report = [&](double f) {
    if (options.progress) options.progress("reading " + what + " into a temporary CSR store", f);
  };
  if (static_cast<std::size_t>(counts.nnz) * 8 <=
      std::max<std::size_t>(options.transpose_bytes, 8)) {
    if (encoding) *encoding += ", parsed into CSR in memory";
    return make_memory_reader(whole_matrix(file, counts, open, [&](double f) {
      if (options.progress) options.progress("reading " + what, f);
    }));
  }
  if (encoding) *encoding += ", via a temporary CSR store";
  // Larger than the budget: cell blocks written to a temporary CSR store; sorted files take one
  // more pass, unsorted ones one more pass into per-block buckets.
  std::unique_ptr<Buckets> buckets;
  if (!counts.sorted) {
    std::vector<std::int64_t> starts = row_blocks(counts.row_nnz, options.transpose_bytes);
    if (Buckets::fit(starts)) {
      buckets = std::make_unique<Buckets>(file, what, std::move(starts));
      buckets->deal(counts.nnz, open, options.progress);
      if (encoding) *encoding += " (unsorted: entries dealt to cell blocks in one pass)";
    }
  }
  std::unique_ptr<EntryStream> stream;
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
        if (!counts.sorted) {  // no buckets (a block above 2^31 cells, or 512 blocks): a pass each
          const std::unique_ptr<EntryStream> entries = open();
          fill_cells(block, c0, c1, file,
                     [&](auto& g, auto& c, auto& v) { return entries->next(g, c, v); });
          return;
        }
        if (!stream) stream = open();
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

}  // namespace orrery::io
