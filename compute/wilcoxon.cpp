#include "wilcoxon.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "by_columns.hpp"
#include "elementwise.hpp"
#include "gene_major.hpp"
#include "io/error.hpp"
#include "wilcoxon_math.hpp"

namespace orrery::compute {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// One entry of a gene's non-zero values: the value (or bin) and the cell's group.
struct Entry {
  float value;
  std::int32_t label;
  bool operator<(const Entry& o) const {
    return value < o.value || (value == o.value && label < o.label);
  }
};

// Sorts a gene's entries by value, equal values adjacent. Their order within a tie changes no
// rank sum (wilcoxon_math.hpp: sums of multiples of 1/2, exact in any order), so an LSD radix
// sort on the values' bits serves: four byte passes (a byte all keys share is skipped) instead
// of a comparison sort, which was a fifth of an exact-markers run. Short lists: std::sort.
void sort_by_value(std::vector<Entry>& e) {
  const std::size_t n = e.size();
  if (n < 128) {
    std::sort(e.begin(), e.end());
    return;
  }
  // Float bits ordered as unsigned integers: negatives reversed below the positives
  // (-0 then +0, adjacent).
  auto key = [](float v) {
    std::uint32_t b;
    std::memcpy(&b, &v, sizeof b);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  };
  std::uint32_t count[4][256] = {};
  for (const Entry& x : e) {
    const std::uint32_t k = key(x.value);
    for (int d = 0; d < 4; ++d) ++count[d][(k >> (8 * d)) & 255];
  }
  thread_local std::vector<Entry> scratch;
  scratch.resize(n);
  Entry* from = e.data();
  Entry* to = scratch.data();
  for (int d = 0; d < 4; ++d) {
    const std::uint32_t first = (key(from[0].value) >> (8 * d)) & 255;
    if (count[d][first] == n) continue;  // every key has this byte
    std::size_t at[256];
    std::size_t sum = 0;
    for (int b = 0; b < 256; ++b) {
      at[b] = sum;
      sum += count[d][b];
    }
    for (std::size_t i = 0; i < n; ++i) to[at[(key(from[i].value) >> (8 * d)) & 255]++] = from[i];
    std::swap(from, to);
  }
  if (from != e.data()) std::copy(from, from + n, e.data());
  // A thread keeps its scratch for the next gene, unless it far outgrew a typical one.
  if (scratch.capacity() > (std::size_t{1} << 20) && scratch.capacity() > 8 * n)
    std::vector<Entry>().swap(scratch);
}

// Rank sums of `in` (group) within the universe {in, other}: zeros (count per label known)
// share one tie block placed between negative and positive values; ties get average ranks.
struct RankSums {
  double r_in = 0;     // sum of ranks of the group's cells
  double tie_sum = 0;  // sum over tie blocks of t^3 - t
};

// `entries` sorted by value; `in_universe(label)` says which cells count; `zeros_in`,
// `zeros_total` count the group's and the universe's zero entries.
template <typename InUniverse, typename Weight>
RankSums rank_sums(const std::vector<Entry>& entries, std::int32_t group, double zeros_in,
                   double zeros_total, InUniverse in_universe, Weight weight) {
  RankSums s;
  double position = 0;  // cells ranked so far
  bool zeros_done = false;
  auto place_zeros = [&] {
    if (zeros_done) return;
    zeros_done = true;
    if (zeros_total > 0) {
      s.r_in += zeros_in * (position + (zeros_total + 1) / 2.0);
      s.tie_sum += zeros_total * zeros_total * zeros_total - zeros_total;
      position += zeros_total;
    }
  };
  std::size_t i = 0;
  while (i < entries.size()) {
    if (entries[i].value > 0) place_zeros();
    std::size_t j = i;
    double t = 0, t_in = 0;
    while (j < entries.size() && entries[j].value == entries[i].value) {
      if (in_universe(entries[j].label)) {
        const double w = weight(j);
        t += w;
        if (entries[j].label == group) t_in += w;
      }
      ++j;
    }
    if (t > 0) {
      s.r_in += t_in * (position + (t + 1) / 2.0);
      s.tie_sum += t * t * t - t;
      position += t;
    }
    i = j;
  }
  place_zeros();
  return s;
}

// The entries of one gene for rank_sums_vs_rest: sorted values (exact) with weight 1, or
// histogram entries (binned) with their counts as weights.
struct SortedEntries {
  const Entry* e;
  const double* w;  // nullptr: weight 1
  float value(std::int64_t j) const { return e[j].value; }
  int label(std::int64_t j) const { return e[j].label; }
  double weight(std::int64_t j) const { return w ? w[j] : 1.0; }
};

// One group's statistics for one gene from its rank sum and the group's and the others'
// sizes, sums of non-zero values and non-zero counts.
void fill_marker(GroupMarkers& m, std::int64_t gene, double r_in, double tie_sum, double n_in,
                 double n_out, double sum_in, double sum_out, double nnz_in, double nnz_out,
                 bool tie_correct) {
  const double z = wilcoxon_z(r_in, n_in, n_out, tie_sum, tie_correct);
  m.scores[gene] = z;
  m.pvals[gene] = two_sided_p(z);
  m.logfoldchanges[gene] =
      log_fold_change(n_in > 0 ? sum_in / n_in : 0.0, n_out > 0 ? sum_out / n_out : 0.0);
  m.pct_in[gene] = n_in > 0 ? nnz_in / n_in : 0.0;
  m.pct_out[gene] = n_out > 0 ? nnz_out / n_out : 0.0;
}

// Adjusted p-values and gene order of every group but the reference, which goes.
void finish_markers(std::vector<GroupMarkers>& out, int reference) {
  const int n_groups = static_cast<int>(out.size());
  for (int l = 0; l < n_groups; ++l) {
    if (l == reference) continue;
    auto& m = out[l];
    m.pvals_adj = benjamini_hochberg(m.pvals);
    m.order.resize(m.scores.size());
    std::iota(m.order.begin(), m.order.end(), 0);
    std::stable_sort(m.order.begin(), m.order.end(),
                     [&](std::int32_t a, std::int32_t b) { return m.scores[a] > m.scores[b]; });
  }
  if (reference >= 0) out.erase(out.begin() + reference);
}

}  // namespace

