// The kept counts held in memory gene by gene, compressed: a gene's values over every kept cell
// without a pass over the store (the viewer's gene search), and passes that replay the counts in
// row chunks instead of reading it (comparing a selection against the rest). Built from one pass
// of kept-count chunks under a byte budget; past the budget it is dropped and callers read the
// store as before.
//
// Encoding, per gene, entries in row order: the gap to the previous entry's row and the count.
// A whole count 1..15 after a gap below 15 is one byte (gap in the high nibble, count in the
// low); a count 1..14 after a longer gap is 0xF0 + count and the gap as a varint; other whole
// counts below 2^32 are 0xF0, the gap and the count as varints; anything else (fractions,
// negatives, -0, NaN) is 0xFF, the gap as a varint and the float's four bytes. Counts read back
// are the same floats, bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "compute/log_normalize.hpp"
#include "compute/wilcoxon.hpp"
#include "io/matrix.hpp"

namespace orrery::compute {

class GeneMajorCounts {
 public:
  std::int64_t n_rows() const { return n_rows_; }
  std::int64_t n_cols() const { return static_cast<std::int64_t>(genes_.size()); }
  std::int64_t nnz() const { return nnz_; }
  // What the encoded genes and the row totals take.
  std::size_t bytes() const;

  // Where a walk over a column has got to: its next entry's byte and the row before it.
  struct Cursor {
    std::size_t at = 0;
    std::int64_t row = -1;
  };
  // Calls f(row, count) for column g's entries from `cursor` on whose rows are below `end_row`,
  // rows increasing, and moves the cursor past them.
  template <typename F>
  void for_each_below(std::int32_t g, Cursor& cursor, std::int64_t end_row, F&& f) const {
    const std::vector<std::uint8_t>& bytes = genes_[static_cast<std::size_t>(g)];
    const std::uint8_t* p = bytes.data() + cursor.at;
    const std::uint8_t* end = bytes.data() + bytes.size();
    std::int64_t row = cursor.row;
    while (p < end) {
      std::int64_t next = row;
      float v = 0;
      const std::uint8_t* after = decode(p, next, v);
      if (next >= end_row) break;
      f(next, v);
      row = next;
      p = after;
    }
    cursor.at = static_cast<std::size_t>(p - bytes.data());
    cursor.row = row;
  }
  // Calls f(row, count) for column g's stored entries, rows increasing.
  template <typename F>
  void for_each(std::int32_t g, F&& f) const {
    Cursor from_start;
    for_each_below(g, from_start, INT64_MAX, f);
  }
  // Column g's stored entries.
  std::int64_t nnz(std::int32_t g) const { return col_nnz_[static_cast<std::size_t>(g)]; }

  // Column g over all rows, normalised and log1p'd as `n` says with the row totals the counts
  // give (those of the passes' normalize_log1p on the CPU, bit for bit); zeros elsewhere. The
  // totals of the builder's excluded columns are kept; other exclusions sum them afresh.
  std::vector<float> values(std::int32_t g, const LogNormalize& n) const;

  // Each row's total without the `excluded` columns (null: none), as normalize_total sums it
  // (kept from the build when the builder excluded the same columns).
  std::vector<double> totals(const std::vector<char>* excluded) const;
  // Whether `excluded` (null: none) leaves out the columns the builder's did.
  bool excludes_as_built(const std::vector<char>* excluded) const;

  // The counts as consecutive row chunks of about `chunk_bytes` (CsrMatrix::bytes), rows in
  // order and each row's columns increasing, as a store's kept-count source gives them. The
  // source refers to this object, which must outlive its calls; it builds the next chunk on a
  // second thread while the visitor works. Small chunks replay faster (their scattered writes
  // stay in cache), but each costs its consumer a little: 40k cells x 5k genes, 41M entries,
  // 2 cores: 0.77 s in chunks of 256 MiB, 0.26 s in 4 MiB, 0.30 s in 16 MiB (a store pass:
  // 0.76 s); binned markers over 200k x 28k cells took 15.5 s on chunks of 4 MiB, 14.7 s on 16.
  static constexpr std::size_t kReplayChunkBytes = std::size_t{16} << 20;
  ChunkSource source(std::size_t chunk_bytes = kReplayChunkBytes) const;

