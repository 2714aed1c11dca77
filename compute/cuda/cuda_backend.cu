// CUDA backend: device detection, a stream-ordered memory pool, and the stages that run on the
// device — QC, normalize_total + log1p and the HVG moments per chunk (stats.cu), Wilcoxon's
// statistics and ranks (wilcoxon.cu), PCA's Gram pass and projection
// (kept counts staged through page-locked buffers, normalised on the device, densified HVG tiles
// by DSYRK / DGEMM) and eigensolve (cuSOLVER syevd), kNN (exact: tiled SGEMM + per-row
// top-k, distances recomputed exactly; approximate: an inverted file), the UMAP layout; and the
// import of the renderer's buffers and semaphores (compute/external.hpp). The arithmetic that both
// backends do is shared
// (__host__ __device__: elementwise.hpp, umap_step.hpp).
// Eigen is used on the host only here; without this it compiles its CUDA paths, with warnings.
#define EIGEN_NO_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>

#include "compute/backend.hpp"
#include "compute/cuda/check.cuh"
#include "compute/cuda/chunks.cuh"
#include "compute/cuda/device.cuh"
#include "compute/cuda/fuzzy.cuh"
#include "compute/cuda/leiden.cuh"
#include "compute/cuda/libraries.cuh"
#include "compute/cuda/spectral.cuh"
#include "compute/cuda/stats.cuh"
#include "compute/cuda/wilcoxon.cuh"
#include "compute/elementwise.hpp"
#include "compute/fuzzy_math.hpp"
#include "compute/umap_step.hpp"

namespace orrery::compute {

using namespace gpu;  // this file is the backend on top of device.cuh

namespace {

// ---- PCA: Gram pass and projection ----------------------------------------------------------

// The scaled HVG columns on the device (ScaledColumns).
struct DeviceColumns {
  DeviceColumns(Device& d, const ScaledColumns& c)
      : column(d, c.column.size()),
        mean(d, c.mean.size()),
        inv_std(d, c.inv_std.size()),
        max_value(c.max_value) {
    column.upload(c.column.data(), c.column.size());
    mean.upload(c.mean.data(), c.mean.size());
    inv_std.upload(c.inv_std.data(), c.inv_std.size());
  }
  DeviceBuffer<std::int32_t> column;
  DeviceBuffer<float> mean, inv_std;
  float max_value;
};

// Rows [0, rows) of a block of log data (offsets from `indptr`, relative to the block's first
// entry) as their scaled offsets z - z0 in a zeroed column-major rows x h tile, one warp per row
// (ScaledColumns::for_each_offset's values).
__global__ void scatter_scaled(const std::int64_t* indptr, const std::int32_t* indices,
                               const float* data, std::int64_t rows, const std::int32_t* column,
                               const float* mean, const float* inv_std, float max_value,
                               double* tile) {
  const std::int64_t warp = global_thread() / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= rows) return;
  for (auto k = indptr[warp] + lane; k < indptr[warp + 1]; k += 32)
    if (const int c = column[indices[k]]; c >= 0)
      tile[static_cast<std::int64_t>(c) * rows + warp] =
          scaled_offset(data[k], mean[c], inv_std[c], max_value);
}

__global__ void fill(double* x, std::int64_t n, double value) {
  const std::int64_t i = global_thread();
  if (i < n) x[i] = value;
}

// Densified tiles of scaled offsets are at most 256 MiB: this many rows of h columns, or
// ORRERY_CUDA_TILE_ROWS where smaller (tests make it small to split blocks into tiles).
std::int64_t offset_tile_rows(int h) {
  return env_cap(
      "ORRERY_CUDA_TILE_ROWS",
      std::max<std::int64_t>(1, (std::int64_t{256} << 20) / (8 * std::int64_t{std::max(h, 1)})));
}

// What the Gram pass and the projection share: chunks of kept counts staged to the device,
// normalised there, and each row block's scaled offsets densified tile by tile.
class ScaledTiles {
 public:
  ScaledTiles(Device& d, const ScaledColumns& columns, const LogNormalize& n)
      : d_(d),
        h_(columns.width()),
        tile_rows_(offset_tile_rows(h_)),
        columns_(d, columns),
        tile_(d, 0),
        stager_(d, n) {}
  int width() const { return h_; }

  // visit(tile, rows, row): each tile of the chunk on d's stream, its first row in the chunk.
  template <typename Visit>
  void for_each_tile(CsrMatrix& chunk, Visit&& visit) {
    for (const RowBlock& b : row_blocks(chunk)) {
      const BlockStager::Staged s = stager_.put(chunk, b);  // normalised where asked
      for (std::int64_t t0 = 0; t0 < s.rows; t0 += tile_rows_) {
        const std::int64_t rows = std::min(tile_rows_, s.rows - t0);
        if (static_cast<std::int64_t>(tile_.size()) < rows * h_)
          tile_ = DeviceBuffer<double>(d_, static_cast<std::size_t>(rows * h_));
        ORRERY_CUDA_CHECK(cudaMemsetAsync(tile_.get(), 0, rows * h_ * sizeof(double), d_.stream));
        scatter_scaled<<<blocks_for(rows * 32, 256), 256, 0, d_.stream>>>(
            s.indptr + t0, s.indices, s.data, rows, columns_.column.get(), columns_.mean.get(),
            columns_.inv_std.get(), columns_.max_value, tile_.get());
        check_launch();
        visit(tile_.get(), rows, b.r0 + t0);
      }
    }
  }

 private:
  Device& d_;
  int h_;
  std::int64_t tile_rows_;
  DeviceColumns columns_;
  DeviceBuffer<double> tile_;  // reused in stream order
  BlockStager stager_;         // last: it waits for the kernels before the buffers above go
};

// W^T W by DSYRK and W^T 1 by DGEMV on each tile, added on the device.
class CudaGramPass final : public GramPass {
 public:
  CudaGramPass(Device& d, const ScaledColumns& columns, const LogNormalize& n)
      : d_(d),
        h_(columns.width()),
        ww_(d, static_cast<std::size_t>(h_) * h_),
        w_(d, h_),
        ones_(d, 0),
        tiles_(d, columns, n) {
    ww_.zero();
    w_.zero();
  }

  void add(CsrMatrix& counts) override {
    tiles_.for_each_tile(counts, [&](const double* tile, std::int64_t rows, std::int64_t) {
      if (static_cast<std::int64_t>(ones_.size()) < rows) {
        ones_ = DeviceBuffer<double>(d_, static_cast<std::size_t>(rows));
        fill<<<blocks_for(rows, 256), 256, 0, d_.stream>>>(ones_.get(), rows, 1.0);
        check_launch();
      }
      const double one = 1.0;
      ORRERY_CUBLAS_CHECK(cublasDsyrk(d_.cublas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, h_,
                                      static_cast<int>(rows), &one, tile, static_cast<int>(rows),
                                      &one, ww_.get(), h_));
      ORRERY_CUBLAS_CHECK(cublasDgemv(d_.cublas(), CUBLAS_OP_T, static_cast<int>(rows), h_, &one,
                                      tile, static_cast<int>(rows), ones_.get(), 1, &one, w_.get(),
                                      1));
    });
    n_ += counts.n_rows;
  }

  GramSums finish() override {
    GramSums s;
    s.ww.resize(h_, h_);
    s.w.resize(h_);
    ww_.download(s.ww.data(), ww_.size());  // column-major like Eigen's default
    w_.download(s.w.data(), w_.size());
    d_.sync();
    s.n = n_;
    return s;
  }

