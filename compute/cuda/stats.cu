// Eigen (through backend.hpp) is used on the host only here.
#define EIGEN_NO_CUDA
#include "compute/cuda/stats.cuh"

#include <algorithm>
#include <cub/device/device_segmented_sort.cuh>
#include <vector>

#include "compute/cuda/chunks.cuh"
#include "compute/elementwise.hpp"
#include "compute/qc_math.hpp"

namespace orrery::compute::gpu {
namespace {

// One warp per row: sum the row (without excluded columns, when a mask is given), then rewrite
// its values.
__global__ void normalize_log1p_rows(const std::int64_t* indptr, const std::int32_t* indices,
                                     const char* excluded, float* data, std::int64_t n_rows,
                                     double target_sum) {
  const std::int64_t warp = global_thread() / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= n_rows) return;
  const auto b = indptr[warp], e = indptr[warp + 1];
  double total = 0.0;
  for (auto k = b + lane; k < e; k += 32)
    if (!excluded || !excluded[indices[k]]) total += data[k];
  for (int off = 16; off > 0; off /= 2) total += __shfl_down_sync(0xffffffffu, total, off);
  total = __shfl_sync(0xffffffffu, total, 0);
  for (auto k = b + lane; k < e; k += 32)
    data[k] = normalize_log1p_value(data[k], total, target_sum);
}

// ---- QC ---------------------------------------------------------------------------------------

__global__ void qc_cells(const std::int64_t* indptr, const std::int32_t* indices, const float* data,
                         std::int64_t n_rows, const char* qc_genes, std::int32_t* n_genes,
                         double* total, double* total_qc, double* pct_qc) {
  const std::int64_t r = global_thread();
  if (r >= n_rows) return;
  const auto b = indptr[r];
  const CellSums s = cell_sums(data + b, indices + b, indptr[r + 1] - b, qc_genes);
  n_genes[r] = s.n_genes;
  total[r] = s.total;
  total_qc[r] = s.total_qc;
  pct_qc[r] = percent_of(s.total_qc, s.total);
}

__global__ void qc_top(const std::int64_t* indptr, const float* largest_first, std::int64_t n_rows,
                       const int* top_n, int m, const double* total, double* out) {
  const std::int64_t r = global_thread();
  if (r >= n_rows) return;
  const auto b = indptr[r];
  top_n_percents(largest_first + b, indptr[r + 1] - b, top_n, m, total[r], out + r, n_rows);
}

// One thread per gene adds the block's entries, in row order, to the running sums.
__global__ void qc_genes_sums(const std::int64_t* start, const std::int32_t* perm,
                              const std::int32_t* row_of, const float* data, std::int64_t n_cols,
                              const char* keep, std::int64_t* n_cells, double* total,
                              std::int64_t* kept) {
  const std::int64_t g = global_thread();
  if (g >= n_cols) return;
  std::int64_t cells = n_cells[g], kept_cells = kept[g];
  double sum = total[g];
  for (auto p = start[g]; p < start[g + 1]; ++p) {
    const auto k = perm[p];
    const float v = data[k];
    cells += v > 0.0f;
    sum += v;
    kept_cells += keep[row_of[k]] && v > 0.0f;
  }
  n_cells[g] = cells;
  total[g] = sum;
  kept[g] = kept_cells;
}

class CudaQcPass final : public QcPass {
 public:
  CudaQcPass(Device& d, const std::vector<char>& qc_genes, std::vector<int> percent_top,
             std::int64_t n_genes)
      : d_(d),
        percent_top_(std::move(percent_top)),
        n_genes_(n_genes),
        qc_genes_(d, qc_genes.size()),
        top_n_(d, percent_top_.size()),
        n_cells_(d, n_genes),
        total_(d, n_genes),
        kept_(d, n_genes) {
    qc_genes_.upload(qc_genes.data(), qc_genes.size());
    top_n_.upload(percent_top_.data(), percent_top_.size());
    n_cells_.zero();
    total_.zero();
    kept_.zero();
  }

