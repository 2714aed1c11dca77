#include "compute/gene_major.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <thread>

#include "compute/by_columns.hpp"
#include "compute/elementwise.hpp"
#include "io/error.hpp"

namespace orrery::compute {
namespace {

void put_varint(std::vector<std::uint8_t>& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

// One entry after the gap (rows skipped since the last entry); see the header's encoding.
void put(std::vector<std::uint8_t>& out, std::uint64_t gap, float v) {
  const bool whole = v >= 0.0f && v < 4294967296.0f && v == std::floor(v) && !std::signbit(v);
  if (whole && v >= 1.0f && v <= 15.0f && gap < 15) {
    out.push_back(static_cast<std::uint8_t>(gap << 4 | static_cast<std::uint32_t>(v)));
  } else if (whole && v >= 1.0f && v <= 14.0f) {
    out.push_back(static_cast<std::uint8_t>(0xF0 | static_cast<std::uint32_t>(v)));
    put_varint(out, gap);
  } else if (whole) {
    out.push_back(0xF0);
    put_varint(out, gap);
    put_varint(out, static_cast<std::uint64_t>(v));
  } else {
    out.push_back(0xFF);
    put_varint(out, gap);
    std::uint8_t raw[sizeof v];
    std::memcpy(raw, &v, sizeof v);
    out.insert(out.end(), raw, raw + sizeof v);
  }
}

}  // namespace

std::size_t GeneMajorCounts::bytes() const {
  std::size_t n = totals_.capacity() * sizeof(double) + excluded_.capacity() +
                  col_nnz_.capacity() * sizeof(std::int64_t);
  for (const auto& g : genes_) n += g.capacity() + sizeof g;
  return n;
}

bool GeneMajorCounts::excludes_as_built(const std::vector<char>* excluded) const {
  const bool none =
      !excluded || std::find(excluded->begin(), excluded->end(), 1) == excluded->end();
  return none ? excluded_.empty() : *excluded == excluded_;
}

std::vector<double> GeneMajorCounts::totals(const std::vector<char>* excluded) const {
  if (excludes_as_built(excluded)) return totals_;
  if (excluded && static_cast<std::int64_t>(excluded->size()) != n_cols())
    throw Error("", "excluded genes", "one flag per column expected");
  // Column by column, so each row's entries are added in column order as a row pass adds them.
  std::vector<double> totals(static_cast<std::size_t>(n_rows_), 0.0);
  for (std::int32_t g = 0; g < static_cast<std::int32_t>(genes_.size()); ++g)
    if (!excluded || !(*excluded)[g])
      for_each(g, [&](std::int64_t row, float v) { totals[row] += v; });
  return totals;
}

std::vector<float> GeneMajorCounts::values(std::int32_t g, const LogNormalize& n) const {
  if (g < 0 || g >= n_cols())
    throw Error("", "gene", "column " + std::to_string(g) + " is out of range");
  std::vector<float> out(static_cast<std::size_t>(n_rows_), 0.0f);
  if (!n.apply) {
    for_each(g, [&](std::int64_t row, float v) { out[row] = v; });
    return out;
  }
  const bool as_built = excludes_as_built(n.excluded);
  const std::vector<double> afresh = as_built ? std::vector<double>{} : totals(n.excluded);
  const std::vector<double>& t = as_built ? totals_ : afresh;
  for_each(g, [&](std::int64_t row, float v) {
    out[row] = normalize_log1p_value(v, t[row], n.target_sum);
  });
  return out;
}

namespace {

// The rows of GeneMajorCounts as CSR chunks, one after another: each column keeps where its next
// entry starts.
class Replay {
 public:
  Replay(const GeneMajorCounts& m, std::size_t chunk_bytes)
      : m_(m), cursor_(static_cast<std::size_t>(m.n_cols())), entries_(kColumnRanges) {
    // Rows per chunk from the mean row: the chunk's CsrMatrix bytes near chunk_bytes.
    const double rows = static_cast<double>(std::max<std::int64_t>(m.n_rows(), 1));
    const double per_row = 8.0 + 8.0 * static_cast<double>(m.nnz()) / rows;
    rows_ = static_cast<std::int64_t>(
        std::clamp(static_cast<double>(chunk_bytes) / per_row, 1.0, std::min(rows, 1e9)));
  }

