// CUDA backend: device detection and the per-chunk normalize_total + log1p on a CSR chunk.
// The arithmetic is the same __host__ __device__ function the CPU backend uses.
#include <cuda_runtime.h>

#include <memory>

#include "compute/backend.hpp"
#include "compute/cuda/check.cuh"
#include "compute/elementwise.hpp"

namespace orrery::compute {
namespace {

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  explicit DeviceBuffer(std::size_t n) {
    if (n) ORRERY_CUDA_CHECK(cudaMalloc(&ptr, n * sizeof(T)));
  }
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// One warp per row: sum the row (without excluded columns, when a mask is given), then rewrite
// its values.
__global__ void normalize_log1p_rows(const std::int64_t* indptr, const std::int32_t* indices,
                                     const char* excluded, float* data, std::int64_t n_rows,
                                     double target_sum) {
  const std::int64_t warp = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
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

class CudaBackend final : public Backend {
 public:
  std::string name() const override { return "cuda"; }
  void normalize_log1p(CsrMatrix& chunk, double target_sum,
                       const std::vector<char>* excluded) override {
    if (chunk.n_rows == 0) return;
    DeviceBuffer<std::int64_t> indptr(chunk.indptr.size());
    DeviceBuffer<float> data(chunk.data.size());
    DeviceBuffer<std::int32_t> indices(excluded ? chunk.indices.size() : 0);
    DeviceBuffer<char> mask(excluded ? excluded->size() : 0);
    if (excluded && !chunk.indices.empty())
      ORRERY_CUDA_CHECK(cudaMemcpy(indices.ptr, chunk.indices.data(),
                                   chunk.indices.size() * sizeof(std::int32_t),
                                   cudaMemcpyHostToDevice));
    if (excluded && !excluded->empty())
      ORRERY_CUDA_CHECK(
          cudaMemcpy(mask.ptr, excluded->data(), excluded->size(), cudaMemcpyHostToDevice));
    ORRERY_CUDA_CHECK(cudaMemcpy(indptr.ptr, chunk.indptr.data(),
                                 chunk.indptr.size() * sizeof(std::int64_t),
                                 cudaMemcpyHostToDevice));
    if (!chunk.data.empty())
      ORRERY_CUDA_CHECK(cudaMemcpy(data.ptr, chunk.data.data(), chunk.data.size() * sizeof(float),
                                   cudaMemcpyHostToDevice));
    const int threads = 256;
    const auto blocks = static_cast<unsigned>((chunk.n_rows * 32 + threads - 1) / threads);
    normalize_log1p_rows<<<blocks, threads>>>(
        indptr.ptr, indices.ptr, excluded ? mask.ptr : nullptr, data.ptr, chunk.n_rows, target_sum);
    ORRERY_CUDA_CHECK(cudaGetLastError());
    if (!chunk.data.empty())
      ORRERY_CUDA_CHECK(cudaMemcpy(chunk.data.data(), data.ptr, chunk.data.size() * sizeof(float),
                                   cudaMemcpyDeviceToHost));
  }
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
  cudaGetDeviceProperties(&prop, 0);
  if (why) *why = std::string(prop.name);
  return std::make_unique<CudaBackend>();
}

}  // namespace orrery::compute