 private:
  Device& d_;
  int h_;
  DeviceBuffer<double> ww_, w_, ones_;
  std::int64_t n_ = 0;
  ScaledTiles tiles_;
};

// (Z - mean) V = W V + (z0 - mean) V: each tile times the axes by DGEMM into the chunk's
// column-major result, copied to page-locked memory; the shift is added on the host, as the CPU
// adds it, when the next chunk's work is enqueued (or at finish).
class CudaProjectionPass final : public ProjectionPass {
 public:
  CudaProjectionPass(Device& d, const PcaModel& model, const ScaledColumns& columns,
                     const LogNormalize& n)
      : d_(d),
        k_(static_cast<int>(model.components.cols())),
        v_(d, static_cast<std::size_t>(columns.width()) * model.components.cols()),
        results_{Result(d), Result(d)},
        tiles_(d, columns, n) {
    shift_ = projection_shift(model, columns);
    v_.upload(model.components.data(), v_.size());  // h x k, column-major
  }

  void add(CsrMatrix& counts, DenseMatrix& out, std::int64_t row0) override {
    const std::int64_t n = counts.n_rows;
    if (n == 0 || k_ == 0) return;
    Result& r = results_[next_];
    next_ ^= 1;
    write_out(r);  // written out already unless an earlier add threw after taking it
    const auto size = static_cast<std::size_t>(n) * k_;
    if (r.device.size() < size) r.device = DeviceBuffer<double>(d_, size);
    r.host.reserve(size);  // its last copy was waited for when it was written out
    const int h = tiles_.width();
    tiles_.for_each_tile(counts, [&](const double* tile, std::int64_t rows, std::int64_t row) {
      const double one = 1.0, zero = 0.0;
      ORRERY_CUBLAS_CHECK(cublasDgemm(d_.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(rows),
                                      k_, h, &one, tile, static_cast<int>(rows), v_.get(), h, &zero,
                                      r.device.get() + row, static_cast<int>(n)));
    });
    ORRERY_CUDA_CHECK(cudaMemcpyAsync(r.host.get(), r.device.get(), size * sizeof(double),
                                      cudaMemcpyDeviceToHost, d_.stream));
    ORRERY_CUDA_CHECK(cudaEventRecord(r.copied, d_.stream));
    r.pending = true;
    r.out = &out;
    r.row0 = row0;
    r.rows = n;
    write_out(results_[next_]);  // the previous chunk's, while the device works on this one
  }

  void finish() override {
    write_out(results_[next_]);
    write_out(results_[next_ ^ 1]);
  }

 private:
  struct Result {
    explicit Result(Device& d) : device(d, 0) {}
    DeviceBuffer<double> device;
    PinnedBuffer<double> host;
    Event copied;
    bool pending = false;
    DenseMatrix* out = nullptr;
    std::int64_t row0 = 0, rows = 0;
  };

  void write_out(Result& r) {
    if (!r.pending) return;
    ORRERY_CUDA_CHECK(cudaEventSynchronize(r.copied));
    r.pending = false;
    const double* p = r.host.get();
    for (std::int64_t i = 0; i < r.rows; ++i)
      for (int j = 0; j < k_; ++j)
        r.out->at(r.row0 + i, j) = static_cast<float>(shift_(j) + p[j * r.rows + i]);
  }

  Device& d_;
  int k_;
  Eigen::RowVectorXd shift_;
  DeviceBuffer<double> v_;
  Result results_[2];
  int next_ = 0;
  ScaledTiles tiles_;  // last: its stager waits for the device before the buffers above go
};

// ---- kNN: exact -----------------------------------------------------------------------------

constexpr int kMaxK = 128;  // larger k goes to the CPU
constexpr int kSelectWarps = 4;

__global__ void squared_norms(const float* x, std::int64_t n, int dims, float* sq) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float s = 0;
  for (int d = 0; d < dims; ++d) s += x[i * dims + d] * x[i * dims + d];
  sq[i] = s;
}

__global__ void fill_lists(float* d, std::int64_t* idx, std::int64_t n) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  d[i] = INFINITY;
  idx[i] = -1;
}

// One warp per query row keeps its k best (distance^2, id) in shared memory, sorted, and merges
// one tile of candidates [c0, c0 + n_cand) whose dot products with the query are in `dots`
// (row-major nq x n_cand). Query q's list is row query_ids[q] of best_d/best_i (q without ids),
// its norm q_sq[q]; candidate c has norm c_sq[c] and id cand_ids[c] (c without ids). Candidates
// arrive in increasing id within a list and join after equal distances, so the order is
// (distance, id) as the CPU's partial_sort. With `self_first` the query itself (id query_ids[q],
// or q0 + q) counts as distance -1 so it comes first.
__global__ void select_topk(const float* __restrict__ dots, int n_cand, std::int64_t c0,
                            std::int64_t q0, int nq, const std::int64_t* __restrict__ query_ids,
                            const float* __restrict__ q_sq, const float* __restrict__ c_sq,
                            const std::int64_t* __restrict__ cand_ids, bool self_first,
                            float* best_d, std::int64_t* best_i, int k) {
  __shared__ float list_d[kSelectWarps][kMaxK];
  __shared__ std::int64_t list_i[kSelectWarps][kMaxK];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int q = blockIdx.x * kSelectWarps + warp;
  if (q >= nq) return;  // whole warps leave; only warp-level synchronisation follows
  constexpr unsigned kAll = 0xffffffffu;
  float* ld = list_d[warp];
  std::int64_t* li = list_i[warp];
  const std::int64_t row = query_ids ? query_ids[q] : q;
  for (int t = lane; t < k; t += 32) {
    ld[t] = best_d[row * k + t];
    li[t] = best_i[row * k + t];
  }
  __syncwarp();
  const std::int64_t self = !self_first ? -1 : (query_ids ? query_ids[q] : q0 + q);
  const float sq_self = q_sq[q];
  float threshold = ld[k - 1];
  const float* dot = dots + static_cast<std::int64_t>(q) * n_cand;
  for (int base = 0; base < n_cand; base += 32) {
    const int j = base + lane;
    float d = INFINITY;
    std::int64_t id = -1;
    if (j < n_cand) {
      const std::int64_t c = c0 + j;
      id = cand_ids ? cand_ids[c] : c;
      d = id == self ? -1.0f : fmaxf(0.0f, sq_self + c_sq[c] - 2.0f * dot[j]);
    }
    unsigned pending = __ballot_sync(kAll, d < threshold);
    while (pending) {
      const int src = __ffs(pending) - 1;
      pending &= pending - 1;
      const float dd = __shfl_sync(kAll, d, src);
      const std::int64_t did = __shfl_sync(kAll, id, src);
      if (!(dd < threshold)) continue;  // threshold is the same in every lane
      int pos = 0;
      for (int t = lane; t < k; t += 32) pos += ld[t] <= dd;
      for (int off = 16; off > 0; off /= 2) pos += __shfl_xor_sync(kAll, pos, off);
      float keep_d[kMaxK / 32];
      std::int64_t keep_i[kMaxK / 32];
#pragma unroll
      for (int m = 0; m < kMaxK / 32; ++m) {
        const int t = lane + 32 * m;
        if (t < k && t > pos) keep_d[m] = ld[t - 1], keep_i[m] = li[t - 1];
      }
      __syncwarp();
#pragma unroll
      for (int m = 0; m < kMaxK / 32; ++m) {
        const int t = lane + 32 * m;
        if (t < k && t > pos) ld[t] = keep_d[m], li[t] = keep_i[m];
        if (t == pos) ld[t] = dd, li[t] = did;
      }
      __syncwarp();
      threshold = ld[k - 1];
    }
  }
  for (int t = lane; t < k; t += 32) {
    best_d[row * k + t] = ld[t];
    best_i[row * k + t] = li[t];
  }
}