std::vector<double> benjamini_hochberg(const std::vector<double>& pvals) {
  const std::size_t n = pvals.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto p = [&](std::size_t i) { return std::isnan(pvals[i]) ? 1.0 : pvals[i]; };
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return p(a) < p(b); });
  std::vector<double> adj(n);
  double running = 1.0;
  for (std::size_t k = n; k-- > 0;) {
    const double v = p(order[k]) * static_cast<double>(n) / static_cast<double>(k + 1);
    running = std::min(running, v);
    adj[order[k]] = std::min(1.0, running);
  }
  return adj;
}

bool wilcoxon_binned(const WilcoxonOptions& o, std::int64_t n_cells) {
  return o.method == "binned" || (o.method == "auto" && n_cells > o.exact_max_cells);
}

bool wilcoxon_uses_bins(const WilcoxonOptions& o, const std::vector<std::int32_t>& labels,
                        std::int64_t n_cells, int n_groups) {
  if (static_cast<std::int64_t>(labels.size()) != n_cells)
    throw Error("", "rank_genes_groups", "one label per cell is required");
  if (n_groups < 1) throw Error("", "rank_genes_groups", "no groups");
  if (o.method != "exact" && o.method != "binned" && o.method != "auto")
    throw Error("", "rank_genes_groups.method", "must be exact, binned or auto");
  if (o.method == "binned" && (o.n_bins < 2 || o.n_bins > 100000))
    throw Error("", "rank_genes_groups.n_bins", "must be 2..100000");
  if (o.reference >= n_groups) throw Error("", "rank_genes_groups.reference", "no such group");
  for (auto l : labels)
    if (l >= n_groups) throw Error("", "rank_genes_groups", "label out of range");
  return wilcoxon_binned(o, n_cells);
}