  void add(const CsrMatrix& c, CellQc& cells,
           const std::function<bool(std::int64_t)>& keep) override {
    const int m = static_cast<int>(percent_top_.size());
    const std::size_t base = append_cells(cells, percent_top_, c.n_rows);
    std::vector<char> keep_rows;
    for (const RowBlock& b : row_blocks(c)) {
      const BlockStager::Staged block = stager_.put(c, b);
      const std::int64_t rows = block.rows, nnz = block.nnz;
      const std::int64_t* indptr = block.indptr;
      const std::int32_t* indices = block.indices;
      const float* data = block.data;
      const std::size_t at = base + static_cast<std::size_t>(b.r0);

      DeviceBuffer<std::int32_t> n_genes(d_, rows);
      DeviceBuffer<double> total(d_, rows), total_qc(d_, rows), pct_qc(d_, rows);
      qc_cells<<<blocks_for(rows, 128), 128, 0, d_.stream>>>(
          indptr, indices, data, rows, qc_genes_.get(), n_genes.get(), total.get(), total_qc.get(),
          pct_qc.get());
      check_launch();
      n_genes.download(cells.n_genes_by_counts.data() + at, rows);
      total.download(cells.total_counts.data() + at, rows);
      total_qc.download(cells.total_counts_qc.data() + at, rows);
      pct_qc.download(cells.pct_counts_qc.data() + at, rows);
      if (m > 0) {
        DeviceBuffer<float> sorted(d_, nnz);
        std::size_t temp_bytes = 0;
        ORRERY_CUDA_CHECK(cub::DeviceSegmentedSort::SortKeysDescending(
            nullptr, temp_bytes, data, sorted.get(), nnz, rows, indptr, indptr + 1, d_.stream));
        DeviceBuffer<char> temp(d_, temp_bytes);
        ORRERY_CUDA_CHECK(cub::DeviceSegmentedSort::SortKeysDescending(
            temp.get(), temp_bytes, data, sorted.get(), nnz, rows, indptr, indptr + 1, d_.stream));
        DeviceBuffer<double> top(d_, static_cast<std::size_t>(m) * rows);
        qc_top<<<blocks_for(rows, 128), 128, 0, d_.stream>>>(
            indptr, sorted.get(), rows, top_n_.get(), m, total.get(), top.get());
        check_launch();
        for (int t = 0; t < m; ++t)
          ORRERY_CUDA_CHECK(cudaMemcpyAsync(cells.pct_counts_in_top[t].data() + at,
                                            top.get() + static_cast<std::int64_t>(t) * rows,
                                            rows * sizeof(double), cudaMemcpyDeviceToHost,
                                            d_.stream));
      }
      d_.sync();  // the block's cells are in `cells`: keep() may look at them

      keep_rows.resize(static_cast<std::size_t>(rows));
      for (std::int64_t i = 0; i < rows; ++i) keep_rows[i] = keep(b.r0 + i);
      DeviceBuffer<char> kept_rows(d_, rows);
      kept_rows.upload(keep_rows.data(), keep_rows.size());
      DeviceBuffer<std::int32_t> row_of(d_, nnz);
      rows_of_entries(d_, indptr, rows, row_of.get());
      const ColumnOrder order = order_by_column(d_, indices, nnz, n_genes_);
      qc_genes_sums<<<blocks_for(n_genes_, 128), 128, 0, d_.stream>>>(
          order.start.get(), order.perm.get(), row_of.get(), data, n_genes_, kept_rows.get(),
          n_cells_.get(), total_.get(), kept_.get());
      check_launch();
      // The device buffers are freed in stream order, after the kernels that read them.
    }
    n_cells_added_ += c.n_rows;
  }

  void finish(GeneQc& genes, std::vector<std::int64_t>& n_cells_kept) override {
    genes.n_cells_by_counts.resize(n_genes_);
    genes.total_counts.resize(n_genes_);
    n_cells_kept.resize(n_genes_);
    n_cells_.download(genes.n_cells_by_counts.data(), n_genes_);
    total_.download(genes.total_counts.data(), n_genes_);
    kept_.download(n_cells_kept.data(), n_genes_);
    d_.sync();
    genes.n_cells = n_cells_added_;
  }

