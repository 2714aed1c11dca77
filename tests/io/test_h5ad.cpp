// h5ad round trips: Orrery writes, Orrery reads back; Debian's anndata writes (CSR, dense,
// int counts), Orrery reads value for value; hostile files give errors naming file and element.
#include <zlib.h>
#include <QtTest/QtTest>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/errors.hpp"
#include "common/python.hpp"
#include "compute/synth.hpp"
#include "io/anndata_writer.hpp"
#include "io/element.hpp"
#include "io/error.hpp"
#include "io/hdf5_guard.hpp"
#include "io/inflate.hpp"
#include "io/store.hpp"
#include "io/tree_writer.hpp"

using namespace orrery;

namespace {

CsrMatrix small_matrix() {
  CsrMatrix m;
  m.n_rows = 4;
  m.n_cols = 5;
  m.indptr = {0, 2, 2, 5, 6};
  m.indices = {0, 3, 1, 2, 4, 4};
  m.data = {1.5f, 2.0f, 7.0f, 1.0f, 3.25f, 9.0f};
  return m;
}

// X as one chunk.
void write_single_chunk(io::AnnDataWriter& w, const CsrMatrix& m) {
  bool sent = false;
  w.write_X(m.n_rows, m.n_cols, [&](CsrMatrix& chunk) {
    if (sent) return false;
    chunk = m;
    sent = true;
    return true;
  });
}

}  // namespace