namespace {

// A column range's maximum and sign, on a cache line of its own (written for every entry).
struct alignas(64) PartExtremes {
  float max = 0.0f;
  bool negative = false;
};

// f(part, label, gene, value) for each labelled non-zero entry of `c` (rows' genes increasing)
// whose gene is in [g0, g1), by column ranges in parallel (by_columns.hpp): no two threads
// touch one gene's statistics, and each gene's entries come in row order (the serial order:
// sums and gathered entries are the same to the bit).
template <class F>
void for_labelled_entries(const CsrMatrix& c, const std::int32_t* labels, std::int64_t g0,
                          std::int64_t g1, F&& f) {
  for_each_entry_by_column_ranges(c, g0, g1,
                                  [&](std::int64_t part, std::int64_t r, std::int64_t k) {
                                    const std::int32_t l = labels[r];
                                    const float v = c.data[k];
                                    if (l >= 0 && v != 0.0f) f(part, l, c.indices[k], v);
                                  });
}

// Each group's markers before any gene is ranked: every statistic NaN.
std::vector<GroupMarkers> unranked(int n_groups, std::int64_t n_genes) {
  std::vector<GroupMarkers> out(n_groups);
  for (int g = 0; g < n_groups; ++g) {
    out[g].group = g;
    for (auto* v :
         {&out[g].scores, &out[g].pvals, &out[g].logfoldchanges, &out[g].pct_in, &out[g].pct_out})
      v->assign(n_genes, kNaN);
  }
  return out;
}

// What ranking one gene needs of the whole: group sizes, and per group l and gene the sums and
// non-zero counts at [l * n_genes + gene].
struct GroupStats {
  const std::vector<std::int64_t>& size;
  const std::vector<double>& sum;
  const std::vector<std::int64_t>& nnz;
  std::int64_t n_genes, active;
  int n_groups;
};

// Ranks one gene, exact from its non-zero entries (sorted here) or binned from its histogram
// ([l * n_bins + b]; then `e` is unused), and fills each group's statistics for it in `out`.
void rank_gene(std::int64_t gene, std::vector<Entry> e, const std::uint32_t* hist,
               const GroupStats& st, const WilcoxonOptions& o, std::vector<GroupMarkers>& out) {
  const bool binned = hist != nullptr;
  const int n_groups = st.n_groups;
  const std::int64_t n_genes = st.n_genes;
  const auto& size = st.size;
  const auto& sum = st.sum;
  const auto& nnz = st.nnz;
  const std::int64_t active = st.active;
  std::vector<double> weights;
  if (binned) {
    // One entry per (bin, label) with its count as weight; bins are tie blocks.
    e.clear();
    for (int b = 0; b < o.n_bins; ++b)
      for (int l = 0; l < n_groups; ++l)
        if (auto count = hist[static_cast<std::size_t>(l) * o.n_bins + b]) {
          e.push_back({static_cast<float>(b + 1), l});
          weights.push_back(count);
        }
  } else {
    sort_by_value(e);
  }
  auto weight = [&](std::size_t j) { return binned ? weights[j] : 1.0; };
  auto zeros_of = [&](int l) {
    return static_cast<double>(size[l] - nnz[static_cast<std::size_t>(l) * n_genes + gene]);
  };
  double total_sum = 0, total_nnz = 0;
  for (int l = 0; l < n_groups; ++l) {
    total_sum += sum[static_cast<std::size_t>(l) * n_genes + gene];
    total_nnz += nnz[static_cast<std::size_t>(l) * n_genes + gene];
  }
  if (o.reference < 0) {
    // Each group against all other cells: one walk ranks the gene for every group.
    std::vector<double> zeros(n_groups), r_in(n_groups, 0.0);
    for (int l = 0; l < n_groups; ++l) zeros[l] = zeros_of(l);
    const double zeros_total = static_cast<double>(active) - total_nnz;
    const double tie_sum = rank_sums_vs_rest(
        SortedEntries{e.data(), binned ? weights.data() : nullptr},
        static_cast<std::int64_t>(e.size()), zeros.data(), zeros_total, n_groups, r_in.data());
    for (int l = 0; l < n_groups; ++l) {
      const std::size_t at = static_cast<std::size_t>(l) * n_genes + gene;
      const double n_in = static_cast<double>(size[l]);
      fill_marker(out[l], gene, r_in[l], tie_sum, n_in, static_cast<double>(active) - n_in, sum[at],
                  total_sum - sum[at], static_cast<double>(nnz[at]),
                  total_nnz - static_cast<double>(nnz[at]), o.tie_correct);
    }
  } else {
    // Against a reference group: each group's universe is itself and the reference.
    const int ref = o.reference;
    const std::size_t rat = static_cast<std::size_t>(ref) * n_genes + gene;
    for (int l = 0; l < n_groups; ++l) {
      if (l == ref) continue;
      const std::size_t at = static_cast<std::size_t>(l) * n_genes + gene;
      const RankSums s = rank_sums(
          e, l, zeros_of(l), zeros_of(l) + zeros_of(ref),
          [&](std::int32_t x) { return x == l || x == ref; }, weight);
      fill_marker(out[l], gene, s.r_in, s.tie_sum, static_cast<double>(size[l]),
                  static_cast<double>(size[ref]), sum[at], sum[rat], static_cast<double>(nnz[at]),
                  static_cast<double>(nnz[rat]), o.tie_correct);
    }
  }
}

}  // namespace