// Rows `ids` of x (n x dims) and their norms, gathered into contiguous tiles.
__global__ void gather_rows(const float* x, const float* sq, int dims, const std::int64_t* ids,
                            std::int64_t n, float* out, float* out_sq) {
  const std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= n * dims) return;
  const std::int64_t r = t / dims, c = t % dims;
  out[t] = x[ids[r] * dims + c];
  if (c == 0) out_sq[r] = sq[ids[r]];
}

// The `kk` selected candidates' distances computed directly (no cancellation), re-sorted by
// (distance, index) with the query first, as the CPU's exact_knn reports them; the first k kept.
__global__ void refine_lists(const float* x, int dims, std::int64_t q0, int nq, int kk, int k,
                             bool cosine, const std::int64_t* best_i, float* out_d,
                             std::int64_t* out_i) {
  const int q = blockIdx.x * blockDim.x + threadIdx.x;
  if (q >= nq) return;
  const std::int64_t self = q0 + q;
  double d2[kMaxK];
  std::int64_t id[kMaxK];
  for (int t = 0; t < kk; ++t) {
    const std::int64_t j = best_i[static_cast<std::int64_t>(q) * kk + t];
    if (j < 0) {  // fewer candidates than kk (approximate search): sorts last
      d2[t] = INFINITY;
      id[t] = -1;
      continue;
    }
    double s = 0;
    for (int c = 0; c < dims; ++c) {
      const double diff = double(x[self * dims + c]) - double(x[j * dims + c]);
      s += diff * diff;
    }
    double v = j == self ? -1.0 : s;
    int p = t;
    while (p > 0 && (d2[p - 1] > v || (d2[p - 1] == v && id[p - 1] > j))) {
      d2[p] = d2[p - 1];
      id[p] = id[p - 1];
      --p;
    }
    d2[p] = v;
    id[p] = j;
  }
  for (int t = 0; t < k; ++t) {
    const double v = d2[t] < 0 ? 0.0 : d2[t];
    out_d[static_cast<std::int64_t>(q) * k + t] = static_cast<float>(cosine ? v / 2.0 : sqrt(v));
    out_i[static_cast<std::int64_t>(q) * k + t] = id[t];
  }
}

// ---- fuzzy simplicial set ---------------------------------------------------------------------

// One thread per kNN row: smooth kNN distances and the row's memberships (fuzzy_math.hpp).
__global__ void fuzzy_rows(const float* dist, const std::int64_t* idx, std::int64_t n, int k,
                           double local_connectivity, double mean_all, float* w) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float* d = dist + i * k;
  const SmoothKnn s = smooth_knn_row(d, k, local_connectivity, mean_all);
  for (int c = 0; c < k; ++c) {
    const std::int64_t j = idx[i * k + c];
    w[i * k + c] = j >= 0 && j != i ? fuzzy_membership(d[c], s) : 0.0f;
  }
}

// ---- UMAP ------------------------------------------------------------------------------------

__global__ void umap_epoch(UmapEpoch u) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < u.n) umap_move_vertex(u, i);
}

// ---- external memory (compute/external.hpp) --------------------------------------------------

__global__ void fill_words(std::uint32_t* p, std::size_t n, std::uint32_t seed) {
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) p[i] = seed + static_cast<std::uint32_t>(i);
}

// The bounding box of the finite positions of a layout (n x float2), as four floats in an
// order that integer atomics keep (ordered_int): min x, min y, max x, max y.
__device__ __host__ inline int ordered_int(int bits) {
  return bits >= 0 ? bits : bits ^ 0x7fffffff;
}

__global__ void layout_bounds(const float* y, std::int64_t n, int* out) {
  float lo_x = FLT_MAX, lo_y = FLT_MAX, hi_x = -FLT_MAX, hi_y = -FLT_MAX;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float px = y[2 * i], py = y[2 * i + 1];
    if (!isfinite(px) || !isfinite(py)) continue;
    lo_x = fminf(lo_x, px);
    lo_y = fminf(lo_y, py);
    hi_x = fmaxf(hi_x, px);
    hi_y = fmaxf(hi_y, py);
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    lo_x = fminf(lo_x, __shfl_down_sync(0xffffffffu, lo_x, offset));
    lo_y = fminf(lo_y, __shfl_down_sync(0xffffffffu, lo_y, offset));
    hi_x = fmaxf(hi_x, __shfl_down_sync(0xffffffffu, hi_x, offset));
    hi_y = fmaxf(hi_y, __shfl_down_sync(0xffffffffu, hi_y, offset));
  }
  if ((threadIdx.x & 31) == 0) {
    atomicMin(&out[0], ordered_int(__float_as_int(lo_x)));
    atomicMin(&out[1], ordered_int(__float_as_int(lo_y)));
    atomicMax(&out[2], ordered_int(__float_as_int(hi_x)));
    atomicMax(&out[3], ordered_int(__float_as_int(hi_y)));
  }
}

}  // namespace

struct ExternalBuffer::Impl {
  cudaExternalMemory_t memory = nullptr;
  void* pointer = nullptr;
  std::size_t bytes = 0;
};

ExternalBuffer::ExternalBuffer(int fd, std::size_t allocation_bytes, std::size_t bytes)
    : impl_(std::make_unique<Impl>()) {
  cudaExternalMemoryHandleDesc desc{};
  desc.type = cudaExternalMemoryHandleTypeOpaqueFd;
  desc.handle.fd = fd;
  desc.size = allocation_bytes;
  if (cudaError_t e = cudaImportExternalMemory(&impl_->memory, &desc); e != cudaSuccess) {
    ::close(fd);  // CUDA owns the descriptor only once the import succeeds
    throw Error("", "cudaImportExternalMemory",
                std::string("CUDA error: ") + cudaGetErrorString(e));
  }
  cudaExternalMemoryBufferDesc buffer{};
  buffer.offset = 0;
  buffer.size = bytes;
  if (cudaError_t e = cudaExternalMemoryGetMappedBuffer(&impl_->pointer, impl_->memory, &buffer);
      e != cudaSuccess) {
    cudaDestroyExternalMemory(impl_->memory);
    throw Error("", "cudaExternalMemoryGetMappedBuffer",
                std::string("CUDA error: ") + cudaGetErrorString(e));
  }
  impl_->bytes = bytes;
}

ExternalBuffer::~ExternalBuffer() {
  cudaDeviceSynchronize();
  if (impl_->pointer) cudaFree(impl_->pointer);
  if (impl_->memory) cudaDestroyExternalMemory(impl_->memory);
}

void* ExternalBuffer::device_pointer() const {
  return impl_->pointer;
}

std::size_t ExternalBuffer::size() const {
  return impl_->bytes;
}

void ExternalBuffer::write(const void* data, std::size_t bytes) {
  ORRERY_CUDA_CHECK(
      cudaMemcpy(impl_->pointer, data, std::min(bytes, impl_->bytes), cudaMemcpyHostToDevice));
}

std::vector<std::uint8_t> ExternalBuffer::read() const {
  std::vector<std::uint8_t> out(impl_->bytes);
  ORRERY_CUDA_CHECK(cudaMemcpy(out.data(), impl_->pointer, impl_->bytes, cudaMemcpyDeviceToHost));
  return out;
}

void ExternalBuffer::fill_sequence(std::uint32_t seed) {
  const std::size_t n = impl_->bytes / 4;
  fill_words<<<blocks_for(static_cast<std::int64_t>(n), 256), 256>>>(
      static_cast<std::uint32_t*>(impl_->pointer), n, seed);
  check_launch();
}

