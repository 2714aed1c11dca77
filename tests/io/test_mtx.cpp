// Matrix Market and Cell Ranger readers on real 10x files: shapes, values, names, the v2/v3
// folder layouts, the .h5 twins, and hostile input (each an orrery::Error naming the file).
#include <QtTest/QtTest>

#include <fstream>
#include <set>

#include "common/shared.hpp"
#include "io/error.hpp"
#include "io/store.hpp"

using namespace orrery;

namespace {

CsrMatrix all_rows(io::Store& s) {
  return s.X->read_rows(0, s.n_obs());
}

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

}  // namespace

class TestMtx : public QObject {
  Q_OBJECT
  std::filesystem::path tenx_;
  QTemporaryDir tmp_;

 private slots:
  void initTestCase() {
    tenx_ = test::shared_dir() / "data" / "scanpy-10x-testdata";
    if (!std::filesystem::exists(tenx_))
      QSKIP(qPrintable(
          QString("10x test data not found at %1").arg(QString::fromStdString(tenx_.string()))));
  }

  void pbmc3kShapeAndTotals() {
    io::Store s = io::open_store(test::pbmc3k_dir().string());
    QCOMPARE(s.format, std::string("mtx"));
    QCOMPARE(s.n_obs(), 2700);
    QCOMPARE(s.n_vars(), 32738);
    CsrMatrix m = all_rows(s);
    QCOMPARE(m.nnz(), 2286884);
    double total = 0;
    for (float v : m.data) total += v;
    QCOMPARE(total, 6390631.0);
    QCOMPARE(QString::fromStdString(s.obs.index[0]), QString("AAACATACAACCAC-1"));
    // Rows are sorted by gene.
    for (std::int64_t r = 0; r < m.n_rows; ++r)
      for (auto k = m.indptr[r] + 1; k < m.indptr[r + 1]; ++k)
        QVERIFY(m.indices[k - 1] < m.indices[k]);
    // Duplicate symbols are made unique as anndata does.
    std::set<std::string> names(s.var.index.begin(), s.var.index.end());
    QCOMPARE(names.size(), s.var.index.size());
  }

  void chunksEqualWholeMatrix() {
    io::Store s = io::open_store(test::pbmc3k_dir().string());
    CsrMatrix whole = all_rows(s);
    std::int64_t nnz = 0;
    for (std::int64_t r0 = 0; r0 < s.n_obs(); r0 += 997) {
      CsrMatrix c = s.X->read_rows(r0, std::min<std::int64_t>(s.n_obs(), r0 + 997));
      QCOMPARE(c.indptr.front(), 0);
      for (std::int64_t k = 0; k < c.nnz(); ++k) {
        QCOMPARE(c.indices[k], whole.indices[nnz + k]);
        QCOMPARE(c.data[k], whole.data[nnz + k]);
      }
      nnz += c.nnz();
    }
    QCOMPARE(nnz, whole.nnz());
  }

  void cellRangerV2MatchesH5() {
    io::Store mtx = io::open_store((tenx_ / "1.2.0/filtered_gene_bc_matrices/hg19_chr21").string());
    io::Store h5 = io::open_store((tenx_ / "1.2.0/filtered_gene_bc_matrices_h5.h5").string());
    QCOMPARE(mtx.n_obs(), 12);
    QCOMPARE(mtx.n_vars(), 343);
    QCOMPARE(h5.format, std::string("10x-h5"));
    compare(mtx, h5);
  }

  void cellRangerV3MatchesH5() {
    io::Store mtx = io::open_store((tenx_ / "3.0.0/filtered_feature_bc_matrix").string());
    io::Store h5 = io::open_store((tenx_ / "3.0.0/filtered_feature_bc_matrix.h5").string());
    QCOMPARE(mtx.n_obs(), 1107);
    QCOMPARE(mtx.n_vars(), 507);
    QCOMPARE(mtx.X->nnz(), 23866);
    compare(mtx, h5);
  }