std::vector<GroupMarkers> rank_genes_groups(const ChunkSource& source, std::int64_t n_cells,
                                            std::int64_t n_genes,
                                            const std::vector<std::int32_t>& labels, int n_groups,
                                            const WilcoxonOptions& o, Progress& progress) {
  const bool binned = wilcoxon_uses_bins(o, labels, n_cells, n_groups);

  // Pass 1: group sizes, per-group sums and non-zero counts (means, pct), data maximum.
  std::vector<std::int64_t> size(n_groups, 0);
  for (auto l : labels)
    if (l >= 0) ++size[l];
  std::vector<double> sum(static_cast<std::size_t>(n_groups) * n_genes, 0.0);
  std::vector<std::int64_t> nnz(static_cast<std::size_t>(n_groups) * n_genes, 0);
  float max_value = 0.0f;
  bool negative = false;

  // Gene blocks [g0, g1) whose rank entries (exact) or histograms (binned) fit the memory
  // budget, given per-gene entry counts.
  auto block_end = [&](std::int64_t g0, const std::vector<std::int64_t>& counts) {
    std::int64_t g1 = g0;
    std::size_t bytes = 0;
    while (g1 < n_genes) {
      const std::size_t need = binned ? sizeof(std::uint32_t) * n_groups * o.n_bins
                                      : sizeof(Entry) * static_cast<std::size_t>(counts[g1]);
      if (g1 > g0 && bytes + need > o.block_bytes) break;
      bytes += need;
      ++g1;
    }
    return g1;
  };
  // Exact ranks with per-gene bounds known beforehand, or binned ranks with the bins' upper edge
  // given: the statistics pass also gathers the first block's entries or histograms, which
  // saves one pass over the data.
  const bool early =
      binned ? o.bin_max > 0 : o.gene_nnz_bound.size() == static_cast<std::size_t>(n_genes);
  const std::int64_t early_end = !early ? 0 : block_end(0, o.gene_nnz_bound);
  std::vector<std::vector<Entry>> early_entries(binned ? 0 : static_cast<std::size_t>(early_end));
  for (std::int64_t g = 0; g < static_cast<std::int64_t>(early_entries.size()); ++g)
    early_entries[g].reserve(static_cast<std::size_t>(o.gene_nnz_bound[g]));
  std::vector<std::vector<std::uint32_t>> early_hist(
      binned ? static_cast<std::size_t>(early_end) : 0,
      std::vector<std::uint32_t>(static_cast<std::size_t>(n_groups) * o.n_bins, 0));

  std::vector<PartExtremes> extremes(static_cast<std::size_t>(kColumnRanges));
  source([&](const CsrMatrix& c, std::int64_t row0) {
    progress.check();
    for_labelled_entries(c, labels.data() + row0, 0, n_genes,
                         [&](std::int64_t part, std::int32_t l, GeneIndex gene, float v) {
                           const std::size_t at = static_cast<std::size_t>(l) * n_genes + gene;
                           sum[at] += v;
                           ++nnz[at];
                           PartExtremes& x = extremes[part];
                           x.max = std::max(x.max, v);
                           x.negative = x.negative || v < 0;
                           if (gene >= early_end) return;
                           if (!binned)
                             early_entries[gene].push_back({v, l});
                           else if (v > 0)  // negative data are refused after the pass
                             ++early_hist[gene][static_cast<std::size_t>(l) * o.n_bins +
                                                wilcoxon_bin(v, o.bin_max, o.n_bins)];
                         });
    progress.report("markers: statistics", static_cast<double>(row0 + c.n_rows) / n_cells);
  });
  for (const PartExtremes& x : extremes) {
    max_value = std::max(max_value, x.max);
    negative = negative || x.negative;
  }
  if (binned && negative)
    throw Error("", "rank_genes_groups.method", "binned ranks need non-negative data");
  const float bin_max = o.bin_max > 0 ? o.bin_max : std::max(max_value, 1e-12f);

  std::vector<GroupMarkers> out = unranked(n_groups, n_genes);
  std::int64_t active = 0;
  for (auto s : size) active += s;

  // Gene blocks sized so their entries fit the memory budget.
  std::vector<std::int64_t> gene_nnz(n_genes, 0);
  for (int l = 0; l < n_groups; ++l)
    for (std::int64_t g = 0; g < n_genes; ++g)
      gene_nnz[g] += nnz[static_cast<std::size_t>(l) * n_genes + g];
  std::int64_t g0 = 0;
  while (g0 < n_genes) {
    const bool gathered = early && g0 == 0;  // the statistics pass collected this block
    const std::int64_t g1 = gathered ? early_end : block_end(g0, gene_nnz);
    const std::int64_t width = g1 - g0;
    std::vector<std::vector<Entry>> entries;
    std::vector<std::vector<std::uint32_t>> hist;
    if (gathered) {
      entries = std::move(early_entries);
      hist = std::move(early_hist);
    } else {
      entries.resize(static_cast<std::size_t>(width));
      if (binned)
        hist.assign(width,
                    std::vector<std::uint32_t>(static_cast<std::size_t>(n_groups) * o.n_bins, 0));
      else
        for (std::int64_t g = g0; g < g1; ++g) entries[g - g0].reserve(gene_nnz[g]);
    }
    if (!gathered)
      source([&](const CsrMatrix& c, std::int64_t row0) {
        progress.check();
        for_labelled_entries(c, labels.data() + row0, g0, g1,
                             [&](std::int64_t, std::int32_t l, GeneIndex gene, float v) {
                               if (binned && v > 0)  // as the statistics pass (and CUDA)
                                 ++hist[gene - g0][static_cast<std::size_t>(l) * o.n_bins +
                                                   wilcoxon_bin(v, bin_max, o.n_bins)];
                               else if (!binned)
                                 entries[gene - g0].push_back({v, l});
                             });
      });

    const GroupStats stats{size, sum, nnz, n_genes, active, n_groups};
    tbb::parallel_for(std::int64_t{0}, width, [&](std::int64_t w) {
      if (binned)
        rank_gene(g0 + w, {}, hist[w].data(), stats, o, out);
      else
        rank_gene(g0 + w, std::move(entries[w]), nullptr, stats, o, out);
    });
    progress.report("markers: ranks", static_cast<double>(g1) / n_genes);
    g0 = g1;
  }

  finish_markers(out, o.reference);
  return out;
}