  // The next chunk into `c` and its first row; false after the last.
  bool next(CsrMatrix& c, std::int64_t& first) {
    const std::int64_t r0 = r0_, n = std::min(rows_, m_.n_rows() - r0), r1 = r0 + n;
    if (n <= 0) return false;
    r0_ = r1;
    first = r0;
    const std::int64_t n_cols = m_.n_cols();
    const auto bound = [&](std::int64_t part) {
      return static_cast<std::int32_t>(n_cols * part / kColumnRanges);
    };
    counts_.assign(static_cast<std::size_t>(kColumnRanges * n), 0);
    // Each range of columns decodes its entries below r1, in column order, counting per row.
    tbb::parallel_for(std::int64_t{0}, kColumnRanges, [&](std::int64_t part) {
      std::vector<Entry>& out = entries_[part];
      out.clear();
      std::int64_t* count = counts_.data() + part * n;
      for (std::int32_t g = bound(part); g < bound(part + 1); ++g)
        m_.for_each_below(g, cursor_[g], r1, [&](std::int64_t row, float v) {
          out.push_back({static_cast<std::int32_t>(row - r0), g, v});
          ++count[row - r0];
        });
    });
    // Row r's entries: part 0's, then part 1's, ... (columns increasing).
    c.n_rows = n;
    c.n_cols = n_cols;
    c.indptr.assign(static_cast<std::size_t>(n) + 1, 0);
    std::int64_t offset = 0;
    for (std::int64_t r = 0; r < n; ++r) {
      c.indptr[r] = offset;
      for (std::int64_t part = 0; part < kColumnRanges; ++part) {
        std::int64_t& k = counts_[part * n + r];
        const std::int64_t entries = k;
        k = offset;
        offset += entries;
      }
    }
    c.indptr[n] = offset;
    c.indices.resize(static_cast<std::size_t>(offset));
    c.data.resize(static_cast<std::size_t>(offset));
    tbb::parallel_for(std::int64_t{0}, kColumnRanges, [&](std::int64_t part) {
      std::int64_t* next = counts_.data() + part * n;
      for (const Entry& e : entries_[part]) {
        const std::int64_t k = next[e.row]++;
        c.indices[k] = e.col;
        c.data[k] = e.v;
      }
    });
    return true;
  }

 private:
  struct Entry {
    std::int32_t row, col;
    float v;
  };
  const GeneMajorCounts& m_;
  std::vector<GeneMajorCounts::Cursor> cursor_;  // per column
  std::vector<std::vector<Entry>> entries_;      // per column range, the chunk's entries
  std::vector<std::int64_t> counts_;             // [part * n + r]: entries, then offsets, in row r
  std::int64_t rows_ = 1, r0_ = 0;
};

}  // namespace

ChunkSource GeneMajorCounts::source(std::size_t chunk_bytes) const {
  return [this, chunk_bytes](const ChunkVisitor& visit) {
    Replay replay(*this, chunk_bytes);
    // The next chunk is built on a second thread while `visit` works on this one, as a store's
    // reader reads ahead.
    CsrMatrix c, ahead;
    std::int64_t row0 = 0, ahead_row0 = 0;
    bool more = replay.next(c, row0);
    while (more) {
      bool ahead_more = false;
      std::exception_ptr error;
      std::thread producer([&] {
        try {
          ahead_more = replay.next(ahead, ahead_row0);
        } catch (...) {
          error = std::current_exception();
        }
      });
      try {
        visit(c, row0);
      } catch (...) {
        producer.join();
        throw;
      }
      producer.join();
      if (error) std::rethrow_exception(error);
      std::swap(c, ahead);
      row0 = ahead_row0;
      more = ahead_more;
    }
  };
}

GeneMajorBuilder::GeneMajorBuilder(std::int64_t n_rows, std::int64_t n_cols,
                                   std::size_t budget_bytes, const std::vector<char>* excluded,
                                   const std::vector<std::int64_t>& nnz_bound)
    : budget_(budget_bytes) {
  if (n_rows < 0 || n_cols < 0 || n_cols > INT32_MAX ||
      (excluded && static_cast<std::int64_t>(excluded->size()) != n_cols) ||
      (!nnz_bound.empty() && static_cast<std::int64_t>(nnz_bound.size()) != n_cols))
    throw Error("", "gene-major counts", "shape of the excluded columns or bounds does not match");
  // The row totals, each column's vector and count, and a byte for each bounded entry.
  std::size_t least = static_cast<std::size_t>(n_rows) * sizeof(double) +
                      static_cast<std::size_t>(n_cols) *
                          (sizeof(std::vector<std::uint8_t>) + 2 * sizeof(std::int64_t));
  for (auto b : nnz_bound)
    least += static_cast<std::size_t>(std::max<std::int64_t>(b, 0));  // a byte each at least
  if (least > budget_) {
    gave_up_ = true;
    return;
  }
  counts_ = std::make_unique<GeneMajorCounts>();
  counts_->n_rows_ = n_rows;
  counts_->genes_.resize(static_cast<std::size_t>(n_cols));
  counts_->col_nnz_.assign(static_cast<std::size_t>(n_cols), 0);
  if (excluded && std::find(excluded->begin(), excluded->end(), 1) != excluded->end())
    counts_->excluded_ = *excluded;
  counts_->totals_.assign(static_cast<std::size_t>(n_rows), 0.0);
  // Each column's bytes at the bound: one per entry where entries are a few rows apart, two
  // (escape and gap) or three where they are further (the mean gap) — so most columns do not
  // grow by doubling while they are built.
  for (std::size_t g = 0; g < nnz_bound.size(); ++g) {
    const std::int64_t b = std::max<std::int64_t>(nnz_bound[g], 0);
    const std::int64_t gap = b > 0 ? n_rows / b : 0;
    counts_->genes_[g].reserve(static_cast<std::size_t>(b * (gap < 15 ? 1 : gap < 128 ? 2 : 3)));
  }
  last_row_.assign(static_cast<std::size_t>(n_cols), -1);
}

void GeneMajorBuilder::give_up() {
  gave_up_ = true;
  counts_.reset();
  std::vector<std::int64_t>().swap(last_row_);
}

void GeneMajorBuilder::add(const CsrMatrix& chunk, std::int64_t row0) {
  if (gave_up_ || row0 != next_row_ || chunk.n_rows == 0) return;
  GeneMajorCounts& m = *counts_;
  if (chunk.n_cols != m.n_cols() || row0 + chunk.n_rows > m.n_rows_)
    throw Error("", "gene-major counts", "a chunk does not fit the shape being built");
  try {  // a chunk half written (out of memory) cannot be taken again: give up instead
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, chunk.n_rows, 256), [&](const auto& rs) {
      for (std::int64_t r = rs.begin(); r < rs.end(); ++r)
        m.totals_[row0 + r] = row_total(chunk, r, &m.excluded_);
    });
    for_each_entry_by_column_ranges(
        chunk, 0, chunk.n_cols, [&](std::int64_t, std::int64_t r, std::int64_t k) {
          const GeneIndex g = chunk.indices[k];
          const std::int64_t row = row0 + r;
          put(m.genes_[g], static_cast<std::uint64_t>(row - last_row_[g] - 1), chunk.data[k]);
          last_row_[g] = row;
          ++m.col_nnz_[g];
        });
  } catch (...) {
    give_up();
    throw;
  }
  m.nnz_ += chunk.nnz();
  next_row_ += chunk.n_rows;
  if (m.bytes() > budget_) give_up();
}

