// CPU/CUDA parity for the stages the CUDA backend runs (QC, normalize_total + log1p per chunk,
// the HVG moments, the PCA Gram pass and eigensolve, kNN, UMAP, Leiden, Wilcoxon), on pbmc3k and on
// synthetic data, each with the tolerance it states. Runs where a CUDA device exists; otherwise
// skips saying why.
#include <QtTest/QtTest>

#include <cmath>

#include "common/chunks.hpp"
#include "common/graphs.hpp"
#include "common/shared.hpp"
#include "compute/backend.hpp"
#include "compute/metrics.hpp"
#include "compute/pipeline.hpp"
#include "compute/rng.hpp"
#include "compute/spectral.hpp"
#include "compute/synth.hpp"
#include "compute/umap.hpp"
#include "io/store.hpp"

using namespace orrery;
using test::slice_rows;

namespace {

// Rows of a synthetic store with `cells` x `genes`.
CsrMatrix synth_rows(std::int64_t cells, std::int64_t genes) {
  compute::SynthOptions o;
  o.n_cells = cells;
  o.n_genes = genes;
  return compute::SynthGenerator(o).rows(0, cells);
}

// Synthetic counts, their log-normalised rows and scaled columns over `h` of their genes (every
// third).
struct GramCase {
  std::vector<CsrMatrix> counts, chunks;
  compute::ScaledColumns columns;
};

GramCase gram_case(std::int64_t cells, std::int32_t genes, int h) {
  GramCase g;
  compute::SynthOptions o;
  o.n_cells = cells;
  o.n_genes = genes;
  o.seed = 5;
  compute::SynthGenerator gen(o);
  auto cpu = compute::make_cpu_backend();
  std::vector<double> sum(h, 0), sumsq(h, 0);
  g.columns.column.assign(genes, -1);
  for (int c = 0; c < h; ++c) g.columns.column[c * 3] = c;
  for (std::int64_t r0 = 0; r0 < cells; r0 += 1500) {
    CsrMatrix c = gen.rows(r0, std::min(cells, r0 + 1500));
    g.counts.push_back(c);
    cpu->normalize_log1p(c, 1e4);
    for (std::int64_t k = 0; k < c.nnz(); ++k)
      if (const int col = g.columns.column[c.indices[k]]; col >= 0)
        sum[col] += c.data[k], sumsq[col] += double(c.data[k]) * c.data[k];
    g.chunks.push_back(std::move(c));
  }
  for (int c = 0; c < h; ++c) {
    const double m = sum[c] / cells, v = sumsq[c] / cells - m * m;
    g.columns.mean.push_back(static_cast<float>(m));
    g.columns.inv_std.push_back(v > 0 ? static_cast<float>(1 / std::sqrt(v)) : 1.0f);
  }
  return g;
}

// Gaussian blobs in `dims` dimensions, with exact duplicates of a few points (ties).
DenseMatrix blob_points(std::int64_t n, int dims, int clusters, std::uint64_t seed) {
  compute::Rng rng(seed);
  std::vector<std::vector<float>> centre(clusters, std::vector<float>(dims));
  for (auto& c : centre)
    for (auto& v : c) v = static_cast<float>(10 * rng.normal());
  DenseMatrix x(n, dims);
  for (std::int64_t i = 0; i < n; ++i)
    for (int d = 0; d < dims; ++d)
      x.at(i, d) = centre[i % clusters][d] + static_cast<float>(rng.normal());
  for (std::int64_t i = 0; i + 1 < n; i += 997)
    for (int d = 0; d < dims; ++d) x.at(i + 1, d) = x.at(i, d);
  return x;
}

}  // namespace

class TestCudaParity : public QObject {
  Q_OBJECT
  std::unique_ptr<compute::Backend> cuda_, cpu_;

