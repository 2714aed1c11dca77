// Dense text tables (.csv, .tsv, .txt, gzipped or not): the real R-written tables in ../shared
// (Seurat's pbmc_small against the same cells of PBMC 3k, CellBench's Drop-seq mixture), each
// dialect and layout giving the same matrix, the temporary-store paths, annotation tables, and
// hostile input (each an orrery::Error naming the file and line).
#include <QtTest/QtTest>

#include <zlib.h>

#include <cmath>
#include <fstream>
#include <map>

#include "common/errors.hpp"
#include "common/shared.hpp"
#include "io/annotations.hpp"
#include "io/error.hpp"
#include "io/store.hpp"
#include "io/text_reader.hpp"

using namespace orrery;

namespace {

CsrMatrix all_rows(io::Store& s) {
  return s.X->read_rows(0, s.n_obs());
}

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

void write_gzip(const std::filesystem::path& p, const std::string& text) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  QVERIFY(f);
  QCOMPARE(gzwrite(f, text.data(), static_cast<unsigned>(text.size())),
           static_cast<int>(text.size()));
  QCOMPARE(gzclose(f), Z_OK);
}

// The value at (cell, gene) of a CSR matrix (0 where nothing is stored).
float at(const CsrMatrix& m, std::int64_t cell, std::int32_t gene) {
  const auto* b = m.indices.data() + m.indptr[cell];
  const auto* e = m.indices.data() + m.indptr[cell + 1];
  const auto* p = std::lower_bound(b, e, gene);
  return p != e && *p == gene ? m.data[p - m.indices.data()] : 0.0f;
}

// The 3 cells x 4 genes every small table below holds.
const float kCounts[3][4] = {{1, 0, 2.5f, 0}, {0, 0, 0, 7}, {3, 1, 0, 0}};
const char* kCells[3] = {"c1", "c,2", "c\"3"};

void expect_small(io::Store& s, bool names = true) {
  QCOMPARE(s.format, std::string("text"));
  QCOMPARE(s.n_obs(), 3);
  QCOMPARE(s.n_vars(), 4);
  QCOMPARE(s.X->nnz(), 5);
  const CsrMatrix m = all_rows(s);
  for (int c = 0; c < 3; ++c)
    for (int g = 0; g < 4; ++g) QCOMPARE(at(m, c, g), kCounts[c][g]);
  if (!names) return;
  for (int c = 0; c < 3; ++c) QCOMPARE(s.obs.index[c], std::string(kCells[c]));
  // Gene names made unique as anndata does.
  QCOMPARE(s.var.index, (std::vector<std::string>{"MT-A", "B", "C", "B-1"}));
}

}  // namespace

