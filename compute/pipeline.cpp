#include "pipeline.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <variant>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include "elementwise.hpp"
#include "spectral.hpp"

namespace orrery::compute {
namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

class StageClock {
 public:
  StageClock(PipelineResult& r, std::string name, std::int64_t rows, Progress& p,
             const io::RowChunkReader& reader, const Backend& backend)
      : r_(r),
        name_(std::move(name)),
        rows_(rows),
        reader_(reader),
        backend_(backend),
        cpu0_(cpu_seconds()),
        wait0_(reader.waited_seconds()),
        stream0_(backend.stream_seconds()),
        t0_(std::chrono::steady_clock::now()) {
    p.report(name_, 0.0);
  }
  ~StageClock() {
    StageTiming t;
    t.name = name_;
    t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    t.cpu_seconds = cpu_seconds() - cpu0_;
    t.read_wait_seconds = reader_.waited_seconds() - wait0_;
    const Backend::StreamSeconds stream = backend_.stream_seconds();
    t.staging_seconds = stream.staging - stream0_.staging;
    t.device_wait_seconds = stream.device_wait - stream0_.device_wait;
    t.peak_rss_mib = peak_rss_mib();
    t.rows = rows_;
    r_.timings.push_back(t);
  }

 private:
  PipelineResult& r_;
  std::string name_;
  std::int64_t rows_;
  const io::RowChunkReader& reader_;
  const Backend& backend_;
  double cpu0_, wait0_;
  Backend::StreamSeconds stream0_;
  std::chrono::steady_clock::time_point t0_;
};

template <typename F>
void for_each_chunk(io::RowChunkReader& x, std::size_t budget, Progress& progress,
                    std::string_view stage, F&& fn) {
  const std::int64_t n = x.n_rows();
  io::for_each_chunk(x, x.rows_for_budget(budget), [&](CsrMatrix& chunk, std::int64_t r0) {
    progress.check();
    fn(chunk, r0);
    progress.report(stage, static_cast<double>(r0 + chunk.n_rows) / static_cast<double>(n));
  });
}

// The kept cells' counts of kept genes, cell by cell: visit(genes, values) with genes as
// positions among the kept genes.
template <typename F>
void for_each_kept_cell(io::RowChunkReader& x, const PipelineResult& r,
                        const std::vector<std::int32_t>& gene_map, std::size_t budget,
                        Progress& progress, std::string_view stage, F&& visit) {
  std::vector<std::int32_t> genes;
  std::vector<float> values;
  for_each_chunk(x, budget, progress, stage, [&](const CsrMatrix& c, std::int64_t r0) {
    for (std::int64_t i = 0; i < c.n_rows; ++i) {
      if (!r.cell_mask[r0 + i]) continue;
      genes.clear();
      values.clear();
      for (auto k = c.indptr[i]; k < c.indptr[i + 1]; ++k)
        if (const auto g = gene_map[c.indices[k]]; g >= 0) {
          genes.push_back(g);
          values.push_back(c.data[k]);
        }
      visit(genes, values);
    }
  });
}

}  // namespace

std::size_t gene_cache_budget(const PipelineParams& p) {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  const std::size_t quarter =
      pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) / 4
                            : std::size_t{1} << 30;
  return std::min(p.gene_cache_bytes, quarter);
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

std::vector<std::int32_t> kept_gene_map(const PipelineResult& r) {
  std::vector<std::int32_t> map(r.n_genes_total, -1);
  for (std::size_t i = 0; i < r.kept_genes.size(); ++i)
    map[r.kept_genes[i]] = static_cast<std::int32_t>(i);
  return map;
}

LogNormalize log_normalize_of(const PipelineResult& r, const PipelineParams& p) {
  // target_sum <= 0 (scanpy's None): the median the run found, kept in the result.
  return {.apply = true,
          .target_sum = p.target_sum > 0 ? p.target_sum : r.target_sum,
          .excluded = r.excluded_genes.empty() ? nullptr : &r.excluded_genes};
}

void log_normalized_chunk(const CsrMatrix& raw, std::int64_t row0, const PipelineResult& r,
                          const std::vector<std::int32_t>& gene_map, const PipelineParams& p,
                          Backend& backend, CsrMatrix& out) {
  kept_chunk(raw, row0, r, gene_map, out);
  backend.log_normalize(out, log_normalize_of(r, p));
}

CsrMatrix kept_chunk(const CsrMatrix& raw, std::int64_t row0, const PipelineResult& r,
                     const std::vector<std::int32_t>& gene_map) {
  CsrMatrix out;
  kept_chunk(raw, row0, r, gene_map, out);
  return out;
}

namespace {

// The kept cells' rows of a chunk starting at store row `row0`, each entry's column through
// `map`: >= 0 that column, -1 dropped, HvgColumns::kRest summed (in double, as the backends sum
// totals) into the row's last column when `rest`. Every pass after the filter runs this over
// the whole matrix: rows in parallel, each kept row's entries counted, then written at their
// offsets; `out`'s buffers are sized once per chunk (and kept between chunks when reused).
// Store genes are in increasing order within a row, and `map` keeps that order.
void mapped_chunk(const CsrMatrix& raw, std::int64_t row0, const std::vector<char>& cell_mask,
                  const std::vector<std::int32_t>& map, std::int64_t n_cols, bool rest,
                  CsrMatrix& out) {
  std::vector<std::int64_t> rows;  // the chunk's kept rows
  rows.reserve(static_cast<std::size_t>(raw.n_rows));
  for (std::int64_t i = 0; i < raw.n_rows; ++i)
    if (cell_mask[row0 + i]) rows.push_back(i);
  const auto n = static_cast<std::int64_t>(rows.size());
  std::vector<float> rest_of(rest ? static_cast<std::size_t>(n) : 0);
  out.n_rows = n;
  out.n_cols = n_cols;
  out.indptr.assign(static_cast<std::size_t>(n) + 1, 0);
  constexpr std::int64_t kGrain = 256;
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n, kGrain), [&](const auto& range) {
    for (std::int64_t j = range.begin(); j < range.end(); ++j) {
      std::int64_t kept = 0;
      double sum = 0;
      for (auto k = raw.indptr[rows[j]]; k < raw.indptr[rows[j] + 1]; ++k) {
        const auto c = map[raw.indices[k]];
        kept += c >= 0;
        if (rest && c == HvgColumns::kRest) sum += raw.data[k];
      }
      if (rest) {
        rest_of[j] = static_cast<float>(sum);
        kept += rest_of[j] != 0;  // as the writing walk tests it
      }
      out.indptr[j + 1] = kept;
    }
  });
  for (std::int64_t j = 0; j < n; ++j) out.indptr[j + 1] += out.indptr[j];
  out.indices.resize(static_cast<std::size_t>(out.indptr[n]));
  out.data.resize(static_cast<std::size_t>(out.indptr[n]));
  const auto last = static_cast<GeneIndex>(n_cols - 1);
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n, kGrain), [&](const auto& range) {
    for (std::int64_t j = range.begin(); j < range.end(); ++j) {
      auto at = out.indptr[j];
      for (auto k = raw.indptr[rows[j]]; k < raw.indptr[rows[j] + 1]; ++k)
        if (const auto c = map[raw.indices[k]]; c >= 0) {
          out.indices[at] = c;
          out.data[at++] = raw.data[k];
        }
      if (rest && rest_of[j] != 0) {
        out.indices[at] = last;
        out.data[at] = rest_of[j];
      }
    }
  });
}

}  // namespace

