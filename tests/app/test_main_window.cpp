// The GUI end to end under Xvfb + lavapipe: open the demo, run the pipeline on the compute
// thread while the event loop stays responsive, read back the rendered frame and find several
// cluster colours in it; cancel a run; export PNG and .h5ad and read them back.
#include <QtTest/QtTest>

#include <fstream>

#include <QCompleter>
#include <QElapsedTimer>
#include <QMimeData>
#include <QSettings>
#include <QStatusBar>
#include <QTimer>
#include <QUrl>
#include <QVulkanInstance>
#include <QXmlStreamReader>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "common/python.hpp"
#include "demo.hpp"
#include "eta.hpp"
#include "io/anndata_reader.hpp"
#include "io/store.hpp"
#include "main_window.hpp"
#include "render/figure.hpp"
#include "render/overlay.hpp"
#include "render/selection.hpp"

using namespace orrery;

namespace {

// Number of palette colours that cover at least `min_pixels` pixels of `img`.
int colours_present(const QImage& img, const std::vector<std::string>& palette, int min_pixels) {
  std::vector<int> hits(palette.size(), 0);
  std::vector<QColor> colours;
  for (const auto& p : palette) colours.emplace_back(QString::fromStdString(p));
  const QImage rgb = img.convertToFormat(QImage::Format_RGB32);
  for (int y = 0; y < rgb.height(); ++y)
    for (int x = 0; x < rgb.width(); ++x) {
      const QColor c = rgb.pixelColor(x, y);
      for (std::size_t k = 0; k < colours.size(); ++k)
        if (std::abs(c.red() - colours[k].red()) <= 10 &&
            std::abs(c.green() - colours[k].green()) <= 10 &&
            std::abs(c.blue() - colours[k].blue()) <= 10)
          ++hits[k];
    }
  int present = 0;
  for (int h : hits) present += h >= min_pixels;
  return present;
}

}  // namespace

class TestMainWindow : public QObject {
  Q_OBJECT
  QVulkanInstance vulkan_;
  std::unique_ptr<app::MainWindow> window_;
  QString demo_;
  QTemporaryDir tmp_;

  // What the display shows: waits for a new frame, then reads the window's pixels back from
  // the X server. Without `overlay`, the heads-up overlay is off for the grab, so its legend
  // swatches do not count as points.
  QImage grabView(bool overlay = false) {
    app::UmapView* view = window_->umapView();
    const bool was = view->overlayVisible();
    view->setOverlayVisible(overlay && was);
    const auto restore = qScopeGuard([&] { view->setOverlayVisible(was); });
    const auto frames = view->framesRendered();
    view->requestUpdate();
    if (!QTest::qWaitFor([&] { return view->framesRendered() > frames; }, 10000)) return {};
    QTest::qWait(50);
    const QPoint origin = view->mapToGlobal(QPoint(0, 0));
    return view->screen()
        ->grabWindow(0, origin.x(), origin.y(), view->width(), view->height())
        .toImage();
  }