class TestText : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  std::filesystem::path data_;

  std::filesystem::path file(const std::string& name) {
    return std::filesystem::path(tmp_.path().toStdString()) / name;
  }

 private slots:
  void initTestCase() {
    data_ = test::shared_dir() / "data";
    if (!std::filesystem::exists(data_ / "pbmc_small") ||
        !std::filesystem::exists(data_ / "cellbench"))
      QSKIP(qPrintable(QString("pbmc_small / cellbench data not found under %1")
                           .arg(QString::fromStdString(data_.string()))));
  }

  // Seurat's pbmc_small (tab-separated, genes in rows, R's header without a row-names field):
  // every value equals the same cell and gene of the PBMC 3k Matrix Market files.
  void pbmcSmallEqualsPbmc3k() {
    io::Store small = io::open_store((data_ / "pbmc_small" / "pbmc_raw.txt").string());
    QCOMPARE(small.format, std::string("text"));
    QVERIFY2(small.x_encoding.find("genes in rows") != std::string::npos, small.x_encoding.c_str());
    QCOMPARE(small.n_obs(), 80);
    QCOMPARE(small.n_vars(), 230);
    QCOMPARE(small.X->nnz(), 4456);
    io::Store full = io::open_store(test::pbmc3k_dir().string());
    std::map<std::string, std::int64_t> cell_of, gene_of;
    for (std::size_t i = 0; i < full.obs.index.size(); ++i) cell_of[full.obs.index[i]] = i;
    for (std::size_t i = 0; i < full.var.index.size(); ++i) gene_of[full.var.index[i]] = i;
    const CsrMatrix s = all_rows(small), f = all_rows(full);
    double total = 0;
    for (std::int64_t c = 0; c < small.n_obs(); ++c) {
      const auto fc = cell_of.find(small.obs.index[c] + "-1");
      QVERIFY2(fc != cell_of.end(), small.obs.index[c].c_str());
      for (std::int32_t g = 0; g < small.n_vars(); ++g) {
        const auto fg = gene_of.find(small.var.index[g]);
        QVERIFY2(fg != gene_of.end(), small.var.index[g].c_str());
        QCOMPARE(at(s, c, g), at(f, fc->second, static_cast<std::int32_t>(fg->second)));
        total += at(s, c, g);
      }
    }
    QVERIFY(total > 0);
  }

  // CellBench's Drop-seq mixture: a gzipped R CSV, quoted names, Ensembl ids in rows.
  void cellbenchShapeAndTotals() {
    io::Store s = io::open_store((data_ / "cellbench" / "sc_dropseq.count.csv.gz").string());
    QVERIFY2(s.x_encoding.find("genes in rows (guessed: the rows are named like Ensembl") !=
                 std::string::npos,
             s.x_encoding.c_str());
    QCOMPARE(s.n_obs(), 225);
    QCOMPARE(s.n_vars(), 15127);
    const CsrMatrix m = all_rows(s);
    QCOMPARE(m.nnz(), 1290921);
    double total = 0;
    float most = 0;
    for (float v : m.data) {
      total += v;
      most = std::max(most, v);
    }
    QCOMPARE(total, 5830998.0);
    QCOMPARE(most, 2324.0f);
    QCOMPARE(s.obs.index.front(), std::string("CELL_000001"));
    QCOMPARE(s.var.index.front(), std::string("ENSG00000223849"));
    // The first line of values: ENSG00000223849 has 1 in CELL_000005 and 2 in CELL_000007.
    QCOMPARE(at(m, 4, 0), 1.0f);
    QCOMPARE(at(m, 6, 0), 2.0f);
    QCOMPARE(at(m, 5, 0), 0.0f);
  }

  // R's write.csv / write.table, pandas' to_csv, tab- and space-separated text, gzip, each
  // layout: the same matrix and names.
  void dialectsAndLayouts_data() {
    QTest::addColumn<QString>("name");
    QTest::addColumn<QString>("text");
    QTest::addColumn<int>("layout");  // io::TextLayout
    const int guess = static_cast<int>(io::TextLayout::Guess);
    const int cells = static_cast<int>(io::TextLayout::CellsInRows);
    const int genes = static_cast<int>(io::TextLayout::GenesInRows);
    // Genes in rows as R writes them (write.csv): no field over the row names.
    QTest::newRow("R csv, genes in rows") << "r.csv"
                                          << "\"c1\",\"c,2\",\"c\"\"3\"\n"
                                             "\"MT-A\",1,0,3\n\"B\",0,0,1\n\"C\",2.5,0,0\n"
                                             "\"B\",0,7,0\n"
                                          << guess;
    QTest::newRow("pandas csv, cells in rows, CRLF")
        << "p.csv"
        << "cell,MT-A,B,C,B\r\nc1,1,0,2.5,0\r\n\"c,2\",0,0,0,7.0\r\n\"c\"\"3\",3,1e0,0,0\r\n"
        << cells;
    QTest::newRow("pandas csv, empty index name")
        << "q.csv"
        << ",MT-A,B,C,B\nc1,1,0,2.5,0\n\"c,2\",0,0,0,7\n\"c\"\"3\",3,1,0,-0\n"
        << cells;
    QTest::newRow("semicolons (Excel with a decimal comma locale)")
        << "e.csv"
        << "cell;MT-A;B;C;B\nc1;1;0;2.5;0\n\"c,2\";0;0;0;7\n\"c\"\"3\";3;1;0;0\n"
        << cells;
    QTest::newRow("tsv, genes in rows, blank lines")
        << "t.tsv"
        << "gene\tc1\tc,2\tc\"3\n\nMT-A\t1\t0\t3\nB\t0\t0\t1\nC\t2.5\t0\t0\nB\t0\t7\t0\n\n"
        << genes;
    QTest::newRow("space-separated txt") << "s.txt"
                                         << "c1 \"c,2\" \"c\"\"3\"\n"
                                            "MT-A  1 0 3\n  B 0 0 1\nC 2.5 0 0 \nB 0 7 +0\n"
                                         << genes;
  }
  void dialectsAndLayouts() {
    QFETCH(QString, name);
    QFETCH(QString, text);
    QFETCH(int, layout);
    io::OpenOptions options;
    options.text_layout = static_cast<io::TextLayout>(layout);
    write_file(file(name.toStdString()), text.toStdString());
    io::Store plain = io::open_store(file(name.toStdString()).string(), options);
    expect_small(plain);
    write_gzip(file(name.toStdString() + ".gz"), text.toStdString());
    io::Store gz = io::open_store(file(name.toStdString() + ".gz").string(), options);
    expect_small(gz);
  }

  // Without a header or row names the names are made up; the layout can be said.
  void numbersOnly() {
    write_file(file("numbers.csv"), "1,0,2.5,0\n0,0,0,7\n3,1,0,0\n");
    io::Store s = io::open_store(file("numbers.csv").string());
    QVERIFY2(s.x_encoding.find("no row names (the first column holds numbers), cells in rows "
                               "(guessed: no more rows than columns)") != std::string::npos,
             s.x_encoding.c_str());
    expect_small(s, false);
    QCOMPARE(s.obs.index.back(), std::string("cell2"));
    QCOMPARE(s.var.index.back(), std::string("gene3"));
    io::OpenOptions transposed;
    transposed.text_layout = io::TextLayout::GenesInRows;
    io::Store t = io::open_store(file("numbers.csv").string(), transposed);
    QCOMPARE(t.n_obs(), 4);
    QCOMPARE(t.n_vars(), 3);
    QCOMPARE(at(all_rows(t), 3, 1), 7.0f);
    // pandas' to_csv(index=False) with integer column labels: an unquoted header 0, 1, ...,
    // m - 1 names the columns; it is not a row of values.
    write_file(file("range-header.csv"), "0,1,2,3\n1,0,2.5,0\n0,0,0,7\n3,1,0,0\n");
    io::Store r = io::open_store(file("range-header.csv").string());
    expect_small(r, false);
    QCOMPARE(r.var.index, (std::vector<std::string>{"0", "1", "2", "3"}));
    QCOMPARE(r.obs.index.back(), std::string("cell2"));
    // pandas' to_csv of a frame with a named RangeIndex: the ids 0, 1, 2 under "cell_id" are
    // the row names, not a column of values; a column that does not count up stays values.
    write_file(file("named-range.csv"), "cell_id,MT-A,B,C,B\n0,1,0,2.5,0\n1,0,0,0,7\n2,3,1,0,0\n");
    io::Store named = io::open_store(file("named-range.csv").string());
    expect_small(named, false);
    QCOMPARE(named.obs.index, (std::vector<std::string>{"0", "1", "2"}));
    QCOMPARE(named.var.index, (std::vector<std::string>{"MT-A", "B", "C", "B-1"}));
    write_file(file("counts-first.csv"), "g0,g1,g2,g3\n0,1,0,2.5\n1,0,0,0\n3,3,1,0\n");
    QCOMPARE(io::open_store(file("counts-first.csv").string()).n_vars(), 4);
    // Three numbers 0, 1, 2 on the first line are still a row of values.
    write_file(file("three.csv"), "0,1,2\n4,0,1\n");
    QCOMPARE(io::open_store(file("three.csv").string()).X->nnz(), 4);
  }

  // Above the conversion budget: a temporary CSR store, cell blocks dealt in one pass (genes in
  // rows) or streamed (cells in rows); both equal the in-memory matrix.
  void temporaryStoreEqualsInMemory() {
    const std::string path = (data_ / "pbmc_small" / "pbmc_raw.txt").string();
    for (const auto layout : {io::TextLayout::GenesInRows, io::TextLayout::CellsInRows}) {
      // 4456 entries: kept from the first pass (24 bytes each fit), a second pass into memory
      // (8 fit), a temporary store of ~512-entry blocks.
      io::OpenOptions one_pass, two_passes, blocks;
      one_pass.text_layout = two_passes.text_layout = blocks.text_layout = layout;
      two_passes.transpose_bytes = 50000;
      blocks.transpose_bytes = 4096;
      io::Store a = io::open_store(path, one_pass), b = io::open_store(path, two_passes),
                c = io::open_store(path, blocks);
      QVERIFY2(a.x_encoding.ends_with("parsed into CSR in memory in one pass"),
               a.x_encoding.c_str());
      QVERIFY2(b.x_encoding.ends_with("parsed into CSR in memory"), b.x_encoding.c_str());
      QVERIFY2(c.x_encoding.find("temporary CSR store") != std::string::npos, c.x_encoding.c_str());
      const CsrMatrix x = all_rows(a);
      for (io::Store* s : {&b, &c}) {
        const CsrMatrix y = all_rows(*s);
        QCOMPARE(y.n_rows, x.n_rows);
        QCOMPARE(y.indptr, x.indptr);
        QCOMPARE(y.indices, x.indices);
        QCOMPARE(y.data, x.data);
      }
    }
  }

  // Guesses from names: barcodes in the header mean genes in rows, barcodes down the rows
  // cells in rows, whatever the shape.
  void guessesFromNames() {
    write_file(file("barcodes-across.csv"),
               ",AAACATACAACCAC-1,AAACATTGAGCTAC-1\nG1,1,0\nG2,0,2\nG3,0,0\n");
    QVERIFY(io::open_store(file("barcodes-across.csv").string())
                .x_encoding.find("genes in rows (guessed: the columns are named like cell "
                                 "barcodes)") != std::string::npos);
    write_file(file("barcodes-down.csv"),
               ",G1,G2\nAAACATACAACCAC-1,1,0\nAAACATTGAGCTAC-1,0,2\nAAACATTGATCAGC-1,0,0\n");
    io::Store down = io::open_store(file("barcodes-down.csv").string());
    QCOMPARE(down.n_obs(), 3);
    QCOMPARE(down.n_vars(), 2);
  }

  // A table of strings (cell annotations): CellBench's metadata, R's header.
  void annotationTable() {
    const io::TextTable t =
        io::read_text_table((data_ / "cellbench" / "sc_dropseq.metadata.csv.gz").string());
    QCOMPARE(t.rows.size(), std::size_t{225});
    QCOMPARE(t.columns.size(), std::size_t{15});
    QCOMPARE(t.index_name, std::string());
    const auto line = std::find(t.columns.begin(), t.columns.end(), "cell_line_demuxlet");
    QVERIFY(line != t.columns.end());
    std::map<std::string, int> n;
    for (const auto& row : t.cells) ++n[row[line - t.columns.begin()]];
    QCOMPARE(n["H1975"], 86);
    QCOMPARE(n["HCC827"], 70);
    QCOMPARE(n["H2228"], 69);
    QCOMPARE(t.rows.front(), std::string("CELL_000001"));
    // pandas' index name is kept.
    write_file(file("meta.tsv"), "barcode\tlabel\nA\tx y\nB\t\n");
    const io::TextTable p = io::read_text_table(file("meta.tsv").string());
    QCOMPARE(p.index_name, std::string("barcode"));
    QCOMPARE(p.columns, std::vector<std::string>{"label"});
    QCOMPARE(p.cells[0][0], std::string("x y"));
    QCOMPARE(p.cells[1][0], std::string());
  }

  // Annotation columns typed as pandas reads them and anndata keeps them; cells the table
  // leaves out, and missing markers, are missing values.
  void cellAnnotationsTyped() {
    write_file(file("annotations.csv"),
               "cell,count,score,flag,label,partial,maybe,empty\n"
               "b,3,0.5,TRUE,T cell,1,FALSE,NA\n"
               "a,-2,1e3,FALSE,B cell,NA,,\n"
               "c,7,2,True,B cell,5,true,\n"
               "zz,1,1,FALSE,other,1,TRUE,\n");
    const io::TextTable t = io::read_text_table(file("annotations.csv").string());
    const std::vector<std::string> cells = {"a", "b", "c", "d"};
    io::CellAnnotations found = io::annotations_for_cells(t, cells, "annotations.csv");
    QCOMPARE(found.matched, 3);
    QCOMPARE(found.unmatched, 1);  // zz
    QVERIFY(!found.added_suffix);
    QCOMPARE(found.columns.size(), std::size_t{7});
    const auto doubles = [&](int j) {
      return std::get<std::vector<double>>(found.columns[j].values);
    };
    // d has no row: int and bool columns become anndata's nullable ones.
    QCOMPARE(found.columns[0].nullable, std::string("nullable-integer"));
    QCOMPARE(doubles(0)[0], -2.0);
    QCOMPARE(doubles(0)[2], 7.0);
    QVERIFY(std::isnan(doubles(0)[3]));
    QCOMPARE(found.columns[1].nullable, std::string());
    QCOMPARE(doubles(1)[0], 1000.0);
    QCOMPARE(doubles(1)[1], 0.5);
    QCOMPARE(found.columns[2].nullable, std::string("nullable-boolean"));
    QCOMPARE(doubles(2)[1], 1.0);
    QCOMPARE(doubles(2)[0], 0.0);
    const auto& label = std::get<Categorical>(found.columns[3].values);
    QCOMPARE(label.categories, (std::vector<std::string>{"B cell", "T cell", "other"}));
    QCOMPARE(label.codes, (std::vector<std::int32_t>{0, 1, 0, -1}));
    QVERIFY(std::isnan(doubles(4)[0]));  // "NA"
    QCOMPARE(doubles(4)[2], 5.0);
    QVERIFY(std::isnan(doubles(5)[0]));  // "" is missing too
    QCOMPARE(doubles(5)[2], 1.0);
    QVERIFY(std::isnan(doubles(6)[1]));  // a column of nothing: float NaN
    // Every cell named: plain int64 and bool columns.
    io::CellAnnotations all = io::annotations_for_cells(t, {"a", "b", "c"}, "annotations.csv");
    QCOMPARE(std::get<std::vector<std::int64_t>>(all.columns[0].values),
             (std::vector<std::int64_t>{-2, 3, 7}));
    QCOMPARE(std::get<std::vector<bool>>(all.columns[2].values),
             (std::vector<bool>{false, true, true}));
    // Names taken get a suffix.
    DataFrame obs;
    obs.index = {"a", "b", "c"};
    obs.columns.push_back({"label", std::vector<double>(3)});
    const auto names = io::add_obs_columns(obs, std::move(all.columns), [](const std::string& n) {
      return n == "count" || n == "count_1";
    });
    QCOMPARE(names[0], std::string("count_2"));
    QCOMPARE(names[3], std::string("label_1"));
    QCOMPARE(obs.columns.size(), std::size_t{8});
  }

  // Cell Ranger's barcodes written without "-1" (Seurat's pbmc_small) match PBMC 3k's cells.
  void cellAnnotationsMatchBarcodesWithoutSuffix() {
    io::Store full = io::open_store(test::pbmc3k_dir().string());
    const std::string meta = (data_ / "pbmc_small" / "pbmc_small_meta.tsv").string();
    io::CellAnnotations found =
        io::annotations_for_cells(io::read_text_table(meta), full.obs.index, meta);
    QCOMPARE(found.matched, 80);
    QVERIFY(found.added_suffix);
    QCOMPARE(found.columns[0].name, std::string("RNA_snn_res.1"));
    // Seurat's clusters are whole numbers: int, nullable (2620 cells are not in the table).
    QCOMPARE(found.columns[0].nullable, std::string("nullable-integer"));
    const auto& res = std::get<std::vector<double>>(found.columns[0].values);
    QCOMPARE(std::count_if(res.begin(), res.end(), [](double v) { return v == 0.0; }), 36);
    QCOMPARE(std::count_if(res.begin(), res.end(), [](double v) { return std::isnan(v); }), 2620);
    const auto& letters = std::get<Categorical>(found.columns[2].values);
    QCOMPARE(letters.categories, (std::vector<std::string>{"A", "B"}));
  }

  // R's write.table of a one-column table: its header has no separator, the rows tell it; a
  // UTF-8 byte order mark (Excel, pandas' utf-8-sig) is not part of the first name.
  void oneColumnTablesAndByteOrderMarks() {
    write_file(file("one.tsv"), "label\ncell_a\tB cell\ncell_b\tT cell\n");
    io::TextTable t = io::read_text_table(file("one.tsv").string());
    QCOMPARE(t.columns, std::vector<std::string>{"label"});
    QCOMPARE(t.cells[1][0], std::string("T cell"));
    write_file(file("one.csv"), "\"label\"\n\"cell_a\",\"B cell\"\n");
    t = io::read_text_table(file("one.csv").string());
    QCOMPARE(t.rows, std::vector<std::string>{"cell_a"});
    QCOMPARE(t.cells[0][0], std::string("B cell"));
    write_file(file("bom.csv"), "\xef\xbb\xbf,g1,g2\nc1,1,0\nc2,0,3\n");
    io::Store s = io::open_store(file("bom.csv").string());
    QCOMPARE(s.obs.index, (std::vector<std::string>{"c1", "c2"}));
    QCOMPARE(s.var.index, (std::vector<std::string>{"g1", "g2"}));
    QVERIFY2(s.x_encoding.find("names in the first column") != std::string::npos,
             s.x_encoding.c_str());
    // R quotes column names, numbers too: still a header.
    write_file(file("numbered.csv"), "\"1\",\"2\"\n\"g1\",1,0\n\"g2\",0,3\n\"g3\",0,0\n");
    io::Store numbered = io::open_store(file("numbered.csv").string());
    QCOMPARE(numbered.obs.index, (std::vector<std::string>{"1", "2"}));
    QCOMPARE(numbered.var.index, (std::vector<std::string>{"g1", "g2", "g3"}));
    write_file(file("bom-r.csv"), "\xef\xbb\xbf\"c1\",\"c2\"\n\"g1\",1,0\n");
    QCOMPARE(io::read_text_table(file("bom-r.csv").string()).columns.front(), std::string("c1"));
  }

  // GEO's tables often name each gene twice (an Ensembl id, then a symbol): the symbols become
  // var names and the ids gene_ids, as with 10x features. Other name columns join obs or var.
  void furtherNameColumns() {
    write_file(file("geo.tsv"),
               "gene_id\tsymbol\tAAACATACAACCAC-1\tAAACATTGAGCTAC-1\n"
               "ENSG00000000003\tTSPAN6\t1\t0\nENSG00000000005\tTNMD\t0\t2\n"
               "ENSG00000000419\tDPM1\t3\t0\n");
    io::Store geo = io::open_store(file("geo.tsv").string());
    QVERIFY2(
        geo.x_encoding.find("names in the first 2 columns, genes in rows") != std::string::npos,
        geo.x_encoding.c_str());
    QCOMPARE(geo.var.index, (std::vector<std::string>{"TSPAN6", "TNMD", "DPM1"}));
    const Column* ids = geo.var.find("gene_ids");
    QVERIFY(ids);
    QCOMPARE(std::get<std::vector<std::string>>(ids->values)[2], std::string("ENSG00000000419"));
    QCOMPARE(geo.obs.index.front(), std::string("AAACATACAACCAC-1"));
    // Symbols may start with digits (mouse tables sorted by symbol begin so).
    write_file(file("mouse.tsv"),
               "gene_id\tsymbol\tAAACATACAACCAC-1\nENSMUSG00000109644\t0610005C13Rik\t2\n"
               "ENSMUSG00000108652\t0610006L08Rik\t0\n");
    io::Store mouse = io::open_store(file("mouse.tsv").string());
    QCOMPARE(mouse.var.index, (std::vector<std::string>{"0610005C13Rik", "0610006L08Rik"}));
    QCOMPARE(mouse.X->nnz(), 1);
    const CsrMatrix m = all_rows(geo);
    QCOMPARE(at(m, 0, 2), 3.0f);
    QCOMPARE(at(m, 1, 1), 2.0f);
    QCOMPARE(m.nnz(), 3);
    // R's header (no field over the row names), cells in rows, a sample column.
    write_file(file("samples.csv"),
               "\"sample\",\"g1\",\"g2\"\n\"c1\",\"s1\",1,0\n\"c2\",\"s2\",0,2\n");
    io::Store s = io::open_store(file("samples.csv").string());
    QCOMPARE(s.obs.index, (std::vector<std::string>{"c1", "c2"}));
    QCOMPARE(s.var.index, (std::vector<std::string>{"g1", "g2"}));
    const Column* sample = s.obs.find("sample");
    QVERIFY(sample);
    QCOMPARE(std::get<std::vector<std::string>>(sample->values),
             (std::vector<std::string>{"s1", "s2"}));
  }

  void cellAnnotationsRefused() {
    write_file(file("twice.csv"), "cell,x\na,1\nb,2\na,3\n");
    QString what = test::error_message([&] {
      io::annotations_for_cells(io::read_text_table(file("twice.csv").string()), {"a", "b"},
                                "twice.csv");
    });
    QVERIFY2(what.contains("twice.csv: row names: 'a' names data rows 1 and 3"), qPrintable(what));
    write_file(file("strangers.csv"), "cell,x\np,1\nq,2\n");
    what = test::error_message([&] {
      io::annotations_for_cells(io::read_text_table(file("strangers.csv").string()), {"a", "b"},
                                "strangers.csv");
    });
    QVERIFY2(what.contains("none of its 2 rows names a cell of the store (its first: 'p'; the "
                           "store's first cell: 'a')"),
             qPrintable(what));
    write_file(file("numbers.csv"), "1,2\n3,4\n");
    what = test::error_message([&] { io::read_text_table(file("numbers.csv").string()); });
    QVERIFY2(what.contains("needs a header of column names"), qPrintable(what));
  }

  void hostileInput_data() {
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QString>("message");
    QTest::newRow("empty") << QByteArray("") << "empty file";
    QTest::newRow("blank") << QByteArray("\n  \n") << "empty file";
    QTest::newRow("header only") << QByteArray("a,b\n") << "a header but no rows";
    QTest::newRow("names only") << QByteArray("a\nx\ny\n") << "no columns of values";
    QTest::newRow("ragged") << QByteArray("a,b\ng,1,2\nh,1\n")
                            << "line 3: 2 fields where the rows before have 3";
    QTest::newRow("header mismatch")
        << QByteArray("a,b,c,d\ng,1\n") << "line 2: 2 fields, but the header";
    QTest::newRow("NA") << QByteArray("a,b\ng,1,2\nh,NA,1\n")
                        << "line 3, column 2: 'NA' is not a finite number";
    QTest::newRow("NA first") << QByteArray("a,b\ng,NA,1\n")
                              << "line 2, column 2: 'NA' is not a finite number";
    QTest::newRow("NaN") << QByteArray("a,b\ng,1,nan\n")
                         << "line 2, column 3: 'nan' is not a finite number";
    QTest::newRow("inf") << QByteArray("a,b\ng,inf,1\n") << "'inf' is not a finite number";
    QTest::newRow("overflow") << QByteArray("a,b\ng,1e999,1\n") << "'1e999' is not a finite number";
    QTest::newRow("empty value") << QByteArray("a,b\ng,,1\n") << "line 2, column 2: '' is not";
    QTest::newRow("open quote") << QByteArray("a,b\n\"g,1,1\n")
                                << "line 2, field 1: a quote is not closed";
    QTest::newRow("after quote") << QByteArray("a,b\n\"g\"x,1,1\n") << "text after a closing quote";
    QTest::newRow("not utf-8 row")
        << QByteArray("a,b\ng\xff,1,1\n") << "line 2: the row name is not UTF-8";
    QTest::newRow("beyond float") << QByteArray("a,b\ng,1e39,1\n")
                                  << "line 2, column 2: '1e39' is beyond single precision";
    QTest::newRow("utf-16") << QByteArray(
                                   "\xff\xfe"
                                   "a\0,\0b\0\n\0",
                                   12)
                            << "UTF-16 text; save the table as UTF-8";
    QTest::newRow("not utf-8 symbol")
        << QByteArray("id,symbol,c1\ng1,s\xff,1\n") << "line 2: name 2 is not UTF-8";
    QTest::newRow("not utf-8 header") << QByteArray("a\xfe,b\ng,1,1\n") << "header: column name";
  }
  void hostileInput() {
    QFETCH(QByteArray, text);
    QFETCH(QString, message);
    const auto path = file(std::string("hostile-") + QTest::currentDataTag() + ".csv");
    write_file(path, text.toStdString());
    const QString what = test::error_message([&] { io::open_store(path.string()); });
    QVERIFY2(what.contains(QString::fromStdString(path.filename().string())), qPrintable(what));
    QVERIFY2(what.contains(message), qPrintable(what));
  }

  // A truncated gzip stream is an error naming the file, not a short matrix.
  void truncatedGzip() {
    std::string text = "a,b\n";
    for (int i = 0; i < 20000; ++i)
      text.append("g")
          .append(std::to_string(i))
          .append(",")
          .append(std::to_string(i % 7))
          .append(",1\n");
    write_gzip(file("whole.csv.gz"), text);
    std::ifstream in(file("whole.csv.gz"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_file(file("cut.csv.gz"), bytes.substr(0, bytes.size() / 2));
    QCOMPARE(io::open_store(file("whole.csv.gz").string()).n_vars(), 20000);
    const QString what = test::error_message([&] { io::open_store(file("cut.csv.gz").string()); });
    QVERIFY2(what.contains("cut.csv.gz") && what.contains("truncated or corrupt"),
             qPrintable(what));
  }
};

QTEST_GUILESS_MAIN(TestText)
#include "test_text.moc"