void kept_chunk(const CsrMatrix& raw, std::int64_t row0, const PipelineResult& r,
                const std::vector<std::int32_t>& gene_map, CsrMatrix& out) {
  mapped_chunk(raw, row0, r.cell_mask, gene_map, static_cast<std::int64_t>(r.kept_genes.size()),
               false, out);
}

HvgColumns hvg_columns(const PipelineResult& r, bool rest) {
  HvgColumns c;
  c.rest = rest;
  const auto h = static_cast<std::int32_t>(r.hvg_genes.size());
  c.width = h + (rest ? 1 : 0);
  c.of_store_gene.assign(static_cast<std::size_t>(r.n_genes_total), -1);
  if (rest)
    for (std::size_t k = 0; k < r.kept_genes.size(); ++k)
      if (r.excluded_genes.empty() || !r.excluded_genes[k])
        c.of_store_gene[r.kept_genes[k]] = HvgColumns::kRest;
  for (std::int32_t col = 0; col < h; ++col) c.of_store_gene[r.kept_genes[r.hvg_genes[col]]] = col;
  if (!r.excluded_genes.empty()) {
    c.excluded.assign(static_cast<std::size_t>(c.width), 0);
    for (std::int32_t col = 0; col < h; ++col) c.excluded[col] = r.excluded_genes[r.hvg_genes[col]];
  }
  return c;
}

LogNormalize HvgColumns::normalize(const LogNormalize& kept) const {
  return {.apply = kept.apply,
          .target_sum = kept.target_sum,
          .excluded = excluded.empty() ? nullptr : &excluded};
}

std::vector<std::int32_t> HvgColumns::scaled_column() const {
  std::vector<std::int32_t> column(static_cast<std::size_t>(width));
  std::iota(column.begin(), column.end(), 0);
  if (rest) column.back() = -1;
  return column;
}

void hvg_chunk(const CsrMatrix& raw, std::int64_t row0, const PipelineResult& r,
               const HvgColumns& columns, CsrMatrix& out) {
  mapped_chunk(raw, row0, r.cell_mask, columns.of_store_gene, columns.width, columns.rest, out);
}

namespace {

// scanpy's _get_mean_var from sums over n cells: the variance with ddof = 1 (0 where rounding
// makes it negative).
double sample_variance(double sum, double sumsq, double n) {
  const double mean = sum / n;
  return std::max(0.0, (sumsq / n - mean * mean) * (n / (n - 1)));
}

// hvg.batch_key: each kept cell's batch (0..B-1, in order of first appearance among the obs
// column's categories or values); empty without a key.
std::vector<std::int32_t> batch_of_kept_cells(const io::Store& store, const PipelineResult& r,
                                              const std::string& key) {
  if (key.empty()) return {};
  const Column* column = store.obs.find(key);
  if (!column)
    throw Error(store.path, "obs/" + key, "hvg.batch_key names no obs column of this store");
  // Values that read alike are one batch (a numeric column's values by std::to_string). A
  // categorical column's category is looked up once, not a string per cell.
  std::unordered_map<std::string_view, std::int32_t> code;
  std::deque<std::string> texts;  // a numeric column's values as text, keys of `code`
  const auto id_of = [&code](std::string_view s) {
    return code.emplace(s, static_cast<std::int32_t>(code.size())).first->second;
  };
  const auto missing = [&] {
    return Error(store.path, "obs/" + key, "a kept cell has no batch (missing value)");
  };
  std::vector<std::int32_t> batch;
  batch.reserve(r.kept_cells.size());
  std::visit(
      [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, Categorical>) {
          std::vector<std::int32_t> of_category(v.categories.size(), -1);
          for (auto c : r.kept_cells) {
            const auto k = v.codes[c];
            if (k < 0 || static_cast<std::size_t>(k) >= of_category.size()) throw missing();
            auto& b = of_category[static_cast<std::size_t>(k)];
            if (b < 0) b = id_of(v.categories[static_cast<std::size_t>(k)]);
            batch.push_back(b);
          }
        } else if constexpr (std::is_same_v<V, std::vector<std::string>>) {
          for (auto c : r.kept_cells) batch.push_back(id_of(v[c]));
        } else {
          for (auto c : r.kept_cells) {
            if constexpr (std::is_floating_point_v<typename V::value_type>)
              if (std::isnan(v[c])) throw missing();  // a nullable column's missing value, or NaN
            std::string text = std::to_string(v[c]);
            const auto known = code.find(text);
            batch.push_back(known != code.end() ? known->second
                                                : id_of(texts.emplace_back(std::move(text))));
          }
        }
      },
      column->values);
  return batch;
}

