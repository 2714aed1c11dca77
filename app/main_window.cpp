#include "main_window.hpp"

#include <QAction>
#include <QApplication>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QHeaderView>
#include <algorithm>
#include <QImage>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QPainter>
#include <QPixmap>
#include <QStatusBar>
#include <QVBoxLayout>

#include "render/offscreen.hpp"
#include "render/scene.hpp"

namespace orrery::app {

MainWindow::MainWindow(QVulkanInstance* vulkan, QWidget* parent)
    : QMainWindow(parent), compute_(std::make_unique<ComputeThread>()) {
  setWindowTitle("Orrery");
  setAcceptDrops(true);
  resize(1200, 800);

  view_ = new UmapView;
  view_->setVulkanInstance(vulkan);
  QWidget* container = QWidget::createWindowContainer(view_, this);
  container->setFocusPolicy(Qt::StrongFocus);
  container->setToolTip("Drag to pan, wheel to zoom at the cursor, double-click or F to fit");
  setCentralWidget(container);

  auto* dock = new QDockWidget("Clusters", this);
  dock->setObjectName("clusters");
  clusters_ = new QListWidget(dock);
  clusters_->setToolTip("Leiden clusters: colour, name and number of cells");
  dock->setWidget(clusters_);
  addDockWidget(Qt::RightDockWidgetArea, dock);

  auto* marker_dock = new QDockWidget("Markers", this);
  marker_dock->setObjectName("markers");
  markers_ = new QTableWidget(0, 6, marker_dock);
  markers_->setHorizontalHeaderLabels({"gene", "score", "log2 FC", "p adj", "% in", "% out"});
  markers_->setToolTip("Wilcoxon rank-sum markers of the selected cluster vs the rest");
  markers_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  markers_->setSelectionBehavior(QAbstractItemView::SelectRows);
  markers_->setSortingEnabled(true);
  markers_->verticalHeader()->setVisible(false);
  marker_dock->setWidget(markers_);
  markers_dock_ = marker_dock;
  addDockWidget(Qt::RightDockWidgetArea, marker_dock);
  connect(clusters_, &QListWidget::currentRowChanged, this, &MainWindow::showMarkers);

  auto* qc_dock = new QDockWidget("QC", this);
  qc_dock->setObjectName("qc");
  qc_ = new QcPanel(qc_dock);
  qc_dock->setWidget(qc_);
  addDockWidget(Qt::LeftDockWidgetArea, qc_dock);
  connect(qc_, &QcPanel::applyRequested, this, [this] {
    if (path_.isEmpty()) return;
    params_ = qc_->applyTo(params_);
    startRun();
  });

  stage_label_ = new QLabel("Ready");
  summary_label_ = new QLabel;
  progress_ = new QProgressBar;
  progress_->setRange(0, 1000);
  progress_->setMaximumWidth(240);
  cancel_ = new QPushButton("Cancel");
  cancel_->setToolTip("Stop the running analysis (Esc)");
  cancel_->setShortcut(Qt::Key_Escape);
  statusBar()->addWidget(stage_label_, 1);
  statusBar()->addPermanentWidget(summary_label_);
  statusBar()->addPermanentWidget(progress_);
  statusBar()->addPermanentWidget(cancel_);
  connect(cancel_, &QPushButton::clicked, this, &MainWindow::cancelRun);
  setRunning(false);
  buildMenus();

  ComputeWorker* w = compute_->worker();
  connect(w, &ComputeWorker::progress, this, [this](const QString& stage, double f) {
    stage_label_->setText(stage);
    progress_->setValue(static_cast<int>(f * 1000));
    emit runProgress(stage, f);
  });
  connect(w, &ComputeWorker::layoutStep, this,
          [this](std::shared_ptr<const std::vector<float>> xy) {
            // While UMAP optimises, draw the layout in one neutral colour.
            std::vector<std::int32_t> labels(xy->size() / 2, 0);
            view_->setPoints(render::categorical_points(*xy, labels, {"#808080"}),
                             view_->points().size() == 0);
          });
  connect(w, &ComputeWorker::qcReady, this, [this](std::shared_ptr<const compute::QcMetrics> m) {
    qc_->setMetrics(std::move(m), params_);
  });
  connect(w, &ComputeWorker::finished, this, [this](std::shared_ptr<const RunSnapshot> snap) {
    setRunning(false);
    showSnapshot(std::move(snap));
    emit runFinished();
  });
  connect(w, &ComputeWorker::failed, this, [this](const QString& message) {
    setRunning(false);
    stage_label_->setText("Error");
    statusBar()->showMessage(message);
    if (!property("quietErrors").toBool()) QMessageBox::critical(this, "Orrery", message);
    emit runFailed(message);
  });
  connect(w, &ComputeWorker::cancelled, this, [this] {
    setRunning(false);
    stage_label_->setText("Cancelled");
    emit runCancelled();
  });
  connect(view_, &UmapView::selected, this, &MainWindow::setSelection);
  connect(w, &ComputeWorker::selectionMarkers, this,
          [this](std::shared_ptr<const std::vector<MarkerRow>> rows) {
            clusters_->setCurrentRow(-1);
            markers_dock_->setWindowTitle("Markers — selection vs rest");
            fillMarkerTable(*rows);
            stage_label_->setText("Selection compared");
            emit selectionMarkersShown();
          });
  connect(w, &ComputeWorker::saved, this,
          [this](const QString& path) { statusBar()->showMessage("Saved " + path, 5000); });
}

MainWindow::~MainWindow() = default;

void MainWindow::buildMenus() {
  QMenu* file = menuBar()->addMenu("&File");
  QAction* open = file->addAction("&Open...", this, [this] {
    const QString path = QFileDialog::getOpenFileName(
        this, "Open store", QString(),
        "AnnData (*.h5ad);;Matrix Market (*.mtx *.mtx.gz);;All files (*)");
    if (!path.isEmpty()) openStore(path);
  });
  open->setShortcut(QKeySequence::Open);
  QAction* open_dir = file->addAction("Open 10x &folder...", this, [this] {
    const QString path = QFileDialog::getExistingDirectory(this, "Open 10x Matrix Market folder");
    if (!path.isEmpty()) openStore(path);
  });
  open_dir->setShortcut(QKeySequence("Ctrl+Shift+O"));
  QAction* png = file->addAction("Export view as &PNG...", this, [this] {
    const QString path =
        QFileDialog::getSaveFileName(this, "Export PNG", "umap.png", "PNG (*.png)");
    if (!path.isEmpty() && !exportPng(path))
      QMessageBox::warning(this, "Orrery", "Could not export " + path);
  });
  png->setShortcut(QKeySequence("Ctrl+E"));
  QAction* save = file->addAction("&Save results as .h5ad...", this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, "Save results", "orrery-results.h5ad",
                                                      "AnnData (*.h5ad)");
    if (!path.isEmpty()) saveH5ad(path);
  });
  save->setShortcut(QKeySequence::Save);
  file->addSeparator();
  QAction* quit = file->addAction("&Quit", qApp, &QApplication::quit);
  quit->setShortcut(QKeySequence::Quit);
  QMenu* view = menuBar()->addMenu("&View");
  view->addAction("&Fit to data", QKeySequence("F"), view_, &UmapView::fitToData);
  QMenu* select = menuBar()->addMenu("&Selection");
  compare_action_ = select->addAction("&Compare selection vs rest", QKeySequence("Ctrl+M"), this,
                                      &MainWindow::compareSelection);
  compare_action_->setToolTip("Wilcoxon markers of the lassoed cells (Shift + drag) against all others");
  compare_action_->setEnabled(false);
  select->addAction("C&lear selection", QKeySequence("Ctrl+Shift+A"), this, [this] { setSelection(nullptr); });
}

