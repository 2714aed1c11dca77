#include "compute/cuda/leiden.cuh"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_reduce.cuh>
#include <cub/device/device_scan.cuh>
#include <cub/device/device_segmented_sort.cuh>
#include <cuda/std/functional>
#include <numeric>
#include <string>
#include <utility>

#include "compute/leiden_math.hpp"
#include "io/error.hpp"

// DeviceSegmentedSort takes 64-bit item and segment counts from CCCL 3 (CUDA 13); older ones
// take int and would silently narrow counts past 2^31.
static_assert(CUB_VERSION >= 300000, "CUB from CCCL 3 (CUDA 13) or later is required");

namespace orrery::compute::gpu {
namespace {

using ull = unsigned long long;
constexpr int kThreads = 256;

// One level's graph on the device (leiden_parallel.cpp's Level).
struct DeviceLevel {
  std::int64_t n = 0, nnz = 0;
  DeviceBuffer<std::int64_t> indptr, degree, weights;
  DeviceBuffer<std::int32_t> indices, row;  // row: each entry's row

  DeviceLevel(Device& d, std::int64_t n_, std::int64_t nnz_)
      : n(n_),
        nnz(nnz_),
        indptr(d, n_ + 1),
        degree(d, n_),
        weights(d, nnz_),
        indices(d, nnz_),
        row(d, nnz_) {}
};

__global__ void fill_rows(const std::int64_t* indptr, std::int64_t n, std::int32_t* row) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i >= n) return;
  for (auto e = indptr[i]; e < indptr[i + 1]; ++e) row[e] = static_cast<std::int32_t>(i);
}

__global__ void fill_iota(std::int32_t* out, std::int64_t n) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i < n) out[i] = static_cast<std::int32_t>(i);
}

__global__ void totals(const std::int32_t* label, const std::int64_t* degree, std::int64_t n,
                       std::int64_t* K, std::int32_t* size) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i >= n) return;
  atomicAdd(reinterpret_cast<ull*>(K + label[i]), static_cast<ull>(degree[i]));
  atomicAdd(size + label[i], 1);
}

// Sort keys of local moving: the neighbour's community, the vertex itself skipped.
__global__ void move_keys(const std::int32_t* row, const std::int32_t* indices, std::int64_t nnz,
                          const std::int32_t* label, std::int32_t* keys) {
  const std::int64_t e = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (e >= nnz) return;
  const std::int32_t j = indices[e];
  keys[e] = j == row[e] ? kLeidenSkip : label[j];
}

// Of refinement: the neighbour's sub-community, if in the same community.
__global__ void refine_keys(const std::int32_t* row, const std::int32_t* indices, std::int64_t nnz,
                            const std::int32_t* P, const std::int32_t* R, std::int32_t* keys) {
  const std::int64_t e = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (e >= nnz) return;
  const std::int32_t i = row[e], j = indices[e];
  keys[e] = j == i || P[j] != P[i] ? kLeidenSkip : R[j];
}

__global__ void move_vertices(const std::int64_t* indptr, const std::int32_t* keys,
                              const std::int64_t* w, const std::int64_t* degree, std::int64_t n,
                              const std::int32_t* label, const std::int64_t* K,
                              const std::int32_t* size, double g, LeidenCoin coin,
                              std::int32_t* next, ull* moved) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i >= n || !coin(i)) return;
  const auto begin = indptr[i];
  const std::int32_t t =
      leiden_move_target(keys + begin, w + begin, indptr[i + 1] - begin,
                         static_cast<std::int32_t>(i), label[i], degree[i], K, size, g);
  if (t != label[i]) {
    next[i] = t;
    atomicAdd(moved, 1ULL);
  }
}

// Each sub-community's weight to the rest of its community.
__global__ void external_weight(const std::int64_t* indptr, const std::int32_t* indices,
                                const std::int64_t* w, std::int64_t n, const std::int32_t* P,
                                const std::int32_t* R, std::int64_t* ext) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i >= n) return;
  std::int64_t sum = 0;
  for (auto e = indptr[i]; e < indptr[i + 1]; ++e) {
    const std::int32_t j = indices[e];
    if (P[j] == P[i] && R[j] != R[i]) sum += w[e];
  }
  if (sum) atomicAdd(reinterpret_cast<ull*>(ext + R[i]), static_cast<ull>(sum));
}

