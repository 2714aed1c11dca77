// The cuBLAS and cuSOLVER functions the CUDA backend calls, defined here under their own names
// (the headers declare them, so each definition is checked against the library's signature) and
// forwarding to the library, opened with dlopen by load_libraries. Before it has succeeded they
// return NOT_INITIALIZED, which the backend's checks report like any library error.
#include <cublas_v2.h>
#include <cusolverDn.h>
#include <dlfcn.h>

#include <atomic>
#include <mutex>
#include <string>
#include <utility>

#include "compute/cuda/libraries.cuh"

namespace orrery::compute::gpu {
namespace {

struct Libraries {
  void* blas = nullptr;
  void* solver = nullptr;
  std::atomic<bool> ok{false};  // set (release) once both handles and every function are found
  std::string why;
};

const char* const kFunctions[][2] = {
    {ORRERY_CUBLAS_SONAME, "cublasCreate_v2"},
    {ORRERY_CUBLAS_SONAME, "cublasDestroy_v2"},
    {ORRERY_CUBLAS_SONAME, "cublasSetStream_v2"},
    {ORRERY_CUBLAS_SONAME, "cublasSetMathMode"},
    {ORRERY_CUBLAS_SONAME, "cublasDnrm2_v2"},
    {ORRERY_CUBLAS_SONAME, "cublasDdot_v2"},
    {ORRERY_CUBLAS_SONAME, "cublasDaxpy_v2"},
    {ORRERY_CUBLAS_SONAME, "cublasDgemv_v2"},
    {ORRERY_CUBLAS_SONAME, "cublasSgemm_v2"},
    {ORRERY_CUBLAS_SONAME, "cublasDgemm_v2"},
    {ORRERY_CUBLAS_SONAME, "cublasDsyrk_v2"},
    {ORRERY_CUSOLVER_SONAME, "cusolverDnCreate"},
    {ORRERY_CUSOLVER_SONAME, "cusolverDnDestroy"},
    {ORRERY_CUSOLVER_SONAME, "cusolverDnSetStream"},
    {ORRERY_CUSOLVER_SONAME, "cusolverDnDsyevd_bufferSize"},
    {ORRERY_CUSOLVER_SONAME, "cusolverDnDsyevd"},
};

Libraries& libraries() {
  static Libraries l;
  return l;
}

std::once_flag opened;

void open_libraries() {
  Libraries& l = libraries();
  for (auto [handle, name] :
       {std::pair{&l.blas, ORRERY_CUBLAS_SONAME}, std::pair{&l.solver, ORRERY_CUSOLVER_SONAME}}) {
    *handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!*handle) {
      const char* e = dlerror();
      l.why = std::string("cannot open ") + name + " (" + (e ? e : "unknown error") +
              "): the CUDA toolkit's libraries must be on the library path";
      return;
    }
  }
  for (const auto& [library, function] : kFunctions) {
    void* handle = std::string(library) == ORRERY_CUBLAS_SONAME ? l.blas : l.solver;
    if (!dlsym(handle, function)) {
      l.why = std::string(library) + " has no " + function + " (another CUDA version?)";
      return;
    }
  }
  l.ok.store(true, std::memory_order_release);
}

// The library's own `name`, of the type of our definition of it, found once load_libraries has
// succeeded (null before).
template <typename F>
F resolve(std::atomic<F>& cache, bool blas, const char* name) {
  F f = cache.load(std::memory_order_acquire);
  if (f) return f;
  const Libraries& l = libraries();
  if (!l.ok.load(std::memory_order_acquire)) return nullptr;
  f = reinterpret_cast<F>(dlsym(blas ? l.blas : l.solver, name));
  cache.store(f, std::memory_order_release);
  return f;
}

}  // namespace

bool load_libraries(std::string* why) {
  std::call_once(opened, open_libraries);
  const bool ok = libraries().ok.load(std::memory_order_acquire);
  if (!ok && why) *why = libraries().why;
  return ok;
}

}  // namespace orrery::compute::gpu

