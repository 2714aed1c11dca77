// CPU/CUDA parity for the stages the CUDA backend runs (normalize_total + log1p per chunk), on
// pbmc3k and on synthetic data. Runs where a CUDA device exists; otherwise skips saying why.
#include <QtTest/QtTest>

#include <cmath>

#include "common/shared.hpp"
#include "compute/backend.hpp"
#include "compute/pipeline.hpp"
#include "compute/synth.hpp"
#include "io/store.hpp"

using namespace orrery;

namespace {

// Rows of a synthetic store with `cells` x `genes`.
CsrMatrix synth_rows(std::int64_t cells, std::int64_t genes) {
  compute::SynthOptions o;
  o.n_cells = cells;
  o.n_genes = genes;
  return compute::SynthGenerator(o).rows(0, cells);
}

}  // namespace

class TestCudaParity : public QObject {
  Q_OBJECT
  std::unique_ptr<compute::Backend> cuda_, cpu_;

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

  void pipelineSameAnswers() {
    if (!std::filesystem::exists(test::pbmc3k_dir())) QSKIP("pbmc3k not found (set ORRERY_SHARED)");
    io::Store s1 = io::open_store(test::pbmc3k_dir().string());
    io::Store s2 = io::open_store(test::pbmc3k_dir().string());
    compute::PipelineParams p;
    compute::Progress progress;
    auto r1 = compute::run_pipeline(s1, p, *cpu_, progress);
    auto r2 = compute::run_pipeline(s2, p, *cuda_, progress);
    QCOMPARE(r1.kept_cells, r2.kept_cells);
    QCOMPARE(r1.hvg_genes, r2.hvg_genes);
    for (int c = 0; c < 10; ++c)
      QVERIFY(std::fabs(r1.pca.variance_ratio[c] - r2.pca.variance_ratio[c]) < 1e-6);
  }
};

QTEST_GUILESS_MAIN(TestCudaParity)
#include "test_cuda_parity.moc"
