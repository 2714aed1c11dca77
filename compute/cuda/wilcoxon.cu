// Eigen (through backend.hpp) is used on the host only here.
#define EIGEN_NO_CUDA
#include "compute/cuda/wilcoxon.cuh"

#include <algorithm>
#include <cstring>
#include <cub/device/device_segmented_sort.cuh>
#include <limits>
#include <vector>

#include "compute/cuda/chunks.cuh"
#include "compute/wilcoxon_math.hpp"

// DeviceSegmentedSort takes 64-bit item and segment counts from CCCL 3 (CUDA 13); older ones
// take int and would silently narrow counts past 2^31.
static_assert(CUB_VERSION >= 300000, "CUB from CCCL 3 (CUDA 13) or later is required");

namespace orrery::compute::gpu {
namespace {

// One gene's entries for rank_sums_vs_rest: its non-zero values sorted (exact, weight 1) ...
struct SortedOnDevice {
  const float* v;
  const std::int32_t* l;
  ORRERY_HD float value(std::int64_t j) const { return v[j]; }
  ORRERY_HD int label(std::int64_t j) const { return l[j]; }
  ORRERY_HD double weight(std::int64_t) const { return 1.0; }
};

// ... or its histogram (binned): entry j = bin * n_groups + label, weighted by its count, in
// the order the CPU walks them.
struct HistogramOnDevice {
  const std::uint32_t* h;
  int n_groups;
  ORRERY_HD float value(std::int64_t j) const { return static_cast<float>(j / n_groups + 1); }
  ORRERY_HD int label(std::int64_t j) const { return static_cast<int>(j % n_groups); }
  ORRERY_HD double weight(std::int64_t j) const { return h[j]; }
};

// The statistics pass: per gene (one thread, its cells in row order, as the CPU adds them) the
// sum and count of each group's non-zero values; the largest value and whether any is < 0.
__global__ void group_sums(const std::int64_t* start, const std::int32_t* perm,
                           const std::int32_t* row_of, const float* data,
                           const std::int32_t* labels, std::int64_t n_genes, double* sum,
                           std::int64_t* nnz, unsigned* max_bits, int* negative) {
  const std::int64_t g = global_thread();
  if (g >= n_genes) return;
  float largest = 0.0f;
  bool below = false;
  for (auto p = start[g]; p < start[g + 1]; ++p) {
    const auto k = perm[p];
    const float v = data[k];
    const std::int32_t l = labels[row_of[k]];
    if (v == 0.0f || l < 0) continue;
    const std::int64_t at = static_cast<std::int64_t>(l) * n_genes + g;
    sum[at] += v;
    ++nnz[at];
    largest = fmaxf(largest, v);
    below = below || v < 0.0f;
  }
  // Non-negative floats order as their bit patterns.
  if (largest > 0.0f) atomicMax(max_bits, __float_as_uint(largest));
  if (below) atomicOr(negative, 1);
}

// Exact: each gene of [g0, g1) appends its labelled non-zero values, in row order, after the
// ones earlier chunks appended (filled[g - g0] of them, from offset[g - g0]).
__global__ void gather_entries(const std::int64_t* start, const std::int32_t* perm,
                               const std::int32_t* row_of, const float* data,
                               const std::int32_t* labels, std::int64_t g0, std::int64_t g1,
                               const std::int64_t* offset, std::int64_t* filled, float* values,
                               std::int32_t* value_labels) {
  const std::int64_t g = g0 + global_thread();
  if (g >= g1) return;
  std::int64_t at = offset[g - g0] + filled[g - g0];
  for (auto p = start[g]; p < start[g + 1]; ++p) {
    const auto k = perm[p];
    const float v = data[k];
    const std::int32_t l = labels[row_of[k]];
    if (v == 0.0f || l < 0) continue;
    values[at] = v;
    value_labels[at] = l;
    ++at;
  }
  filled[g - g0] = at - offset[g - g0];
}

// Binned: each gene of [g0, g1) counts its labelled non-zero values per (bin, group).
__global__ void bin_entries(const std::int64_t* start, const std::int32_t* perm,
                            const std::int32_t* row_of, const float* data,
                            const std::int32_t* labels, std::int64_t g0, std::int64_t g1,
                            int n_groups, int n_bins, float bin_max, std::uint32_t* hist) {
  const std::int64_t g = g0 + global_thread();
  if (g >= g1) return;
  std::uint32_t* h = hist + (g - g0) * n_groups * n_bins;
  for (auto p = start[g]; p < start[g + 1]; ++p) {
    const auto k = perm[p];
    const float v = data[k];
    const std::int32_t l = labels[row_of[k]];
    if (!(v > 0.0f) || l < 0) continue;  // negative data are refused after the statistics
    ++h[wilcoxon_bin(v, bin_max, n_bins) * n_groups + l];
  }
}

// Rank sums of genes [g0, g1): r_in and zeros gene-major ([(g - g0) * n_groups + l]).
__global__ void rank_sorted(const float* values, const std::int32_t* value_labels,
                            const std::int64_t* offset, std::int64_t width, const double* zeros,
                            const double* zeros_total, int n_groups, double* r_in,
                            double* tie_sum) {
  const std::int64_t w = global_thread();
  if (w >= width) return;
  const auto b = offset[w], n = offset[w + 1] - b;
  tie_sum[w] =
      rank_sums_vs_rest(SortedOnDevice{values + b, value_labels + b}, n, zeros + w * n_groups,
                        zeros_total[w], n_groups, r_in + w * n_groups);
}

__global__ void rank_binned(const std::uint32_t* hist, std::int64_t width, int n_bins,
                            const double* zeros, const double* zeros_total, int n_groups,
                            double* r_in, double* tie_sum) {
  const std::int64_t w = global_thread();
  if (w >= width) return;
  const std::int64_t entries = static_cast<std::int64_t>(n_groups) * n_bins;
  tie_sum[w] =
      rank_sums_vs_rest(HistogramOnDevice{hist + w * entries, n_groups}, entries,
                        zeros + w * n_groups, zeros_total[w], n_groups, r_in + w * n_groups);
}

// Calls visit(block) for every row block of every chunk of `source`: its values on the device,
// each entry's row, the entries in column order, and the block's first row among all cells.
struct DeviceBlock {
  BlockStager::Staged values;
  DeviceBuffer<std::int32_t> row_of;
  ColumnOrder order;
  std::int64_t first_row;
};

// The chunks of one rank_genes_groups on the device: copied through one stager for all of its
// passes (its page-locked buffers are costly to make), which normalises them as asked.
struct DeviceChunks {
  const ChunkSource& source;
  BlockStager stager;
};

// Progress goes from `from` to `to` over the cells.
template <typename Visit>
void for_each_device_block(Device& d, DeviceChunks& chunks, std::int64_t n_genes,
                           std::int64_t n_cells, Progress& progress, const char* stage, double from,
                           double to, Visit&& visit) {
  chunks.source([&](const CsrMatrix& c, std::int64_t row0) {
    progress.check();
    for (const RowBlock& b : row_blocks(c)) {
      const BlockStager::Staged on_device = chunks.stager.put(c, b);
      DeviceBuffer<std::int32_t> row_of(d, on_device.nnz);
      rows_of_entries(d, on_device.indptr, on_device.rows, row_of.get());
      ColumnOrder order = order_by_column(d, on_device.indices, on_device.nnz, n_genes);
      DeviceBlock block{on_device, std::move(row_of), std::move(order), row0 + b.r0};
      visit(block);
    }
    progress.report(stage, from + (to - from) * static_cast<double>(row0 + c.n_rows) /
                                      static_cast<double>(n_cells));
  });
}

}  // namespace

std::vector<GroupMarkers> rank_genes_groups(Device& d, const ChunkSource& source,
                                            const LogNormalize& normalize, std::int64_t n_cells,
                                            std::int64_t n_genes,
                                            const std::vector<std::int32_t>& labels, int n_groups,
                                            const WilcoxonOptions& o, Progress& progress) {
  const bool binned = wilcoxon_uses_bins(o, labels, n_cells, n_groups);
  if (n_genes == 0)  // nothing to launch kernels over (and no values to normalise)
    return compute::rank_genes_groups(source, n_cells, 0, labels, n_groups, o, progress);
  RankSumTable t;
  t.size.assign(n_groups, 0);
  for (auto l : labels)
    if (l >= 0) ++t.size[l];
  std::int64_t active = 0;
  for (auto s : t.size) active += s;
  const std::size_t table = static_cast<std::size_t>(n_groups) * n_genes;

  DeviceChunks chunks{source, BlockStager(d, normalize)};
  // Gene blocks [g0, g1) whose entries (sort input, output and the sort's own copies: 24 bytes
  // each) or histograms fit in a quarter of the free device memory (at least the options' block
  // size), the rest left to each chunk's blocks while gathering. ORRERY_CUDA_GENE_BLOCK_BYTES
  // caps it (tests: several gene blocks on small data).
  const auto budget = static_cast<std::size_t>(
      env_cap("ORRERY_CUDA_GENE_BLOCK_BYTES",
              static_cast<std::int64_t>(std::max(o.block_bytes, d.available_bytes() / 4))));
  auto block_end = [&](std::int64_t g0, const std::vector<std::int64_t>& gene_nnz) {
    std::int64_t g1 = g0;
    std::size_t bytes = 0;
    while (g1 < n_genes) {
      const std::size_t need = binned ? sizeof(std::uint32_t) * n_groups * o.n_bins
                                      : 3 * (sizeof(float) + sizeof(std::int32_t)) *
                                            static_cast<std::size_t>(gene_nnz[g1]);
      if (g1 > g0 && bytes + need > budget) break;
      bytes += need;
      ++g1;
    }
    return g1;
  };
  // Binned with the bins' edge given: the statistics pass fills the first block's histograms
  // too, which saves one pass over the data (as the CPU's rank_genes_groups).
  const std::int64_t early_end = binned && o.bin_max > 0 ? block_end(0, {}) : 0;
  DeviceBuffer<std::uint32_t> early_hist(
      d, static_cast<std::size_t>(early_end) * n_groups * (early_end ? o.n_bins : 0));
  early_hist.zero();
  DeviceBuffer<std::int32_t> cell_labels(d, labels.size());
  cell_labels.upload(labels.data(), labels.size());
  DeviceBuffer<double> sum(d, table);
  DeviceBuffer<std::int64_t> nnz(d, table);
  DeviceBuffer<unsigned> max_bits(d, 1);
  DeviceBuffer<int> negative(d, 1);
  sum.zero();
  nnz.zero();
  max_bits.zero();
  negative.zero();
  for_each_device_block(d, chunks, n_genes, n_cells, progress, "markers: statistics", 0.0, 1.0,
                        [&](const DeviceBlock& b) {
                          group_sums<<<blocks_for(n_genes, 128), 128, 0, d.stream>>>(
                              b.order.start.get(), b.order.perm.get(), b.row_of.get(),
                              b.values.data, cell_labels.get() + b.first_row, n_genes, sum.get(),
                              nnz.get(), max_bits.get(), negative.get());
                          check_launch();
                          if (early_end == 0) return;
                          bin_entries<<<blocks_for(early_end, 128), 128, 0, d.stream>>>(
                              b.order.start.get(), b.order.perm.get(), b.row_of.get(),
                              b.values.data, cell_labels.get() + b.first_row, 0, early_end,
                              n_groups, o.n_bins, o.bin_max, early_hist.get());
                          check_launch();
                        });
  t.sum.resize(table);
  t.nnz.resize(table);
  unsigned largest_bits = 0;
  int below = 0;
  sum.download(t.sum.data(), table);
  nnz.download(t.nnz.data(), table);
  max_bits.download(&largest_bits, 1);
  negative.download(&below, 1);
  d.sync();
  if (binned && below)
    throw Error("", "rank_genes_groups.method", "binned ranks need non-negative data");
  float largest = 0.0f;
  std::memcpy(&largest, &largest_bits, sizeof largest);
  const float bin_max = o.bin_max > 0 ? o.bin_max : std::max(largest, 1e-12f);

  // Per gene: its non-zero count and each group's zeros (gene-major for the rank kernels).
  std::vector<std::int64_t> gene_nnz(n_genes, 0);
  for (int l = 0; l < n_groups; ++l)
    for (std::int64_t g = 0; g < n_genes; ++g)
      gene_nnz[g] += t.nnz[static_cast<std::size_t>(l) * n_genes + g];
  t.r_in.assign(table, 0.0);
  t.tie_sum.assign(n_genes, 0.0);

  std::int64_t g0 = 0;
  while (g0 < n_genes) {
    const bool gathered = g0 == 0 && early_end > 0;  // the statistics pass filled the block
    const std::int64_t g1 = gathered ? early_end : block_end(g0, gene_nnz);
    const std::int64_t width = g1 - g0;
    const double from = static_cast<double>(g0) / n_genes, to = static_cast<double>(g1) / n_genes;
    std::vector<double> zeros(static_cast<std::size_t>(width) * n_groups), zeros_total(width);
    for (std::int64_t w = 0; w < width; ++w) {
      for (int l = 0; l < n_groups; ++l)
        zeros[w * n_groups + l] =
            static_cast<double>(t.size[l] - t.nnz[static_cast<std::size_t>(l) * n_genes + g0 + w]);
      zeros_total[w] = static_cast<double>(active - gene_nnz[g0 + w]);
    }
    DeviceBuffer<double> d_zeros(d, zeros.size()), d_zeros_total(d, width);
    d_zeros.upload(zeros.data(), zeros.size());
    d_zeros_total.upload(zeros_total.data(), zeros_total.size());
    DeviceBuffer<double> r_in(d, zeros.size()), tie_sum(d, width);
    r_in.zero();

    if (binned) {
      DeviceBuffer<std::uint32_t> hist =
          gathered ? std::move(early_hist)
                   : DeviceBuffer<std::uint32_t>(
                         d, static_cast<std::size_t>(width) * n_groups * o.n_bins);
      if (!gathered) {  // this block's histograms were not filled by the statistics pass
        hist.zero();
        for_each_device_block(d, chunks, n_genes, n_cells, progress, "markers: ranks", from, to,
                              [&](const DeviceBlock& b) {
                                bin_entries<<<blocks_for(width, 128), 128, 0, d.stream>>>(
                                    b.order.start.get(), b.order.perm.get(), b.row_of.get(),
                                    b.values.data, cell_labels.get() + b.first_row, g0, g1,
                                    n_groups, o.n_bins, bin_max, hist.get());
                                check_launch();
                              });
      }
      rank_binned<<<blocks_for(width, 128), 128, 0, d.stream>>>(
          hist.get(), width, o.n_bins, d_zeros.get(), d_zeros_total.get(), n_groups, r_in.get(),
          tie_sum.get());
      check_launch();
    } else {
      std::vector<std::int64_t> offset(width + 1, 0);
      for (std::int64_t w = 0; w < width; ++w) offset[w + 1] = offset[w] + gene_nnz[g0 + w];
      const std::int64_t entries = offset[width];
      DeviceBuffer<std::int64_t> d_offset(d, offset.size()), filled(d, width);
      d_offset.upload(offset.data(), offset.size());
      filled.zero();
      DeviceBuffer<float> values(d, entries), sorted(d, entries);
      DeviceBuffer<std::int32_t> value_labels(d, entries), sorted_labels(d, entries);
      for_each_device_block(d, chunks, n_genes, n_cells, progress, "markers: ranks", from, to,
                            [&](const DeviceBlock& b) {
                              gather_entries<<<blocks_for(width, 128), 128, 0, d.stream>>>(
                                  b.order.start.get(), b.order.perm.get(), b.row_of.get(),
                                  b.values.data, cell_labels.get() + b.first_row, g0, g1,
                                  d_offset.get(), filled.get(), values.get(), value_labels.get());
                              check_launch();
                            });
      if (entries > 0) {
        // Each gene's values in increasing order; equal values keep their row order.
        std::size_t temp_bytes = 0;
        ORRERY_CUDA_CHECK(cub::DeviceSegmentedSort::StableSortPairs(
            nullptr, temp_bytes, values.get(), sorted.get(), value_labels.get(),
            sorted_labels.get(), entries, width, d_offset.get(), d_offset.get() + 1, d.stream));
        DeviceBuffer<char> temp(d, temp_bytes);
        ORRERY_CUDA_CHECK(cub::DeviceSegmentedSort::StableSortPairs(
            temp.get(), temp_bytes, values.get(), sorted.get(), value_labels.get(),
            sorted_labels.get(), entries, width, d_offset.get(), d_offset.get() + 1, d.stream));
      }
      rank_sorted<<<blocks_for(width, 128), 128, 0, d.stream>>>(
          sorted.get(), sorted_labels.get(), d_offset.get(), width, d_zeros.get(),
          d_zeros_total.get(), n_groups, r_in.get(), tie_sum.get());
      check_launch();
    }
    std::vector<double> block_r_in(zeros.size()), block_ties(width);
    r_in.download(block_r_in.data(), block_r_in.size());
    tie_sum.download(block_ties.data(), block_ties.size());
    d.sync();
    for (std::int64_t w = 0; w < width; ++w) {
      t.tie_sum[g0 + w] = block_ties[w];
      for (int l = 0; l < n_groups; ++l)
        t.r_in[static_cast<std::size_t>(l) * n_genes + g0 + w] = block_r_in[w * n_groups + l];
    }
    g0 = g1;
  }
  return markers_vs_rest(t, n_genes, n_groups, o.tie_correct);
}

}  // namespace orrery::compute::gpu
