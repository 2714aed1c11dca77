#include "compute/cuda/chunks.cuh"

#include <chrono>
#include <cstdlib>
#include <cub/device/device_radix_sort.cuh>
#include <type_traits>

#include "compute/parallel_copy.hpp"
#include "io/error.hpp"

namespace orrery::compute::gpu {
namespace {

// The row of every entry.
__global__ void row_of_entries(const std::int64_t* indptr, std::int64_t n_rows,
                               std::int32_t* row_of) {
  const std::int64_t warp = global_thread() / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= n_rows) return;
  for (auto k = indptr[warp] + lane; k < indptr[warp + 1]; k += 32)
    row_of[k] = static_cast<std::int32_t>(warp);
}

__global__ void iota(std::int32_t* out, std::int64_t n) {
  const std::int64_t i = global_thread();
  if (i < n) out[i] = static_cast<std::int32_t>(i);
}

// start[c] = the first position of column c among `sorted` (n >= 1 ascending column ids), for
// c in [0, n_cols]; one thread per boundary p in [0, n].
__global__ void column_starts(const std::uint32_t* sorted, std::int64_t n, std::int64_t n_cols,
                              std::int64_t* start) {
  const std::int64_t p = global_thread();
  if (p > n) return;
  const std::int64_t prev = p == 0 ? std::int64_t{-1} : static_cast<std::int64_t>(sorted[p - 1]);
  const std::int64_t cur = p == n ? n_cols : static_cast<std::int64_t>(sorted[p]);
  for (std::int64_t c = prev + 1; c <= cur; ++c) start[c] = p;
}

}  // namespace

std::int64_t env_cap(const char* name, std::int64_t limit) {
  const char* env = std::getenv(name);
  const long long n = env ? std::atoll(env) : 0;
  return n > 0 && n < limit ? n : limit;
}

std::int64_t max_block_entries() {
  return env_cap("ORRERY_CUDA_BLOCK_ENTRIES", std::int64_t{1} << 30);
}

std::vector<RowBlock> row_blocks(const CsrMatrix& c) {
  const std::int64_t limit = max_block_entries();
  std::vector<RowBlock> blocks;
  std::int64_t r0 = 0;
  while (r0 < c.n_rows) {
    std::int64_t r1 = r0 + 1;  // at least one row
    if (c.indptr[r1] - c.indptr[r0] > (std::int64_t{1} << 30))
      throw Error("", "X", "a row with more than 2^30 stored values");
    while (r1 < c.n_rows && c.indptr[r1 + 1] - c.indptr[r0] <= limit) ++r1;
    blocks.push_back({r0, r1, c.indptr[r0], c.indptr[r1]});
    r0 = r1;
  }
  return blocks;
}

void block_offsets(const CsrMatrix& c, const RowBlock& b, std::int64_t* out) {
  for (std::int64_t r = b.r0; r <= b.r1; ++r) out[r - b.r0] = c.indptr[r] - b.e0;
}

BlockStager::Slot::Slot(Device& d) : indptr(d, 0), indices(d, 0), data(d, 0), per_row(d, 0) {}

BlockStager::BlockStager(Device& d) : d_(d), excluded_(d, 0), slots_{Slot(d), Slot(d)} {}

BlockStager::BlockStager(Device& d, const LogNormalize& normalize)
    : d_(d),
      normalize_(normalize),
      excluded_(d, normalize.apply && normalize.excluded ? normalize.excluded->size() : 0),
      slots_{Slot(d), Slot(d)} {
  if (excluded_.size()) excluded_.upload(normalize.excluded->data(), excluded_.size());
}

BlockStager::~BlockStager() {
  cudaStreamSynchronize(copy_);
  cudaStreamSynchronize(d_.stream);
}