// One moment pass of `backend` over the kept cells' counts of kept genes (`batch`: each kept
// cell's batch, or empty).
// The largest value a chunk of kept counts log-normalises to: each cell's largest count
// normalised by the cell's total (normalize_log1p_value does not decrease with the count), 0
// for none.
float log_normalized_max(const CsrMatrix& counts, const LogNormalize& n) {
  return tbb::parallel_reduce(
      tbb::blocked_range<std::int64_t>(0, counts.n_rows, 1024), 0.0f,
      [&](const auto& range, float best) {
        for (std::int64_t i = range.begin(); i < range.end(); ++i) {
          const auto b = counts.indptr[i], e = counts.indptr[i + 1];
          if (b == e) continue;
          double total = 0;
          float largest = counts.data[b];
          for (auto k = b; k < e; ++k) {
            if (!n.excluded || !(*n.excluded)[counts.indices[k]]) total += counts.data[k];
            largest = std::max(largest, counts.data[k]);
          }
          best = std::max(best, normalize_log1p_value(largest, total, n.target_sum));
        }
        return best;
      },
      [](float a, float b) { return std::max(a, b); });
}

// A moment pass over the kept counts; with `log_max` (log-normalising passes), the largest log
// value too (log_normalized_max, on the host: the passes leave the counts to the backend).
GeneMoments kept_moments(io::RowChunkReader& x, const PipelineResult& r,
                         const std::vector<std::int32_t>& gene_map, std::size_t chunk_bytes,
                         Backend& backend, const MomentOptions& options,
                         const std::vector<std::int32_t>& batch, Progress& progress,
                         std::string_view stage, float* log_max = nullptr) {
  std::unique_ptr<MomentPass> pass = backend.moment_pass(options);
  std::int64_t kept_row = 0;
  CsrMatrix c;  // reused from chunk to chunk
  if (log_max) *log_max = 0;
  for_each_chunk(x, chunk_bytes, progress, stage, [&](const CsrMatrix& raw, std::int64_t r0) {
    kept_chunk(raw, r0, r, gene_map, c);
    if (log_max) *log_max = std::max(*log_max, log_normalized_max(c, options.normalize));
    pass->add(c, batch.empty() ? nullptr : batch.data() + kept_row);
    kept_row += c.n_rows;
  });
  return pass->finish();
}

// seurat_v3 on counts: moments, a loess clip per gene, clipped moments (per batch too, with a
// batch key: scanpy clips and ranks each batch on its own). Both passes are the backend's
// moment passes over the kept counts.
HvgResult seurat_v3_hvg(io::RowChunkReader& x, const PipelineResult& r,
                        const std::vector<std::int32_t>& gene_map, const PipelineParams& p,
                        const std::vector<std::int32_t>& batch, Backend& backend,
                        Progress& progress) {
  const auto n_genes = static_cast<std::int64_t>(r.kept_genes.size());
  const int n_batches = batch.empty() ? 0 : *std::max_element(batch.begin(), batch.end()) + 1;
  auto moments = [&](const char* stage, const std::vector<double>* clip,
                     const std::vector<double>* batch_clip) {
    return kept_moments(x, r, gene_map, p.chunk_bytes, backend,
                        {.n_genes = n_genes,
                         .expm1 = false,
                         .n_batches = n_batches,
                         .normalize = {.apply = false},
                         .clip = clip,
                         .batch_clip = batch_clip},
                        batch, progress, stage);
  };
  // Group 0: every kept cell; group 1 + b: batch b.
  const int groups = 1 + n_batches;
  auto group_sums = [&](const GeneMoments& m, int group, std::vector<double>& sum,
                        std::vector<double>& sumsq) {
    if (group == 0) {
      sum = m.sum;
      sumsq = m.sumsq;
    } else {
      const auto at = m.batch_sum.begin() + (group - 1) * n_genes;
      const auto at_sq = m.batch_sumsq.begin() + (group - 1) * n_genes;
      sum.assign(at, at + n_genes);
      sumsq.assign(at_sq, at_sq + n_genes);
    }
  };
  const GeneMoments counts = moments("hvg: counts", nullptr, nullptr);
  std::vector<std::int64_t> cells(groups);
  cells[0] = static_cast<std::int64_t>(r.kept_cells.size());
  for (int b = 0; b < n_batches; ++b) cells[1 + b] = counts.batch_cells[b];
  std::vector<std::vector<double>> mean(groups, std::vector<double>(n_genes)), var = mean;
  std::vector<SeuratV3Clip> clip;
  for (int g = 0; g < groups; ++g) {
    const double n = static_cast<double>(cells[g]);
    if (n < 2)
      throw Error("", "hvg.batch_key",
                  "batch " + std::to_string(g - 1) + " has fewer than 2 cells");
    std::vector<double> sum, sumsq;
    group_sums(counts, g, sum, sumsq);
    for (std::int64_t k = 0; k < n_genes; ++k) {
      mean[g][k] = sum[k] / n;
      var[g][k] = std::max(0.0, (sumsq[k] - n * mean[g][k] * mean[g][k]) / (n - 1));
    }
    if (g == 0 && n_batches) {  // the whole data's clip is not used with batches
      clip.emplace_back();
      continue;
    }
    clip.push_back(seurat_v3_clip(mean[g], var[g], cells[g], p.hvg.span));
  }
  std::vector<double> batch_clip;
  for (int b = 0; b < n_batches; ++b)
    batch_clip.insert(batch_clip.end(), clip[1 + b].clip.begin(), clip[1 + b].clip.end());
  const GeneMoments clipped = n_batches ? moments("hvg: clipped", nullptr, &batch_clip)
                                        : moments("hvg: clipped", &clip[0].clip, nullptr);
  if (!n_batches)
    return seurat_v3_select(mean[0], var[0], clip[0], clipped.sum, clipped.sumsq, cells[0], p.hvg);
  std::vector<HvgResult> per_batch;
  for (int g = 1; g < groups; ++g) {
    std::vector<double> sum, sumsq;
    group_sums(clipped, g, sum, sumsq);
    per_batch.push_back(seurat_v3_select(mean[g], var[g], clip[g], sum, sumsq, cells[g], p.hvg));
  }
  return seurat_v3_combine(per_batch, mean[0], var[0], p.hvg);
}

