#include "synth.hpp"

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <future>
#include <numeric>

#include "io/anndata_writer.hpp"
#include "io/error.hpp"
#include "rng.hpp"

namespace orrery::compute {
namespace {

constexpr int kMitoGenes = 13;

std::uint64_t cell_seed(std::uint64_t seed, std::int64_t cell) {
  return seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(cell) * 0xd1b54a32d192ed03ULL +
         1;
}

// A row's entries by gene into `out` (genes are distinct): two 11-bit radix passes for genes
// below 2^22 (a std::sort of ~2000 pairs was 15 % of synth), std::sort above.
void sort_by_gene(const std::vector<std::pair<std::int32_t, float>>& row,
                  std::vector<std::pair<std::int32_t, float>>& out) {
  out = row;
  if (row.size() < 2) return;
  const bool small = std::all_of(row.begin(), row.end(),
                                 [](const auto& e) { return e.first >= 0 && e.first < (1 << 22); });
  if (!small) {
    std::sort(out.begin(), out.end());
    return;
  }
  thread_local std::vector<std::pair<std::int32_t, float>> from;
  from = row;
  std::array<std::uint32_t, 2049> count{};
  for (const int shift : {0, 11}) {
    count.fill(0);
    for (const auto& e : from) ++count[((static_cast<std::uint32_t>(e.first) >> shift) & 2047) + 1];
    for (std::size_t b = 1; b < count.size(); ++b) count[b] += count[b - 1];
    for (const auto& e : from)
      out[count[(static_cast<std::uint32_t>(e.first) >> shift) & 2047]++] = e;
    if (shift == 0) from.swap(out);
  }
}

}  // namespace

SynthGenerator::SynthGenerator(const SynthOptions& o) : o_(o) {
  if (o.n_cells < 1 || o.n_cells > (std::int64_t{1} << 40))
    throw Error("", "synth.cells", "must be >= 1");
  if (o.n_genes <= kMitoGenes) throw Error("", "synth.genes", "must be > 13");
  if (o.n_clusters < 1 || o.n_clusters > 1000) throw Error("", "synth.clusters", "must be 1..1000");
  if (!(o.mean_umis > 0) || !(o.dispersion > 0))
    throw Error("", "synth", "mean_umis and dispersion must be positive");
  Rng rng(o.seed ^ 0xc0ffeeULL);
  std::vector<double> base(o.n_genes);
  for (auto& b : base) b = std::exp(1.6 * rng.normal());
  double nuclear = 0;
  for (int g = kMitoGenes; g < o.n_genes; ++g) nuclear += base[g];
  double mito = 0;
  for (int g = 0; g < kMitoGenes; ++g) mito += base[g];
  // Mitochondrial reads ~2% of the library.
  for (int g = 0; g < kMitoGenes; ++g) base[g] *= 0.02 / 0.98 * nuclear / mito;
  std::vector<std::vector<double>> profile(o.n_clusters, base);  // per cluster, summing to 1
  const int n_markers = std::max(1, static_cast<int>(o.marker_fraction * o.n_genes));
  for (int c = 0; c < o.n_clusters; ++c) {
    auto& p = profile[c];
    for (int m = 0; m < n_markers; ++m) {
      const auto g = kMitoGenes + static_cast<int>(rng.next() % (o.n_genes - kMitoGenes));
      p[g] *= std::exp(1.5 + 0.5 * rng.normal());
    }
    double total = 0;
    for (double v : p) total += v;
    for (double& v : p) v /= total;
  }
  by_weight_.resize(o.n_clusters);
  for (int c = 0; c < o.n_clusters; ++c) {
    auto& order = by_weight_[c];
    order.resize(o.n_genes);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::int32_t a, std::int32_t b) { return profile[c][a] > profile[c][b]; });
  }
  // The same probabilities in that order: a cell walks them front to back (no gather).
  sorted_weight_.resize(o.n_clusters);
  for (int c = 0; c < o.n_clusters; ++c)
    for (const std::int32_t g : by_weight_[c]) sorted_weight_[c].push_back(profile[c][g]);
}

std::int32_t SynthGenerator::cluster_of(std::int64_t cell) const {
  Rng rng(cell_seed(o_.seed, cell));
  // Unequal cluster sizes: the first clusters are the largest.
  const double u = rng.uniform();
  return std::min(o_.n_clusters - 1, static_cast<int>(std::pow(u, 1.6) * o_.n_clusters));
}

