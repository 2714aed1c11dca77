#include "hvg.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "io/error.hpp"
#include "loess.hpp"

namespace orrery::compute {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double median(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// numpy.percentile with linear interpolation on sorted values.
double percentile(const std::vector<double>& sorted, double q) {
  const double pos = q / 100.0 * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

// pandas.cut with right-closed intervals (edges[i], edges[i+1]].
std::vector<int> cut(const std::vector<double>& x, const std::vector<double>& edges) {
  std::vector<int> bin(x.size(), -1);
  for (std::size_t i = 0; i < x.size(); ++i) {
    auto it = std::lower_bound(edges.begin() + 1, edges.end(), x[i]);
    if (it != edges.end()) bin[i] = static_cast<int>(it - edges.begin()) - 1;
  }
  return bin;
}

}  // namespace

int HvgResult::n_selected() const {
  return static_cast<int>(std::count(highly_variable.begin(), highly_variable.end(), 1));
}

HvgResult highly_variable_genes(const std::vector<double>& mean_in, const std::vector<double>& var,
                                const HvgOptions& o) {
  const std::size_t n = mean_in.size();
  if (n == 0) throw Error("", "highly_variable_genes", "no genes left after filtering");
  if (o.flavor != "seurat" && o.flavor != "cell_ranger")
    throw Error("", "hvg.flavor", "unknown flavor '" + o.flavor + "' (cell_ranger, seurat)");
  HvgResult r;
  r.means.resize(n);
  r.dispersions.resize(n);
  for (std::size_t g = 0; g < n; ++g) {
    double m = mean_in[g] == 0.0 ? 1e-12 : mean_in[g];
    double d = var[g] / m;
    if (o.flavor == "seurat") {
      d = d == 0.0 ? kNaN : std::log(d);
      m = std::log1p(m);
    }
    r.means[g] = m;
    r.dispersions[g] = d;
  }

  const int n_bins_hint = o.flavor == "seurat" ? o.n_bins : 0;
  std::vector<double> edges;
  if (o.flavor == "seurat") {
    auto [mn_it, mx_it] = std::minmax_element(r.means.begin(), r.means.end());
    const double mn = *mn_it, mx = *mx_it;
    edges.resize(n_bins_hint + 1);
    for (int i = 0; i <= n_bins_hint; ++i)
      edges[i] = mn + (mx - mn) * static_cast<double>(i) / n_bins_hint;
    edges[0] -= (mx - mn) * 0.001;
    if (mx == mn) edges = {mn - 0.001, mn + 0.001};
  } else {
    std::vector<double> sorted = r.means;
    std::sort(sorted.begin(), sorted.end());
    edges.push_back(-std::numeric_limits<double>::infinity());
    for (int q = 10; q <= 100; q += 5) edges.push_back(percentile(sorted, q));
    edges.push_back(std::numeric_limits<double>::infinity());
    edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  }
  r.mean_bin = cut(r.means, edges);

  const int n_bins = static_cast<int>(edges.size()) - 1;
  std::vector<std::vector<double>> members(n_bins);
  for (std::size_t g = 0; g < n; ++g)
    if (r.mean_bin[g] >= 0 && !std::isnan(r.dispersions[g]))
      members[r.mean_bin[g]].push_back(r.dispersions[g]);
  std::vector<double> center(n_bins, kNaN), scale(n_bins, kNaN);
  for (int b = 0; b < n_bins; ++b) {
    auto& v = members[b];
    if (o.flavor == "cell_ranger") {
      // statsmodels.robust.mad: median absolute deviation scaled to the normal's sigma.
      center[b] = median(v);
      std::vector<double> dev;
      for (double d : v) dev.push_back(std::fabs(d - center[b]));
      scale[b] = median(dev) / 0.6744897501960817;
    } else {
      if (v.empty()) continue;
      double s = std::accumulate(v.begin(), v.end(), 0.0);
      center[b] = s / static_cast<double>(v.size());
      if (v.size() >= 2) {
        double ss = 0.0;
        for (double d : v) ss += (d - center[b]) * (d - center[b]);
        scale[b] = std::sqrt(ss / static_cast<double>(v.size() - 1));
      } else {
        // A lone gene in its bin gets a normalised dispersion of 1 (as scanpy).
        scale[b] = center[b];
        center[b] = 0.0;
      }
    }
  }
  r.dispersions_norm.resize(n);
  for (std::size_t g = 0; g < n; ++g) {
    const int b = r.mean_bin[g];
    r.dispersions_norm[g] = b < 0 ? kNaN : (r.dispersions[g] - center[b]) / scale[b];
  }

  r.highly_variable.assign(n, 0);
  if (o.n_top_genes > 0) {
    std::vector<double> finite;
    for (double d : r.dispersions_norm)
      if (!std::isnan(d)) finite.push_back(d);
    if (finite.empty()) throw Error("", "highly_variable_genes", "all dispersions are NaN");
    const std::size_t top = std::min<std::size_t>(o.n_top_genes, finite.size());
    std::nth_element(finite.begin(), finite.begin() + (top - 1), finite.end(), std::greater<>());
    const double cutoff = finite[top - 1];
    for (std::size_t g = 0; g < n; ++g) {
      double d = r.dispersions_norm[g];
      if (std::isnan(d)) d = 0.0;  // numpy.nan_to_num
      r.highly_variable[g] = d >= cutoff;
    }
  } else {
    for (std::size_t g = 0; g < n; ++g) {
      const double d = r.dispersions_norm[g];
      r.highly_variable[g] = r.means[g] > o.min_mean && r.means[g] < o.max_mean && !std::isnan(d) &&
                             d > o.min_disp && d < o.max_disp;
    }
  }
  return r;
}

HvgResult highly_variable_genes_batched(const std::vector<std::vector<double>>& mean,
                                        const std::vector<std::vector<double>>& var,
                                        const std::vector<std::vector<char>>& expressed,
                                        const HvgOptions& o) {
  if (mean.empty()) throw Error("", "hvg.batch_key", "no batches");
  const std::size_t n = mean.front().size();
  std::vector<double> sum_mean(n, 0), sum_disp(n, 0), sum_norm(n, 0);
  std::vector<int> n_mean(n, 0), n_disp(n, 0), n_norm(n, 0);
  HvgResult r;
  r.n_batches.assign(n, 0);
  auto add = [](double v, double& sum, int& count) {
    if (!std::isnan(v)) sum += v, ++count;
  };
  for (std::size_t b = 0; b < mean.size(); ++b) {
    std::vector<std::size_t> genes;
    std::vector<double> m, v;
    for (std::size_t g = 0; g < n; ++g)
      if (expressed[b][g]) genes.push_back(g), m.push_back(mean[b][g]), v.push_back(var[b][g]);
    std::vector<char> seen(n, 0);
    if (!genes.empty()) {
      const HvgResult one = highly_variable_genes(m, v, o);
      for (std::size_t i = 0; i < genes.size(); ++i) {
        const std::size_t g = genes[i];
        seen[g] = 1;
        add(one.means[i], sum_mean[g], n_mean[g]);
        add(one.dispersions[i], sum_disp[g], n_disp[g]);
        add(one.dispersions_norm[i], sum_norm[g], n_norm[g]);
        r.n_batches[g] += one.highly_variable[i];
      }
    }
    for (std::size_t g = 0; g < n; ++g)  // genes the batch does not express: zeros
      if (!seen[g]) ++n_mean[g], ++n_disp[g], ++n_norm[g];
  }
  r.means.resize(n);
  r.dispersions.resize(n);
  r.dispersions_norm.resize(n);
  r.intersection.resize(n);
  for (std::size_t g = 0; g < n; ++g) {
    r.means[g] = n_mean[g] ? sum_mean[g] / n_mean[g] : kNaN;
    r.dispersions[g] = n_disp[g] ? sum_disp[g] / n_disp[g] : kNaN;
    r.dispersions_norm[g] = n_norm[g] ? sum_norm[g] / n_norm[g] : kNaN;
    r.intersection[g] = r.n_batches[g] == static_cast<int>(mean.size());
  }
  r.highly_variable.assign(n, 0);
  if (o.n_top_genes > 0) {
    // Most batches first, then the highest mean normalised dispersion (NaN last); stable.
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (r.n_batches[a] != r.n_batches[b]) return r.n_batches[a] > r.n_batches[b];
      const double da = r.dispersions_norm[a], db = r.dispersions_norm[b];
      if (std::isnan(da) || std::isnan(db)) return !std::isnan(da) && std::isnan(db);
      return da > db;
    });
    for (std::size_t k = 0; k < std::min<std::size_t>(o.n_top_genes, n); ++k)
      r.highly_variable[order[k]] = 1;
  } else {
    for (std::size_t g = 0; g < n; ++g) {
      const double d = std::isnan(r.dispersions_norm[g]) ? 0.0 : r.dispersions_norm[g];
      r.highly_variable[g] =
          r.means[g] > o.min_mean && r.means[g] < o.max_mean && d > o.min_disp && d < o.max_disp;
    }
  }
  return r;
}