  // One entry: advances p past it and row to its row, sets v to its count.
  static const std::uint8_t* decode(const std::uint8_t* p, std::int64_t& row, float& v) {
    const std::uint8_t b = *p++;
    if (b < 0xF0) {
      row += 1 + (b >> 4);
      v = static_cast<float>(b & 15);
      return p;
    }
    std::uint64_t gap = 0;
    p = varint(p, gap);
    row += 1 + static_cast<std::int64_t>(gap);
    if (b != 0xF0 && b != 0xFF) {
      v = static_cast<float>(b & 15);
      return p;
    }
    if (b == 0xF0) {
      std::uint64_t count = 0;
      p = varint(p, count);
      v = static_cast<float>(count);
      return p;
    }
    std::memcpy(&v, p, sizeof v);
    return p + sizeof v;
  }

 private:
  friend class GeneMajorBuilder;
  static const std::uint8_t* varint(const std::uint8_t* p, std::uint64_t& out) {
    int shift = 0;
    out = 0;
    while (*p & 0x80) out |= std::uint64_t{*p++ & 0x7Fu} << shift, shift += 7;
    out |= std::uint64_t{*p++} << shift;
    return p;
  }

  std::int64_t n_rows_ = 0, nnz_ = 0;
  std::vector<std::vector<std::uint8_t>> genes_;
  std::vector<std::int64_t> col_nnz_;  // per column
  std::vector<char> excluded_;         // the builder's (empty: none)
  std::vector<double> totals_;         // per row, of the counts outside excluded_, in column order
};

// Builds a GeneMajorCounts from the consecutive row chunks of one pass over kept counts.
class GeneMajorBuilder {
 public:
  // `nnz_bound`: per column, an upper bound of its stored entries (e.g. the kept genes' cell
  // counts) or empty. When their sum, at one byte each, is already over `budget_bytes` the
  // builder gives up at once. The row totals are kept without the `excluded` columns (null:
  // none), as normalize_total sums them.
  GeneMajorBuilder(std::int64_t n_rows, std::int64_t n_cols, std::size_t budget_bytes,
                   const std::vector<char>* excluded,
                   const std::vector<std::int64_t>& nnz_bound = {});

  // Takes the chunk of rows [row0, row0 + chunk.n_rows) when row0 is where the last one ended;
  // other chunks (a later pass of the same source) are ignored. Past the budget the builder
  // frees what it holds and gives up.
  void add(const CsrMatrix& chunk, std::int64_t row0);
  bool gave_up() const { return gave_up_; }
  // The counts once every row was added within the budget, else null (and the builder empty).
  std::shared_ptr<const GeneMajorCounts> finish();

 private:
  void give_up();

  std::size_t budget_;
  std::int64_t next_row_ = 0;
  bool gave_up_ = false;
  std::vector<std::int64_t> last_row_;  // per column
  std::unique_ptr<GeneMajorCounts> counts_;
};

// Calls visit(k, row, value) for the stored entries of columns[k] in the chunks of `counts`
// (kept counts), rows increasing for each k, their values normalised and log1p'd as `n` says
// with the host's arithmetic (those GeneMajorCounts::values gives), without normalising the
// rest of the matrix.
void for_each_column_value(const ChunkSource& counts, const std::vector<std::int32_t>& columns,
                           const LogNormalize& n,
                           const std::function<void(std::size_t, std::int64_t, float)>& visit);

// `inner`, with every chunk also given to `builder` before the visitor sees it (the visitor
// may then overwrite it). Both must outlive the source's calls.
ChunkSource tee_source(ChunkSource inner, GeneMajorBuilder& builder);

// A source for passes that read the same counts several times (exact Wilcoxon: one pass per
// gene block): the first call reads `inner` and keeps the counts gene by gene; once a call has
// read every row within the budget, the later ones replay them from memory.
// source() refers to this object.
class CachingSource {
 public:
  CachingSource(ChunkSource inner, GeneMajorBuilder builder)
      : inner_(std::move(inner)), builder_(std::move(builder)) {}
  ChunkSource source();
  // The counts a complete first call kept (null before, or past the budget).
  std::shared_ptr<const GeneMajorCounts> counts() const { return counts_; }

 private:
  ChunkSource inner_;
  GeneMajorBuilder builder_;
  std::shared_ptr<const GeneMajorCounts> counts_;
};

}  // namespace orrery::compute
