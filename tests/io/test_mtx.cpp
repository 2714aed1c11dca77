// Matrix Market and Cell Ranger readers on real 10x files: shapes, values, names, the v2/v3
// folder layouts, the .h5 twins, and hostile input (each an orrery::Error naming the file).
#include <QtTest/QtTest>

#include <sys/stat.h>

#include <fstream>
#include <limits>
#include <set>

#include "common/errors.hpp"
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
    // Declared shapes that would allocate gigabytes before the first entry is read.
    QTest::newRow("huge unnamed cells")
        << "%%MatrixMarket matrix coordinate integer general\n2 500000000 0\n"
        << "without barcodes";
    // rows * cols beyond int64: checked by division, then refused for want of names files.
    QTest::newRow("rows*cols beyond int64")
        << "%%MatrixMarket matrix coordinate integer general\n"
           "2000000000 1000000000000 9000000000000000000\n1 1 1\n"
        << "without barcodes";
    QTest::newRow("nnz beyond rows*cols") << "%%MatrixMarket matrix coordinate integer general\n"
                                             "3 1099511627776 9000000000000000000\n1 1 1\n"
                                          << "nnz exceeds rows*cols";
    QTest::newRow("absurd cells")
        << "%%MatrixMarket matrix coordinate integer general\n2 4611686018427387904 1\n1 1 1\n"
        << "absurd number of columns";
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
    const QString what = test::error_message([&] { io::open_store(dir.string()); });
    QVERIFY2(what.contains("matrix.mtx"), qPrintable(what));
    QVERIFY2(what.contains(message), qPrintable(what));
  }

  void barcodeCountMismatch() {
    const auto dir = std::filesystem::path(tmp_.path().toStdString()) / "mismatch";
    std::filesystem::create_directories(dir);
    write_file(dir / "matrix.mtx",
               "%%MatrixMarket matrix coordinate integer general\n2 3 1\n1 1 4\n");
    write_file(dir / "barcodes.tsv", "A\nB\n");
    QVERIFY_THROWS_EXCEPTION(orrery::Error, io::open_store(dir.string()));
  }

  // A declared shape that disagrees with the names files is refused before anything of that
  // size is allocated; names that are not UTF-8 are errors naming the file and line.
  void namesFilesBoundTheShape() {
    const auto dir = std::filesystem::path(tmp_.path().toStdString()) / "huge-declared";
    std::filesystem::create_directories(dir);
    write_file(dir / "matrix.mtx",
               "%%MatrixMarket matrix coordinate integer general\n2 500000000 1\n1 1 4\n");
    write_file(dir / "barcodes.tsv", "A\nB\n");
    write_file(dir / "features.tsv", "g1\tG1\ng2\tG2\n");
    QElapsedTimer clock;
    clock.start();
    QString what = test::error_message([&] { io::open_store(dir.string()); });
    QVERIFY2(what.contains("matrix.mtx") && what.contains("barcodes file lists 2"),
             qPrintable(what));
    QVERIFY(clock.elapsed() < 2000);  // refused up front, not after allocating 4 GB
    // A pipe would not read the same on the second pass: refused.
    const auto pipe = std::filesystem::path(tmp_.path().toStdString()) / "pipe";
    std::filesystem::create_directories(pipe);
    QCOMPARE(::mkfifo((pipe / "matrix.mtx").c_str(), 0600), 0);
    what = test::error_message([&] { io::open_store(pipe.string()); });
    QVERIFY2(what.contains("matrix.mtx") && what.contains("not a regular file"), qPrintable(what));
    const auto latin1 = std::filesystem::path(tmp_.path().toStdString()) / "latin1";
    std::filesystem::create_directories(latin1);
    write_file(latin1 / "matrix.mtx",
               "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 4\n");
    write_file(latin1 / "barcodes.tsv", "A\nB\n");
    write_file(latin1 / "features.tsv", "g1\tG1\ng2\tCaf\xe9\n");
    what = test::error_message([&] { io::open_store(latin1.string()); });
    QVERIFY2(what.contains("features.tsv") && what.contains("line 2") && what.contains("UTF-8"),
             qPrintable(what));
  }

  // Above the memory budget the matrix goes through a temporary CSR store in cell blocks:
  // for a file whose cells come in order (Cell Ranger's) and for one whose entries are
  // shuffled, every block layout gives the matrix read in memory, value for value.
  void temporaryStoreEqualsInMemory_data() {
    QTest::addColumn<bool>("shuffled");
    QTest::addColumn<int>("budget");
    QTest::addColumn<int>("n_cells");
    for (bool shuffled : {false, true})
      for (int budget : {8, 800, 5000})
        QTest::addRow("%s, %d bytes", shuffled ? "shuffled" : "cell order", budget)
            << shuffled << budget << 211;
    // More blocks than the temporary files it would hold open: a pass per block instead.
    QTest::addRow("shuffled, a block per cell, 700 cells") << true << 8 << 700;
  }
  void temporaryStoreEqualsInMemory() {
    QFETCH(bool, shuffled);
    QFETCH(int, budget);
    QFETCH(int, n_cells);
    const auto dir = std::filesystem::path(tmp_.path().toStdString()) /
                     (shuffled ? "blocks-shuffled" : "blocks-sorted");
    std::filesystem::create_directories(dir);
    std::vector<std::string> lines;
    const int n_genes = 37;
    for (int c = 0; c < n_cells; ++c)
      for (int g = n_genes - 1; g >= 0; --g)  // genes descending within a cell, as 10x writes
        if ((c * 7 + g * 13) % 5 == 0 && c % 17 != 3)  // some cells empty
          lines.push_back(std::to_string(g + 1) + " " + std::to_string(c + 1) + " " +
                          std::to_string((c * 31 + g) % 97 + 1));
    if (shuffled)
      for (std::size_t i = lines.size() - 1; i > 0; --i)
        std::swap(lines[i], lines[(i * 7919) % (i + 1)]);
    std::string text = "%%MatrixMarket matrix coordinate integer general\n%\n" +
                       std::to_string(n_genes) + " " + std::to_string(n_cells) + " " +
                       std::to_string(lines.size()) + "\n";
    for (const auto& l : lines) text += l + "\n";
    write_file(dir / "matrix.mtx", text);
    io::Store whole = io::open_store(dir.string());
    QVERIFY(whole.x_encoding.find("in memory") != std::string::npos);
    io::OpenOptions options;
    options.transpose_bytes = static_cast<std::size_t>(budget);
    std::vector<double> reported;
    options.progress = [&](std::string_view, double f) { reported.push_back(f); };
    io::Store blocks = io::open_store(dir.string(), options);
    QVERIFY2(blocks.x_encoding.find("temporary CSR store") != std::string::npos,
             blocks.x_encoding.c_str());
    QCOMPARE(blocks.x_encoding.find("unsorted") != std::string::npos, shuffled && n_cells < 600);
    QVERIFY(!reported.empty() && reported.back() == 1.0);
    compare(blocks, whole);
    CsrMatrix m = all_rows(blocks);
    QCOMPARE(m.nnz(), static_cast<std::int64_t>(lines.size()));
    QCOMPARE(m.indptr[4] - m.indptr[3], std::int64_t{0});  // cell 3 is empty
  }

  void makeUniqueLikeAnndata() {
    std::vector<std::string> names{"A", "B", "A", "A-1", "A", "B"};
    io::make_unique(names);
    std::vector<std::string> want{"A", "B", "A-2", "A-1", "A-3", "B-1"};
    QCOMPARE(names, want);
  }

  // sort_rows (rows sorted on all cores): every row's entries by column with their values, and
  // of several rows with a repeated column the first is reported, as a serial pass would.
  void sortRowsReportsTheFirstRepeat() {
    const std::int64_t rows = 5000;
    CsrMatrix m;
    m.n_rows = rows;
    m.n_cols = 100;
    for (std::int64_t r = 0; r < rows; ++r) {
      for (int k = 3; k >= 1; --k) {  // descending columns
        m.indices.push_back(static_cast<GeneIndex>(r % 90 + 3 * k));
        m.data.push_back(static_cast<float>(r) + 0.25f * static_cast<float>(k));
      }
      m.indptr.push_back(m.nnz());
    }
    CsrMatrix sorted = m;
    io::sort_rows(sorted, "f", "X");
    for (std::int64_t r = 0; r < rows; ++r)
      for (int k = 0; k < 3; ++k) {
        const auto at = static_cast<std::size_t>(3 * r + k);
        QCOMPARE(sorted.indices[at], static_cast<GeneIndex>(r % 90 + 3 * (k + 1)));
        QCOMPARE(sorted.data[at], static_cast<float>(r) + 0.25f * static_cast<float>(k + 1));
      }
    for (const std::int64_t r : {4700, 2100, 3900}) m.indices[3 * r] = m.indices[3 * r + 1];
    const QString what = test::error_message([&] { io::sort_rows(m, "f", "X"); });
    QVERIFY2(what.contains("duplicate entry for column " + QString::number(2100 % 90 + 6) +
                           " in row 2100"),
             qPrintable(what));
  }

  // check_and_sort_rows checks a row in one branch-free sweep and looks at the entries one by one
  // only in a row that fails it: every position of rows of every length 0-37 (the sweep's
  // vector tails), columns 0 and n_cols - 1 valid and -1, INT_MIN and n_cols not, each kind of
  // non-finite value, of two offending columns the first in stored order, and a column before a
  // value.
  void checkAndSortRowsFindsEveryBadEntry() {
    const std::int64_t rows = 3000, n_cols = 184;
    CsrMatrix m;
    m.n_rows = rows;
    m.n_cols = n_cols;
    for (std::int64_t r = 0; r < rows; ++r) {
      const int len = static_cast<int>(r % 38);
      // Descending columns from n_cols - 1 - r % 4: a row of 37 with r % 4 == 3 reaches 0.
      for (int k = len - 1; k >= 0; --k) {
        m.indices.push_back(static_cast<GeneIndex>(n_cols - 1 - 5 * (len - 1 - k) - r % 4));
        m.data.push_back(k == 0   ? std::numeric_limits<float>::max()
                         : k == 1 ? std::numeric_limits<float>::denorm_min()
                                  : static_cast<float>(k));
      }
      m.indptr.push_back(m.nnz());
    }
    QCOMPARE(*std::min_element(m.indices.begin(), m.indices.end()), GeneIndex{0});
    QCOMPARE(*std::max_element(m.indices.begin(), m.indices.end()),
             static_cast<GeneIndex>(n_cols - 1));
    CsrMatrix sorted = m;
    io::check_and_sort_rows(sorted, n_cols, "f", "X/indices", "X/data");
    for (std::int64_t r = 0; r < rows; ++r)
      for (auto k = m.indptr[r]; k < m.indptr[r + 1]; ++k) {
        const auto mirrored = m.indptr[r + 1] - 1 - (k - m.indptr[r]);
        QCOMPARE(sorted.indices[k], m.indices[mirrored]);
        QCOMPARE(sorted.data[k], m.data[mirrored]);
      }
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<std::pair<GeneIndex, float>> bad{
        {static_cast<GeneIndex>(n_cols), 1.0f},
        {-1, 1.0f},
        {std::numeric_limits<GeneIndex>::min(), 1.0f},
        {0, inf},
        {0, -inf},
        {0, std::numeric_limits<float>::quiet_NaN()}};
    for (std::int64_t r = 0; r < 38; ++r)
      for (auto k = m.indptr[r]; k < m.indptr[r + 1]; ++k)
        for (const auto& [column, value] : bad) {
          CsrMatrix broken = m;
          const bool bad_column = value == 1.0f;
          if (bad_column)
            broken.indices[k] = column;
          else
            broken.data[k] = value;
          const QString what = test::error_message(
              [&] { io::check_and_sort_rows(broken, n_cols, "f", "X/indices", "X/data"); });
          const QString want =
              bad_column ? "f: X/indices: column index " + QString::number(column) + " out of range"
                         : QString("f: X/data: NaN or Inf value");
          QVERIFY2(
              what.contains(want),
              qPrintable(QString("row %1, entry %2: %3").arg(r).arg(k - m.indptr[r]).arg(what)));
        }
    CsrMatrix two = m;
    two.indices[two.indptr[2900]] = 1000;
    two.indices[two.indptr[1200] + 3] = 999;
    const QString what = test::error_message(
        [&] { io::check_and_sort_rows(two, n_cols, "f", "X/indices", "X/data"); });
    QVERIFY2(what.contains("column index 999 out of range"), qPrintable(what));
    // A bad column is reported before a bad value, wherever each is stored.
    for (const bool value_first : {true, false}) {
      CsrMatrix both = m;
      const auto at = both.indptr[30];
      both.data[at + (value_first ? 2 : 9)] = inf;
      both.indices[at + (value_first ? 9 : 2)] = -7;
      const QString message = test::error_message(
          [&] { io::check_and_sort_rows(both, n_cols, "f", "X/indices", "X/data"); });
      QVERIFY2(message.contains("X/indices: column index -7"), qPrintable(message));
    }
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
