// Stage-level checks with hand-computable answers: HVG binning and selection, UMAP's a/b fit and
// fuzzy union, ARI, Leiden on planted communities, the synthetic generator's determinism,
// parameter validation, and the normalize/log1p arithmetic shared with the CUDA backend.
// TBB's parallel_for before Qt, whose `emit` macro breaks TBB's headers.
#include "compute/by_columns.hpp"

#include <QtTest/QtTest>

#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>
#include "common/chunks.hpp"
#include "common/errors.hpp"
#include "common/graphs.hpp"
#include "common/python.hpp"
#include "compute/backend.hpp"
#include "compute/elementwise.hpp"
#include "compute/gene_major.hpp"
#include "compute/hvg.hpp"
#include "compute/lanczos.hpp"
#include "compute/layout_channel.hpp"
#include "compute/leiden.hpp"
#include "compute/loess.hpp"
#include "compute/metrics.hpp"
#include "compute/parallel_copy.hpp"
#include "compute/pca.hpp"
#include "compute/pipeline.hpp"
#include "compute/result_writer.hpp"
#include "compute/rng.hpp"
#include "compute/spectral.hpp"
#include "compute/synth.hpp"
#include "compute/umap.hpp"
#include "compute/wilcoxon.hpp"
#include "io/anndata_reader.hpp"
#include "io/anndata_writer.hpp"
#include "io/error.hpp"
#include "io/store.hpp"

using namespace orrery;
using namespace orrery::compute;

namespace {

// Three 10-cliques (weights 1) joined in a ring by single weak edges (0.05).
CsrMatrix three_cliques() {
  const int n = 30;
  std::vector<std::map<int, float>> adj(n);
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 10; ++i)
      for (int j = 0; j < 10; ++j)
        if (i != j) adj[c * 10 + i][c * 10 + j] = 1.0f;
  for (auto [a, b] : {std::pair{0, 10}, std::pair{10, 20}, std::pair{20, 0}}) {
    adj[a][b] = 0.05f;
    adj[b][a] = 0.05f;
  }
  CsrMatrix g;
  g.n_rows = g.n_cols = n;
  for (auto& row : adj) {
    for (auto [j, w] : row) {
      g.indices.push_back(j);
      g.data.push_back(w);
    }
    g.indptr.push_back(g.nnz());
  }
  return g;
}

// `n` points in `k` Gaussian blobs (unit variance) in `d` dimensions; point i is in blob i % k,
// centres uniform in a cube of side `spread`.
DenseMatrix blobs(int n, int d, int k, double spread) {
  DenseMatrix x(n, d);
  Rng rng(7);
  std::vector<double> centre(static_cast<std::size_t>(k) * d);
  for (auto& c : centre) c = spread * (rng.uniform() - 0.5);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j)
      x.at(i, j) = static_cast<float>(centre[(i % k) * d + j] + rng.normal());
  return x;
}

// The generator's data at `cells` x `genes` (its other defaults).
SynthOptions synth_of(std::int64_t cells, std::int32_t genes) {
  SynthOptions so;
  so.n_cells = cells;
  so.n_genes = genes;
  return so;
}

// Writes `o` as a synthetic store in `dir`; returns its path.
std::string synth_store(const QTemporaryDir& dir, const SynthOptions& o) {
  const std::string path = dir.filePath("synth.h5ad").toStdString();
  Progress quiet;
  write_synth_h5ad(o, path, quiet);
  return path;
}

// A filter's result that drops every cell_step-th cell and every gene_step-th gene.
PipelineResult filtered_result(int n_cells, int n_genes, int cell_step, int gene_step) {
  PipelineResult r;
  r.n_genes_total = n_genes;
  r.cell_mask.assign(static_cast<std::size_t>(n_cells), 1);
  for (int i = 0; i < n_cells; i += cell_step) r.cell_mask[i] = 0;
  for (int g = 0; g < n_genes; ++g)
    if (g % gene_step) r.kept_genes.push_back(g);
  return r;
}

}  // namespace

class TestStages : public QObject {
  Q_OBJECT

 private slots:
  void normalizeLog1p() {
    CsrMatrix m;
    m.n_rows = 2;
    m.n_cols = 3;
    m.indptr = {0, 2, 2};
    m.indices = {0, 2};
    m.data = {1.0f, 3.0f};
    make_cpu_backend()->normalize_log1p(m, 1e4);
    QVERIFY(std::fabs(m.data[0] - std::log1p(2500.0)) < 1e-5);
    QVERIFY(std::fabs(m.data[1] - std::log1p(7500.0)) < 1e-5);
    QCOMPARE(normalize_value(5.0f, 0.0, 1e4), 0.0f);  // empty cell stays empty
    QCOMPARE(scale_value(20.0f, 0.0f, 1.0f, 10.0f), 10.0f);
    QCOMPARE(scale_value(-20.0f, 0.0f, 1.0f, 10.0f), -20.0f);  // scanpy 1.9 clips above only
  }

  // A run's warnings, its backend's host fallbacks among them, are in the result and the
  // report, each once and in order; none from an earlier run on the same Progress.
  // The gene-major cache gives back every stored count bit for bit (small and large whole
  // counts, fractions, negatives, -0, NaN, explicit zeros, long gaps), replays the rows as the
  // original chunks, normalises as the CPU backend, and gives up past its budget.
  void geneMajorCountsRoundTrip() {
    const std::int64_t n_rows = 3000, n_cols = 300;
    CsrMatrix m;
    m.n_rows = n_rows;
    m.n_cols = n_cols;
    std::mt19937 rng(11);
    const float odd[] = {0.0f,    -0.0f,    0.5f,          -3.0f, 14.0f,         15.0f,    16.0f,
                         1000.0f, 70000.0f, 2147483648.0f, 1e30f, std::nanf(""), INFINITY, 1.0f};
    for (std::int64_t r = 0; r < n_rows; ++r) {
      // Gene g appears with probability depending on g: dense genes, sparse ones (long gaps),
      // and genes seen only in the last rows.
      for (std::int32_t g = 0; g < n_cols; ++g) {
        const double p = g < 20 ? 0.9 : g < 200 ? 0.05 : g < 290 ? 0.003 : (r > 2990 ? 0.5 : 0);
        if (std::uniform_real_distribution<double>(0, 1)(rng) >= p) continue;
        const auto pick = rng() % 10;
        m.indices.push_back(g);
        m.data.push_back(pick < 7 ? static_cast<float>(1 + rng() % 9)
                                  : odd[rng() % (sizeof odd / sizeof odd[0])]);
      }
      m.indptr.push_back(m.nnz());
    }
    std::vector<char> excluded(n_cols, 0);
    excluded[3] = excluded[150] = 1;
    const auto build = [&](std::size_t budget, const std::vector<char>* ex,
                           const std::vector<std::int64_t>& bound = {}) {
      GeneMajorBuilder b(n_rows, n_cols, budget, ex, bound);
      std::int64_t r0 = 0;
      for (std::int64_t n : {1, 700, 299, 1000, 1000}) {
        const CsrMatrix c = test::slice_rows(m, r0, r0 + n);
        b.add(c, r0);
        b.add(c, r0);  // a later pass's chunk: ignored
        r0 += n;
      }
      return b.finish();
    };
    const auto counts = build(std::size_t{64} << 20, &excluded);
    QVERIFY(counts);
    QCOMPARE(counts->nnz(), m.nnz());
    QCOMPARE(counts->n_rows(), n_rows);
    QCOMPARE(counts->n_cols(), n_cols);
    // Gene by gene: the stored entries in row order, the same bits.
    std::vector<std::vector<std::pair<std::int64_t, float>>> by_gene(n_cols);
    for (std::int64_t r = 0; r < n_rows; ++r)
      for (auto k = m.indptr[r]; k < m.indptr[r + 1]; ++k)
        by_gene[m.indices[k]].emplace_back(r, m.data[k]);
    for (std::int32_t g = 0; g < n_cols; ++g) {
      std::vector<std::pair<std::int64_t, float>> got;
      counts->for_each(g, [&](std::int64_t r, float v) { got.emplace_back(r, v); });
      QCOMPARE(got.size(), by_gene[g].size());
      QCOMPARE(counts->nnz(g), static_cast<std::int64_t>(got.size()));
      // Walked in row blocks with a cursor: the same entries.
      GeneMajorCounts::Cursor cursor;
      std::size_t walked = 0;
      for (std::int64_t r1 : {0, 1, 500, 2999, 3000, 3000})
        counts->for_each_below(g, cursor, r1, [&](std::int64_t r, float) {
          QVERIFY(r < r1 && walked < got.size() && r == got[walked].first);
          ++walked;
        });
      QCOMPARE(walked, got.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        QCOMPARE(got[i].first, by_gene[g][i].first);
        QVERIFY(std::memcmp(&got[i].second, &by_gene[g][i].second, sizeof(float)) == 0);
      }
    }
    // Replayed as row chunks (twice: each call starts over), the original matrix.
    for (std::size_t chunk_bytes : {std::size_t{1}, std::size_t{100000}, std::size_t{1} << 30}) {
      for (int call = 0; call < 2; ++call) {
        CsrMatrix all;
        all.n_rows = 0;
        std::int64_t calls = 0;
        counts->source(chunk_bytes)([&](CsrMatrix& c, std::int64_t row0) {
          QCOMPARE(row0, all.n_rows);
          QCOMPARE(c.n_cols, n_cols);
          for (std::int64_t r = 0; r < c.n_rows; ++r) {
            for (auto k = c.indptr[r]; k < c.indptr[r + 1]; ++k) {
              all.indices.push_back(c.indices[k]);
              all.data.push_back(c.data[k]);
            }
            all.indptr.push_back(all.nnz());
          }
          all.n_rows += c.n_rows;
          ++calls;
          c.data.assign(c.data.size(), 0.0f);  // visitors may overwrite their chunk
        });
        QCOMPARE(all.n_rows, n_rows);
        QVERIFY(all.indptr == m.indptr);
        QVERIFY(all.indices == m.indices);
        QVERIFY(std::memcmp(all.data.data(), m.data.data(), m.data.size() * sizeof(float)) == 0);
        if (chunk_bytes == 1) QCOMPARE(calls, n_rows);
        if (chunk_bytes == std::size_t{1} << 30) QCOMPARE(calls, std::int64_t{1});
      }
    }
    // Normalised columns equal the CPU backend's pass, bit for bit: with the builder's
    // exclusion, with none, and with another (totals summed afresh from the columns).
    auto cpu = make_cpu_backend();
    std::vector<char> other(n_cols, 0);
    other[7] = 1;
    const std::vector<char>* exclusions[] = {&excluded, nullptr, &other};
    for (const std::vector<char>* ex : exclusions) {
      CsrMatrix normalised = m;
      cpu->normalize_log1p(normalised, 1e4, ex);
      for (std::int32_t g : {0, 3, 25, 250, 295}) {
        const std::vector<float> v = counts->values(g, {.target_sum = 1e4, .excluded = ex});
        std::vector<float> want(n_rows, 0.0f);
        for (std::int64_t r = 0; r < n_rows; ++r)
          for (auto k = m.indptr[r]; k < m.indptr[r + 1]; ++k)
            if (m.indices[k] == g) want[r] = normalised.data[k];
        QVERIFY(std::memcmp(v.data(), want.data(), want.size() * sizeof(float)) == 0);
      }
    }
    // Counts as they are (the chunks were log data already).
    const std::vector<float> raw = counts->values(0, {.apply = false});
    for (auto [r, v] : by_gene[0]) QVERIFY(std::memcmp(&raw[r], &v, sizeof v) == 0);
    QVERIFY_THROWS_EXCEPTION(Error, counts->values(static_cast<std::int32_t>(n_cols), {}));
    // Budgets: over it while building, over it at once by the bounds, and rows missing.
    QVERIFY(!build(counts->bytes() / 2, &excluded));
    QVERIFY(build(counts->bytes() * 2, nullptr));
    std::vector<std::int64_t> bound(n_cols, n_rows);
    QVERIFY(build(900000, nullptr));  // fits: the bounds say it might not
    QVERIFY(!build(900000, nullptr, bound));
    GeneMajorBuilder partial(n_rows, n_cols, std::size_t{64} << 20, nullptr);
    partial.add(test::slice_rows(m, 0, 10), 0);
    QVERIFY(!partial.finish());
    // A chunk of another width is an error, not a silent mix-up.
    GeneMajorBuilder wrong(n_rows, n_cols + 1, std::size_t{64} << 20, nullptr);
    QVERIFY_THROWS_EXCEPTION(Error, wrong.add(test::slice_rows(m, 0, 10), 0));
  }

  void pipelineReportsWarningsAndFallbacks() {
    // A device backend stand-in whose Gram pass falls back to the host.
    class FallingBack final : public Backend {
     public:
      std::string name() const override { return "falling-back"; }
      void normalize_log1p(CsrMatrix& c, double t, const std::vector<char>* e) override {
        cpu_->normalize_log1p(c, t, e);
      }
      std::unique_ptr<GramPass> gram_pass(const ScaledColumns& columns,
                                          const LogNormalize& n) override {
        note_host_fallback("pca: the Gram pass runs on the host (test)");
        return Backend::gram_pass(columns, n);
      }

     private:
      std::unique_ptr<Backend> cpu_ = make_cpu_backend();
    };
    QTemporaryDir dir;
    io::Store store = io::open_store(synth_store(dir, synth_of(700, 300)));
    PipelineParams p;
    p.hvg.n_top_genes = 150;
    p.markers = false;
    p.min_genes = 50;  // 300 genes: the tutorial's 200 would remove a quarter (a warning, below)
    class Quiet final : public Progress {
      void on_warning(std::string_view) override {}
    } progress;
    auto cpu = make_cpu_backend();
    const PipelineResult plain = run_pipeline(store, p, *cpu, progress);
    QVERIFY(plain.warnings.empty());
    {
      PipelineParams strict = p;
      strict.min_genes = 200;
      Quiet own;
      const PipelineResult r = run_pipeline(store, strict, *cpu, own);
      QVERIFY(r.kept_cells.size() * 4 < 700 * 3);
      QCOMPARE(r.warnings.size(), std::size_t{1});
      QVERIFY2(r.warnings[0].rfind("QC kept " + std::to_string(r.kept_cells.size()) +
                                       " of 700 cells: qc.min_genes 200 removes ",
                                   0) == 0,
               r.warnings[0].c_str());
      // A re-run that takes the graph from this one (only Leiden changed) warns the same.
      PipelineParams finer = strict;
      finer.leiden.resolution = 1.5;
      PipelineHooks hooks;
      hooks.reuse = &r;
      hooks.reuse_params = &strict;
      Quiet again;
      const PipelineResult rerun = run_pipeline(store, finer, *cpu, again, hooks);
      QVERIFY(std::find(rerun.reused_stages.begin(), rerun.reused_stages.end(), "neighbors") !=
              rerun.reused_stages.end());
      QCOMPARE(rerun.warnings, r.warnings);
    }
    QCOMPARE(plain.device_peak_bytes, std::int64_t{0});
    p.neighbors.method = "ivf";  // the CPU backend runs NN-descent instead, and says so
    FallingBack falling;
    const PipelineResult r = run_pipeline(store, p, falling, progress);
    QCOMPARE(r.warnings, std::vector<std::string>(
                             {"pca: the Gram pass runs on the host (test)",
                              "neighbors: ivf runs on the CUDA backend; NN-descent here"}));
    const nlohmann::json report = report_json(r, p);
    QCOMPARE(report["warnings"].get<std::vector<std::string>>(), r.warnings);
    QCOMPARE(report["device_peak_mib"].get<double>(), 0.0);
    // The next run on the same Progress reports only its own.
    const PipelineResult again = run_pipeline(store, p, *cpu, progress);
    QCOMPARE(again.warnings, std::vector<std::string>(
                                 {"neighbors: ivf runs on the CUDA backend; NN-descent here"}));
    QCOMPARE(progress.warnings().size(), std::size_t{3});
  }

  // A caching source reads its inner source once when the counts fit (exact markers' gene
  // blocks then replay them: the same markers as passes over the chunks), and every time when
  // they do not.
  void cachingSourceReadsOnce() {
    QTemporaryDir dir;
    io::Store store = io::open_store(synth_store(dir, synth_of(900, 300)));
    const std::int64_t n = store.n_obs(), g = store.n_vars();
    int reads = 0;
    const ChunkSource inner = [&](const ChunkVisitor& visit) {
      ++reads;
      io::for_each_chunk(*store.X, 200, [&](CsrMatrix& c, std::int64_t r0) { visit(c, r0); });
    };
    std::vector<std::int32_t> labels(n);
    for (std::int64_t i = 0; i < n; ++i) labels[i] = static_cast<std::int32_t>(i % 3);
    WilcoxonOptions o;
    o.method = "exact";
    o.block_bytes = 20000;  // many gene blocks: one pass over the chunks each
    auto cpu = make_cpu_backend();
    Progress quiet;
    const LogNormalize norm{.target_sum = 1e4};
    const auto want = cpu->rank_genes_groups(inner, norm, n, g, labels, 3, o, quiet);
    const int passes = reads;
    QVERIFY(passes > 3);
    reads = 0;
    CachingSource cached(inner, GeneMajorBuilder(n, g, std::size_t{64} << 20, nullptr));
    const auto got = cpu->rank_genes_groups(cached.source(), norm, n, g, labels, 3, o, quiet);
    QCOMPARE(reads, 1);
    QVERIFY(cached.counts());
    for (std::size_t l = 0; l < want.size(); ++l) {
      QVERIFY(std::memcmp(got[l].scores.data(), want[l].scores.data(),
                          want[l].scores.size() * sizeof(double)) == 0);
      QVERIFY(got[l].order == want[l].order);
    }
    reads = 0;
    CachingSource small(inner, GeneMajorBuilder(n, g, 1000, nullptr));
    cpu->rank_genes_groups(small.source(), norm, n, g, labels, 3, o, quiet);
    QCOMPARE(reads, passes);
    QVERIFY(!small.counts());
  }