// The passes of PCA over the kept cells' narrow HVG columns (hvg_chunk). The first reads the
// store and keeps its chunks in memory when all of them fit params.pca_cache_bytes; the later
// ones then read them there, and the last frees them as it goes.
class NarrowPasses {
 public:
  NarrowPasses(io::RowChunkReader& x, const PipelineResult& r, const HvgColumns& columns,
               const PipelineParams& p, Progress& progress)
      : x_(x), r_(r), columns_(columns), p_(p), progress_(progress) {}

  // Visits every chunk (rows numbered among kept cells); the visitor may overwrite it.
  void run(std::string_view stage, bool last, const ChunkVisitor& visit) {
    std::int64_t row = 0;
    if (cached_) {
      const std::string what = std::string(stage) + " (from memory)";
      for (CsrMatrix& chunk : cache_) {
        progress_.check();
        if (last) {
          visit(chunk, row);
        } else {
          c_ = chunk;  // the visitor may normalise its chunk in place
          visit(c_, row);
        }
        row += chunk.n_rows;
        if (last) chunk = CsrMatrix{};
        progress_.report(what,
                         static_cast<double>(row) / static_cast<double>(r_.kept_cells.size()));
      }
      if (last) cache_.clear();
      return;
    }
    bool caching = first_ && !last && p_.pca_cache_bytes > 0;
    first_ = false;
    for_each_chunk(x_, p_.chunk_bytes, progress_, stage,
                   [&](const CsrMatrix& raw, std::int64_t r0) {
                     hvg_chunk(raw, r0, r_, columns_, c_);
                     if (caching && (bytes_ += c_.bytes()) <= p_.pca_cache_bytes) {
                       cache_.push_back(c_);  // before the visitor overwrites it
                     } else if (caching) {
                       caching = false;
                       std::vector<CsrMatrix>().swap(cache_);
                       bytes_ = 0;
                     }
                     visit(c_, row);
                     row += c_.n_rows;
                   });
    cached_ = caching;
  }
  // What the passes read from memory (0: every pass read the store).
  std::int64_t cached_bytes() const { return static_cast<std::int64_t>(bytes_); }

 private:
  io::RowChunkReader& x_;
  const PipelineResult& r_;
  const HvgColumns& columns_;
  const PipelineParams& p_;
  Progress& progress_;
  std::vector<CsrMatrix> cache_;
  std::size_t bytes_ = 0;
  bool first_ = true, cached_ = false;
  CsrMatrix c_;  // the chunk visited, its buffers reused
};

}  // namespace

ChunkSource kept_counts_source(io::Store& store, const PipelineResult& r, const PipelineParams& p) {
  return [&store, &r, chunk_bytes = p.chunk_bytes](const ChunkVisitor& visit) {
    const auto gene_map = kept_gene_map(r);
    io::RowChunkReader& x = *store.X;
    std::int64_t out_row = 0;
    CsrMatrix c;  // reused from chunk to chunk
    io::for_each_chunk(x, x.rows_for_budget(chunk_bytes), [&](CsrMatrix& raw, std::int64_t r0) {
      kept_chunk(raw, r0, r, gene_map, c);
      visit(c, out_row);
      out_row += c.n_rows;
    });
  };
}

ChunkSource log_normalized_source(io::Store& store, const PipelineResult& r,
                                  const PipelineParams& p, Backend& backend) {
  return log_normalized(kept_counts_source(store, r, p), log_normalize_of(r, p), backend);
}

bool keep_cell(const CellQc& qc, std::int64_t i, const PipelineParams& p) {
  const int ng = qc.n_genes_by_counts[i];
  const double total = qc.total_counts[i];
  bool keep = ng >= p.min_genes && (p.max_genes <= 0 || ng <= p.max_genes);
  if (p.max_pct_qc > 0) keep = keep && qc.pct_counts_qc[i] < p.max_pct_qc;
  if (p.min_counts > 0) keep = keep && total >= p.min_counts;
  if (p.max_counts > 0) keep = keep && total <= p.max_counts;
  return keep;
}

namespace {

// Why too few cells pass: each threshold that removes cells, how many it removes on its own
// and the metric's median, so that the error says which bound to relax.
std::string qc_losses(const CellQc& qc, const PipelineParams& p) {
  const std::size_t n = qc.total_counts.size();
  std::string out;
  auto bound = [&](const std::string& name, double limit, const char* metric, auto&& value,
                   auto&& removes) {
    std::int64_t removed = 0;
    std::vector<double> values;  // the finite ones (a cell without counts has no % mt)
    for (std::size_t i = 0; i < n; ++i) {
      const double v = value(i);
      removed += removes(v) ? 1 : 0;
      if (std::isfinite(v)) values.push_back(v);
    }
    if (removed == 0) return;
    if (values.empty()) values.push_back(std::numeric_limits<double>::quiet_NaN());
    const std::size_t half = values.size() / 2;
    std::nth_element(values.begin(), values.begin() + half, values.end());
    char text[200];
    std::snprintf(text, sizeof text, "%s%s %g removes %lld (median %s %g)", out.empty() ? "" : "; ",
                  name.c_str(), limit, static_cast<long long>(removed), metric, values[half]);
    out += text;
  };
  auto genes = [&](std::size_t i) { return static_cast<double>(qc.n_genes_by_counts[i]); };
  auto counts = [&](std::size_t i) { return qc.total_counts[i]; };
  bound("qc.min_genes", p.min_genes, "n_genes_by_counts", genes,
        [&](double v) { return v < p.min_genes; });
  if (p.max_genes > 0)
    bound("qc.max_genes", p.max_genes, "n_genes_by_counts", genes,
          [&](double v) { return v > p.max_genes; });
  if (p.max_pct_qc > 0)
    bound(
        "qc.max_pct_mito", p.max_pct_qc, "pct_counts_mt",
        [&](std::size_t i) { return qc.pct_counts_qc[i]; },
        [&](double v) { return !(v < p.max_pct_qc); });
  if (p.min_counts > 0)
    bound("qc.min_counts", p.min_counts, "total_counts", counts,
          [&](double v) { return v < p.min_counts; });
  if (p.max_counts > 0)
    bound("qc.max_counts", p.max_counts, "total_counts", counts,
          [&](double v) { return v > p.max_counts; });
  return out.empty() ? out : ": " + out + " (0 turns an upper bound off)";
}

// Thresholds made for one dataset (the tutorial's max_genes 2500 for PBMC 3k) can remove most
// of another's cells: a quarter or more lost is worth a warning, and why.
void warn_of_qc_losses(const PipelineResult& r, const PipelineParams& p, Progress& progress) {
  if (static_cast<double>(r.kept_cells.size()) < 0.75 * static_cast<double>(r.n_cells_total))
    progress.warn("QC kept " + std::to_string(r.kept_cells.size()) + " of " +
                  std::to_string(r.n_cells_total) + " cells" + qc_losses(r.cell_qc, p));
}

}  // namespace

