#include "compute/cuda/spectral.cuh"

#include <algorithm>
#include <limits>
#include <string>

#include "io/error.hpp"

namespace orrery::compute::gpu {
namespace {

constexpr int kThreads = 256;

// w = A x, one row per thread, summed in the row's order.
__global__ void multiply_rows(const std::int64_t* indptr, const std::int32_t* indices,
                              const double* weights, const double* x, double* w, std::int64_t n) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i >= n) return;
  double sum = 0.0;
  for (std::int64_t k = indptr[i]; k < indptr[i + 1]; ++k) sum += weights[k] * x[indices[k]];
  w[i] = sum;
}

__global__ void scaled_copy(const double* from, double scale, double* to, std::int64_t n) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i < n) to[i] = scale * from[i];
}

class DeviceLanczosOps final : public LanczosOps {
 public:
  // What rotate() and combine() write at most: the kept Ritz vectors, or the answer's.
  static int scratch_columns() {
    return std::max(lanczos_kept(spectral_lanczos_options()), spectral_lanczos_options().nev);
  }
  DeviceLanczosOps(Device& d, const ComponentOperator& op, int columns)
      : d_(d),
        n_(op.a.rows()),
        indptr_(d, op.a.indptr.size()),
        indices_(d, op.a.indices.size()),
        weights_(d, op.a.weights.size()),
        locked_(d, static_cast<std::size_t>(n_)),
        basis_(d, static_cast<std::size_t>(columns) * n_),
        w_(d, static_cast<std::size_t>(n_)),
        scratch_(d, static_cast<std::size_t>(scratch_columns()) * n_),
        small_(d, static_cast<std::size_t>(columns) * columns) {
    indptr_.upload(op.a.indptr.data(), op.a.indptr.size());
    indices_.upload(op.a.indices.data(), op.a.indices.size());
    weights_.upload(op.a.weights.data(), op.a.weights.size());
    const std::vector<double> u = trivial_vector(op);
    locked_.upload(u.data(), u.size());
    d_.sync();  // the host vectors above may go
  }
  std::int64_t size() const override { return n_; }
  void start(const std::vector<double>& v) override {
    w_.upload(v.data(), v.size());
    d_.sync();
  }
  void multiply(int c) override {
    multiply_rows<<<blocks_for(n_, kThreads), kThreads, 0, d_.stream>>>(
        indptr_.get(), indices_.get(), weights_.get(), column(c), w_.get(), n_);
    check_launch();
  }
  void deflate() override {
    double dot = 0.0;
    ORRERY_CUBLAS_CHECK(cublasDdot(d_.cublas(), len(), locked_.get(), 1, w_.get(), 1, &dot));
    const double minus = -dot;
    ORRERY_CUBLAS_CHECK(cublasDaxpy(d_.cublas(), len(), &minus, locked_.get(), 1, w_.get(), 1));
  }
  void project(int count, double* h) override {
    const double one = 1.0, zero = 0.0;
    ORRERY_CUBLAS_CHECK(cublasDgemv(d_.cublas(), CUBLAS_OP_T, len(), count, &one, basis_.get(),
                                    len(), w_.get(), 1, &zero, small_.get(), 1));
    small_.download(h, static_cast<std::size_t>(count));
    d_.sync();
  }
  void subtract(int count, const double* h) override {
    small_.upload(h, static_cast<std::size_t>(count));
    const double minus = -1.0, one = 1.0;
    ORRERY_CUBLAS_CHECK(cublasDgemv(d_.cublas(), CUBLAS_OP_N, len(), count, &minus, basis_.get(),
                                    len(), small_.get(), 1, &one, w_.get(), 1));
  }
  double norm() override {
    double r = 0.0;
    ORRERY_CUBLAS_CHECK(cublasDnrm2(d_.cublas(), len(), w_.get(), 1, &r));
    return r;
  }
  void store(int c, double scale) override {
    scaled_copy<<<blocks_for(n_, kThreads), kThreads, 0, d_.stream>>>(w_.get(), scale, column(c),
                                                                      n_);
    check_launch();
  }
  void rotate(int count, int keep, const std::vector<double>& y) override {
    product(count, keep, y);
    ORRERY_CUDA_CHECK(cudaMemcpyAsync(basis_.get(), scratch_.get(),
                                      static_cast<std::size_t>(keep) * n_ * sizeof(double),
                                      cudaMemcpyDeviceToDevice, d_.stream));
  }
  void copy(int from, int to) override {
    ORRERY_CUDA_CHECK(cudaMemcpyAsync(column(to), column(from), n_ * sizeof(double),
                                      cudaMemcpyDeviceToDevice, d_.stream));
  }
  void combine(int count, int k, const std::vector<double>& y, std::vector<double>& out) override {
    product(count, k, y);
    std::vector<double> by_column(static_cast<std::size_t>(k) * n_);
    scratch_.download(by_column.data(), by_column.size());
    d_.sync();
    out.assign(by_column.size(), 0.0);
    for (int j = 0; j < k; ++j)
      for (std::int64_t i = 0; i < n_; ++i)
        out[static_cast<std::size_t>(i) * k + j] = by_column[static_cast<std::size_t>(j) * n_ + i];
  }

 private:
  int len() const { return static_cast<int>(n_); }
  double* column(int c) { return basis_.get() + static_cast<std::size_t>(c) * n_; }
  // scratch = V_{0..count-1} y (y: count x k by columns, k <= count).
  void product(int count, int k, const std::vector<double>& y) {
    small_.upload(y.data(), static_cast<std::size_t>(count) * k);
    const double one = 1.0, zero = 0.0;
    ORRERY_CUBLAS_CHECK(cublasDgemm(d_.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, len(), k, count, &one,
                                    basis_.get(), len(), small_.get(), count, &zero, scratch_.get(),
                                    len()));
  }

  Device& d_;
  std::int64_t n_;
  DeviceBuffer<std::int64_t> indptr_;
  DeviceBuffer<std::int32_t> indices_;
  DeviceBuffer<double> weights_, locked_, basis_, w_, scratch_, small_;
};

}  // namespace

std::size_t spectral_lanczos_bytes(const ComponentOperator& op) {
  const auto n = static_cast<std::size_t>(op.a.rows());
  const auto columns = static_cast<std::size_t>(spectral_lanczos_options().ncv) + 1;
  const auto scratch = static_cast<std::size_t>(DeviceLanczosOps::scratch_columns());
  return op.a.indptr.size() * 8 + op.a.indices.size() * 12 + n * 8 * (2 + columns + scratch) +
         columns * columns * 8;
}

LanczosResult spectral_lanczos(Device& d, const ComponentOperator& op) {
  if (op.a.rows() > std::numeric_limits<int>::max())
    throw Error("", "spectral", "a component of more than 2^31 vertices");
  DeviceLanczosOps ops(d, op, spectral_lanczos_options().ncv + 1);
  return spectral_lanczos(op, ops);
}

}  // namespace orrery::compute::gpu