std::vector<GroupMarkers> rank_genes_groups(const GeneMajorCounts& counts,
                                            const LogNormalize& normalize,
                                            const std::vector<std::int32_t>& labels, int n_groups,
                                            const WilcoxonOptions& o, Progress& progress) {
  const std::int64_t n_cells = counts.n_rows(), n_genes = counts.n_cols();
  const bool binned = wilcoxon_uses_bins(o, labels, n_cells, n_groups);
  std::vector<std::int64_t> size(n_groups, 0);
  for (auto l : labels)
    if (l >= 0) ++size[l];
  std::int64_t active = 0;
  for (auto s : size) active += s;
  const std::vector<double> totals =
      normalize.apply ? counts.totals(normalize.excluded) : std::vector<double>{};
  // The entries of genes [g0, g1) walked in blocks of rows, in order; within a block genes run in
  // parallel, each one's entries in row order (so sums add as a pass over chunks adds them).
  // Each block's values of the whole counts 1 to 15 (most entries) are made once into a table
  // that stays in cache: log1p per entry was most of the time, and a table of every row's
  // (78 MB at 1.3M cells) missed the cache. The same arithmetic, so the same bits.
  constexpr int kSmall = 15;
  constexpr std::int64_t kRows = 8192;
  std::vector<float> small(normalize.apply ? static_cast<std::size_t>(kRows) * kSmall : 0);
  const auto walk = [&](std::int64_t g0, std::int64_t g1, const char* stage, double from, double to,
                        auto&& visit) {
    std::vector<GeneMajorCounts::Cursor> cursor(static_cast<std::size_t>(g1 - g0));
    for (std::int64_t r0 = 0; r0 < n_cells; r0 += kRows) {
      progress.check();
      const std::int64_t r1 = std::min(n_cells, r0 + kRows);
      if (normalize.apply)
        tbb::parallel_for(tbb::blocked_range<std::int64_t>(r0, r1, 512), [&](const auto& rows) {
          for (std::int64_t r = rows.begin(); r < rows.end(); ++r)
            for (int c = 1; c <= kSmall; ++c)
              small[(r - r0) * kSmall + c - 1] =
                  normalize_log1p_value(static_cast<float>(c), totals[r], normalize.target_sum);
        });
      // A cell's value of one entry, as the passes' normalize_log1p makes it.
      const auto value = [&](std::int64_t row, float count) {
        if (!normalize.apply) return count;
        if (count >= 1.0f && count <= static_cast<float>(kSmall)) {
          const int c = static_cast<int>(count);
          if (static_cast<float>(c) == count) return small[(row - r0) * kSmall + c - 1];
        }
        return normalize_log1p_value(count, totals[row], normalize.target_sum);
      };
      tbb::parallel_for(tbb::blocked_range<std::int64_t>(g0, g1, 16), [&](const auto& genes) {
        for (std::int64_t g = genes.begin(); g < genes.end(); ++g)
          counts.for_each_below(static_cast<std::int32_t>(g), cursor[g - g0], r1,
                                [&](std::int64_t row, float c) {
                                  const std::int32_t l = labels[row];
                                  if (l >= 0) visit(g, l, value(row, c));
                                });
      });
      progress.report(stage, from + (to - from) * static_cast<double>(r1) /
                                        static_cast<double>(std::max<std::int64_t>(n_cells, 1)));
    }
  };
  // Binned ranks need the bins' upper edge (the data maximum unless given) and non-negative
  // data; both over the labelled non-zero values, as the pass over chunks finds them.
  std::atomic<bool> negative = false;
  float bin_max = o.bin_max;
  if (binned && bin_max <= 0) {
    std::vector<float> max_of(static_cast<std::size_t>(n_genes), 0.0f);
    walk(0, n_genes, "markers: maximum", 0.0, 1.0, [&](std::int64_t g, std::int32_t, float v) {
      if (v < 0) negative = true;
      max_of[g] = std::max(max_of[g], v);
    });
    const float max_value = max_of.empty() ? 0.0f : *std::max_element(max_of.begin(), max_of.end());
    bin_max = std::max(max_value, 1e-12f);
  }
  if (binned && negative)
    throw Error("", "rank_genes_groups.method", "binned ranks need non-negative data");

  std::vector<GroupMarkers> out = unranked(n_groups, n_genes);
  std::vector<double> sum(static_cast<std::size_t>(n_groups) * n_genes, 0.0);
  std::vector<std::int64_t> nnz(static_cast<std::size_t>(n_groups) * n_genes, 0);
  const GroupStats stats{size, sum, nnz, n_genes, active, n_groups};
  const std::size_t hist_size = binned ? static_cast<std::size_t>(n_groups) * o.n_bins : 0;
  // Gene blocks whose histograms (binned) or entries (exact) fit o.block_bytes.
  std::int64_t g0 = 0;
  while (g0 < n_genes) {
    std::int64_t g1 = g0;
    std::size_t bytes = 0;
    while (g1 < n_genes) {
      const std::size_t need =
          binned
              ? sizeof(std::uint32_t) * hist_size
              : sizeof(Entry) * static_cast<std::size_t>(counts.nnz(static_cast<std::int32_t>(g1)));
      if (g1 > g0 && bytes + need > o.block_bytes) break;
      bytes += need;
      ++g1;
    }
    const std::int64_t width = g1 - g0;
    std::vector<std::vector<Entry>> entries(binned ? 0 : static_cast<std::size_t>(width));
    std::vector<std::uint32_t> hist(hist_size * static_cast<std::size_t>(width), 0);
    for (std::int64_t g = g0; !binned && g < g1; ++g)
      entries[g - g0].reserve(static_cast<std::size_t>(counts.nnz(static_cast<std::int32_t>(g))));
    walk(g0, g1, "markers: ranks", static_cast<double>(g0) / n_genes,
         static_cast<double>(g1) / n_genes, [&](std::int64_t g, std::int32_t l, float v) {
           if (v == 0.0f) return;
           const std::size_t at = static_cast<std::size_t>(l) * n_genes + g;
           sum[at] += v;
           ++nnz[at];
           if (!binned)
             entries[g - g0].push_back({v, l});
           else if (v > 0)
             ++hist[hist_size * (g - g0) + static_cast<std::size_t>(l) * o.n_bins +
                    wilcoxon_bin(v, bin_max, o.n_bins)];
           else if (v < 0)
             negative = true;
         });
    tbb::parallel_for(std::int64_t{0}, width, [&](std::int64_t w) {
      if (binned)
        rank_gene(g0 + w, {}, hist.data() + hist_size * w, stats, o, out);
      else
        rank_gene(g0 + w, std::move(entries[w]), nullptr, stats, o, out);
    });
    g0 = g1;
  }
  if (binned && negative)
    throw Error("", "rank_genes_groups.method", "binned ranks need non-negative data");
  finish_markers(out, o.reference);
  return out;
}