void MainWindow::setRunning(bool running) {
  running_ = running;
  cancel_->setEnabled(running);
  progress_->setVisible(running);
}

void MainWindow::openStore(const QString& path) {
  path_ = path;
  params_ = compute::PipelineParams{};
  setWindowTitle("Orrery — " + path);
  stage_label_->setText("Opening " + path);
  view_->setPoints({}, true);
  startRun();
}

void MainWindow::startRun() {
  if (running_) compute_->cancel();
  clusters_->clear();
  setRunning(true);
  compute_->run(path_, params_);
}

void MainWindow::cancelRun() {
  if (running_) {
    stage_label_->setText("Cancelling...");
    compute_->cancel();
  }
}

void MainWindow::showSnapshot(std::shared_ptr<const RunSnapshot> snap) {
  snapshot_ = std::move(snap);
  selection_.reset();
  compare_action_->setEnabled(false);
  const auto& s = *snapshot_;
  view_->setPoints(render::categorical_points(s.umap_xy, s.labels, s.palette, {}, {},
                                              render::default_alpha(s.labels.size())),
                   true);
  clusters_->clear();
  for (std::size_t c = 0; c < s.cluster_sizes.size(); ++c) {
    QPixmap swatch(14, 14);
    swatch.fill(QColor(QString::fromStdString(s.palette[c])));
    clusters_->addItem(new QListWidgetItem(
        QIcon(swatch), QString("Cluster %1  (%2 cells)").arg(c).arg(s.cluster_sizes[c])));
  }
  if (!s.cluster_sizes.empty()) clusters_->setCurrentRow(0);
  stage_label_->setText(QString("Done in %1 s").arg(s.seconds, 0, 'f', 1));
  summary_label_->setText(QString("%1 of %2 cells, %3 genes, %4 clusters · %5")
                              .arg(s.n_cells)
                              .arg(s.n_cells_total)
                              .arg(s.n_genes)
                              .arg(s.cluster_sizes.size())
                              .arg(s.backend_note));
}

