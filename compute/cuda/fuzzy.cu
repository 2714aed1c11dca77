#include "compute/cuda/fuzzy.cuh"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <limits>
#include <string>

#include "compute/fuzzy_math.hpp"
#include "io/error.hpp"

namespace orrery::compute::gpu {
namespace {

using ull = unsigned long long;
constexpr int kThreads = 256;

unsigned grid(std::int64_t n) {
  return blocks_for(n, kThreads);
}

// Row i of P: its neighbours other than itself, sorted by (column, membership, distance) as
// std::sort sorts the host's tuples, a repeated column kept once (its first), in k slots.
__global__ void p_rows(const std::int64_t* idx, const float* dist, const float* w, std::int64_t n,
                       int k, std::int32_t* cols, float* weights, float* dists,
                       std::int64_t* count) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i >= n) return;
  std::int32_t* c = cols + i * k;
  float* pw = weights + i * k;
  float* pd = dists + i * k;
  int m = 0;
  for (int t = 0; t < k; ++t) {
    const std::int64_t j = idx[i * k + t];
    if (j < 0 || j == i) continue;
    const auto cj = static_cast<std::int32_t>(j);
    const float wj = w[i * k + t], dj = dist[i * k + t];
    int at = m++;
    for (; at > 0; --at) {  // insertion sort, ascending tuples
      const bool greater =
          c[at - 1] > cj ||
          (c[at - 1] == cj && (pw[at - 1] > wj || (pw[at - 1] == wj && pd[at - 1] > dj)));
      if (!greater) break;
      c[at] = c[at - 1];
      pw[at] = pw[at - 1];
      pd[at] = pd[at - 1];
    }
    c[at] = cj;
    pw[at] = wj;
    pd[at] = dj;
  }
  int kept = 0;
  for (int t = 0; t < m; ++t) {
    if (t > 0 && c[t] == c[t - 1]) continue;
    c[kept] = c[t];
    pw[kept] = pw[t];
    pd[kept] = pd[t];
    ++kept;
  }
  count[i] = kept;
}

// Each P entry twice: (i, j) as itself (payload 2e) and (j, i) as a transposed one (2e + 1).
__global__ void pair_entries(const std::int32_t* cols, const std::int64_t* count,
                             const std::int64_t* offset, std::int64_t n, int k, ull* keys,
                             std::int64_t* payload, std::int64_t* source) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i >= n) return;
  for (std::int64_t t = 0; t < count[i]; ++t) {
    const std::int64_t e = offset[i] + t;
    const auto j = static_cast<ull>(cols[i * k + t]);
    keys[2 * e] = (static_cast<ull>(i) << 32) | j;
    payload[2 * e] = 2 * e;
    keys[2 * e + 1] = (j << 32) | static_cast<ull>(i);
    payload[2 * e + 1] = 2 * e + 1;
    source[e] = i * k + t;
  }
}

// At the first entry of each key: the union of its (at most two) entries; `keep` 1 where the
// value is not 0.
__global__ void combine_runs(const ull* keys, const std::int64_t* payload, std::int64_t m,
                             const std::int64_t* source, const float* weights, double mix,
                             float* value, std::int64_t* keep, std::int64_t* row_count) {
  const std::int64_t u = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (u >= m) return;
  keep[u] = 0;
  if (u > 0 && keys[u - 1] == keys[u]) return;
  double a = 0.0, b = 0.0;
  for (std::int64_t v = u; v < m && keys[v] == keys[u]; ++v) {
    const std::int64_t p = payload[v];
    const double w = weights[source[p >> 1]];
    if (p & 1)
      b = w;
    else
      a = w;
  }
  const float x = fuzzy_combine(a, b, mix);
  value[u] = x;
  if (x != 0.0f) {
    keep[u] = 1;
    atomicAdd(reinterpret_cast<ull*>(row_count + (keys[u] >> 32)), 1ULL);
  }
}

__global__ void scatter_kept(const ull* keys, const float* value, const std::int64_t* keep,
                             const std::int64_t* at, std::int64_t m, std::int32_t* indices,
                             float* data) {
  const std::int64_t u = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (u >= m || !keep[u]) return;
  indices[at[u]] = static_cast<std::int32_t>(keys[u] & 0xffffffffULL);
  data[at[u]] = value[u];
}

// The distances graph: each row's P entries with a non-zero distance, in P's order.
__global__ void count_distances(const float* dists, const std::int64_t* count, std::int64_t n,
                                int k, std::int64_t* nonzero) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i >= n) return;
  std::int64_t z = 0;
  for (std::int64_t t = 0; t < count[i]; ++t) z += dists[i * k + t] != 0.0f;
  nonzero[i] = z;
}

__global__ void fill_distances(const std::int32_t* cols, const float* dists,
                               const std::int64_t* count, const std::int64_t* indptr,
                               std::int64_t n, int k, std::int32_t* indices, float* data) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i >= n) return;
  std::int64_t at = indptr[i];
  for (std::int64_t t = 0; t < count[i]; ++t)
    if (dists[i * k + t] != 0.0f) {
      indices[at] = cols[i * k + t];
      data[at++] = dists[i * k + t];
    }
}