__global__ void refine_vertices(const std::int64_t* indptr, const std::int32_t* keys,
                                const std::int64_t* w, const std::int64_t* degree, std::int64_t n,
                                const std::int32_t* P, const std::int32_t* R,
                                const std::int64_t* KP, const std::int64_t* KR,
                                const std::int32_t* sizeR, const std::int64_t* ext, double g,
                                LeidenCoin coin, std::int32_t* next, ull* moved) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i >= n || sizeR[R[i]] != 1 || !coin(i)) return;
  const auto begin = indptr[i];
  const std::int32_t t = leiden_refine_target(keys + begin, w + begin, indptr[i + 1] - begin,
                                              static_cast<std::int32_t>(i), degree[i], KP[P[i]], KR,
                                              sizeR, ext, g, coin);
  if (t != R[i]) {
    next[i] = t;
    atomicAdd(moved, 1ULL);
  }
}

__global__ void flag_labels(const std::int32_t* label, std::int64_t n, std::int32_t* flag) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i < n) flag[label[i]] = 1;
}

__global__ void gather_ids(const std::int32_t* label, std::int64_t n, const std::int32_t* id,
                           std::int32_t* out) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i < n) out[i] = id[label[i]];
}

// out[i] = a[b[i]]
__global__ void compose(const std::int32_t* a, const std::int32_t* b, std::int64_t n,
                        std::int32_t* out) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i < n) out[i] = a[b[i]];
}

// The coarse level's starting communities: each group's community (equal for all its members).
__global__ void scatter_ids(const std::int32_t* ids, const std::int32_t* pid, std::int64_t n,
                            std::int32_t* coarse) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i < n) coarse[ids[i]] = pid[i];
}

__global__ void pair_keys(const std::int32_t* row, const std::int32_t* indices, std::int64_t nnz,
                          const std::int32_t* ids, ull* keys) {
  const std::int64_t e = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (e < nnz) keys[e] = (static_cast<ull>(ids[row[e]]) << 32) | static_cast<ull>(ids[indices[e]]);
}

__global__ void split_pairs(const ull* keys, std::int64_t m, std::int32_t* indices,
                            std::int64_t* row_count) {
  const std::int64_t u = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (u >= m) return;
  indices[u] = static_cast<std::int32_t>(keys[u] & 0xffffffffULL);
  atomicAdd(reinterpret_cast<ull*>(row_count + (keys[u] >> 32)), 1ULL);
}

__global__ void add_degrees(const std::int32_t* ids, const std::int64_t* degree, std::int64_t n,
                            std::int64_t* coarse) {
  const std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (i < n) atomicAdd(reinterpret_cast<ull*>(coarse + ids[i]), static_cast<ull>(degree[i]));
}

unsigned grid(std::int64_t n) {
  return blocks_for(n, kThreads);
}

class Solver {
 public:
  Solver(Device& d, std::int64_t n, std::int64_t max_nnz)
      : d_(d),
        keys_(d, max_nnz),
        sorted_keys_(d, max_nnz),
        sorted_w_(d, max_nnz),
        K_(d, n + 1),
        KP_(d, n + 1),
        ext_(d, n + 1),
        size_(d, n + 1),
        sizeP_(d, n + 1),
        next_(d, n),
        flag_(d, n + 1),
        id_(d, n + 1),
        moved_(d, 1) {}

  // Dense ids of `label`'s values into `ids`; returns their count.
  std::int32_t compact(const std::int32_t* label, std::int64_t n, std::int32_t* ids) {
    flag_.zero();
    if (n > 0) flag_labels<<<grid(n), kThreads, 0, d_.stream>>>(label, n, flag_.get());
    check_launch();
    std::size_t bytes = 0;
    ORRERY_CUDA_CHECK(
        cub::DeviceScan::ExclusiveSum(nullptr, bytes, flag_.get(), id_.get(), n + 1, d_.stream));
    DeviceBuffer<char> temp(d_, bytes);
    ORRERY_CUDA_CHECK(
        cub::DeviceScan::ExclusiveSum(temp.get(), bytes, flag_.get(), id_.get(), n + 1, d_.stream));
    if (n > 0) gather_ids<<<grid(n), kThreads, 0, d_.stream>>>(label, n, id_.get(), ids);
    check_launch();
    std::int32_t count = 0;
    ORRERY_CUDA_CHECK(
        cudaMemcpyAsync(&count, id_.get() + n, sizeof count, cudaMemcpyDeviceToHost, d_.stream));
    d_.sync();
    return count;
  }