void MainWindow::showMarkers(int cluster) {
  if (!snapshot_ || cluster < 0 || cluster >= static_cast<int>(snapshot_->markers.size())) {
    fillMarkerTable({});
    return;
  }
  markers_dock_->setWindowTitle(QString("Markers — cluster %1 vs rest").arg(cluster));
  fillMarkerTable(snapshot_->markers[cluster]);
}

void MainWindow::fillMarkerTable(const std::vector<MarkerRow>& rows) {
  markers_->setSortingEnabled(false);
  markers_->setRowCount(static_cast<int>(rows.size()));
  auto number = [](double v) {
    auto* item = new QTableWidgetItem;
    item->setData(Qt::DisplayRole, v);
    return item;
  };
  for (int r = 0; r < static_cast<int>(rows.size()); ++r) {
    markers_->setItem(r, 0, new QTableWidgetItem(QString::fromStdString(rows[r].gene)));
    markers_->setItem(r, 1, number(rows[r].score));
    markers_->setItem(r, 2, number(rows[r].logfoldchange));
    markers_->setItem(r, 3, number(rows[r].pval_adj));
    markers_->setItem(r, 4, number(100 * rows[r].pct_in));
    markers_->setItem(r, 5, number(100 * rows[r].pct_out));
  }
  markers_->setSortingEnabled(true);
  markers_->sortByColumn(1, Qt::DescendingOrder);
}

void MainWindow::setSelection(std::shared_ptr<const std::vector<bool>> selection) {
  if (!snapshot_) return;
  selection_ = std::move(selection);
  const auto& s = *snapshot_;
  std::vector<bool> none;
  const std::vector<bool>& sel = selection_ ? *selection_ : none;
  const auto n = static_cast<long long>(std::count(sel.begin(), sel.end(), true));
  view_->setPoints(render::categorical_points(s.umap_xy, s.labels, s.palette, {}, sel,
                                              render::default_alpha(s.labels.size())),
                   false);
  compare_action_->setEnabled(n > 0);
  statusBar()->showMessage(selection_ ? QString("%1 cells selected").arg(n) : QString());
  emit selectionChanged(n);
}

void MainWindow::compareSelection() {
  if (!selection_ || running_) return;
  stage_label_->setText("Comparing selection vs rest...");
  compute_->compareSelection(selection_);
}

bool MainWindow::exportPng(const QString& path, int scale) {
  if (view_->points().size() == 0) return false;
  try {
    render::OffscreenRenderer renderer;
    render::RenderOptions o;
    const QSize size = view_->size() * scale;
    o.width = static_cast<std::uint32_t>(std::max(1, size.width()));
    o.height = static_cast<std::uint32_t>(std::max(1, size.height()));
    o.point_size = view_->pointSize() * static_cast<float>(scale);
    render::Camera camera = view_->camera();
    // Same view at a higher resolution: scale the camera's pixel mapping with the image.
    camera.fit(view_->points(), static_cast<float>(o.width), static_cast<float>(o.height));
    auto img = renderer.render(view_->points(), camera, o);
    QImage image(img.rgba.data(), static_cast<int>(img.width), static_cast<int>(img.height),
                 QImage::Format_RGBA8888);
    return image.save(path, "PNG");
  } catch (const std::exception& e) {
    statusBar()->showMessage(QString("Export failed: ") + e.what());
    return false;
  }
}

void MainWindow::saveH5ad(const QString& path) {
  compute_->save(path);
}

void MainWindow::dragEnterEvent(QDragEnterEvent* e) {
  if (e->mimeData()->hasUrls()) e->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* e) {
  const auto urls = e->mimeData()->urls();
  if (!urls.isEmpty() && urls.first().isLocalFile()) openStore(urls.first().toLocalFile());
}

}  // namespace orrery::app