  // Equal doubles, NaN equal to NaN (an empty cell's percentages).
  static void same_bits(const std::vector<double>& a, const std::vector<double>& b,
                        const char* what) {
    QCOMPARE(b.size(), a.size());
    for (std::size_t i = 0; i < a.size(); ++i)
      QVERIFY2(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])),
               qPrintable(QString("%1[%2]: cpu %3 cuda %4")
                              .arg(what)
                              .arg(i)
                              .arg(a[i], 0, 'g', 17)
                              .arg(b[i], 0, 'g', 17)));
  }

  static void close(const std::vector<double>& a, const std::vector<double>& b, const char* what,
                    double rel = 1e-6) {
    QCOMPARE(b.size(), a.size());
    for (std::size_t i = 0; i < a.size(); ++i)
      QVERIFY2(std::fabs(a[i] - b[i]) <= rel * std::max(1.0, std::fabs(a[i])),
               qPrintable(QString("%1[%2]: cpu %3 cuda %4").arg(what).arg(i).arg(a[i]).arg(b[i])));
  }

  // Device row blocks of at most `entries` and Gram/projection tiles of at most `tile_rows`
  // (0: the default) until the returned guard goes.
  static auto small_blocks(int entries, int tile_rows = 0) {
    if (entries > 0) qputenv("ORRERY_CUDA_BLOCK_ENTRIES", QByteArray::number(entries));
    if (tile_rows > 0) qputenv("ORRERY_CUDA_TILE_ROWS", QByteArray::number(tile_rows));
    return qScopeGuard([] {
      qunsetenv("ORRERY_CUDA_BLOCK_ENTRIES");
      qunsetenv("ORRERY_CUDA_TILE_ROWS");
    });
  }

  static constexpr compute::LogNormalize as_is{.apply = false};  // chunks of log data

  static void compare(const CsrMatrix& a, const CsrMatrix& b, float rel_tol) {
    QCOMPARE(a.indptr, b.indptr);
    QCOMPARE(a.indices, b.indices);
    for (std::size_t k = 0; k < a.data.size(); ++k)
      QVERIFY2(
          std::fabs(a.data[k] - b.data[k]) <= rel_tol * std::max(1.0f, std::fabs(a.data[k])),
          qPrintable(QString("element %1: cpu %2 cuda %3").arg(k).arg(a.data[k]).arg(b.data[k])));
  }

 private slots:
  void initTestCase() {
    std::string why;
    if (!compute::cuda_compiled())
      QSKIP("CUDA backend not compiled (configured with -DORRERY_CUDA=OFF)");
    cuda_ = compute::make_cuda_backend(&why);
    if (!cuda_) QSKIP(qPrintable(QString("no CUDA device: %1").arg(QString::fromStdString(why))));
    cpu_ = compute::make_cpu_backend();
    qInfo("CUDA device: %s", why.c_str());
  }

  void normalizeLog1pSynthetic() {
    CsrMatrix a = synth_rows(5000, 3000);
    CsrMatrix b = a;
    cpu_->normalize_log1p(a, 1e4);
    cuda_->normalize_log1p(b, 1e4);
    // Row sums differ only by summation order (double), the transform is shared: 1e-6.
    compare(a, b, 1e-6f);
  }

  // exclude_highly_expressed: every 10th gene left out of the totals, on both backends.
  void normalizeLog1pExcluding() {
    CsrMatrix a = synth_rows(3000, 2000);
    CsrMatrix b = a;
    std::vector<char> excluded(2000, 0);
    for (std::size_t g = 0; g < excluded.size(); g += 10) excluded[g] = 1;
    cpu_->normalize_log1p(a, 1e4, &excluded);
    cuda_->normalize_log1p(b, 1e4, &excluded);
    compare(a, b, 1e-6f);
  }

  void normalizeLog1pPbmc3k() {
    if (!std::filesystem::exists(test::pbmc3k_dir())) QSKIP("pbmc3k not found (set ORRERY_SHARED)");
    io::Store s = io::open_store(test::pbmc3k_dir().string());
    CsrMatrix a = s.X->read_rows(0, s.n_obs());
    CsrMatrix b = a;
    cpu_->normalize_log1p(a, 1e4);
    cuda_->normalize_log1p(b, 1e4);
    compare(a, b, 1e-6f);
  }

  // QC: per cell the same values summed in stored order, top-N over the same sorted values, per
  // gene each gene's cells in row order (qc_math.hpp on both): equal to the last bit, for
  // counts and for non-integer values. Chunks of several sizes go through the same pass.
  void qcPass() {
    // Chunks split into device blocks of at most 3000 entries too (one block otherwise).
    for (const float factor : {1.0f, 0.37f, -1.0f}) {
      const bool tiny = factor < 0;
      const auto restore = small_blocks(tiny ? 3000 : 0);
      CsrMatrix all = synth_rows(12000, 2500);
      for (auto& v : all.data) v *= std::fabs(factor);
      std::vector<char> qc_genes(2500, 0);
      for (std::size_t g = 0; g < qc_genes.size(); g += 7) qc_genes[g] = 1;
      const std::vector<int> top{50, 100, 200, 500};
      compute::CellQc cells[2];
      compute::GeneQc genes[2];
      std::vector<std::int64_t> kept[2];
      compute::Backend* backends[2] = {cpu_.get(), cuda_.get()};
      for (int b = 0; b < 2; ++b) {
        auto pass = backends[b]->qc_pass(qc_genes, top, 2500);
        std::int64_t r0 = 0;
        for (std::int64_t rows : {700, 4000, 1, 5000, 2299}) {
          const CsrMatrix c = slice_rows(all, r0, r0 + rows);
          pass->add(c, cells[b], [&](std::int64_t i) {
            return cells[b].n_genes_by_counts[r0 + i] >= 200 && (r0 + i) % 5 != 0;
          });
          r0 += rows;
        }
        QCOMPARE(r0, std::int64_t{12000});
        pass->finish(genes[b], kept[b]);
      }
      QCOMPARE(cells[1].n_genes_by_counts, cells[0].n_genes_by_counts);
      same_bits(cells[0].total_counts, cells[1].total_counts, "total_counts");
      same_bits(cells[0].total_counts_qc, cells[1].total_counts_qc, "total_counts_mt");
      same_bits(cells[0].pct_counts_qc, cells[1].pct_counts_qc, "pct_counts_mt");
      QCOMPARE(cells[1].top_n, top);
      for (std::size_t t = 0; t < top.size(); ++t)
        same_bits(cells[0].pct_counts_in_top[t], cells[1].pct_counts_in_top[t],
                  "pct_counts_in_top");
      QCOMPARE(genes[1].n_cells_by_counts, genes[0].n_cells_by_counts);
      same_bits(genes[0].total_counts, genes[1].total_counts, "gene total_counts");
      QCOMPARE(genes[1].n_cells, genes[0].n_cells);
      QCOMPARE(kept[1], kept[0]);
    }
  }

  // HVG moments: the log values may differ by an ulp (device log1pf), the sums are then made in
  // the same order: 1e-6 relative. With seurat's expm1 moments, three batches and excluded genes;
  // chunk sizes grow and shrink so the pass's two copy buffers are reused and regrown.
  void momentPass() {
    const std::int64_t genes = 1800;
    CsrMatrix all = synth_rows(9000, genes);
    std::vector<std::int32_t> batch(9000);
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i] = static_cast<std::int32_t>(i * 7 % 3);
    std::vector<char> excluded(genes, 0);
    for (std::int64_t g = 0; g < genes; g += 13) excluded[g] = 1;
    for (const int variant : {0, 1, 2}) {
      const bool with_batches = variant > 0;
      // Variant 2: device blocks of at most 5000 entries, so one chunk fills both copy buffers.
      const auto restore = small_blocks(variant == 2 ? 5000 : 0);
      const compute::MomentOptions o{
          .n_genes = genes,
          .expm1 = with_batches,
          .n_batches = with_batches ? 3 : 0,
          .normalize = {.target_sum = 1e4, .excluded = with_batches ? &excluded : nullptr}};
      compute::GeneMoments m[2];
      compute::Backend* backends[2] = {cpu_.get(), cuda_.get()};
      for (int b = 0; b < 2; ++b) {
        auto pass = backends[b]->moment_pass(o);
        std::int64_t r0 = 0;
        for (std::int64_t rows : {300, 2500, 100, 3000, 3100}) {
          CsrMatrix c = slice_rows(all, r0, r0 + rows);
          pass->add(c, with_batches ? batch.data() + r0 : nullptr);
          r0 += rows;
        }
        m[b] = pass->finish();
      }
      close(m[0].sum, m[1].sum, "sum");
      close(m[0].sumsq, m[1].sumsq, "sumsq");
      close(m[0].exp_sum, m[1].exp_sum, "exp_sum");
      close(m[0].exp_sumsq, m[1].exp_sumsq, "exp_sumsq");
      close(m[0].batch_sum, m[1].batch_sum, "batch_sum");
      close(m[0].batch_sumsq, m[1].batch_sumsq, "batch_sumsq");
      QCOMPARE(m[1].batch_seen, m[0].batch_seen);
      QCOMPARE(m[1].batch_cells, m[0].batch_cells);
      QCOMPARE(m[1].sum.size(), std::size_t(genes));
      QCOMPARE(m[1].exp_sum.size(), std::size_t(with_batches ? genes : 0));
    }
  }

  // seurat_v3's passes: counts as they are (no normalisation), then clipped per gene or per
  // batch and gene. No log1p on either side: the sums are the same numbers in the same order,
  // equal to the last bit.
  void momentPassCounts() {
    const std::int64_t genes = 1500;
    CsrMatrix all = synth_rows(8000, genes);
    std::vector<std::int32_t> batch(8000);
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i] = static_cast<std::int32_t>(i % 4);
    std::vector<double> clip(genes), batch_clip(4 * genes);
    // Clip values that are not binary fractions: sums whose value depends on their order.
    for (std::int64_t g = 0; g < genes; ++g) clip[g] = 1.0 + (g % 7) / 3.0;
    for (std::size_t k = 0; k < batch_clip.size(); ++k) batch_clip[k] = 0.4 + (k % 5) / 3.0;
    for (const int variant : {0, 1, 2}) {
      compute::MomentOptions o{.n_genes = genes, .normalize = {.apply = false}};
      if (variant == 1) o.clip = &clip;
      if (variant == 2) {
        o.n_batches = 4;
        o.batch_clip = &batch_clip;
      }
      compute::GeneMoments m[2];
      compute::Backend* backends[2] = {cpu_.get(), cuda_.get()};
      for (int b = 0; b < 2; ++b) {
        auto pass = backends[b]->moment_pass(o);
        for (std::int64_t r0 = 0; r0 < 8000; r0 += 2000) {
          CsrMatrix c = slice_rows(all, r0, r0 + 2000);
          pass->add(c, variant == 2 ? batch.data() + r0 : nullptr);
        }
        m[b] = pass->finish();
      }
      same_bits(m[0].sum, m[1].sum, "sum");
      same_bits(m[0].sumsq, m[1].sumsq, "sumsq");
      same_bits(m[0].batch_sum, m[1].batch_sum, "batch_sum");
      same_bits(m[0].batch_sumsq, m[1].batch_sumsq, "batch_sumsq");
      QCOMPARE(m[1].batch_seen, m[0].batch_seen);
      QCOMPARE(m[1].batch_cells, m[0].batch_cells);
    }
  }

  // Wilcoxon, each group against the rest, exact and binned: the same sums in the same order
  // and exact rank sums, so the same markers to the last bit. Two groups with one as the
  // reference (the window's selection against the rest) go through the same device path: its
  // means of the others differ in rounding (total minus group), so 1e-12 there.
  void wilcoxon() {
    const std::int64_t n = 7000, genes = 1200;
    const CsrMatrix counts = synth_rows(n, genes);
    CsrMatrix all = counts;
    cpu_->normalize_log1p(all, 1e4);
    // The counts normalised by the device, with some genes out of the totals.
    std::vector<char> excluded(genes, 0);
    for (std::int64_t g = 0; g < genes; g += 9) excluded[g] = 1;
    CsrMatrix device_log = counts;
    cuda_->normalize_log1p(device_log, 1e4, &excluded);
    std::vector<std::int32_t> labels(n);
    for (std::int64_t i = 0; i < n; ++i) labels[i] = static_cast<std::int32_t>(i * 13 % 6) - 1;
    // Chunks of 2400 rows of `m`, made afresh (a visitor may overwrite them).
    const auto source_of = [n](const CsrMatrix& m) -> compute::ChunkSource {
      return [&m, n](const compute::ChunkVisitor& visit) {
        for (std::int64_t r0 = 0; r0 < n; r0 += 2400) {
          CsrMatrix c = slice_rows(m, r0, std::min(n, r0 + 2400));
          visit(c, r0);
        }
      };
    };
    const compute::ChunkSource source = source_of(all);
    // The counts held gene by gene, replayed in chunks of their own size (a pipeline's later
    // passes of exact markers on the device, when the counts fit gene_cache_mib).
    compute::GeneMajorBuilder builder(n, genes, std::size_t{256} << 20, &excluded);
    builder.add(counts, 0);
    const auto by_gene = builder.finish();
    QVERIFY(by_gene);
    compute::Progress progress;
    for (const char* method : {"exact", "binned", "binned-given-edge", "binned-given-edge-blocks",
                               "exact-small-blocks"}) {
      // Device row blocks of at most 4000 entries: a chunk's cells come in several blocks.
      const bool small = std::string(method) == "exact-small-blocks";
      // The bins' edge given (below the data's maximum: the largest values share the last
      // bin): both fill the first gene block's histograms in the statistics pass; "-blocks":
      // gene blocks of 100 genes (5 groups x 64 bins x 4 bytes each), so later ones follow.
      const bool given = std::string(method).rfind("binned-given-edge", 0) == 0;
      const bool gene_blocks = std::string(method) == "binned-given-edge-blocks";
      if (gene_blocks) qputenv("ORRERY_CUDA_GENE_BLOCK_BYTES", "128000");
      const auto unset = qScopeGuard([] { qunsetenv("ORRERY_CUDA_GENE_BLOCK_BYTES"); });
      const auto restore = small_blocks(small ? 4000 : 0);
      compute::WilcoxonOptions o;
      o.method = small ? "exact" : given ? "binned" : method;
      o.tie_correct = true;
      o.n_bins = 64;
      if (given) o.bin_max = 4.0f;
      if (gene_blocks) o.block_bytes = 128000;  // the CPU's blocks alike
      const auto a = cpu_->rank_genes_groups(source, as_is, n, genes, labels, 5, o, progress);
      const auto b = cuda_->rank_genes_groups(source, as_is, n, genes, labels, 5, o, progress);
      QCOMPARE(b.size(), a.size());
      for (std::size_t g = 0; g < a.size(); ++g) {
        same_bits(a[g].scores, b[g].scores, "scores");
        same_bits(a[g].pvals, b[g].pvals, "pvals");
        same_bits(a[g].pvals_adj, b[g].pvals_adj, "pvals_adj");
        same_bits(a[g].logfoldchanges, b[g].logfoldchanges, "logfoldchanges");
        same_bits(a[g].pct_in, b[g].pct_in, "pct_in");
        same_bits(a[g].pct_out, b[g].pct_out, "pct_out");
        QCOMPARE(b[g].order, a[g].order);
      }
      // From counts the device normalises each block as its normalize_log1p does: the same
      // numbers as from that log data.
      const compute::LogNormalize from_counts{.target_sum = 1e4, .excluded = &excluded};
      const auto c = cuda_->rank_genes_groups(source_of(counts), from_counts, n, genes, labels, 5,
                                              o, progress);
      const auto d =
          cuda_->rank_genes_groups(source_of(device_log), as_is, n, genes, labels, 5, o, progress);
      const auto e = cuda_->rank_genes_groups(by_gene->source(std::size_t{1} << 20), from_counts, n,
                                              genes, labels, 5, o, progress);
      QCOMPARE(c.size(), d.size());
      QCOMPARE(e.size(), d.size());
      for (std::size_t g = 0; g < c.size(); ++g) {
        same_bits(d[g].scores, c[g].scores, "scores from counts");
        same_bits(d[g].pvals, c[g].pvals, "pvals from counts");
        same_bits(d[g].logfoldchanges, c[g].logfoldchanges, "logfoldchanges from counts");
        same_bits(d[g].scores, e[g].scores, "scores from replayed counts");
        same_bits(d[g].pvals, e[g].pvals, "pvals from replayed counts");
      }
    }
    std::vector<std::int32_t> two(n);
    for (std::int64_t i = 0; i < n; ++i) two[i] = i % 7 == 0 ? 0 : 1;
    compute::WilcoxonOptions o;
    o.method = "exact";
    o.reference = 1;
    const auto a = cpu_->rank_genes_groups(source, as_is, n, genes, two, 2, o, progress);
    const auto b = cuda_->rank_genes_groups(source, as_is, n, genes, two, 2, o, progress);
    QCOMPARE(b.size(), std::size_t{1});
    QCOMPARE(b[0].group, 0);
    same_bits(a[0].scores, b[0].scores, "scores");
    same_bits(a[0].pvals, b[0].pvals, "pvals");
    close(a[0].logfoldchanges, b[0].logfoldchanges, "logfoldchanges", 1e-12);
  }

  // Tie blocks beyond 2^53 / t^2 (t > 208063 cells): t^3 - t is rounded, and the device must
  // round it as the CPU does (no fused multiply-add). 300k cells, 6 sparse genes, tie_correct.
  void wilcoxonLargeTieBlocks() {
    const std::int64_t n = 300000, genes = 6;
    CsrMatrix all;
    all.n_rows = n;
    all.n_cols = genes;
    compute::Rng rng(3);
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int32_t g = 0; g < genes; ++g)
        if (rng.uniform() < 0.1 + 0.05 * g) {
          all.indices.push_back(g);
          all.data.push_back(static_cast<float>(1 + rng.next() % 5));
        }
      all.indptr.push_back(all.nnz());
    }
    std::vector<std::int32_t> labels(n);
    for (std::int64_t i = 0; i < n; ++i) labels[i] = static_cast<std::int32_t>(i % 3);
    auto source = [&](const compute::ChunkVisitor& visit) {
      for (std::int64_t r0 = 0; r0 < n; r0 += 100000) {
        CsrMatrix c = slice_rows(all, r0, r0 + 100000);
        visit(c, r0);
      }
    };
    compute::Progress progress;
    for (const char* method : {"exact", "binned"}) {
      compute::WilcoxonOptions o;
      o.method = method;
      o.tie_correct = true;
      const auto a = cpu_->rank_genes_groups(source, as_is, n, genes, labels, 3, o, progress);
      const auto b = cuda_->rank_genes_groups(source, as_is, n, genes, labels, 3, o, progress);
      for (std::size_t g = 0; g < a.size(); ++g) {
        same_bits(a[g].scores, b[g].scores, "scores");
        same_bits(a[g].pvals, b[g].pvals, "pvals");
      }
    }
  }

  // The Gram pass on log data: both add the same products in double, in other orders: 1e-12 of
  // the largest. From counts (each normalises them; the device's log1pf may differ from the
  // host's by an ulp): 1e-6.
  // Variant 2: from counts, device blocks of at most 60000 entries and tiles of 64 rows, so
  // chunks come in several blocks and blocks in several tiles.
  void gramPass() {
    const GramCase g = gram_case(9000, 3000, 700);
    for (const int variant : {0, 1, 2}) {
      const bool from_counts = variant > 0;
      const auto restore = small_blocks(variant == 2 ? 60000 : 0, variant == 2 ? 64 : 0);
      const compute::LogNormalize normalize{.apply = from_counts, .target_sum = 1e4};
      auto a = cpu_->gram_pass(g.columns, normalize);
      auto b = cuda_->gram_pass(g.columns, normalize);
      for (const auto& chunk : from_counts ? g.counts : g.chunks) {
        CsrMatrix ca = chunk, cb = chunk;
        a->add(ca);
        b->add(cb);
      }
      const compute::GramSums sa = a->finish(), sb = b->finish();
      const double tol = from_counts ? 1e-6 : 1e-12;
      QCOMPARE(sb.n, sa.n);
      QVERIFY((sa.w - sb.w).cwiseAbs().maxCoeff() <= tol * sa.w.cwiseAbs().maxCoeff());
      const Eigen::MatrixXd la = sa.ww.triangularView<Eigen::Lower>();
      const Eigen::MatrixXd lb = sb.ww.triangularView<Eigen::Lower>();
      const double err = (la - lb).cwiseAbs().maxCoeff() / la.cwiseAbs().maxCoeff();
      qInfo("gram pass (variant %d): max relative difference %.3g", variant, err);
      QVERIFY2(err <= tol, qPrintable(QString::number(err)));
      QVERIFY(la.cwiseAbs().maxCoeff() > 0);
    }
  }

  // The pool keeps freed blocks for reuse, which the device does not count as free: a stage
  // planning its memory after an earlier stage's peak must still see that memory (a Gram pass
  // of 8192 genes holds 512 MiB of W^T W).
  void freedPoolMemoryIsAvailable() {
    const std::int64_t before = cuda_->device_free_bytes();
    QVERIFY(before > 0);
    const std::int32_t genes = 8192;
    compute::ScaledColumns columns;
    for (std::int32_t g = 0; g < genes; ++g) {
      columns.column.push_back(g);
      columns.mean.push_back(0.5f);
      columns.inv_std.push_back(1.0f);
    }
    CsrMatrix chunk = synth_rows(300, genes);
    cpu_->normalize_log1p(chunk, 1e4);
    {
      auto gram = cuda_->gram_pass(columns, as_is);
      gram->add(chunk);
      QCOMPARE(gram->finish().ww.rows(), Eigen::Index{genes});
    }
    QVERIFY(cuda_->take_host_fallbacks().empty());
    const std::int64_t after = cuda_->device_free_bytes();
    qInfo("device memory free: %lld MiB before, %lld MiB after the Gram pass",
          static_cast<long long>(before >> 20), static_cast<long long>(after >> 20));
    // cuBLAS's first use takes its workspace and kernels outside the pool: 128 MiB of slack.
    QVERIFY2(after >= before - (128 << 20), "the pool's freed blocks are not counted as free");
  }

  // Projection onto the PCs: the CPU sums each row's offsets times the axes, the device a
  // DGEMM of the densified tiles (zeros included), in other orders; the floats agree to 1e-5
  // of the largest coordinate, from log data and from counts (variant 2: in small blocks and
  // tiles, as gramPass). Chunks of different sizes, so a chunk's rows written late (the device
  // pass writes one chunk behind) land in place.
  void projection() {
    const GramCase g = gram_case(9000, 3000, 600);
    compute::GramAccumulator acc(g.columns);
    for (const auto& c : g.chunks) acc.add(c);
    const compute::PcaModel model = cpu_->pca(acc.covariance(), acc.mean(), 40);
    for (const int variant : {0, 1, 2}) {
      const bool from_counts = variant > 0;
      const auto restore = small_blocks(variant == 2 ? 60000 : 0, variant == 2 ? 64 : 0);
      const compute::LogNormalize normalize{.apply = from_counts, .target_sum = 1e4};
      DenseMatrix a(9000, 40), b(9000, 40);
      auto pa = cpu_->projection_pass(model, g.columns, normalize);
      auto pb = cuda_->projection_pass(model, g.columns, normalize);
      std::int64_t row = 0;
      for (const auto& c : from_counts ? g.counts : g.chunks) {
        // 1500-row chunks, the last ones split in two
        const std::int64_t half = row >= 6000 ? c.n_rows / 2 : c.n_rows;
        for (const auto& [r0, r1] : {std::pair{std::int64_t{0}, half}, std::pair{half, c.n_rows}}) {
          if (r0 == r1) continue;
          CsrMatrix ca = slice_rows(c, r0, r1), cb = ca;
          pa->add(ca, a, row);
          pb->add(cb, b, row);
          row += r1 - r0;
        }
      }
      pa->finish();
      pb->finish();
      QCOMPARE(row, std::int64_t{9000});
      double largest = 0, worst = 0;
      for (std::size_t e = 0; e < a.values.size(); ++e) {
        largest = std::max(largest, std::fabs(double(a.values[e])));
        worst = std::max(worst, std::fabs(double(a.values[e]) - b.values[e]));
      }
      qInfo("projection cpu vs cuda (variant %d): max difference %.3g of largest %.3g", variant,
            worst, largest);
      QVERIFY(largest > 0);
      QVERIFY2(worst <= 1e-5 * largest, qPrintable(QString::number(worst)));
    }
  }

  // Eigensolve: LAPACK dsyevr and cuSOLVER syevd on one covariance; variances to 1e-10 of the
  // largest, and axes (signs fixed by the shared convention) to 1e-7 where the eigengap is
  // clear.
  void eigensolve() {
    const GramCase g = gram_case(6000, 2400, 500);
    compute::GramAccumulator acc(g.columns);
    for (const auto& c : g.chunks) acc.add(c);
    const Eigen::MatrixXd cov = acc.covariance();
    const compute::PcaModel a = cpu_->pca(cov, acc.mean(), 30);
    const compute::PcaModel b = cuda_->pca(cov, acc.mean(), 30);
    QCOMPARE(b.variance.size(), a.variance.size());
    for (std::size_t c = 0; c < a.variance.size(); ++c) {
      QVERIFY(std::fabs(a.variance[c] - b.variance[c]) <= 1e-10 * a.variance[0]);
      QVERIFY(std::fabs(a.variance_ratio[c] - b.variance_ratio[c]) <= 1e-10);
      const double gap =
          std::min(c > 0 ? a.variance[c - 1] - a.variance[c] : 1e300,
                   c + 1 < a.variance.size() ? a.variance[c] - a.variance[c + 1] : 1e300);
      if (gap < 1e-3 * a.variance[0]) continue;
      const double diff = (a.components.col(c) - b.components.col(c)).cwiseAbs().maxCoeff();
      QVERIFY2(diff <= 1e-7, qPrintable(QString("axis %1: %2").arg(c).arg(diff)));
    }
  }

  // Exact kNN over several query and candidate tiles (n > 32768), with duplicated points:
  // the GPU selects a margin of candidates on float dot products, then ranks them on distances
  // computed directly. Neighbour sets agree to 0.999 (near-ties at the k-th place may swap),
  // every query is its own first neighbour, and shared neighbours' distances agree within
  // 1e-5 relative + 1e-4 (the CPU's |a|^2 + |b|^2 - 2ab leaves ~1e-6 even for duplicates).
  void knnExact() {
    for (const char* metric : {"euclidean", "cosine"}) {
      const DenseMatrix x = blob_points(41000, 30, 12, 3);
      compute::KnnOptions o;
      o.n_neighbors = 15;
      o.metric = metric;
      o.method = "exact";
      compute::Progress quiet;
      const compute::KnnResult a = compute::exact_knn(x, o, quiet);
      const compute::KnnResult b = cuda_->knn(x, o, quiet);
      QCOMPARE(b.n, a.n);
      QCOMPARE(b.k, a.k);
      const double recall = compute::knn_recall(b, a);
      QVERIFY2(recall >= 0.999, qPrintable(QString("%1 recall %2").arg(metric).arg(recall)));
      double worst = 0;
      for (std::int64_t i = 0; i < a.n; ++i) {
        QCOMPARE(b.indices[i * b.k], i);
        QCOMPARE(b.distances[i * b.k], 0.0f);
        for (int t = 1; t < a.k; ++t) {
          QVERIFY(b.distances[i * b.k + t] >= b.distances[i * b.k + t - 1]);
          for (int u = 1; u < a.k; ++u)
            if (a.indices[i * a.k + u] == b.indices[i * b.k + t]) {
              const double da = a.distances[i * a.k + u], db = b.distances[i * b.k + t];
              worst = std::max(worst, std::fabs(da - db) / (1e-5 * da + 1e-4));
            }
        }
      }
      QVERIFY2(worst <= 1.0, qPrintable(QString("%1 distance error %2").arg(metric).arg(worst)));
    }
  }

  // Approximate kNN by inverted file lists: recall against the CPU's exact lists >= 0.95 at
  // k = 15 (the bound), every point its own first neighbour, and the neighbours it
  // reports at their exact distances (ranked like the exact search's).
  void knnIvf() {
    const DenseMatrix x = blob_points(60000, 30, 40, 8);
    compute::KnnOptions o;
    o.n_neighbors = 15;
    compute::Progress quiet;
    o.method = "exact";
    const compute::KnnResult exact = compute::exact_knn(x, o, quiet);
    o.method = "ivf";
    const compute::KnnResult approx = cuda_->knn(x, o, quiet);
    QCOMPARE(approx.n, exact.n);
    const double recall = compute::knn_recall(approx, exact);
    qInfo("ivf (%d lists, %d probes) recall %.4f", 245, o.ivf_probes, recall);
    QVERIFY2(recall >= 0.95, qPrintable(QString::number(recall)));
    for (std::int64_t i = 0; i < approx.n; i += 7) {
      QCOMPARE(approx.indices[i * approx.k], i);
      const std::int64_t j = approx.indices[i * approx.k + 1];
      double d2 = 0;
      for (int c = 0; c < x.cols; ++c) d2 += std::pow(double(x.at(i, c)) - x.at(j, c), 2);
      QVERIFY(std::fabs(approx.distances[i * approx.k + 1] - std::sqrt(d2)) <=
              1e-5 * std::sqrt(d2) + 1e-4);
    }
    // Fewer probes search less: lower recall, still sane.
    o.ivf_probes = 2;
    const double low = compute::knn_recall(cuda_->knn(x, o, quiet), exact);
    qInfo("ivf with 2 probes: recall %.4f", low);
    QVERIFY(low < recall && low > 0.3);
  }

  // Fuzzy memberships: the same per-row bisection (fuzzy_math.hpp); only exp's last bits differ
  // (glibc vs CUDA), which can move a row's bisection by one step near its 1e-5 stopping
  // tolerance, so memberships agree to 1e-4 relative, almost all to the float; the unions
  // built from each have the same entries.
  void fuzzyMemberships() {
    const DenseMatrix x = blob_points(30000, 20, 8, 5);
    compute::Progress quiet;
    const compute::KnnResult knn = compute::exact_knn(x, {.n_neighbors = 15}, quiet);
    const std::vector<float> a = cpu_->fuzzy_memberships(knn, 1.0);
    const std::vector<float> b = cuda_->fuzzy_memberships(knn, 1.0);
    QCOMPARE(b.size(), a.size());
    double worst = 0;
    std::size_t equal = 0;
    for (std::size_t e = 0; e < a.size(); ++e) {
      worst = std::max(worst, std::fabs(double(a[e]) - b[e]) / std::max(1e-30, double(a[e])));
      equal += a[e] == b[e];
      if (knn.indices[e] == static_cast<std::int64_t>(e / 15)) QCOMPARE(b[e], 0.0f);
    }
    qInfo("fuzzy memberships cpu vs cuda: max relative %.3g, %.5f identical", worst,
          double(equal) / a.size());
    QVERIFY2(worst < 1e-4, qPrintable(QString::number(worst)));
    QVERIFY(equal >= 0.99 * a.size());
    const compute::FuzzyGraph ga = compute::fuzzy_union(knn, a), gb = compute::fuzzy_union(knn, b);
    QCOMPARE(gb.connectivities.indptr, ga.connectivities.indptr);
    QCOMPARE(gb.connectivities.indices, ga.connectivities.indices);
    // The union on the device: the host's union of the device's memberships, bit for bit,
    // also with missing neighbours (-1), a neighbour listed twice and the mixed set operation.
    compute::KnnResult odd = knn;
    for (std::int64_t i = 0; i < odd.n; i += 7) odd.indices[i * 15 + 14] = -1;
    for (std::int64_t i = 3; i < odd.n; i += 11) {
      odd.indices[i * 15 + 13] = odd.indices[i * 15 + 12];
      odd.distances[i * 15 + 13] = odd.distances[i * 15 + 12];
    }
    for (double mix : {1.0, 0.5}) {
      const compute::FuzzyGraph dev = cuda_->fuzzy_simplicial_set(odd, 1.0, mix);
      const compute::FuzzyGraph host =
          compute::fuzzy_union(odd, cuda_->fuzzy_memberships(odd, 1.0), mix);
      for (const auto& [d, h] : {std::pair{&dev.connectivities, &host.connectivities},
                                 std::pair{&dev.distances, &host.distances}}) {
        QCOMPARE(d->indptr, h->indptr);
        QCOMPARE(d->indices, h->indices);
        QCOMPARE(d->data, h->data);
      }
    }
    QCOMPARE(cpu_->fuzzy_simplicial_set(odd, 1.0).connectivities.indices,
             cuda_->fuzzy_simplicial_set(odd, 1.0).connectivities.indices);
  }

  // The spectral layout's eigenvectors by the device's Lanczos (every component of 128
  // vertices and more: four blob components, then one uneven 160 x 40 lattice, whose wanted
  // eigenvalues are apart by more than the tolerance) and by the same iteration on the host:
  // the same layout but for rounding, with no host fallback.
  void spectralLayout() {
    const DenseMatrix x = blob_points(20000, 20, 4, 11);
    compute::Progress quiet;
    const compute::FuzzyGraph blobs =
        compute::fuzzy_simplicial_set(compute::exact_knn(x, {.n_neighbors = 15}, quiet));
    const int w = 160, h = 40, n = w * h;
    const CsrMatrix lattice = test::lattice_graph(w, h, test::uneven_weight);
    const std::pair<const CsrMatrix*, DenseMatrix> cases[] = {{&blobs.connectivities, x},
                                                              {&lattice, DenseMatrix(n, 2)}};
    for (const auto& [graph, data] : cases) {
      cuda_->take_host_fallbacks();
      const compute::SpectralResult a =
          compute::spectral_layout(*graph, data, 0, cpu_->spectral_eigensolver(0));
      const compute::SpectralResult b =
          compute::spectral_layout(*graph, data, 0, cuda_->spectral_eigensolver(0));
      QCOMPARE(b.note, a.note);
      const auto fallbacks = cuda_->take_host_fallbacks();
      QVERIFY2(fallbacks.empty(), fallbacks.empty() ? "" : fallbacks.front().c_str());
      double most = 0;
      for (std::size_t i = 0; i < a.embedding.values.size(); ++i)
        most = std::max(most, double(std::fabs(a.embedding.values[i] - b.embedding.values[i])));
      qInfo("spectral layout (%s) host vs device Lanczos: max difference %.3g of 10",
            a.note.c_str(), most);
      QVERIFY(most < 1e-3);
    }
  }

  // UMAP: the same per-vertex arithmetic and negative samples on both (umap_step.hpp); only
  // pow's last bits differ (glibc vs CUDA), so after 20 epochs the layouts agree to 1e-3 for
  // most points, and a full run separates the blobs as well as the CPU does.
  void umapLayout() {
    const int clusters = 6;
    const DenseMatrix x = blob_points(4000, 20, clusters, 9);
    compute::Progress quiet;
    const compute::FuzzyGraph g =
        compute::fuzzy_simplicial_set(compute::exact_knn(x, {.n_neighbors = 15}, quiet));
    const DenseMatrix init = compute::initial_layout_from_pca(x, 1);
    compute::UmapOptions o;
    o.n_epochs = 20;
    const DenseMatrix a = cpu_->umap(g.connectivities, init, o, quiet, {});
    const DenseMatrix b = cuda_->umap(g.connectivities, init, o, quiet, {});
    std::vector<double> diff;
    for (std::size_t i = 0; i < a.values.size(); ++i)
      diff.push_back(std::fabs(double(a.values[i]) - b.values[i]));
    std::sort(diff.begin(), diff.end());
    const double median = diff[diff.size() / 2], p99 = diff[diff.size() * 99 / 100];
    qInfo("umap 20 epochs cpu vs cuda: median %.3g, 99th percentile %.3g, max %.3g", median, p99,
          diff.back());
    QVERIFY2(p99 <= 1e-3, qPrintable(QString::number(p99)));
    QVERIFY(std::none_of(b.values.begin(), b.values.end(), [](float v) { return std::isnan(v); }));
    // Full schedule: every point is nearest its own blob's 2-D centroid on both backends.
    o.n_epochs = 0;
    for (auto* backend : {cpu_.get(), cuda_.get()}) {
      const DenseMatrix e = backend->umap(g.connectivities, init, o, quiet, {});
      std::vector<double> cx(clusters, 0), cy(clusters, 0);
      for (std::int64_t i = 0; i < e.rows; ++i)
        cx[i % clusters] += e.at(i, 0) / (e.rows / clusters),
            cy[i % clusters] += e.at(i, 1) / (e.rows / clusters);
      std::int64_t right = 0;
      for (std::int64_t i = 0; i < e.rows; ++i) {
        int best = 0;
        double best_d = 1e300;
        for (int c = 0; c < clusters; ++c) {
          const double d = std::hypot(e.at(i, 0) - cx[c], e.at(i, 1) - cy[c]);
          if (d < best_d) best_d = d, best = c;
        }
        right += best == i % clusters;
      }
      qInfo("umap %s: %.4f of points nearest their blob's centroid", backend->name().c_str(),
            double(right) / e.rows);
      QVERIFY(right >= 0.99 * e.rows);
    }
  }

  // Leiden's parallel flavour (the CUDA backend's default): the device's labels are the CPU
  // twin's bit for bit (integer sums, the same per-vertex decisions: leiden_math.hpp).
  void leidenParallel() {
    const DenseMatrix x = blob_points(40000, 20, 10, 11);
    compute::Progress quiet;
    const compute::FuzzyGraph g =
        compute::fuzzy_simplicial_set(compute::exact_knn(x, {.n_neighbors = 15}, quiet));
    struct Case {
      std::uint64_t seed;
      double resolution;
      int n_iterations;
    };
    for (const Case c : {Case{0, 1.0, -1}, Case{7, 0.5, 2}, Case{1, 3.0, 1}}) {
      compute::LeidenOptions o;
      o.seed = c.seed;
      o.resolution = c.resolution;
      o.n_iterations = c.n_iterations;
      o.flavor = "parallel";
      const auto a = cpu_->leiden(g.connectivities, o, quiet);
      const auto b = cuda_->leiden(g.connectivities, o, quiet);
      qInfo("leiden parallel, resolution %.1f: %d clusters; cpu vs cuda ARI %.6f", c.resolution,
            *std::max_element(a.begin(), a.end()) + 1, compute::adjusted_rand_index(a, b));
      QCOMPARE(b, a);
    }
    compute::LeidenOptions o;
    QCOMPARE(cuda_->leiden_flavor(o), std::string("parallel"));
    QCOMPARE(cpu_->leiden_flavor(o), std::string("igraph"));
  }

  void pipelineSameAnswers() {
    if (!std::filesystem::exists(test::pbmc3k_dir())) QSKIP("pbmc3k not found (set ORRERY_SHARED)");
    io::Store s1 = io::open_store(test::pbmc3k_dir().string());
    io::Store s2 = io::open_store(test::pbmc3k_dir().string());
    compute::PipelineParams p;
    compute::Progress progress;
    auto r1 = compute::run_pipeline(s1, p, *cpu_, progress);
    auto r2 = compute::run_pipeline(s2, p, *cuda_, progress);
    // QC on the device: the CPU's numbers.
    QCOMPARE(r2.cell_qc.n_genes_by_counts, r1.cell_qc.n_genes_by_counts);
    same_bits(r1.cell_qc.total_counts, r2.cell_qc.total_counts, "total_counts");
    same_bits(r1.cell_qc.pct_counts_qc, r2.cell_qc.pct_counts_qc, "pct_counts_mt");
    for (std::size_t t = 0; t < r1.cell_qc.pct_counts_in_top.size(); ++t)
      same_bits(r1.cell_qc.pct_counts_in_top[t], r2.cell_qc.pct_counts_in_top[t],
                "pct_counts_in_top");
    QCOMPARE(r2.gene_qc.n_cells_by_counts, r1.gene_qc.n_cells_by_counts);
    QCOMPARE(r2.kept_gene_n_cells, r1.kept_gene_n_cells);
    QCOMPARE(r1.kept_cells, r2.kept_cells);
    QCOMPARE(r1.hvg_genes, r2.hvg_genes);
    for (int c = 0; c < 10; ++c)
      QVERIFY(std::fabs(r1.pca.variance_ratio[c] - r2.pca.variance_ratio[c]) < 1e-6);
    // X_pca to float rounding (axis signs are fixed by one convention).
    double worst = 0;
    for (std::int64_t i = 0; i < r1.x_pca.rows; ++i)
      for (int c = 0; c < 10; ++c)
        worst = std::max(worst, double(std::fabs(r1.x_pca.at(i, c) - r2.x_pca.at(i, c))));
    QVERIFY2(worst < 1e-3, qPrintable(QString::number(worst)));
    // Neighbours: the GPU's exact kNN against the CPU's (exact below 50k cells); clusters.
    const double recall = compute::knn_recall(r2.knn, r1.knn);
    QVERIFY2(recall >= 0.99, qPrintable(QString::number(recall)));
    const double ari = compute::adjusted_rand_index(r1.leiden, r2.leiden);
    qInfo("pbmc3k cpu vs cuda: kNN recall %.5f, Leiden ARI %.4f", recall, ari);
    QCOMPARE(r2.leiden_flavor, std::string("parallel"));  // igraph's on the CPU
    QVERIFY2(ari >= 0.9, qPrintable(QString::number(ari)));
    // Markers of the CPU's clusters, each backend normalising the counts (the device's values
    // may differ by an ulp, so ties may break otherwise): top-10 genes per cluster nearly the
    // same.
    std::vector<std::vector<compute::GroupMarkers>> m;
    for (compute::Backend* b : {cpu_.get(), cuda_.get()})
      m.push_back(b->rank_genes_groups(compute::kept_counts_source(s1, r1, p),
                                       compute::log_normalize_of(r1, p),
                                       static_cast<std::int64_t>(r1.kept_cells.size()),
                                       static_cast<std::int64_t>(r1.kept_genes.size()), r1.leiden,
                                       r1.n_clusters, p.wilcoxon, progress));
    int shared = 0, total = 0;
    for (std::size_t g = 0; g < m[0].size(); ++g)
      for (int i = 0; i < 10; ++i, ++total)
        shared += std::find(m[1][g].order.begin(), m[1][g].order.begin() + 10, m[0][g].order[i]) !=
                  m[1][g].order.begin() + 10;
    qInfo("pbmc3k markers cpu vs cuda: %d of %d top-10 genes shared", shared, total);
    QVERIFY(total >= 20);
    QVERIFY(shared >= 0.95 * total);
  }
};

QTEST_GUILESS_MAIN(TestCudaParity)
#include "test_cuda_parity.moc"