  void local_moving(const DeviceLevel& G, std::int32_t* label, const LeidenCoin& base, double g,
                    Progress* progress) {
    LeidenPairs pairs{leiden_move_tolerance(G.n)};
    for (int sweep = 0; sweep < kLeidenMoveSweeps; ++sweep) {
      if (progress) progress->check();
      community_totals(label, G, K_.get(), size_.get());
      move_keys<<<grid(G.nnz), kThreads, 0, d_.stream>>>(G.row.get(), G.indices.get(), G.nnz, label,
                                                         keys_.get());
      check_launch();
      const LeidenCoin coin = begin_sweep(G, label, base, 0, sweep);
      move_vertices<<<grid(G.n), kThreads, 0, d_.stream>>>(
          G.indptr.get(), sorted_keys_.get(), sorted_w_.get(), G.degree.get(), G.n, label, K_.get(),
          size_.get(), g, coin, next_.get(), moved_.get());
      check_launch();
      if (pairs.done(sweep, end_sweep(G, label))) break;
    }
  }

  void refine(const DeviceLevel& G, const std::int32_t* P, std::int32_t* R, const LeidenCoin& base,
              double g, Progress* progress) {
    fill_iota<<<grid(G.n), kThreads, 0, d_.stream>>>(R, G.n);
    check_launch();
    community_totals(P, G, KP_.get(), sizeP_.get());
    LeidenPairs pairs{0};
    for (int sweep = 0; sweep < kLeidenRefineSweeps; ++sweep) {
      if (progress) progress->check();
      community_totals(R, G, K_.get(), size_.get());
      ext_.zero();
      external_weight<<<grid(G.n), kThreads, 0, d_.stream>>>(
          G.indptr.get(), G.indices.get(), G.weights.get(), G.n, P, R, ext_.get());
      check_launch();
      refine_keys<<<grid(G.nnz), kThreads, 0, d_.stream>>>(G.row.get(), G.indices.get(), G.nnz, P,
                                                           R, keys_.get());
      check_launch();
      const LeidenCoin coin = begin_sweep(G, R, base, 1, sweep);
      refine_vertices<<<grid(G.n), kThreads, 0, d_.stream>>>(
          G.indptr.get(), sorted_keys_.get(), sorted_w_.get(), G.degree.get(), G.n, P, R, KP_.get(),
          K_.get(), size_.get(), ext_.get(), g, coin, next_.get(), moved_.get());
      check_launch();
      if (pairs.done(sweep, end_sweep(G, R))) break;
    }
  }