class TestH5ad : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  QString path(const char* name) { return tmp_.filePath(name); }

 private slots:
  // inflate_exact (libdeflate) decodes zlib and gzip streams of a known size, and refuses a
  // corrupt byte (checksum), a truncated stream and a size other than the one asked.
  void inflateExact() {
    std::vector<unsigned char> plain(300000);
    for (std::size_t i = 0; i < plain.size(); ++i)
      plain[i] = static_cast<unsigned char>((i * 2654435761u >> 13) % 7 + (i % 1000 < 10 ? i : 0));
    for (const int window : {15, 16 + 15}) {  // zlib, gzip
      z_stream zs{};
      QCOMPARE(deflateInit2(&zs, 6, Z_DEFLATED, window, 8, Z_DEFAULT_STRATEGY), Z_OK);
      std::vector<unsigned char> packed(deflateBound(&zs, plain.size()));
      zs.next_in = plain.data();
      zs.avail_in = static_cast<uInt>(plain.size());
      zs.next_out = packed.data();
      zs.avail_out = static_cast<uInt>(packed.size());
      QCOMPARE(deflate(&zs, Z_FINISH), Z_STREAM_END);
      packed.resize(zs.total_out);
      deflateEnd(&zs);
      QVERIFY(packed.size() < plain.size() / 4);
      std::vector<unsigned char> out(plain.size() + 1, 0);
      QVERIFY(io::inflate_exact(packed.data(), packed.size(), out.data(), plain.size()));
      QVERIFY(std::equal(plain.begin(), plain.end(), out.begin()));
      QVERIFY(!io::inflate_exact(packed.data(), packed.size(), out.data(), plain.size() + 1));
      QVERIFY(!io::inflate_exact(packed.data(), packed.size(), out.data(), plain.size() - 1));
      QVERIFY(!io::inflate_exact(packed.data(), packed.size() - 9, out.data(), plain.size()));
      std::vector<unsigned char> corrupt = packed;
      corrupt[corrupt.size() - 6] ^= 0x40;  // in the stream's last bytes or its checksum
      QVERIFY(!io::inflate_exact(corrupt.data(), corrupt.size(), out.data(), plain.size()));
    }
  }

  void writeThenRead() {
    const QString file = path("small.h5ad");
    {
      io::AnnDataWriter w(file.toStdString());
      write_single_chunk(w, small_matrix());
      DataFrame obs;
      obs.index = {"c0", "c1", "c2", "c3"};
      obs.columns.push_back(
          {"label", Categorical{{0, 1, 0, -1}, {"a", "b"}, {"#ff0000", "#00ff00"}}});
      w.write_obs(obs);
      DataFrame var;
      var.index = {"g0", "g1", "g2", "g3", "g4"};
      var.columns.push_back({"hv", std::vector<bool>{true, false, true, false, false}});
      w.write_var(var);
      QVERIFY(!QFile::exists(file));  // nothing at the target until commit
      w.commit();
    }
    QVERIFY(QFile::exists(file));
    io::Store s = io::open_store(file.toStdString());
    QCOMPARE(s.format, std::string("h5ad"));
    QCOMPARE(s.n_obs(), 4);
    QCOMPARE(s.n_vars(), 5);
    QCOMPARE(s.obs.index, (std::vector<std::string>{"c0", "c1", "c2", "c3"}));
    CsrMatrix back = s.X->read_rows(0, 4);
    CsrMatrix want = small_matrix();
    QCOMPARE(back.indptr, want.indptr);
    QCOMPARE(back.indices, want.indices);
    QCOMPARE(back.data, want.data);
    CsrMatrix mid = s.X->read_rows(2, 3);
    QCOMPARE(mid.nnz(), 3);
    QCOMPARE(mid.data[2], 3.25f);
  }

  // The writer compresses chunks itself, on all cores (shuffle + deflate for appended arrays,
  // deflate for whole ones) and stores them with H5Dwrite_chunk: arrays of several chunks with a
  // partial last one, 2-D rows, bools, and appends of sizes that straddle chunks read back
  // value for value, here and through h5py (HDF5's own filters).
  void writerChunksReadBack() {
    const std::string file = path("chunks.h5").toStdString();
    std::vector<std::int64_t> ints(150001);
    for (std::size_t i = 0; i < ints.size(); ++i)
      ints[i] = static_cast<std::int64_t>(i * i % 1000003) - 500000;
    std::vector<float> rows(3001 * 50);
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = std::sin(0.001f * i) * 100.0f;
    std::vector<std::int8_t> flags(70000);
    for (std::size_t i = 0; i < flags.size(); ++i) flags[i] = (i % 7 == 0);
    std::vector<float> appended;
    {
      auto w = io::make_hdf5_writer(file);
      w->group("", {});
      w->array("ints", io::NumType::I64, ints.data(), {150001}, {});
      w->array("rows", io::NumType::F32, rows.data(), {3001, 50}, {});
      w->array("flags", io::NumType::Bool, flags.data(), {70000}, {});
      auto a = w->appender("appended", io::NumType::F32, {});
      for (const std::size_t n : {1, 65534, 3, 70000, 131072, 5}) {
        std::vector<float> part(n);
        for (std::size_t i = 0; i < n; ++i)
          part[i] = static_cast<float>(appended.size() + i) * 0.5f;
        a->append(part.data(), n);
        appended.insert(appended.end(), part.begin(), part.end());
      }
      a->finish();
      w->close();
    }
    auto root = io::open_hdf5_root(file);
    std::vector<std::int64_t> ints_back(ints.size());
    root->require("ints")->read(0, 150001, io::NumType::I64, ints_back.data());
    QCOMPARE(ints_back, ints);
    std::vector<float> rows_back(rows.size());
    root->require("rows")->read(0, 3001, io::NumType::F32, rows_back.data());
    QCOMPARE(rows_back, rows);
    std::vector<std::int8_t> flags_back(flags.size());
    root->require("flags")->read(0, 70000, io::NumType::Bool, flags_back.data());
    QCOMPARE(flags_back, flags);
    const auto a = root->require("appended");
    QCOMPARE(a->shape(), (std::vector<std::int64_t>{static_cast<std::int64_t>(appended.size())}));
    std::vector<float> appended_back(appended.size());
    a->read(0, a->shape()[0], io::NumType::F32, appended_back.data());
    QCOMPARE(appended_back, appended);
    const QString script = R"(
import sys
try:
    import h5py, numpy as np
except ImportError:
    sys.exit(77)
f = h5py.File(sys.argv[1], "r")
i = np.arange(150001, dtype=np.int64)
assert (f["ints"][:] == i * i % 1000003 - 500000).all()
assert f["rows"].shape == (3001, 50) and f["rows"].compression == "gzip"
r = np.sin(np.float32(0.001) * np.arange(3001 * 50, dtype=np.float32)) * np.float32(100)
assert np.allclose(f["rows"][:].ravel(), r, rtol=1e-5, atol=1e-4)
assert (f["flags"][:] == (np.arange(70000) % 7 == 0)).all()
a = f["appended"]
assert a.shuffle and a.compression == "gzip" and a.shape == (266615,), (a.shuffle, a.shape)
assert (a[:] == np.arange(266615, dtype=np.float32) * np.float32(0.5)).all()
)";
    RUN_PYTHON_OR_SKIP("python3-h5py", "-c", script, QString::fromStdString(file));
  }

  void uncommittedWriterLeavesNothing() {
    const QString file = path("aborted.h5ad");
    { io::AnnDataWriter w(file.toStdString()); }
    QVERIFY(!QFile::exists(file));
    QCOMPARE(QDir(tmp_.path()).entryList({"aborted.h5ad*"}).size(), 0);
  }

  void anndataReadsOurs() {
    const QString file = path("ours.h5ad");
    compute::SynthOptions o;
    o.n_cells = 300;
    o.n_genes = 500;
    compute::Progress quiet;
    compute::write_synth_h5ad(o, file.toStdString(), quiet);
    compute::SynthGenerator gen(o);
    CsrMatrix m = gen.rows(0, o.n_cells);
    double total = 0;
    for (float v : m.data) total += v;
    const QString script = R"(
import sys
try:
    import anndata
except ImportError:
    sys.exit(77)
ad = anndata.read_h5ad(sys.argv[1])
assert ad.shape == (300, 500), ad.shape
assert ad.X.format == "csr"
assert abs(float(ad.X.sum()) - float(sys.argv[2])) < 1e-3, (ad.X.sum(), sys.argv[2])
assert ad.obs["true_cluster"].dtype.name == "category"
assert ad.var_names[0] == "MT-1" and ad.obs_names[0] == "cell00000000"
)";
    RUN_PYTHON_OR_SKIP("python3-anndata", "-c", script, file, QString::number(total, 'f', 1));
  }

  void weReadAnndatas_data() {
    QTest::addColumn<QString>("layout");
    QTest::newRow("csr float32") << "csr32";
    QTest::newRow("csr float64 int64 indptr") << "csr64";
    QTest::newRow("csr int32 counts") << "csrint";
    QTest::newRow("dense float32") << "dense";
    QTest::newRow("gzip csr") << "gzip";
    QTest::newRow("lzf csr") << "lzf";  // h5py's filter; HDF5 reads it with hdf5-plugin-lzf
    QTest::newRow("lzf dense") << "lzfdense";
    QTest::newRow("csc float32") << "csc";
  }

  void weReadAnndatas() {
    QFETCH(QString, layout);
    const QString file = path(qPrintable("anndata-" + layout + ".h5ad"));
    const QString script = R"(
import sys
try:
    import anndata, numpy as np, pandas as pd, scipy.sparse as sp
except ImportError:
    sys.exit(77)
layout, path = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(3)
dense = rng.poisson(0.7, size=(40, 25)).astype(np.float32)
dense[dense > 0] += rng.random(int((dense > 0).sum())).astype(np.float32)
if layout == "csrint":
    dense = np.floor(dense)
obs = pd.DataFrame(index=[f"cell-{i}" for i in range(40)])
obs["batch"] = pd.Categorical(["a", "b"] * 20)
var = pd.DataFrame(index=[f"gene-{j}" for j in range(25)])
if layout in ("dense", "lzfdense"):
    X = dense
elif layout == "csr64":
    X = sp.csr_matrix(dense.astype(np.float64)); X.indptr = X.indptr.astype(np.int64)
elif layout == "csrint":
    X = sp.csr_matrix(dense.astype(np.int32))
elif layout == "csc":
    X = sp.csc_matrix(dense)
else:
    X = sp.csr_matrix(dense)
ad = anndata.AnnData(X=X, obs=obs, var=var)
ad.write_h5ad(path, compression={"gzip": "gzip", "lzf": "lzf", "lzfdense": "lzf"}.get(layout))
np.savetxt(path + ".txt", dense)
)";
    RUN_PYTHON_OR_SKIP("python3-anndata", "-c", script, layout, file);
    // A tiny transpose budget makes a CSC X go through many cell blocks.
    int reports = 0;
    io::OpenOptions options;
    options.transpose_bytes = 100;
    options.progress = [&](std::string_view what, double) {
      QVERIFY(what.find("CSC") != std::string_view::npos);
      ++reports;
    };
    io::Store s = io::open_store(file.toStdString(), options);
    if (layout == "csc") {
      QVERIFY2(reports > 3, qPrintable(QString::number(reports)));
      QVERIFY(QString::fromStdString(s.x_encoding).contains("csc"));
    }
    QCOMPARE(s.n_obs(), 40);
    QCOMPARE(s.n_vars(), 25);
    QCOMPARE(QString::fromStdString(s.obs.index[7]), QString("cell-7"));
    QCOMPARE(QString::fromStdString(s.var.index[24]), QString("gene-24"));
    std::ifstream txt((file + ".txt").toStdString());
    std::vector<float> dense(40 * 25);
    for (auto& v : dense) txt >> v;
    // Read in uneven chunks and compare every value.
    for (std::int64_t r0 = 0; r0 < 40; r0 += 13) {
      const std::int64_t r1 = std::min<std::int64_t>(40, r0 + 13);
      CsrMatrix c = s.X->read_rows(r0, r1);
      std::vector<float> got((r1 - r0) * 25, 0.0f);
      for (std::int64_t r = 0; r < c.n_rows; ++r)
        for (auto k = c.indptr[r]; k < c.indptr[r + 1]; ++k) got[r * 25 + c.indices[k]] = c.data[k];
      for (std::int64_t i = 0; i < (r1 - r0) * 25; ++i)
        QVERIFY2(std::fabs(got[i] - dense[r0 * 25 + i]) <=
                     1e-6f * std::max(1.0f, std::fabs(dense[r0 * 25 + i])),
                 qPrintable(QString("row %1 col %2: %3 vs %4")
                                .arg(r0 + i / 25)
                                .arg(i % 25)
                                .arg(got[i])
                                .arg(dense[r0 * 25 + i])));
    }
  }

  void anndataColumnsAreRead() {
    const QString file = path("columns.h5ad");
    const QString script = R"(
import sys
try:
    import anndata, numpy as np, pandas as pd, scipy.sparse as sp
except ImportError:
    sys.exit(77)
obs = pd.DataFrame(index=[f"c{i}" for i in range(6)])
obs["cluster"] = pd.Categorical(["b", "a", "b", None, "c", "a"], categories=["a", "b", "c"])
obs["n"] = np.array([1, 2, 3, 4, 5, 6], dtype=np.int32)
obs["score"] = np.array([0.5, 1.5, 2.5, np.nan, 4.5, 5.5])
obs["flag"] = np.array([True, False, True, False, False, True])
obs["name"] = ["x", "y", "z", "x", "y", "z"]
obs["maybe"] = pd.array([1, None, 3, 4, None, 6], dtype="Int64")
ad = anndata.AnnData(X=sp.csr_matrix(np.eye(6, 3, dtype=np.float32)), obs=obs)
ad.obsm["X_test"] = np.zeros((6, 2))
ad.uns["note"] = "hello"
ad.write_h5ad(sys.argv[1])
)";
    RUN_PYTHON_OR_SKIP("python3-anndata", "-c", script, file);
    io::Store s = io::open_store(file.toStdString());
    QCOMPARE(s.obs.columns.size(), std::size_t{6});
    const auto& cat = std::get<Categorical>(s.obs.find("cluster")->values);
    QCOMPARE(cat.categories, (std::vector<std::string>{"a", "b", "c"}));
    QCOMPARE(cat.codes, (std::vector<std::int32_t>{1, 0, 1, -1, 2, 0}));
    QCOMPARE(std::get<std::vector<std::int64_t>>(s.obs.find("n")->values),
             (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6}));
    const auto& score = std::get<std::vector<double>>(s.obs.find("score")->values);
    QCOMPARE(score[4], 4.5);
    QVERIFY(std::isnan(score[3]));
    QCOMPARE(std::get<std::vector<bool>>(s.obs.find("flag")->values),
             (std::vector<bool>{true, false, true, false, false, true}));
    // anndata stores string columns as categoricals.
    const auto& name = std::get<Categorical>(s.obs.find("name")->values);
    QCOMPARE(name.categories[name.codes[2]], std::string("z"));
    const auto& maybe = std::get<std::vector<double>>(s.obs.find("maybe")->values);
    QCOMPARE(maybe[0], 1.0);
    QVERIFY(std::isnan(maybe[1]) && std::isnan(maybe[4]));
    QCOMPARE(s.obsm_keys, (std::vector<std::string>{"X_test"}));
    QVERIFY(std::find(s.uns_keys.begin(), s.uns_keys.end(), "note") != s.uns_keys.end());
  }

  // Layouts older anndata versions wrote, made with h5py: 0.7's dataframe groups whose
  // categoricals are codes with a reference to __categories/<column>, and 0.6's record arrays
  // (obs/var compound datasets, categories in uns/<column>_categories, dense X).
  void olderAnndataLayouts() {
    const QString v07 = path("anndata07.h5ad"), v06 = path("anndata06.h5ad");
    const QString script = R"(
import sys
try:
    import h5py, numpy as np
except ImportError:
    sys.exit(77)
vlen = h5py.string_dtype()
with h5py.File(sys.argv[1], "w") as f:
    x = f.create_group("X")
    x.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": [4, 3]})
    x["data"] = np.array([1, 2, 3, 4], dtype=np.float32)
    x["indices"] = np.array([0, 2, 1, 0], dtype=np.int32)
    x["indptr"] = np.array([0, 2, 3, 3, 4], dtype=np.int32)
    for name, index, columns in (("obs", ["c0", "c1", "c2", "c3"], ["louvain", "n_genes"]),
                                 ("var", ["g0", "g1", "g2"], [])):
        g = f.create_group(name)
        g.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.1.0",
                        "_index": "index", "column-order": columns})
        g.create_dataset("index", data=np.array(index, dtype=object), dtype=vlen)
    obs = f["obs"]
    obs.create_dataset("__categories/louvain", data=np.array(["T", "B"], dtype=object), dtype=vlen)
    obs["louvain"] = np.array([1, 0, 1, -1], dtype=np.int8)
    obs["louvain"].attrs["categories"] = obs["__categories/louvain"].ref
    obs["n_genes"] = np.array([2, 1, 0, 1], dtype=np.int64)
    f.create_group("uns")