  void hostileInput_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("message");
    QTest::newRow("empty") << ""
                           << "banner";
    QTest::newRow("not mtx") << "hello\n"
                             << "banner";
    QTest::newRow("array") << "%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n4\n"
                           << "coordinate";
    QTest::newRow("no size") << "%%MatrixMarket matrix coordinate real general\n%\n"
                             << "size line";
    QTest::newRow("bad size") << "%%MatrixMarket matrix coordinate real general\n2 x 3\n"
                              << "size line";
    QTest::newRow("negative") << "%%MatrixMarket matrix coordinate real general\n-2 2 1\n1 1 1\n"
                              << "size line";
    QTest::newRow("huge nnz")
        << "%%MatrixMarket matrix coordinate real general\n2 2 99999999999\n1 1 1\n"
        << "nnz";
    QTest::newRow("truncated") << "%%MatrixMarket matrix coordinate real general\n2 2 3\n1 1 1\n"
                               << "truncated";
    QTest::newRow("extra") << "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 1\n2 2 1\n"
                           << "more entries";
    QTest::newRow("range") << "%%MatrixMarket matrix coordinate real general\n2 2 1\n3 1 1\n"
                           << "out of range";
    QTest::newRow("zero index") << "%%MatrixMarket matrix coordinate real general\n2 2 1\n0 1 1\n"
                                << "out of range";
    QTest::newRow("nan") << "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 nan\n"
                         << "NaN";
    QTest::newRow("inf") << "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 inf\n"
                         << "NaN";
    QTest::newRow("no value") << "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1\n"
                              << "missing value";
    QTest::newRow("duplicate")
        << "%%MatrixMarket matrix coordinate real general\n2 2 2\n1 1 1\n1 1 2\n"
        << "duplicate";
    QTest::newRow("binary")
        << std::string("%%MatrixMarket matrix coordinate real general\n2 2 1\n\xff\xfe\x01 1 1\n")
               .c_str()
        << "bad entry";
  }

  void hostileInput() {
    QFETCH(QString, text);
    QFETCH(QString, message);
    const auto dir = std::filesystem::path(tmp_.path().toStdString()) / QTest::currentDataTag();
    std::filesystem::create_directories(dir);
    write_file(dir / "matrix.mtx", text.toStdString());
    try {
      io::Store s = io::open_store(dir.string());
      QFAIL("no error");
    } catch (const Error& e) {
      const QString what = e.what();
      QVERIFY2(what.contains("matrix.mtx"), qPrintable(what));
      QVERIFY2(what.contains(message), qPrintable(what));
    }
  }

  void barcodeCountMismatch() {
    const auto dir = std::filesystem::path(tmp_.path().toStdString()) / "mismatch";
    std::filesystem::create_directories(dir);
    write_file(dir / "matrix.mtx",
               "%%MatrixMarket matrix coordinate integer general\n2 3 1\n1 1 4\n");
    write_file(dir / "barcodes.tsv", "A\nB\n");
    QVERIFY_THROWS_EXCEPTION(orrery::Error, io::open_store(dir.string()));
  }

  void makeUniqueLikeAnndata() {
    std::vector<std::string> names{"A", "B", "A", "A-1", "A", "B"};
    io::make_unique(names);
    std::vector<std::string> want{"A", "B", "A-2", "A-1", "A-3", "B-1"};
    QCOMPARE(names, want);
  }

 private:
  void compare(io::Store& a, io::Store& b) {
    QCOMPARE(a.n_obs(), b.n_obs());
    QCOMPARE(a.n_vars(), b.n_vars());
    QCOMPARE(a.obs.index, b.obs.index);
    QCOMPARE(a.var.index, b.var.index);
    CsrMatrix x = all_rows(a), y = all_rows(b);
    QCOMPARE(x.indptr, y.indptr);
    QCOMPARE(x.indices, y.indices);
    QCOMPARE(x.data, y.data);
  }
};

QTEST_GUILESS_MAIN(TestMtx)
#include "test_mtx.moc"