SeuratV3Clip seurat_v3_clip(const std::vector<double>& mean, const std::vector<double>& var,
                            std::int64_t n_cells, double span) {
  const std::size_t n = mean.size();
  std::vector<double> x, y;
  std::vector<std::size_t> varying;
  for (std::size_t g = 0; g < n; ++g)
    if (var[g] > 0) {
      varying.push_back(g);
      x.push_back(std::log10(mean[g]));
      y.push_back(std::log10(var[g]));
    }
  if (varying.size() < 3) throw Error("", "hvg", "seurat_v3 needs at least three varying genes");
  const std::vector<double> fit = loess_fit(x, y, {.span = span, .degree = 2});
  SeuratV3Clip c;
  c.reg_std.assign(n, 0.0);
  c.clip.assign(n, 0.0);
  const double vmax = std::sqrt(static_cast<double>(n_cells));
  for (std::size_t i = 0; i < varying.size(); ++i)
    c.reg_std[varying[i]] = std::sqrt(std::pow(10.0, fit[i]));
  for (std::size_t g = 0; g < n; ++g) c.clip[g] = c.reg_std[g] * vmax + mean[g];
  return c;
}

HvgResult seurat_v3_select(const std::vector<double>& mean, const std::vector<double>& var,
                           const SeuratV3Clip& clip, const std::vector<double>& clipped_sum,
                           const std::vector<double>& clipped_sumsq, std::int64_t n_cells,
                           const HvgOptions& o) {
  const std::size_t n = mean.size();
  const double N = static_cast<double>(n_cells);
  HvgResult r;
  r.means = mean;
  r.variances = var;
  r.variances_norm.assign(n, 0.0);
  for (std::size_t g = 0; g < n; ++g) {
    const double s = clip.reg_std[g];
    // scanpy: 1 / ((N - 1) reg_std^2) * (N mean^2 + sum x^2 - 2 mean sum x); 0 for constants.
    r.variances_norm[g] =
        s > 0 ? (N * mean[g] * mean[g] + clipped_sumsq[g] - 2.0 * clipped_sum[g] * mean[g]) /
                    ((N - 1.0) * s * s)
              : 0.0;
  }
  const std::size_t top = std::min<std::size_t>(o.n_top_genes > 0 ? o.n_top_genes : 2000, n);
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  // Highest standardised variance first; ties by gene order (a stable sort, as pandas').
  std::stable_sort(order.begin(), order.end(),
                   [&](auto a, auto b) { return r.variances_norm[a] > r.variances_norm[b]; });
  r.highly_variable.assign(n, 0);
  r.rank.assign(n, kNaN);
  for (std::size_t i = 0; i < top; ++i) {
    r.highly_variable[order[i]] = 1;
    r.rank[order[i]] = static_cast<double>(i);
  }
  r.dispersions = r.variances;
  r.dispersions_norm = r.variances_norm;
  r.mean_bin.assign(n, 0);
  return r;
}