 private:
  Device& d_;
  std::vector<int> percent_top_;
  std::int64_t n_genes_;
  DeviceBuffer<char> qc_genes_;
  DeviceBuffer<int> top_n_;
  DeviceBuffer<std::int64_t> n_cells_;
  DeviceBuffer<double> total_;
  DeviceBuffer<std::int64_t> kept_;
  std::int64_t n_cells_added_ = 0;
  BlockStager stager_{d_};
};

// ---- moments of the log data ------------------------------------------------------------------

struct MomentArrays {
  const double* clip;  // nullptr: no clipping
  const double* batch_clip;
  double* sum;
  double* sumsq;
  double* exp_sum;  // nullptr without expm1 moments
  double* exp_sumsq;
  double* batch_sum;  // nullptr without batches
  double* batch_sumsq;
  char* batch_seen;
};

// One thread per gene adds the block's log values, in row order, to the running sums (the CPU
// backend's CpuMomentPass, term for term).
__global__ void gene_moments(const std::int64_t* start, const std::int32_t* perm,
                             const std::int32_t* row_of, const float* data,
                             const std::int32_t* batch, std::int64_t n_cols, MomentArrays m) {
  const std::int64_t g = global_thread();
  if (g >= n_cols) return;
  double s = m.sum[g], ss = m.sumsq[g];
  double es = m.exp_sum ? m.exp_sum[g] : 0.0, ess = m.exp_sum ? m.exp_sumsq[g] : 0.0;
  for (auto p = start[g]; p < start[g + 1]; ++p) {
    const auto k = perm[p];
    const double raw = data[k];
    const double v = m.clip ? clip_above(raw, m.clip[g]) : raw;
    s += v;
    ss += product_rn(v, v);
    const double e = m.exp_sum ? expm1_value(raw) : raw;  // the flavor's value
    if (m.exp_sum) {
      es += e;
      ess += product_rn(e, e);
    }
    if (batch) {
      const std::int64_t at = static_cast<std::int64_t>(batch[row_of[k]]) * n_cols + g;
      const double b = m.batch_clip ? clip_above(e, m.batch_clip[at]) : e;
      m.batch_sum[at] += b;
      m.batch_sumsq[at] += product_rn(b, b);
      m.batch_seen[at] |= raw != 0;
    }
  }
  m.sum[g] = s;
  m.sumsq[g] = ss;
  if (m.exp_sum) {
    m.exp_sum[g] = es;
    m.exp_sumsq[g] = ess;
  }
}

class CudaMomentPass final : public MomentPass {
 public:
  CudaMomentPass(Device& d, const MomentOptions& o)
      : d_(d),
        o_(o),
        clip_(d, o.clip ? o.clip->size() : 0),
        batch_clip_(d, o.batch_clip ? o.batch_clip->size() : 0),
        sum_(d, o.n_genes),
        sumsq_(d, o.n_genes),
        exp_sum_(d, o.expm1 ? o.n_genes : 0),
        exp_sumsq_(d, o.expm1 ? o.n_genes : 0),
        batch_sum_(d, static_cast<std::size_t>(o.n_genes) * o.n_batches),
        batch_sumsq_(d, static_cast<std::size_t>(o.n_genes) * o.n_batches),
        batch_seen_(d, static_cast<std::size_t>(o.n_genes) * o.n_batches) {
    if (o.clip) {
      if (static_cast<std::int64_t>(o.clip->size()) != o.n_genes)
        throw Error("", "hvg", "one clip value per gene is required");
      clip_.upload(o.clip->data(), o.clip->size());
    }
    if (o.batch_clip) {
      if (o.batch_clip->size() != static_cast<std::size_t>(o.n_genes) * o.n_batches)
        throw Error("", "hvg", "one clip value per batch and gene is required");
      batch_clip_.upload(o.batch_clip->data(), o.batch_clip->size());
    }
    for (auto* b : {&sum_, &sumsq_, &exp_sum_, &exp_sumsq_, &batch_sum_, &batch_sumsq_}) b->zero();
    batch_seen_.zero();
    batch_cells_.assign(o.n_batches, 0);
  }

