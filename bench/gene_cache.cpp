// The kept counts gene by gene (compute/gene_major.hpp) on a store: every cell and gene kept,
// normalised to 1e4. Times a plain pass over the store's counts, the same pass keeping them
// gene by gene (its cost over the plain one, and their size), one gene's log values by a pass
// (what the viewer's gene search did) and from memory, a replay of the counts as row chunks,
// and binned Wilcoxon markers of a 10 % selection against the rest from the store, replayed
// from memory, and ranked gene by gene from memory. Prints one JSON object.
// Usage: orrery_bench_gene_cache STORE [BUDGET_MIB]   (default 16384; REPLAY_MIB=N in the
// environment replays in chunks of N MiB instead of GeneMajorCounts::kReplayChunkBytes)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "compute/backend.hpp"
#include "compute/gene_major.hpp"
#include "compute/pipeline.hpp"
#include "compute/rng.hpp"
#include "io/store.hpp"

using namespace orrery;

namespace {

double now() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: orrery_bench_gene_cache STORE [BUDGET_MIB]\n");
    return 2;
  }
  const std::size_t budget = (argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 16384) << 20;
  io::Store store = io::open_store(argv[1]);
  const std::int64_t n = store.n_obs(), g = store.n_vars();
  compute::PipelineResult r;
  r.n_cells_total = n;
  r.n_genes_total = g;
  r.cell_mask.assign(static_cast<std::size_t>(n), 1);
  for (std::int64_t i = 0; i < n; ++i) r.kept_cells.push_back(i);
  for (std::int32_t j = 0; j < g; ++j) r.kept_genes.push_back(j);
  r.target_sum = 1e4;
  compute::PipelineParams p;
  auto cpu = compute::make_cpu_backend();
  const compute::LogNormalize norm = compute::log_normalize_of(r, p);
  nlohmann::json out = {{"store", argv[1]}, {"cells", n}, {"genes", g}};

  double t = now();
  std::int64_t nnz = 0;
  std::vector<std::int64_t> per_gene(static_cast<std::size_t>(g), 0);  // the builder's bounds
  compute::kept_counts_source(store, r, p)([&](CsrMatrix& c, std::int64_t) {
    nnz += c.nnz();
    for (auto j : c.indices) ++per_gene[j];
  });
  out["nnz"] = nnz;
  out["pass_seconds"] = now() - t;

  t = now();
  // With bounds, as the pipeline gives its kept genes' cell counts: each column's bytes are
  // reserved once (without them, growing the columns took a third more time).
  compute::GeneMajorBuilder builder(n, g, budget, nullptr, per_gene);
  compute::tee_source(compute::kept_counts_source(store, r, p),
                      builder)([](CsrMatrix&, std::int64_t) {});
  const auto counts = builder.finish();
  out["pass_keeping_counts_seconds"] = now() - t;
  out["peak_rss_mib"] = compute::peak_rss_mib();
  if (!counts) {
    out["counts"] = "over the budget";
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  out["counts_mib"] = static_cast<double>(counts->bytes()) / (1 << 20);
  out["counts_bytes_per_entry"] = static_cast<double>(counts->bytes()) / static_cast<double>(nnz);

  // A gene seen in about one cell in ten, and the most frequent one.
  std::int32_t common = 0, typical = 0;
  std::int64_t most = -1, best = -1;
  for (std::int32_t j = 0; j < g; ++j) {
    std::int64_t m = 0;
    counts->for_each(j, [&](std::int64_t, float) { ++m; });
    if (m > most) most = m, common = j;
    if (best < 0 || std::llabs(m - n / 10) < std::llabs(best - n / 10)) best = m, typical = j;
  }
  for (auto [name, gene] : {std::pair{"typical", typical}, std::pair{"common", common}}) {
    t = now();
    const std::vector<float> v = counts->values(gene, norm);
    const double memory = now() - t;
    out["gene_" + std::string(name)] = {{"column", gene}, {"memory_seconds", memory}};
    if (std::string(name) == "typical") {
      t = now();
      std::vector<float> w(static_cast<std::size_t>(n), 0.0f);
      compute::log_normalized_source(store, r, p, *cpu)([&](CsrMatrix& c, std::int64_t row0) {
        for (std::int64_t i = 0; i < c.n_rows; ++i)
          for (auto k = c.indptr[i]; k < c.indptr[i + 1]; ++k)
            if (c.indices[k] == gene) w[row0 + i] = c.data[k];
      });
      out["gene_typical"]["pass_seconds"] = now() - t;
      out["gene_typical"]["same_values"] = v == w;
    }
  }

  t = now();
  std::int64_t replayed = 0;
  const std::size_t replay_bytes = std::getenv("REPLAY_MIB")
                                       ? std::strtoull(std::getenv("REPLAY_MIB"), nullptr, 10) << 20
                                       : compute::GeneMajorCounts::kReplayChunkBytes;
  counts->source(replay_bytes)([&](CsrMatrix& c, std::int64_t) { replayed += c.nnz(); });
  out["replay_seconds"] = now() - t;
  out["replay_same_nnz"] = replayed == nnz;

  std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
  compute::Rng rng(5);
  for (auto& l : labels) l = rng.uniform() < 0.1 ? 0 : 1;
  compute::WilcoxonOptions w;
  w.method = "binned";
  w.reference = 1;
  w.bin_max = 12.0f;  // given, as the window gives the run's maximum: no pass to find it
  compute::Progress quiet;
  double scores[2] = {0, 0};
  for (int from_memory = 0; from_memory < 2; ++from_memory) {
    t = now();
    const auto markers = cpu->rank_genes_groups(
        from_memory ? counts->source(replay_bytes) : compute::kept_counts_source(store, r, p), norm,
        n, g, labels, 2, w, quiet);
    out[from_memory ? "markers_memory_seconds" : "markers_store_seconds"] = now() - t;
    scores[from_memory] = markers[0].scores[typical];
  }
  t = now();
  const auto by_gene = compute::rank_genes_groups(*counts, norm, labels, 2, w, quiet);
  out["markers_by_gene_seconds"] = now() - t;
  out["markers_same_score"] = scores[0] == scores[1] && by_gene[0].scores[typical] == scores[0];
  out["peak_rss_mib"] = compute::peak_rss_mib();
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "orrery_bench_gene_cache: %s\n", e.what());
  return 1;
}