  // Markers ranked gene by gene from the gene-major counts equal those of passes over row
  // chunks on the CPU, bit for bit: exact and binned (edge given or found), each group against
  // the rest and against a reference, cells left out, tie correction, normalised with and
  // without excluded genes, and counts taken as they are.
  void markersByGeneEqualChunkPasses() {
    // Rows over two of the ranking's row blocks (8192), and gene blocks of a few genes.
    const std::int64_t n_rows = 20000, n_cols = 150;
    CsrMatrix m;
    m.n_rows = n_rows;
    m.n_cols = n_cols;
    std::mt19937 rng(5);
    std::vector<std::int32_t> labels(n_rows);
    for (std::int64_t r = 0; r < n_rows; ++r) {
      labels[r] = static_cast<std::int32_t>(rng() % 4) - 1;  // -1: left out
      for (std::int32_t g = 0; g < n_cols; ++g) {
        const double p = 0.02 + 0.5 * (g % 10) / 10.0 + (labels[r] == 0 && g < 15 ? 0.3 : 0);
        if (std::uniform_real_distribution<double>(0, 1)(rng) >= p) continue;
        m.indices.push_back(g);
        const auto pick = rng() % 20;
        m.data.push_back(pick == 0   ? 0.5f * static_cast<float>(1 + rng() % 7)
                         : pick == 1 ? static_cast<float>(16 + rng() % 300)
                                     : static_cast<float>(1 + rng() % (labels[r] == 0 ? 15 : 4)));
      }
      m.indptr.push_back(m.nnz());
    }
    std::vector<char> excluded(n_cols, 0);
    excluded[2] = excluded[40] = 1;
    GeneMajorBuilder b(n_rows, n_cols, std::size_t{16} << 20, &excluded);
    b.add(m, 0);
    const auto counts = b.finish();
    QVERIFY(counts);
    auto cpu = make_cpu_backend();
    Progress quiet;
    const ChunkSource chunks = [&](const ChunkVisitor& visit) {
      for (std::int64_t r0 = 0; r0 < n_rows; r0 += 2500) {
        CsrMatrix c = test::slice_rows(m, r0, std::min(n_rows, r0 + 2500));
        visit(c, r0);
      }
    };
    const auto same = [](const std::vector<double>& x, const std::vector<double>& y) {
      return x.size() == y.size() &&
             std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0;
    };
    const LogNormalize normalisations[] = {
        {.target_sum = 1e4, .excluded = &excluded}, {.target_sum = 1e4}, {.apply = false}};
    int compared = 0;
    for (const LogNormalize& n : normalisations)
      for (const char* method : {"exact", "binned"})
        for (float bin_max : {0.0f, 5.0f})
          for (int reference : {-1, 1}) {
            if (std::string(method) == "exact" && bin_max > 0) continue;
            WilcoxonOptions o;
            o.method = method;
            o.bin_max = bin_max;
            o.reference = reference;
            o.tie_correct = reference < 0;
            o.n_bins = 50;
            o.block_bytes = reference < 0 ? std::size_t{512} << 20 : 100000;
            const auto by_pass = rank_genes_groups(log_normalized(chunks, n, *cpu), n_rows, n_cols,
                                                   labels, 3, o, quiet);
            const auto by_gene = rank_genes_groups(*counts, n, labels, 3, o, quiet);
            QCOMPARE(by_gene.size(), by_pass.size());
            for (std::size_t g = 0; g < by_pass.size(); ++g) {
              QVERIFY(same(by_gene[g].scores, by_pass[g].scores));
              QVERIFY(same(by_gene[g].pvals, by_pass[g].pvals));
              QVERIFY(same(by_gene[g].pvals_adj, by_pass[g].pvals_adj));
              QVERIFY(same(by_gene[g].logfoldchanges, by_pass[g].logfoldchanges));
              QVERIFY(same(by_gene[g].pct_in, by_pass[g].pct_in));
              QVERIFY(same(by_gene[g].pct_out, by_pass[g].pct_out));
              QVERIFY(by_gene[g].order == by_pass[g].order);
            }
            // Group 0's planted genes lead its markers against the rest.
            if (reference < 0) QVERIFY(by_gene[0].order[0] < 15);
            ++compared;
          }
    QCOMPARE(compared, 18);
    // Negative values cannot be binned: the same error either way.
    CsrMatrix negative = m;
    negative.data[0] = -1.0f;
    GeneMajorBuilder nb(n_rows, n_cols, std::size_t{16} << 20, nullptr);
    nb.add(negative, 0);
    WilcoxonOptions binned;
    binned.method = "binned";
    const auto negative_counts = nb.finish();
    try {
      rank_genes_groups(*negative_counts, {.apply = false}, labels, 3, binned, quiet);
      QFAIL("negative data were binned");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("non-negative") != std::string::npos, e.what());
    }
  }

  // Exact markers read the store once and their later gene blocks from the gene-major counts:
  // the markers equal those of passes that each read the store, and the counts kept are the
  // store's (their log values those of a pass). Binned markers keep them only when asked.
  void markersReadCountsOnceFromMemory() {
    QTemporaryDir dir;
    io::Store store = io::open_store(synth_store(dir, synth_of(1500, 600)));
    Progress quiet;
    auto cpu = make_cpu_backend();
    PipelineParams p;
    p.update_from_json(
        nlohmann::json::parse(R"({"hvg": {"n_top_genes": 200}, "markers": {"method": "exact"}})"));
    p.wilcoxon.block_bytes = 64 << 10;  // several gene blocks, so several passes
    PipelineParams from_store = p;
    from_store.update_from_json({{"gene_cache_mib", 0}});
    const PipelineResult a = run_pipeline(store, from_store, *cpu, quiet);
    const PipelineResult b = run_pipeline(store, p, *cpu, quiet);
    QVERIFY(!a.counts_by_gene);
    QVERIFY(b.counts_by_gene);
    QVERIFY(b.n_clusters >= 2);
    QCOMPARE(b.markers.size(), a.markers.size());
    const auto same = [](const std::vector<double>& x, const std::vector<double>& y) {
      return x.size() == y.size() &&
             std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0;
    };
    for (std::size_t g = 0; g < a.markers.size(); ++g) {
      QVERIFY(same(a.markers[g].scores, b.markers[g].scores));
      QVERIFY(same(a.markers[g].pvals, b.markers[g].pvals));
      QVERIFY(same(a.markers[g].logfoldchanges, b.markers[g].logfoldchanges));
      QVERIFY(same(a.markers[g].pct_in, b.markers[g].pct_in));
      QVERIFY(a.markers[g].order == b.markers[g].order);
    }
    const GeneMajorCounts& counts = *b.counts_by_gene;
    QCOMPARE(counts.n_rows(), static_cast<std::int64_t>(b.kept_cells.size()));
    QCOMPARE(counts.n_cols(), static_cast<std::int64_t>(b.kept_genes.size()));
    QVERIFY(report_json(b, p)["gene_cache_mib"].get<double>() > 0);
    QCOMPARE(report_json(a, p)["gene_cache_mib"].get<double>(), 0.0);
    std::vector<std::vector<float>> pass(counts.n_cols(),
                                         std::vector<float>(counts.n_rows(), 0.0f));
    std::int64_t nnz = 0;
    log_normalized_source(store, b, p, *cpu)([&](const CsrMatrix& c, std::int64_t row0) {
      nnz += c.nnz();
      for (std::int64_t r = 0; r < c.n_rows; ++r)
        for (auto k = c.indptr[r]; k < c.indptr[r + 1]; ++k)
          pass[c.indices[k]][row0 + r] = c.data[k];
    });
    QCOMPARE(counts.nnz(), nnz);
    for (std::int32_t g = 0; g < counts.n_cols(); g += 7)
      QVERIFY(counts.values(g, log_normalize_of(b, p)) == pass[g]);
    // Binned ranks read the counts once: kept for the caller only when the hooks ask.
    PipelineParams binned = p;
    binned.update_from_json(nlohmann::json::parse(R"({"markers": {"method": "binned"}})"));
    QVERIFY(!run_pipeline(store, binned, *cpu, quiet).counts_by_gene);
    PipelineHooks keep;
    keep.keep_counts_by_gene = true;
    const PipelineResult c = run_pipeline(store, binned, *cpu, quiet, keep);
    QVERIFY(c.counts_by_gene);
    QCOMPARE(c.counts_by_gene->nnz(), nnz);
    // A re-run that takes the graph from c (Leiden's resolution changed) ranks from c's counts
    // (no store pass): the same markers as a fresh run with the new resolution.
    PipelineParams finer = binned;
    finer.leiden.resolution = 1.4;
    PipelineHooks again = keep;
    again.reuse = &c;
    again.reuse_params = &binned;
    again.counts_by_gene = c.counts_by_gene;
    const PipelineResult e = run_pipeline(store, finer, *cpu, quiet, again);
    QVERIFY(e.counts_by_gene == c.counts_by_gene);
    QVERIFY(e.markers.size() >= 2);
    QVERIFY(std::find(e.reused_stages.begin(), e.reused_stages.end(), "neighbors") !=
            e.reused_stages.end());
    const PipelineResult fresh = run_pipeline(store, finer, *cpu, quiet);
    QVERIFY(fresh.leiden == e.leiden);
    QCOMPARE(e.markers.size(), fresh.markers.size());
    for (std::size_t g = 0; g < e.markers.size(); ++g) {
      QVERIFY(same(e.markers[g].scores, fresh.markers[g].scores));
      QVERIFY(e.markers[g].order == fresh.markers[g].order);
    }
    // Past the budget nothing is kept and the markers are the same.
    binned.update_from_json({{"gene_cache_mib", 0.01}});
    const PipelineResult d = run_pipeline(store, binned, *cpu, quiet, keep);
    QVERIFY(!d.counts_by_gene);
    QVERIFY(same(d.markers[0].scores, c.markers[0].scores));
  }

  // A parameter change re-runs only the stages after it (PipelineHooks::reuse): each reused
  // stage equals the earlier run's, each recomputed one equals a fresh run with the new
  // parameters, and a change before the graph (or another store's shape) reuses nothing.
  void pipelineReusesUnchangedStages() {
    QTemporaryDir dir;
    SynthOptions so = synth_of(900, 400);
    io::Store store = io::open_store(synth_store(dir, so));
    Progress quiet;
    auto cpu = make_cpu_backend();
    PipelineParams p;
    p.update_from_json(nlohmann::json::parse(R"({"hvg": {"n_top_genes": 200}})"));
    const PipelineResult first = run_pipeline(store, p, *cpu, quiet);
    QVERIFY(first.reused_stages.empty());
    QVERIFY(first.n_clusters >= 2);
    const auto run = [&](const PipelineParams& changed, const PipelineResult& old,
                         const PipelineParams& old_params) {
      PipelineHooks hooks;
      hooks.reuse = &old;
      hooks.reuse_params = &old_params;
      return run_pipeline(store, changed, *cpu, quiet, hooks);
    };
    const auto stage_names = [](const PipelineResult& r) {
      QStringList names;
      for (const auto& t : r.timings) names << QString::fromStdString(t.name);
      return names.join(",");
    };

    // Leiden's resolution: the graph and the layout reused, Leiden and the markers recomputed.
    PipelineParams p2 = p;
    p2.leiden.resolution = 1.5;
    const PipelineResult second = run(p2, first, p);
    QCOMPARE(second.reused_stages,
             (std::vector<std::string>{"qc", "filter", "hvg", "pca", "neighbors", "umap"}));
    QCOMPARE(stage_names(second), QString("leiden,markers"));
    QVERIFY(second.qc_reused);
    QVERIFY(second.x_umap.values == first.x_umap.values);
    QVERIFY(second.graph.connectivities.data == first.graph.connectivities.data);
    const PipelineResult fresh2 = run_pipeline(store, p2, *cpu, quiet);
    QVERIFY(second.leiden == fresh2.leiden);
    QVERIFY(second.leiden != first.leiden);
    QCOMPARE(second.markers.size(), fresh2.markers.size());
    QVERIFY(second.markers.front().scores == fresh2.markers.front().scores);
    QVERIFY(second.x_pca.values == fresh2.x_pca.values);

    // UMAP's min_dist: Leiden and the markers reused, the layout recomputed.
    PipelineParams p3 = p2;
    p3.umap.min_dist = 0.1;
    const PipelineResult third = run(p3, second, p2);
    QCOMPARE(stage_names(third), QString("umap"));
    QCOMPARE(third.reused_stages.back(), std::string("markers"));
    QVERIFY(third.leiden == second.leiden);
    QVERIFY(third.x_umap.values == run_pipeline(store, p3, *cpu, quiet).x_umap.values);
    QVERIFY(third.x_umap.values != second.x_umap.values);

    // The markers' method alone: only the markers.
    PipelineParams p4 = p3;
    p4.wilcoxon.tie_correct = true;
    QCOMPARE(stage_names(run(p4, third, p3)), QString("markers"));

    // Before the graph (the number of PCs for the neighbours): everything again.
    PipelineParams p5 = p3;
    p5.neighbors.n_pcs = 20;
    const PipelineResult fifth = run(p5, third, p3);
    QVERIFY(fifth.reused_stages.empty());
    QCOMPARE(stage_names(fifth), QString("qc,filter,hvg,pca,neighbors,umap,leiden,markers"));
    // Each parameter a stage depends on, changed alone, stops its reuse and that of the stages
    // after it; the backend that ran must be the one asked for now.
    {
      PipelineHooks h;
      h.reuse = &third;
      h.reuse_params = &p3;
      const auto n_cells = third.n_cells_total, n_genes = third.n_genes_total;
      const ReusableStages all = reusable_stages(h, p3, n_cells, n_genes, "cpu");
      QVERIFY(all.graph && all.umap && all.leiden && all.markers);
      QVERIFY(!reusable_stages(h, p3, n_cells, n_genes, "cuda").graph);
      QVERIFY(!reusable_stages(h, p3, n_cells + 1, n_genes, "cpu").graph);
      const std::vector<std::function<void(PipelineParams&)>> before_graph = {
          [](PipelineParams& q) { q.qc_prefix = "mt-"; },
          [](PipelineParams& q) { q.percent_top = {50}; },
          [](PipelineParams& q) { q.min_genes = 100; },
          [](PipelineParams& q) { q.max_genes = 3000; },
          [](PipelineParams& q) { q.max_pct_qc = 20; },
          [](PipelineParams& q) { q.min_counts = 10; },
          [](PipelineParams& q) { q.max_counts = 1e6; },
          [](PipelineParams& q) { q.min_cells = 5; },
          [](PipelineParams& q) { q.target_sum = 0; },
          [](PipelineParams& q) { q.exclude_highly_expressed = true; },
          [](PipelineParams& q) { q.max_fraction = 0.1; },
          [](PipelineParams& q) { q.hvg.n_top_genes = 150; },
          [](PipelineParams& q) { q.hvg.flavor = "seurat"; },
          [](PipelineParams& q) { q.hvg.batch_key = "batch"; },
          [](PipelineParams& q) { q.scale_max_value = 5; },
          [](PipelineParams& q) { q.scale_zero_center = false; },
          [](PipelineParams& q) { q.pca.n_comps = 30; },
          [](PipelineParams& q) { q.neighbors.n_neighbors = 10; },
          [](PipelineParams& q) { q.neighbors.metric = "cosine"; },
          [](PipelineParams& q) { q.neighbors.seed = 3; },
          [](PipelineParams& q) { q.backend = "cuda"; }};
      for (std::size_t i = 0; i < before_graph.size(); ++i) {
        PipelineParams q = p3;
        before_graph[i](q);
        const ReusableStages u = reusable_stages(h, q, n_cells, n_genes, "cpu");
        QVERIFY2(!u.graph && !u.umap && !u.leiden && !u.markers, qPrintable(QString::number(i)));
      }
      PipelineParams q = p3;
      q.umap.seed = 9;
      ReusableStages u = reusable_stages(h, q, n_cells, n_genes, "cpu");
      QVERIFY(u.graph && !u.umap && u.leiden && u.markers);
      q = p3;
      q.leiden.beta = 0.02;
      u = reusable_stages(h, q, n_cells, n_genes, "cpu");
      QVERIFY(u.graph && u.umap && !u.leiden && !u.markers);
      q = p3;
      q.markers = false;
      u = reusable_stages(h, q, n_cells, n_genes, "cpu");
      QVERIFY(u.graph && u.umap && u.leiden && !u.markers);
      q = p3;
      q.chunk_bytes /= 2;  // sums do not depend on the chunking
      QVERIFY(reusable_stages(h, q, n_cells, n_genes, "cpu").markers);
    }
    // Another store's shape: nothing.
    SynthOptions small = so;
    small.n_cells = 500;
    QTemporaryDir other;
    io::Store store2 = io::open_store(synth_store(other, small));
    PipelineHooks hooks;
    hooks.reuse = &first;
    hooks.reuse_params = &p;
    QVERIFY(run_pipeline(store2, p, *cpu, quiet, hooks).reused_stages.empty());
  }

  // normalize_total(target_sum=None): the later readers of the log data (markers of a
  // selection, gene values, the written X) use the median the run found, not 0 (which made
  // every value 0), and UMAP with negative_sample_rate 0 makes a finite layout.
  void medianTargetSumReachesLaterReaders() {
    QTemporaryDir dir;
    SynthOptions so = synth_of(600, 300);
    io::Store store = io::open_store(synth_store(dir, so));
    PipelineParams p;
    p.update_from_json(nlohmann::json::parse(
        R"({"normalize": {"target_sum": null}, "hvg": {"n_top_genes": 150},
            "umap": {"negative_sample_rate": 0}, "markers": false})"));
    QCOMPARE(p.target_sum, 0.0);
    Progress quiet;
    auto cpu = make_cpu_backend();
    const PipelineResult r = run_pipeline(store, p, *cpu, quiet);
    QVERIFY(r.target_sum > 0);
    for (float v : r.x_umap.values) QVERIFY(std::isfinite(v));
    PipelineParams resolved = p;
    resolved.target_sum = r.target_sum;
    const auto collect = [&](const PipelineParams& q) {
      std::vector<float> values;
      log_normalized_source(store, r, q, *cpu)([&](const CsrMatrix& c, std::int64_t) {
        values.insert(values.end(), c.data.begin(), c.data.end());
      });
      return values;
    };
    const std::vector<float> with_null = collect(p);
    QVERIFY(!with_null.empty());
    QVERIFY(*std::max_element(with_null.begin(), with_null.end()) > 0.5f);
    QVERIFY(with_null == collect(resolved));
  }

  // pca.n_comps at the issue's upper end (100): 100 components, variances in decreasing order
  // that are the (ddof = 1) variances of X_pca's columns, ratios summing below 1.
  void pcaHundredComponents() {
    QTemporaryDir dir;
    SynthOptions so = synth_of(700, 500);
    const std::string path = synth_store(dir, so);
    PipelineParams p;
    p.update_from_json(nlohmann::json::parse(
        R"({"hvg": {"n_top_genes": 300}, "pca": {"n_comps": 100}, "markers": false})"));
    io::Store store = io::open_store(path);
    Progress quiet;
    const PipelineResult r = run_pipeline(store, p, *make_cpu_backend(), quiet);
    QCOMPARE(r.x_pca.cols, std::int64_t{100});
    QCOMPARE(r.pca.variance.size(), std::size_t{100});
    double ratio_sum = 0;
    for (int c = 0; c < 100; ++c) {
      if (c > 0) QVERIFY(r.pca.variance[c] <= r.pca.variance[c - 1]);
      double m = 0, v = 0;
      for (std::int64_t i = 0; i < r.x_pca.rows; ++i) m += r.x_pca.at(i, c);
      m /= r.x_pca.rows;
      for (std::int64_t i = 0; i < r.x_pca.rows; ++i) v += std::pow(r.x_pca.at(i, c) - m, 2);
      v /= r.x_pca.rows - 1;
      QVERIFY2(std::fabs(v - r.pca.variance[c]) <= 1e-4 * r.pca.variance[0],
               qPrintable(QString("component %1: %2 vs %3").arg(c).arg(v).arg(r.pca.variance[c])));
      ratio_sum += r.pca.variance_ratio[c];
    }
    QVERIFY(ratio_sum > 0.3 && ratio_sum < 1.0);
  }

  // normalize_total(target_sum=None) as scanpy: numpy's median of the kept cells' positive
  // totals, so with an even number of them the mean of the two middle ones; empty cells are
  // neither counted nor harmed. An all-empty selection is refused by name.
  void medianTargetSum() {
    QTemporaryDir dir;
    const std::string in = dir.filePath("median.h5ad").toStdString();
    SynthOptions so = synth_of(300, 500);
    CsrMatrix counts = SynthGenerator(so).rows(0, so.n_cells);
    auto write = [&](const CsrMatrix& m) {
      io::AnnDataWriter w(in);
      bool sent = false;
      w.write_X(m.n_rows, m.n_cols, [&](CsrMatrix& c) {
        if (sent) return false;
        c = m;
        return sent = true;
      });
      DataFrame obs, var;
      for (int i = 0; i < m.n_rows; ++i) obs.index.push_back(QString("c%1").arg(i).toStdString());
      for (int g = 0; g < m.n_cols; ++g) var.index.push_back(QString("g%1").arg(g).toStdString());
      w.write_obs(obs);
      w.write_var(var);
      w.commit();
    };
    // Rows 3 and 10 emptied: 298 cells with counts, an even number.
    CsrMatrix holed = counts;
    holed.indices.clear();
    holed.data.clear();
    holed.indptr.assign(1, 0);
    std::vector<double> totals;
    for (std::int64_t i = 0; i < counts.n_rows; ++i) {
      double t = 0;
      if (i != 3 && i != 10)
        for (auto k = counts.indptr[i]; k < counts.indptr[i + 1]; ++k) {
          holed.indices.push_back(counts.indices[k]);
          holed.data.push_back(counts.data[k]);
          t += counts.data[k];
        }
      holed.indptr.push_back(static_cast<std::int64_t>(holed.indices.size()));
      if (t > 0) totals.push_back(t);
    }
    QCOMPARE(totals.size(), std::size_t{298});
    std::sort(totals.begin(), totals.end());
    const double want = (totals[148] + totals[149]) / 2;
    QVERIFY(totals[148] != totals[149]);  // so the upper or lower middle alone would differ
    write(holed);
    PipelineParams p;
    p.update_from_json(nlohmann::json::parse(
        R"({"qc": {"min_genes": 0, "max_genes": 0, "max_pct_mito": 0, "min_cells": 0},
            "normalize": {"target_sum": null}, "hvg": {"n_top_genes": 100},
            "pca": {"n_comps": 5}, "markers": false})"));
    auto backend = make_cpu_backend();
    Progress quiet;
    {
      io::Store store = io::open_store(in);
      const PipelineResult r = run_pipeline(store, p, *backend, quiet);
      QCOMPARE(r.kept_cells.size(), std::size_t{300});
      QCOMPARE(r.target_sum, want);
      QCOMPARE(report_json(r, p)["target_sum"].get<double>(), want);
      for (float v : r.x_pca.values) QVERIFY(std::isfinite(v));
    }
    CsrMatrix empty = counts;
    empty.indices.clear();
    empty.data.clear();
    empty.indptr.assign(counts.n_rows + 1, 0);
    write(empty);
    io::Store store = io::open_store(in);
    const QString e = test::error_message([&] { run_pipeline(store, p, *backend, quiet); });
    QVERIFY2(e.contains("normalize.target_sum") && e.contains("median.h5ad"), qPrintable(e));
  }

  // The input's layers travel into the result (zarr here), restricted to the kept cells and
  // genes, values unchanged.
  void resultCarriesInputLayers() {
    QTemporaryDir dir;
    const std::string in = dir.filePath("with-layer.h5ad").toStdString();
    SynthOptions so = synth_of(500, 600);
    const CsrMatrix counts = SynthGenerator(so).rows(0, so.n_cells);
    {
      io::AnnDataWriter w(in);
      auto once = [&](bool& sent, CsrMatrix& chunk) {
        if (sent) return false;
        chunk = counts;
        sent = true;
        return true;
      };
      bool x_sent = false, layer_sent = false;
      w.write_X(so.n_cells, so.n_genes, [&](CsrMatrix& c) { return once(x_sent, c); });
      w.write_layer("counts", so.n_cells, so.n_genes,
                    [&](CsrMatrix& c) { return once(layer_sent, c); });
      DataFrame obs, var;
      for (int i = 0; i < so.n_cells; ++i) obs.index.push_back(QString("c%1").arg(i).toStdString());
      for (int g = 0; g < so.n_genes; ++g) var.index.push_back(QString("g%1").arg(g).toStdString());
      w.write_obs(obs);
      w.write_var(var);
      w.commit();
    }
    io::Store store = io::open_store(in);
    QCOMPARE(store.layer_keys, std::vector<std::string>{"counts"});
    PipelineParams p;
    p.min_genes = 10;
    p.hvg.n_top_genes = 200;
    p.markers = false;
    auto backend = make_cpu_backend();
    Progress quiet;
    const PipelineResult r = run_pipeline(store, p, *backend, quiet);
    QVERIFY(r.kept_cells.size() > 100);
    const std::string out = dir.filePath("result.zarr").toStdString();
    write_result_h5ad(store, r, p, *backend, out, quiet);
    io::Store result = io::open_store(out);
    QCOMPARE(result.layer_keys, std::vector<std::string>{"counts"});
    auto layer =
        io::open_matrix(result.root->require("layers/counts"), result.n_obs(), result.n_vars(), {});
    const CsrMatrix got = layer->read_rows(0, result.n_obs());
    const auto map = kept_gene_map(r);
    const CsrMatrix want = kept_chunk(counts, 0, r, map);
    QCOMPARE(got.indptr, want.indptr);
    QCOMPARE(got.indices, want.indices);
    QCOMPARE(got.data, want.data);
  }

  // raw, varm, obsp and uns of an input written by anndata reach the result (h5ad -> zarr and
  // zarr -> h5ad); anndata checks the result against the input.
  void resultCarriesRawVarmObspUns() {
    QTemporaryDir dir;
    SynthOptions so = synth_of(400, 500);
    const QString plain = QString::fromStdString(synth_store(dir, so));
    const QString script = ORRERY_SOURCE_DIR "/tests/compute/anndata_extras.py";
    for (const auto& [in, out] : {std::pair<QString, QString>{"in.h5ad", "out.zarr"},
                                  std::pair<QString, QString>{"in.zarr", "out.h5ad"}}) {
      const QString input = dir.filePath(in), result = dir.filePath(out);
      RUN_PYTHON_OR_SKIP("python3-anndata", script, "make", plain, input);
      io::Store store = io::open_store(input.toStdString());
      QVERIFY(store.has_raw);
      const std::string info = io::describe_store(store, input.toStdString());
      QVERIFY2(info.find("bool (nullable)") != std::string::npos &&
                   info.find("int (nullable)") != std::string::npos,
               info.c_str());
      PipelineParams p;
      p.min_genes = 250;  // ~80% of the synthetic cells
      p.min_cells = 5;
      p.hvg.n_top_genes = 200;
      p.markers = false;
      auto backend = make_cpu_backend();
      Progress quiet;
      const PipelineResult r = run_pipeline(store, p, *backend, quiet);
      QVERIFY(r.kept_cells.size() < static_cast<std::size_t>(so.n_cells));  // subsets matter
      QVERIFY(r.kept_genes.size() < static_cast<std::size_t>(so.n_genes));
      write_result_h5ad(store, r, p, *backend, result.toStdString(), quiet);
      RUN_PYTHON_OR_SKIP("python3-anndata", script, "check", input, result);
    }
  }

  // exclude_highly_expressed: a flagged gene leaves the cell totals but is scaled like the rest.
  void normalizeExcludingHighlyExpressed() {
    CsrMatrix m;
    m.n_rows = 2;
    m.n_cols = 4;
    m.indptr = {0, 4, 6};
    m.indices = {0, 1, 2, 3, 1, 3};
    m.data = {100.0f, 1.0f, 2.0f, 1.0f, 3.0f, 1.0f};
    const std::vector<char> excluded{1, 0, 0, 0};
    make_cpu_backend()->normalize_log1p(m, 1e4, &excluded);
    // Row 0's total without gene 0 is 4; row 1 has no excluded gene (total 4).
    const double want[6] = {100 * 2500.0, 2500.0, 5000.0, 2500.0, 7500.0, 2500.0};
    for (int k = 0; k < 6; ++k)
      QVERIFY2(std::fabs(m.data[k] - std::log1p(want[k])) < 1e-5 * std::log1p(want[k]),
               qPrintable(QString("entry %1: %2").arg(k).arg(m.data[k])));
  }

  // The pipeline flags exactly the genes above max_fraction of some kept cell's total over the
  // kept genes (checked by brute force here).
  void pipelineFlagsHighlyExpressedGenes() {
    QTemporaryDir dir;
    SynthOptions so = synth_of(600, 800);
    const std::string path = synth_store(dir, so);
    Progress quiet;
    PipelineParams p;
    p.exclude_highly_expressed = true;
    p.max_fraction = 0.01;
    p.min_genes = 10;
    p.hvg.n_top_genes = 300;
    p.markers = false;
    io::Store store = io::open_store(path);
    auto backend = make_cpu_backend();
    PipelineResult r = run_pipeline(store, p, *backend, quiet);
    std::vector<std::int32_t> map(r.n_genes_total, -1);
    for (std::size_t i = 0; i < r.kept_genes.size(); ++i)
      map[r.kept_genes[i]] = static_cast<int>(i);
    std::vector<char> want(r.kept_genes.size(), 0);
    CsrMatrix all = store.X->read_rows(0, store.n_obs());
    for (auto c : r.kept_cells) {
      double t = 0;
      for (auto k = all.indptr[c]; k < all.indptr[c + 1]; ++k)
        if (map[all.indices[k]] >= 0) t += all.data[k];
      for (auto k = all.indptr[c]; k < all.indptr[c + 1]; ++k)
        if (map[all.indices[k]] >= 0 && all.data[k] > 0.01 * t) want[map[all.indices[k]]] = 1;
    }
    QCOMPARE(r.excluded_genes, want);
    const auto n_excluded = std::count(want.begin(), want.end(), 1);
    qInfo("exclude_highly_expressed (max_fraction 0.01): %d of %d genes",
          static_cast<int>(n_excluded), static_cast<int>(want.size()));
    QVERIFY(n_excluded > 0 && n_excluded < static_cast<long>(want.size()));
  }

  // loess (surface direct) reproduces a quadratic exactly (degree 2) and matches a brute-force
  // evaluation (sort all distances, take the span's nearest, solve the weighted normal
  // equations) on noisy data.
  void loessFits() {
    std::vector<double> x, y, noisy;
    Rng rng(5);
    for (int i = 0; i < 400; ++i) {
      const double v = 8.0 * rng.uniform() - 4.0;
      x.push_back(v);
      y.push_back(1.0 + 2.0 * v - 0.5 * v * v);
      noisy.push_back(std::sin(v) + 0.3 * (rng.uniform() - 0.5));
    }
    const LoessOptions direct{.span = 0.3, .degree = 2, .surface = LoessSurface::direct};
    const auto exact = loess_fit(x, y, direct);
    for (std::size_t i = 0; i < x.size(); ++i) QVERIFY(std::fabs(exact[i] - y[i]) < 1e-8);
    const auto fit = loess_fit(x, noisy, direct);
    const std::size_t q = static_cast<std::size_t>(0.3 * x.size());
    double worst = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      std::vector<std::pair<double, std::size_t>> d;
      for (std::size_t j = 0; j < x.size(); ++j) d.push_back({std::fabs(x[j] - x[i]), j});
      std::sort(d.begin(), d.end());
      const double dmax = d[q - 1].first;
      Eigen::Matrix3d a = Eigen::Matrix3d::Zero();
      Eigen::Vector3d b = Eigen::Vector3d::Zero();
      for (std::size_t t = 0; t < q; ++t) {
        const double u = d[t].first / dmax, w = u >= 1 ? 0 : std::pow(1 - u * u * u, 3);
        const double dx = x[d[t].second] - x[i];
        const Eigen::Vector3d p(1, dx, dx * dx);
        a += w * p * p.transpose();
        b += w * p * noisy[d[t].second];
      }
      worst = std::max(worst, std::fabs(a.ldlt().solve(b)[0] - fit[i]));
    }
    qInfo("loess vs brute force: max difference %.3g", worst);
    QVERIFY(worst < 1e-9);
  }

  // surface = interpolate (skmisc's default, so scanpy's seurat_v3) against the published
  // results of Cleveland, Grosse and Shyu's loess on its example data (NOx against the
  // equivalence ratio E of an ethanol engine, 22 runs), span 2/3 and 1, degree 2: the fitted
  // values as cloess's gas example prints them (6 decimals; skmisc's and R's tests check the
  // same numbers).
  void loessMatchesClevelandGas() {
    const std::vector<double> nox = {4.818, 2.849, 3.275, 4.691, 4.255, 5.064, 2.118, 4.602,
                                     2.286, 0.970, 3.965, 5.344, 3.834, 1.990, 5.199, 5.283,
                                     3.752, 0.537, 1.640, 5.055, 4.937, 1.561};
    const std::vector<double> e = {0.831, 1.045, 1.021, 0.970, 0.825, 0.891, 0.710, 0.801,
                                   1.074, 1.148, 1.000, 0.928, 0.767, 0.701, 0.807, 0.902,
                                   0.997, 1.224, 1.089, 0.973, 0.980, 0.665};
    const std::vector<double> span_two_thirds = {
        4.883437, 2.927639, 3.572746, 4.710510, 4.815363, 5.196193, 2.512832, 4.474939,
        2.149797, 0.990044, 4.089353, 5.303627, 3.864174, 2.267121, 4.575636, 5.240293,
        4.154036, 0.523682, 1.853026, 4.659184, 4.521148, 1.196414};
    const std::vector<double> span_one = {
        4.892690, 3.362733,  3.728575, 4.489023, 4.831715, 5.177112, 2.535887, 4.530370,
        2.873000, 1.453502,  4.059136, 5.052650, 3.943568, 2.265232, 4.614320, 5.163913,
        4.107184, -0.276342, 2.604373, 4.445040, 4.351615, 1.051719};
    for (const auto& [span, want] : {std::pair{2.0 / 3.0, span_two_thirds}, {1.0, span_one}}) {
      const auto fit = loess_fit(e, nox, {.span = span, .degree = 2});
      double worst = 0;
      for (std::size_t i = 0; i < want.size(); ++i)
        worst = std::max(worst, std::fabs(fit[i] - want[i]));
      qInfo("loess span %.3f vs cloess: max difference %.2e", span, worst);
      QVERIFY2(worst < 1e-6, qPrintable(QString("span %1: %2").arg(span).arg(worst)));
    }
    // The direct surface is a different curve on the same data (not the reference's).
    const auto direct = loess_fit(e, nox, {.span = 2.0 / 3.0, .surface = LoessSurface::direct});
    double apart = 0;
    for (std::size_t i = 0; i < e.size(); ++i)
      apart = std::max(apart, std::fabs(direct[i] - span_two_thirds[i]));
    QVERIFY(apart > 1e-4);
  }

  // The interpolation grid: vertices at the data's bounds (widened by 0.5 % of the range) and at
  // split values that are data values; without ties no cell holds more than n * span * cell
  // points. A quadratic is reproduced exactly, and on noisy data with heavy ties (as log mean
  // expression has) the interpolated fit stays near the direct one.
  void loessInterpolationGrid() {
    Rng rng(11);
    std::vector<double> x, quad, noisy, continuous;
    for (int i = 0; i < 3000; ++i) {
      continuous.push_back(3 * rng.uniform());
      // a third of the points on 12 tied values
      x.push_back(i % 3 == 0 ? std::floor(12 * rng.uniform()) / 4 : continuous.back());
      quad.push_back(0.5 - x.back() + 0.25 * x.back() * x.back());
      noisy.push_back(std::cos(2 * x.back()) + 0.2 * (rng.uniform() - 0.5));
    }
    const LoessOptions o{.span = 0.3, .degree = 2};
    for (const auto* data : {&continuous, &x}) {
      const auto vertices = loess_vertices(*data, o);
      std::vector<double> sorted = *data;
      std::sort(sorted.begin(), sorted.end());
      const double mu = 0.005 * (sorted.back() - sorted.front());
      QCOMPARE(vertices.front(), sorted.front() - mu);
      QCOMPARE(vertices.back(), sorted.back() + mu);
      for (std::size_t v = 1; v + 1 < vertices.size(); ++v) {
        QVERIFY(std::binary_search(sorted.begin(), sorted.end(), vertices[v]));
        QVERIFY(vertices[v] > vertices[v - 1]);
      }
      if (data != &continuous) continue;
      // floor(3000 * 0.3 * 0.2) = 180: a cell (v_c, v_c+1] with more is split at its median.
      for (std::size_t c = 0; c + 1 < vertices.size(); ++c) {
        const auto in_cell = std::upper_bound(sorted.begin(), sorted.end(), vertices[c + 1]) -
                             std::upper_bound(sorted.begin(), sorted.end(), vertices[c]);
        QVERIFY2(in_cell <= 180 && in_cell >= 90,
                 qPrintable(QString("cell %1 holds %2 points").arg(c).arg(in_cell)));
      }
    }
    const auto exact = loess_fit(x, quad, o);
    for (std::size_t i = 0; i < x.size(); ++i) QVERIFY(std::fabs(exact[i] - quad[i]) < 1e-9);
    const auto fit = loess_fit(x, noisy, o);
    auto direct_o = o;
    direct_o.surface = LoessSurface::direct;
    const auto direct = loess_fit(x, noisy, direct_o);
    double worst = 0;
    for (std::size_t i = 0; i < x.size(); ++i)
      worst = std::max(worst, std::fabs(fit[i] - direct[i]));
    qInfo("loess interpolate vs direct on 3000 noisy points: max difference %.3g (%zu vertices)",
          worst, loess_vertices(x, o).size());
    QVERIFY(worst > 0 && worst < 0.02);
  }

  // Bad arguments name the problem instead of fitting nonsense.
  void loessRejectsBadInput() {
    const std::vector<double> x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    auto message = [&](const std::vector<double>& xs, const std::vector<double>& ys,
                       LoessOptions o) {
      return test::error_message([&] { loess_fit(xs, ys, o); });
    };
    QVERIFY(message(x, x, {.span = 0.3}).contains("needs at least 4"));
    QVERIFY(message(x, x, {.span = 0}).contains("span"));
    QVERIFY(message(x, {1, 2}, {}).contains("differ in length"));
    std::vector<double> bad = x;
    bad[3] = std::nan("");
    QVERIFY(message(x, bad, {.span = 0.8}).contains("y[3] is not finite"));
    QCOMPARE(loess_fit(x, x, {.span = 0.5}).size(), x.size());
  }

  // seurat_v3's standardised variances equal a dense recomputation from the returned clip values,
  // and the selection is the top n of them.
  void seuratV3MatchesDenseFormula() {
    SynthOptions so = synth_of(500, 400);
    SynthGenerator gen(so);
    CsrMatrix m = gen.rows(0, so.n_cells);
    std::vector<double> sum(400, 0), sumsq(400, 0);
    for (std::int64_t k = 0; k < m.nnz(); ++k) {
      sum[m.indices[k]] += m.data[k];
      sumsq[m.indices[k]] += static_cast<double>(m.data[k]) * m.data[k];
    }
    std::vector<double> mean(400), var(400);
    for (int g = 0; g < 400; ++g) {
      mean[g] = sum[g] / 500;
      var[g] = std::max(0.0, (sumsq[g] - 500 * mean[g] * mean[g]) / 499);
    }
    const SeuratV3Clip clip = seurat_v3_clip(mean, var, 500, 0.3);
    std::vector<double> cs(400, 0), css(400, 0);
    for (std::int64_t k = 0; k < m.nnz(); ++k) {
      const double v = std::min<double>(m.data[k], clip.clip[m.indices[k]]);
      cs[m.indices[k]] += v;
      css[m.indices[k]] += v * v;
    }
    HvgOptions o;
    o.flavor = "seurat_v3";
    o.n_top_genes = 50;
    const HvgResult r = seurat_v3_select(mean, var, clip, cs, css, 500, o);
    // Dense: standardise every cell's clipped value (zeros included), variance with ddof = 1.
    std::vector<std::vector<float>> dense(400, std::vector<float>(500, 0.0f));
    for (std::int64_t row = 0; row < 500; ++row)
      for (auto k = m.indptr[row]; k < m.indptr[row + 1]; ++k) dense[m.indices[k]][row] = m.data[k];
    for (int g = 0; g < 400; ++g) {
      if (clip.reg_std[g] <= 0) continue;
      double acc = 0;
      for (float v : dense[g]) {
        const double z = (std::min<double>(v, clip.clip[g]) - mean[g]) / clip.reg_std[g];
        acc += z * z;
      }
      QVERIFY2(std::fabs(acc / 499 - r.variances_norm[g]) < 1e-9 * std::max(1.0, acc / 499),
               qPrintable(QString("gene %1").arg(g)));
    }
    QCOMPARE(r.n_selected(), 50);
    double lowest_in = 1e300, highest_out = -1e300;
    for (int g = 0; g < 400; ++g)
      (r.highly_variable[g] ? lowest_in : highest_out) =
          r.highly_variable[g] ? std::min(lowest_in, r.variances_norm[g])
                               : std::max(highest_out, r.variances_norm[g]);
    QVERIFY(lowest_in >= highest_out);
  }

  void abParams() {
    auto [a1, b1] = find_ab_params(1.0, 0.1);
    QVERIFY2(std::fabs(a1 - 1.5769) < 2e-3 && std::fabs(b1 - 0.8951) < 2e-3,
             qPrintable(QString("%1 %2").arg(a1).arg(b1)));
    auto [a5, b5] = find_ab_params(1.0, 0.5);
    QVERIFY2(std::fabs(a5 - 0.5830) < 2e-3 && std::fabs(b5 - 1.3342) < 2e-3,
             qPrintable(QString("%1 %2").arg(a5).arg(b5)));
    QVERIFY_THROWS_EXCEPTION(orrery::Error, find_ab_params(1.0, 2.0));
  }

  void fuzzyUnionIsSymmetric() {
    // Four points on a line: 0 -- 1 -- 2 ------ 3, k = 3 (self + 2).
    DenseMatrix x(4, 1);
    x.at(0, 0) = 0;
    x.at(1, 0) = 1;
    x.at(2, 0) = 2;
    x.at(3, 0) = 5;
    Progress p;
    KnnResult knn = exact_knn(x, {.n_neighbors = 3}, p);
    QCOMPARE(knn.indices[0], 0);
    QCOMPARE(knn.indices[1], 1);
    QCOMPARE(knn.distances[1], 1.0f);
    FuzzyGraph g = fuzzy_simplicial_set(knn);
    const auto& c = g.connectivities;
    auto weight = [&](int i, int j) {
      for (auto k = c.indptr[i]; k < c.indptr[i + 1]; ++k)
        if (c.indices[k] == j) return c.data[k];
      return 0.0f;
    };
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) QCOMPARE(weight(i, j), weight(j, i));
    // Nearest neighbours (distance == rho) have membership 1.
    QCOMPARE(weight(0, 1), 1.0f);
    QCOMPARE(weight(2, 3), 1.0f);  // 3's nearest is 2
    // 0's memberships are 1 (to 1, at rho) and m (to 2) with 1 + m = log2(3), umap-learn's
    // target; 2 sees 0 the same way, so the union is m + m - m^2.
    const double m = std::log2(3.0) - 1.0;
    QVERIFY2(std::fabs(weight(0, 2) - (2 * m - m * m)) < 1e-4,
             qPrintable(QString::number(weight(0, 2))));
    QCOMPARE(weight(0, 3), 0.0f);
    // Distances exclude self.
    QCOMPARE(g.distances.indptr[1] - g.distances.indptr[0], 2);
  }

  // The fuzzy graph of a kNN graph with repeated neighbours, missing ones (-1) and tied
  // distances against a dense n x n union of the same memberships; each row's memberships sum
  // to log2(k) (umap-learn's bisection target) unless its sigma was floored; the same bits on
  // one thread and on two.
  void fuzzyGraphMatchesDenseUnion() {
    const int n = 400, k = 12;
    Rng rng(21);
    DenseMatrix x(n, 3);
    for (int i = 0; i < n; ++i)
      for (int d = 0; d < 3; ++d)  // a coarse grid: tied distances, a few identical points
        x.at(i, d) = static_cast<float>(std::floor(12 * rng.uniform()) / 4);
    Progress p;
    KnnResult knn = exact_knn(x, {.n_neighbors = k}, p);
    for (int i = 0; i < n; i += 7) knn.indices[i * k + 3] = knn.indices[i * k + 4];
    for (int i = 0; i < n; i += 11) knn.indices[i * k + k - 1] = -1;
    const std::vector<float> w = fuzzy_memberships(knn);
    const FuzzyGraph g = fuzzy_union(knn, w, 1.0);
    std::vector<double> dense(n * n, 0.0);
    for (int i = 0; i < n; ++i)
      for (int c = k - 1; c >= 0; --c) {  // a repeated neighbour keeps its smallest membership
        const auto j = knn.indices[i * k + c];
        if (j < 0 || j == i) continue;
        double& slot = dense[i * n + j];
        slot = slot == 0.0 ? w[i * k + c] : std::min<double>(slot, w[i * k + c]);
      }
    std::int64_t entries = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        const double a = dense[i * n + j], b = dense[j * n + i];
        const auto want = static_cast<float>(a + b - a * b);
        float got = 0.0f;
        for (auto e = g.connectivities.indptr[i]; e < g.connectivities.indptr[i + 1]; ++e)
          if (g.connectivities.indices[e] == j) got = g.connectivities.data[e];
        QCOMPARE(got, want);
        entries += want != 0.0f;
      }
    QCOMPARE(g.connectivities.nnz(), entries);
    int checked = 0;
    for (int i = 0; i < n; ++i) {
      if (knn.indices[i * k + k - 1] < 0) continue;
      bool repeated = false;
      for (int c = 2; c < k; ++c) repeated |= knn.indices[i * k + c] == knn.indices[i * k + c - 1];
      if (repeated) continue;
      double sum = 0;
      for (int c = 1; c < k; ++c) sum += w[i * k + c];
      // rows whose sigma was floored sum higher; the rest hit the target to the bisection's 1e-5
      if (sum < std::log2(double(k)) + 1e-3) {
        QVERIFY2(std::fabs(sum - std::log2(double(k))) < 1e-4, qPrintable(QString::number(sum)));
        ++checked;
      }
    }
    QVERIFY(checked > n / 2);
    for (int threads : {1, 4}) {  // an explicit arena: 4 threads even on a smaller runner
      tbb::task_arena arena(threads);
      FuzzyGraph again;
      arena.execute([&] { again = fuzzy_union(knn, fuzzy_memberships(knn), 1.0); });
      QCOMPARE(again.connectivities.indices, g.connectivities.indices);
      QCOMPARE(again.connectivities.data, g.connectivities.data);
      QCOMPARE(again.distances.data, g.distances.data);
    }
  }

  // At the scale the issue sets (200k cells, where the pipeline's auto method is NN-descent):
  // recall >= 0.95 at k = 15 on an embedding shaped like a PCA of cells (50 populations, 40
  // dimensions of decreasing spread), measured against brute force for 800 sampled cells.
  void nnDescentRecallAt200k() {
    const std::int64_t n = 200000;
    const int dims = 40, populations = 50, k = 15;
    Rng rng(17);
    std::vector<double> centre(populations * dims);
    for (int c = 0; c < populations; ++c)
      for (int d = 0; d < dims; ++d)
        centre[c * dims + d] = 12.0 * (rng.uniform() - 0.5) / (1 + 0.2 * d);
    DenseMatrix x(n, dims);
    for (std::int64_t i = 0; i < n; ++i)
      for (int d = 0; d < dims; ++d)
        x.at(i, d) =
            static_cast<float>(centre[(i % populations) * dims + d] + rng.normal() / (1 + 0.1 * d));
    Progress p;
    KnnOptions o{.n_neighbors = k};
    QCOMPARE(o.method, std::string("auto"));
    QVERIFY(n > o.exact_max_cells);  // what the pipeline would run here
    QElapsedTimer clock;
    clock.start();
    const KnnResult approx = nn_descent_knn(x, o, p);
    const double seconds = clock.elapsed() / 1000.0;
    std::atomic<std::int64_t> found = 0, wanted = 0;
    tbb::parallel_for(std::int64_t{0}, std::int64_t{800}, [&](std::int64_t s) {
      const std::int64_t q = s * (n / 800);
      std::vector<std::pair<double, std::int64_t>> d(n);
      for (std::int64_t j = 0; j < n; ++j) {
        double s2 = 0;
        for (int c = 0; c < dims; ++c) {
          const double diff = double(x.at(q, c)) - x.at(j, c);
          s2 += diff * diff;
        }
        d[j] = {s2, j};
      }
      std::partial_sort(d.begin(), d.begin() + k, d.end());
      for (int t = 1; t < k; ++t) {
        ++wanted;
        for (int u = 1; u < k; ++u) found += approx.indices[q * k + u] == d[t].second;
      }
    });
    const double recall = double(found) / double(wanted);
    qInfo("NN-descent at 200k x 40, k = 15: recall %.4f on 800 cells, %.1f s", recall, seconds);
    QVERIFY(recall >= 0.95);
  }

  // metric = cosine (umap-learn's 1 - cos): every cell's exact list against brute force, and
  // NN-descent's recall on the same points.
  void cosineKnnMatchesBruteForce() {
    const int n = 1500, dims = 12, k = 10;
    DenseMatrix x = blobs(n, dims, 6, 8.0);
    Progress p;
    KnnOptions o{.n_neighbors = k, .metric = "cosine"};
    const KnnResult exact = exact_knn(x, o, p);
    std::vector<double> norm(n, 0);
    for (int i = 0; i < n; ++i)
      for (int c = 0; c < dims; ++c) norm[i] += double(x.at(i, c)) * x.at(i, c);
    double worst = 0;
    for (int i = 0; i < n; ++i) {
      std::vector<std::pair<double, int>> d;
      for (int j = 0; j < n; ++j) {
        double dot = 0;
        for (int c = 0; c < dims; ++c) dot += double(x.at(i, c)) * x.at(j, c);
        d.push_back({j == i ? -1.0 : 1.0 - dot / std::sqrt(norm[i] * norm[j]), j});
      }
      std::partial_sort(d.begin(), d.begin() + k + 1, d.end());
      QCOMPARE(exact.indices[i * k], std::int64_t{i});
      for (int t = 1; t < k; ++t) {
        worst = std::max(worst, std::fabs(exact.distances[i * k + t] - d[t].first));
        // the same neighbour, unless the brute force has a near-tie at this place
        if (exact.indices[i * k + t] != d[t].second)
          QVERIFY(std::fabs(d[t].first - d[t + 1].first) < 1e-6 ||
                  std::fabs(d[t].first - d[t - 1].first) < 1e-6);
      }
    }
    qInfo("cosine kNN: max distance error %.2e", worst);
    QVERIFY(worst < 1e-5);
    const double recall = knn_recall(nn_descent_knn(x, o, p), exact);
    qInfo("cosine NN-descent recall %.4f", recall);
    QVERIFY(recall >= 0.95);
  }

  // exact_knn meets the points a tile of 8192 at a time for blocks of 512 rows: across both
  // boundaries (9000 points), with many exact ties (small integer coordinates, so every squared
  // distance is exact both ways), each row's list equals the brute force's k smallest
  // (squared distance, index) pairs, the row itself first, and so tie-broken by index.
  void exactKnnAcrossTilesBreaksTiesByIndex() {
    const std::int64_t n = 9000;
    const int dims = 4, k = 12;
    DenseMatrix x(n, dims);
    std::uint64_t state = 12345;
    for (auto& v : x.values) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      v = static_cast<float>((state >> 33) % 5);  // 625 distinct points, ~14 copies each
    }
    Progress p;
    const KnnResult r = exact_knn(x, {.n_neighbors = k, .method = "exact"}, p);
    QCOMPARE(r.k, k);
    std::vector<std::pair<double, std::int64_t>> d(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; i += 7) {
      for (std::int64_t j = 0; j < n; ++j) {
        double d2 = 0;
        for (int c = 0; c < dims; ++c) {
          const double diff = double(x.at(i, c)) - x.at(j, c);
          d2 += diff * diff;
        }
        d[static_cast<std::size_t>(j)] = {j == i ? -1.0 : d2, j};
      }
      std::partial_sort(d.begin(), d.begin() + k, d.end());
      for (int t = 0; t < k; ++t) {
        QCOMPARE(r.indices[i * k + t], d[static_cast<std::size_t>(t)].second);
        QCOMPARE(
            r.distances[i * k + t],
            static_cast<float>(std::sqrt(std::max(0.0, d[static_cast<std::size_t>(t)].first))));
      }
    }
  }

  void nnDescentRecall() {
    const int n = 6000;
    DenseMatrix x = blobs(n, 30, 20, 6.0);
    Progress p;
    KnnOptions o{.n_neighbors = 15};
    KnnResult exact = exact_knn(x, o, p);
    KnnResult approx = nn_descent_knn(x, o, p);
    const double recall = knn_recall(approx, exact);
    qInfo("NN-descent recall at k=15 on 6000 points: %.4f", recall);
    QVERIFY(recall >= 0.95);
    QCOMPARE(knn_recall(exact, exact), 1.0);
    for (std::int64_t i = 0; i < n; ++i) {
      QCOMPARE(approx.indices[i * 15], i);
      for (int c = 2; c < 15; ++c)
        QVERIFY(approx.distances[i * 15 + c] >= approx.distances[i * 15 + c - 1]);
    }
    // Seeded: the same graph again, also in arenas of 1 and 5 threads (the heap updates are
    // regrouped into as many target ranges as the arena has threads).
    KnnResult again = nn_descent_knn(x, o, p);
    QCOMPARE(again.indices, approx.indices);
    for (int threads : {1, 5}) {
      tbb::task_arena arena(threads);
      KnnResult other;
      arena.execute([&] { other = nn_descent_knn(x, o, p); });
      QCOMPARE(other.indices, approx.indices);
      QCOMPARE(other.distances, approx.distances);
    }
    // Past 65536 points the reverse lists are regrouped in several windows of sources too.
    const DenseMatrix many = blobs(70000, 4, 30, 3.0);
    KnnResult runs[2];
    for (int threads : {1, 3}) {
      tbb::task_arena arena(threads);
      arena.execute([&] { runs[threads / 2] = nn_descent_knn(many, o, p); });
    }
    QCOMPARE(runs[1].indices, runs[0].indices);
    QCOMPARE(runs[1].distances, runs[0].distances);
  }

  // Many identical points (cells with the same PCA coordinates): the random projection trees cut
  // them in halves rather than by a plane, and each copy's neighbours are other copies, at
  // distance 0; the other points keep their recall.
  void nnDescentOnDuplicatePoints() {
    const int n = 6000, copies = 4000, k = 15;
    DenseMatrix x = blobs(n, 10, 8, 6.0);
    for (int i = 1; i < copies; ++i)
      for (int d = 0; d < 10; ++d) x.at(i, d) = x.at(0, d);
    Progress p;
    const KnnOptions o{.n_neighbors = k};
    const KnnResult approx = nn_descent_knn(x, o, p);
    for (std::int64_t i = 0; i < n; ++i) {
      QCOMPARE(approx.indices[i * k], i);
      for (int c = 1; c < k; ++c) {
        const auto j = approx.indices[i * k + c];
        QVERIFY(j >= 0 && j < n && j != i);
        if (i < copies) {
          QVERIFY2(j < copies, qPrintable(QString("%1 -> %2").arg(i).arg(j)));
          QCOMPARE(approx.distances[i * k + c], 0.0f);
        }
      }
    }
    const KnnResult exact = exact_knn(x, o, p);
    // Recall over the other points only (the copies' lists are any 14 of 3999 equals).
    std::int64_t hit = 0, total = 0;
    for (std::int64_t i = copies; i < n; ++i) {
      std::set<std::int64_t> truth(exact.indices.begin() + i * k + 1,
                                   exact.indices.begin() + (i + 1) * k);
      for (int c = 1; c < k; ++c) hit += truth.count(approx.indices[i * k + c]);
      total += k - 1;
    }
    qInfo("NN-descent with 4000 copies of one point: recall %.4f on the other 2000",
          double(hit) / total);
    QVERIFY(double(hit) / total >= 0.95);
  }

  // The layout keeps clusters together: 10 well separated blobs in 20-D, and each point's 10
  // nearest neighbours in the 2-D embedding come from its own blob. The same with 1 and 2
  // threads, byte for byte.
  // The sparse Gram (Z = 1 z0^T + W) against Z built densely, with clipping forced on many
  // entries (max_value 1.5) and a log-data column that is not an HVG; projection likewise.
  void sparseGramEqualsDenseScaledGram() {
    const int n = 300, genes = 40;
    Rng rng(7);
    CsrMatrix x;
    x.n_rows = n;
    x.n_cols = genes;
    for (int r = 0; r < n; ++r) {
      for (int g = 0; g < genes; ++g)
        if (rng.uniform() < 0.3) {
          x.indices.push_back(g);
          x.data.push_back(static_cast<float>(std::log1p(10 * rng.uniform() * (1 + g % 5))));
        }
      x.indptr.push_back(static_cast<std::int64_t>(x.indices.size()));
    }
    ScaledColumns cols{.column = std::vector<std::int32_t>(genes, -1),
                       .mean = {},
                       .inv_std = {},
                       .max_value = 1.5f};
    for (int g = 0; g < genes; g += 2) {  // every second gene is an HVG
      cols.column[g] = cols.width();
      cols.mean.push_back(0.4f + 0.01f * g);
      cols.inv_std.push_back(1.0f / (0.5f + 0.02f * g));
    }
    const int h = cols.width();
    Eigen::MatrixXd z(n, h);
    for (int c = 0; c < h; ++c) z.col(c).setConstant(cols.zero(c));
    int clipped = 0;
    for (int r = 0; r < n; ++r)
      for (auto k = x.indptr[r]; k < x.indptr[r + 1]; ++k)
        if (const int c = cols.column[x.indices[k]]; c >= 0) {
          z(r, c) = scale_value(x.data[k], cols.mean[c], cols.inv_std[c], cols.max_value);
          clipped += z(r, c) == cols.max_value;
        }
    QVERIFY(clipped > 100);
    const Eigen::VectorXd mu = z.colwise().mean().transpose();
    const Eigen::MatrixXd centred = z.rowwise() - mu.transpose();
    const Eigen::MatrixXd want = centred.transpose() * centred / (n - 1);

    GramAccumulator gram(cols);
    CsrMatrix first, second;  // two chunks
    for (auto* part : {&first, &second}) {
      const std::int64_t r0 = part == &first ? 0 : 120, r1 = part == &first ? 120 : n;
      part->n_rows = r1 - r0;
      part->n_cols = genes;
      for (auto r = r0; r < r1; ++r) {
        for (auto k = x.indptr[r]; k < x.indptr[r + 1]; ++k) {
          part->indices.push_back(x.indices[k]);
          part->data.push_back(x.data[k]);
        }
        part->indptr.push_back(static_cast<std::int64_t>(part->indices.size()));
      }
      gram.add(*part);
    }
    QCOMPARE(gram.n_rows(), std::int64_t{n});
    QVERIFY((gram.mean() - mu).cwiseAbs().maxCoeff() < 1e-9);
    const double err = (gram.covariance() - want).cwiseAbs().maxCoeff();
    QVERIFY2(err < 1e-9, qPrintable(QString::number(err)));

    const PcaModel model = pca_from_covariance(gram.covariance(), gram.mean(), 5);
    DenseMatrix out(n, 5);
    project(model, cols, first, out, 0);
    project(model, cols, second, out, 120);
    const Eigen::MatrixXd expect = centred * model.components;
    double perr = 0;
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < 5; ++c) perr = std::max(perr, std::fabs(out.at(r, c) - expect(r, c)));
    QVERIFY2(perr < 1e-5, qPrintable(QString::number(perr)));
  }

  // kept_chunk (rows in parallel) against a plain filter written here: masked rows and genes
  // dropped, genes renumbered, values kept, for a chunk starting at a later store row and an
  // `out` reused from a larger chunk.
  void keptChunkFiltersRowsAndGenes() {
    const CsrMatrix all = SynthGenerator(synth_of(3000, 500)).rows(0, 3000);
    const PipelineResult r = filtered_result(4000, 500, 7, 3);
    const auto map = kept_gene_map(r);
    CsrMatrix out = kept_chunk(all, 0, r, map);  // the larger chunk `out` is reused from
    QVERIFY(out.n_rows > 2000);
    for (const std::int64_t row0 : {std::int64_t{1000}, std::int64_t{0}}) {
      const std::int64_t n = row0 ? 2000 : 3000;
      const CsrMatrix chunk = test::slice_rows(all, 0, n);
      CsrMatrix want;
      want.n_cols = static_cast<std::int64_t>(r.kept_genes.size());
      want.indptr.clear();
      want.indptr.push_back(0);
      for (std::int64_t i = 0; i < n; ++i) {
        if (!r.cell_mask[row0 + i]) continue;
        for (auto k = chunk.indptr[i]; k < chunk.indptr[i + 1]; ++k)
          if (chunk.indices[k] % 3) {
            want.indices.push_back(chunk.indices[k] - chunk.indices[k] / 3 - 1);
            want.data.push_back(chunk.data[k]);
          }
        want.indptr.push_back(static_cast<std::int64_t>(want.indices.size()));
        ++want.n_rows;
      }
      kept_chunk(chunk, row0, r, map, out);
      QCOMPARE(out.n_rows, want.n_rows);
      QCOMPARE(out.n_cols, want.n_cols);
      QCOMPARE(out.indptr, want.indptr);
      QCOMPARE(out.indices, want.indices);
      QCOMPARE(out.data, want.data);
    }
  }

  // PCA's narrow chunks: the HVG columns of the kept counts and the rest of each cell's total.
  // Normalised, their HVG values are those of the kept chunk's, bit for bit, with genes left out
  // of the totals among the HVGs and among the others.
  void hvgChunkKeepsTheTotals() {
    const CsrMatrix all = SynthGenerator(synth_of(1500, 400)).rows(0, 1500);
    PipelineResult r = filtered_result(1500, 400, 5, 4);
    const auto n_kept = static_cast<std::int32_t>(r.kept_genes.size());
    for (std::int32_t k = 0; k < n_kept; k += 3) r.hvg_genes.push_back(k);
    r.excluded_genes.assign(static_cast<std::size_t>(n_kept), 0);
    for (std::int32_t k = 0; k < n_kept; k += 7) r.excluded_genes[k] = 1;  // HVGs and others
    const LogNormalize kept_normalize{
        .apply = true, .target_sum = 1e4, .excluded = &r.excluded_genes};
    const HvgColumns narrow = hvg_columns(r, true);
    const auto h = static_cast<std::int32_t>(r.hvg_genes.size());
    QCOMPARE(narrow.width, std::int64_t{h} + 1);
    std::vector<std::int32_t> want_scaled(h + 1, -1);
    std::iota(want_scaled.begin(), want_scaled.begin() + h, 0);
    QCOMPARE(narrow.scaled_column(), want_scaled);
    std::vector<std::int32_t> hvg_of_kept(n_kept, -1);
    for (std::int32_t c = 0; c < h; ++c) hvg_of_kept[r.hvg_genes[c]] = c;

    auto cpu = make_cpu_backend();
    CsrMatrix kept, narrowed;
    const CsrMatrix chunk = test::slice_rows(all, 500, 1500);
    kept_chunk(chunk, 500, r, kept_gene_map(r), kept);
    hvg_chunk(chunk, 500, r, narrow, narrowed);
    QCOMPARE(narrowed.n_rows, kept.n_rows);
    QCOMPARE(narrowed.n_cols, std::int64_t{h} + 1);
    // The rest column: the counts of the kept genes neither HVG nor excluded.
    std::int64_t rows_with_rest = 0;
    for (std::int64_t i = 0; i < kept.n_rows; ++i) {
      double rest = 0;
      for (auto k = kept.indptr[i]; k < kept.indptr[i + 1]; ++k)
        if (hvg_of_kept[kept.indices[k]] < 0 && !r.excluded_genes[kept.indices[k]])
          rest += kept.data[k];
      const auto last = narrowed.indptr[i + 1] - 1;
      const bool has_rest = last >= narrowed.indptr[i] && narrowed.indices[last] == h;
      QCOMPARE(has_rest ? static_cast<double>(narrowed.data[last]) : 0.0, rest);
      rows_with_rest += has_rest;
    }
    QVERIFY(rows_with_rest > kept.n_rows / 2);
    cpu->log_normalize(kept, kept_normalize);
    cpu->log_normalize(narrowed, narrow.normalize(kept_normalize));
    for (std::int64_t i = 0; i < kept.n_rows; ++i) {
      std::vector<std::pair<std::int32_t, float>> want, got;
      for (auto k = kept.indptr[i]; k < kept.indptr[i + 1]; ++k)
        if (const auto c = hvg_of_kept[kept.indices[k]]; c >= 0) want.emplace_back(c, kept.data[k]);
      for (auto k = narrowed.indptr[i]; k < narrowed.indptr[i + 1]; ++k)
        if (narrowed.indices[k] < h) got.emplace_back(narrowed.indices[k], narrowed.data[k]);
      QVERIFY2(got == want, qPrintable(QString("row %1").arg(i)));
    }
    // Log data (no normalisation): no rest column; nothing excluded, no mask.
    r.excluded_genes.clear();
    const HvgColumns plain = hvg_columns(r, false);
    QCOMPARE(plain.width, std::int64_t{h});
    QVERIFY(plain.excluded.empty());
    QCOMPARE(plain.normalize(kept_normalize).excluded, nullptr);
    hvg_chunk(chunk, 500, r, plain, narrowed);
    for (auto c : narrowed.indices) QVERIFY(c < h);
  }

  // PCA's passes after the first read its HVG columns from memory when they fit
  // pca_cache_bytes, and the store again when they do not: the same X_pca either way, for
  // cell_ranger (Gram pass, then projection) and seurat_v3 (scale moments first).
  void pcaReadsFromMemoryWhenItFits() {
    QTemporaryDir dir;
    io::Store store = io::open_store(synth_store(dir, synth_of(900, 500)));
    for (const char* flavor : {"cell_ranger", "seurat_v3"}) {
      PipelineParams p;
      p.update_from_json(nlohmann::json::parse(
          R"({"normalize": {"exclude_highly_expressed": true, "max_fraction": 0.02},
              "hvg": {"n_top_genes": 200}, "markers": false, "umap": {"n_epochs": 5}})"));
      p.hvg.flavor = flavor;
      p.chunk_bytes = 64 << 10;  // several chunks
      class Stages final : public Progress {
       public:
        std::set<std::string> seen;
        std::mutex mutex;
        void report(std::string_view stage, double) override {
          std::lock_guard<std::mutex> lock(mutex);
          seen.emplace(stage);
        }
      } progress;
      auto cpu = make_cpu_backend();
      const PipelineResult cached = run_pipeline(store, p, *cpu, progress);
      QVERIFY(cached.pca_cache_bytes > 0);
      QVERIFY(std::count(cached.excluded_genes.begin(), cached.excluded_genes.end(), 1) > 0);
      QCOMPARE(report_json(cached, p)["pca_cache_mib"].get<double>(),
               static_cast<double>(cached.pca_cache_bytes) / (1 << 20));
      const bool v3 = p.hvg.flavor == "seurat_v3";
      QCOMPARE(progress.seen.count("pca: gram (from memory)"), std::size_t{v3});
      QCOMPARE(progress.seen.count("pca: project (from memory)"), std::size_t{1});
      for (const double mib : {0.0, 0.05}) {  // never, and overflowing after a chunk or two
        PipelineParams q = p;
        q.update_from_json({{"pca_cache_mib", mib}});
        progress.seen.clear();
        const PipelineResult read = run_pipeline(store, q, *cpu, progress);
        QCOMPARE(read.pca_cache_bytes, std::int64_t{0});
        QCOMPARE(progress.seen.count("pca: project (from memory)"), std::size_t{0});
        QCOMPARE(read.x_pca.values, cached.x_pca.values);
      }
    }
  }

  // The HVG pass finds the log data's maximum (exactly: the largest value the later passes
  // normalise to), and the binned markers take it as their bins' edge: the markers of a data
  // maximum found by their own extra pass, with one pass over the store instead of two. Passes
  // counted by the rows the store gives: QC, the highly expressed genes, HVG, PCA (its later
  // passes from memory), markers.
  void pipelineBinsMarkersAtTheLogMaximum() {
    class Counting final : public io::RowChunkReader {
     public:
      explicit Counting(std::unique_ptr<io::RowChunkReader> x) : x_(std::move(x)) {}
      std::int64_t n_rows() const override { return x_->n_rows(); }
      std::int64_t n_cols() const override { return x_->n_cols(); }
      std::int64_t nnz() const override { return x_->nnz(); }
      CsrMatrix read_rows(std::int64_t r0, std::int64_t r1) override {
        rows += r1 - r0;
        return x_->read_rows(r0, r1);
      }
      void read_rows_into(std::int64_t r0, std::int64_t r1, CsrMatrix& out) override {
        rows += r1 - r0;
        x_->read_rows_into(r0, r1, out);
      }
      std::atomic<std::int64_t> rows{0};

     private:
      std::unique_ptr<io::RowChunkReader> x_;
    };
    QTemporaryDir dir;
    io::Store store = io::open_store(synth_store(dir, synth_of(700, 400)));
    auto* counting = new Counting(std::move(store.X));
    store.X.reset(counting);
    const std::int64_t n = store.X->n_rows();
    PipelineParams p;
    p.update_from_json(nlohmann::json::parse(
        R"({"normalize": {"exclude_highly_expressed": true, "max_fraction": 0.02},
            "hvg": {"n_top_genes": 200}, "markers": {"method": "binned", "n_bins": 50},
            "umap": {"n_epochs": 5}})"));
    Progress quiet;
    auto cpu = make_cpu_backend();
    const PipelineResult r = run_pipeline(store, p, *cpu, quiet);
    QCOMPARE(counting->rows.load(), 5 * n);
    float want = 0;
    const ChunkSource lognorm = log_normalized_source(store, r, p, *cpu);
    lognorm([&](const CsrMatrix& c, std::int64_t) {
      for (float v : c.data) want = std::max(want, v);
    });
    QVERIFY(want > 0);
    QCOMPARE(r.log_max, want);
    const auto markers = rank_genes_groups(lognorm, static_cast<std::int64_t>(r.kept_cells.size()),
                                           static_cast<std::int64_t>(r.kept_genes.size()), r.leiden,
                                           r.n_clusters, p.wilcoxon, quiet);
    QCOMPARE(r.markers.size(), markers.size());
    for (std::size_t k = 0; k < markers.size(); ++k)
      QCOMPARE(r.markers[k].scores, markers[k].scores);
    // Exact markers need no maximum (and the HVG pass does not look for one).
    p.wilcoxon.method = "exact";
    QCOMPARE(run_pipeline(store, p, *cpu, quiet).log_max, 0.0f);
    // seurat_v3's HVG passes (two) read counts: no maximum, and the markers find it themselves
    // (two passes); PCA's scale pass reads the store, its Gram pass and projection memory.
    p.wilcoxon.method = "binned";
    p.hvg.flavor = "seurat_v3";
    counting->rows = 0;
    QCOMPARE(run_pipeline(store, p, *cpu, quiet).log_max, 0.0f);
    QCOMPARE(counting->rows.load(), 7 * n);
  }

  // parallel_copy: every byte in place, for sizes below, at and above its piece boundaries.
  void parallelCopyCopiesEveryByte() {
    std::vector<unsigned char> from((std::size_t{21} << 20) + 13);
    Rng rng(3);
    for (auto& b : from) b = static_cast<unsigned char>(rng.next());
    for (const std::size_t n : {std::size_t{0}, std::size_t{1000}, (std::size_t{8} << 20) - 1,
                                std::size_t{8} << 20, from.size()}) {
      std::vector<unsigned char> to(from.size() + 1, 0xAB);
      parallel_copy(to.data(), from.data(), n);
      QVERIFY(std::equal(from.begin(), from.begin() + static_cast<std::ptrdiff_t>(n), to.begin()));
      QCOMPARE(to[n], static_cast<unsigned char>(0xAB));  // nothing beyond
    }
  }

  // The backend's Gram and projection passes and its markers take kept counts and normalise
  // them (excluded genes left out of the totals): the sums, coordinates and scores of
  // normalising first and passing the log data, bit for bit; with apply false they take the log
  // data as it is.
  void backendPassesNormalizeCounts() {
    const CsrMatrix counts = SynthGenerator(synth_of(500, 300)).rows(0, 500);
    std::vector<char> excluded(300, 0);
    for (int g = 0; g < 300; g += 7) excluded[g] = 1;
    ScaledColumns cols;
    cols.column.assign(300, -1);
    for (int g = 1; g < 300; g += 3) {
      cols.column[g] = cols.width();
      cols.mean.push_back(0.2f + 0.001f * g);
      cols.inv_std.push_back(1.5f);
    }
    auto cpu = make_cpu_backend();
    CsrMatrix lognorm = counts;
    cpu->normalize_log1p(lognorm, 5e3, &excluded);
    QVERIFY(lognorm.data != counts.data);
    GramAccumulator want(cols);
    want.add(lognorm);
    const LogNormalize from_counts{.target_sum = 5e3, .excluded = &excluded};
    const LogNormalize as_is{.apply = false};
    for (const LogNormalize& n : {from_counts, as_is}) {
      auto gram = cpu->gram_pass(cols, n);
      CsrMatrix chunk = n.apply ? counts : lognorm;
      gram->add(chunk);
      const GramSums got = gram->finish();
      QCOMPARE(got.n, std::int64_t{500});
      QVERIFY(got.w == want.sums().w);
      QVERIFY(got.ww == want.sums().ww);
    }
    const PcaModel model = pca_from_covariance(want.covariance(), want.mean(), 6);
    DenseMatrix expect(500, 6), got(500, 6);
    project(model, cols, lognorm, expect, 0);
    auto pass = cpu->projection_pass(model, cols, from_counts);
    CsrMatrix chunk = counts;
    pass->add(chunk, got, 0);
    pass->finish();
    QVERIFY(got.values == expect.values);
    // Without the excluded genes the totals differ, and so do the coordinates.
    auto other = cpu->projection_pass(model, cols, LogNormalize{.target_sum = 5e3});
    chunk = counts;
    DenseMatrix without(500, 6);
    other->add(chunk, without, 0);
    QVERIFY(without.values != expect.values);

    std::vector<std::int32_t> labels(500);
    for (int i = 0; i < 500; ++i) labels[i] = i % 3;
    const auto source_of = [](const CsrMatrix& m) -> ChunkSource {
      return [&m](const ChunkVisitor& visit) {
        for (std::int64_t r0 = 0; r0 < m.n_rows; r0 += 170) {
          CsrMatrix c = test::slice_rows(m, r0, std::min(m.n_rows, r0 + 170));
          visit(c, r0);
        }
      };
    };
    Progress quiet;
    WilcoxonOptions wo;
    wo.method = "exact";
    const auto want_markers = rank_genes_groups(source_of(lognorm), 500, 300, labels, 3, wo, quiet);
    for (const LogNormalize& n : {from_counts, as_is}) {
      const auto got_markers = cpu->rank_genes_groups(source_of(n.apply ? counts : lognorm), n, 500,
                                                      300, labels, 3, wo, quiet);
      QCOMPARE(got_markers.size(), want_markers.size());
      for (std::size_t g = 0; g < want_markers.size(); ++g) {
        QVERIFY(got_markers[g].scores == want_markers[g].scores);
        QVERIFY(got_markers[g].logfoldchanges == want_markers[g].logfoldchanges);
      }
    }
    const auto raw_markers = cpu->rank_genes_groups(source_of(counts), as_is, 500, 300, labels, 3,
                                                    wo, quiet);  // counts taken as log data
    QVERIFY(raw_markers[0].logfoldchanges != want_markers[0].logfoldchanges);
  }

  // hvg.batch_key: one batch gives the unbatched answer; with several, the per-batch selections
  // combine as scanpy's (counted per gene, averaged moments, top genes by batches then mean
  // normalised dispersion), and the result carries highly_variable_nbatches/_intersection.
  void hvgBatchKey() {
    for (const char* flavor : {"cell_ranger", "seurat"}) {
      QTemporaryDir dir;
      SynthOptions one;
      one.n_cells = 600;
      one.n_genes = 800;
      one.n_clusters = 1;  // true_cluster has a single category
      io::Store store = io::open_store(synth_store(dir, one));
      PipelineParams p;
      p.min_genes = 10;
      p.hvg.flavor = flavor;
      p.hvg.n_top_genes = 150;
      p.markers = false;
      auto backend = make_cpu_backend();
      Progress quiet;
      const PipelineResult plain = run_pipeline(store, p, *backend, quiet);
      p.hvg.batch_key = "true_cluster";
      const PipelineResult batched = run_pipeline(store, p, *backend, quiet);
      QCOMPARE(batched.hvg_genes, plain.hvg_genes);
      for (std::size_t g = 0; g < plain.hvg.means.size(); ++g) {
        QVERIFY(std::fabs(batched.hvg.means[g] - plain.hvg.means[g]) <= 1e-12);
        QCOMPARE(batched.hvg.n_batches[g], int(plain.hvg.highly_variable[g]));
      }
    }
    // Two batches of hand-made moments; gene 0 is not expressed in batch 1.
    const int n = 60;
    std::vector<std::vector<double>> mean(2, std::vector<double>(n)), var = mean;
    std::vector<std::vector<char>> seen(2, std::vector<char>(n, 1));
    compute::Rng rng(11);
    for (int b = 0; b < 2; ++b)
      for (int g = 0; g < n; ++g) {
        mean[b][g] = 0.05 + 3 * rng.uniform();
        var[b][g] = mean[b][g] * (0.5 + 4 * rng.uniform());
      }
    seen[1][0] = 0;
    mean[1][0] = var[1][0] = 0;
    HvgOptions o{.flavor = "cell_ranger", .n_top_genes = 12};
    const HvgResult r = highly_variable_genes_batched(mean, var, seen, o);
    std::vector<int> count(n, 0);
    std::vector<double> norm_sum(n, 0), mean_sum(n, 0);
    for (int b = 0; b < 2; ++b) {
      std::vector<double> m, v;
      std::vector<int> genes;
      for (int g = 0; g < n; ++g)
        if (seen[b][g]) genes.push_back(g), m.push_back(mean[b][g]), v.push_back(var[b][g]);
      const HvgResult one = highly_variable_genes(m, v, o);
      for (std::size_t i = 0; i < genes.size(); ++i) {
        count[genes[i]] += one.highly_variable[i];
        norm_sum[genes[i]] += one.dispersions_norm[i];
        mean_sum[genes[i]] += one.means[i];
      }
    }
    for (int g = 0; g < n; ++g) {
      QCOMPARE(r.n_batches[g], count[g]);
      QCOMPARE(bool(r.intersection[g]), count[g] == 2);
      QVERIFY(std::fabs(r.dispersions_norm[g] - norm_sum[g] / 2) < 1e-12);  // 0 where unexpressed
      QVERIFY(std::fabs(r.means[g] - mean_sum[g] / 2) < 1e-12);
    }
    QCOMPARE(r.n_selected(), 12);
    // Every selected gene beats every unselected one on (batches, mean normalised dispersion).
    for (int a = 0; a < n; ++a)
      for (int b = 0; b < n; ++b)
        if (r.highly_variable[a] && !r.highly_variable[b])
          QVERIFY(
              r.n_batches[a] > r.n_batches[b] ||
              (r.n_batches[a] == r.n_batches[b] && r.dispersions_norm[a] >= r.dispersions_norm[b]));
    // Through the pipeline with the synthetic clusters as batches, into the written result.
    QTemporaryDir dir;
    SynthOptions two;
    two.n_cells = 600;
    two.n_genes = 800;
    two.n_clusters = 3;
    io::Store store = io::open_store(synth_store(dir, two));
    PipelineParams p;
    p.min_genes = 10;
    p.hvg.n_top_genes = 150;
    p.hvg.batch_key = "true_cluster";
    p.markers = false;
    auto backend = make_cpu_backend();
    Progress quiet;
    const PipelineResult res = run_pipeline(store, p, *backend, quiet);
    QCOMPARE(res.hvg_genes.size(), std::size_t{150});
    QVERIFY(*std::max_element(res.hvg.n_batches.begin(), res.hvg.n_batches.end()) == 3);
    const std::string out = dir.filePath("batched.h5ad").toStdString();
    write_result_h5ad(store, res, p, *backend, out, quiet);
    io::Store written = io::open_store(out);
    const auto& nb =
        std::get<std::vector<std::int64_t>>(written.var.find("highly_variable_nbatches")->values);
    QCOMPARE(std::vector<int>(nb.begin(), nb.end()), res.hvg.n_batches);
    QVERIFY(written.var.find("highly_variable_intersection"));
    // The same batches as text, as numbers, and as a categorical whose categories are listed in
    // another order with an unused one: the same selection and statistics.
    {
      const auto truth = std::get<Categorical>(store.obs.find("true_cluster")->values);
      std::vector<std::string> text;
      std::vector<double> number;
      Categorical shuffled;
      shuffled.categories = {"unused"};
      for (auto c = truth.categories.rbegin(); c != truth.categories.rend(); ++c)
        shuffled.categories.push_back("plate " + *c);
      const auto n_categories = static_cast<std::int32_t>(truth.categories.size());
      for (auto code : truth.codes) {
        text.push_back("plate " + truth.categories[static_cast<std::size_t>(code)]);
        number.push_back(2.5 * code);
        shuffled.codes.push_back(n_categories - code);
      }
      store.obs.columns.push_back({.name = "batch_text", .values = text});
      store.obs.columns.push_back({.name = "batch_number", .values = number});
      store.obs.columns.push_back({.name = "batch_shuffled", .values = shuffled});
      for (const char* key : {"batch_text", "batch_number", "batch_shuffled"}) {
        PipelineParams q = p;
        q.hvg.batch_key = key;
        const PipelineResult other = run_pipeline(store, q, *backend, quiet);
        QCOMPARE(other.hvg_genes, res.hvg_genes);
        QCOMPARE(other.hvg.n_batches, res.hvg.n_batches);
        for (std::size_t g = 0; g < res.hvg.dispersions_norm.size(); ++g)
          QVERIFY2(
              std::fabs(other.hvg.dispersions_norm[g] - res.hvg.dispersions_norm[g]) <= 1e-12 ||
                  (std::isnan(other.hvg.dispersions_norm[g]) &&
                   std::isnan(res.hvg.dispersions_norm[g])),
              key);
      }
    }
    // seurat_v3 with a batch key: one batch ranks as the unbatched run; three batches write
    // scanpy's columns (nbatches, median rank; no intersection for this flavor).
    {
      SynthOptions one;
      one.n_cells = 600;
      one.n_genes = 800;
      one.n_clusters = 1;
      QTemporaryDir d1;
      io::Store s1 = io::open_store(synth_store(d1, one));
      PipelineParams q;
      q.min_genes = 10;
      q.hvg.flavor = "seurat_v3";
      q.hvg.n_top_genes = 150;
      q.markers = false;
      const PipelineResult plain = run_pipeline(s1, q, *backend, quiet);
      q.hvg.batch_key = "true_cluster";
      const PipelineResult batched = run_pipeline(s1, q, *backend, quiet);
      QCOMPARE(batched.hvg_genes, plain.hvg_genes);
      for (std::size_t g = 0; g < plain.hvg.rank.size(); ++g) {
        QVERIFY(std::isnan(plain.hvg.rank[g]) == std::isnan(batched.hvg.rank[g]));
        if (!std::isnan(plain.hvg.rank[g])) QCOMPARE(batched.hvg.rank[g], plain.hvg.rank[g]);
        QVERIFY(std::fabs(batched.hvg.variances_norm[g] - plain.hvg.variances_norm[g]) <=
                1e-12 * std::max(1.0, std::fabs(plain.hvg.variances_norm[g])));
      }
      q.hvg.batch_key = "true_cluster";
      io::Store s3 = io::open_store(synth_store(d1, two));
      const PipelineResult three = run_pipeline(s3, q, *backend, quiet);
      QCOMPARE(three.hvg_genes.size(), std::size_t{150});
      const std::string out3 = d1.filePath("v3.h5ad").toStdString();
      write_result_h5ad(s3, three, q, *backend, out3, quiet);
      io::Store w3 = io::open_store(out3);
      QVERIFY(w3.var.find("highly_variable_nbatches"));
      QVERIFY(w3.var.find("highly_variable_rank"));
      QVERIFY(!w3.var.find("highly_variable_intersection"));
    }
    // The combination itself on hand-made standardised variances of three batches.
    {
      const int n = 8;
      std::vector<HvgResult> per(3);
      const double v[3][n] = {
          {8, 7, 6, 5, 4, 3, 2, 1}, {1, 8, 7, 6, 5, 4, 3, 2}, {8, 1, 7, 2, 6, 3, 5, 4}};
      for (int b = 0; b < 3; ++b) per[b].variances_norm.assign(v[b], v[b] + n);
      HvgOptions o3{.flavor = "seurat_v3", .n_top_genes = 3};
      const HvgResult c =
          seurat_v3_combine(per, std::vector<double>(n, 1.0), std::vector<double>(n, 2.0), o3);
      // Ranks under 3: gene 0 {0, -, 0} -> 0 (2 batches); gene 1 {1, 0, -} -> 0.5 (2); gene 2
      // {2, 1, 1} -> 1 (3); gene 3 {-, 2, -} -> 2 (1); gene 4 {-, -, 2} -> 2 (1); others none.
      QCOMPARE(c.n_batches, (std::vector<int>{2, 2, 3, 1, 1, 0, 0, 0}));
      QCOMPARE(c.rank[0], 0.0);
      QCOMPARE(c.rank[1], 0.5);
      QCOMPARE(c.rank[2], 1.0);
      QCOMPARE(c.rank[3], 2.0);
      QVERIFY(std::isnan(c.rank[5]));
      QCOMPARE(c.highly_variable, (std::vector<char>{1, 1, 1, 0, 0, 0, 0, 0}));
      QCOMPARE(c.variances_norm[0], (8.0 + 1 + 8) / 3);
    }
    p.hvg.batch_key = "no_such_column";
    try {
      run_pipeline(store, p, *backend, quiet);
      QFAIL("a missing batch column must be an error");
    } catch (const Error& e) {
      QVERIFY(QString(e.what()).contains("no_such_column"));
    }
    // A numeric (e.g. pandas nullable-integer) column with a missing value: an error naming
    // it, as for a categorical's missing code (scanpy leaves such cells out of every batch).
    Column with_gap{.name = "plate", .values = std::vector<double>(store.n_obs(), 1.0)};
    auto& plate = std::get<std::vector<double>>(with_gap.values);
    for (std::size_t i = 0; i < plate.size(); i += 5) plate[i] = std::nan("");
    with_gap.nullable = "nullable-integer";
    store.obs.columns.push_back(with_gap);
    p.hvg.batch_key = "plate";
    try {
      run_pipeline(store, p, *backend, quiet);
      QFAIL("a missing batch value must be an error");
    } catch (const Error& e) {
      QVERIFY2(QString(e.what()).contains("obs/plate") && QString(e.what()).contains("missing"),
               e.what());
    }
  }

  // The SGD schedule, built over rows in parallel, is the serial one: edges under max / n_epochs
  // dropped, epochs per sample max / w, negative ones divided by the rate, in row order.
  void umapScheduleKeepsRowOrder() {
    CsrMatrix g;
    g.n_rows = g.n_cols = 20000;
    Rng rng(8);
    for (std::int64_t i = 0; i < g.n_rows; ++i) {
      const int k = static_cast<int>(rng.next() % 12);
      for (int t = 0; t < k; ++t) {
        g.indices.push_back(static_cast<std::int32_t>(rng.next() % g.n_rows));
        g.data.push_back(static_cast<float>(rng.uniform() * rng.uniform()));
      }
      g.indptr.push_back(g.nnz());
    }
    const int epochs = 50, rate = 5;
    const UmapSchedule s = umap_schedule(g, epochs, rate);
    const float max_w = *std::max_element(g.data.begin(), g.data.end());
    std::size_t e = 0, dropped = 0;
    QCOMPARE(s.first.size(), static_cast<std::size_t>(g.n_rows + 1));
    for (std::int64_t i = 0; i < g.n_rows; ++i) {
      QCOMPARE(s.first[i], static_cast<std::int64_t>(e));
      for (auto k = g.indptr[i]; k < g.indptr[i + 1]; ++k) {
        if (g.data[k] < max_w / static_cast<float>(epochs)) {
          ++dropped;
          continue;
        }
        QCOMPARE(s.tail[e], static_cast<std::int64_t>(g.indices[k]));
        // Bit for bit (QCOMPARE of doubles is fuzzy).
        QVERIFY(s.eps[e] == static_cast<double>(max_w) / g.data[k]);
        QVERIFY(s.eps_neg[e] == s.eps[e] / rate);
        QVERIFY(s.next_sample[e] == s.eps[e]);
        QVERIFY(s.next_neg[e] == s.eps_neg[e]);
        ++e;
      }
    }
    QCOMPARE(s.tail.size(), e);
    QVERIFY(dropped > 1000 && e > 10000);  // both kinds of edges are there
  }

  // The host moves several vertices at once, interleaved sample by sample
  // (umap_move_vertices); each vertex must get exactly umap_move_vertex's draws and arithmetic,
  // the CUDA kernel's per-thread order: the same bits in positions and schedules, over ranges
  // shorter and longer than the lanes, vertices without edges, a hub of 400 edges, self-loops
  // (zero distances), more negative samples per edge than are drawn ahead (rate 20), none
  // (rate 0: NaN schedules), and an edge of NaN weight (due every epoch on the device).
  void umapInterleavedSameBits() {
    const std::int64_t n = 2000;
    CsrMatrix g;
    g.n_rows = g.n_cols = n;
    Rng rng(12);
    for (std::int64_t i = 0; i < n; ++i) {
      const int k = i == 777 ? 400 : static_cast<int>(rng.next() % 12);
      for (int t = 0; t < k; ++t) {
        g.indices.push_back(static_cast<std::int32_t>(rng.next() % n));
        g.data.push_back(static_cast<float>(0.05 + rng.uniform()));
      }
      g.indptr.push_back(g.nnz());
    }
    std::vector<float> init(2 * n);
    for (auto& v : init) v = static_cast<float>(10.0 * rng.uniform());
    auto bits = [](const auto& v) {
      return QByteArray(reinterpret_cast<const char*>(v.data()),
                        static_cast<qsizetype>(v.size() * sizeof(v[0])));
    };
    for (const int rate : {5, 20, 0}) {
      UmapOptions o;
      o.negative_sample_rate = rate;
      const int epochs = 30;
      UmapSchedule one = umap_schedule(g, epochs, rate);
      const auto poisoned = static_cast<std::size_t>(one.first[777]);
      one.eps[poisoned] = one.eps_neg[poisoned] = std::numeric_limits<double>::quiet_NaN();
      one.next_sample[poisoned] = one.next_neg[poisoned] = one.eps[poisoned];
      UmapSchedule lanes = one;
      std::vector<float> y_one = init, y_lanes = init, start(2 * n);
      for (int epoch = 0; epoch < 12; ++epoch) {
        auto args = [&](UmapSchedule& s, std::vector<float>& y) {
          start = y;
          return umap_epoch_args({s.first.data(), s.tail.data(), s.eps.data(), s.eps_neg.data(),
                                  s.next_sample.data(), s.next_neg.data()},
                                 start.data(), y.data(), n, {0.58, 1.33}, o, epoch, epochs);
        };
        const UmapEpoch a = args(one, y_one);
        for (std::int64_t i = 0; i < n; ++i) umap_move_vertex(a, i);
        const UmapEpoch b = args(lanes, y_lanes);
        for (std::int64_t i = 0, len = 1; i < n; i += len, len = len % 9 + 1)
          umap_move_vertices(b, i, std::min(n, i + len));
      }
      QVERIFY(y_one != init);
      QVERIFY2(bits(y_lanes) == bits(y_one), qPrintable(QString::number(rate)));
      QVERIFY(bits(lanes.next_sample) == bits(one.next_sample));
      QVERIFY(bits(lanes.next_neg) == bits(one.next_neg));
      const auto nan_schedules = std::count_if(one.next_neg.begin(), one.next_neg.end(),
                                               [](double v) { return std::isnan(v); });
      QCOMPARE(nan_schedules > 1, rate == 0);
    }
  }

  void umapSeparatesBlobs() {
    const int n = 3000, k = 10;
    DenseMatrix x = blobs(n, 20, k, 30.0);
    Progress p;
    const FuzzyGraph g = fuzzy_simplicial_set(exact_knn(x, KnnOptions{.n_neighbors = 15}, p));
    auto layout = [&](int threads) {
      tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
      return umap_layout(g.connectivities, initial_layout_from_pca(x, 0), UmapOptions{}, p);
    };
    const DenseMatrix one = layout(1), two = layout(2);
    QCOMPARE(one.values, two.values);
    const KnnResult near = exact_knn(one, KnnOptions{.n_neighbors = 11}, p);
    std::int64_t same = 0;
    for (int i = 0; i < n; ++i)
      for (int c = 1; c < 11; ++c) same += near.indices[i * 11 + c] % k == i % k;
    const double frac = static_cast<double>(same) / (n * 10.0);
    qInfo("UMAP of 10 blobs: %.4f of 10-NN in 2-D share the point's blob", frac);
    QVERIFY(frac >= 0.98);
  }

  // The eigensolver's products run over rows in parallel: one thread or three, the same layout
  // (a 90 x 70 lattice: several blocks of rows).
  void spectralLayoutSameOnAnyThreads() {
    const int w = 90, n = w * 70;
    const CsrMatrix g = test::lattice_graph(
        w, 70, [](int u, int v) { return 1.0f + 0.01f * static_cast<float>((u * 7 + v) % 5); });
    std::vector<std::vector<float>> layouts;
    for (int threads : {1, 3}) {
      tbb::task_arena arena(threads);
      arena.execute([&] {
        const SpectralResult r = spectral_layout(g, DenseMatrix(n, 2), 0);
        QCOMPARE(r.note, std::string("spectral"));
        layouts.push_back(r.embedding.values);
      });
    }
    QCOMPARE(layouts.size(), std::size_t{2});
    QVERIFY(layouts[0] == layouts[1]);
  }

  // On a 30 x 20 lattice graph the two smallest non-trivial Laplacian eigenvectors are the
  // lowest cosine modes along each side: the layout recovers the lattice's coordinates.
  void spectralLayoutOfLattice() {
    const int w = 30, h = 20, n = w * h;
    const CsrMatrix g = test::lattice_graph(w, h, [](int, int) { return 1.0f; });
    const SpectralResult r = spectral_layout(g, DenseMatrix(n, 2), 0);
    QCOMPARE(r.note, std::string("spectral"));
    auto corr = [&](int axis, auto mode) {
      double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
      for (int v = 0; v < n; ++v) {
        const double a = r.embedding.at(v, axis), b = mode(v);
        sa += a, sb += b, saa += a * a, sbb += b * b, sab += a * b;
      }
      const double cov = sab / n - sa / n * sb / n;
      return std::fabs(cov / std::sqrt((saa / n - sa / n * sa / n) * (sbb / n - sb / n * sb / n)));
    };
    const double along_x = corr(0, [&](int v) { return std::cos(M_PI * (v % w + 0.5) / w); });
    const double along_y = corr(1, [&](int v) { return std::cos(M_PI * (v / w + 0.5) / h); });
    qInfo("spectral layout of a 30 x 20 lattice: |corr| with the cosine modes %.4f, %.4f", along_x,
          along_y);
    QVERIFY(along_x > 0.99 && along_y > 0.99);
    for (float v : r.embedding.values) QVERIFY(v >= 0.0f && v <= 10.0f);

    // umap-learn's random fallback where the spectral layout fails (here a non-finite weight
    // in the one component): the seeded random layout in [0, 10], and the report says so.
    CsrMatrix broken = g;
    broken.data[1] = std::numeric_limits<float>::infinity();
    const SpectralResult fallback = spectral_layout(broken, DenseMatrix(n, 2), 5);
    QCOMPARE(fallback.note,
             std::string("random (a non-finite edge weight; as umap-learn, random fallback)"));
    const DenseMatrix expected = random_layout(n, 5);
    QCOMPARE(fallback.embedding.values, expected.values);
    for (float v : fallback.embedding.values) QVERIFY(v >= 0.0f && v <= 10.0f);
  }

  // Thick-restart Lanczos on a known spectrum: a diagonal operator whose largest eigenvalue's
  // vector is locked finds the next two (values and unit vectors), through several restarts of
  // a small basis, on any number of threads alike (n spans several of the host's fixed blocks
  // of 16384 rows, so the reductions are split).
  void lanczosOfKnownSpectrum() {
    const int n = 40000;
    SymmetricCsr a;
    std::vector<double> value(n);
    Rng rng(4);
    for (int i = 0; i < n; ++i) {
      // 1, 0.9, 0.85, then the rest spread below 0.8 (a few close to it)
      value[i] = i == 0   ? 1.0
                 : i == 1 ? 0.9
                 : i == 2 ? 0.85
                          : 0.8 - 1.6 * rng.uniform() * rng.uniform();
      a.indices.push_back(i);
      a.weights.push_back(value[i]);
      a.indptr.push_back(i + 1);
    }
    // Shuffled positions, so that the answer is not the first coordinates.
    std::vector<int> where(n);
    std::iota(where.begin(), where.end(), 0);
    for (int i = n - 1; i > 0; --i) std::swap(where[i], where[rng.next() % (i + 1)]);
    SymmetricCsr p;
    std::vector<double> locked(n, 0.0);
    {
      std::vector<double> at(n);
      for (int i = 0; i < n; ++i) at[where[i]] = value[i];
      for (int i = 0; i < n; ++i) {
        p.indices.push_back(i);
        p.weights.push_back(at[i]);
        p.indptr.push_back(i + 1);
      }
      locked[where[0]] = 1.0;
    }
    LanczosOptions o;
    o.nev = 2;
    o.ncv = 8;
    o.tol = 1e-10;
    std::vector<double> start(n);
    for (auto& v : start) v = 1.0 + 0.1 * rng.uniform();
    std::vector<std::vector<double>> answers;
    for (int threads : {1, 2}) {
      tbb::task_arena arena(threads);
      arena.execute([&] {
        HostLanczosOps ops(p, locked, o.ncv + 1);
        const LanczosResult r = lanczos_largest(ops, start, o);
        QVERIFY2(r.converged, r.why.c_str());
        QVERIFY(r.restarts >= 2);  // the small basis had to restart
        QCOMPARE(r.values.size(), std::size_t{2});
        QVERIFY(std::fabs(r.values[0] - 0.9) < 1e-9);
        QVERIFY(std::fabs(r.values[1] - 0.85) < 1e-9);
        QCOMPARE(r.vectors.size(), std::size_t{2} * n);
        QVERIFY(std::fabs(r.vectors[2 * where[1]]) > 1 - 1e-9);
        QVERIFY(std::fabs(r.vectors[2 * where[2] + 1]) > 1 - 1e-9);
        QVERIFY(std::fabs(r.vectors[2 * where[0]]) < 1e-9);  // nothing of the locked vector
        answers.push_back(r.vectors);
      });
    }
    QCOMPARE(answers.size(), std::size_t{2});
    QVERIFY(answers[0] == answers[1]);
    // A basis that does not fit the problem is refused, with the reason: ncv + 1 vectors and a
    // locked one need n >= ncv + 2.
    SymmetricCsr small;
    for (int i = 0; i < o.ncv + 1; ++i) {
      small.indices.push_back(i);
      small.weights.push_back(1.0 / (i + 1));
      small.indptr.push_back(i + 1);
    }
    HostLanczosOps tiny(small, {}, o.ncv + 1);
    const LanczosResult refused =
        lanczos_largest(tiny, std::vector<double>(static_cast<std::size_t>(o.ncv) + 1, 1.0), o);
    QVERIFY(!refused.converged);
    QVERIFY(refused.why.find("does not fit") != std::string::npos);
  }

  // Where the eigenvalues are well apart (a lattice with uneven weights: no mirror symmetry
  // that would hide a mode from the start vector), the Lanczos layout is ARPACK's, and both
  // come with the same signs (orient_columns).
  void spectralLanczosMatchesArpack() {
    const int w = 60, h = 40, n = w * h;
    const CsrMatrix g = test::lattice_graph(w, h, test::uneven_weight);
    const SpectralResult lanczos = spectral_layout(g, DenseMatrix(n, 2), 0);
    const SpectralResult arpack = spectral_layout(
        g, DenseMatrix(n, 2), 0, [](const ComponentOperator&, std::vector<double>&) {
          return false;  // every component to ARPACK
        });
    QCOMPARE(lanczos.note, std::string("spectral"));
    QCOMPARE(arpack.note, std::string("spectral"));
    double most = 0;
    for (std::size_t i = 0; i < lanczos.embedding.values.size(); ++i)
      most = std::max(most,
                      double(std::fabs(lanczos.embedding.values[i] - arpack.embedding.values[i])));
    qInfo("spectral layout of a 60 x 40 lattice, Lanczos vs ARPACK: max difference %.3g of 10",
          most);
    QVERIFY(most < 0.05);
    // Above ARPACK's size bound, a component the eigensolver gave up on is laid out at random,
    // and the note says why.
    const SpectralResult bounded = spectral_layout(
        g, DenseMatrix(n, 2), 0,
        [](const ComponentOperator&, std::vector<double>&) { return false; }, n - 1);
    QVERIFY2(bounded.note.rfind("random (no eigenvectors for a component of 2400 vertices", 0) == 0,
             bounded.note.c_str());
    QCOMPARE(bounded.embedding.rows, std::int64_t{n});
  }

  // The nearest other component's centroid by a sweep along x equals the all-pairs answer: ties,
  // repeated points, a column of equal x, a single point.
  void nearestOtherDistances() {
    Rng rng(17);
    std::vector<double> xy;
    for (int i = 0; i < 3000; ++i) {
      xy.push_back(std::floor(40 * rng.uniform()) / 40);  // many equal x
      xy.push_back(rng.uniform());
    }
    for (int i = 0; i < 20; ++i) xy.insert(xy.end(), {0.5, 0.01 * i});  // one column
    xy.insert(xy.end(), {xy[10], xy[11]});  // a repeat of point 5: 0 apart
    const std::vector<double> fast = nearest_other_distances(xy);
    const std::size_t n = xy.size() / 2;
    QCOMPARE(fast.size(), n);
    for (std::size_t c = 0; c < n; ++c) {
      double best = std::numeric_limits<double>::max();
      for (std::size_t o = 0; o < n; ++o)
        if (o != c)
          best = std::min(best, std::hypot(xy[2 * o] - xy[2 * c], xy[2 * o + 1] - xy[2 * c + 1]));
      QCOMPARE(fast[c], best);
    }
    QCOMPARE(fast[5], 0.0);
    QCOMPARE(nearest_other_distances({1.0, 2.0}),
             std::vector<double>{std::numeric_limits<double>::max()});
  }

  // A one-way edge between two rings (an asymmetric graph, as a store's may be) leaves them
  // two components, each laid out from its own edges alone: finite, in the box.
  void spectralLayoutOfOneWayEdge() {
    // Rings of 400 and 200 vertices; the edge points past the second ring's own indices.
    const int first = 400, n = first + 200;
    CsrMatrix g;
    g.n_rows = g.n_cols = n;
    for (int v = 0; v < n; ++v) {
      const int base = v < first ? 0 : first, size = v < first ? first : n - first;
      const int at = v - base;
      std::vector<int> to = {base + (at + size - 1) % size, base + (at + 1) % size};
      if (v == first + 100) to.push_back(350);  // from the second ring into the first only
      std::sort(to.begin(), to.end());
      for (int u : to) {
        g.indices.push_back(u);
        g.data.push_back(1.0f +
                         0.001f * static_cast<float>((std::min(u, v) * 31 + std::max(u, v)) % 7));
      }
      g.indptr.push_back(g.nnz());
    }
    const SpectralResult r = spectral_layout(g, DenseMatrix(n, 2), 0);
    QCOMPARE(r.note, std::string("spectral (2 components)"));
    for (float v : r.embedding.values) QVERIFY(std::isfinite(v) && v >= 0.0f && v <= 10.0f);
    // The second ring's operator leaves the one-way edge out, degrees included: sqrt_degree is
    // its eigenvector for 1 (with the edge's weight counted in the degree it is not).
    std::vector<std::int64_t> members, local(n);
    for (int v = 0; v < n; ++v) local[v] = v < first ? v : v - first;
    for (int v = first; v < n; ++v) members.push_back(v);
    std::string why;
    const ComponentOperator op = component_operator(g, members, local, why);
    QCOMPARE(op.a.rows(), std::int64_t{n - first});
    QCOMPARE(op.a.indices.size(), std::size_t{2} * (n - first));
    for (std::int64_t i = 0; i < op.a.rows(); ++i) {
      double y = 0;
      for (auto k = op.a.indptr[i]; k < op.a.indptr[i + 1]; ++k)
        y += op.a.weights[k] * op.sqrt_degree[op.a.indices[k]];
      QVERIFY2(std::fabs(y - op.sqrt_degree[i]) < 1e-12, qPrintable(QString::number(i)));
    }
  }

  // Two far-apart blobs make two components, each laid out on its own, apart from the other.
  void spectralLayoutOfComponents() {
    const int n = 1000;
    DenseMatrix x = blobs(n, 10, 2, 400.0);
    Progress p;
    const FuzzyGraph g = fuzzy_simplicial_set(exact_knn(x, KnnOptions{.n_neighbors = 15}, p));
    const SpectralResult r = spectral_layout(g.connectivities, x, 3);
    QCOMPARE(r.note, std::string("spectral (2 components)"));
    float lo[2] = {1e9f, 1e9f}, hi[2] = {-1e9f, -1e9f};
    for (int i = 0; i < n; ++i) {
      lo[i % 2] = std::min(lo[i % 2], r.embedding.at(i, 0));
      hi[i % 2] = std::max(hi[i % 2], r.embedding.at(i, 0));
    }
    const bool x_apart = hi[0] < lo[1] || hi[1] < lo[0];
    float ylo[2] = {1e9f, 1e9f}, yhi[2] = {-1e9f, -1e9f};
    for (int i = 0; i < n; ++i) {
      ylo[i % 2] = std::min(ylo[i % 2], r.embedding.at(i, 1));
      yhi[i % 2] = std::max(yhi[i % 2], r.embedding.at(i, 1));
    }
    const bool y_apart = yhi[0] < ylo[1] || yhi[1] < ylo[0];
    QVERIFY2(x_apart || y_apart, "the two components' boxes overlap");
  }

  void adjustedRandIndex() {
    QCOMPARE(adjusted_rand_index({0, 0, 1, 1}, {5, 5, 7, 7}), 1.0);
    // sklearn: adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714285714
    QVERIFY(std::fabs(adjusted_rand_index({0, 0, 1, 1}, {0, 0, 1, 2}) - 0.5714285714) < 1e-9);
    // No pair agrees: index 0, expected 6 * 3 / 15 = 1.2, max 4.5 -> -1.2 / 3.3 = -4/11.
    QVERIFY(std::fabs(adjusted_rand_index({0, 0, 0, 1, 1, 1}, {0, 1, 2, 0, 1, 2}) + 4.0 / 11.0) <
            1e-9);
  }

  void leidenFindsPlantedCliques() {
    const int n = 30;
    const CsrMatrix g = three_cliques();
    auto labels = leiden(g, {.resolution = 1.0, .seed = 1});
    std::vector<std::int32_t> truth;
    for (int i = 0; i < n; ++i) truth.push_back(i / 10);
    QCOMPARE(adjusted_rand_index(labels, truth), 1.0);
    QCOMPARE(leiden(g, {.resolution = 1.0, .seed = 1}), labels);  // seeded: same answer
  }

  // The parallel flavour: the planted cliques; on blob kNN graphs a partition as good as
  // igraph's (quality within 1 %, close ARI) and the same labels for any thread count.
  void parallelLeidenFindsCommunities() {
    {
      const CsrMatrix g = three_cliques();
      std::vector<std::int32_t> truth;
      for (int i = 0; i < 30; ++i) truth.push_back(i / 10);
      QCOMPARE(adjusted_rand_index(leiden_parallel(g, {.resolution = 1.0, .seed = 1}), truth), 1.0);
    }
    Progress p;
    const FuzzyGraph g =
        fuzzy_simplicial_set(exact_knn(blobs(10000, 8, 12, 6.0), {.n_neighbors = 15}, p));
    std::vector<std::int32_t> truth;
    for (int i = 0; i < 10000; ++i) truth.push_back(i % 12);
    for (double resolution : {1.0, 0.3, 2.0}) {
      const LeidenOptions o{.resolution = resolution, .seed = 3};
      const auto ref = leiden(g.connectivities, o);
      const auto par = leiden_parallel(g.connectivities, o);
      const double q_ref = leiden_quality(g.connectivities, ref, resolution);
      const double q_par = leiden_quality(g.connectivities, par, resolution);
      const int k_ref = *std::max_element(ref.begin(), ref.end()) + 1;
      const int k_par = *std::max_element(par.begin(), par.end()) + 1;
      qInfo(
          "resolution %.1f: igraph %d clusters, quality %.5f, ARI vs blobs %.4f; parallel %d, "
          "%.5f, %.4f; ARI between them %.4f",
          resolution, k_ref, q_ref, adjusted_rand_index(ref, truth), k_par, q_par,
          adjusted_rand_index(par, truth), adjusted_rand_index(ref, par));
      QVERIFY(q_par > q_ref - 0.01 * std::fabs(q_ref));
      for (int threads : {1, 3}) {
        tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
        QCOMPARE(leiden_parallel(g.connectivities, o), par);
      }
      QVERIFY(adjusted_rand_index(par, truth) > adjusted_rand_index(ref, truth) - 0.02);
      if (resolution == 1.0) QVERIFY(adjusted_rand_index(par, ref) > 0.95);
    }
    // Another seed: another partition of about the same quality.
    const auto other = leiden_parallel(g.connectivities, {.resolution = 1.0, .seed = 4});
    QVERIFY(leiden_quality(g.connectivities, other, 1.0) >
            0.99 * leiden_quality(g.connectivities, leiden(g.connectivities, {}), 1.0));
    // Iterations: 0 leaves singletons; "until stable" is the first count K whose next iteration
    // changes nothing.
    const auto none = leiden_parallel(g.connectivities, {.n_iterations = 0});
    QCOMPARE(*std::max_element(none.begin(), none.end()), std::int32_t{9999});
    auto fixed = [&](int n_iterations) {
      return leiden_parallel(g.connectivities, {.resolution = 2.0, .n_iterations = n_iterations});
    };
    int k = 1;
    while (k < 50 && adjusted_rand_index(fixed(k), fixed(k + 1)) < 1.0) ++k;
    qInfo("parallel flavour stable after %d iterations", k);
    QVERIFY(k < 50);
    QCOMPARE(adjusted_rand_index(fixed(-1), fixed(k)), 1.0);
    // Isolated cells (no edges) stay clusters of their own.
    {
      CsrMatrix island = g.connectivities;
      const std::int64_t n0 = island.n_rows;
      island.n_rows = island.n_cols = n0 + 3;
      for (int extra = 0; extra < 3; ++extra) island.indptr.push_back(island.nnz());
      const auto labels = leiden_parallel(island, {});
      std::map<std::int32_t, int> size;
      for (const auto l : labels) ++size[l];
      for (std::int64_t i = n0; i < n0 + 3; ++i) QCOMPARE(size[labels[i]], 1);
    }
    Progress cancelled;
    cancelled.cancel();
    QVERIFY_THROWS_EXCEPTION(Cancelled, leiden_parallel(g.connectivities, {}, &cancelled));
    // Bad graphs are refused by name.
    CsrMatrix bad = g.connectivities;
    bad.data[7] = -1.0f;
    QVERIFY_THROWS_EXCEPTION(Error, leiden_parallel(bad, {}));
    bad.data[7] = std::numeric_limits<float>::quiet_NaN();
    QVERIFY_THROWS_EXCEPTION(Error, leiden_parallel(bad, {}));
  }

  // n_iterations = -1 iterates until an iteration leaves the partition as it was (leidenalg's,
  // so scanpy's, meaning; igraph 0.10.2's own loop stopped after one): the answer is the first
  // fixed count K whose next iteration changes nothing, here more than one. Counts are run one
  // iteration per igraph call, so a cancelled run stops with Cancelled.
  void leidenIteratesUntilStable() {
    Progress p;
    const FuzzyGraph g =
        fuzzy_simplicial_set(exact_knn(blobs(11000, 8, 12, 9.0), {.n_neighbors = 10}, p));
    auto run = [&](int n_iterations) {
      return leiden(g.connectivities, {.resolution = 1.0, .n_iterations = n_iterations, .seed = 2});
    };
    int k = 1;
    while (adjusted_rand_index(run(k), run(k + 1)) < 1.0) ++k;
    qInfo("Leiden stable after %d iterations", k);
    QVERIFY(k > 1);
    QCOMPARE(adjusted_rand_index(run(-1), run(k)), 1.0);
    QVERIFY(adjusted_rand_index(run(-1), run(1)) < 1.0);
    Progress cancelled;
    cancelled.cancel();
    bool threw = false;
    try {
      leiden(g.connectivities, {.resolution = 1.0, .seed = 2}, &cancelled);
    } catch (const Cancelled&) {
      threw = true;
    }
    QVERIFY(threw);
    QCOMPARE(leiden(g.connectivities, {.resolution = 1.0, .seed = 2}, &p), run(-1));
    // No iteration: every cell its own cluster.
    const auto none = run(0);
    QCOMPARE(static_cast<std::int64_t>(none.size()), g.connectivities.n_rows);
    QCOMPARE(*std::max_element(none.begin(), none.end()),
             static_cast<std::int32_t>(none.size() - 1));
  }

  // The cell filter: min/max genes, the qc-gene percentage (NaN for an empty cell fails it, as
  // pandas' comparison does), min/max counts; 0 leaves a bound off.
  void cellFilterThresholds() {
    CellQc qc;
    qc.n_genes_by_counts = {300, 150, 300, 300, 300, 3000, 0};
    qc.total_counts = {1000, 1000, 90, 20000, 1000, 9000, 0};
    qc.pct_counts_qc = {2, 2, 2, 2, 12, 2, std::nan("")};
    PipelineParams p;
    p.min_genes = 200;
    p.max_genes = 2500;
    p.max_pct_qc = 5;
    p.min_counts = 100;
    p.max_counts = 10000;
    std::vector<bool> kept;
    for (int i = 0; i < 7; ++i) kept.push_back(keep_cell(qc, i, p));
    QCOMPARE(kept, (std::vector<bool>{true, false, false, false, false, false, false}));
    QCOMPARE(count_kept_cells(qc, p), std::int64_t{1});
    p = PipelineParams{};
    p.min_genes = 0;
    p.max_genes = 0;
    p.max_pct_qc = 0;
    p.min_counts = 0;
    p.max_counts = 0;
    QCOMPARE(count_kept_cells(qc, p), std::int64_t{7});
    p.max_counts = 5000;
    QCOMPARE(count_kept_cells(qc, p), std::int64_t{5});  // 20000 and 9000 out
  }

  void hvgCellRangerSelectsTopDispersion() {
    // 400 genes; mean grows with index; genes 70 and 230 have outlying variance in their bins.
    std::vector<double> mean(400), var(400);
    for (int g = 0; g < 400; ++g) {
      mean[g] = 0.1 + 0.005 * g;
      var[g] = mean[g] * (1.0 + 0.01 * ((g * 7) % 11));
    }
    var[70] *= 5;
    var[230] *= 4;
    HvgResult r = highly_variable_genes(mean, var, {.flavor = "cell_ranger", .n_top_genes = 2});
    QCOMPARE(r.n_selected(), 2);
    QVERIFY(r.highly_variable[70] && r.highly_variable[230]);
    // Bins are (-inf, p10], (p10, p15], ... of the means: genes 0..39 share bin 0.
    QCOMPARE(r.mean_bin[0], 0);
    QCOMPARE(r.mean_bin[39], 0);  // p10 = gene 39.9 by linear interpolation
    QCOMPARE(r.mean_bin[40], 1);
    QCOMPARE(r.mean_bin[399], 18);
    HvgResult s = highly_variable_genes(mean, var, {.flavor = "seurat", .n_top_genes = 3});
    QCOMPARE(s.n_selected(), 3);
    QVERIFY(s.highly_variable[70] && s.highly_variable[230]);
    QVERIFY_THROWS_EXCEPTION(orrery::Error,
                             highly_variable_genes(mean, var, {.flavor = "pearson"}));
    // Without n_top_genes, scanpy's cutoffs: min_mean < mean < max_mean and min_disp <
    // dispersions_norm < max_disp (NaN counted as 0), for both flavors.
    for (const char* flavor : {"seurat", "cell_ranger"}) {
      HvgOptions o{.flavor = flavor,
                   .n_top_genes = 0,
                   .min_mean = 0.3,
                   .max_mean = 1.5,
                   .min_disp = 0.5,
                   .max_disp = 3.0};
      const HvgResult c = highly_variable_genes(mean, var, o);
      int by_mean = 0, by_disp = 0;
      for (int g = 0; g < 400; ++g) {
        const double dn = std::isnan(c.dispersions_norm[g]) ? 0.0 : c.dispersions_norm[g];
        const bool mean_ok = c.means[g] > o.min_mean && c.means[g] < o.max_mean;
        const bool disp_ok = dn > o.min_disp && dn < o.max_disp;
        QCOMPARE(bool(c.highly_variable[g]), mean_ok && disp_ok);
        by_mean += disp_ok && !mean_ok;
        by_disp += mean_ok && !disp_ok;
      }
      qInfo("%s cutoffs: %d selected, %d out by mean only, %d by dispersion only", flavor,
            c.n_selected(), by_mean, by_disp);
      QVERIFY(c.n_selected() > 0 && by_mean > 0 && by_disp > 0);
    }
  }

  void synthIsDeterministicAndChunkable() {
    SynthOptions o;
    o.n_cells = 200;
    o.n_genes = 300;
    SynthGenerator a(o), b(o);
    CsrMatrix whole = a.rows(0, 200);
    CsrMatrix part = b.rows(120, 130);
    QCOMPARE(part.n_rows, 10);
    const auto base = whole.indptr[120];
    for (std::int64_t k = 0; k < part.nnz(); ++k) {
      QCOMPARE(part.indices[k], whole.indices[base + k]);
      QCOMPARE(part.data[k], whole.data[base + k]);
    }
    o.seed = 1;
    SynthGenerator c(o);
    QVERIFY(c.rows(0, 200).data != whole.data);
    // Mitochondrial share near 2%.
    double mito = 0, total = 0;
    for (std::int64_t r = 0; r < whole.n_rows; ++r)
      for (auto k = whole.indptr[r]; k < whole.indptr[r + 1]; ++k) {
        total += whole.data[k];
        if (whole.indices[k] < 13) mito += whole.data[k];
      }
    QVERIFY(mito / total > 0.01 && mito / total < 0.04);
  }

  void paramsFromJson() {
    PipelineParams p;
    p.update_from_json(
        nlohmann::json::parse(R"({"leiden": {"resolution": 1.5}, "hvg": {"flavor": "seurat"}})"));
    QCOMPARE(p.leiden.resolution, 1.5);
    QCOMPARE(QString::fromStdString(p.hvg.flavor), QString("seurat"));
    QCOMPARE(p.pca.n_comps, 50);  // untouched
    auto expect = [](const char* json, const char* field) {
      PipelineParams q;
      try {
        q.update_from_json(nlohmann::json::parse(json));
      } catch (const orrery::Error& e) {
        QVERIFY2(QString(e.what()).contains(field), e.what());
        return;
      }
      QFAIL(json);
    };
    expect(R"({"pca": {"n_comps": 0}})", "pca.n_comps");
    expect(R"({"neighbors": {"n_neighbors": 1}})", "neighbors.n_neighbors");
    expect(R"({"neighbors": {"metric": "manhattan"}})", "neighbors.metric");
    expect(R"({"umap": {"min_dist": 5}})", "umap.min_dist");
    expect(R"({"chunk_mib": 0})", "chunk_mib");
    expect(R"({"pca_cache_mib": -1})", "pca_cache_mib");
    expect(R"({"frobnicate": 1})", "frobnicate");
    // The markers section (README's example), and scanpy's own spellings from notebooks.
    PipelineParams m;
    m.update_from_json(nlohmann::json::parse(
        R"({"markers": {"method": "exact", "tie_correct": true, "n_bins": 500}})"));
    QCOMPARE(QString::fromStdString(m.wilcoxon.method), QString("exact"));
    QVERIFY(m.wilcoxon.tie_correct);
    QCOMPARE(m.wilcoxon.n_bins, 500);
    m.update_from_json(nlohmann::json::parse(R"({"markers": false})"));
    QVERIFY(!m.markers);
    PipelineParams nb;
    nb.update_from_json(nlohmann::json::parse(R"({
      "qc": {"percent_top": null}, "hvg": {"n_top_genes": null, "min_mean": 0.0125},
      "pca": {"n_comps": 50, "svd_solver": "arpack"},
      "umap": {"random_state": 7}, "leiden": {"random_state": 3},
      "markers": {"method": "wilcoxon", "corr_method": "benjamini-hochberg"}})"));
    QVERIFY(nb.percent_top.empty());
    QCOMPARE(nb.hvg.n_top_genes, 0);
    QCOMPARE(nb.umap.seed, std::uint64_t{7});
    QCOMPARE(nb.leiden.seed, std::uint64_t{3});
    QCOMPARE(QString::fromStdString(nb.wilcoxon.method), QString("exact"));
    expect(R"({"markers": {"corr_method": "bonferroni"}})", "markers.corr_method");
    expect(R"({"pca": {"svd_solver": "magic"}})", "pca.svd_solver");
    expect(R"({"umap": {"seed": 1, "random_state": 2}})", "umap.random_state");
    expect(R"({"markers": {"method": "t-test"}})", "markers.method");
    expect(R"({"leiden": {"random_state": -1}})", "leiden.random_state");
    expect(R"({"umap": {"seed": 1.5}})", "umap.seed");
    PipelineParams built;  // a seed set from a signed integer in code, not parsed
    built.update_from_json(nlohmann::json{{"leiden", {{"seed", int{5}}}}});
    QCOMPARE(built.leiden.seed, std::uint64_t{5});
    expect(R"({"hvg": {"flavor": "seurat_v3", "n_top_genes": null}})", "hvg.n_top_genes");
    expect(R"({"leiden": {"flavor": "louvain"}})", "leiden.flavor");
    PipelineParams flavour;
    flavour.update_from_json(nlohmann::json::parse(R"({"leiden": {"flavor": "leidenalg"}})"));
    QCOMPARE(make_cpu_backend()->leiden_flavor(flavour.leiden), std::string("igraph"));
    flavour.update_from_json(nlohmann::json::parse(R"({"leiden": {"flavor": "parallel"}})"));
    QCOMPARE(make_cpu_backend()->leiden_flavor(flavour.leiden), std::string("parallel"));
    PipelineParams eigh;
    eigh.update_from_json(nlohmann::json::parse(R"({"pca": {"svd_solver": "covariance_eigh"}})"));
  }

  // The whole pipeline on a synthetic store: same answers with 1 and 2 threads (NN-descent
  // and Wilcoxon included), and clusters that recover the planted ones.
  void pipelineDeterministicAcrossThreadCounts() {
    QTemporaryDir dir;
    SynthOptions so = synth_of(2000, 1500);
    so.n_clusters = 6;
    const std::string path = synth_store(dir, so);
    PipelineParams p;
    p.neighbors.method = "nndescent";
    p.hvg.n_top_genes = 1000;
    auto run = [&](int threads) {
      tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
      io::Store store = io::open_store(path);
      auto backend = make_cpu_backend();
      Progress progress;
      return run_pipeline(store, p, *backend, progress);
    };
    PipelineResult one = run(1), two = run(2);
    QCOMPARE(one.cell_qc.total_counts, two.cell_qc.total_counts);
    QCOMPARE(one.cell_qc.pct_counts_in_top, two.cell_qc.pct_counts_in_top);
    QCOMPARE(one.gene_qc.total_counts, two.gene_qc.total_counts);
    QCOMPARE(one.gene_qc.n_cells_by_counts, two.gene_qc.n_cells_by_counts);
    QCOMPARE(one.kept_gene_n_cells, two.kept_gene_n_cells);
    QCOMPARE(one.hvg_genes, two.hvg_genes);
    QCOMPARE(one.x_pca.values, two.x_pca.values);
    QCOMPARE(one.knn.indices, two.knn.indices);
    QCOMPARE(one.x_umap.values, two.x_umap.values);
    QCOMPARE(one.leiden, two.leiden);
    QCOMPARE(one.markers.size(), two.markers.size());
    // Every field, to the bit (the markers' statistics are summed by gene ranges in parallel).
    const auto same_bits = [](const std::vector<double>& a, const std::vector<double>& b) {
      return a.size() == b.size() &&
             std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
    };
    for (std::size_t g = 0; g < one.markers.size(); ++g) {
      const GroupMarkers &a = one.markers[g], &b = two.markers[g];
      for (const auto field :
           {&GroupMarkers::scores, &GroupMarkers::pvals, &GroupMarkers::logfoldchanges,
            &GroupMarkers::pct_in, &GroupMarkers::pct_out})
        QVERIFY(same_bits(a.*field, b.*field));
    }

    io::Store store = io::open_store(path);
    const auto& truth = std::get<Categorical>(store.obs.find("true_cluster")->values);
    std::vector<std::int32_t> planted;
    for (auto c : one.kept_cells) planted.push_back(truth.codes[c]);
    const double ari = adjusted_rand_index(one.leiden, planted);
    qInfo("synthetic 2000 cells, 6 planted clusters: %d Leiden clusters, ARI %.3f", one.n_clusters,
          ari);
    QVERIFY(ari > 0.9);
  }

  // scale(zero_center=False) and max_value=None (scanpy's): the pipeline's PCA equals the PCA of
  // the dense log data of its HVGs divided by their (ddof=1) std, clipped (or not) and not
  // centred before PCA's own centering; centring changes the clipped values, so the variances
  // differ from the zero-centred run's.
  void scaleWithoutCentering() {
    QTemporaryDir dir;
    SynthOptions so = synth_of(900, 400);
    const std::string path = synth_store(dir, so);
    auto run = [&](const char* scale_json) {
      PipelineParams p;
      p.update_from_json(nlohmann::json::parse(std::string(R"({"scale": )") + scale_json +
                                               R"(, "pca": {"n_comps": 8}})"));
      p.hvg.n_top_genes = 150;
      p.markers = false;
      io::Store store = io::open_store(path);
      auto backend = make_cpu_backend();
      Progress progress;
      return std::make_pair(p, run_pipeline(store, p, *backend, progress));
    };
    const auto [p_centred, centred] = run(R"({"max_value": 1.0})");
    for (const char* scale : {R"({"zero_center": false, "max_value": 1.0})",
                              R"({"zero_center": false, "max_value": null})"}) {
      const auto [p, r] = run(scale);
      QVERIFY(!p.scale_zero_center);
      // Dense reference over the kept cells and the HVGs.
      io::Store store = io::open_store(path);
      const CsrMatrix all = store.X->read_rows(0, store.n_obs());
      const auto gene_map = kept_gene_map(r);
      CsrMatrix kept = kept_chunk(all, 0, r, gene_map);
      make_cpu_backend()->normalize_log1p(kept, p.target_sum);
      const auto h = static_cast<int>(r.hvg_genes.size());
      std::vector<int> col(r.kept_genes.size(), -1);
      for (int c = 0; c < h; ++c) col[r.hvg_genes[c]] = c;
      Eigen::MatrixXd x = Eigen::MatrixXd::Zero(kept.n_rows, h);
      for (std::int64_t i = 0; i < kept.n_rows; ++i)
        for (auto k = kept.indptr[i]; k < kept.indptr[i + 1]; ++k)
          if (col[kept.indices[k]] >= 0) x(i, col[kept.indices[k]]) = kept.data[k];
      const double n = static_cast<double>(kept.n_rows);
      int clipped = 0;
      for (int c = 0; c < h; ++c) {
        const double m = x.col(c).mean();
        const double sd = std::sqrt((x.col(c).array() - m).square().sum() / (n - 1));
        for (std::int64_t i = 0; i < kept.n_rows; ++i) {
          const float z = static_cast<float>(x(i, c)) * static_cast<float>(1.0 / sd);
          x(i, c) = std::min(z, p.scale_max_value);
          clipped += z > p.scale_max_value;
        }
      }
      QCOMPARE(clipped > 0, std::isfinite(p.scale_max_value));
      const Eigen::MatrixXd centred_x = x.rowwise() - x.colwise().mean();
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(centred_x.transpose() * centred_x /
                                                         (n - 1));
      const double total = eig.eigenvalues().sum();
      for (int c = 0; c < 8; ++c) {
        const double want = eig.eigenvalues()(h - 1 - c) / total;
        QVERIFY2(
            std::fabs(r.pca.variance_ratio[c] - want) < 1e-6,
            qPrintable(
                QString("PC%1: %2 vs dense %3").arg(c).arg(r.pca.variance_ratio[c]).arg(want)));
      }
      QVERIFY(std::fabs(r.pca.variance_ratio[0] - centred.pca.variance_ratio[0]) > 1e-4);
    }
  }

  // seurat_v3 with a batch key against dense per-batch sums made here (each batch's moments,
  // loess clip and clipped sums, then scanpy's combination): the pipeline's moment passes lay
  // batches out [batch * genes + gene]; a transposed layout would mix genes across batches.
  void seuratV3BatchesMatchDenseSums() {
    QTemporaryDir dir;
    SynthOptions so = synth_of(1500, 600);
    so.n_clusters = 3;
    const std::string path = synth_store(dir, so);
    PipelineParams p;
    p.hvg.flavor = "seurat_v3";
    p.hvg.n_top_genes = 120;
    p.hvg.batch_key = "true_cluster";
    p.markers = false;
    io::Store store = io::open_store(path);
    auto backend = make_cpu_backend();
    Progress quiet;
    const PipelineResult r = run_pipeline(store, p, *backend, quiet);

    const CsrMatrix all = store.X->read_rows(0, store.n_obs());
    const CsrMatrix kept = kept_chunk(all, 0, r, kept_gene_map(r));
    const auto& codes = std::get<Categorical>(store.obs.find("true_cluster")->values).codes;
    std::map<std::int32_t, int> batch_of_code;  // batches by first appearance among kept cells
    for (auto c : r.kept_cells)
      batch_of_code.emplace(codes[c], static_cast<int>(batch_of_code.size()));
    const int batches = static_cast<int>(batch_of_code.size());
    QCOMPARE(batches, 3);
    const auto genes = static_cast<std::size_t>(kept.n_cols);
    auto sums = [&](int batch, const std::vector<double>* clip, std::vector<double>& sum,
                    std::vector<double>& sumsq) {
      sum.assign(genes, 0.0);
      sumsq.assign(genes, 0.0);
      std::int64_t n = 0;
      for (std::int64_t i = 0; i < kept.n_rows; ++i) {
        if (batch >= 0 && batch_of_code.at(codes[r.kept_cells[i]]) != batch) continue;
        ++n;
        for (auto k = kept.indptr[i]; k < kept.indptr[i + 1]; ++k) {
          const auto g = static_cast<std::size_t>(kept.indices[k]);
          const double v = clip ? std::min<double>(kept.data[k], (*clip)[g]) : kept.data[k];
          sum[g] += v;
          sumsq[g] += v * v;
        }
      }
      return n;
    };
    auto moments = [&](int batch, std::vector<double>& mean, std::vector<double>& var) {
      std::vector<double> sum, sumsq;
      const double n = static_cast<double>(sums(batch, nullptr, sum, sumsq));
      mean.resize(genes);
      var.resize(genes);
      for (std::size_t g = 0; g < genes; ++g) {
        mean[g] = sum[g] / n;
        var[g] = std::max(0.0, (sumsq[g] - n * mean[g] * mean[g]) / (n - 1));
      }
      return static_cast<std::int64_t>(n);
    };
    std::vector<HvgResult> per_batch;
    for (int b = 0; b < batches; ++b) {
      std::vector<double> mean, var, sum, sumsq;
      const std::int64_t n = moments(b, mean, var);
      const SeuratV3Clip clip = seurat_v3_clip(mean, var, n, p.hvg.span);
      sums(b, &clip.clip, sum, sumsq);
      per_batch.push_back(seurat_v3_select(mean, var, clip, sum, sumsq, n, p.hvg));
    }
    std::vector<double> mean_all, var_all;
    moments(-1, mean_all, var_all);
    const HvgResult want = seurat_v3_combine(per_batch, mean_all, var_all, p.hvg);
    QCOMPARE(r.hvg.highly_variable, want.highly_variable);
    QCOMPARE(r.hvg.variances_norm, want.variances_norm);
    QCOMPARE(r.hvg.n_batches, want.n_batches);
    QCOMPARE(r.hvg.n_selected(), 120);
  }

  // Per-column sums over fixed column ranges in parallel are the serial sums bit for bit, with
  // one thread or two, on values whose float sum depends on the order of addition; empty, sparse
  // and nearly full rows, over all columns and over a column range.
  void columnSumsIndependentOfThreads() {
    CsrMatrix c;
    c.n_rows = 3000;
    c.n_cols = 777;
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    for (std::int64_t r = 0; r < c.n_rows; ++r) {
      const float density = r % 5 == 0 ? 0.0f : r % 7 == 0 ? 0.95f : 0.2f;
      for (GeneIndex g = 0; g < c.n_cols; ++g)
        if (unit(rng) < density) {
          c.indices.push_back(g);
          c.data.push_back(unit(rng) * std::pow(10.0f, std::floor(unit(rng) * 7.0f) - 3.0f));
        }
      c.indptr.push_back(c.nnz());
    }
    std::vector<double> serial(c.n_cols, 0.0);
    for (std::int64_t k = 0; k < c.nnz(); ++k) serial[c.indices[k]] += c.data[k];
    std::vector<double> reversed(c.n_cols, 0.0);  // the order matters for these values
    for (std::int64_t k = c.nnz() - 1; k >= 0; --k) reversed[c.indices[k]] += c.data[k];
    QVERIFY(reversed != serial);
    for (int threads : {1, 2}) {
      tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
      std::vector<double> sums(c.n_cols, 0.0);
      std::vector<std::int64_t> visits(c.n_rows, 0);
      compute::for_each_entry_by_columns(c, [&](std::int64_t r, std::int64_t k) {
        sums[c.indices[k]] += c.data[k];
        __atomic_fetch_add(&visits[r], 1, __ATOMIC_RELAXED);
      });
      QCOMPARE(sums, serial);
      for (std::int64_t r = 0; r < c.n_rows; ++r)
        QCOMPARE(visits[r], c.indptr[r + 1] - c.indptr[r]);
      // Columns [100, 690) only: each of their entries once, in its column's range, in order.
      const std::int64_t c0 = 100, c1 = 690;
      std::vector<double> range_sums(c.n_cols, 0.0);
      std::vector<std::int64_t> last_row(c.n_cols, -1);
      std::atomic<std::int64_t> outside{0}, wrong_part{0}, out_of_order{0}, n_visits{0};
      compute::for_each_entry_by_column_ranges(
          c, c0, c1, [&](std::int64_t part, std::int64_t r, std::int64_t k) {
            const GeneIndex g = c.indices[k];
            ++n_visits;
            if (g < c0 || g >= c1) return void(++outside);
            if (g < c0 + (c1 - c0) * part / compute::kColumnRanges ||
                g >= c0 + (c1 - c0) * (part + 1) / compute::kColumnRanges)
              ++wrong_part;
            if (last_row[g] >= r) ++out_of_order;
            last_row[g] = r;
            range_sums[g] += c.data[k];
          });
      QCOMPARE(outside.load(), std::int64_t{0});
      QCOMPARE(wrong_part.load(), std::int64_t{0});
      QCOMPARE(out_of_order.load(), std::int64_t{0});
      std::int64_t in_range = 0;
      for (std::int64_t k = 0; k < c.nnz(); ++k)
        in_range += c.indices[k] >= c0 && c.indices[k] < c1;
      QCOMPARE(n_visits.load(), in_range);
      for (GeneIndex g = 0; g < c.n_cols; ++g)
        QCOMPARE(range_sums[g], g >= c0 && g < c1 ? serial[g] : 0.0);
    }
  }

  // pct_counts_in_top_N: whole counts (counted, not sorted) and other values (sorted) both give
  // the sums of each cell's values sorted largest first, added in that order, bit for bit: counts
  // below and above 256, stored zeros, N beyond a cell's values, empty cells, and cells with a
  // fractional, negative or NaN value.
  void topNPercentsOfCountsAndOtherValues() {
    CsrMatrix c;
    c.n_cols = 3000;
    std::mt19937_64 rng(11);
    std::uniform_int_distribution<int> small(0, 40), column(0, 2999);
    const int n_rows = 400;
    for (int r = 0; r < n_rows; ++r) {
      const int len = r % 9 == 0 ? 0 : r % 4 == 0 ? 120 : 900;  // N = 500 beyond some cells
      std::set<int> cols;
      while (static_cast<int>(cols.size()) < len) cols.insert(column(rng));
      for (int g : cols) {
        float v = static_cast<float>(small(rng));                   // zeros stored too
        if (g % 13 == 0) v = static_cast<float>(small(rng) * 997);  // above 256
        c.indices.push_back(g);
        c.data.push_back(v);
      }
      if (len > 0 && r % 7 == 3) c.data.back() += 0.25f;  // not counts: the sorted path
      if (len > 0 && r % 11 == 5) c.data[c.indptr.back()] = -2.0f;
      if (len > 0 && r == 17) c.data.back() = NAN;
      c.indptr.push_back(static_cast<std::int64_t>(c.data.size()));
    }
    c.n_rows = n_rows;
    const std::vector<int> top{1, 50, 100, 200, 500};
    CellQc cells;
    GeneQc genes;
    genes.n_cells_by_counts.assign(c.n_cols, 0);
    genes.total_counts.assign(c.n_cols, 0.0);
    accumulate_qc(c, {}, top, cells, genes);
    for (int r = 0; r < n_rows; ++r) {
      std::vector<float> v(c.data.begin() + c.indptr[r], c.data.begin() + c.indptr[r + 1]);
      double total = 0;  // in stored order, as cell_sums adds them
      for (float x : v) total += x;
      if (r == 17) {  // NaN: no ordering to check, and NaN shares
        for (std::size_t t = 0; t < top.size(); ++t)
          QVERIFY(std::isnan(cells.pct_counts_in_top[t][r]));
        continue;
      }
      std::sort(v.begin(), v.end(), std::greater<>());
      for (std::size_t t = 0; t < top.size(); ++t) {
        double sum = 0;
        for (std::size_t i = 0; i < std::min<std::size_t>(top[t], v.size()); ++i) sum += v[i];
        const double want = total > 0 ? 100.0 * sum / total : NAN;
        const double got = cells.pct_counts_in_top[t][r];
        QVERIFY2(std::memcmp(&want, &got, sizeof got) == 0 || (std::isnan(want) && std::isnan(got)),
                 qPrintable(QString("cell %1, top %2: %3 vs %4")
                                .arg(r)
                                .arg(top[t])
                                .arg(got, 0, 'g', 17)
                                .arg(want, 0, 'g', 17)));
      }
    }
  }

  // The backends' QC and moment passes (the CPU's here; test_cuda_parity holds the device's to
  // them): the same numbers whatever the chunking, equal to serial sums over all cells.
  void qcAndMomentPassesIndependentOfChunks() {
    SynthOptions so = synth_of(4000, 900);
    SynthGenerator gen(so);
    auto scaled = [&](std::int64_t r0, std::int64_t r1) {
      CsrMatrix c = gen.rows(r0, r1);
      for (auto& v : c.data) v *= 0.37f;  // non-integer values: the order of sums matters
      return c;
    };
    const CsrMatrix all = scaled(0, so.n_cells);
    std::vector<char> mt(so.n_genes, 0);
    for (std::size_t g = 0; g < mt.size(); g += 9) mt[g] = 1;
    const std::vector<int> top{10, 50};
    std::vector<std::int32_t> batch(so.n_cells);
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i] = static_cast<std::int32_t>(i % 4 / 2);
    auto keep = [](const CellQc& cells, std::int64_t i) {
      return cells.total_counts[i] > 300 || i % 3 == 0;
    };
    auto cpu = make_cpu_backend();
    const std::vector<std::vector<std::int64_t>> cuts{{0, 4000}, {0, 1, 1000, 1001, 2500, 4000}};
    std::vector<CellQc> cells(cuts.size());
    std::vector<GeneQc> genes(cuts.size());
    std::vector<std::vector<std::int64_t>> kept(cuts.size());
    std::vector<GeneMoments> moments(cuts.size());
    for (std::size_t v = 0; v < cuts.size(); ++v) {
      auto qc = cpu->qc_pass(mt, top, so.n_genes);
      auto mp = cpu->moment_pass(
          {.n_genes = so.n_genes, .expm1 = true, .n_batches = 2, .normalize = {.target_sum = 1e4}});
      for (std::size_t j = 0; j + 1 < cuts[v].size(); ++j) {
        const std::int64_t r0 = cuts[v][j];
        CsrMatrix c = scaled(r0, cuts[v][j + 1]);
        qc->add(c, cells[v], [&](std::int64_t i) { return keep(cells[v], r0 + i); });
        mp->add(c, batch.data() + r0);
      }
      qc->finish(genes[v], kept[v]);
      moments[v] = mp->finish();
    }
    QCOMPARE(cells[1].total_counts, cells[0].total_counts);
    QCOMPARE(cells[1].pct_counts_in_top, cells[0].pct_counts_in_top);
    QCOMPARE(genes[1].total_counts, genes[0].total_counts);
    QCOMPARE(kept[1], kept[0]);
    QCOMPARE(moments[1].sumsq, moments[0].sumsq);
    QCOMPARE(moments[1].batch_sumsq, moments[0].batch_sumsq);
    QCOMPARE(moments[1].batch_cells, (std::vector<std::int64_t>{2000, 2000}));

    // Against serial sums over the whole matrix.
    std::vector<double> total(so.n_genes, 0.0);
    std::vector<std::int64_t> n_kept(so.n_genes, 0);
    for (std::int64_t r = 0; r < all.n_rows; ++r)
      for (auto k = all.indptr[r]; k < all.indptr[r + 1]; ++k) {
        total[all.indices[k]] += all.data[k];
        n_kept[all.indices[k]] += keep(cells[0], r) && all.data[k] > 0;
      }
    QCOMPARE(genes[0].total_counts, total);
    QCOMPARE(kept[0], n_kept);
    QCOMPARE(genes[0].n_cells, so.n_cells);
    CsrMatrix lognorm = all;
    cpu->normalize_log1p(lognorm, 1e4);
    std::vector<double> sum(so.n_genes, 0.0), batch1_exp(so.n_genes, 0.0);
    for (std::int64_t r = 0; r < lognorm.n_rows; ++r)
      for (auto k = lognorm.indptr[r]; k < lognorm.indptr[r + 1]; ++k) {
        const double x = lognorm.data[k];
        sum[lognorm.indices[k]] += x;
        if (batch[r] == 1) batch1_exp[lognorm.indices[k]] += std::expm1(x);
      }
    QCOMPARE(moments[0].sum, sum);
    QCOMPARE(
        std::vector<double>(moments[0].batch_sum.begin() + so.n_genes, moments[0].batch_sum.end()),
        batch1_exp);
    // One cell's top-10 share by hand.
    std::vector<float> row(all.data.begin() + all.indptr[17], all.data.begin() + all.indptr[18]);
    std::sort(row.begin(), row.end(), std::greater<>());
    double top10 = 0;
    for (std::size_t t = 0; t < std::min<std::size_t>(10, row.size()); ++t) top10 += row[t];
    QCOMPARE(cells[0].pct_counts_in_top[0][17], 100.0 * top10 / cells[0].total_counts[17]);
  }

  // rank_genes_groups against ranks computed by brute force (dense columns, average ranks of
  // ties, scanpy's z with tie correction): each group against the rest and against a
  // reference, exact and binned, with ties, negative values and unlabelled cells; the data come
  // in three chunks.
  void wilcoxonMatchesBruteForceRanks() {
    const std::int64_t n = 300, genes = 30;
    const int groups = 4;
    std::mt19937_64 rng(11);
    std::vector<std::int32_t> labels(n);
    for (auto& l : labels) l = static_cast<std::int32_t>(rng() % 5) - 1;  // -1: left out
    std::vector<float> dense(n * genes, 0.0f);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t g = 0; g < genes; ++g)
        if (rng() % 3 != 0) {
          float v = 0.5f * static_cast<float>(rng() % 7 + (labels[i] == g % groups ? 3 : 0));
          if (g % 10 == 9 && rng() % 4 == 0) v = -v;  // a few genes with negative values
          dense[i * genes + g] = v;
        }
    CsrMatrix all;
    all.n_rows = n;
    all.n_cols = genes;
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t g = 0; g < genes; ++g)
        if (dense[i * genes + g] != 0.0f) {
          all.indices.push_back(static_cast<GeneIndex>(g));
          all.data.push_back(dense[i * genes + g]);
        }
      all.indptr.push_back(all.nnz());
    }
    auto source = [&](const ChunkVisitor& visit) {
      for (std::int64_t r0 : {std::int64_t{0}, std::int64_t{100}, std::int64_t{211}}) {
        CsrMatrix c = test::slice_rows(all, r0, r0 == 0 ? 100 : r0 == 100 ? 211 : n);
        visit(c, r0);
      }
    };
    // Brute force: z of `group` within the cells whose label `in_universe` accepts.
    auto brute_z = [&](std::int64_t g, int group, auto in_universe, auto value_of) {
      std::vector<std::pair<double, bool>> cells;
      for (std::int64_t i = 0; i < n; ++i)
        if (labels[i] >= 0 && in_universe(labels[i]))
          cells.push_back({value_of(dense[i * genes + g]), labels[i] == group});
      std::sort(cells.begin(), cells.end());
      double r_in = 0, tie_sum = 0, n_in = 0;
      for (std::size_t a = 0; a < cells.size();) {
        std::size_t b = a;
        while (b < cells.size() && cells[b].first == cells[a].first) ++b;
        const double t = static_cast<double>(b - a), rank = static_cast<double>(a) + (t + 1) / 2;
        for (std::size_t k = a; k < b; ++k)
          if (cells[k].second) r_in += rank, ++n_in;
        tie_sum += t * t * t - t;
        a = b;
      }
      const double m = static_cast<double>(cells.size()), n_out = m - n_in;
      const double tie = 1 - tie_sum / (m * m * m - m);
      return (r_in - n_in * (m + 1) / 2) / std::sqrt(tie * n_in * n_out * (m + 1) / 12);
    };
    Progress progress;
    for (const char* method : {"exact", "binned"}) {
      const bool binned = std::string(method) == "binned";
      float max_value = 0;
      for (float v : dense) max_value = std::max(max_value, v);
      auto value_of = [&](float v) -> double {
        if (!binned || v == 0.0f) return v;
        return std::min(9, static_cast<int>(v / max_value * 10.0f)) + 1;  // 10 bins
      };
      for (const int reference : {-1, 2}) {
        if (binned && reference < 0) {
          // Binned ranks need non-negative data: the negative genes make it an error.
          WilcoxonOptions o{.tie_correct = true, .method = "binned", .n_bins = 10};
          QVERIFY_THROWS_EXCEPTION(
              Error, rank_genes_groups(source, n, genes, labels, groups, o, progress));
        }
        if (binned)
          for (auto& v : dense) v = std::fabs(v);
        if (binned)
          for (auto& v : all.data) v = std::fabs(v);
        if (binned) {
          max_value = 0;
          for (float v : dense) max_value = std::max(max_value, v);
        }
        WilcoxonOptions o{
            .tie_correct = true, .method = method, .n_bins = 10, .reference = reference};
        int passes = 0;
        auto counted = [&](const ChunkVisitor& visit) {
          ++passes;
          source(visit);
        };
        const auto markers = rank_genes_groups(counted, n, genes, labels, groups, o, progress);
        QCOMPARE(static_cast<int>(markers.size()), reference < 0 ? groups : groups - 1);
        if (binned) {
          // With the bins' edge given (here the data's maximum, as found without it), the
          // statistics pass fills the histograms too: the same ranks in one pass instead of two.
          QCOMPARE(passes, 2);
          WilcoxonOptions given = o;
          given.bin_max = max_value;
          passes = 0;
          const auto once = rank_genes_groups(counted, n, genes, labels, groups, given, progress);
          QCOMPARE(passes, 1);
          QCOMPARE(once.size(), markers.size());
          for (std::size_t k = 0; k < once.size(); ++k) {
            QCOMPARE(once[k].scores, markers[k].scores);
            QCOMPARE(once[k].pvals, markers[k].pvals);
          }
          // Gene blocks of three: the statistics pass fills the first, nine passes the others.
          given.block_bytes = sizeof(std::uint32_t) * groups * 10 * 3;
          passes = 0;
          const auto blocks = rank_genes_groups(counted, n, genes, labels, groups, given, progress);
          QCOMPARE(passes, 10);
          for (std::size_t k = 0; k < blocks.size(); ++k)
            QCOMPARE(blocks[k].scores, markers[k].scores);
        }
        double worst = 0;
        for (const auto& m : markers)
          for (std::int64_t g = 0; g < genes; ++g) {
            const double z =
                reference < 0
                    ? brute_z(
                          g, m.group, [](int) { return true; }, value_of)
                    : brute_z(
                          g, m.group, [&](int l) { return l == m.group || l == reference; },
                          value_of);
            QVERIFY(std::isfinite(m.scores[g]));
            worst = std::max(worst, std::fabs(z - m.scores[g]));
          }
        QVERIFY2(
            worst < 1e-12,
            qPrintable(QString("%1 vs %2: worst |dz| %3").arg(method).arg(reference).arg(worst)));
      }
    }
  }

  // The handshake of a layout streamed to the renderer (layout_channel.hpp), step by step.
  void layoutChannelHandshake() {
    std::int64_t prepared_for = -1;
    int notified = 0;
    bool refuse = false;
    LayoutChannel ch(
        [&](std::int64_t n, std::string* why) -> std::optional<LayoutChannel::Target> {
          if (refuse) {
            *why = "no external memory";
            return std::nullopt;
          }
          prepared_for = n;
          return LayoutChannel::Target{};
        },
        [&] { ++notified; });
    QVERIFY(!ch.begin_write());  // not open
    std::string why;
    QVERIFY(ch.open(100, &why));
    QCOMPARE(prepared_for, std::int64_t{100});
    QVERIFY(!ch.take());
    auto w = ch.begin_write();  // the first layout is wanted without asking
    QVERIFY(w && !*w);          // nothing to wait for before the first write
    ch.delivered(0, {-1.f, -2.f, 3.f, 4.f});
    QCOMPARE(notified, 1);
    QVERIFY(!ch.begin_write());  // delivered, not taken
    ch.want();                   // no effect until the delivery is taken and copied
    QVERIFY(!ch.begin_write());
    auto d = ch.take();
    QVERIFY(d);
    QCOMPARE(d->version, std::uint64_t{1});
    QCOMPARE(d->n, std::int64_t{100});
    QCOMPARE(d->epoch, 0);
    QCOMPARE(d->bounds.min_y, -2.f);
    QCOMPARE(d->bounds.max_x, 3.f);
    QVERIFY(!ch.take());         // once
    QVERIFY(!ch.begin_write());  // taken: the copy is not submitted yet
    ch.copied();
    w = ch.begin_write();
    QVERIFY(w && *w);  // must wait for the renderer's `consumed` signal first
    w = ch.begin_write();
    QVERIFY(w && !*w);  // ... once
    ch.delivered(7, {});
    d = ch.take();
    QVERIFY(d);
    QCOMPARE(d->version, std::uint64_t{2});
    QCOMPARE(d->epoch, 7);
    QCOMPARE(ch.deliveries(), std::uint64_t{2});
    // A new layout starts over: wanted, nothing to wait for, nothing to take.
    ch.copied();
    QVERIFY(ch.open(50, &why));
    QCOMPARE(ch.deliveries(), std::uint64_t{0});
    QVERIFY(!ch.take());
    w = ch.begin_write();
    QVERIFY(w && !*w);
    ch.delivered(1, {});
    QVERIFY(!ch.begin_write());  // not asked for again yet
    // Closed: no writes, no deliveries, no reopening.
    ch.close();
    QVERIFY(!ch.begin_write());
    QVERIFY(!ch.open(50, &why));
    QVERIFY2(QString::fromStdString(why).contains("closed"), why.c_str());
    LayoutChannel refused(
        [&](std::int64_t, std::string* why) -> std::optional<LayoutChannel::Target> {
          *why = "no external memory";
          return std::nullopt;
        },
        {});
    why.clear();
    QVERIFY(!refused.open(10, &why));
    QCOMPARE(QString::fromStdString(why), QString("no external memory"));
    refused.want();
    QVERIFY(!refused.begin_write());
  }

  // Writer and renderer on two threads: every `ready` signal is waited on once by the renderer,
  // every `consumed` signal once by the writer before its next write (binary semaphores allow no
  // more), and the renderer sees layouts in order.
  void layoutChannelPairsSignals() {
    LayoutChannel ch([](std::int64_t, std::string*) { return LayoutChannel::Target{}; }, {});
    std::string why;
    QVERIFY(ch.open(10, &why));
    std::atomic<int> ready{0}, consumed{0}, errors{0};
    std::atomic<bool> done{false};
    // The writer goes on until 300 layouts are delivered (the reader takes them meanwhile).
    std::thread writer([&] {
      for (int e = 0; ch.deliveries() < 300; ++e) {
        const auto w = ch.begin_write();
        if (!w) continue;
        if (*w && consumed.exchange(0) != 1) ++errors;  // waits on a signal that must be there
        if (ready.exchange(1) != 0) ++errors;           // signals an unsignalled semaphore
        ch.delivered(e, {});
      }
      done = true;
    });
    int taken = 0, last_epoch = -1;
    while (!done) {
      ch.want();
      if (const auto d = ch.take()) {
        if (ready.exchange(0) != 1) ++errors;
        if (consumed.exchange(1) != 0) ++errors;
        if (d->epoch <= last_epoch) ++errors;
        last_epoch = d->epoch;
        ++taken;
        ch.copied();
      }
    }
    writer.join();
    QCOMPARE(errors.load(), 0);
    QVERIFY(taken >= 299);
    QCOMPARE(static_cast<std::uint64_t>(taken) + (ready.load() ? 1 : 0), ch.deliveries());
    // Detached (the renderer's device went): no writes until the next open.
    ch.detach();
    QVERIFY(!ch.live());
    ch.want();
    QVERIFY(!ch.begin_write());
    QVERIFY(ch.open(10, &why));
    QVERIFY(ch.live());
    QCOMPARE(ch.generation(), std::uint64_t{2});
    QVERIFY(ch.begin_write());
    ch.delivered(0, {});
    QCOMPARE(ch.take()->generation, std::uint64_t{2});
  }

  void backendSelection() {
    std::string note;
    auto cpu = make_backend("cpu", &note);
    QCOMPARE(QString::fromStdString(cpu->name()), QString("cpu"));
    auto any = make_backend("auto", &note);
    QVERIFY(!note.empty());
    if (cuda_device_count() == 0) {
      QCOMPARE(QString::fromStdString(any->name()), QString("cpu"));
      QVERIFY2(QString::fromStdString(note).contains("CUDA unavailable"), note.c_str());
      QVERIFY_THROWS_EXCEPTION(orrery::Error, make_backend("cuda", &note));
    }
    QVERIFY_THROWS_EXCEPTION(orrery::Error, make_backend("tpu", &note));
  }

  // cuBLAS and cuSOLVER are not linked but opened by the CUDA backend (cuda/libraries.cu): on a
  // machine with the toolkit, with or without a device, they open and hold every function it
  // calls; a process that never asks for them does not map them.
  void cudaLibrariesOpenOnDemand() {
    if (!cuda_compiled()) QSKIP("CUDA backend not compiled (configured with -DORRERY_CUDA=OFF)");
    auto mapped = [] {
      std::ifstream maps("/proc/self/maps");
      const std::string all((std::istreambuf_iterator<char>(maps)), {});
      return all.find("libcublas") != std::string::npos;
    };
    if (cuda_device_count() == 0)  // else an earlier test's backend may have opened them
      QVERIFY2(!mapped(), "libcublas is mapped before any backend asked for it");
    std::string why;
    QVERIFY2(load_cuda_libraries(&why), why.c_str());
    QVERIFY(mapped());
    QVERIFY(load_cuda_libraries(&why));  // once per process; the same answer
  }
};

QTEST_GUILESS_MAIN(TestStages)
#include "test_stages.moc"