struct ExternalSemaphore::Impl {
  cudaExternalSemaphore_t semaphore = nullptr;
  void signal(cudaStream_t stream) {
    cudaExternalSemaphoreSignalParams params{};
    ORRERY_CUDA_CHECK(cudaSignalExternalSemaphoresAsync(&semaphore, &params, 1, stream));
  }
  void wait(cudaStream_t stream) {
    cudaExternalSemaphoreWaitParams params{};
    ORRERY_CUDA_CHECK(cudaWaitExternalSemaphoresAsync(&semaphore, &params, 1, stream));
  }
};

ExternalSemaphore::ExternalSemaphore(int fd) : impl_(std::make_unique<Impl>()) {
  cudaExternalSemaphoreHandleDesc desc{};
  desc.type = cudaExternalSemaphoreHandleTypeOpaqueFd;
  desc.handle.fd = fd;
  if (cudaError_t e = cudaImportExternalSemaphore(&impl_->semaphore, &desc); e != cudaSuccess) {
    ::close(fd);
    throw Error("", "cudaImportExternalSemaphore",
                std::string("CUDA error: ") + cudaGetErrorString(e));
  }
}

ExternalSemaphore::~ExternalSemaphore() {
  cudaDeviceSynchronize();
  if (impl_->semaphore) cudaDestroyExternalSemaphore(impl_->semaphore);
}

void ExternalSemaphore::signal() {
  impl_->signal(nullptr);
}

void ExternalSemaphore::wait() {
  impl_->wait(nullptr);
}

std::array<std::uint8_t, 16> cuda_device_uuid() {
  std::array<std::uint8_t, 16> id{};
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) std::memcpy(id.data(), prop.uuid.bytes, 16);
  return id;
}