  // The graph of the groups `ids` (n_coarse of them).
  DeviceLevel aggregate(const DeviceLevel& G, const std::int32_t* ids, std::int32_t n_coarse) {
    DeviceBuffer<ull> keys(d_, G.nnz), sorted(d_, G.nnz);
    DeviceBuffer<std::int64_t> sorted_w(d_, G.nnz), sums(d_, G.nnz);
    if (G.nnz > 0)
      pair_keys<<<grid(G.nnz), kThreads, 0, d_.stream>>>(G.row.get(), G.indices.get(), G.nnz, ids,
                                                         keys.get());
    check_launch();
    int bits = 33;
    while ((std::int64_t{1} << (bits - 32)) < n_coarse) ++bits;
    std::size_t bytes = 0;
    ORRERY_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys.get(), sorted.get(),
                                                      G.weights.get(), sorted_w.get(), G.nnz, 0,
                                                      bits, d_.stream));
    {
      DeviceBuffer<char> temp(d_, bytes);
      ORRERY_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.get(), bytes, keys.get(), sorted.get(),
                                                        G.weights.get(), sorted_w.get(), G.nnz, 0,
                                                        bits, d_.stream));
    }
    DeviceBuffer<std::int64_t> runs(d_, 1);
    bytes = 0;
    ORRERY_CUDA_CHECK(cub::DeviceReduce::ReduceByKey(
        nullptr, bytes, sorted.get(), keys.get(), sorted_w.get(), sums.get(), runs.get(),
        ::cuda::std::plus<std::int64_t>{}, G.nnz, d_.stream));
    {
      DeviceBuffer<char> temp(d_, bytes);
      ORRERY_CUDA_CHECK(cub::DeviceReduce::ReduceByKey(
          temp.get(), bytes, sorted.get(), keys.get(), sorted_w.get(), sums.get(), runs.get(),
          ::cuda::std::plus<std::int64_t>{}, G.nnz, d_.stream));
    }
    std::int64_t m = 0;
    runs.download(&m, 1);
    d_.sync();

    DeviceLevel c(d_, n_coarse, m);
    DeviceBuffer<std::int64_t> count(d_, n_coarse + 1);
    count.zero();
    if (m > 0)
      split_pairs<<<grid(m), kThreads, 0, d_.stream>>>(keys.get(), m, c.indices.get(), count.get());
    check_launch();
    bytes = 0;
    ORRERY_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, bytes, count.get(), c.indptr.get(),
                                                    n_coarse + 1, d_.stream));
    {
      DeviceBuffer<char> temp(d_, bytes);
      ORRERY_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp.get(), bytes, count.get(),
                                                      c.indptr.get(), n_coarse + 1, d_.stream));
    }
    copy(c.weights.get(), sums.get(), m);
    c.degree.zero();
    if (G.n > 0)
      add_degrees<<<grid(G.n), kThreads, 0, d_.stream>>>(ids, G.degree.get(), G.n, c.degree.get());
    check_launch();
    if (n_coarse > 0)
      fill_rows<<<grid(n_coarse), kThreads, 0, d_.stream>>>(c.indptr.get(), n_coarse, c.row.get());
    check_launch();
    return c;
  }

 private:
  template <class T>
  void copy(T* to, const T* from, std::int64_t n) {
    if (n > 0)
      ORRERY_CUDA_CHECK(
          cudaMemcpyAsync(to, from, n * sizeof(T), cudaMemcpyDeviceToDevice, d_.stream));
  }
  void community_totals(const std::int32_t* label, const DeviceLevel& G, std::int64_t* K,
                        std::int32_t* size) {
    ORRERY_CUDA_CHECK(cudaMemsetAsync(K, 0, (G.n + 1) * sizeof(std::int64_t), d_.stream));
    ORRERY_CUDA_CHECK(cudaMemsetAsync(size, 0, (G.n + 1) * sizeof(std::int32_t), d_.stream));
    if (G.n > 0) totals<<<grid(G.n), kThreads, 0, d_.stream>>>(label, G.degree.get(), G.n, K, size);
    check_launch();
  }
  // A sweep over `label`: each vertex's neighbours as runs (keys_ sorted by row), the labels
  // copied to next_ for the decisions to write, the move count zeroed; the sweep's coin.
  LeidenCoin begin_sweep(const DeviceLevel& G, const std::int32_t* label, LeidenCoin coin,
                         int phase, int sweep) {
    sort_rows(G);
    copy(next_.get(), label, G.n);
    moved_.zero();
    coin.phase = phase;
    coin.sweep = sweep;
    return coin;
  }
  // ... and its end: the new labels into `label`; how many moved.
  std::int64_t end_sweep(const DeviceLevel& G, std::int32_t* label) {
    copy(label, next_.get(), G.n);
    return static_cast<std::int64_t>(moved());
  }
  // Each row's (key, weight) pairs by key.
  void sort_rows(const DeviceLevel& G) {
    std::size_t bytes = 0;
    ORRERY_CUDA_CHECK(cub::DeviceSegmentedSort::SortPairs(
        nullptr, bytes, keys_.get(), sorted_keys_.get(), G.weights.get(), sorted_w_.get(), G.nnz,
        G.n, G.indptr.get(), G.indptr.get() + 1, d_.stream));
    DeviceBuffer<char> temp(d_, bytes);
    ORRERY_CUDA_CHECK(cub::DeviceSegmentedSort::SortPairs(
        temp.get(), bytes, keys_.get(), sorted_keys_.get(), G.weights.get(), sorted_w_.get(), G.nnz,
        G.n, G.indptr.get(), G.indptr.get() + 1, d_.stream));
  }
  ull moved() {
    ull m = 0;
    moved_.download(&m, 1);
    d_.sync();
    return m;
  }

  Device& d_;
  DeviceBuffer<std::int32_t> keys_, sorted_keys_;
  DeviceBuffer<std::int64_t> sorted_w_, K_, KP_, ext_;
  DeviceBuffer<std::int32_t> size_, sizeP_, next_, flag_, id_;
  DeviceBuffer<ull> moved_;
};

}  // namespace