std::vector<GroupMarkers> markers_vs_rest(const RankSumTable& t, std::int64_t n_genes, int n_groups,
                                          bool tie_correct) {
  std::vector<GroupMarkers> out(n_groups);
  std::int64_t active = 0;
  for (auto s : t.size) active += s;
  for (int g = 0; g < n_groups; ++g) {
    out[g].group = g;
    for (auto* v :
         {&out[g].scores, &out[g].pvals, &out[g].logfoldchanges, &out[g].pct_in, &out[g].pct_out})
      v->assign(n_genes, kNaN);
  }
  for (std::int64_t gene = 0; gene < n_genes; ++gene) {
    double total_sum = 0, total_nnz = 0;
    for (int l = 0; l < n_groups; ++l) {
      total_sum += t.sum[static_cast<std::size_t>(l) * n_genes + gene];
      total_nnz += static_cast<double>(t.nnz[static_cast<std::size_t>(l) * n_genes + gene]);
    }
    for (int l = 0; l < n_groups; ++l) {
      const std::size_t at = static_cast<std::size_t>(l) * n_genes + gene;
      const double n_in = static_cast<double>(t.size[l]);
      fill_marker(out[l], gene, t.r_in[at], t.tie_sum[gene], n_in,
                  static_cast<double>(active) - n_in, t.sum[at], total_sum - t.sum[at],
                  static_cast<double>(t.nnz[at]), total_nnz - static_cast<double>(t.nnz[at]),
                  tie_correct);
    }
  }
  finish_markers(out, -1);
  return out;
}

}  // namespace orrery::compute