BlockStager::Staged BlockStager::put(const CsrMatrix& c, const RowBlock& b,
                                     const std::int32_t* per_row) {
  const std::int64_t rows = b.r1 - b.r0, nnz = b.e1 - b.e0;
  // Everything reading the previous block is enqueued by now.
  if (last_ >= 0) ORRERY_CUDA_CHECK(cudaEventRecord(slots_[last_].done, d_.stream));
  Slot& s = slots_[next_];
  last_ = next_;
  next_ ^= 1;
  // The slot's page-locked memory is free once its last copy is done; its device memory once
  // the kernels of its last block are (the copy stream waits for that below).
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  if (s.used) ORRERY_CUDA_CHECK(cudaEventSynchronize(s.copied));
  const auto t1 = clock::now();
  s.host_indptr.reserve(rows + 1);
  s.host_indices.reserve(nnz);
  s.host_data.reserve(nnz);
  if (per_row) s.host_per_row.reserve(rows);
  bool fresh = false;
  auto fit = [&](auto& buffer, std::int64_t n) {
    using T = std::remove_reference_t<decltype(*buffer.get())>;
    if (static_cast<std::int64_t>(buffer.size()) >= n) return;
    buffer = DeviceBuffer<T>(d_, static_cast<std::size_t>(n));
    fresh = true;
  };
  fit(s.indptr, rows + 1);
  fit(s.indices, nnz);
  fit(s.data, nnz);
  if (per_row) fit(s.per_row, rows);
  // Allocations are ordered on the compute stream: the copy stream may use them after it.
  if (fresh) d_.sync();
  block_offsets(c, b, s.host_indptr.get());
  parallel_copy(s.host_indices.get(), c.indices.data() + b.e0, nnz * sizeof(std::int32_t));
  parallel_copy(s.host_data.get(), c.data.data() + b.e0, nnz * sizeof(float));
  if (per_row) parallel_copy(s.host_per_row.get(), per_row + b.r0, rows * sizeof(std::int32_t));
  d_.device_wait_seconds += std::chrono::duration<double>(t1 - t0).count();
  d_.staging_seconds += std::chrono::duration<double>(clock::now() - t1).count();
  if (s.used) ORRERY_CUDA_CHECK(cudaStreamWaitEvent(copy_, s.done, 0));
  const auto copy = [&](auto* to, const auto* from, std::int64_t n) {
    if (n > 0)
      ORRERY_CUDA_CHECK(
          cudaMemcpyAsync(to, from, n * sizeof(*from), cudaMemcpyHostToDevice, copy_));
  };
  copy(s.indptr.get(), s.host_indptr.get(), rows + 1);
  copy(s.indices.get(), s.host_indices.get(), nnz);
  copy(s.data.get(), s.host_data.get(), nnz);
  if (per_row) copy(s.per_row.get(), s.host_per_row.get(), rows);
  ORRERY_CUDA_CHECK(cudaEventRecord(s.copied, copy_));
  ORRERY_CUDA_CHECK(cudaStreamWaitEvent(d_.stream, s.copied, 0));
  s.used = true;
  if (normalize_.apply)
    normalize_log1p(d_, s.indptr.get(), s.indices.get(),
                    excluded_.size() ? excluded_.get() : nullptr, s.data.get(), rows,
                    normalize_.target_sum);
  return {s.indptr.get(), s.indices.get(),
          s.data.get(),   per_row ? s.per_row.get() : nullptr,
          rows,           nnz};
}

void rows_of_entries(Device& d, const std::int64_t* indptr, std::int64_t n_rows,
                     std::int32_t* row_of) {
  if (n_rows == 0) return;
  row_of_entries<<<blocks_for(n_rows * 32, 256), 256, 0, d.stream>>>(indptr, n_rows, row_of);
  check_launch();
}

// Radix sort is stable: equal columns keep their entry (row) order.
ColumnOrder order_by_column(Device& d, const std::int32_t* indices, std::int64_t nnz,
                            std::int64_t n_cols) {
  ColumnOrder o{DeviceBuffer<std::int32_t>(d, nnz), DeviceBuffer<std::int64_t>(d, n_cols + 1)};
  if (nnz == 0) {
    o.start.zero();
    return o;
  }
  DeviceBuffer<std::int32_t> ids(d, nnz);
  DeviceBuffer<std::uint32_t> sorted(d, nnz);
  iota<<<blocks_for(nnz, 256), 256, 0, d.stream>>>(ids.get(), nnz);
  check_launch();
  int bits = 1;
  while ((std::int64_t{1} << bits) < n_cols) ++bits;
  const auto* keys = reinterpret_cast<const std::uint32_t*>(indices);
  std::size_t temp_bytes = 0;
  ORRERY_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, temp_bytes, keys, sorted.get(), ids.get(), o.perm.get(), nnz, 0, bits, d.stream));
  DeviceBuffer<char> temp(d, temp_bytes);
  ORRERY_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      temp.get(), temp_bytes, keys, sorted.get(), ids.get(), o.perm.get(), nnz, 0, bits, d.stream));
  column_starts<<<blocks_for(nnz + 1, 256), 256, 0, d.stream>>>(sorted.get(), nnz, n_cols,
                                                                o.start.get());
  check_launch();
  return o;
}

}  // namespace orrery::compute::gpu
