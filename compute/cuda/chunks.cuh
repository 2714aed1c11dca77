// Chunks of a CSR matrix on the device, as the CUDA backend's streaming passes use them: row
// blocks small enough for int32 entry ids, each entry's row, and the block's entries ordered by
// column with each column's entries in row order (so per-gene sums add in the CPU's order).
#pragma once

#include <cstdint>
#include <vector>

#include "compute/cuda/device.cuh"
#include "compute/log_normalize.hpp"
#include "io/matrix.hpp"

namespace orrery::compute::gpu {

// `limit`, or the environment variable `name` where it is a positive number below it (tests
// make blocks and tiles small that way).
std::int64_t env_cap(const char* name, std::int64_t limit);

// A block of a chunk goes to the device whole: entry ids within it are int32. At most 2^30
// entries, or ORRERY_CUDA_BLOCK_ENTRIES (tests make it small to split chunks into blocks).
std::int64_t max_block_entries();

struct RowBlock {
  std::int64_t r0, r1;  // rows
  std::int64_t e0, e1;  // entries
};

// Consecutive row ranges of the chunk, each of at most max_block_entries() entries (a longer
// row is a block of its own; one beyond 2^30 entries is an error).
std::vector<RowBlock> row_blocks(const CsrMatrix& c);

// The block's row offsets, relative to its first entry (b.r1 - b.r0 + 1 of them).
void block_offsets(const CsrMatrix& c, const RowBlock& b, std::int64_t* out);

// In place on the device: rows [0, n_rows) of a CSR block (offsets relative to the block)
// normalised to target_sum and log1p'd (stats.cu). `excluded` (one flag per column, or nullptr)
// as Backend::normalize_log1p.
void normalize_log1p(Device& d, const std::int64_t* indptr, const std::int32_t* indices,
                     const char* excluded, float* data, std::int64_t n_rows, double target_sum);

// Row blocks of chunks copied to the device through two page-locked buffers on a copy stream
// of their own: the host fills one while the other's copy, and the kernels reading it, run.
// Given a LogNormalize that applies, each block's counts are normalised on the device once
// copied.
class BlockStager {
 public:
  explicit BlockStager(Device& d);
  BlockStager(Device& d, const LogNormalize& normalize);
  ~BlockStager();  // waits for both streams: nothing still reads a buffer when it goes
  BlockStager(const BlockStager&) = delete;
  BlockStager& operator=(const BlockStager&) = delete;

  struct Staged {
    std::int64_t* indptr;  // rows + 1 offsets relative to the block's first entry
    std::int32_t* indices;
    float* data;
    std::int32_t* per_row;  // with put's per_row: one value per row of the block
    std::int64_t rows, nnz;
  };
  // Block `b` of `c` on the device (and rows [b.r0, b.r1) of `per_row`, one value per row of
  // the chunk, when given). d's stream waits for the copy; work enqueued on it before the next
  // put() may read and overwrite the buffers (that put marks the end of their use, so the
  // copy after it may overwrite them). The host's arrays may go when put returns.
  Staged put(const CsrMatrix& c, const RowBlock& b, const std::int32_t* per_row = nullptr);

 private:
  struct Slot {
    explicit Slot(Device& d);
    PinnedBuffer<std::int64_t> host_indptr;
    PinnedBuffer<std::int32_t> host_indices;
    PinnedBuffer<float> host_data;
    PinnedBuffer<std::int32_t> host_per_row;
    DeviceBuffer<std::int64_t> indptr;
    DeviceBuffer<std::int32_t> indices;
    DeviceBuffer<float> data;
    DeviceBuffer<std::int32_t> per_row;
    Event copied, done;
    bool used = false;
  };
  Device& d_;
  LogNormalize normalize_{false, 0.0, nullptr};
  DeviceBuffer<char> excluded_;  // normalize_'s excluded genes on the device
  Stream copy_;
  Slot slots_[2];
  int next_ = 0, last_ = -1;
};

// row_of[k] = the row of entry k, for the n_rows rows of device offsets `indptr`.
void rows_of_entries(Device& d, const std::int64_t* indptr, std::int64_t n_rows,
                     std::int32_t* row_of);

// The block's entries by column, each column's in row order (perm[p] = entry id), and where
// each column starts (start[c], c in [0, n_cols]).
struct ColumnOrder {
  DeviceBuffer<std::int32_t> perm;
  DeviceBuffer<std::int64_t> start;
};
ColumnOrder order_by_column(Device& d, const std::int32_t* indices, std::int64_t nnz,
                            std::int64_t n_cols);

#if defined(__CUDACC__)
__device__ inline std::int64_t global_thread() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
#endif

}  // namespace orrery::compute::gpu
