// The pipeline against known cell identities: CellBench's Drop-seq mixture of three lung
// adenocarcinoma lines (../shared/data/cellbench, an R-written gzipped CSV with genes in rows),
// whose singlets demuxlet identified by genotype, not by clustering. Leiden's clusters must
// refine the three lines: each cluster's singlets come from one line and every line is found.
#include <QtTest/QtTest>

#include <map>

#include "common/shared.hpp"
#include "compute/backend.hpp"
#include "compute/metrics.hpp"
#include "compute/pipeline.hpp"
#include "io/store.hpp"
#include "io/text_reader.hpp"

using namespace orrery;

class TestCellbench : public QObject {
  Q_OBJECT
  std::filesystem::path dir_;

 private slots:
  void initTestCase() {
    dir_ = test::shared_dir() / "data" / "cellbench";
    if (!std::filesystem::exists(dir_ / "sc_dropseq.count.csv.gz"))
      QSKIP(qPrintable(QString("CellBench data not found at %1 (set ORRERY_SHARED)")
                           .arg(QString::fromStdString(dir_.string()))));
  }

  void clustersRefineTheCellLines() {
    io::Store store = io::open_store((dir_ / "sc_dropseq.count.csv.gz").string());
    const io::TextTable meta = io::read_text_table((dir_ / "sc_dropseq.metadata.csv.gz").string());
    const auto column = [&](const std::string& name) {
      const auto at = std::find(meta.columns.begin(), meta.columns.end(), name);
      if (at == meta.columns.end()) qFatal("no column %s in the metadata", name.c_str());
      return static_cast<std::size_t>(at - meta.columns.begin());
    };
    const std::size_t line_col = column("cell_line_demuxlet"), call_col = column("demuxlet_cls");
    std::map<std::string, std::size_t> meta_row;
    for (std::size_t i = 0; i < meta.rows.size(); ++i) meta_row[meta.rows[i]] = i;

    // Deep Drop-seq cells (median ~5500 genes): the pbmc3k tutorial's max_genes 2500 would
    // remove them all.
    compute::PipelineParams params;
    params.max_genes = 0;
    auto backend = compute::make_cpu_backend();
    compute::Progress progress;
    const compute::PipelineResult r = compute::run_pipeline(store, params, *backend, progress);
    QCOMPARE(static_cast<int>(r.kept_cells.size()), 225);

    std::vector<std::int32_t> clusters;
    std::vector<std::string> lines;
    std::map<std::int32_t, std::map<std::string, int>> in_cluster;
    for (std::size_t k = 0; k < r.kept_cells.size(); ++k) {
      const auto row = meta_row.find(store.obs.index[r.kept_cells[k]]);
      QVERIFY(row != meta_row.end());
      if (meta.cells[row->second][call_col] != "SNG") continue;  // doublets belong to two lines
      clusters.push_back(r.leiden[k]);
      lines.push_back(meta.cells[row->second][line_col]);
      ++in_cluster[r.leiden[k]][lines.back()];
    }
    QCOMPARE(static_cast<int>(lines.size()), 210);
    // Each cluster stands for its most common line; the singlets so named must be right.
    int right = 0;
    std::map<std::string, int> found;
    for (const auto& [cluster, counts] : in_cluster) {
      const auto best = std::max_element(counts.begin(), counts.end(),
                                         [](auto& a, auto& b) { return a.second < b.second; });
      right += best->second;
      ++found[best->first];
    }
    const double accuracy = static_cast<double>(right) / static_cast<double>(lines.size());
    const double ari = compute::adjusted_rand_index(clusters, compute::encode_labels(lines));
    qInfo("CellBench Drop-seq: %d Leiden clusters; singlets in their cluster's line %.3f, ARI %.3f",
          r.n_clusters, accuracy, ari);
    QVERIFY2(accuracy >= 0.97, qPrintable(QString::number(accuracy)));
    QCOMPARE(found.size(), std::size_t{3});  // no line is lost inside another's cluster
    QVERIFY(r.n_clusters >= 3 && r.n_clusters <= 6);
  }

  // Thresholds that remove a quarter or more of the cells let the run go on, and say so: which
  // bound removed how many, with the metric's median.
  void qcWarnsWhenThresholdsRemoveMany() {
    io::Store store = io::open_store((dir_ / "sc_dropseq.count.csv.gz").string());
    compute::PipelineParams params;
    params.max_genes = 5000;
    params.markers = false;
    params.umap.n_epochs = 5;
    auto backend = compute::make_cpu_backend();
    compute::Progress progress;
    const compute::PipelineResult r = compute::run_pipeline(store, params, *backend, progress);
    const auto kept = static_cast<int>(r.kept_cells.size());
    QVERIFY(kept > 3 && kept < 225 * 3 / 4);
    const std::string expected = "QC kept " + std::to_string(kept) +
                                 " of 225 cells: qc.max_genes 5000 removes " +
                                 std::to_string(225 - kept) + " (median n_genes_by_counts ";
    QVERIFY2(std::any_of(r.warnings.begin(), r.warnings.end(),
                         [&](const std::string& w) { return w.rfind(expected, 0) == 0; }),
             qPrintable(QString::fromStdString(expected)));
  }
};

QTEST_GUILESS_MAIN(TestCellbench)
#include "test_cellbench.moc"