  static QStringList readLines(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly | QIODevice::Text)) return {};
    return QString::fromUtf8(f.readAll()).split('\n', Qt::SkipEmptyParts);
  }

 private slots:
  void initTestCase() {
    vulkan_.setApiVersion(QVersionNumber(1, 1));
    if (!vulkan_.create())
      QSKIP(qPrintable(QString("no Vulkan instance (error %1): needs a Vulkan driver such as "
                               "mesa-vulkan-drivers and a display (Xvfb)")
                           .arg(vulkan_.errorCode())));
    qputenv("XDG_CACHE_HOME", tmp_.path().toUtf8());
    // Settings (recent files) in the temporary folder, never the user's.
    QCoreApplication::setOrganizationName("OrreryTest");
    QSettings::setDefaultFormat(QSettings::IniFormat);
    QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, tmp_.path());
    demo_ = QString::fromStdString(app::ensure_demo_store());
    window_ = std::make_unique<app::MainWindow>(&vulkan_);
    window_->setProperty("quietErrors", true);
    window_->resize(900, 700);
    window_->show();
    QVERIFY(QTest::qWaitForWindowExposed(window_.get()));
  }

  void demoRunRendersClusterColours() {
    QSignalSpy done(window_.get(), &app::MainWindow::runFinished);
    QSignalSpy failed(window_.get(), &app::MainWindow::runFailed);
    // The UI thread must keep serving events while the compute thread works.
    QElapsedTimer since_tick;
    qint64 max_gap = 0;
    QTimer ticker;
    ticker.setInterval(10);
    connect(&ticker, &QTimer::timeout, [&] { max_gap = std::max(max_gap, since_tick.restart()); });
    since_tick.start();
    ticker.start();
    // The status bar names each stage as it starts (then adds the time left).
    QStringList stages, shown;
    auto status =
        connect(window_.get(), &app::MainWindow::runProgress, [&](const QString& stage, double) {
          stages << stage;
          shown << window_->statusText();
        });
    const auto disconnect_status = qScopeGuard([&] { disconnect(status); });
    window_->openStore(demo_);
    QVERIFY(window_->isRunning());
    // The store heads the recent files and the File menu's Open recent list.
    QCOMPARE(window_->recentFiles().value(0), QFileInfo(demo_).absoluteFilePath());
    QCOMPARE(window_->recentMenu()->actions().value(0)->text(), QFileInfo(demo_).fileName());
    QVERIFY(window_->recentMenu()->actions().value(0)->isEnabled());
    QVERIFY2(done.wait(300000),
             failed.isEmpty() ? "timed out" : qPrintable(failed.first().first().toString()));
    ticker.stop();
    qInfo("longest gap between 10 ms timer ticks during the run: %lld ms", max_gap);
    for (const char* stage : {"qc", "hvg", "pca", "neighbors", "umap", "leiden"})
      QVERIFY2(stages.contains(stage), qPrintable(stages.join(",")));
    for (int i = 0; i < stages.size(); ++i)
      QVERIFY2(shown[i].startsWith(stages[i]), qPrintable(shown[i]));
    QVERIFY2(window_->statusText().startsWith("Done in"), qPrintable(window_->statusText()));
    QVERIFY(!window_->snapshot()->qc_reused);  // a store's first run makes its QC pass
    // The Store panel describes the opened store as `orrery info` does.
    {
      io::Store s = io::open_store(demo_.toStdString());
      const QString summary = window_->storeSummary();
      QVERIFY2(
          summary.contains(QString("shape    %1 cells x %2 genes").arg(s.n_obs()).arg(s.n_vars())),
          qPrintable(summary));
      QVERIFY(summary.contains(QString("nnz      %1").arg(s.X->nnz())));
      QVERIFY(summary.contains(QRegularExpression("obs col  true_cluster +categorical")));
    }
    QVERIFY(max_gap < 2000);

    auto snap = window_->snapshot();
    QVERIFY(snap);
    QCOMPARE(snap->n_cells_total, 3000);
    QVERIFY(snap->n_cells > 2500);
    QVERIFY(snap->cluster_sizes.size() >= 4);
    QCOMPARE(window_->clusterList()->count(), static_cast<int>(snap->cluster_sizes.size()));

    app::UmapView* view = window_->umapView();
    const auto frames = view->framesRendered();
    view->requestUpdate();
    QTRY_VERIFY_WITH_TIMEOUT(view->framesRendered() > frames, 10000);
    QCOMPARE(view->colorFormat(), VK_FORMAT_B8G8R8A8_UNORM);
    // What the display shows: read the window's pixels back from the X server.
    const QPoint origin = view->mapToGlobal(QPoint(0, 0));
    const QImage frame = view->screen()
                             ->grabWindow(0, origin.x(), origin.y(), view->width(), view->height())
                             .toImage();
    QVERIFY(!frame.isNull());
    if (qEnvironmentVariableIsSet("ORRERY_TEST_SAVE_FRAME"))
      frame.save(qEnvironmentVariable("ORRERY_TEST_SAVE_FRAME"));
    const int present = colours_present(frame, snap->palette, 20);
    qInfo("frame %dx%d: %d of %zu cluster colours present", frame.width(), frame.height(), present,
          snap->palette.size());
    QVERIFY(present >= 4);
  }

  void markersTableFollowsClusterSelection() {
    auto snap = window_->snapshot();
    QVERIFY(snap);
    QTableWidget* table = window_->markerTable();
    // Each cluster's size is drawn after its name (the delegate paints the size role).
    QListWidget* list = window_->clusterList();
    for (int c = 0; c < list->count(); ++c)
      QCOMPARE(list->item(c)->data(app::kClusterSizeRole).toLongLong(),
               static_cast<qlonglong>(snap->cluster_sizes[c]));
    const QImage sizes_drawn = list->viewport()->grab().toImage();
    list->item(0)->setData(app::kClusterSizeRole, 987654);
    const QImage other_size = list->viewport()->grab().toImage();
    const QRect row0 = list->visualItemRect(list->item(0));
    int differ_right = 0, differ_left = 0;
    for (int y = row0.top(); y <= row0.bottom(); ++y)
      for (int x = 0; x < sizes_drawn.width(); ++x)
        (x > sizes_drawn.width() / 2 ? differ_right : differ_left) +=
            sizes_drawn.pixel(x, y) != other_size.pixel(x, y);
    QVERIFY2(differ_right > 10 && differ_left == 0,
             qPrintable(QString("%1 / %2").arg(differ_right).arg(differ_left)));
    list->item(0)->setData(app::kClusterSizeRole, static_cast<qlonglong>(snap->cluster_sizes[0]));
    window_->clusterList()->setCurrentRow(1);
    QCOMPARE(table->rowCount(), static_cast<int>(snap->markers[1].size()));
    QVERIFY(table->rowCount() > 10);
    QCOMPARE(table->item(0, 0)->text(), QString::fromStdString(snap->markers[1][0].gene));
    for (int r = 1; r < table->rowCount(); ++r)
      QVERIFY(table->item(r - 1, 1)->data(Qt::DisplayRole).toDouble() >=
              table->item(r, 1)->data(Qt::DisplayRole).toDouble());
    // A synthetic cluster's top marker is strongly up (planted fold change >= e^0.5).
    QVERIFY(snap->markers[1][0].logfoldchange > 0.7);
    QVERIFY(snap->markers[1][0].pct_in > snap->markers[1][0].pct_out);

    // The filter row: rows shown are exactly those matching, and the CSV export takes them.
    auto visible = [&] {
      QStringList genes;
      for (int r = 0; r < table->rowCount(); ++r)
        if (!table->isRowHidden(r)) genes << table->item(r, 0)->text();
      return genes;
    };
    const auto& rows = snap->markers[1];
    const QString top = QString::fromStdString(rows[0].gene);
    const QString part = top.right(2).toLower();  // e.g. "17" of "gene-0017"
    window_->setMarkerFilter(part);
    int expected = 0;
    for (const auto& m : rows) expected += QString::fromStdString(m.gene).contains(part);
    QCOMPARE(visible().size(), expected);
    QVERIFY(visible().contains(top));
    double median_p = 0;
    {
      std::vector<double> p;
      for (const auto& m : rows) p.push_back(m.pval_adj);
      std::sort(p.begin(), p.end());
      median_p = p[p.size() / 2];
    }
    window_->setMarkerFilter("", median_p, 0.5);
    expected = 0;
    for (const auto& m : rows) expected += m.pval_adj <= median_p && m.logfoldchange >= 0.5;
    QCOMPARE(visible().size(), expected);
    QVERIFY(expected > 0 && expected < static_cast<int>(rows.size()));
    const QString csv = tmp_.filePath("filtered-markers.csv");
    QVERIFY(window_->exportMarkersCsv(csv));
    const QStringList lines = readLines(csv);
    QCOMPARE(lines.size(), expected + 1);
    for (int i = 1; i < lines.size(); ++i) {
      const QStringList f = lines[i].split(',');
      QVERIFY(f[2].toDouble() >= 0.5 && f[3].toDouble() <= median_p);
    }
    window_->setMarkerFilter("");
    QCOMPARE(visible().size(), static_cast<int>(rows.size()));
  }

  void lassoSelectsAClusterAndComparesIt() {
    auto snap = window_->snapshot();
    app::UmapView* view = window_->umapView();
    view->fitToData();
    // The bounding box of cluster 1 in window coordinates, padded by a few pixels.
    const qreal dpr = view->devicePixelRatio();
    float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
    std::int64_t members = 0;
    for (std::size_t i = 0; i < snap->labels.size(); ++i) {
      if (snap->labels[i] != 1) continue;
      ++members;
      const auto p = view->camera().to_pixels({snap->umap_xy[2 * i], snap->umap_xy[2 * i + 1]});
      x0 = std::min(x0, p.x);
      x1 = std::max(x1, p.x);
      y0 = std::min(y0, p.y);
      y1 = std::max(y1, p.y);
    }
    const QPoint a(int((x0 - 3) / dpr), int((y0 - 3) / dpr)),
        b(int((x1 + 3) / dpr), int((y1 + 3) / dpr));
    QSignalSpy changed(window_.get(), &app::MainWindow::selectionChanged);
    QTest::mousePress(view, Qt::LeftButton, Qt::ShiftModifier, a);
    for (QPoint p : {QPoint(b.x(), a.y()), b, QPoint(a.x(), b.y()), a}) QTest::mouseMove(view, p);
    QTest::mouseRelease(view, Qt::LeftButton, Qt::ShiftModifier, a);
    QCOMPARE(changed.count(), 1);
    auto sel = window_->selection();
    QVERIFY(sel);
    std::int64_t selected_in = 0, selected = 0;
    for (std::size_t i = 0; i < sel->size(); ++i) {
      selected += (*sel)[i];
      selected_in += (*sel)[i] && snap->labels[i] == 1;
    }
    qInfo("lasso around cluster 1 (%lld cells): %lld selected, %lld of them in cluster 1",
          static_cast<long long>(members), static_cast<long long>(selected),
          static_cast<long long>(selected_in));
    QCOMPARE(selected_in, members);  // the whole cluster
    QVERIFY(selected - selected_in <=
            members / 20);  // and (almost) nothing else: clusters are apart
    QSignalSpy shown(window_.get(), &app::MainWindow::selectionMarkersShown);
    window_->compareSelection();
    QVERIFY(shown.wait(60000));
    // The selection is cluster 1, so its top marker is cluster 1's top marker.
    QCOMPARE(window_->markerTable()->item(0, 0)->text(),
             QString::fromStdString(snap->markers[1][0].gene));
  }

  // Ctrl + drag brushes a rectangle: its outline is drawn while dragging (dark dots along the
  // edges on the light background), gone after release, and the rectangle selects the cells.
  void brushOutlinedWhileDraggingSelects() {
    auto snap = window_->snapshot();
    app::UmapView* view = window_->umapView();
    const qreal dpr = view->devicePixelRatio();
    float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
    std::int64_t members = 0;
    for (std::size_t i = 0; i < snap->labels.size(); ++i) {
      if (snap->labels[i] != 1) continue;
      ++members;
      const auto p = view->camera().to_pixels({snap->umap_xy[2 * i], snap->umap_xy[2 * i + 1]});
      x0 = std::min(x0, p.x);
      x1 = std::max(x1, p.x);
      y0 = std::min(y0, p.y);
      y1 = std::max(y1, p.y);
    }
    const QPoint a(int((x0 - 6) / dpr), int((y0 - 6) / dpr)),
        b(int((x1 + 6) / dpr), int((y1 + 6) / dpr));
    // Share of positions along the brush's top and left edges with a dark pixel within 2 px.
    auto inked = [&](const QImage& img) {
      int hits = 0, samples = 0;
      auto dark = [&](int x, int y) {
        for (int d = -2; d <= 2; ++d) {
          const int xx = x + (y == a.y() ? 0 : d), yy = y + (y == a.y() ? d : 0);
          if (img.valid(xx, yy) && img.pixelColor(xx, yy).lightness() < 70) return true;
        }
        return false;
      };
      for (int x = a.x() + 4; x < b.x() - 4; x += 3, ++samples) hits += dark(x, a.y());
      for (int y = a.y() + 4; y < b.y() - 4; y += 3, ++samples) hits += dark(a.x(), y);
      return samples ? double(hits) / samples : 0.0;
    };
    QSignalSpy changed(window_.get(), &app::MainWindow::selectionChanged);
    QTest::mousePress(view, Qt::LeftButton, Qt::ControlModifier, a);
    QTest::mouseMove(view, (a + b) / 2);
    QTest::mouseMove(view, b);
    QCOMPARE(view->outline().size(), std::size_t{4});
    const double during = inked(grabView().convertToFormat(QImage::Format_RGB32));
    QTest::mouseRelease(view, Qt::LeftButton, Qt::ControlModifier, b);
    QCOMPARE(changed.count(), 1);
    QVERIFY(view->outline().empty());
    const double after = inked(grabView().convertToFormat(QImage::Format_RGB32));
    qInfo("brush outline: %.0f%% of edge positions inked while dragging, %.0f%% after release",
          100 * during, 100 * after);
    QVERIFY(during > 0.9);
    QVERIFY(after < 0.2);
    auto sel = window_->selection();
    std::int64_t selected_in = 0, selected = 0;
    for (std::size_t i = 0; i < sel->size(); ++i) {
      selected += (*sel)[i];
      selected_in += (*sel)[i] && snap->labels[i] == 1;
    }
    QCOMPARE(selected_in, members);
    QVERIFY(selected - selected_in <= members / 20);
  }

  // The Dear ImGui overlay draws the legend (a swatch per cluster) in the viewport's top right
  // corner; O toggles it.
  void overlayShowsTheLegend() {
    app::UmapView* view = window_->umapView();
    if (!render::Overlay::available()) QSKIP("this build has no Dear ImGui (libimgui-dev)");
    auto snap = window_->snapshot();
    QVERIFY(view->overlayVisible());
    auto legend_colours = [&] {
      const QImage frame = grabView(true);
      const int w = std::min(frame.width(), 160);
      return colours_present(frame.copy(frame.width() - w, 0, w, frame.height() / 2), snap->palette,
                             40);
    };
    const int on = legend_colours();
    QTest::keyClick(view, Qt::Key_O);
    QVERIFY(!view->overlayVisible());
    const int off = legend_colours();
    QTest::keyClick(view, Qt::Key_O);
    QVERIFY(view->overlayVisible());
    qInfo("cluster colours in the top-right corner: %d with the overlay, %d without (%zu clusters)",
          on, off, snap->palette.size());
    QCOMPARE(on, static_cast<int>(snap->palette.size()));
    QVERIFY(off < on);
  }

  // The viewport's compute-splat path (used from 2M points) forced on the demo: the same picture
  // as the sprites except where differently coloured points overlap (mean colour there).
  void splattedViewportMatchesSprites() {
    app::UmapView* view = window_->umapView();
    const QImage sprites = grabView();
    view->setSplatFrom(1);
    const auto restore = qScopeGuard([&] { view->setSplatFrom(std::nullopt); });
    const QImage splats = grabView();
    QVERIFY(!sprites.isNull() && !splats.isNull());
    QCOMPARE(splats.size(), sprites.size());
    std::int64_t same = 0, inked = 0, total = 0;
    const QRgb bg = sprites.pixel(1, 1);
    for (int y = 0; y < sprites.height(); ++y)
      for (int x = 0; x < sprites.width(); ++x) {
        const QRgb a = sprites.pixel(x, y), b = splats.pixel(x, y);
        const int d = std::max({std::abs(qRed(a) - qRed(b)), std::abs(qGreen(a) - qGreen(b)),
                                std::abs(qBlue(a) - qBlue(b))});
        same += d <= 6;
        inked += b != bg;
        ++total;
      }
    qInfo("splatted viewport: %.4f of pixels within 6/255 of the sprites', %.4f drawn on",
          double(same) / total, double(inked) / total);
    QVERIFY(same >= 0.97 * total);
    QVERIFY(inked >= 0.01 * total);
  }

  // The viewport's lasso on the Vulkan device (forced on lavapipe; automatic on a GPU) selects
  // what the CPU selects, on the demo's embedding.
  void lassoOnTheDeviceEqualsTheCpu() {
    app::UmapView* view = window_->umapView();
    const auto& xy = view->points().positions;
    QVERIFY(xy.size() > 100);
    glm::vec2 lo(1e30f), hi(-1e30f);
    for (auto p : xy) lo = glm::min(lo, p), hi = glm::max(hi, p);
    const glm::vec2 c = (lo + hi) * 0.5f, r = (hi - lo) * 0.3f;
    std::vector<glm::vec2> polygon;
    for (int k = 0; k < 200; ++k) {
      const float t = 6.2831853f * k / 200, w = 1 + 0.3f * std::sin(5 * t);
      polygon.push_back({c.x + w * r.x * std::cos(t), c.y + w * r.y * std::sin(t)});
    }
    const auto cpu = render::points_in_polygon(xy, polygon);
    view->setSelectOnDevice(true);
    const auto gpu = view->pointsInPolygon(polygon);
    view->setSelectOnDevice(false);
    QCOMPARE(gpu.size(), cpu.size());
    std::size_t differ = 0, inside = 0;
    for (std::size_t i = 0; i < cpu.size(); ++i) differ += gpu[i] != cpu[i], inside += cpu[i];
    qInfo("device lasso: %zu of %zu cells inside, %zu differ from the CPU", inside, cpu.size(),
          differ);
    QVERIFY(inside > 0 && inside < cpu.size());
    QVERIFY(differ <= 2);
  }

  void colourByGeneThroughSearch() {
    auto snap = window_->snapshot();
    // The search box completes over the kept genes, the QC columns and the obs columns.
    QCompleter* completer = window_->geneSearch()->completer();
    QVERIFY(completer);
    QStringList offered;
    for (int r = 0; r < completer->model()->rowCount(); ++r)
      offered << completer->model()->index(r, 0).data().toString();
    QCOMPARE(offered.size(), static_cast<int>(snap->gene_names.size() + snap->obs_numeric.size() +
                                              snap->obs_categorical.size()));
    for (const char* name : {"total_counts", "pct_counts_mt", "true_cluster"})
      QVERIFY2(offered.contains(name), name);
    QVERIFY(offered.contains(QString::fromStdString(snap->gene_names.back())));
    // Double-clicking a marker colours the view by that gene.
    {
      const int row = window_->clusterList()->currentRow();
      const auto restore_row = qScopeGuard([&] { window_->clusterList()->setCurrentRow(row); });
      window_->clusterList()->setCurrentRow(2);
      QTableWidget* table = window_->markerTable();
      QVERIFY(table->rowCount() > 0);
      const QString top = table->item(0, 0)->text();
      QSignalSpy clicked(window_.get(), &app::MainWindow::geneShown);
      const QRect cell = table->visualItemRect(table->item(0, 0));
      // A double-click is a press, release and double-click event on the same cell.
      QTest::mouseClick(table->viewport(), Qt::LeftButton, Qt::NoModifier, cell.center());
      QTest::mouseDClick(table->viewport(), Qt::LeftButton, Qt::NoModifier, cell.center());
      QVERIFY(clicked.count() == 1 || clicked.wait(60000));
      QCOMPARE(clicked.first().first().toString(), top);
      window_->colorByGene("");
    }
    const QString gene = QString::fromStdString(snap->markers[1][0].gene);
    QSignalSpy shown(window_.get(), &app::MainWindow::geneShown);
    window_->geneSearch()->setText(gene);
    QTest::keyClick(window_->geneSearch(), Qt::Key_Return);
    QVERIFY(shown.wait(60000));
    auto values = window_->geneValues();
    QVERIFY(values);
    QCOMPARE(values->size(), snap->labels.size());
    double in = 0, out = 0;
    std::int64_t n_in = 0;
    for (std::size_t i = 0; i < values->size(); ++i) {
      if (snap->labels[i] == 1) {
        in += (*values)[i];
        ++n_in;
      } else
        out += (*values)[i];
    }
    in /= n_in;
    out /= static_cast<double>(values->size() - n_in);
    qInfo("%s: mean log expression %.3f in cluster 1, %.3f elsewhere", qPrintable(gene), in, out);
    QVERIFY(in > out + 0.5);
    // The frame now shows the colormap's top colour and no cluster colours.
    const QImage frame = grabView();
    QVERIFY(colours_present(frame, {"#fde725"}, 20) == 1);
    QCOMPARE(colours_present(frame, snap->palette, 20), 0);
    // An unknown gene is an error naming it; clearing the search returns to clusters.
    QSignalSpy failed(window_.get(), &app::MainWindow::runFailed);
    window_->colorByGene("NOT-A-GENE");
    QVERIFY(failed.wait(30000));
    QVERIFY(failed.first().first().toString().contains("NOT-A-GENE"));
    // Selection A vs B: cluster 2 against cluster 1 only. Its top marker is higher in 2 than in 1.
    {
      auto in_cluster = [&](int c) {
        auto mask = std::make_shared<std::vector<bool>>(snap->labels.size());
        for (std::size_t i = 0; i < mask->size(); ++i) (*mask)[i] = snap->labels[i] == c;
        return std::shared_ptr<const std::vector<bool>>(std::move(mask));
      };
      const auto previous = window_->selection();
      window_->setGroupA(in_cluster(1));
      window_->setSelection(in_cluster(2));
      QSignalSpy compared(window_.get(), &app::MainWindow::selectionMarkersShown);
      window_->compareSelectionWithA();
      QVERIFY(compared.wait(60000));
      const QString top = window_->markerTable()->item(0, 0)->text();
      window_->colorByGene(top);
      QVERIFY(shown.wait(30000));
      double in2 = 0, in1 = 0;
      std::int64_t n2 = 0, n1 = 0;
      for (std::size_t i = 0; i < snap->labels.size(); ++i) {
        const float v = (*window_->geneValues())[i];
        if (snap->labels[i] == 2) in2 += v, ++n2;
        if (snap->labels[i] == 1) in1 += v, ++n1;
      }
      qInfo("cluster 2 vs cluster 1: top gene %s, mean %.3f vs %.3f", qPrintable(top), in2 / n2,
            in1 / n1);
      QVERIFY(in2 / n2 > in1 / n1 + 0.5);
      window_->setSelection(previous);
    }
    // A categorical obs column (the demo's planted clusters) colours by its categories: the
    // frame shows its palette, and each cell's code is the store's.
    QVERIFY(std::count(snap->obs_categorical.begin(), snap->obs_categorical.end(),
                       "true_cluster") == 1);
    window_->colorByGene("true_cluster");
    QVERIFY(shown.wait(30000));
    const auto categories = window_->obsCategories();
    QVERIFY(categories && !window_->geneValues());
    QCOMPARE(categories->codes.size(), snap->labels.size());
    const auto lassoed = window_->selection();
    window_->setSelection(nullptr);  // undimmed, every category shows
    QCOMPARE(colours_present(grabView(), categories->colors, 20),
             static_cast<int>(categories->categories.size()));
    window_->setSelection(lassoed);
    {
      io::Store s = io::open_store(demo_.toStdString());
      const auto& truth = std::get<Categorical>(s.obs.find("true_cluster")->values);
      for (std::int64_t i : {std::int64_t{0}, snap->n_cells - 1}) {
        const auto at = std::find(s.obs.index.begin(), s.obs.index.end(), snap->cell_names[i]);
        QCOMPARE(categories->codes[i], truth.codes[at - s.obs.index.begin()]);
      }
    }
    // The coloured categories become the editable labels (one undoable edit): the cluster list
    // shows them, every cell carries its code; undo restores the Leiden clusters.
    {
      const auto leiden = window_->annotation();
      QVERIFY(window_->useCategoriesAsLabels());
      QVERIFY(!window_->obsCategories());
      const auto adopted = window_->annotation();
      QCOMPARE(adopted.names, categories->categories);
      QCOMPARE(adopted.colors, categories->colors);
      QCOMPARE(*adopted.labels, categories->codes);
      QCOMPARE(window_->clusterList()->count(), static_cast<int>(categories->categories.size()));
      QVERIFY(!window_->useCategoriesAsLabels());  // not coloured by categories any more
      // Edited labels' markers are computed against the rest on demand (the run's belong to its
      // Leiden clusters): merge two categories, pick the merged one.
      window_->mergeClusters({0, 1});
      QSignalSpy label_markers(window_.get(), &app::MainWindow::selectionMarkersShown);
      window_->clusterList()->setCurrentRow(-1);
      window_->clusterList()->setCurrentRow(0);
      QVERIFY(label_markers.wait(60000));
      QVERIFY(window_->markerTable()->rowCount() > 0);
      QCOMPARE(window_->clusterList()->currentRow(), 0);
      window_->undoStack()->undo();  // the merge
      window_->undoStack()->undo();  // the adoption
      QCOMPARE(window_->annotation().names, leiden.names);
      QCOMPARE(*window_->annotation().labels, *leiden.labels);
      window_->colorByGene("true_cluster");  // as before this block
      QVERIFY(shown.wait(30000));
    }
    // A QC column colours the same way: total counts per kept cell, equal to the row sums of X.
    QVERIFY(std::count(snap->obs_numeric.begin(), snap->obs_numeric.end(), "total_counts") == 1);
    window_->colorByGene("total_counts");
    QVERIFY(shown.wait(30000));
    auto totals = window_->geneValues();
    QVERIFY(totals && totals->size() == snap->labels.size());
    io::Store store = io::open_store(demo_.toStdString());
    for (std::int64_t i : {std::int64_t{0}, snap->n_cells / 2, snap->n_cells - 1}) {
      const auto at =
          std::find(store.obs.index.begin(), store.obs.index.end(), snap->cell_names[i]);
      const auto row =
          store.X->read_rows(at - store.obs.index.begin(), at - store.obs.index.begin() + 1);
      double sum = 0;
      for (float v : row.data) sum += v;
      QVERIFY2(std::fabs((*totals)[i] - sum) <= 1e-4 * sum, qPrintable(QString("cell %1").arg(i)));
    }
    window_->colorByGene("");
    QVERIFY(!window_->geneValues());
    // The selection from the earlier tests (cluster 1) greys all other clusters out.
    QCOMPARE(colours_present(grabView(), {snap->palette[1]}, 20), 1);
    const QImage dimmed = grabView();
    for (std::size_t c = 0; c < snap->palette.size(); ++c)
      QVERIFY2(colours_present(dimmed, {snap->palette[c]}, 20) == (c == 1),
               qPrintable(QString("cluster %1").arg(c)));
  }

  // Dot plot of the top markers: each dot's mean and fraction equal the gene's values per
  // cluster, and the plot draws the strongest group dark red.
  void dotPlotOfTopMarkers() {
    QSignalSpy ready(window_.get(), &app::MainWindow::dotPlotShown);
    window_->showDotPlot();
    QVERIFY(ready.wait(60000));
    const auto data = window_->dotPlot()->data();
    QVERIFY(data && !data->genes.isEmpty());
    QCOMPARE(data->groups.size(), static_cast<qsizetype>(window_->clusterNames().size()));
    QSignalSpy shown(window_.get(), &app::MainWindow::geneShown);
    window_->colorByGene(data->genes[0]);
    QVERIFY(shown.wait(30000));
    const auto& values = *window_->geneValues();
    const auto& labels = window_->clusterLabels();
    int strongest = 0;
    for (int g = 0; g < data->groups.size(); ++g) {
      double sum = 0;
      std::int64_t n = 0, expressing = 0;
      for (std::size_t i = 0; i < labels.size(); ++i)
        if (labels[i] == g) sum += values[i], ++n, expressing += values[i] > 0;
      QVERIFY(std::fabs(data->at_mean(g, 0) - sum / n) <= 1e-5 * std::max(1.0, sum / n));
      QCOMPARE(data->at_fraction(g, 0), static_cast<double>(expressing) / n);
      if (data->at_mean(g, 0) > data->at_mean(strongest, 0)) strongest = g;
    }
    const QSize size(800, 600);
    const QImage image = window_->dotPlot()->renderImage(size);
    const QColor centre =
        image.pixelColor(window_->dotPlot()->dotCentre(strongest, 0, size).toPoint());
    qInfo("dot plot: %lld genes; strongest group for %s is %d, drawn %s",
          static_cast<long long>(data->genes.size()), qPrintable(data->genes[0]), strongest,
          qPrintable(centre.name()));
    QVERIFY(window_->dotPlot()->dotRadius(strongest, 0, size) > 3);
    QVERIFY(centre.red() > centre.green() + 60 && centre.red() > centre.blue() + 60);
    // Violins of the same gene: one per cluster, densities summing to 1, medians equal to the
    // clusters' medians, the strongest cluster's median highest.
    const auto* violin = window_->violinPlot();
    QCOMPARE(violin->densities().size(), window_->clusterNames().size());
    for (std::size_t g = 0; g < violin->densities().size(); ++g) {
      const auto& d = violin->densities()[g];
      QVERIFY(std::fabs(std::accumulate(d.begin(), d.end(), 0.0) - 1.0) < 1e-9);
      std::vector<float> members;
      for (std::size_t i = 0; i < labels.size(); ++i)
        if (labels[i] == static_cast<int>(g)) members.push_back(values[i]);
      std::nth_element(members.begin(), members.begin() + members.size() / 2, members.end());
      QCOMPARE(violin->medians()[g], static_cast<double>(members[members.size() / 2]));
    }
    QCOMPARE(std::max_element(violin->medians().begin(), violin->medians().end()) -
                 violin->medians().begin(),
             static_cast<std::ptrdiff_t>(strongest));
    QVERIFY(!violin->renderImage(QSize(600, 300)).isNull());
    // Both plots export as figures: PNG at the asked resolution with the strongest dot red,
    // SVG with every gene name as text (vectors, not a bitmap), PDF.
    const QString png = tmp_.filePath("dotplot.png"), svg = tmp_.filePath("dotplot.svg");
    QVERIFY(window_->dotPlot()->exportTo(png, 144));
    const QImage exported(png);
    const QSize on_screen =
        window_->dotPlot()->width() >= 100 && window_->dotPlot()->height() >= 100
            ? window_->dotPlot()->size()
            : QSize(480, 360);
    QCOMPARE(exported.size(), on_screen * 2);  // 144 dpi = 2 pixels per point
    const QColor exported_centre =
        exported.pixelColor((window_->dotPlot()->dotCentre(strongest, 0, on_screen) * 2).toPoint());
    QVERIFY(exported_centre.red() > exported_centre.green() + 60);
    QVERIFY(window_->dotPlot()->exportTo(svg));
    QFile svg_file(svg);
    QVERIFY(svg_file.open(QIODevice::ReadOnly));
    QSet<QString> texts;
    for (QXmlStreamReader xml(&svg_file); !xml.atEnd();)
      if (xml.readNext() == QXmlStreamReader::StartElement && xml.name() == QLatin1String("text"))
        texts.insert(xml.readElementText(QXmlStreamReader::IncludeChildElements).trimmed());
    for (const auto& gene : data->genes) QVERIFY2(texts.contains(gene), qPrintable(gene));
    for (const QString& pdf : {tmp_.filePath("dotplot.pdf"), tmp_.filePath("violins.pdf")}) {
      QVERIFY(pdf.contains("dot") ? window_->dotPlot()->exportTo(pdf)
                                  : window_->violinPlot()->exportTo(pdf));
      QFile f(pdf);
      QVERIFY(f.open(QIODevice::ReadOnly) && f.read(5) == "%PDF-" && f.size() > 1000);
    }
    QString error;
    QVERIFY(!window_->violinPlot()->exportTo(tmp_.filePath("violins.tiff"), 300, &error));
    QVERIFY(error.contains("tiff"));
    window_->colorByGene("");
    QVERIFY(violin->densities().empty());
  }

  void annotateExportAndSave() {
    auto snap = window_->snapshot();
    const auto lassoed = window_->selection();
    window_->setSelection(nullptr);  // undimmed colours for the pixel checks
    const QString old2 = QString::fromStdString(window_->clusterColors()[2]);
    QVERIFY(colours_present(grabView(), {old2.toStdString()}, 20) == 1);
    // Recolor: the new colour appears, the old one is gone.
    window_->recolorCluster(2, QColor("#ff00ff"));
    QImage frame = grabView();
    QCOMPARE(colours_present(frame, {"#ff00ff"}, 20), 1);
    QCOMPARE(colours_present(frame, {old2.toStdString()}, 20), 0);
    // Rename through the list, as a double-click edit does: the viewport's legend (overlay)
    // shows the new name, so its pixels change, and undo restores them exactly.
    // The top half only: the frame time printed at the bottom changes from frame to frame; the
    // legend resizes to its text over a frame or two, so grab until two frames agree.
    auto top_half = [&] {
      QImage last;
      for (int i = 0; i < 6; ++i) {
        const QImage frame = grabView(true);
        const QImage top = frame.copy(0, 0, frame.width(), frame.height() / 2);
        if (top == last) break;
        last = top;
      }
      return last;
    };
    const bool overlay = render::Overlay::available();
    const QImage legend_before = overlay ? top_half() : QImage();
    window_->clusterList()->item(0)->setText("T cells");
    QCOMPARE(QString::fromStdString(window_->clusterNames()[0]), QString("T cells"));
    if (overlay) {
      const QImage legend_renamed = top_half();
      QCOMPARE(legend_renamed.size(), legend_before.size());
      int changed = 0;
      for (int y = 0; y < legend_before.height(); ++y)
        for (int x = 0; x < legend_before.width(); ++x)
          changed += legend_before.pixel(x, y) != legend_renamed.pixel(x, y);
      qInfo("legend pixels changed by the rename: %d", changed);
      QVERIFY2(changed > 20, qPrintable(QString::number(changed)));
      window_->undoStack()->undo();
      QVERIFY(top_half() == legend_before);
      window_->undoStack()->redo();
    }
    // Undo the rename, then the recolor (the old colour is drawn again); redo both.
    QCOMPARE(window_->undoStack()->undoText(), QString("Rename T cells"));
    window_->undoStack()->undo();
    QCOMPARE(window_->clusterNames()[0], std::string("0"));
    QCOMPARE(window_->clusterList()->item(0)->text(), QString("0"));
    window_->undoStack()->undo();
    QCOMPARE(colours_present(grabView(), {old2.toStdString()}, 20), 1);
    window_->undoStack()->redo();
    window_->undoStack()->redo();
    QCOMPARE(colours_present(grabView(), {"#ff00ff"}, 20), 1);
    QCOMPARE(window_->clusterNames()[0], std::string("T cells"));
    // Hide: cluster 3's colour leaves the frame; show it again.
    const std::string c3 = window_->clusterColors()[3];
    window_->clusterList()->item(3)->setCheckState(Qt::Unchecked);
    QCOMPARE(colours_present(grabView(), {c3}, 20), 0);
    window_->undoStack()->undo();  // hiding is an edit like the others
    QCOMPARE(colours_present(grabView(), {c3}, 20), 1);
    QCOMPARE(window_->clusterList()->item(3)->checkState(), Qt::Checked);
    window_->undoStack()->redo();
    QCOMPARE(colours_present(grabView(), {c3}, 20), 0);
    window_->setClusterHidden(3, false);
    QCOMPARE(colours_present(grabView(), {c3}, 20), 1);

    // CSV tables.
    window_->setSelection(lassoed);
    QVERIFY(window_->exportClustersCsv(tmp_.filePath("clusters.csv")));
    const QStringList clusters = readLines(tmp_.filePath("clusters.csv"));
    QCOMPARE(clusters.size(), static_cast<int>(snap->n_cells) + 1);
    QCOMPARE(clusters[0], QString("cell,cluster"));
    std::int64_t t_cells = 0;
    for (const auto& l : clusters) t_cells += l.endsWith(",T cells");
    QCOMPARE(t_cells, snap->cluster_sizes[0]);
    QVERIFY(window_->exportSelectionCsv(tmp_.filePath("selection.csv")));
    const auto sel = window_->selection();
    QCOMPARE(readLines(tmp_.filePath("selection.csv")).size(),
             static_cast<int>(std::count(sel->begin(), sel->end(), true)) + 1);
    QVERIFY(window_->exportMarkersCsv(tmp_.filePath("markers.csv")));
    const QStringList markers = readLines(tmp_.filePath("markers.csv"));
    QCOMPARE(markers.size(), window_->markerTable()->rowCount() + 1);
    QVERIFY(markers[1].startsWith(window_->markerTable()->item(0, 0)->text() + ","));

    // Merge clusters 4 and 5: one category fewer, former 5 cells now in 4.
    const auto before = window_->clusterLabels();
    window_->mergeClusters({4, 5});
    QCOMPARE(window_->clusterNames().size(), snap->cluster_sizes.size() - 1);
    for (std::size_t i = 0; i < before.size(); ++i)
      if (before[i] == 5) QCOMPARE(window_->clusterLabels()[i], 4);
    // Undo brings back every cell's category and the category list; redo merges again.
    const auto merged = window_->clusterLabels();
    window_->undoStack()->undo();
    QCOMPARE(window_->clusterLabels(), before);
    QCOMPARE(window_->clusterNames().size(), snap->cluster_sizes.size());
    QCOMPARE(window_->clusterList()->count(), static_cast<int>(snap->cluster_sizes.size()));
    window_->undoStack()->redo();
    QCOMPARE(window_->clusterLabels(), merged);

    // New label from the lasso selection: a category with exactly the selected cells.
    const auto n_selected = std::count(sel->begin(), sel->end(), true);
    const int label = window_->labelSelection("lassoed");
    QCOMPARE(label, static_cast<int>(window_->clusterNames().size()) - 1);
    QCOMPARE(std::count(window_->clusterLabels().begin(), window_->clusterLabels().end(), label),
             n_selected);
    QCOMPARE(window_->clusterList()->count(), static_cast<int>(window_->clusterNames().size()));
    const std::string fresh = window_->clusterColors().back();
    QCOMPARE(std::count(window_->clusterColors().begin(), window_->clusterColors().end(), fresh),
             1);
    QCOMPARE(colours_present(grabView(), {fresh}, 20), 1);

    // Save: anndata sees the edited categories and colours.
    const QString h5ad = tmp_.filePath("annotated.h5ad");
    QSignalSpy saved(window_->computeThread()->worker(), &app::ComputeWorker::saved);
    window_->saveStore(h5ad);
    QVERIFY(saved.wait(60000));
    // Results only: the same obs without X (anndata's X None); Orrery opens it without X.
    const QString results_only = tmp_.filePath("results-only.h5ad");
    window_->saveStore(results_only, 2, false);
    QVERIFY(saved.wait(60000));
    {
      io::Store only = io::open_store(results_only.toStdString());
      QVERIFY(!only.X);
      QCOMPARE(only.n_obs(), snap->n_cells);
      QCOMPARE(only.n_vars(), snap->n_genes);
      QVERIFY(only.obs.find("leiden"));
      QCOMPARE(std::get<Categorical>(only.obs.find("leiden")->values).codes,
               window_->clusterLabels());
    }
    // The same annotation saved as a zarr v3 store reads back with the edited categories.
    const QString v3 = tmp_.filePath("annotated-v3.zarr");
    window_->saveStore(v3, 3);
    QVERIFY(saved.wait(60000));
    QVERIFY(QFileInfo::exists(v3 + "/zarr.json"));
    QVERIFY(!QFileInfo::exists(v3 + "/.zgroup"));
    io::Store written = io::open_store(v3.toStdString());
    const auto& leiden = std::get<Categorical>(written.obs.find("leiden")->values);
    QCOMPARE(leiden.categories, window_->clusterNames());
    QCOMPARE(leiden.colors, window_->clusterColors());
    QCOMPARE(std::count(leiden.codes.begin(), leiden.codes.end(), label), n_selected);

    QProcess py;
    py.start("/usr/bin/python3", {QString(ORRERY_SOURCE_DIR) + "/tests/app/check_annotated.py",
                                  h5ad, QString::number(window_->clusterNames().size()),
                                  QString::number(snap->cluster_sizes[0])});
    QVERIFY(py.waitForFinished(60000));
    if (py.exitCode() == 77) QSKIP("python3-anndata is not installed");
    QVERIFY2(py.exitCode() == 0, py.readAllStandardError().constData());
  }

  void qcThresholdChangesKeptCountAndRerun() {
    app::QcPanel* qc = window_->qcPanel();
    const std::int64_t before = qc->keptCells();
    QCOMPARE(before, window_->snapshot()->n_cells);  // panel and pipeline agree
    // Drag the genes-per-cell minimum to the middle of the histogram.
    app::HistogramView* genes = qc->genesView();
    const int x_low = genes->pixelOf(genes->low());
    const int x_mid = genes->width() / 2;
    QTest::mousePress(genes, Qt::LeftButton, Qt::NoModifier, QPoint(x_low, genes->height() / 2));
    QTest::mouseMove(genes, QPoint(x_mid, genes->height() / 2));
    QTest::mouseRelease(genes, Qt::LeftButton, Qt::NoModifier, QPoint(x_mid, genes->height() / 2));
    QVERIFY2(genes->low() > 200, qPrintable(QString::number(genes->low())));
    const std::int64_t after = qc->keptCells();
    qInfo("min genes %.0f: %lld -> %lld cells kept", genes->low(), static_cast<long long>(before),
          static_cast<long long>(after));
    QVERIFY(after < before);
    QVERIFY(after > 0);
    // Apply re-runs with the new threshold: the result has exactly the cells the panel counted.
    QSignalSpy done(window_.get(), &app::MainWindow::runFinished);
    QTest::mouseClick(qc->applyButton(), Qt::LeftButton);
    QVERIFY(done.wait(300000));
    QCOMPARE(window_->snapshot()->n_cells, after);
    QVERIFY(window_->snapshot()->qc_reused);                // Apply ran the later stages only
    QVERIFY(window_->snapshot()->reused_stages.isEmpty());  // a filter changed: all else again
    QCOMPARE(window_->params().min_genes, static_cast<int>(std::ceil(genes->low())));

    // The QC table: every cell of the store, its metrics, and whether it passes the thresholds.
    const QString qc_csv = tmp_.filePath("qc.csv");
    QSignalSpy saved(window_->computeThread()->worker(), &app::ComputeWorker::saved);
    window_->exportQcCsv(qc_csv);
    QVERIFY(saved.wait(60000));
    QFile file(qc_csv);
    QVERIFY(file.open(QIODevice::ReadOnly | QIODevice::Text));
    const QStringList lines = QString::fromUtf8(file.readAll()).split('\n', Qt::SkipEmptyParts);
    QCOMPARE(static_cast<std::int64_t>(lines.size()), window_->snapshot()->n_cells_total + 1);
    QVERIFY2(lines[0].startsWith("cell,n_genes_by_counts,total_counts,total_counts_mt,"
                                 "pct_counts_mt,pct_counts_in_top_50_genes,"),
             qPrintable(lines[0]));
    QVERIFY(lines[0].endsWith(",passes_qc"));
    const auto passing = std::count_if(lines.begin() + 1, lines.end(),
                                       [](const QString& l) { return l.endsWith(",true"); });
    QCOMPARE(static_cast<std::int64_t>(passing), after);
    io::Store store = io::open_store(demo_.toStdString());
    const CsrMatrix first = store.X->read_rows(0, 1);
    const QStringList fields = lines[1].split(',');
    QCOMPARE(fields[0], QString::fromStdString(store.obs.index[0]));
    QCOMPARE(fields[1].toLongLong(),
             static_cast<long long>(std::count_if(first.data.begin(), first.data.end(),
                                                  [](float v) { return v > 0; })));
    QCOMPARE(fields[2].toDouble(), std::accumulate(first.data.begin(), first.data.end(), 0.0));

    // The counts histogram's axis: log by default, linear on request; a value's pixel moves
    // as the axis says and the thresholds stay.
    app::HistogramView* counts = qc->countsView();
    QVERIFY(counts->logScale());
    const double lo = counts->valueAt(counts->pixelOf(0)), hi = counts->valueAt(counts->width());
    const double mid = (lo + hi) / 2, geometric = std::sqrt((1 + lo) * (1 + hi)) - 1;
    const int log_mid = counts->pixelOf(mid), log_geo = counts->pixelOf(geometric);
    const double low = counts->low(), high = counts->high();
    counts->setLogScale(false);
    QVERIFY(!counts->logScale());
    const int centre = (counts->pixelOf(lo) + counts->pixelOf(hi)) / 2;
    QVERIFY2(std::abs(counts->pixelOf(mid) - centre) <= 1, qPrintable(QString::number(mid)));
    QVERIFY(std::abs(log_geo - centre) <= 1);  // on the log axis the geometric mean is central
    QVERIFY(log_mid > centre + 5);             // and the arithmetic mean right of centre
    QVERIFY(counts->pixelOf(geometric) < centre - 5);
    QCOMPARE(counts->low(), low);
    QVERIFY(counts->high() == high || (std::isnan(high) && std::isnan(counts->high())));
    counts->setLogScale(true);
    QCOMPARE(counts->pixelOf(mid), log_mid);
    // Right-click offers the axis and the figure export; the histogram exports as vectors
    // (its title as text) and as a PNG at the chosen resolution.
    QStringList menu;
    for (QAction* a : counts->actions()) menu << a->text();
    QVERIFY2(menu.size() == 2 && menu[0] == "Log scale" && menu[1].startsWith("Export figure"),
             qPrintable(menu.join(" | ")));
    QVERIFY(counts->actions()[0]->isChecked());
    counts->actions()[0]->trigger();  // the menu's toggle reaches the axis
    QVERIFY(!counts->logScale());
    counts->setLogScale(true);
    QVERIFY(counts->actions()[0]->isChecked());
    QString error;
    const QString svg = tmp_.filePath("counts-histogram.svg");
    QVERIFY2(counts->exportTo(svg, 150, &error), qPrintable(error));
    QFile svg_file(svg);
    QVERIFY(svg_file.open(QIODevice::ReadOnly));
    QVERIFY(svg_file.readAll().contains("counts per cell (total_counts)"));
    const QString png = tmp_.filePath("counts-histogram.png");
    QVERIFY2(counts->exportTo(png, 144, &error), qPrintable(error));
    QVERIFY(!QImage(png).isNull());
  }

  // The parameters panel: a higher Leiden resolution re-runs into more clusters, keeping the QC
  // thresholds; invalid combinations are refused with the field named; Reset restores defaults.
  void parametersPanelReruns() {
    app::ParamsPanel* panel = window_->paramsPanel();
    const auto clusters_before = window_->snapshot()->cluster_sizes.size();
    const auto cells_before = window_->snapshot()->n_cells;
    const std::vector<float> umap_before = window_->snapshot()->umap_xy;
    QCOMPARE(panel->resolution()->value(), 0.6);
    panel->resolution()->setValue(3.0);
    QSignalSpy done(window_.get(), &app::MainWindow::runFinished);
    QTest::mouseClick(panel->applyButton(), Qt::LeftButton);
    QVERIFY(done.wait(300000));
    QCOMPARE(window_->params().leiden.resolution, 3.0);
    QCOMPARE(window_->snapshot()->n_cells, cells_before);  // QC thresholds kept
    // Only Leiden and the markers ran again: the graph and the layout were kept, and the
    // status says so.
    QCOMPARE(window_->snapshot()->reused_stages,
             QStringList({"qc", "filter", "hvg", "pca", "neighbors", "umap"}));
    QVERIFY(window_->snapshot()->umap_xy == umap_before);
    QVERIFY2(window_->findChild<QLabel*>("stageLabel")->text().contains("kept: qc"),
             qPrintable(window_->findChild<QLabel*>("stageLabel")->text()));
    qInfo("Leiden resolution 3.0: %zu clusters (0.6: %zu)",
          window_->snapshot()->cluster_sizes.size(), clusters_before);
    QVERIFY(window_->snapshot()->cluster_sizes.size() > clusters_before);
    // A layout-only change keeps Leiden's labels, and with them the cluster edits.
    window_->renameCluster(0, "renamed before a layout change");
    compute::PipelineParams layout_only = panel->applyTo(window_->params());
    layout_only.umap.min_dist = 0.3;
    panel->setParams(layout_only);
    QTest::mouseClick(panel->applyButton(), Qt::LeftButton);
    QVERIFY(done.wait(300000));
    QCOMPARE(window_->params().umap.min_dist, 0.3);
    const QStringList kept = window_->snapshot()->reused_stages;
    QVERIFY2(kept.contains("leiden") && kept.contains("markers") && !kept.contains("umap"),
             qPrintable(kept.join(",")));
    QVERIFY(window_->snapshot()->umap_xy != umap_before);
    QCOMPARE(window_->clusterNames()[0], std::string("renamed before a layout change"));
    // The parallel Leiden flavour from the panel: about the same clustering at this resolution.
    const auto auto_sizes = window_->snapshot()->cluster_sizes;  // igraph without CUDA
    QCOMPARE(panel->leidenFlavor()->currentText(), QString("auto"));
    panel->leidenFlavor()->setCurrentText("parallel");
    QTest::mouseClick(panel->applyButton(), Qt::LeftButton);
    QVERIFY(done.wait(300000));
    QCOMPARE(QString::fromStdString(window_->params().leiden.flavor), QString("parallel"));
    qInfo("Leiden resolution 3.0, parallel flavour: %zu clusters (auto: %zu)",
          window_->snapshot()->cluster_sizes.size(), auto_sizes.size());
    QVERIFY(window_->snapshot()->cluster_sizes.size() * 2 > auto_sizes.size());
    QVERIFY(window_->snapshot()->cluster_sizes.size() < auto_sizes.size() * 2);
    // Scale without centering and without clipping (0 in the panel: scanpy's max_value=None)
    // goes through the panel as valid parameters.
    compute::PipelineParams uncentred = panel->applyTo(window_->params());
    uncentred.scale_zero_center = false;
    uncentred.scale_max_value = std::numeric_limits<float>::infinity();
    panel->setParams(uncentred);
    const compute::PipelineParams back = panel->applyTo(window_->params());
    QVERIFY(!back.scale_zero_center);
    QVERIFY(std::isinf(back.scale_max_value));
    back.validate();  // throws on invalid parameters (0 was refused as "must be positive")
    // UMAP min_dist above its spread is refused before any run starts.
    compute::PipelineParams bad = panel->applyTo(window_->params());
    bad.umap.min_dist = 2.0;
    panel->setParams(bad);
    QTest::mouseClick(panel->applyButton(), Qt::LeftButton);
    QVERIFY(!window_->isRunning());
    QCOMPARE(window_->params().umap.min_dist, 0.3);  // the last one applied
    // Reset, apply: back to the defaults' clustering.
    QTest::mouseClick(panel->resetButton(), Qt::LeftButton);
    QCOMPARE(panel->resolution()->value(), 0.6);
    QCOMPARE(panel->leidenFlavor()->currentText(), QString("auto"));
    QTest::mouseClick(panel->applyButton(), Qt::LeftButton);
    QVERIFY(done.wait(300000));
    QCOMPARE(window_->snapshot()->cluster_sizes.size(), clusters_before);
  }

  // HVG batch_key from the panel: offered from the store's categorical obs columns, applied to
  // the next run (cell_ranger/seurat and seurat_v3); Reset clears it.
  void hvgBatchKeyFromThePanel() {
    app::ParamsPanel* panel = window_->paramsPanel();
    QComboBox* batch = panel->batchKey();
    QVERIFY(batch->count() >= 2);
    QCOMPARE(batch->currentText(), QString("(none)"));
    const QString column = batch->itemText(1);
    batch->setCurrentText(column);
    QSignalSpy done(window_.get(), &app::MainWindow::runFinished);
    QTest::mouseClick(panel->applyButton(), Qt::LeftButton);
    QVERIFY(done.wait(300000));
    QCOMPARE(QString::fromStdString(window_->params().hvg.batch_key), column);
    QVERIFY(window_->snapshot()->cluster_sizes.size() >= 2);
    panel->flavor()->setCurrentText("seurat_v3");  // on the counts, per batch too
    QTest::mouseClick(panel->applyButton(), Qt::LeftButton);
    QVERIFY(done.wait(300000));
    QCOMPARE(QString::fromStdString(window_->params().hvg.flavor), QString("seurat_v3"));
    QCOMPARE(QString::fromStdString(window_->params().hvg.batch_key), column);
    QTest::mouseClick(panel->resetButton(), Qt::LeftButton);
    QCOMPARE(batch->currentText(), QString("(none)"));
    QTest::mouseClick(panel->applyButton(), Qt::LeftButton);
    QVERIFY(done.wait(300000));
    QVERIFY(window_->params().hvg.batch_key.empty());
  }

  void panAndZoomMoveTheView() {
    app::UmapView* view = window_->umapView();
    view->fitToData();
    const auto before = view->camera().to_pixels({0, 0});
    QWheelEvent wheel(QPointF(100, 100), view->mapToGlobal(QPointF(100, 100)), QPoint(),
                      QPoint(0, 120), Qt::NoButton, Qt::NoModifier, Qt::NoScrollPhase, false);
    QCoreApplication::sendEvent(view, &wheel);
    const auto after = view->camera().to_pixels({0, 0});
    QVERIFY(std::hypot(after.x - before.x, after.y - before.y) > 1.0f);
    view->fitToData();
    const auto fitted = view->camera().to_pixels({0, 0});
    QVERIFY(std::fabs(fitted.x - before.x) < 1.0f && std::fabs(fitted.y - before.y) < 1.0f);
  }

  // Picking: resting the pointer on a cell finds a cell at that spot and describes it.
  void hoverPicksTheCellUnderThePointer() {
    auto snap = window_->snapshot();
    app::UmapView* view = window_->umapView();
    view->fitToData();
    const std::int64_t target = snap->n_cells / 3;
    const glm::vec2 world{snap->umap_xy[2 * target], snap->umap_xy[2 * target + 1]};
    const glm::vec2 px =
        view->camera().to_pixels(world) / static_cast<float>(view->devicePixelRatio());
    QMouseEvent move(QEvent::MouseMove, QPointF(px.x, px.y), view->mapToGlobal(QPointF(px.x, px.y)),
                     Qt::NoButton, Qt::NoButton, Qt::NoModifier);
    QCoreApplication::sendEvent(view, &move);
    const std::int64_t hit = window_->hoveredCell();
    QVERIFY(hit >= 0);
    const glm::vec2 found{snap->umap_xy[2 * hit], snap->umap_xy[2 * hit + 1]};
    const glm::vec2 off =
        view->camera().to_world(view->camera().to_pixels(world) + glm::vec2(8, 0));
    QVERIFY(std::hypot(found.x - world.x, found.y - world.y) <=
            std::hypot(off.x - world.x, off.y - world.y) + 1e-4f);
    const QString text = window_->describeCell(hit);
    QVERIFY2(text.contains(QString::fromStdString(snap->cell_names[hit])), qPrintable(text));
    QVERIFY2(
        text.contains("cluster " + QString::fromStdString(
                                       window_->clusterNames()[window_->clusterLabels()[hit]])),
        qPrintable(text));
    // Far outside the embedding: nothing under the pointer.
    QMouseEvent away(QEvent::MouseMove, QPointF(1, 1), view->mapToGlobal(QPointF(1, 1)),
                     Qt::NoButton, Qt::NoButton, Qt::NoModifier);
    QCoreApplication::sendEvent(view, &away);
    QCOMPARE(window_->hoveredCell(), std::int64_t{-1});
  }

  // Figures: SVG keeps title, axis labels and every visible category as text and embeds the
  // points at 300 dpi; PDF has the requested page size; PNG has 300 dpi pixels with the legend.
  void exportFigures() {
    const QString svg = tmp_.filePath("figure.svg");
    QVERIFY(window_->exportFigure(svg, 300));
    QFile f(svg);
    QVERIFY(f.open(QIODevice::ReadOnly));
    QXmlStreamReader xml(&f);
    QStringList texts;
    QList<QImage> images;
    while (!xml.atEnd()) {
      if (xml.readNext() != QXmlStreamReader::StartElement) continue;
      if (xml.name() == QLatin1String("text")) {
        texts << xml.readElementText(QXmlStreamReader::IncludeChildElements).trimmed();
      } else if (xml.name() == QLatin1String("image")) {
        const QString href = xml.attributes().value("xlink:href").toString();
        const auto comma = href.indexOf(',');
        images << QImage::fromData(QByteArray::fromBase64(href.mid(comma + 1).toLatin1()));
      }
    }
    QVERIFY2(!xml.hasError(), qPrintable(xml.errorString()));
    QVERIFY(texts.contains("leiden"));
    QVERIFY(texts.contains("UMAP1") && texts.contains("UMAP2"));
    for (std::size_t c = 0; c < window_->clusterNames().size(); ++c)
      QVERIFY2(texts.contains(QString::fromStdString(window_->clusterNames()[c])),
               window_->clusterNames()[c].c_str());
    QCOMPARE(images.size(), 1);
    QCOMPARE(images[0].size(), render::point_layer_pixels(render::FigureOptions{}));
    QVERIFY(colours_present(images[0], {window_->clusterColors()[0]}, 20) == 1);

    const QString pdf = tmp_.filePath("figure.pdf");
    QVERIFY(window_->exportFigure(pdf, 300));
    QFile pf(pdf);
    QVERIFY(pf.open(QIODevice::ReadOnly));
    const QByteArray bytes = pf.readAll();
    QVERIFY(bytes.startsWith("%PDF-"));
    const auto box = bytes.indexOf("/MediaBox [");
    QVERIFY(box >= 0);
    const QList<QByteArray> corners =
        bytes.mid(box + 11, bytes.indexOf(']', box) - box - 11).simplified().split(' ');
    QCOMPARE(corners.size(), 4);
    qInfo("PDF MediaBox: %s", bytes.mid(box, bytes.indexOf(']', box) - box + 1).constData());
    QVERIFY2(
        std::fabs(corners[2].toDouble() - 432) < 1 && std::fabs(corners[3].toDouble() - 324) < 1,
        "page is not 6 x 4.5 in");
    QVERIFY(bytes.size() > 20000);  // the embedded point layer

    const QString png = tmp_.filePath("figure.png");
    QVERIFY(window_->exportFigure(png, 300));
    QImage image(png);
    QCOMPARE(image.size(), QSize(1800, 1350));
    QCOMPARE(std::lround(image.dotsPerMeterX() * 0.0254), 300L);
    QCOMPARE(colours_present(image, {window_->clusterColors().back()}, 10), 1);
    // At another resolution: the same 6 x 4.5 in page in more pixels.
    QVERIFY(window_->exportFigure(png, 600));
    QImage fine(png);
    QCOMPARE(fine.size(), QSize(3600, 2700));
    QCOMPARE(std::lround(fine.dotsPerMeterX() * 0.0254), 600L);
    QCOMPARE(colours_present(fine, {window_->clusterColors().back()}, 10), 1);
    QVERIFY(!window_->exportFigure(tmp_.filePath("figure.bmp"), 300));
  }

  void exportPngAndH5ad() {
    auto snap = window_->snapshot();
    QVERIFY(snap);
    const QString png = tmp_.filePath("view.png");
    QVERIFY(window_->exportPng(png, 2));
    QImage img(png);
    QCOMPARE(img.size(), window_->umapView()->size() * 2);
    QVERIFY(colours_present(img, snap->palette, 20) >= 4);

    const QString h5ad = tmp_.filePath("saved.h5ad");
    QSignalSpy saved(window_->computeThread()->worker(), &app::ComputeWorker::saved);
    QSignalSpy failed(window_.get(), &app::MainWindow::runFailed);
    window_->saveStore(h5ad);
    QVERIFY2(saved.wait(60000),
             failed.isEmpty() ? "no signal" : qPrintable(failed.first().first().toString()));
    io::Store store = io::open_store(h5ad.toStdString());
    QCOMPARE(store.n_obs(), snap->n_cells);
    QCOMPARE(store.n_vars(), snap->n_genes);
    QCOMPARE(QString::fromStdString(store.obs.index.front()),
             QString::fromStdString(snap->cell_names.front()));
  }

  // A store that already holds an embedding (the one just saved: X_umap, X_pca, leiden with
  // colours) is drawn as soon as it opens, coloured by its leiden, while its pipeline runs;
  // after the run the kept cells can be drawn on the stored X_umap or X_pca (figure axes
  // named after it) and back on this run's UMAP.
  void storedEmbeddingDrawnWhileRunning() {
    // The saved store with its first two colours as matplotlib may leave them: a name and
    // "#rrggbbaa" (the renderer takes "#rrggbb"; either used to throw inside a UI slot).
    const QString h5ad = tmp_.filePath("saved-named-colours.h5ad");
    QFile::remove(h5ad);
    QVERIFY(QFile::copy(tmp_.filePath("saved.h5ad"), h5ad));
    RUN_PYTHON_OR_SKIP("python3-h5py", "-c", R"(
import sys
try:
    import h5py
except ImportError:
    sys.exit(77)
with h5py.File(sys.argv[1], "r+") as f:
    colours = [c.decode() for c in f["uns/leiden_colors"][:]]
    colours[0], colours[1] = "red", "#00ff00ff"
    del f["uns/leiden_colors"]
    f["uns"].create_dataset("leiden_colors", data=colours, dtype=h5py.string_dtype("utf-8"))
)",
                       h5ad);
    io::Store store = io::open_store(h5ad.toStdString());
    const auto stored_umap =
        io::read_dense_columns(*store.root->require("obsm/X_umap"), store.n_obs(), 2);
    const auto stored_pca =
        io::read_dense_columns(*store.root->require("obsm/X_pca"), store.n_obs(), 2);
    const auto& leiden = std::get<Categorical>(store.obs.find("leiden")->values);
    QVERIFY(leiden.colors.size() == leiden.categories.size());

    struct Seen {
      QString embedding, column;
      bool running = false;
      render::PointSet points;
    };
    std::vector<Seen> seen;
    auto connection = connect(
        window_.get(), &app::MainWindow::previewShown,
        [&](const QString& embedding, const QString& column) {
          seen.push_back({embedding, column, window_->isRunning(), window_->umapView()->points()});
        });
    const auto disconnect_preview = qScopeGuard([&] { disconnect(connection); });
    QSignalSpy done(window_.get(), &app::MainWindow::runFinished);
    window_->openStore(h5ad);
    QVERIFY(done.wait(300000));
    QCOMPARE(seen.size(), std::size_t{1});
    QCOMPARE(seen[0].embedding, QString("X_umap"));
    QCOMPARE(seen[0].column, QString("leiden"));
    QVERIFY(seen[0].running);
    const auto& drawn = seen[0].points;
    QCOMPARE(static_cast<std::int64_t>(drawn.size()), store.n_obs());
    for (std::int64_t i = 0; i < store.n_obs(); i += 97) {
      QCOMPARE(drawn.positions[i].x, stored_umap.at(i, 0));
      QCOMPARE(drawn.positions[i].y, stored_umap.at(i, 1));
      const int code = leiden.codes[i];
      const QColor want(code == 0   ? QString("#ff0000")
                        : code == 1 ? QString("#00ff00")
                                    : QString::fromStdString(leiden.colors[code]));
      QCOMPARE(drawn.colors[i] & 0xFFFFFFu,
               render::pack_rgba(static_cast<std::uint8_t>(want.red()),
                                 static_cast<std::uint8_t>(want.green()),
                                 static_cast<std::uint8_t>(want.blue())) &
                   0xFFFFFFu);
    }

    // After the run: this run's UMAP, with the stored embeddings offered.
    auto snap = window_->snapshot();
    QVERIFY(window_->embeddingBox()->isEnabled());
    QVERIFY(window_->embeddingBox()->findData("X_umap") >= 0);
    QVERIFY(window_->embeddingBox()->findData("X_pca") >= 0);
    QCOMPARE(*window_->embeddingXy(), snap->umap_xy);
    std::map<std::string, std::int64_t> row_of;
    for (std::int64_t j = 0; j < store.n_obs(); ++j) row_of[store.obs.index[j]] = j;
    auto expect_drawn_on = [&](const QString& key, const DenseMatrix& stored) {
      QSignalSpy shown(window_.get(), &app::MainWindow::embeddingShown);
      window_->showEmbedding(key);
      QVERIFY(shown.count() == 1 || shown.wait(30000));
      QCOMPARE(window_->embedding(), key);
      const auto& xy = *window_->embeddingXy();
      const auto& points = window_->umapView()->points();
      QCOMPARE(xy.size(), 2 * snap->cell_names.size());
      QCOMPARE(points.size(), snap->cell_names.size());
      for (std::size_t i = 0; i < snap->cell_names.size(); ++i) {
        const auto j = row_of.at(snap->cell_names[i]);
        QCOMPARE(xy[2 * i], stored.at(j, 0));
        QCOMPARE(xy[2 * i + 1], stored.at(j, 1));
        QCOMPARE(points.positions[i].x, stored.at(j, 0));  // clusters colouring keeps cell order
      }
    };
    expect_drawn_on("X_umap", stored_umap);
    expect_drawn_on("X_pca", stored_pca);
    const QString svg = tmp_.filePath("on-pca.svg");
    QVERIFY(window_->exportFigure(svg, 150));
    QFile f(svg);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QByteArray text = f.readAll();
    QVERIFY(text.contains("PC1") && text.contains("PC2") && !text.contains("UMAP1"));
    QSignalSpy back(window_.get(), &app::MainWindow::embeddingShown);
    window_->showEmbedding("");
    QCOMPARE(back.count(), 1);
    QCOMPARE(*window_->embeddingXy(), snap->umap_xy);
    // A reply to an earlier request that arrives after a later choice is dropped.
    QSignalSpy replies(window_->computeThread()->worker(), &app::ComputeWorker::embeddingReady);
    window_->showEmbedding("X_umap");
    window_->showEmbedding("");  // the user changes their mind before X_umap is read
    // (QSignalSpy records on the worker's thread: the reply may already be in.)
    QVERIFY(replies.count() > 0 || replies.wait(30000));
    QTest::qWait(50);  // its queued delivery to the window
    QCOMPARE(window_->embedding(), QString());
    QCOMPARE(*window_->embeddingXy(), snap->umap_xy);
    QCOMPARE(window_->embeddingBox()->currentData().toString(), QString());
    // Opening the same store again previews it again (its QC is cached, its result is not kept).
    QSignalSpy again(window_.get(), &app::MainWindow::runFinished);
    window_->openStore(h5ad);
    QVERIFY(again.wait(300000));
    QCOMPARE(seen.size(), std::size_t{2});
    QVERIFY(seen[1].running && seen[1].points.size() == seen[0].points.size());
    QVERIFY(window_->snapshot()->qc_reused);
  }

  void cancelStopsTheRun() {
    QSignalSpy cancelled(window_.get(), &app::MainWindow::runCancelled);
    QSignalSpy done(window_.get(), &app::MainWindow::runFinished);
    QSignalSpy progress(window_.get(), &app::MainWindow::runProgress);
    window_->openStore(demo_);
    QVERIFY(progress.wait(30000));
    window_->cancelRun();
    QVERIFY(cancelled.wait(30000));
    QVERIFY(!window_->isRunning());
    QCOMPARE(done.count(), 0);
  }

  void reopeningWhileRunningStaysBusyUntilTheLastRun() {
    QSignalSpy progress(window_.get(), &app::MainWindow::runProgress);
    QSignalSpy cancelled(window_.get(), &app::MainWindow::runCancelled);
    QSignalSpy done(window_.get(), &app::MainWindow::runFinished);
    window_->openStore(demo_);
    QVERIFY(progress.wait(30000));
    window_->openStore(demo_);  // cancels the first run
    QVERIFY(cancelled.wait(30000));
    QVERIFY(window_->isRunning());  // the second run is still going
    QVERIFY(done.wait(300000));
    QVERIFY(!window_->isRunning());
    QCOMPARE(done.count(), 1);
  }

  // Dropping a store's file on the window opens it (drag enter accepted, the run starts and
  // finishes, the store heads the recent files).
  void dropOpensTheStore() {
    QMimeData mime;
    mime.setUrls({QUrl::fromLocalFile(demo_)});
    QDragEnterEvent enter(QPoint(50, 50), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(window_.get(), &enter);
    QVERIFY(enter.isAccepted());
    QSignalSpy done(window_.get(), &app::MainWindow::runFinished);
    QDropEvent drop(QPointF(50, 50), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(window_.get(), &drop);
    QVERIFY(window_->isRunning());
    QVERIFY(done.wait(300000));
    QCOMPARE(window_->snapshot()->store_path, demo_);
    QCOMPARE(window_->recentFiles().value(0), QFileInfo(demo_).absoluteFilePath());
  }

  // File > Import cell annotations: a table's columns join obs, the cells are coloured by its
  // labels, cells it leaves out are missing, and a re-run of the same store keeps them.
  void importedAnnotationsColourAndSurviveReruns() {
    if (!window_->snapshot() || window_->snapshot()->store_path != demo_) {
      QSignalSpy done(window_.get(), &app::MainWindow::runFinished);
      window_->openStore(demo_);
      QVERIFY(done.wait(300000));
    }
    auto snap = window_->snapshot();
    const QString table = tmp_.filePath("labels.csv");
    {
      std::ofstream out(table.toStdString());
      out << "barcode,score,group\n";
      for (std::size_t i = 0; i + 10 < snap->cell_names.size(); ++i)
        out << snap->cell_names[i] << "," << i << "," << (i % 2 ? "odd" : "even") << "\n";
      out << "stranger,1,even\n";
    }
    QSignalSpy imported(window_.get(), &app::MainWindow::annotationsImported);
    QSignalSpy shown(window_.get(), &app::MainWindow::geneShown);
    window_->importAnnotations(table);
    QVERIFY(imported.wait(60000));
    QCOMPARE(imported.first().first().toStringList(), (QStringList{"score", "group"}));
    const QString summary = imported.first().at(1).toString();
    QVERIFY2(summary.contains(QString("2 column(s) for %1 of %2 cells")
                                  .arg(snap->cell_names.size() - 10)
                                  .arg(snap->n_cells_total)) &&
                 summary.contains("1 rows naming no cell left out"),
             qPrintable(summary));
    QVERIFY(shown.count() > 0 || shown.wait(60000));
    auto cats = window_->obsCategories();
    QVERIFY(cats);
    QCOMPARE(cats->name, QString("group"));
    QCOMPARE(cats->categories, (std::vector<std::string>{"even", "odd"}));
    QCOMPARE(cats->codes.size(), snap->cell_names.size());
    QCOMPARE(cats->codes[0], 0);
    QCOMPARE(cats->codes[1], 1);
    QCOMPARE(cats->codes.back(), -1);  // not in the table
    // The search box offers the new columns.
    QCompleter* completer = window_->geneSearch()->completer();
    QStringList offered;
    for (int r = 0; r < completer->model()->rowCount(); ++r)
      offered << completer->model()->index(r, 0).data().toString();
    QVERIFY(offered.contains("group") && offered.contains("score"));
    // Reopened, the store has them again.
    QSignalSpy done(window_.get(), &app::MainWindow::runFinished);
    window_->openStore(demo_);
    QVERIFY(done.wait(300000));
    const auto& s = *window_->snapshot();
    QVERIFY(s.qc_reused);  // the table joined the store's stamp when it was imported
    QVERIFY(std::find(s.obs_categorical.begin(), s.obs_categorical.end(), "group") !=
            s.obs_categorical.end());
    QVERIFY(std::find(s.obs_numeric.begin(), s.obs_numeric.end(), "score") != s.obs_numeric.end());
    window_->colorByGene("");
  }

  // A text table opens with its rows guessed (here: more rows than columns, so genes), and
  // File > Reopen the table transposed reads them as cells; other stores disable it.
  void textTableReopensTransposed() {
    const QString csv = tmp_.filePath("table.csv");
    {
      std::ofstream out(csv.toStdString());
      for (int c = 0; c < 300; ++c) out << (c ? "," : "") << "\"cell " << c << "\"";
      out << "\n";
      std::uint64_t state = 42;
      for (int g = 0; g < 400; ++g) {
        out << "\"G" << g << "\"";
        for (int c = 0; c < 300; ++c) {
          state = state * 6364136223846793005ULL + 1442695040888963407ULL;
          out << "," << (state >> 33) % 6;  // a sixth are zeros
        }
        out << "\n";
      }
    }
    QAction* transpose = nullptr;
    for (QAction* a : window_->findChildren<QAction*>())
      if (a->text() == "Reopen the table &transposed") transpose = a;
    QVERIFY(transpose);
    QSignalSpy done(window_.get(), &app::MainWindow::runFinished);
    window_->openStore(csv);
    QVERIFY(done.wait(300000));
    QCOMPARE(window_->snapshot()->n_cells_total, 300);
    QCOMPARE(window_->snapshot()->n_genes_total, 400);
    QVERIFY2(window_->storeSummary().contains("genes in rows (guessed: more rows than columns)"),
             qPrintable(window_->storeSummary()));
    QVERIFY2(window_->statusBar()->currentMessage().contains(
                 "genes in rows (guessed: more rows than columns)") &&
                 window_->statusBar()->currentMessage().contains("Reopen the table transposed"),
             qPrintable(window_->statusBar()->currentMessage()));
    QVERIFY(transpose->isEnabled());
    transpose->trigger();
    QVERIFY(done.wait(300000));
    QCOMPARE(window_->snapshot()->n_cells_total, 400);
    QCOMPARE(window_->snapshot()->n_genes_total, 300);
    QCOMPARE(window_->snapshot()->cell_names.front(), std::string("G0"));
    QVERIFY2(window_->storeSummary().contains("cells in rows (as asked)"),
             qPrintable(window_->storeSummary()));
    QVERIFY(transpose->isEnabled());
    window_->openStore(demo_);
    QVERIFY(!transpose->isEnabled());
    QVERIFY(done.wait(300000));
    QVERIFY(!transpose->isEnabled());
  }

  void badStoreReportsAnError() {
    const QString bad = tmp_.filePath("not-a-store.h5ad");
    QFile f(bad);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("this is not HDF5");
    f.close();
    QSignalSpy failed(window_.get(), &app::MainWindow::runFailed);
    window_->openStore(bad);
    QVERIFY(failed.wait(30000));
    QVERIFY2(failed.first().first().toString().contains("not-a-store.h5ad"),
             qPrintable(failed.first().first().toString()));
  }

  // Dark and light themes: the palette and the viewport's background switch, the choice is
  // remembered, and "system" returns to the desktop's (light under Xvfb) palette.
  void themesSwitchPaletteAndViewport() {
    auto corner = [&] { return grabView().pixelColor(3, 3).lightness(); };
    QCOMPARE(window_->theme(), QString("system"));
    const int system = corner();
    window_->setTheme("dark");
    QVERIFY(QApplication::palette().color(QPalette::Window).lightness() < 80);
    const int dark = corner();
    QCOMPARE(QSettings().value("theme").toString(), QString("dark"));
    window_->setTheme("light");
    const int light = corner();
    window_->setTheme("system");
    const int back = corner();
    qInfo("viewport corner lightness: system %d, dark %d, light %d, system again %d", system, dark,
          light, back);
    QVERIFY(dark < 60);
    QVERIFY(light > 240);
    QCOMPARE(back, system);
    QCOMPARE(QSettings().value("theme").toString(), QString("system"));
  }

  void remainingTimeText() {
    QCOMPARE(app::remaining_text(0.5, 0.5), QString());  // too early to say
    QCOMPARE(app::remaining_text(10, 0.01), QString());
    QCOMPARE(app::remaining_text(10, 0.5), QString("~10 s left"));
    QCOMPARE(app::remaining_text(30, 0.25), QString("~2 min left"));
    QCOMPARE(app::remaining_text(3600, 0.4), QString("~1 h 30 min left"));
    QCOMPARE(app::remaining_text(10, 1.0), QString());
  }

  // A layout streamed into the viewport while UMAP optimises (the CUDA path: here Vulkan plays
  // CUDA's part, lavapipe having no external memory): drawn from the stream's buffer, refitted
  // to the first layout's bounds, moved by the next one, and replaced by the final layout when
  // it comes through the host. Last: it leaves the view on that layout.
  void streamedLayoutIsDrawn() {
    app::UmapView* view = window_->umapView();
    const auto channel = view->layoutChannel();
    view->setStreamWithoutCuda(true);
    const int n = 2000;
    // Two blobs, at x = -10 and x = +10.
    const auto blobs = [&](float left, float right, float y) {
      std::vector<float> xy(2 * n);
      for (int i = 0; i < n; ++i) {
        xy[2 * i] = (i < n / 2 ? left : right) + 0.3f * std::sin(0.7f * i);
        xy[2 * i + 1] = y + 0.3f * std::cos(1.3f * i);
      }
      return xy;
    };
    const qreal dpr = view->devicePixelRatio();
    const auto lightness = [&](const QImage& img, glm::vec2 world) {
      const glm::vec2 p = view->camera().to_pixels(world);
      return img.pixelColor(int(p.x / dpr), int(p.y / dpr)).lightness();
    };
    std::string why;
    QVERIFY2(channel->open(n, &why), why.c_str());
    QVERIFY(view->layoutStreamForTests());
    auto w = channel->begin_write();
    QVERIFY(w && !*w);  // the first layout is wanted at once
    view->layoutStreamForTests()->write_source(blobs(-10, 10, 0).data(), *w);
    const auto layouts = view->streamedLayouts();
    channel->delivered(0, {-10.3f, -0.3f, 10.3f, 0.3f});  // asks the view for a frame
    QVERIFY(QTest::qWaitFor([&] { return view->streamedLayouts() > layouts; }, 10000));
    QVERIFY(view->drawingStreamedLayout());
    QCOMPARE(view->points().size(), std::size_t(n));
    // Refitted: the blobs span the view's width with its margin.
    const glm::vec2 left = view->camera().to_pixels({-10.3f, 0});
    const glm::vec2 right = view->camera().to_pixels({10.3f, 0});
    QVERIFY2(std::fabs(left.x - 0.05f * view->camera().width()) < 2,
             qPrintable(QString::number(left.x)));
    QVERIFY(std::fabs(right.x - 0.95f * view->camera().width()) < 2);
    QImage img = grabView();
    QVERIFY2(lightness(img, {-10, 0}) < 200, qPrintable(QString::number(lightness(img, {-10, 0}))));
    QVERIFY(lightness(img, {10, 0}) < 200);
    QVERIFY(lightness(img, {0, 0}) > 240);
    QVERIFY(lightness(img, {5, 0}) > 240);

    // The next layout: written once the view has copied the last one, and not refitted.
    QVERIFY(QTest::qWaitFor([&] { return (w = channel->begin_write()).has_value(); }, 10000));
    QVERIFY(*w);  // after the view's `consumed` signal
    view->layoutStreamForTests()->write_source(blobs(-5, 5, 0).data(), *w);
    channel->delivered(1, {-5.3f, -0.3f, 5.3f, 0.3f});
    QVERIFY(QTest::qWaitFor([&] { return view->streamedLayouts() > layouts + 1; }, 10000));
    QCOMPARE(view->camera().to_pixels({-10.3f, 0}).x, left.x);
    img = grabView();
    QVERIFY(lightness(img, {-5, 0}) < 200);
    QVERIFY(lightness(img, {5, 0}) < 200);
    QVERIFY(lightness(img, {-10, 0}) > 240);
    QVERIFY(lightness(img, {10, 0}) > 240);
    // The host holds zeros until it needs the positions (export, selection, fit): then it
    // reads them back; F fits the streamed layout's bounds.
    QCOMPARE(view->points().positions[0], glm::vec2(0, 0));
    view->settleStreamedLayout();
    const std::vector<float> second = blobs(-5, 5, 0);
    QCOMPARE(view->points().positions[n - 1], glm::vec2(second[2 * n - 2], second[2 * n - 1]));
    QVERIFY(view->drawingStreamedLayout());
    QTest::keyClick(view, Qt::Key_F);
    QVERIFY(std::fabs(view->camera().to_pixels({-5.3f, 0}).x - 0.05f * view->camera().width()) < 2);
    view->fitToData();

    // The final layout through the host ends the stream's drawing, without a refit.
    const glm::vec2 fitted = view->camera().to_pixels({-5.3f, 0});
    emit window_->computeThread()->worker()->layoutStep(
        std::make_shared<const std::vector<float>>(blobs(-2, 2, 0)), channel->generation());
    QVERIFY(!view->drawingStreamedLayout());
    QCOMPARE(view->camera().to_pixels({-5.3f, 0}).x, fitted.x);
    img = grabView();
    QVERIFY(lightness(img, {-2, 0}) < 200);
    QVERIFY(lightness(img, {-5, 0}) > 240);
    QVERIFY(lightness(img, {5, 0}) > 240);
    // Not allowed any more: a later layout is taken and copied but not drawn.
    QVERIFY(QTest::qWaitFor([&] { return (w = channel->begin_write()).has_value(); }, 10000));
    view->layoutStreamForTests()->write_source(blobs(-10, 10, 0).data(), *w);
    channel->delivered(2, {-10.3f, -0.3f, 10.3f, 0.3f});
    QVERIFY(QTest::qWaitFor([&] { return channel->begin_write().has_value(); }, 10000));
    QVERIFY(!view->drawingStreamedLayout());
    QCOMPARE(view->streamedLayouts(), layouts + 2);
    // The next stream is drawn again; a cancelled run keeps its last layout, from the host.
    QVERIFY2(channel->open(n, &why), why.c_str());
    w = channel->begin_write();
    QVERIFY(w && !*w);
    const std::vector<float> third = blobs(-8, 8, 0);
    view->layoutStreamForTests()->write_source(third.data(), false);
    channel->delivered(0, {-8.3f, -0.3f, 8.3f, 0.3f});
    QVERIFY(QTest::qWaitFor([&] { return view->streamedLayouts() > layouts + 2; }, 10000));
    QVERIFY(view->drawingStreamedLayout());
    // An older run's end leaves it drawn; its own run's end keeps its last layout.
    emit window_->computeThread()->worker()->streamFinished(channel->generation() - 1);
    QVERIFY(view->drawingStreamedLayout());
    emit window_->computeThread()->worker()->streamFinished(channel->generation());
    QVERIFY(!view->drawingStreamedLayout());
    QCOMPARE(view->points().positions[0], glm::vec2(third[0], third[1]));
    img = grabView();
    QVERIFY(lightness(img, {-8, 0}) < 200);
    QVERIFY(lightness(img, {8, 0}) < 200);
    QVERIFY(lightness(img, {0, 0}) > 240);
    view->setStreamWithoutCuda(false);
  }

  // A run's warnings reach the status bar: counted in the stage label, listed in its tooltip,
  // cleared when the next run starts. Here the CPU backend's note that it runs NN-descent when
  // the inverted file (a CUDA method) is asked for.
  void runWarningsInStatusBar() {
    QSignalSpy done(window_.get(), &app::MainWindow::runFinished);
    window_->openStore(demo_);  // the store before was a bad one
    QVERIFY(done.wait(300000));
    auto* label = window_->findChild<QLabel*>("stageLabel");
    QVERIFY(window_->snapshot()->warnings.isEmpty());
    QVERIFY2(!label->text().contains("warning"), qPrintable(label->text()));
    app::ParamsPanel* panel = window_->paramsPanel();
    QCOMPARE(panel->knnMethod()->currentText(), QString("auto"));
    panel->knnMethod()->setCurrentText("ivf");
    QTest::mouseClick(panel->applyButton(), Qt::LeftButton);
    QVERIFY(window_->isRunning());
    QVERIFY(label->toolTip().isEmpty());
    QVERIFY(done.wait(300000));
    QCOMPARE(window_->snapshot()->warnings,
             QStringList({"neighbors: ivf runs on the CUDA backend; NN-descent here"}));
    QVERIFY2(label->text().contains("1 warning (hover to read)"), qPrintable(label->text()));
    QCOMPARE(label->toolTip(), QString("neighbors: ivf runs on the CUDA backend; NN-descent here"));
    QCOMPARE(QString::fromStdString(window_->params().neighbors.method), QString("ivf"));
  }

  // The compute worker's gene values, dot plot and selection markers are the same numbers from
  // the counts its run kept gene by gene, from counts kept by the first query after a run
  // without markers, and from passes over the store (gene_cache_mib 0).
  void workerReadsCountsFromMemoryAsFromStore() {
    compute::PipelineParams memory;
    compute::PipelineParams lazy = memory, store = memory;
    lazy.update_from_json({{"markers", {{"enabled", false}}}});
    store.update_from_json({{"gene_cache_mib", 0}});
    WorkerOutputs a, b, c;
    QStringList genes;  // the first run's top markers of clusters 0, 1 and 2
    worker_outputs(memory, genes, a, true, true);
    worker_outputs(lazy, genes, b, false, true);
    worker_outputs(store, genes, c, false, false);
    if (QTest::currentTestFailed()) return;
    for (const WorkerOutputs* other : {&b, &c}) {
      QVERIFY(other->genes == a.genes);
      QVERIFY(other->dot_mean == a.dot_mean);
      QVERIFY(other->dot_fraction == a.dot_fraction);
      QCOMPARE(other->markers.size(), a.markers.size());
      for (std::size_t i = 0; i < a.markers.size(); ++i) {
        QCOMPARE(other->markers[i].gene, a.markers[i].gene);
        QVERIFY(other->markers[i].score == a.markers[i].score);  // to the bit, not fuzzily
        QVERIFY(other->markers[i].pval_adj == a.markers[i].pval_adj);
        QVERIFY(other->markers[i].logfoldchange == a.markers[i].logfoldchange);
      }
    }
    // The values are the marker genes': higher in their cluster.
    QVERIFY(std::count_if(a.genes[0].begin(), a.genes[0].end(), [](float v) { return v > 0; }) >
            10);
  }

  // A re-run that keeps the graph keeps the counts in memory (its markers ranked from them);
  // gene_cache_mib 0 lets them go; a re-run that changes the cells' genes keeps new ones.
  void workerKeepsCountsAcrossReruns() {
    app::ComputeWorker w;
    QSignalSpy finished(&w, &app::ComputeWorker::finished);
    QSignalSpy failed(&w, &app::ComputeWorker::failed);
    compute::PipelineParams p;
    w.run(demo_, p, false);
    const std::int64_t held = w.counts_bytes();
    QVERIFY(held > 0);
    compute::PipelineParams finer = p;
    finer.leiden.resolution = 1.2;
    w.run(demo_, finer, false);
    QCOMPARE(failed.count(), 0);
    QCOMPARE(finished.count(), 2);
    const auto snap = finished.last().first().value<std::shared_ptr<const app::RunSnapshot>>();
    QVERIFY(snap->reused_stages.contains("neighbors"));
    QVERIFY(!snap->reused_stages.contains("markers"));
    QCOMPARE(w.counts_bytes(), held);
    QCOMPARE(snap->counts_mib, static_cast<double>(held) / (1 << 20));
    compute::PipelineParams none = finer;
    none.update_from_json({{"gene_cache_mib", 0}});
    w.run(demo_, none, false);
    QCOMPARE(w.counts_bytes(), std::int64_t{0});
    // Without markers no pass keeps them; the first gene query does, and says so.
    compute::PipelineParams unmarked = p;
    unmarked.markers = false;
    w.run(demo_, unmarked, false);
    QCOMPARE(w.counts_bytes(), std::int64_t{0});
    QSignalSpy kept(&w, &app::ComputeWorker::countsKept);
    QSignalSpy gene(&w, &app::ComputeWorker::geneReady);
    w.geneValues(QString::fromStdString(
        finished.last().first().value<std::shared_ptr<const app::RunSnapshot>>()->gene_names[0]));
    QCOMPARE(gene.count(), 1);
    QCOMPARE(kept.count(), 1);
    QVERIFY(w.counts_bytes() > 0);
    QCOMPARE(kept.first().first().toDouble(), static_cast<double>(w.counts_bytes()) / (1 << 20));
    compute::PipelineParams fewer = p;
    fewer.min_cells = 20;  // other genes kept: other counts
    w.run(demo_, fewer, false);
    QCOMPARE(failed.count(), 0);
    QVERIFY(w.counts_bytes() > 0 && w.counts_bytes() < held);
  }

  void cleanupTestCase() { window_.reset(); }

 private:
  struct WorkerOutputs {
    std::vector<std::vector<float>> genes;
    std::vector<double> dot_mean, dot_fraction;
    std::vector<app::MarkerRow> markers;
  };
  // A worker's run on the demo with `params`, then the values of `genes` (when empty: the top
  // markers of clusters 0 to 2), their dot plot by cluster and cluster 0's cells against the
  // rest. `held_after_run`: the run kept the counts; `held_after_query`: the first query did
  // (else they stay in the store).
  void worker_outputs(const compute::PipelineParams& params, QStringList& genes, WorkerOutputs& out,
                      bool held_after_run, bool held_after_query) {
    app::ComputeWorker w;
    QSignalSpy finished(&w, &app::ComputeWorker::finished);
    QSignalSpy failed(&w, &app::ComputeWorker::failed);
    w.run(demo_, params, false);
    QCOMPARE(failed.count(), 0);
    QCOMPARE(finished.count(), 1);
    const auto snap = finished.first().first().value<std::shared_ptr<const app::RunSnapshot>>();
    QCOMPARE(w.counts_bytes() > 0, held_after_run);
    QCOMPARE(snap->counts_mib > 0, held_after_run);
    QSignalSpy gene(&w, &app::ComputeWorker::geneReady);
    for (int c = 0; genes.size() < 3 && c < 3; ++c)
      genes << QString::fromStdString(snap->markers.at(c).at(0).gene);
    for (const QString& g : genes) {
      w.geneValues(g);
      QCOMPARE(w.counts_bytes() > 0, held_after_query);
    }
    QCOMPARE(failed.count(), 0);
    QCOMPARE(gene.count(), 3);
    for (const auto& args : gene)
      out.genes.push_back(*args.at(1).value<std::shared_ptr<const std::vector<float>>>());
    QSignalSpy dot(&w, &app::ComputeWorker::dotPlotReady);
    QStringList groups;
    for (std::size_t g = 0; g < snap->cluster_sizes.size(); ++g) groups << QString::number(g);
    w.dotPlot(genes, std::make_shared<const std::vector<std::int32_t>>(snap->labels), groups);
    QCOMPARE(dot.count(), 1);
    const auto data = dot.first().first().value<std::shared_ptr<const app::DotPlotData>>();
    out.dot_mean = data->mean;
    out.dot_fraction = data->fraction;
    QSignalSpy markers(&w, &app::ComputeWorker::selectionMarkers);
    auto selection = std::make_shared<std::vector<bool>>(snap->labels.size());
    for (std::size_t i = 0; i < selection->size(); ++i) (*selection)[i] = snap->labels[i] == 0;
    w.compareSelection(selection);
    QCOMPARE(failed.count(), 0);
    QCOMPARE(markers.count(), 1);
    out.markers =
        *markers.first().first().value<std::shared_ptr<const std::vector<app::MarkerRow>>>();
  }
};

QTEST_MAIN(TestMainWindow)
#include "test_main_window.moc"