std::int64_t count_kept_cells(const CellQc& qc, const PipelineParams& p) {
  std::int64_t kept = 0;
  for (std::size_t i = 0; i < qc.total_counts.size(); ++i)
    kept += keep_cell(qc, static_cast<std::int64_t>(i), p);
  return kept;
}

// What a run can take from an earlier one on the same store (PipelineHooks::reuse): the
// neighbour graph and everything before it when no parameter up to the graph changed; UMAP and
// Leiden (each depends on the graph only) when their own parameters did not change either;
// the markers when Leiden's labels are reused and their parameters did not change.
ReusableStages reusable_stages(const PipelineHooks& hooks, const PipelineParams& p,
                               std::int64_t n_cells, std::int64_t n_genes,
                               const std::string& backend_name) {
  ReusableStages u;
  const PipelineResult* old = hooks.reuse;
  const PipelineParams* o = hooks.reuse_params;
  // The backend that ran, not the one asked for ("auto" may have fallen back).
  if (!old || !o || old->n_cells_total != n_cells || old->n_genes_total != n_genes ||
      old->x_pca.rows == 0 || old->backend_note != backend_name)
    return u;
  u.graph =
      o->qc_prefix == p.qc_prefix && o->percent_top == p.percent_top &&
      o->min_genes == p.min_genes && o->max_genes == p.max_genes && o->max_pct_qc == p.max_pct_qc &&
      o->min_counts == p.min_counts && o->max_counts == p.max_counts &&
      o->min_cells == p.min_cells && o->target_sum == p.target_sum &&
      o->exclude_highly_expressed == p.exclude_highly_expressed &&
      o->max_fraction == p.max_fraction && o->hvg == p.hvg &&
      o->scale_max_value == p.scale_max_value && o->scale_zero_center == p.scale_zero_center &&
      o->pca == p.pca && o->neighbors == p.neighbors && o->backend == p.backend;
  u.umap = u.graph && o->umap == p.umap && old->x_umap.rows == old->x_pca.rows;
  u.leiden = u.graph && o->leiden == p.leiden &&
             old->leiden.size() == static_cast<std::size_t>(old->x_pca.rows);
  u.markers = u.leiden && o->markers == p.markers && o->wilcoxon == p.wilcoxon;
  return u;
}