namespace {

// ---- the backend ----------------------------------------------------------------------------

std::size_t max_pool_bytes() {
  const char* env = std::getenv("ORRERY_CUDA_MAX_POOL");
  if (!env || !*env) return 0;
  char* end = nullptr;
  double v = std::strtod(env, &end);
  const char unit = end && *end ? static_cast<char>(std::toupper(*end)) : 0;
  if (unit == 'K') v *= 1024.0;
  if (unit == 'M') v *= 1024.0 * 1024.0;
  if (unit == 'G') v *= 1024.0 * 1024.0 * 1024.0;
  if (!(v > 0)) throw Error("", "ORRERY_CUDA_MAX_POOL", std::string("not a size: '") + env + "'");
  return static_cast<std::size_t>(v);
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() : d_(max_pool_bytes()) {}

  std::string name() const override { return "cuda"; }
  std::string device_stages() const override {
    return "QC, normalize_total + log1p, the HVG moments, the PCA Gram pass, eigensolve and "
           "projection, kNN, the fuzzy simplicial set, the spectral layout's eigenvectors, the "
           "UMAP layout, Leiden (parallel flavour), Wilcoxon ranks (each where the device has "
           "the memory; a warning names a stage that runs on the host instead)";
  }
  std::int64_t device_peak_bytes() const override { return d_.peak_bytes(); }
  StreamSeconds stream_seconds() const override {
    return {d_.staging_seconds, d_.device_wait_seconds};
  }
  std::int64_t device_free_bytes() const override {
    return static_cast<std::int64_t>(d_.available_bytes());
  }
  bool stream_layout_to(LayoutChannel* channel) override {
    layout_channel_ = channel;
    return true;
  }

  void normalize_log1p(CsrMatrix& chunk, double target_sum,
                       const std::vector<char>* excluded) override {
    if (chunk.n_rows == 0) return;
    DeviceBuffer<std::int64_t> indptr(d_, chunk.indptr.size());
    DeviceBuffer<float> data(d_, chunk.data.size());
    DeviceBuffer<std::int32_t> indices(d_, excluded ? chunk.indices.size() : 0);
    DeviceBuffer<char> mask(d_, excluded ? excluded->size() : 0);
    if (excluded) {
      indices.upload(chunk.indices.data(), chunk.indices.size());
      mask.upload(excluded->data(), excluded->size());
    }
    indptr.upload(chunk.indptr.data(), chunk.indptr.size());
    data.upload(chunk.data.data(), chunk.data.size());
    gpu::normalize_log1p(d_, indptr.get(), indices.get(), excluded ? mask.get() : nullptr,
                         data.get(), chunk.n_rows, target_sum);
    data.download(chunk.data.data(), chunk.data.size());
    d_.sync();
  }

  std::unique_ptr<QcPass> qc_pass(const std::vector<char>& qc_genes,
                                  const std::vector<int>& percent_top,
                                  std::int64_t n_genes) override {
    return gpu::make_qc_pass(d_, qc_genes, percent_top, n_genes);
  }
  std::unique_ptr<MomentPass> moment_pass(const MomentOptions& options) override {
    return gpu::make_moment_pass(d_, options);
  }

  // Each group against the rest on the device (counts normalised there); two groups compared
  // with one as the reference are the other against the rest; other comparisons with a
  // reference run on the CPU.
  std::vector<GroupMarkers> rank_genes_groups(const ChunkSource& source,
                                              const LogNormalize& normalize, std::int64_t n_cells,
                                              std::int64_t n_genes,
                                              const std::vector<std::int32_t>& labels, int n_groups,
                                              const WilcoxonOptions& options,
                                              Progress& progress) override {
    wilcoxon_uses_bins(options, labels, n_cells, n_groups);  // the CPU's errors first
    if (options.reference >= 0 && n_groups != 2) {
      note_host_fallback("markers: comparisons against a reference group among " +
                         std::to_string(n_groups) + " groups run on the host");
      return Backend::rank_genes_groups(source, normalize, n_cells, n_genes, labels, n_groups,
                                        options, progress);
    }
    WilcoxonOptions vs_rest = options;
    vs_rest.reference = -1;
    std::vector<GroupMarkers> out = gpu::rank_genes_groups(d_, source, normalize, n_cells, n_genes,
                                                           labels, n_groups, vs_rest, progress);
    if (options.reference >= 0) out.erase(out.begin() + options.reference);
    return out;
  }

  // On the host where W^T W would take more than half the free device memory.
  std::unique_ptr<GramPass> gram_pass(const ScaledColumns& columns,
                                      const LogNormalize& normalize) override {
    const double bytes = 8.0 * columns.width() * columns.width();
    if (bytes > 0.5 * static_cast<double>(d_.available_bytes())) {
      note_host_fallback("pca: the Gram pass runs on the host: W^T W of " +
                         std::to_string(columns.width()) + " genes (" +
                         std::to_string(static_cast<std::int64_t>(bytes) >> 20) +
                         " MiB) would take more than half the free device memory");
      return Backend::gram_pass(columns, normalize);
    }
    return std::make_unique<CudaGramPass>(d_, columns, normalize);
  }
  std::unique_ptr<ProjectionPass> projection_pass(const PcaModel& model,
                                                  const ScaledColumns& columns,
                                                  const LogNormalize& normalize) override {
    return std::make_unique<CudaProjectionPass>(d_, model, columns, normalize);
  }

  PcaModel pca(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& mean,
               int n_comps) override {
    const int n = static_cast<int>(covariance.rows());
    if (n_comps < 1) throw Error("", "pca.n_comps", "must be at least 1");
    n_comps = std::min(n_comps, n);
    DeviceBuffer<double> a(d_, static_cast<std::size_t>(n) * n), w(d_, n);
    DeviceBuffer<int> info(d_, 1);
    a.upload(covariance.data(), a.size());
    int lwork = 0;
    ORRERY_CUSOLVER_CHECK(cusolverDnDsyevd_bufferSize(d_.cusolver(), CUSOLVER_EIG_MODE_VECTOR,
                                                      CUBLAS_FILL_MODE_LOWER, n, a.get(), n,
                                                      w.get(), &lwork));
    DeviceBuffer<double> work(d_, std::max(1, lwork));
    ORRERY_CUSOLVER_CHECK(cusolverDnDsyevd(d_.cusolver(), CUSOLVER_EIG_MODE_VECTOR,
                                           CUBLAS_FILL_MODE_LOWER, n, a.get(), n, w.get(),
                                           work.get(), lwork, info.get()));
    int status = 0;
    std::vector<double> values(n);
    Eigen::MatrixXd vectors(n, n);
    info.download(&status, 1);
    w.download(values.data(), n);
    a.download(vectors.data(), a.size());
    d_.sync();
    if (status != 0)
      throw Error("", "pca", "cuSOLVER syevd failed (info " + std::to_string(status) + ")");
    std::vector<double> top(n_comps);  // syevd gives ascending eigenvalues
    Eigen::MatrixXd top_vectors(n, n_comps);
    for (int c = 0; c < n_comps; ++c) {
      top[c] = values[n - 1 - c];
      top_vectors.col(c) = vectors.col(n - 1 - c);
    }
    return pca_from_eigenpairs(covariance, mean, top, top_vectors);
  }

  // Leiden: the parallel flavour by default (cuda/leiden.cuh), igraph's on the host if asked.
  std::string leiden_flavor(const LeidenOptions& o) const override {
    return o.flavor == "auto" ? "parallel" : Backend::leiden_flavor(o);
  }
  std::vector<std::int32_t> leiden(const CsrMatrix& graph, const LeidenOptions& o,
                                   Progress& progress) override {
    if (leiden_flavor(o) != "parallel") return Backend::leiden(graph, o, progress);
    // About 100 bytes per graph entry and per cell at the peak (the level's graph, its sorted
    // copy and the aggregation's sort); the host runs the same flavour where that is not free.
    const auto need =
        100 * (static_cast<std::size_t>(graph.nnz()) + static_cast<std::size_t>(graph.n_rows));
    if (need > d_.available_bytes()) {
      progress.warn("leiden: the graph needs ~" + std::to_string(need >> 20) +
                    " MiB of device memory, more than is free: the parallel flavour runs on the "
                    "host (the same labels)");
      return leiden_parallel(graph, o, &progress);
    }
    return gpu::leiden(d_, graph, o, &progress);
  }

  // The spectral layout's eigenvectors of large components on the device (cuda/spectral.cuh:
  // the host's Lanczos iteration, its vector work on the device); smaller ones, and any the
  // device has no memory for, on the host.
  ComponentEigensolver spectral_eigensolver(std::int64_t device_min_vertices) override {
    return [this, device_min_vertices, host = host_lanczos_eigensolver()](
               const ComponentOperator& op, std::vector<double>& out) {
      if (op.a.rows() <
          std::max<std::int64_t>(device_min_vertices, 4 * spectral_lanczos_options().ncv))
        return host(op, out);
      const std::size_t need = gpu::spectral_lanczos_bytes(op);
      if (need > d_.available_bytes()) {
        note_host_fallback("umap: the spectral layout's eigenvectors are solved on the host (~" +
                           std::to_string(need >> 20) +
                           " MiB of device memory needed, more than is free)");
        return host(op, out);
      }
      LanczosResult r;
      try {
        r = gpu::spectral_lanczos(d_, op);
      } catch (const std::exception& e) {  // e.g. the pool ran out: the host has the memory
        note_host_fallback(std::string("umap: the device's spectral eigensolver failed (") +
                           e.what() + "): solved on the host");
        return host(op, out);
      }
      if (r.converged && !std::all_of(r.vectors.begin(), r.vectors.end(),
                                      [](double v) { return std::isfinite(v); })) {
        r.converged = false;
        r.why = "a non-finite eigenvector entry";
      }
      if (!r.converged) {
        note_host_fallback("umap: the device's spectral eigensolver stopped (" + r.why +
                           "): ARPACK solves that component on the host");
        return false;
      }
      out = std::move(r.vectors);
      return true;
    };
  }

  // One thread per vertex and epoch, the CPU's arithmetic and negative samples
  // (umap_step.hpp); positions come back to the host every 10 epochs for the progress callback.
  DenseMatrix umap(const CsrMatrix& graph, DenseMatrix emb, const UmapOptions& o,
                   Progress& progress, const EpochCallback& on_epoch) override {
    const std::int64_t n = graph.n_rows;
    if (emb.rows != n || emb.cols != 2) throw Error("", "umap", "initial layout must be n x 2");
    const int n_epochs = umap_epochs(o, n);
    const auto [a, b] = find_ab_params(o.spread, o.min_dist);
    UmapSchedule s = umap_schedule(graph, n_epochs, o.negative_sample_rate);
    const std::size_t m = s.tail.size();
    DeviceBuffer<std::int64_t> first(d_, s.first.size()), tail(d_, m);
    DeviceBuffer<double> eps(d_, m), eps_neg(d_, m), next_sample(d_, m), next_neg(d_, m);
    DeviceBuffer<float> y(d_, emb.values.size()), prev(d_, emb.values.size());
    first.upload(s.first.data(), s.first.size());
    tail.upload(s.tail.data(), m);
    eps.upload(s.eps.data(), m);
    eps_neg.upload(s.eps_neg.data(), m);
    next_sample.upload(s.next_sample.data(), m);
    next_neg.upload(s.next_neg.data(), m);
    y.upload(emb.values.data(), emb.values.size());
    // The host's copy (40 bytes an edge: 12 GB at 11M cells) is not needed past the uploads.
    d_.sync();
    s = UmapSchedule{};
    // Streamed to the renderer (layout_channel.hpp) whenever it asks, else (or once the
    // renderer stops taking them) through the host every 10 epochs for the callback.
    std::string why;
    const bool streaming = layout_channel_ && layout_channel_->open(n, &why);
    if (layout_channel_ && !streaming)
      progress.warn("the layout is drawn through the host while it optimises: " + why);
    DeviceBuffer<int> bounds(d_, streaming ? 4 : 0);
    const auto stream_layout = [&](int epoch) {
      const std::optional<bool> wait = layout_channel_->begin_write();
      if (!wait) return;
      LayoutChannel::Target& t = *layout_channel_->target();
      if (t.positions->size() < emb.values.size() * sizeof(float))
        throw Error("", "umap", "the renderer's position buffer is smaller than the layout");
      if (*wait) t.consumed->impl().wait(d_.stream);
      ORRERY_CUDA_CHECK(cudaMemcpyAsync(t.positions->device_pointer(), y.get(),
                                        emb.values.size() * sizeof(float), cudaMemcpyDeviceToDevice,
                                        d_.stream));
      const float init[4] = {FLT_MAX, FLT_MAX, -FLT_MAX, -FLT_MAX};
      int box[4];
      for (int i = 0; i < 4; ++i) {
        std::memcpy(&box[i], &init[i], 4);
        box[i] = ordered_int(box[i]);
      }
      bounds.upload(box, 4);
      if (n > 0)
        layout_bounds<<<static_cast<unsigned>(std::min<std::int64_t>(blocks_for(n, 256), 1024)),
                        256, 0, d_.stream>>>(y.get(), n, bounds.get());
      check_launch();
      t.ready->impl().signal(d_.stream);
      bounds.download(box, 4);
      d_.sync();
      float f[4];
      for (int i = 0; i < 4; ++i) {
        const int bits = ordered_int(box[i]);
        std::memcpy(&f[i], &bits, 4);
      }
      layout_channel_->delivered(epoch, {f[0], f[1], f[2], f[3]});
    };
    Event epoch_done[2];
    for (int epoch = 0; epoch < n_epochs; ++epoch) {
      if (epoch % 10 == 0) {
        progress.check();
        progress.report("umap", static_cast<double>(epoch) / n_epochs);
        if (on_epoch && !(streaming && layout_channel_->live())) {
          y.download(emb.values.data(), emb.values.size());
          d_.sync();
          on_epoch(epoch, n_epochs, emb);
        }
      }
      if (streaming) stream_layout(epoch);
      ORRERY_CUDA_CHECK(cudaMemcpyAsync(prev.get(), y.get(), y.size() * sizeof(float),
                                        cudaMemcpyDeviceToDevice, d_.stream));
      const UmapEpoch u = umap_epoch_args(
          {first.get(), tail.get(), eps.get(), eps_neg.get(), next_sample.get(), next_neg.get()},
          prev.get(), y.get(), n, {a, b}, o, epoch, n_epochs);
      umap_epoch<<<blocks_for(n, 128), 128, 0, d_.stream>>>(u);
      check_launch();
      // The host stays one epoch ahead of the device, no more: otherwise it queues every epoch
      // in milliseconds, and progress, cancelling and the renderer's requests (which are served
      // at the top of an epoch) all follow the queueing, not the optimisation: on an H200 the
      // renderer got the first layout and the last, nothing between.
      ORRERY_CUDA_CHECK(cudaEventRecord(epoch_done[epoch % 2], d_.stream));
      if (epoch > 0) ORRERY_CUDA_CHECK(cudaEventSynchronize(epoch_done[(epoch - 1) % 2]));
    }
    if (streaming) stream_layout(n_epochs);
    y.download(emb.values.data(), emb.values.size());
    d_.sync();
    progress.report("umap", 1.0);
    if (on_epoch) on_epoch(n_epochs, n_epochs, emb);
    return emb;
  }

  // The kNN lists on the device and each entry's membership (fuzzy_rows).
  struct DeviceMemberships {
    DeviceBuffer<float> dist, w;
    DeviceBuffer<std::int64_t> idx;
  };
  DeviceMemberships memberships_on_device(const KnnResult& knn, double local_connectivity) {
    const std::size_t m = knn.distances.size();
    DeviceMemberships out{DeviceBuffer<float>(d_, m), DeviceBuffer<float>(d_, m),
                          DeviceBuffer<std::int64_t>(d_, m)};
    out.dist.upload(knn.distances.data(), m);
    out.idx.upload(knn.indices.data(), m);
    fuzzy_rows<<<blocks_for(knn.n, 128), 128, 0, d_.stream>>>(out.dist.get(), out.idx.get(), knn.n,
                                                              knn.k, local_connectivity,
                                                              mean_knn_distance(knn), out.w.get());
    check_launch();
    return out;
  }

  std::vector<float> fuzzy_memberships(const KnnResult& knn, double local_connectivity) override {
    const std::size_t m = knn.distances.size();
    std::vector<float> w(m, 0.0f);
    if (m == 0) return w;
    memberships_on_device(knn, local_connectivity).w.download(w.data(), m);
    d_.sync();
    return w;
  }

  FuzzyGraph fuzzy_simplicial_set(const KnnResult& knn, double local_connectivity,
                                  double set_op_mix_ratio) override {
    const std::size_t m = knn.distances.size();
    // ~200 bytes per kNN slot at the union's peak (entry pairs, their sorted copies, the
    // compaction); the host's union where that is not free.
    if (m == 0 || knn.k > kMaxK || knn.indices.size() != m || 200 * m > d_.available_bytes()) {
      if (m > 0)
        note_host_fallback("neighbors: the fuzzy simplicial set runs on the host (" +
                           (knn.k > kMaxK ? "k above " + std::to_string(kMaxK)
                                          : "~" + std::to_string((200 * m) >> 20) +
                                                " MiB of device memory needed, more than is free") +
                           ")");
      return Backend::fuzzy_simplicial_set(knn, local_connectivity, set_op_mix_ratio);
    }
    const DeviceMemberships on = memberships_on_device(knn, local_connectivity);
    return gpu::fuzzy_union(d_, on.idx.get(), on.dist.get(), on.w.get(), knn.n, knn.k,
                            set_op_mix_ratio);
  }

  KnnResult knn(const DenseMatrix& points, const KnnOptions& o, Progress& progress) override {
    const std::int64_t n = points.rows;
    const bool exact = o.method == "exact" || (o.method == "auto" && n <= o.gpu_exact_max_cells);
    const bool ivf = o.method == "ivf" || (o.method == "auto" && !exact);
    if (!(exact || ivf) || o.n_neighbors > kMaxK) {
      if (o.n_neighbors > kMaxK)
        progress.warn("neighbors: n_neighbors above " + std::to_string(kMaxK) + " runs on the CPU");
      return Backend::knn(points, o, progress);
    }
    if (o.n_neighbors < 2) throw Error("", "neighbors.n_neighbors", "must be at least 2");
    if (o.metric != "euclidean" && o.metric != "cosine")
      throw Error("", "neighbors.metric", "unknown metric '" + o.metric + "'");
    if (n == 0) throw Error("", "neighbors", "no cells");
    const int dims = o.n_pcs > 0 ? std::min<int>(o.n_pcs, static_cast<int>(points.cols))
                                 : static_cast<int>(points.cols);
    const int k = static_cast<int>(std::min<std::int64_t>(o.n_neighbors, n));
    // Selection runs on float dot products, whose cancellation error (eps |x|^2) can swap
    // near-equal neighbours; a margin of candidates is kept and re-ranked on exact distances.
    const int kk = static_cast<int>(std::min<std::int64_t>({n, kMaxK, std::max(2 * k, k + 16)}));
    const bool cosine = o.metric == "cosine";

    std::vector<float> host(static_cast<std::size_t>(n) * dims);
    for (std::int64_t i = 0; i < n; ++i) {
      double norm = 0;
      for (int d = 0; d < dims; ++d) norm += double(points.at(i, d)) * points.at(i, d);
      const double scale = cosine && norm > 0 ? 1.0 / std::sqrt(norm) : 1.0;
      for (int d = 0; d < dims; ++d)
        host[i * dims + d] = static_cast<float>(points.at(i, d) * scale);
    }
    DeviceBuffer<float> x(d_, host.size()), sq(d_, n);
    x.upload(host.data(), host.size());
    squared_norms<<<blocks_for(n, 256), 256, 0, d_.stream>>>(x.get(), n, dims, sq.get());
    check_launch();

    if (ivf) return ivf_knn(host, x, sq, n, dims, k, kk, cosine, o, progress);

    const int q_tile = static_cast<int>(std::min<std::int64_t>(n, 8192));
    const int c_tile = static_cast<int>(std::min<std::int64_t>(n, 32768));
    DeviceBuffer<float> dots(d_, static_cast<std::size_t>(q_tile) * c_tile);
    DeviceBuffer<float> best_d(d_, static_cast<std::size_t>(q_tile) * kk),
        out_d(d_, static_cast<std::size_t>(q_tile) * k);
    DeviceBuffer<std::int64_t> best_i(d_, static_cast<std::size_t>(q_tile) * kk),
        out_i(d_, static_cast<std::size_t>(q_tile) * k);
    KnnResult r;
    r.n = n;
    r.k = k;
    r.indices.resize(static_cast<std::size_t>(n) * k);
    r.distances.resize(static_cast<std::size_t>(n) * k);
    const float one = 1.0f, zero = 0.0f;
    for (std::int64_t q0 = 0; q0 < n; q0 += q_tile) {
      progress.check();
      const int nq = static_cast<int>(std::min<std::int64_t>(q_tile, n - q0));
      fill_lists<<<blocks_for(std::int64_t{nq} * kk, 256), 256, 0, d_.stream>>>(
          best_d.get(), best_i.get(), std::int64_t{nq} * kk);
      check_launch();
      for (std::int64_t c0 = 0; c0 < n; c0 += c_tile) {
        const int nc = static_cast<int>(std::min<std::int64_t>(c_tile, n - c0));
        // Column-major nc x nq = (candidates)(queries)^T, i.e. row-major nq x nc.
        ORRERY_CUBLAS_CHECK(cublasSgemm(d_.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, nc, nq, dims, &one,
                                        x.get() + c0 * dims, dims, x.get() + q0 * dims, dims, &zero,
                                        dots.get(), nc));
        select_topk<<<blocks_for(nq, kSelectWarps), kSelectWarps * 32, 0, d_.stream>>>(
            dots.get(), nc, c0, q0, nq, nullptr, sq.get() + q0, sq.get(), nullptr, true,
            best_d.get(), best_i.get(), kk);
        check_launch();
      }
      refine_lists<<<blocks_for(nq, 64), 64, 0, d_.stream>>>(
          x.get(), dims, q0, nq, kk, k, cosine, best_i.get(), out_d.get(), out_i.get());
      check_launch();
      out_d.download(r.distances.data() + q0 * k, static_cast<std::size_t>(nq) * k);
      out_i.download(r.indices.data() + q0 * k, static_cast<std::size_t>(nq) * k);
      d_.sync();
      progress.report("neighbors", static_cast<double>(q0 + nq) / static_cast<double>(n));
    }
    return r;
  }

 private:
  // For each of the n_q rows of `xq` (device, row-major, norms q_sq) the k nearest of the n_c
  // rows of `xc` (norms c_sq), as indices into xc, nearest first (host, n_q x k).
  std::vector<std::int64_t> nearest_rows(const float* xq, const float* q_sq, std::int64_t n_q,
                                         const float* xc, const float* c_sq, std::int64_t n_c,
                                         int dims, int k) {
    const int q_tile = static_cast<int>(std::min<std::int64_t>(n_q, 8192));
    const int c_tile = static_cast<int>(std::min<std::int64_t>(n_c, 32768));
    DeviceBuffer<float> dots(d_, static_cast<std::size_t>(q_tile) * c_tile);
    DeviceBuffer<float> best_d(d_, static_cast<std::size_t>(q_tile) * k);
    DeviceBuffer<std::int64_t> best_i(d_, static_cast<std::size_t>(q_tile) * k);
    std::vector<std::int64_t> out(static_cast<std::size_t>(n_q) * k);
    const float one = 1.0f, zero = 0.0f;
    for (std::int64_t q0 = 0; q0 < n_q; q0 += q_tile) {
      const int nq = static_cast<int>(std::min<std::int64_t>(q_tile, n_q - q0));
      fill_lists<<<blocks_for(std::int64_t{nq} * k, 256), 256, 0, d_.stream>>>(
          best_d.get(), best_i.get(), std::int64_t{nq} * k);
      check_launch();
      for (std::int64_t c0 = 0; c0 < n_c; c0 += c_tile) {
        const int nc = static_cast<int>(std::min<std::int64_t>(c_tile, n_c - c0));
        ORRERY_CUBLAS_CHECK(cublasSgemm(d_.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, nc, nq, dims, &one,
                                        xc + c0 * dims, dims, xq + q0 * dims, dims, &zero,
                                        dots.get(), nc));
        select_topk<<<blocks_for(nq, kSelectWarps), kSelectWarps * 32, 0, d_.stream>>>(
            dots.get(), nc, c0, q0, nq, nullptr, q_sq + q0, c_sq, nullptr, false, best_d.get(),
            best_i.get(), k);
        check_launch();
      }
      best_i.download(out.data() + q0 * k, static_cast<std::size_t>(nq) * k);
      d_.sync();
    }
    return out;
  }

  // Approximate kNN by an inverted file: k-means lists (a deterministic sample, Lloyd steps with
  // the assignment on the GPU and the means in double on the host), every point filed under its
  // nearest centroid, and each point searched in the lists of its `ivf_probes` nearest
  // centroids — list by list, so one GEMM serves all the queries probing a list. The chosen
  // candidates are ranked on exact distances as in the exact search.
  KnnResult ivf_knn(const std::vector<float>& host, DeviceBuffer<float>& x, DeviceBuffer<float>& sq,
                    std::int64_t n, int dims, int k, int kk, bool cosine, const KnnOptions& o,
                    Progress& progress) {
    const int lists = static_cast<int>(
        o.ivf_lists > 0 ? std::min<std::int64_t>(o.ivf_lists, n)
                        : std::clamp<std::int64_t>(std::llround(std::sqrt(double(n))), 1, 65536));
    const int probes = std::min(o.ivf_probes, lists);
    if (probes > kMaxK) throw Error("", "neighbors.ivf_probes", "at most 128 on the GPU");
    progress.report("neighbors: ivf lists", 0.0);
    // k-means on an evenly strided sample (no random draw: the same lists for the same data).
    const std::int64_t m = std::min<std::int64_t>(n, std::max<std::int64_t>(64LL * lists, 20000));
    std::vector<float> sample(static_cast<std::size_t>(m) * dims), sample_sq(m);
    for (std::int64_t t = 0; t < m; ++t) {
      const std::int64_t i = t * n / m;
      std::copy_n(host.begin() + i * dims, dims, sample.begin() + t * dims);
    }
    std::vector<float> centroids(static_cast<std::size_t>(lists) * dims), c_sq(lists);
    for (int c = 0; c < lists; ++c) {
      const std::int64_t t = static_cast<std::int64_t>(c) * m / lists;
      std::copy_n(sample.begin() + t * dims, dims, centroids.begin() + std::int64_t{c} * dims);
    }
    auto norms = [dims](const std::vector<float>& rows, std::vector<float>& out) {
      for (std::size_t r = 0; r < out.size(); ++r) {
        float v = 0;
        for (int d = 0; d < dims; ++d) v += rows[r * dims + d] * rows[r * dims + d];
        out[r] = v;
      }
    };
    norms(sample, sample_sq);
    DeviceBuffer<float> ds(d_, sample.size()), ds_sq(d_, m), dc(d_, centroids.size()),
        dc_sq(d_, lists);
    ds.upload(sample.data(), sample.size());
    ds_sq.upload(sample_sq.data(), m);
    for (int iteration = 0; iteration < 10; ++iteration) {
      progress.check();
      norms(centroids, c_sq);
      dc.upload(centroids.data(), centroids.size());
      dc_sq.upload(c_sq.data(), lists);
      const auto nearest =
          nearest_rows(ds.get(), ds_sq.get(), m, dc.get(), dc_sq.get(), lists, dims, 1);
      std::vector<double> sums(static_cast<std::size_t>(lists) * dims, 0.0);
      std::vector<std::int64_t> count(lists, 0);
      for (std::int64_t t = 0; t < m; ++t) {
        const auto c = nearest[t];
        ++count[c];
        for (int d = 0; d < dims; ++d) sums[c * dims + d] += sample[t * dims + d];
      }
      for (int c = 0; c < lists; ++c)
        if (count[c] > 0)  // an empty list keeps its centroid
          for (int d = 0; d < dims; ++d)
            centroids[std::int64_t{c} * dims + d] =
                static_cast<float>(sums[std::int64_t{c} * dims + d] / count[c]);
    }
    norms(centroids, c_sq);
    dc.upload(centroids.data(), centroids.size());
    dc_sq.upload(c_sq.data(), lists);
    // Each point's nearest `probes` centroids; the first is its list.
    const auto probe =
        nearest_rows(x.get(), sq.get(), n, dc.get(), dc_sq.get(), lists, dims, probes);
    std::vector<std::int64_t> list_start(lists + 1, 0), perm(n);
    for (std::int64_t i = 0; i < n; ++i) ++list_start[probe[i * probes] + 1];
    for (int c = 0; c < lists; ++c) list_start[c + 1] += list_start[c];
    {
      std::vector<std::int64_t> at(list_start.begin(), list_start.end() - 1);
      for (std::int64_t i = 0; i < n; ++i) perm[at[probe[i * probes]]++] = i;
    }
    // Queries by probed list (increasing query id within a list).
    std::vector<std::int64_t> probe_start(lists + 1, 0);
    for (std::size_t t = 0; t < probe.size(); ++t) ++probe_start[probe[t] + 1];
    for (int c = 0; c < lists; ++c) probe_start[c + 1] += probe_start[c];
    std::vector<std::int64_t> by_list(probe.size());
    {
      std::vector<std::int64_t> at(probe_start.begin(), probe_start.end() - 1);
      for (std::int64_t i = 0; i < n; ++i)
        for (int p = 0; p < probes; ++p) by_list[at[probe[i * probes + p]]++] = i;
    }
    DeviceBuffer<std::int64_t> dperm(d_, n);
    DeviceBuffer<float> xs(d_, static_cast<std::size_t>(n) * dims), xs_sq(d_, n);
    dperm.upload(perm.data(), n);
    gather_rows<<<blocks_for(n * dims, 256), 256, 0, d_.stream>>>(
        x.get(), sq.get(), dims, dperm.get(), n, xs.get(), xs_sq.get());
    check_launch();

    DeviceBuffer<float> best_d(d_, static_cast<std::size_t>(n) * kk);
    DeviceBuffer<std::int64_t> best_i(d_, static_cast<std::size_t>(n) * kk);
    fill_lists<<<blocks_for(n * kk, 256), 256, 0, d_.stream>>>(best_d.get(), best_i.get(), n * kk);
    check_launch();
    const int q_tile = 8192, c_tile = 32768;
    DeviceBuffer<float> dots(d_, static_cast<std::size_t>(q_tile) * c_tile);
    DeviceBuffer<float> xq(d_, static_cast<std::size_t>(q_tile) * dims), xq_sq(d_, q_tile);
    DeviceBuffer<std::int64_t> qids(d_, q_tile);
    const float one = 1.0f, zero = 0.0f;
    for (int list = 0; list < lists; ++list) {
      if (list % 64 == 0) {
        progress.check();
        progress.report("neighbors: ivf search", static_cast<double>(list) / lists);
      }
      const std::int64_t c_begin = list_start[list], c_end = list_start[list + 1];
      for (std::int64_t q0 = probe_start[list]; q0 < probe_start[list + 1]; q0 += q_tile) {
        const int nq = static_cast<int>(std::min<std::int64_t>(q_tile, probe_start[list + 1] - q0));
        qids.upload(by_list.data() + q0, nq);
        gather_rows<<<blocks_for(std::int64_t{nq} * dims, 256), 256, 0, d_.stream>>>(
            x.get(), sq.get(), dims, qids.get(), nq, xq.get(), xq_sq.get());
        check_launch();
        for (std::int64_t c0 = c_begin; c0 < c_end; c0 += c_tile) {
          const int nc = static_cast<int>(std::min<std::int64_t>(c_tile, c_end - c0));
          ORRERY_CUBLAS_CHECK(cublasSgemm(d_.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, nc, nq, dims, &one,
                                          xs.get() + c0 * dims, dims, xq.get(), dims, &zero,
                                          dots.get(), nc));
          select_topk<<<blocks_for(nq, kSelectWarps), kSelectWarps * 32, 0, d_.stream>>>(
              dots.get(), nc, c0, 0, nq, qids.get(), xq_sq.get(), xs_sq.get(), dperm.get(), true,
              best_d.get(), best_i.get(), kk);
          check_launch();
        }
        // No sync: the next tile's upload of qids (pageable memory) waits for this tile's kernels.
      }
    }
    KnnResult r;
    r.n = n;
    r.k = k;
    r.indices.resize(static_cast<std::size_t>(n) * k);
    r.distances.resize(static_cast<std::size_t>(n) * k);
    DeviceBuffer<float> out_d(d_, static_cast<std::size_t>(q_tile) * k);
    DeviceBuffer<std::int64_t> out_i(d_, static_cast<std::size_t>(q_tile) * k);
    for (std::int64_t q0 = 0; q0 < n; q0 += q_tile) {
      const int nq = static_cast<int>(std::min<std::int64_t>(q_tile, n - q0));
      refine_lists<<<blocks_for(nq, 64), 64, 0, d_.stream>>>(
          x.get(), dims, q0, nq, kk, k, cosine, best_i.get() + q0 * kk, out_d.get(), out_i.get());
      check_launch();
      out_d.download(r.distances.data() + q0 * k, static_cast<std::size_t>(nq) * k);
      out_i.download(r.indices.data() + q0 * k, static_cast<std::size_t>(nq) * k);
      d_.sync();
    }
    const auto missing = std::count(r.indices.begin(), r.indices.end(), std::int64_t{-1});
    if (missing > 0)
      throw Error("", "neighbors.ivf_probes",
                  std::to_string(missing) +
                      " neighbour slots found no candidate; raise ivf_probes or lower ivf_lists");
    progress.report("neighbors", 1.0);
    return r;
  }

  mutable Device d_;
  LayoutChannel* layout_channel_ = nullptr;
};

}  // namespace

