// The device side shared by the CUDA backend's files: error checks for cuBLAS/cuSOLVER, the
// device (stream, memory pool, library handles), stream-ordered buffers and launch helpers.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "compute/cuda/check.cuh"

#define ORRERY_CUBLAS_CHECK(call)                                                  \
  do {                                                                             \
    if (cublasStatus_t s_ = (call); s_ != CUBLAS_STATUS_SUCCESS)                   \
      throw ::orrery::Error("", #call, "cuBLAS error " + std::to_string(int(s_))); \
  } while (0)
#define ORRERY_CUSOLVER_CHECK(call)                                                  \
  do {                                                                               \
    if (cusolverStatus_t s_ = (call); s_ != CUSOLVER_STATUS_SUCCESS)                 \
      throw ::orrery::Error("", #call, "cuSOLVER error " + std::to_string(int(s_))); \
  } while (0)

namespace orrery::compute::gpu {

// The device memory of one backend: an explicit pool (capped by ORRERY_CUDA_MAX_POOL, e.g.
// "40G"; freed blocks are kept for reuse, like rmm's pool) and the stream every stage runs on.
struct Device {
  cudaStream_t stream = nullptr;
  cudaMemPool_t pool = nullptr;
  cublasHandle_t blas = nullptr;
  cusolverDnHandle_t solver = nullptr;

  std::size_t pool_cap = 0;  // 0: the device's memory
  // Host seconds of the streamed passes (BlockStager): filling page-locked buffers, and waiting
  // for the device to be done with one.
  double staging_seconds = 0, device_wait_seconds = 0;

  explicit Device(std::size_t max_pool_bytes) : pool_cap(max_pool_bytes) {
    ORRERY_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = 0;
    props.maxSize = max_pool_bytes;
    ORRERY_CUDA_CHECK(cudaMemPoolCreate(&pool, &props));
    std::uint64_t keep = std::numeric_limits<std::uint64_t>::max();
    ORRERY_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  }
  ~Device() {
    if (solver) cusolverDnDestroy(solver);
    if (blas) cublasDestroy(blas);
    cudaStreamSynchronize(stream);
    cudaMemPoolDestroy(pool);
    cudaStreamDestroy(stream);
  }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  cublasHandle_t cublas() {
    if (!blas) {
      ORRERY_CUBLAS_CHECK(cublasCreate(&blas));
      ORRERY_CUBLAS_CHECK(cublasSetStream(blas, stream));
      ORRERY_CUBLAS_CHECK(cublasSetMathMode(blas, CUBLAS_PEDANTIC_MATH));  // plain FP32/FP64
    }
    return blas;
  }
  cusolverDnHandle_t cusolver() {
    if (!solver) {
      ORRERY_CUSOLVER_CHECK(cusolverDnCreate(&solver));
      ORRERY_CUSOLVER_CHECK(cusolverDnSetStream(solver, stream));
    }
    return solver;
  }
  std::int64_t peak_bytes() const {
    std::uint64_t high = 0;
    cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high);
    return static_cast<std::int64_t>(high);
  }
  void sync() { ORRERY_CUDA_CHECK(cudaStreamSynchronize(stream)); }
  // Memory a stage may still plan for: the device's free memory, within the pool's cap. The
  // pool keeps freed blocks (release threshold: all), which the device does not count as free:
  // they are given back first (after the stream's frees complete), so an earlier stage's peak
  // neither hides memory from a later stage's plan nor fragments it. Called where a stage plans,
  // never per chunk.
  std::size_t available_bytes() const {
    ORRERY_CUDA_CHECK(cudaStreamSynchronize(stream));
    ORRERY_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
    std::size_t free = 0, total = 0;
    ORRERY_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    if (pool_cap == 0) return free;
    std::uint64_t used = 0;
    cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used);
    const std::size_t left = pool_cap > used ? pool_cap - static_cast<std::size_t>(used) : 0;
    return std::min(free, left);
  }
};

// Stream-ordered allocation from the device's pool.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer(Device& d, std::size_t n) : d_(&d), n_(n) {
    if (n)
      ORRERY_CUDA_CHECK(cudaMallocFromPoolAsync(reinterpret_cast<void**>(&ptr_), n * sizeof(T),
                                                d.pool, d.stream));
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFreeAsync(ptr_, d_->stream);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : d_(o.d_), ptr_(o.ptr_), n_(o.n_) {
    o.ptr_ = nullptr;
    o.n_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      if (ptr_) cudaFreeAsync(ptr_, d_->stream);
      d_ = o.d_;
      ptr_ = o.ptr_;
      n_ = o.n_;
      o.ptr_ = nullptr;
      o.n_ = 0;
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return ptr_; }
  std::size_t size() const { return n_; }
  void upload(const T* host, std::size_t n, std::size_t offset = 0) {
    if (n)
      ORRERY_CUDA_CHECK(
          cudaMemcpyAsync(ptr_ + offset, host, n * sizeof(T), cudaMemcpyHostToDevice, d_->stream));
  }
  void download(T* host, std::size_t n) const {
    if (n)
      ORRERY_CUDA_CHECK(
          cudaMemcpyAsync(host, ptr_, n * sizeof(T), cudaMemcpyDeviceToHost, d_->stream));
  }
  void zero() {
    if (n_) ORRERY_CUDA_CHECK(cudaMemsetAsync(ptr_, 0, n_ * sizeof(T), d_->stream));
  }

 private:
  Device* d_;
  T* ptr_ = nullptr;
  std::size_t n_;
};

// A stream, an event and page-locked host memory, each released with its owner.
class Stream {
 public:
  Stream() { ORRERY_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() {
    cudaStreamSynchronize(s_);
    cudaStreamDestroy(s_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  operator cudaStream_t() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  Event() { ORRERY_CUDA_CHECK(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming)); }
  ~Event() { cudaEventDestroy(e_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  operator cudaEvent_t() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

template <typename T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() {
    if (ptr_) cudaFreeHost(ptr_);
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  // At least n elements; the contents are not kept. Only while no copy reads the buffer.
  void reserve(std::size_t n) {
    if (n <= n_) return;
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    n_ = 0;
    ORRERY_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&ptr_), n * sizeof(T)));
    n_ = n;
  }
  T* get() const { return ptr_; }

 private:
  T* ptr_ = nullptr;
  std::size_t n_ = 0;
};

inline void check_launch() {
  ORRERY_CUDA_CHECK(cudaGetLastError());
}

// A one-dimensional grid's blocks; past the x-dimension's limit (2^31 - 1) a launch would
// wrap, so that is an error instead.
inline unsigned blocks_for(std::int64_t threads_needed, int per_block) {
  const std::int64_t blocks = (threads_needed + per_block - 1) / per_block;
  if (blocks > 0x7fffffff)
    throw Error(
        "", "cuda",
        "a launch of " + std::to_string(threads_needed) + " threads exceeds the grid's limit");
  return static_cast<unsigned>(blocks);
}

}  // namespace orrery::compute::gpu