PipelineResult run_pipeline(io::Store& store, const PipelineParams& p, Backend& backend,
                            Progress& progress, const PipelineHooks& hooks) {
  p.validate();
  if (!store.X)
    throw Error(store.path, "X",
                "the store has no X (an AnnData without a matrix, such as a --results-only "
                "output): nothing to analyse");
  io::RowChunkReader& x = *store.X;
  PipelineResult r;
  r.n_cells_total = x.n_rows();
  r.n_genes_total = x.n_cols();
  if (r.n_cells_total == 0 || r.n_genes_total == 0)
    throw Error(store.path, "X",
                "matrix is empty (" + std::to_string(r.n_cells_total) + " x " +
                    std::to_string(r.n_genes_total) + ")");
  r.backend_note = backend.name();
  r.leiden_flavor = backend.leiden_flavor(p.leiden);
  const std::size_t warned_before = progress.warnings().size();
  backend.take_host_fallbacks();  // an earlier run's, not this one's
  // Stages the backend ran on its host instead of its device, as warnings.
  const auto warn_of_fallbacks = [&] {
    for (const std::string& why : backend.take_host_fallbacks()) progress.warn(why);
  };
  if (const std::string on_device = backend.device_stages(); !on_device.empty())
    progress.warn(backend.name() + " backend runs " + on_device + " on the device; " +
                  (r.leiden_flavor == "igraph"
                       ? "the filter, scale's statistics and Leiden (igraph flavour)"
                       : "the filter and scale's statistics") +
                  " run on the CPU");
  PipelineParams params = p;
  const ReusableStages reuse =
      reusable_stages(hooks, p, r.n_cells_total, r.n_genes_total, backend.name());
  if (reuse.graph) {
    // Nothing up to the neighbour graph changed: the earlier run's stages, no pass over X.
    const PipelineResult& old = *hooks.reuse;
    r.cell_qc = old.cell_qc;
    r.gene_qc = old.gene_qc;
    r.cell_mask = old.cell_mask;
    r.gene_mask = old.gene_mask;
    r.kept_cells = old.kept_cells;
    warn_of_qc_losses(r, p, progress);  // a re-run warns as the first run did
    r.kept_genes = old.kept_genes;
    r.kept_gene_n_cells = old.kept_gene_n_cells;
    r.excluded_genes = old.excluded_genes;
    r.target_sum = params.target_sum = old.target_sum;
    r.hvg = old.hvg;
    r.hvg_genes = old.hvg_genes;
    r.log_max = old.log_max;
    r.pca = old.pca;
    r.x_pca = old.x_pca;
    r.knn = old.knn;
    r.graph = old.graph;
    r.qc_reused = true;
    for (const char* stage : {"qc", "filter", "normalize", "hvg", "pca", "neighbors"}) {
      const auto named = [&](const auto& s) { return s == stage; };
      if (std::any_of(old.timings.begin(), old.timings.end(),
                      [&](const StageTiming& t) { return named(t.name); }) ||
          std::any_of(old.reused_stages.begin(), old.reused_stages.end(), named))
        r.reused_stages.push_back(stage);
    }
    if (hooks.on_qc)
      hooks.on_qc(std::make_shared<const QcMetrics>(QcMetrics{p.qc_prefix, r.cell_qc, r.gene_qc}));
  } else {
    // Pass A: QC metrics of every cell and gene. The thresholds are known, so the same pass also
    // counts each gene over the cells that pass them (the filter's gene counts).
    std::vector<std::int64_t> n_cells_kept;
    {
      StageClock clock(r, "qc", r.n_cells_total, progress, x, backend);
      const auto& reuse = hooks.reuse_qc;
      if (reuse && reuse->qc_prefix == p.qc_prefix && reuse->cells.top_n == p.percent_top &&
          static_cast<std::int64_t>(reuse->cells.total_counts.size()) == r.n_cells_total &&
          static_cast<std::int64_t>(reuse->genes.total_counts.size()) == r.n_genes_total) {
        r.cell_qc = reuse->cells;
        r.gene_qc = reuse->genes;
        r.qc_reused = true;
      } else {
        const auto qc_genes = genes_with_prefix(store.var.index, p.qc_prefix);
        std::unique_ptr<QcPass> qc = backend.qc_pass(qc_genes, p.percent_top, r.n_genes_total);
        for_each_chunk(x, p.chunk_bytes, progress, "qc", [&](const CsrMatrix& c, std::int64_t r0) {
          qc->add(c, r.cell_qc, [&](std::int64_t i) { return keep_cell(r.cell_qc, r0 + i, p); });
        });
        qc->finish(r.gene_qc, n_cells_kept);
      }
      if (hooks.on_qc)
        hooks.on_qc(
            std::make_shared<const QcMetrics>(QcMetrics{p.qc_prefix, r.cell_qc, r.gene_qc}));
    }

    // Filters are masks; when QC came from an earlier run, a second pass counts each gene over the
    // kept cells.
    {
      StageClock clock(r, "filter", r.n_cells_total, progress, x, backend);
      r.cell_mask.assign(r.n_cells_total, 0);
      for (std::int64_t i = 0; i < r.n_cells_total; ++i) {
        r.cell_mask[i] = keep_cell(r.cell_qc, i, p);
        if (r.cell_mask[i]) r.kept_cells.push_back(i);
      }
      if (r.kept_cells.size() < 3)
        throw Error(store.path, "filter",
                    "only " + std::to_string(r.kept_cells.size()) + " of " +
                        std::to_string(r.n_cells_total) + " cells pass the QC thresholds" +
                        qc_losses(r.cell_qc, p));
      warn_of_qc_losses(r, p, progress);
      std::vector<std::int64_t> n_cells = std::move(n_cells_kept);
      if (n_cells.empty()) {
        n_cells.assign(r.n_genes_total, 0);
        for_each_chunk(x, p.chunk_bytes, progress, "filter",
                       [&](const CsrMatrix& c, std::int64_t r0) {
                         for (std::int64_t i = 0; i < c.n_rows; ++i) {
                           if (!r.cell_mask[r0 + i]) continue;
                           for (auto k = c.indptr[i]; k < c.indptr[i + 1]; ++k)
                             if (c.data[k] > 0) ++n_cells[c.indices[k]];
                         }
                       });
      }
      r.gene_mask.assign(r.n_genes_total, 0);
      for (std::int64_t g = 0; g < r.n_genes_total; ++g)
        if (n_cells[g] >= p.min_cells) {
          r.gene_mask[g] = 1;
          r.kept_genes.push_back(static_cast<GeneIndex>(g));
          r.kept_gene_n_cells.push_back(n_cells[g]);
        }
      if (r.kept_genes.size() < 2)
        throw Error(store.path, "filter", "fewer than two genes pass min_cells");
    }
    const auto gene_map = kept_gene_map(r);
    const auto n_kept_genes = static_cast<std::int64_t>(r.kept_genes.size());
    const auto n_kept_cells = static_cast<std::int64_t>(r.kept_cells.size());

    {
      // Passes of their own for normalize_total's excluded genes and median target, timed as a
      // stage when they run.
      std::optional<StageClock> clock;
      if (p.exclude_highly_expressed || params.target_sum <= 0)
        clock.emplace(r, "normalize", n_kept_cells, progress, x, backend);
      if (p.exclude_highly_expressed) {
        // Genes holding more than max_fraction of some kept cell's total (over kept genes).
        r.excluded_genes.assign(r.kept_genes.size(), 0);
        for_each_kept_cell(x, r, gene_map, p.chunk_bytes, progress, "normalize",
                           [&](const auto& genes, const auto& values) {
                             double t = 0;
                             for (float v : values) t += v;
                             for (std::size_t k = 0; k < genes.size(); ++k)
                               if (values[k] > t * p.max_fraction) r.excluded_genes[genes[k]] = 1;
                           });
      }
      if (params.target_sum <= 0) {
        // normalize_total(target_sum=None): the median total over kept (and not excluded) genes of
        // kept cells.
        std::vector<double> totals;
        for_each_kept_cell(x, r, gene_map, p.chunk_bytes, progress, "normalize",
                           [&](const auto& genes, const auto& values) {
                             double t = 0;
                             for (std::size_t k = 0; k < genes.size(); ++k)
                               if (r.excluded_genes.empty() || !r.excluded_genes[genes[k]])
                                 t += values[k];
                             totals.push_back(t);
                           });
        // numpy's median of the positive totals (scanpy's np.median(counts[counts > 0])): the
        // mean of the two middle ones when their number is even.
        std::erase_if(totals, [](double t) { return !(t > 0); });
        if (totals.empty())
          throw Error(store.path, "normalize.target_sum",
                      "null (the median cell total) needs a kept cell with counts; every kept cell "
                      "is empty");
        const std::size_t half = totals.size() / 2;
        std::nth_element(totals.begin(), totals.begin() + half, totals.end());
        params.target_sum = totals[half];
        if (totals.size() % 2 == 0)
          params.target_sum =
              (*std::max_element(totals.begin(), totals.begin() + half) + params.target_sum) / 2;
      }
    }
    r.target_sum = params.target_sum;

    // Pass B: per-gene moments of the log-normalised data (and of expm1 for seurat).
    std::vector<double> log_sum, log_sumsq;
    {
      StageClock clock(r, "hvg", n_kept_cells, progress, x, backend);
      if (p.hvg.flavor == "seurat_v3") {
        r.hvg = seurat_v3_hvg(x, r, gene_map, p, batch_of_kept_cells(store, r, p.hvg.batch_key),
                              backend, progress);
      } else {
        // Moments of the log data (cell_ranger, and scale's statistics) and of expm1 (seurat);
        // with a batch key, the flavor's moments per batch too.
        const bool seurat = p.hvg.flavor == "seurat";
        // The binned markers' bins end at the log data's maximum, found here on the way.
        const bool binned_markers = p.markers && wilcoxon_binned(p.wilcoxon, n_kept_cells);
        const std::vector<std::int32_t> batch = batch_of_kept_cells(store, r, p.hvg.batch_key);
        const int n_batches = batch.empty() ? 0 : *std::max_element(batch.begin(), batch.end()) + 1;
        GeneMoments m = kept_moments(x, r, gene_map, p.chunk_bytes, backend,
                                     {.n_genes = n_kept_genes,
                                      .expm1 = seurat,
                                      .n_batches = n_batches,
                                      .normalize = log_normalize_of(r, params)},
                                     batch, progress, "hvg", binned_markers ? &r.log_max : nullptr);
        log_sum = std::move(m.sum);
        log_sumsq = std::move(m.sumsq);
        std::vector<double> mean(n_kept_genes), var(n_kept_genes);
        const double n = static_cast<double>(n_kept_cells);
        for (std::int64_t g = 0; g < n_kept_genes; ++g) {
          const double s = seurat ? m.exp_sum[g] : log_sum[g],
                       ss = seurat ? m.exp_sumsq[g] : log_sumsq[g];
          mean[g] = s / n;
          var[g] = sample_variance(s, ss, n);
        }
        if (n_batches > 0) {
          std::vector<std::vector<double>> b_mean(n_batches), b_var(n_batches);
          std::vector<std::vector<char>> b_seen(n_batches);
          for (int b = 0; b < n_batches; ++b) {
            const double nb = static_cast<double>(m.batch_cells[b]);
            const std::size_t row = static_cast<std::size_t>(b) * n_kept_genes;
            b_mean[b].resize(n_kept_genes);
            b_var[b].resize(n_kept_genes);
            b_seen[b].assign(m.batch_seen.begin() + row, m.batch_seen.begin() + row + n_kept_genes);
            for (std::int64_t g = 0; g < n_kept_genes; ++g) {
              b_mean[b][g] = nb > 0 ? m.batch_sum[row + g] / nb : 0.0;
              b_var[b][g] = nb > 1
                                ? sample_variance(m.batch_sum[row + g], m.batch_sumsq[row + g], nb)
                                : std::numeric_limits<double>::quiet_NaN();
            }
          }
          r.hvg = highly_variable_genes_batched(b_mean, b_var, b_seen, p.hvg);
        } else {
          r.hvg = highly_variable_genes(mean, var, p.hvg);
        }
      }
      for (std::int64_t g = 0; g < n_kept_genes; ++g)
        if (r.hvg.highly_variable[g]) r.hvg_genes.push_back(static_cast<std::int32_t>(g));
      if (r.hvg_genes.size() < 2) throw Error(store.path, "hvg", "fewer than two genes selected");
    }

    // Scale statistics of the HVG columns (log data), then Pass C (Gram) and Pass D (projection).
    const auto h = static_cast<std::int32_t>(r.hvg_genes.size());
    {
      StageClock clock(r, "pca", n_kept_cells, progress, x, backend);
      // PCA's passes read only the kept cells' HVG columns (and the rest of each cell's total)
      // and normalise them as they go (on the device, with a device backend).
      const LogNormalize kept_normalize = log_normalize_of(r, params);
      const HvgColumns narrow = hvg_columns(r, kept_normalize.apply);
      const LogNormalize normalize = narrow.normalize(kept_normalize);
      NarrowPasses passes(x, r, narrow, p, progress);
      std::vector<double> sum(h, 0), sumsq(h, 0);
      if (!log_sum.empty()) {  // the HVG pass already summed the log data of every kept gene
        for (std::int32_t c = 0; c < h; ++c) {
          sum[c] = log_sum[r.hvg_genes[c]];
          sumsq[c] = log_sumsq[r.hvg_genes[c]];
        }
      } else {  // seurat_v3 ranked counts: the log data's moments take a pass of their own
        std::unique_ptr<MomentPass> moments =
            backend.moment_pass({.n_genes = narrow.width, .normalize = normalize});
        passes.run("pca: scale", false,
                   [&](CsrMatrix& c, std::int64_t) { moments->add(c, nullptr); });
        const GeneMoments m = moments->finish();
        std::copy_n(m.sum.begin(), h, sum.begin());
        std::copy_n(m.sumsq.begin(), h, sumsq.begin());
      }
      ScaledColumns scaled{.column = narrow.scaled_column(),
                           .mean = std::vector<float>(h),
                           .inv_std = std::vector<float>(h),
                           .max_value = p.scale_max_value};
      const double n = static_cast<double>(n_kept_cells);
      for (std::int32_t c = 0; c < h; ++c) {
        const double m = sum[c] / n;
        const double v = sample_variance(sum[c], sumsq[c], n);
        scaled.mean[c] = p.scale_zero_center ? static_cast<float>(m) : 0.0f;
        scaled.inv_std[c] = v > 0 ? static_cast<float>(1.0 / std::sqrt(v)) : 1.0f;
      }
      std::unique_ptr<GramPass> gram = backend.gram_pass(scaled, normalize);
      passes.run("pca: gram", false, [&](CsrMatrix& c, std::int64_t) { gram->add(c); });
      const GramSums sums = gram->finish();
      gram.reset();
      progress.report("pca: eigensolve", 0.0);
      r.pca = backend.pca(gram_covariance(scaled, sums), gram_mean(scaled, sums),
                          std::min(p.pca.n_comps, h));
      r.x_pca = DenseMatrix(n_kept_cells, static_cast<std::int64_t>(r.pca.variance.size()));
      std::unique_ptr<ProjectionPass> projection =
          backend.projection_pass(r.pca, scaled, normalize);
      passes.run("pca: project", true,
                 [&](CsrMatrix& c, std::int64_t row) { projection->add(c, r.x_pca, row); });
      projection->finish();
      r.pca_cache_bytes = passes.cached_bytes();
    }

    warn_of_fallbacks();
    {
      StageClock clock(r, "neighbors", n_kept_cells, progress, x, backend);
      r.knn = backend.knn(r.x_pca, p.neighbors, progress);
      r.graph = backend.fuzzy_simplicial_set(r.knn, 1.0);
    }
    warn_of_fallbacks();
  }
  const auto n_kept_genes = static_cast<std::int64_t>(r.kept_genes.size());
  const auto n_kept_cells = static_cast<std::int64_t>(r.kept_cells.size());
  if (reuse.umap) {
    r.x_umap = hooks.reuse->x_umap;
    r.umap_init = hooks.reuse->umap_init;
    r.reused_stages.push_back("umap");
  } else {
    StageClock clock(r, "umap", n_kept_cells, progress, x, backend);
    DenseMatrix init;
    if (p.umap.init == "pca") {
      init = initial_layout_from_pca(r.x_pca, p.umap.seed);
      r.umap_init = "pca";
    } else if (p.umap.init == "random") {
      init = random_layout(r.x_pca.rows, p.umap.seed);
      r.umap_init = "random";
    } else {
      SpectralResult s = spectral_layout(r.graph.connectivities, r.x_pca, p.umap.seed,
                                         backend.spectral_eigensolver());
      init = std::move(s.embedding);
      r.umap_init = std::move(s.note);
    }
    r.x_umap = backend.umap(r.graph.connectivities, std::move(init), p.umap, progress,
                            hooks.on_umap_epoch);
  }
  if (reuse.leiden) {
    r.leiden = hooks.reuse->leiden;
    r.n_clusters = hooks.reuse->n_clusters;
    r.leiden_flavor = hooks.reuse->leiden_flavor;
    r.reused_stages.push_back("leiden");
  } else {
    StageClock clock(r, "leiden", n_kept_cells, progress, x, backend);
    progress.check();
    r.leiden = backend.leiden(r.graph.connectivities, p.leiden, progress);
    r.n_clusters = r.leiden.empty() ? 0 : *std::max_element(r.leiden.begin(), r.leiden.end()) + 1;
  }
  if (reuse.markers) {
    r.markers = hooks.reuse->markers;
    if (!r.markers.empty()) r.reused_stages.push_back("markers");
  } else if (p.markers && r.n_clusters >= 2) {
    StageClock clock(r, "markers", n_kept_cells, progress, x, backend);
    WilcoxonOptions wilcoxon = p.wilcoxon;
    wilcoxon.gene_nnz_bound = r.kept_gene_n_cells;  // expressing cells per gene, from the filter
    // The bins' upper edge is the data's maximum, which the HVG pass found (not seurat_v3's).
    if (wilcoxon.bin_max <= 0 && r.log_max > 0) wilcoxon.bin_max = r.log_max;
    // Exact ranks read the counts once per gene block. When the counts fit gene_cache_bytes one
    // pass keeps them gene by gene; the CPU then ranks each gene from memory, and a device
    // backend replays them for its later passes.
    const bool several_passes = !wilcoxon_uses_bins(wilcoxon, r.leiden, n_kept_cells, r.n_clusters);
    const LogNormalize n = log_normalize_of(r, params);
    const auto builder = [&] {
      return GeneMajorBuilder(n_kept_cells, n_kept_genes, gene_cache_budget(p), n.excluded,
                              r.kept_gene_n_cells);
    };
    const bool cache = p.gene_cache_bytes > 0 && (several_passes || hooks.keep_counts_by_gene);
    const std::shared_ptr<const GeneMajorCounts> held =
        reuse.graph && hooks.counts_by_gene && hooks.counts_by_gene->n_rows() == n_kept_cells &&
                hooks.counts_by_gene->n_cols() == n_kept_genes &&
                hooks.counts_by_gene->bytes() <= gene_cache_budget(p)
            ? hooks.counts_by_gene
            : nullptr;
    if (held) {
      r.counts_by_gene = held;
      r.markers = backend.name() == "cpu"
                      ? rank_genes_groups(*held, n, r.leiden, r.n_clusters, wilcoxon, progress)
                      : backend.rank_genes_groups(held->source(), n, n_kept_cells, n_kept_genes,
                                                  r.leiden, r.n_clusters, wilcoxon, progress);
    } else if (cache && backend.name() == "cpu") {
      GeneMajorBuilder keep = builder();
      struct OverBudget {};  // ends the pass: the counts do not fit after all
      try {
        if (!keep.gave_up())
          tee_source(kept_counts_source(store, r, params),
                     keep)([&](CsrMatrix& c, std::int64_t row0) {
            progress.check();
            if (keep.gave_up()) throw OverBudget{};
            progress.report("markers: reading the counts", static_cast<double>(row0 + c.n_rows) /
                                                               static_cast<double>(n_kept_cells));
          });
      } catch (const OverBudget&) {
      }
      r.counts_by_gene = keep.finish();
      r.markers =
          r.counts_by_gene
              ? rank_genes_groups(*r.counts_by_gene, n, r.leiden, r.n_clusters, wilcoxon, progress)
              : backend.rank_genes_groups(kept_counts_source(store, r, params), n, n_kept_cells,
                                          n_kept_genes, r.leiden, r.n_clusters, wilcoxon, progress);
    } else if (cache) {
      CachingSource cached(kept_counts_source(store, r, params), builder());
      r.markers = backend.rank_genes_groups(cached.source(), n, n_kept_cells, n_kept_genes,
                                            r.leiden, r.n_clusters, wilcoxon, progress);
      r.counts_by_gene = cached.counts();
    } else {
      r.markers = backend.rank_genes_groups(kept_counts_source(store, r, params),
                                            log_normalize_of(r, params), n_kept_cells, n_kept_genes,
                                            r.leiden, r.n_clusters, wilcoxon, progress);
    }
  }
  warn_of_fallbacks();
  const std::vector<std::string> warned = progress.warnings();
  r.warnings.assign(warned.begin() + static_cast<std::ptrdiff_t>(warned_before), warned.end());
  r.device_peak_bytes = backend.device_peak_bytes();
  progress.report("done", 1.0);
  return r;
}

}  // namespace orrery::compute
