// End-to-end CPU pipeline on pbmc3k against scanpy 1.9.6 reference values
// (../shared/reference/pbmc3k): QC columns, filtered counts, HVG sets, PCA variance ratio,
// Leiden agreement with the Seurat tutorial annotations.
#include <QtTest/QtTest>

#include <cmath>
#include <set>
#include <unordered_map>

#include "common/shared.hpp"
#include "compute/metrics.hpp"
#include "compute/pipeline.hpp"
#include "io/store.hpp"

using namespace orrery;

class TestPbmc3k : public QObject {
  Q_OBJECT
  io::Store store_;
  compute::PipelineParams params_;
  compute::PipelineResult result_;
  std::filesystem::path ref_;

 private slots:
  void initTestCase() {
    if (!std::filesystem::exists(test::pbmc3k_dir()))
      QSKIP(qPrintable(QString("pbmc3k not found at %1 (set ORRERY_SHARED)")
                           .arg(QString::fromStdString(test::pbmc3k_dir().string()))));
    ref_ = test::shared_dir() / "reference" / "pbmc3k";
    store_ = io::open_store(test::pbmc3k_dir().string());
    auto backend = compute::make_cpu_backend();
    compute::Progress progress;
    result_ = compute::run_pipeline(store_, params_, *backend, progress);
  }

  void shape() {
    QCOMPARE(store_.n_obs(), 2700);
    QCOMPARE(store_.n_vars(), 32738);
    QCOMPARE(store_.X->nnz(), 2286884);
  }

  void qcMatchesScanpy() {
    auto t = test::read_tsv(ref_ / "qc_obs.tsv");
    QCOMPARE(t.rows.size(), std::size_t{2700});
    for (std::size_t i = 0; i < t.rows.size(); ++i) {
      QCOMPARE(QString::fromStdString(store_.obs.index[i]), QString::fromStdString(t.rows[i]));
      QCOMPARE(result_.cell_qc.n_genes_by_counts[i], std::stoi(t.cells[i][0]));
      QVERIFY(std::fabs(result_.cell_qc.total_counts[i] - std::stod(t.cells[i][1])) <=
              1e-6 * std::stod(t.cells[i][1]));
      const double pct = std::stod(t.cells[i][2]);
      QVERIFY2(
          std::fabs(result_.cell_qc.pct_counts_qc[i] - pct) <= 1e-6 * std::max(1.0, pct),
          qPrintable(
              QString("cell %1: %2 vs %3").arg(i).arg(result_.cell_qc.pct_counts_qc[i]).arg(pct)));
    }
    auto v = test::read_tsv(ref_ / "qc_var.tsv");
    QCOMPARE(v.rows.size(), std::size_t{32738});
    for (std::size_t g = 0; g < v.rows.size(); ++g) {
      QCOMPARE(QString::fromStdString(store_.var.index[g]), QString::fromStdString(v.rows[g]));
      QCOMPARE(result_.gene_qc.n_cells_by_counts[g], std::stoll(v.cells[g][0]));
      QVERIFY(std::fabs(result_.gene_qc.mean_counts(g) - std::stod(v.cells[g][1])) <=
              1e-6 * std::max(1e-12, std::stod(v.cells[g][1])) + 1e-12);
      QVERIFY(std::fabs(result_.gene_qc.pct_dropout(g) - std::stod(v.cells[g][3])) <= 1e-6 * 100);
    }
  }

  void filteredCounts() {
    QCOMPARE(result_.kept_cells.size(), std::size_t{2638});
    QCOMPARE(result_.kept_genes.size(), std::size_t{13656});
  }