// Exclusive prefix sums of `in` (n entries) into `out` (n + 1, the total last); returns it.
std::int64_t exclusive_sum(Device& d, const std::int64_t* in, std::int64_t n, std::int64_t* out) {
  DeviceBuffer<std::int64_t> padded(d, n + 1);
  padded.zero();
  if (n > 0)
    ORRERY_CUDA_CHECK(cudaMemcpyAsync(padded.get(), in, n * sizeof(std::int64_t),
                                      cudaMemcpyDeviceToDevice, d.stream));
  std::size_t bytes = 0;
  ORRERY_CUDA_CHECK(
      cub::DeviceScan::ExclusiveSum(nullptr, bytes, padded.get(), out, n + 1, d.stream));
  DeviceBuffer<char> temp(d, bytes);
  ORRERY_CUDA_CHECK(
      cub::DeviceScan::ExclusiveSum(temp.get(), bytes, padded.get(), out, n + 1, d.stream));
  std::int64_t total = 0;
  ORRERY_CUDA_CHECK(
      cudaMemcpyAsync(&total, out + n, sizeof total, cudaMemcpyDeviceToHost, d.stream));
  d.sync();
  return total;
}

CsrMatrix download_csr(Device& d, std::int64_t n, const DeviceBuffer<std::int64_t>& indptr,
                       const DeviceBuffer<std::int32_t>& indices, const DeviceBuffer<float>& data,
                       std::int64_t nnz) {
  CsrMatrix m;
  m.n_rows = m.n_cols = n;
  m.indptr.resize(n + 1);
  m.indices.resize(nnz);
  m.data.resize(nnz);
  indptr.download(m.indptr.data(), n + 1);
  static_assert(sizeof(GeneIndex) == sizeof(std::int32_t));
  if (nnz > 0) {
    ORRERY_CUDA_CHECK(cudaMemcpyAsync(m.indices.data(), indices.get(), nnz * sizeof(std::int32_t),
                                      cudaMemcpyDeviceToHost, d.stream));
    data.download(m.data.data(), nnz);
  }
  d.sync();
  return m;
}

}  // namespace

FuzzyGraph fuzzy_union(Device& d, const std::int64_t* indices, const float* distances,
                       const float* memberships, std::int64_t n, int k, double set_op_mix_ratio) {
  if (n > std::numeric_limits<GeneIndex>::max())
    throw Error("", "neighbors", "graphs above 2^31 cells are not supported yet");
  FuzzyGraph g;
  g.connectivities.n_rows = g.connectivities.n_cols = n;
  g.distances.n_rows = g.distances.n_cols = n;
  g.connectivities.indptr.assign(n + 1, 0);
  g.distances.indptr.assign(n + 1, 0);
  if (n == 0 || k == 0) return g;
  const std::int64_t slots = n * k;
  DeviceBuffer<std::int32_t> cols(d, slots);
  DeviceBuffer<float> weights(d, slots), dists(d, slots);
  DeviceBuffer<std::int64_t> count(d, n), offset(d, n + 1);
  p_rows<<<grid(n), kThreads, 0, d.stream>>>(indices, distances, memberships, n, k, cols.get(),
                                             weights.get(), dists.get(), count.get());
  check_launch();
  const std::int64_t entries = exclusive_sum(d, count.get(), n, offset.get());

  // The union.
  {
    const std::int64_t m = 2 * entries;
    DeviceBuffer<ull> keys(d, m), sorted(d, m);
    DeviceBuffer<std::int64_t> payload(d, m), sorted_payload(d, m), source(d, entries);
    pair_entries<<<grid(n), kThreads, 0, d.stream>>>(cols.get(), count.get(), offset.get(), n, k,
                                                     keys.get(), payload.get(), source.get());
    check_launch();
    int bits = 33;
    while ((std::int64_t{1} << (bits - 32)) < n) ++bits;
    std::size_t bytes = 0;
    ORRERY_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys.get(), sorted.get(),
                                                      payload.get(), sorted_payload.get(), m, 0,
                                                      bits, d.stream));
    {
      DeviceBuffer<char> temp(d, bytes);
      ORRERY_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.get(), bytes, keys.get(), sorted.get(),
                                                        payload.get(), sorted_payload.get(), m, 0,
                                                        bits, d.stream));
    }
    DeviceBuffer<float> value(d, m);
    DeviceBuffer<std::int64_t> keep(d, m), at(d, m + 1), row_count(d, n), indptr(d, n + 1);
    row_count.zero();
    if (m > 0)
      combine_runs<<<grid(m), kThreads, 0, d.stream>>>(
          sorted.get(), sorted_payload.get(), m, source.get(), weights.get(), set_op_mix_ratio,
          value.get(), keep.get(), row_count.get());
    check_launch();
    const std::int64_t nnz = exclusive_sum(d, keep.get(), m, at.get());
    exclusive_sum(d, row_count.get(), n, indptr.get());
    DeviceBuffer<std::int32_t> out_indices(d, nnz);
    DeviceBuffer<float> out_data(d, nnz);
    if (m > 0)
      scatter_kept<<<grid(m), kThreads, 0, d.stream>>>(
          sorted.get(), value.get(), keep.get(), at.get(), m, out_indices.get(), out_data.get());
    check_launch();
    g.connectivities = download_csr(d, n, indptr, out_indices, out_data, nnz);
  }
  // The distances.
  {
    DeviceBuffer<std::int64_t> nonzero(d, n), indptr(d, n + 1);
    count_distances<<<grid(n), kThreads, 0, d.stream>>>(dists.get(), count.get(), n, k,
                                                        nonzero.get());
    check_launch();
    const std::int64_t nnz = exclusive_sum(d, nonzero.get(), n, indptr.get());
    DeviceBuffer<std::int32_t> out_indices(d, nnz);
    DeviceBuffer<float> out_data(d, nnz);
    fill_distances<<<grid(n), kThreads, 0, d.stream>>>(cols.get(), dists.get(), count.get(),
                                                       indptr.get(), n, k, out_indices.get(),
                                                       out_data.get());
    check_launch();
    g.distances = download_csr(d, n, indptr, out_indices, out_data, nnz);
  }
  return g;
}

}  // namespace orrery::compute::gpu