std::shared_ptr<const GeneMajorCounts> GeneMajorBuilder::finish() {
  if (gave_up_ || next_row_ != counts_->n_rows_) {
    give_up();
    return nullptr;
  }
  for (auto& g : counts_->genes_)
    if (g.capacity() > g.size() + g.size() / 8) g.shrink_to_fit();
  std::vector<std::int64_t>().swap(last_row_);
  gave_up_ = true;  // nothing more to add: the counts leave with the caller
  return std::shared_ptr<const GeneMajorCounts>(std::move(counts_));
}

void for_each_column_value(const ChunkSource& counts, const std::vector<std::int32_t>& columns,
                           const LogNormalize& n,
                           const std::function<void(std::size_t, std::int64_t, float)>& visit) {
  std::vector<double> totals;
  counts([&](const CsrMatrix& c, std::int64_t row0) {
    totals.resize(static_cast<std::size_t>(c.n_rows));
    if (n.apply)
      tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, c.n_rows, 256), [&](const auto& rs) {
        for (std::int64_t r = rs.begin(); r < rs.end(); ++r)
          totals[r] = row_total(c, r, n.excluded);
      });
    for (std::int64_t r = 0; r < c.n_rows; ++r) {
      const GeneIndex* b = c.indices.data() + c.indptr[r];
      const GeneIndex* e = c.indices.data() + c.indptr[r + 1];
      for (std::size_t k = 0; k < columns.size(); ++k) {
        const GeneIndex* at = std::lower_bound(b, e, columns[k]);
        if (at == e || *at != columns[k]) continue;
        const float count = c.data[at - c.indices.data()];
        visit(k, row0 + r, n.apply ? normalize_log1p_value(count, totals[r], n.target_sum) : count);
      }
    }
  });
}

ChunkSource tee_source(ChunkSource inner, GeneMajorBuilder& builder) {
  return [inner = std::move(inner), &builder](const ChunkVisitor& visit) {
    inner([&](CsrMatrix& chunk, std::int64_t row0) {
      builder.add(chunk, row0);
      visit(chunk, row0);
    });
  };
}

ChunkSource CachingSource::source() {
  return [this](const ChunkVisitor& visit) {
    if (counts_) return counts_->source()(visit);
    tee_source(inner_, builder_)(visit);
    if (!builder_.gave_up()) counts_ = builder_.finish();
  };
}

}  // namespace orrery::compute