HvgResult seurat_v3_combine(const std::vector<HvgResult>& per_batch,
                            const std::vector<double>& mean, const std::vector<double>& var,
                            const HvgOptions& o) {
  if (per_batch.empty()) throw Error("", "hvg.batch_key", "no batches");
  const std::size_t n = mean.size();
  const std::size_t top = std::min<std::size_t>(o.n_top_genes > 0 ? o.n_top_genes : 2000, n);
  HvgResult r;
  r.means = mean;
  r.variances = var;
  r.variances_norm.assign(n, 0.0);
  r.n_batches.assign(n, 0);
  std::vector<std::vector<double>> ranks(n);  // per gene, its ranks under `top`
  for (const HvgResult& b : per_batch) {
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](auto a, auto c) { return b.variances_norm[a] > b.variances_norm[c]; });
    for (std::size_t i = 0; i < top; ++i) {
      ++r.n_batches[order[i]];
      ranks[order[i]].push_back(static_cast<double>(i));
    }
    for (std::size_t g = 0; g < n; ++g)
      r.variances_norm[g] += b.variances_norm[g] / static_cast<double>(per_batch.size());
  }
  r.rank.assign(n, kNaN);
  for (std::size_t g = 0; g < n; ++g) {
    auto& v = ranks[g];
    if (v.empty()) continue;
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size();
    r.rank[g] = m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
  }
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) {
    const double ra = r.rank[a], rb = r.rank[b];
    if (std::isnan(ra) || std::isnan(rb)) return !std::isnan(ra) && std::isnan(rb);
    if (ra != rb) return ra < rb;
    return r.n_batches[a] > r.n_batches[b];
  });
  r.highly_variable.assign(n, 0);
  for (std::size_t i = 0; i < top; ++i) r.highly_variable[order[i]] = 1;
  r.intersection.assign(n, 0);
  for (std::size_t g = 0; g < n; ++g)
    r.intersection[g] = r.n_batches[g] == static_cast<int>(per_batch.size());
  r.dispersions = r.variances;
  r.dispersions_norm = r.variances_norm;
  r.mean_bin.assign(n, 0);
  return r;
}

}  // namespace orrery::compute