with h5py.File(sys.argv[2], "w") as f:
    f["X"] = np.array([[1, 0, 2], [0, 3, 0], [0, 0, 0], [4, 0, 0]], dtype=np.float32)
    f["obs"] = np.array([(b"c0", 1, 2, 0.5), (b"c1", 0, 1, 1.5), (b"c2", 1, 0, 0.0),
                         (b"c3", 0, 1, 2.5)],
                        dtype=[("index", "S2"), ("louvain", "i1"), ("n_genes", "<i8"),
                               ("percent_mito", "<f4")])
    f["var"] = np.array([(b"g0", b"E0"), (b"g1", b"E1"), (b"g2", b"E2")],
                        dtype=[("index", "S2"), ("gene_ids", "S2")])
    f["uns/louvain_categories"] = np.array([b"T", b"B"])
)";
    RUN_PYTHON_OR_SKIP("python3-h5py", "-c", script, v07, v06);
    for (const QString& file : {v07, v06}) {
      io::Store s = io::open_store(file.toStdString());
      QCOMPARE(s.obs.index, (std::vector<std::string>{"c0", "c1", "c2", "c3"}));
      QCOMPARE(s.var.index, (std::vector<std::string>{"g0", "g1", "g2"}));
      const auto& cat = std::get<Categorical>(s.obs.find("louvain")->values);
      QCOMPARE(cat.categories, (std::vector<std::string>{"T", "B"}));
      const std::vector<std::int32_t> codes = file == v07 ? std::vector<std::int32_t>{1, 0, 1, -1}
                                                          : std::vector<std::int32_t>{1, 0, 1, 0};
      QCOMPARE(cat.codes, codes);
      QCOMPARE(std::get<std::vector<std::int64_t>>(s.obs.find("n_genes")->values),
               (std::vector<std::int64_t>{2, 1, 0, 1}));
      const CsrMatrix x = s.X->read_rows(0, 4);
      QCOMPARE(x.indptr, (std::vector<std::int64_t>{0, 2, 3, 3, 4}));
      QCOMPARE(x.indices, (std::vector<GeneIndex>{0, 2, 1, 0}));
      QCOMPARE(x.data, (std::vector<float>{1, 2, 3, 4}));
    }
    io::Store old = io::open_store(v06.toStdString());
    QCOMPARE(std::get<std::vector<double>>(old.obs.find("percent_mito")->values),
             (std::vector<double>{0.5, 1.5, 0.0, 2.5}));
    QCOMPARE(std::get<std::vector<std::string>>(old.var.find("gene_ids")->values),
             (std::vector<std::string>{"E0", "E1", "E2"}));
  }

  void hostileFiles() {
    // Truncated: the first half of a valid file.
    const QString good = path("small.h5ad");
    QVERIFY(QFile::exists(good));
    QFile in(good);
    QVERIFY(in.open(QIODevice::ReadOnly));
    const QByteArray bytes = in.readAll();
    const QString cut = path("truncated.h5ad");
    QFile out(cut);
    QVERIFY(out.open(QIODevice::WriteOnly));
    out.write(bytes.left(bytes.size() / 2));
    out.close();
    const QString what = test::error_message([&] {
      io::Store s = io::open_store(cut.toStdString());
      s.X->read_rows(0, s.n_obs());
    });
    QVERIFY2(what.contains("truncated.h5ad"), qPrintable(what));
  }

  // Names that are not UTF-8 (Latin-1 bytes written raw into a UTF-8 string dataset, and into
  // a member name) are errors naming the element: anndata could not read them back either.
  void nonUtf8NamesAreErrors() {
    const QString file = path("latin1.h5ad");
    const QString script = R"(
import sys
try:
    import anndata, h5py, numpy as np, pandas as pd, scipy.sparse as sp
except ImportError:
    sys.exit(77)
X = sp.csr_matrix(np.ones((3, 2), dtype=np.float32))
anndata.AnnData(X=X, obs=pd.DataFrame(index=["a", "b", "c"])).write_h5ad(sys.argv[1])
with h5py.File(sys.argv[1], "r+") as f:
    del f["obs/_index"]
    f["obs"].create_dataset("_index", data=np.array([b"a", b"caf\xe9", b"c"], dtype=object),
                            dtype=h5py.string_dtype("utf-8"))
    assert f["obs/_index"][1] == b"caf\xe9"
)";
    RUN_PYTHON_OR_SKIP("python3-anndata", "-c", script, file);
    const QString what = test::error_message([&] { io::open_store(file.toStdString()); });
    QVERIFY2(what.contains("latin1.h5ad") && what.contains("obs/_index") &&
                 what.contains("string 1 is not UTF-8") && what.contains("caf\\xe9"),
             qPrintable(what));
  }

  // A garbage LZF chunk (written raw, past the filter) is an error naming the element.
  void corruptLzfChunkIsAnError() {
    const QString file = path("bad-lzf.h5ad");
    const QString script = R"(
import sys
try:
    import anndata, h5py, numpy as np, scipy.sparse as sp
except ImportError:
    sys.exit(77)
X = sp.random(50, 40, density=0.3, format="csr", dtype=np.float32, random_state=1)
anndata.AnnData(X=X).write_h5ad(sys.argv[1], compression="lzf")
with h5py.File(sys.argv[1], "r+") as f:
    d = f["X/data"]
    assert d.compression == "lzf"
    d.id.write_direct_chunk((0,), bytes(range(7, 207)), 0)
)";
    RUN_PYTHON_OR_SKIP("python3-anndata", "-c", script, file);
    io::Store s = io::open_store(file.toStdString());
    const QString what = test::error_message([&] { s.X->read_rows(0, s.n_obs()); });
    QVERIFY2(what.contains("bad-lzf.h5ad") && what.contains("X"), qPrintable(what));
  }

  // Deflated 1-D datasets are inflated chunk by chunk in parallel (hdf5_element.cpp): every
  // stored type, with and without shuffle, read over unaligned ranges spanning many chunks and
  // converted to other types, equals what h5py wrote; a chunk of garbage is an error naming the
  // file, the dataset and the chunk.
  void deflatedChunksReadInParallel() {
    const QString file = path("deflated.h5");
    const QString script = R"(
import sys
try:
    import h5py, numpy as np
except ImportError:
    sys.exit(77)
n = 100003
with h5py.File(sys.argv[1], "w") as f:
    for shuffle in (False, True):
        for dt in ("<i4", "<i8", "<u4", "<u8", "<f4", "<f8"):
            v = (np.arange(n, dtype=np.int64) * 7919 % 1000003 - 500000)
            if dt.startswith("<u"):
                v = np.abs(v)
            f.create_dataset(f"{'s' if shuffle else 'p'}{dt[1:]}", data=v.astype(dt) / (4 if dt[1] == "f" else 1),
                             chunks=(997,), compression="gzip", compression_opts=4, shuffle=shuffle)
    d = f.create_dataset("bad", data=np.arange(n, dtype=np.float32), chunks=(997,), compression="gzip")
    d.id.write_direct_chunk((997 * 3,), bytes(range(7, 207)), 0)
)";
    RUN_PYTHON_OR_SKIP("python3-h5py", "-c", script, file);
    auto root = io::open_hdf5_root(file.toStdString());
    const std::int64_t n = 100003, b = 1234, e = 98765;
    auto expected = [&](std::int64_t i, bool is_unsigned, bool is_float) {
      double v = static_cast<double>(i * 7919 % 1000003 - 500000);
      if (is_unsigned) v = std::fabs(v);
      return is_float ? v / 4 : v;
    };
    for (const char* prefix : {"p", "s"})
      for (const char* t : {"i4", "i8", "u4", "u8", "f4", "f8"}) {
        auto d = root->require(std::string(prefix) + t);
        QCOMPARE(d->shape(), std::vector<std::int64_t>{n});
        const bool is_unsigned = t[0] == 'u', is_float = t[0] == 'f';
        std::vector<double> as_double(e - b);
        d->read(b, e, as_double.data());
        std::vector<std::int64_t> as_int(e - b);
        if (!is_float) d->read(b, e, as_int.data());
        for (std::int64_t i = b; i < e; ++i) {
          QCOMPARE(as_double[i - b], expected(i, is_unsigned, is_float));
          if (!is_float)
            QCOMPARE(static_cast<double>(as_int[i - b]), expected(i, is_unsigned, false));
        }
        // As stored (whole chunks inflate straight into the array there).
        if (std::string(t) == "f4") {
          std::vector<float> same(e - b);
          d->read(b, e, same.data());
          for (std::int64_t i = b; i < e; ++i)
            QCOMPARE(static_cast<double>(same[i - b]), expected(i, false, true));
        } else if (std::string(t) == "i4") {
          std::vector<std::int32_t> same(e - b);
          d->read(b, e, same.data());
          for (std::int64_t i = b; i < e; ++i)
            QCOMPARE(static_cast<double>(same[i - b]), expected(i, false, false));
        }
      }
    auto bad = root->require("bad");
    std::vector<float> all(n);
    bad->read(0, 997 * 3, all.data());  // the chunks before the damaged one are fine
    QCOMPARE(all[2990], 2990.0f);
    const QString what = test::error_message([&] { bad->read(0, n, all.data()); });
    QVERIFY2(what.contains("deflated.h5") && what.contains("bad") && what.contains("chunk at 2991"),
             qPrintable(what));
  }

  // The HDF5 guard's bookkeeping with stand-in checkers (/bin/true passes any file, /bin/false
  // fails it): a failed check is an error naming the file; a file that passed is not checked
  // again until it changes. (tests/cli/errors.sh runs the real check on hostile files.)
  void hdf5GuardRemembersFilesThatPassed() {
    const QString file = path("guarded.h5ad");
    {
      io::AnnDataWriter w(file.toStdString());
      write_single_chunk(w, small_matrix());
      DataFrame obs, var;
      obs.index = {"c0", "c1", "c2", "c3"};
      var.index = {"g0", "g1", "g2", "g3", "g4"};
      w.write_obs(obs);
      w.write_var(var);
      w.commit();
    }
    qunsetenv("ORRERY_HDF5_GUARD");
    auto off = qScopeGuard([] { qputenv("ORRERY_HDF5_GUARD", "0"); });  // later tests: off
    auto refused = [&] {
      const QString e = test::error_message([&] { io::open_store(file.toStdString()); });
      return e.contains("guarded.h5ad") && e.contains("exit status 1");
    };
    io::enable_hdf5_guard("/bin/false");
    QVERIFY(refused());
    io::enable_hdf5_guard("/bin/true");
    QCOMPARE(io::open_store(file.toStdString()).n_obs(), std::int64_t{4});
    io::enable_hdf5_guard("/bin/false");
    QCOMPARE(io::open_store(file.toStdString()).n_obs(), std::int64_t{4});  // remembered
    const auto later =
        std::filesystem::last_write_time(file.toStdString()) + std::chrono::seconds(2);
    std::filesystem::last_write_time(file.toStdString(), later);
    QVERIFY(refused());  // changed since: checked again
  }

  void hugeDeclaredSizesAreRefusedNotAllocated() {
    const QString file = path("huge.h5ad");
    const QString script = R"(
import sys
try:
    import h5py, numpy as np
except ImportError:
    sys.exit(77)
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["encoding-type"] = "anndata"; f.attrs["encoding-version"] = "0.1.0"
    for name, n in (("obs", 2), ("var", 5)):
        g = f.create_group(name)
        g.attrs["encoding-type"] = "dataframe"; g.attrs["encoding-version"] = "0.2.0"
        g.attrs["_index"] = "_index"; g.attrs["column-order"] = np.array([], dtype=float)
        g.create_dataset("_index", data=np.array([f"{name}{i}" for i in range(n)], dtype=object), dtype=h5py.string_dtype())
    x = f.create_group("X")
    x.attrs["encoding-type"] = "csr_matrix"; x.attrs["encoding-version"] = "0.1.0"; x.attrs["shape"] = (2, 5)
    big = 10**11
    x.create_dataset("data", shape=(big,), dtype="f4", chunks=(1 << 16,))
    x.create_dataset("indices", shape=(big,), dtype="i4", chunks=(1 << 16,))
    x.create_dataset("indptr", data=np.array([0, big, big], dtype=np.int64))
)";
    RUN_PYTHON_OR_SKIP("python3-h5py", "-c", script, file);
    io::Store s = io::open_store(file.toStdString());
    QCOMPARE(s.X->nnz(), std::int64_t{100000000000});
    const QString what = test::error_message([&] { s.X->read_rows(0, 2); });
    QVERIFY2(what.contains("X/indptr"), qPrintable(what));
  }

  void corruptIndptrAndIndices() {
    // indptr not monotone and an index out of range, written by our own writer with bad chunks.
    for (int variant = 0; variant < 2; ++variant) {
      const QString file = path(variant ? "badindex.h5ad" : "badindptr.h5ad");
      {
        io::AnnDataWriter w(file.toStdString());
        CsrMatrix m = small_matrix();
        if (variant == 0)
          m.indptr = {0, 3, 2, 5, 6};
        else
          m.indices[2] = 99;
        write_single_chunk(w, m);
        DataFrame obs, var;
        obs.index = {"a", "b", "c", "d"};
        var.index = {"g0", "g1", "g2", "g3", "g4"};
        w.write_obs(obs);
        w.write_var(var);
        w.commit();
      }
      io::Store s = io::open_store(file.toStdString());
      const QString what = test::error_message([&] { s.X->read_rows(0, 4); });
      QVERIFY2(what.contains(variant ? "X/indices" : "X/indptr"), qPrintable(what));
    }
  }
};

QTEST_GUILESS_MAIN(TestH5ad)
#include "test_h5ad.moc"