CsrMatrix SynthGenerator::rows(std::int64_t r0, std::int64_t r1) const {
  CsrMatrix m;
  m.n_rows = r1 - r0;
  m.n_cols = o_.n_genes;
  m.indptr.assign(1, 0);
  const double r = 1.0 / o_.dispersion;  // NB size
  std::vector<std::pair<std::int32_t, float>> row, sorted;
  for (std::int64_t cell = r0; cell < r1; ++cell) {
    Rng rng(cell_seed(o_.seed, cell));
    const double u = rng.uniform();
    const int cluster =
        std::min(o_.n_clusters - 1, static_cast<int>(std::pow(u, 1.6) * o_.n_clusters));
    const double library = o_.mean_umis * std::exp(0.4 * rng.normal() - 0.08);
    const auto& p = sorted_weight_[cluster];  // p[i]: the probability of gene order[i]
    const auto& order = by_weight_[cluster];
    // P(count > 0) for NB(mu, r) is 1 - (1 + mu / r)^-r, decreasing along `order`. Each gene is
    // expressed independently with that probability: candidates are drawn with the current
    // (largest remaining) probability as a geometric skip and thinned to the gene's own.
    auto expressed = [&](std::size_t i) {
      return -std::expm1(-r * std::log1p(library * p[i] / r));
    };
    row.clear();
    std::size_t i = 0;
    const std::size_t n = order.size();
    while (i < n) {
      const double bound = expressed(i);
      if (bound <= 0) break;
      std::size_t j = i;
      if (bound < 1.0) {
        const double skip = std::floor(std::log(1.0 - rng.uniform()) / std::log1p(-bound));
        if (skip >= static_cast<double>(n - i)) break;
        j = i + static_cast<std::size_t>(skip);
      }
      const double q = j == i ? bound : expressed(j);  // the same gene: the same value
      if (j == i || rng.uniform() * bound < q) {
        // Zero-truncated NB by inversion: P(k) = P(k-1) (k - 1 + r) / k * mu / (mu + r).
        const double mu = library * p[j];
        const double ratio = mu / (mu + r);
        double pk = std::exp(r * std::log(r / (mu + r)));  // P(0)
        const double target = rng.uniform() * q;
        double mass = 0;
        std::int64_t k = 0;
        do {
          ++k;
          pk *= (static_cast<double>(k) - 1 + r) / static_cast<double>(k) * ratio;
          mass += pk;
        } while (mass < target && k < 1000000);
        row.emplace_back(order[j], static_cast<float>(k));
      }
      i = j + 1;
    }
    sort_by_gene(row, sorted);
    for (auto [g, v] : sorted) {
      m.indices.push_back(g);
      m.data.push_back(v);
    }
    m.indptr.push_back(m.nnz());
  }
  return m;
}

DataFrame SynthGenerator::obs() const {
  DataFrame df;
  Categorical truth;
  for (int c = 0; c < o_.n_clusters; ++c) truth.categories.push_back("type" + std::to_string(c));
  char buf[32];
  for (std::int64_t i = 0; i < o_.n_cells; ++i) {
    std::snprintf(buf, sizeof buf, "cell%08lld", static_cast<long long>(i));
    df.index.emplace_back(buf);
    truth.codes.push_back(cluster_of(i));
  }
  df.columns.push_back({"true_cluster", std::move(truth)});
  return df;
}

DataFrame SynthGenerator::var() const {
  DataFrame df;
  char buf[32];
  for (std::int32_t g = 0; g < o_.n_genes; ++g) {
    if (g < kMitoGenes)
      std::snprintf(buf, sizeof buf, "MT-%d", g + 1);
    else
      std::snprintf(buf, sizeof buf, "Gene%05d", g - kMitoGenes + 1);
    df.index.emplace_back(buf);
  }
  return df;
}

void write_synth_h5ad(const SynthOptions& o, const std::string& path, Progress& progress) {
  SynthGenerator gen(o);
  io::AnnDataWriter w(path, o.zarr_format);
  // Chunks are generated a batch at a time on all cores, the next batch while the writer
  // compresses and stores the last (two batches in memory: up to 32 chunks of 4096 cells).
  const std::int64_t step = 4096;
  const auto batch = static_cast<std::int64_t>(
      std::clamp(2 * static_cast<std::size_t>(tbb::this_task_arena::max_concurrency()),
                 std::size_t{8}, std::size_t{16}));
  const auto generate = [&gen, &o, step, batch](std::int64_t from) {
    const std::int64_t n = std::min<std::int64_t>(batch, (o.n_cells - from + step - 1) / step);
    std::vector<CsrMatrix> out(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
    tbb::parallel_for(std::int64_t{0}, n, [&](std::int64_t b) {
      const std::int64_t a = from + b * step;
      out[static_cast<std::size_t>(b)] = gen.rows(a, std::min(o.n_cells, a + step));
    });
    return out;
  };
  std::future<std::vector<CsrMatrix>> next = std::async(std::launch::async, generate, 0);
  std::vector<CsrMatrix> ready;
  std::size_t next_ready = 0;
  std::int64_t r0 = 0;  // the first cell of the batch `next` generates
  w.write_X(o.n_cells, o.n_genes, [&](CsrMatrix& chunk) {
    if (next_ready == ready.size()) {
      if (r0 >= o.n_cells) return false;
      progress.check();
      ready = next.get();
      next_ready = 0;
      r0 = std::min(o.n_cells, r0 + batch * step);
      if (r0 < o.n_cells) next = std::async(std::launch::async, generate, r0);
      progress.report("synth", static_cast<double>(r0) / o.n_cells);
    }
    chunk = std::move(ready[next_ready++]);
    return true;
  });
  w.write_obs(gen.obs());
  w.write_var(gen.var());
  w.commit();
}

}  // namespace orrery::compute