// Each forwards to the library's function of the same name, looked up on its first call after
// load_libraries succeeded.
#define ORRERY_FORWARD(blas, not_loaded, name, ...)                   \
  static std::atomic<decltype(&name)> cache{nullptr};                 \
  const auto f = ::orrery::compute::gpu::resolve(cache, blas, #name); \
  return f ? f(__VA_ARGS__) : not_loaded
#define ORRERY_CUBLAS(name, ...) \
  ORRERY_FORWARD(true, CUBLAS_STATUS_NOT_INITIALIZED, name, __VA_ARGS__)
#define ORRERY_CUSOLVER(name, ...) \
  ORRERY_FORWARD(false, CUSOLVER_STATUS_NOT_INITIALIZED, name, __VA_ARGS__)

extern "C" {

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t* handle) {
  ORRERY_CUBLAS(cublasCreate_v2, handle);
}
cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
  ORRERY_CUBLAS(cublasDestroy_v2, handle);
}
cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  ORRERY_CUBLAS(cublasSetStream_v2, handle, stream);
}
cublasStatus_t CUBLASWINAPI cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  ORRERY_CUBLAS(cublasSetMathMode, handle, mode);
}
cublasStatus_t CUBLASWINAPI cublasDnrm2_v2(cublasHandle_t handle, int n, const double* x, int incx,
                                           double* result) {
  ORRERY_CUBLAS(cublasDnrm2_v2, handle, n, x, incx, result);
}
cublasStatus_t CUBLASWINAPI cublasDdot_v2(cublasHandle_t handle, int n, const double* x, int incx,
                                          const double* y, int incy, double* result) {
  ORRERY_CUBLAS(cublasDdot_v2, handle, n, x, incx, y, incy, result);
}
cublasStatus_t CUBLASWINAPI cublasDaxpy_v2(cublasHandle_t handle, int n, const double* alpha,
                                           const double* x, int incx, double* y, int incy) {
  ORRERY_CUBLAS(cublasDaxpy_v2, handle, n, alpha, x, incx, y, incy);
}
cublasStatus_t CUBLASWINAPI cublasDgemv_v2(cublasHandle_t handle, cublasOperation_t trans, int m,
                                           int n, const double* alpha, const double* A, int lda,
                                           const double* x, int incx, const double* beta, double* y,
                                           int incy) {
  ORRERY_CUBLAS(cublasDgemv_v2, handle, trans, m, n, alpha, A, lda, x, incx, beta, y, incy);
}
cublasStatus_t CUBLASWINAPI cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
                                           cublasOperation_t transb, int m, int n, int k,
                                           const float* alpha, const float* A, int lda,
                                           const float* B, int ldb, const float* beta, float* C,
                                           int ldc) {
  ORRERY_CUBLAS(cublasSgemm_v2, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C,
                ldc);
}
cublasStatus_t CUBLASWINAPI cublasDgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
                                           cublasOperation_t transb, int m, int n, int k,
                                           const double* alpha, const double* A, int lda,
                                           const double* B, int ldb, const double* beta, double* C,
                                           int ldc) {
  ORRERY_CUBLAS(cublasDgemm_v2, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C,
                ldc);
}
cublasStatus_t CUBLASWINAPI cublasDsyrk_v2(cublasHandle_t handle, cublasFillMode_t uplo,
                                           cublasOperation_t trans, int n, int k,
                                           const double* alpha, const double* A, int lda,
                                           const double* beta, double* C, int ldc) {
  ORRERY_CUBLAS(cublasDsyrk_v2, handle, uplo, trans, n, k, alpha, A, lda, beta, C, ldc);
}
cusolverStatus_t CUSOLVERAPI cusolverDnCreate(cusolverDnHandle_t* handle) {
  ORRERY_CUSOLVER(cusolverDnCreate, handle);
}
cusolverStatus_t CUSOLVERAPI cusolverDnDestroy(cusolverDnHandle_t handle) {
  ORRERY_CUSOLVER(cusolverDnDestroy, handle);
}
cusolverStatus_t CUSOLVERAPI cusolverDnSetStream(cusolverDnHandle_t handle, cudaStream_t stream) {
  ORRERY_CUSOLVER(cusolverDnSetStream, handle, stream);
}
cusolverStatus_t CUSOLVERAPI cusolverDnDsyevd_bufferSize(cusolverDnHandle_t handle,
                                                         cusolverEigMode_t jobz,
                                                         cublasFillMode_t uplo, int n,
                                                         const double* A, int lda, const double* W,
                                                         int* lwork) {
  ORRERY_CUSOLVER(cusolverDnDsyevd_bufferSize, handle, jobz, uplo, n, A, lda, W, lwork);
}
cusolverStatus_t CUSOLVERAPI cusolverDnDsyevd(cusolverDnHandle_t handle, cusolverEigMode_t jobz,
                                              cublasFillMode_t uplo, int n, double* A, int lda,
                                              double* W, double* work, int lwork, int* info) {
  ORRERY_CUSOLVER(cusolverDnDsyevd, handle, jobz, uplo, n, A, lda, W, work, lwork, info);
}

}  // extern "C"