  void hvgCellRanger() {
    auto t = test::read_tsv(ref_ / "hvg_cell_ranger.tsv");
    QCOMPARE(t.rows.size(), result_.kept_genes.size());
    std::set<std::string> ref, ours;
    double max_mean_err = 0;
    for (std::size_t g = 0; g < t.rows.size(); ++g) {
      QCOMPARE(QString::fromStdString(store_.var.index[result_.kept_genes[g]]),
               QString::fromStdString(t.rows[g]));
      if (t.cells[g][4] == "True") ref.insert(t.rows[g]);
      if (result_.hvg.highly_variable[g]) ours.insert(t.rows[g]);
      max_mean_err =
          std::max(max_mean_err, std::fabs(result_.hvg.means[g] - std::stod(t.cells[g][0])));
    }
    QVERIFY2(max_mean_err < 1e-5, qPrintable(QString("max |mean - ref| = %1").arg(max_mean_err)));
    std::size_t common = 0;
    for (auto& g : ours) common += ref.count(g);
    const double overlap = static_cast<double>(common) / ref.size();
    qInfo("cell_ranger HVG: ours %zu, scanpy %zu, overlap %.4f", ours.size(), ref.size(), overlap);
    QCOMPARE(ref.size(), std::size_t{2000});
    QVERIFY(overlap >= 0.95);
  }

  void pcaVarianceRatio() {
    std::ifstream in(ref_ / "pca_variance_ratio.tsv");
    double max_err = 0;
    for (int c = 0; c < 10; ++c) {
      double ref = 0;
      in >> ref;
      max_err = std::max(max_err, std::fabs(result_.pca.variance_ratio[c] - ref));
    }
    qInfo("PCA variance ratio: max abs error over 10 PCs %.2e", max_err);
    QVERIFY(max_err < 1e-3);
  }

  void knnIncludesSelfFirst() {
    const auto& knn = result_.knn;
    QCOMPARE(knn.k, 15);
    for (std::int64_t i = 0; i < knn.n; ++i) {
      QCOMPARE(knn.indices[i * knn.k], i);
      for (int c = 1; c < knn.k; ++c)
        QVERIFY(knn.distances[i * knn.k + c] >= knn.distances[i * knn.k + c - 1]);
    }
    // Connectivities are symmetric with weights in (0, 1].
    const auto& g = result_.graph.connectivities;
    std::unordered_map<std::int64_t, float> entries;
    for (std::int64_t i = 0; i < g.n_rows; ++i)
      for (auto k = g.indptr[i]; k < g.indptr[i + 1]; ++k) {
        QVERIFY(g.data[k] > 0.0f && g.data[k] <= 1.0f);
        entries[i * g.n_rows + g.indices[k]] = g.data[k];
      }
    for (auto [key, v] : entries) {
      auto it = entries.find((key % g.n_rows) * g.n_rows + key / g.n_rows);
      QVERIFY(it != entries.end());
      QCOMPARE(it->second, v);
    }
  }

  void leidenAgreesWithAnnotations() {
    auto t = test::read_tsv(test::shared_dir() / "data" / "pbmc3k" / "seurat_annotations.tsv");
    std::unordered_map<std::string, std::string> label;
    for (std::size_t i = 0; i < t.rows.size(); ++i)
      label[t.rows[i]] = t.cells[i].empty() ? "" : t.cells[i][0];
    std::vector<std::int32_t> ours;
    std::vector<std::string> theirs;
    for (std::size_t k = 0; k < result_.kept_cells.size(); ++k) {
      const auto& l = label[store_.obs.index[result_.kept_cells[k]]];
      if (l.empty() || l == "NA") continue;
      ours.push_back(result_.leiden[k]);
      theirs.push_back(l);
    }
    const double ari = compute::adjusted_rand_index(ours, compute::encode_labels(theirs));
    qInfo("Leiden: %d clusters, ARI vs Seurat annotations %.4f on %zu cells (scanpy: 7, 0.657)",
          result_.n_clusters, ari, ours.size());
    QVERIFY(ours.size() >= 2600);
    QVERIFY(ari >= 0.6);
  }
};

QTEST_GUILESS_MAIN(TestPbmc3k)
#include "test_pbmc3k.moc"