std::vector<std::int32_t> leiden(Device& d, const CsrMatrix& graph, const LeidenOptions& o,
                                 Progress* progress) {
  if (!(o.resolution > 0)) throw Error("", "leiden.resolution", "must be positive");
  FixedPointGraph host = fixed_point_graph(graph);
  if (host.total <= 0) throw Error("", "leiden", "graph has no edges");
  const std::int64_t n = host.n, nnz = static_cast<std::int64_t>(host.indices.size());
  const double g = o.resolution / static_cast<double>(host.total);

  DeviceLevel level0(d, n, nnz);
  level0.indptr.upload(host.indptr.data(), n + 1);
  level0.indices.upload(host.indices.data(), nnz);
  level0.weights.upload(host.weights.data(), nnz);
  level0.degree.upload(host.degree.data(), n);
  if (n > 0)
    fill_rows<<<grid(n), kThreads, 0, d.stream>>>(level0.indptr.get(), n, level0.row.get());
  check_launch();
  d.sync();
  host = FixedPointGraph{};

  Solver solver(d, n, nnz);
  std::vector<std::int32_t> membership(n), before;
  std::iota(membership.begin(), membership.end(), 0);
  DeviceBuffer<std::int32_t> member(d, n), map(d, n), M(d, n), P(d, n), pid(d, n), R(d, n),
      ids(d, n), tmp(d, n);
  member.upload(membership.data(), n);
  for (int it = 0; o.n_iterations < 0 || it < o.n_iterations; ++it) {
    if (progress && it > 0) progress->report("leiden: iteration " + std::to_string(it + 1), 0.0);
    if (o.n_iterations < 0 && it > 0) before = first_appearance_labels(membership);
    fill_iota<<<grid(n), kThreads, 0, d.stream>>>(map.get(), n);
    check_launch();
    solver.compact(member.get(), n, M.get());
    DeviceLevel coarse(d, 0, 0);
    const DeviceLevel* G = &level0;
    for (int level = 0;; ++level) {
      const LeidenCoin base{o.seed, it, level, 0, 0};
      std::int64_t nG = G->n;
      solver.local_moving(*G, M.get(), base, g, progress);  // M becomes P
      std::swap(M, P);
      const std::int32_t n_p = solver.compact(P.get(), nG, pid.get());
      if (n_p == nG) {
        compose<<<grid(n), kThreads, 0, d.stream>>>(pid.get(), map.get(), n, member.get());
        check_launch();
        break;
      }
      solver.refine(*G, P.get(), R.get(), base, g, progress);
      std::int32_t n_r = solver.compact(R.get(), nG, ids.get());
      if (n_r == nG) n_r = solver.compact(P.get(), nG, ids.get());  // nothing merged: by P
      scatter_ids<<<grid(nG), kThreads, 0, d.stream>>>(ids.get(), pid.get(), nG, M.get());
      check_launch();
      compose<<<grid(n), kThreads, 0, d.stream>>>(ids.get(), map.get(), n, tmp.get());
      check_launch();
      std::swap(map, tmp);
      DeviceLevel next = solver.aggregate(*G, ids.get(), n_r);
      coarse = std::move(next);
      G = &coarse;
    }
    member.download(membership.data(), n);
    d.sync();
    if (o.n_iterations < 0 && it > 0 && first_appearance_labels(membership) == before) break;
    if (o.n_iterations < 0 && it + 1 >= kMaxLeidenIterations) {
      if (progress) progress->warn(leiden_unstable_warning());
      break;
    }
  }
  return labels_by_size(membership);
}

}  // namespace orrery::compute::gpu
