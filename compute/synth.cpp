#include "synth.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "io/error.hpp"
#include "io/h5ad_writer.hpp"
#include "rng.hpp"

namespace orrery::compute {
namespace {

constexpr int kMitoGenes = 13;

double normal(Rng& rng) {
  // Box-Muller; u1 in (0, 1].
  const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Marsaglia-Tsang; shape < 1 via the boost Gamma(shape + 1) * U^(1 / shape).
double gamma(Rng& rng, double shape) {
  if (shape < 1.0) return gamma(rng, shape + 1.0) * std::pow(1.0 - rng.uniform(), 1.0 / shape);
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    double x, v;
    do {
      x = normal(rng);
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = 1.0 - rng.uniform();
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

// Knuth for small means, Hörmann's PTRS transformed rejection otherwise.
std::int64_t poisson(Rng& rng, double lam) {
  if (lam <= 0) return 0;
  if (lam < 10) {
    const double limit = std::exp(-lam);
    double prod = rng.uniform();
    std::int64_t k = 0;
    while (prod > limit) {
      ++k;
      prod *= rng.uniform();
    }
    return k;
  }
  const double slam = std::sqrt(lam), loglam = std::log(lam);
  const double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
  const double invalpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
  while (true) {
    const double u = rng.uniform() - 0.5, v = rng.uniform(), us = 0.5 - std::fabs(u);
    const auto k = static_cast<std::int64_t>(std::floor((2 * a / us + b) * u + lam + 0.43));
    if (us >= 0.07 && v <= vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (std::log(v) + std::log(invalpha) - std::log(a / (us * us) + b) <=
        -lam + static_cast<double>(k) * loglam - std::lgamma(static_cast<double>(k) + 1))
      return k;
  }
}

std::uint64_t cell_seed(std::uint64_t seed, std::int64_t cell) {
  return seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(cell) * 0xd1b54a32d192ed03ULL +
         1;
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
  for (auto& b : base) b = std::exp(1.6 * normal(rng));
  double nuclear = 0;
  for (int g = kMitoGenes; g < o.n_genes; ++g) nuclear += base[g];
  double mito = 0;
  for (int g = 0; g < kMitoGenes; ++g) mito += base[g];
  // Mitochondrial reads ~2% of the library.
  for (int g = 0; g < kMitoGenes; ++g) base[g] *= 0.02 / 0.98 * nuclear / mito;
  profile_.assign(o.n_clusters, base);
  const int n_markers = std::max(1, static_cast<int>(o.marker_fraction * o.n_genes));
  for (int c = 0; c < o.n_clusters; ++c) {
    auto& p = profile_[c];
    for (int m = 0; m < n_markers; ++m) {
      const auto g = kMitoGenes + static_cast<int>(rng.next() % (o.n_genes - kMitoGenes));
      p[g] *= std::exp(1.5 + 0.5 * normal(rng));
    }
    double total = 0;
    for (double v : p) total += v;
    for (double& v : p) v /= total;
  }
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
  const double shape = 1.0 / o_.dispersion;
  for (std::int64_t cell = r0; cell < r1; ++cell) {
    Rng rng(cell_seed(o_.seed, cell));
    const double u = rng.uniform();
    const int cluster =
        std::min(o_.n_clusters - 1, static_cast<int>(std::pow(u, 1.6) * o_.n_clusters));
    const double library = o_.mean_umis * std::exp(0.4 * normal(rng) - 0.08);
    const auto& p = profile_[cluster];
    for (std::int32_t g = 0; g < o_.n_genes; ++g) {
      const double mu = library * p[g];
      const std::int64_t count = poisson(rng, mu * gamma(rng, shape) / shape);
      if (count > 0) {
        m.indices.push_back(g);
        m.data.push_back(static_cast<float>(count));
      }
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
  io::H5adWriter w(path);
  const std::int64_t step = 4096;
  std::int64_t r0 = 0;
  w.write_X(o.n_cells, o.n_genes, [&](CsrMatrix& chunk) {
    if (r0 >= o.n_cells) return false;
    progress.check();
    const std::int64_t r1 = std::min(o.n_cells, r0 + step);
    chunk = gen.rows(r0, r1);
    progress.report("synth", static_cast<double>(r1) / o.n_cells);
    r0 = r1;
    return true;
  });
  w.write_obs(gen.obs());
  w.write_var(gen.var());
  w.commit();
}

}  // namespace orrery::compute