  void add(CsrMatrix& c, const std::int32_t* batch) override {
    if (batch)
      for (std::int64_t i = 0; i < c.n_rows; ++i) ++batch_cells_[batch[i]];
    for (const RowBlock& b : row_blocks(c)) {
      const BlockStager::Staged s = stager_.put(c, b, batch);  // normalised where asked
      const std::int64_t rows = s.rows, nnz = s.nnz;
      DeviceBuffer<std::int32_t> row_of(d_, batch ? nnz : 0);
      if (batch) {
        rows_of_entries(d_, s.indptr, rows, row_of.get());
      }
      const ColumnOrder order = order_by_column(d_, s.indices, nnz, o_.n_genes);
      const MomentArrays m{o_.clip ? clip_.get() : nullptr,
                           o_.batch_clip ? batch_clip_.get() : nullptr,
                           sum_.get(),
                           sumsq_.get(),
                           o_.expm1 ? exp_sum_.get() : nullptr,
                           o_.expm1 ? exp_sumsq_.get() : nullptr,
                           batch ? batch_sum_.get() : nullptr,
                           batch ? batch_sumsq_.get() : nullptr,
                           batch ? batch_seen_.get() : nullptr};
      gene_moments<<<blocks_for(o_.n_genes, 128), 128, 0, d_.stream>>>(
          order.start.get(), order.perm.get(), row_of.get(), s.data, s.per_row, o_.n_genes, m);
      check_launch();
    }
  }

  GeneMoments finish() override {
    GeneMoments out;
    auto get = [&](const DeviceBuffer<double>& from, std::vector<double>& to) {
      to.resize(from.size());
      from.download(to.data(), to.size());
    };
    get(sum_, out.sum);
    get(sumsq_, out.sumsq);
    get(exp_sum_, out.exp_sum);
    get(exp_sumsq_, out.exp_sumsq);
    get(batch_sum_, out.batch_sum);
    get(batch_sumsq_, out.batch_sumsq);
    out.batch_seen.resize(batch_seen_.size());
    batch_seen_.download(out.batch_seen.data(), out.batch_seen.size());
    d_.sync();
    out.batch_cells = batch_cells_;
    return out;
  }

 private:
  Device& d_;
  MomentOptions o_;
  DeviceBuffer<double> clip_, batch_clip_;
  DeviceBuffer<double> sum_, sumsq_, exp_sum_, exp_sumsq_, batch_sum_, batch_sumsq_;
  DeviceBuffer<char> batch_seen_;
  std::vector<std::int64_t> batch_cells_;
  // Last: it waits for the kernels before the buffers above go.
  BlockStager stager_{d_, o_.normalize};
};

}  // namespace

void normalize_log1p(Device& d, const std::int64_t* indptr, const std::int32_t* indices,
                     const char* excluded, float* data, std::int64_t n_rows, double target_sum) {
  if (n_rows == 0) return;
  normalize_log1p_rows<<<blocks_for(n_rows * 32, 256), 256, 0, d.stream>>>(
      indptr, indices, excluded, data, n_rows, target_sum);
  check_launch();
}

std::unique_ptr<QcPass> make_qc_pass(Device& d, const std::vector<char>& qc_genes,
                                     const std::vector<int>& percent_top, std::int64_t n_genes) {
  return std::make_unique<CudaQcPass>(d, qc_genes, percent_top, n_genes);
}

std::unique_ptr<MomentPass> make_moment_pass(Device& d, const MomentOptions& options) {
  return std::make_unique<CudaMomentPass>(d, options);
}

}  // namespace orrery::compute::gpu