bool cuda_compiled() {
  return true;
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

bool load_cuda_libraries(std::string* why) {
  return gpu::load_libraries(why);
}

std::unique_ptr<Backend> make_cuda_backend(std::string* why) {
  int n = 0;
  cudaError_t status = cudaGetDeviceCount(&n);
  if (status != cudaSuccess || n == 0) {
    if (why)
      *why = status != cudaSuccess
                 ? std::string("no CUDA device (") + cudaGetErrorString(status) + ")"
                 : "no CUDA device";
    return nullptr;
  }
  cudaDeviceProp prop{};
  ORRERY_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::size_t free = 0, total = 0;
  ORRERY_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  constexpr std::size_t kMinFree = std::size_t{1} << 30;
  if (free < kMinFree) {
    if (why)
      *why = std::string(prop.name) + " has " + std::to_string(free >> 20) +
             " MiB free, under the 1024 MiB the backend needs";
    return nullptr;
  }
  if (std::string libraries; !gpu::load_libraries(&libraries)) {
    if (why) *why = std::string(prop.name) + ": " + libraries;
    return nullptr;
  }
  if (why)
    *why = std::string(prop.name) + ", " + std::to_string(total >> 30) + " GiB, compute " +
           std::to_string(prop.major) + "." + std::to_string(prop.minor);
  return std::make_unique<CudaBackend>();
}

}  // namespace orrery::compute
