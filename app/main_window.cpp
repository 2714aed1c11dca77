#include "main_window.hpp"

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QColorDialog>
#include <QCompleter>
#include <QDockWidget>
#include <QDoubleValidator>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QFontDatabase>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QImage>
#include <QInputDialog>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QPainter>
#include <QPixmap>
#include <QPlainTextEdit>
#include <QSaveFile>
#include <QSettings>
#include <QStatusBar>
#include <QStyle>
#include <QStyledItemDelegate>
#include <QToolBar>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <limits>

#include "compute/palette.hpp"
#include "csv.hpp"
#include "eta.hpp"
#include "render/colormap.hpp"
#include "render/figure.hpp"
#include "render/offscreen.hpp"
#include "render/scene.hpp"
#include "render/selection.hpp"

namespace orrery::app {

namespace {

// A "#rrggbb" colour as the renderer's packed RGBA (legend swatches).
std::uint32_t rgba(const std::string& hex) {
  const QColor c(QString::fromStdString(hex));
  return render::pack_rgba(static_cast<std::uint8_t>(c.red()), static_cast<std::uint8_t>(c.green()),
                           static_cast<std::uint8_t>(c.blue()));
}

// Draws each cluster's number of cells right-aligned after its name (the name alone is what a
// double-click edits).
class ClusterSizeDelegate final : public QStyledItemDelegate {
 public:
  using QStyledItemDelegate::QStyledItemDelegate;
  void paint(QPainter* p, const QStyleOptionViewItem& option,
             const QModelIndex& index) const override {
    QStyledItemDelegate::paint(p, option, index);
    const QVariant size = index.data(kClusterSizeRole);
    if (!size.isValid()) return;
    p->save();
    p->setPen(option.palette.color(option.state & QStyle::State_Selected
                                       ? QPalette::HighlightedText
                                       : QPalette::PlaceholderText));
    p->drawText(option.rect.adjusted(0, 0, -6, 0), Qt::AlignRight | Qt::AlignVCenter,
                QLocale().toString(size.toLongLong()));
    p->restore();
  }
};

}  // namespace

namespace {

// One annotation edit: both states are kept, the edit itself was already applied when pushed.
class AnnotationEdit final : public QUndoCommand {
 public:
  AnnotationEdit(MainWindow* w, const QString& text, MainWindow::Annotation before,
                 MainWindow::Annotation after)
      : QUndoCommand(text), w_(w), before_(std::move(before)), after_(std::move(after)) {}
  void undo() override { w_->applyAnnotation(before_); }
  void redo() override {
    if (applied_) {
      applied_ = false;
      return;
    }
    w_->applyAnnotation(after_);
  }

 private:
  MainWindow* w_;
  MainWindow::Annotation before_, after_;
  bool applied_ = true;
};

}  // namespace

namespace {
QString label_text(const QString& file_name) {
  return "Export " + file_name;
}

// A save dialog whose answer ends in the extension of the chosen filter ("Name (*.ext)").
QString save_path(QWidget* parent, const QString& title, const QString& suggestion,
                  const QString& filters, QString* chosen_filter = nullptr) {
  QString filter;
  QString path = QFileDialog::getSaveFileName(parent, title, suggestion, filters, &filter);
  if (chosen_filter) *chosen_filter = filter;
  if (path.isEmpty()) return path;
  const auto star = filter.indexOf("(*");
  const QString ext =
      star >= 0 ? filter.mid(star + 2, filter.indexOf(')', star) - star - 2) : QString();
  if (!ext.isEmpty() && !path.endsWith(ext, Qt::CaseInsensitive)) path += ext;
  return path;
}
}  // namespace

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

  clusters_ = new QListWidget;
  clusters_->setToolTip("Leiden clusters: colour, name and number of cells");
  clusters_->setItemDelegate(new ClusterSizeDelegate(clusters_));
  addDock("Clusters", "clusters", clusters_, Qt::RightDockWidgetArea);

  markers_ = new QTableWidget(0, 6);
  markers_->setHorizontalHeaderLabels({"gene", "score", "log2 FC", "p adj", "% in", "% out"});
  markers_->setToolTip("Wilcoxon rank-sum markers of the selected cluster vs the rest");
  markers_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  markers_->setSelectionBehavior(QAbstractItemView::SelectRows);
  markers_->setSortingEnabled(true);
  markers_->verticalHeader()->setVisible(false);
  {
    // A filter row above the table: gene name part, adjusted p at most, log2 FC at least.
    auto* box = new QWidget;
    auto* layout = new QVBoxLayout(box);
    layout->setContentsMargins(0, 0, 0, 0);
    auto* row = new QHBoxLayout;
    marker_gene_filter_ = new QLineEdit;
    marker_gene_filter_->setPlaceholderText("Filter genes...");
    marker_gene_filter_->setClearButtonEnabled(true);
    marker_gene_filter_->setToolTip("Show markers whose gene name contains this text");
    // p-values span hundreds of orders of magnitude: typed, scientific notation allowed.
    marker_max_p_ = new QLineEdit;
    marker_max_p_->setPlaceholderText("p adj ≤ any");
    marker_max_p_->setClearButtonEnabled(true);
    marker_max_p_->setMaximumWidth(110);
    auto* validator = new QDoubleValidator(0, 1, 400, marker_max_p_);
    validator->setNotation(QDoubleValidator::ScientificNotation);
    validator->setLocale(QLocale::c());
    marker_max_p_->setValidator(validator);
    marker_max_p_->setToolTip(
        "Show markers with a Benjamini-Hochberg adjusted p-value at most this");
    marker_min_lfc_ = new QDoubleSpinBox;
    marker_min_lfc_->setRange(-100, 100);
    marker_min_lfc_->setSingleStep(0.25);
    marker_min_lfc_->setValue(-100);
    marker_min_lfc_->setSpecialValueText("log2 FC: any");
    marker_min_lfc_->setPrefix("log2 FC ≥ ");
    marker_min_lfc_->setToolTip("Show markers with a log2 fold change at least this");
    row->addWidget(marker_gene_filter_, 1);
    row->addWidget(marker_max_p_);
    row->addWidget(marker_min_lfc_);
    layout->addLayout(row);
    layout->addWidget(markers_);
    markers_dock_ = addDock("Markers", "markers", box, Qt::RightDockWidgetArea);
    connect(marker_gene_filter_, &QLineEdit::textChanged, this, &MainWindow::applyMarkerFilter);
    connect(marker_max_p_, &QLineEdit::textChanged, this, &MainWindow::applyMarkerFilter);
    connect(marker_min_lfc_, &QDoubleSpinBox::valueChanged, this, &MainWindow::applyMarkerFilter);
  }
  connect(clusters_, &QListWidget::currentRowChanged, this, &MainWindow::showMarkers);
  clusters_->setSelectionMode(QAbstractItemView::ExtendedSelection);
  connect(clusters_, &QListWidget::itemChanged, this, [this](QListWidgetItem* item) {
    if (filling_) return;
    const int c = clusters_->row(item);
    if (c < 0 || c >= static_cast<int>(names_.size())) return;
    const bool hidden = item->checkState() != Qt::Checked;
    if (hidden != hidden_[c])
      setClusterHidden(c, hidden);
    else if (item->text().toStdString() != names_[c])
      renameCluster(c, item->text());
  });

  qc_ = new QcPanel;
  QDockWidget* qc_dock = addDock("QC", "qc", qc_, Qt::LeftDockWidgetArea);
  connect(qc_, &QcPanel::applyRequested, this, [this] {
    if (path_.isEmpty()) return;
    params_ = qc_->applyTo(params_);
    startRun();
  });

  dot_plot_ = new DotPlotView;
  dot_dock_ = addDock("Dot plot", "dotplot", dot_plot_, Qt::RightDockWidgetArea);
  store_info_ = new QPlainTextEdit;
  store_info_->setReadOnly(true);
  store_info_->setLineWrapMode(QPlainTextEdit::NoWrap);
  store_info_->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
  store_info_->setToolTip("The open store, as `orrery info` describes it");
  addDock("Store", "store", store_info_, Qt::LeftDockWidgetArea);
  violin_ = new ViolinView;
  tabifyDockWidget(dot_dock_, addDock("Violins", "violins", violin_, Qt::RightDockWidgetArea));

  params_panel_ = new ParamsPanel;
  tabifyDockWidget(qc_dock,
                   addDock("Parameters", "parameters", params_panel_, Qt::LeftDockWidgetArea));
  qc_dock->raise();
  connect(params_panel_, &ParamsPanel::applyRequested, this, [this] {
    if (path_.isEmpty()) return;
    const compute::PipelineParams next = params_panel_->applyTo(qc_->applyTo(params_));
    try {
      next.validate();
    } catch (const std::exception& e) {
      stage_label_->setText(QString("Parameters: ") + e.what());
      return;
    }
    params_ = next;
    startRun();
  });

  search_ = new QLineEdit;
  search_->setPlaceholderText("Colour by gene or QC / obs value...");
  search_->setClearButtonEnabled(true);
  search_->setToolTip(
      "Type a gene name and press Enter to colour cells by its expression; clear to "
      "colour by cluster. Double-click a marker to do the same.");
  search_->setMaximumWidth(220);
  auto* toolbar = addToolBar("View");
  toolbar->setObjectName("view-toolbar");
  toolbar->addWidget(search_);
  embedding_box_ = new QComboBox;
  embedding_box_->setToolTip(
      "The embedding the cells are drawn on: this run's UMAP, or one the store already holds "
      "(obsm), such as the X_umap of an earlier scanpy analysis");
  embedding_box_->setEnabled(false);
  toolbar->addWidget(embedding_box_);
  connect(embedding_box_, &QComboBox::activated, this,
          [this](int index) { showEmbedding(embedding_box_->itemData(index).toString()); });
  connect(search_, &QLineEdit::returnPressed, this, [this] { colorByGene(search_->text()); });
  stage_label_ = new QLabel("Ready");
  stage_label_->setObjectName("stageLabel");
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
  system_style_ = QApplication::style()->name();
  setTheme(QSettings().value("theme", "system").toString());

  ComputeWorker* w = compute_->worker();
  w->setLayoutChannel(view_->layoutChannel());
  connect(w, &ComputeWorker::progress, this, [this](const QString& stage, double f) {
    if (stage != eta_stage_) {  // a new stage: its own clock
      eta_stage_ = stage;
      eta_clock_.start();
    }
    const QString left = remaining_text(eta_clock_.elapsed() / 1000.0, f);
    stage_label_->setText(left.isEmpty() ? stage : stage + " · " + left);
    progress_->setValue(static_cast<int>(f * 1000));
    emit runProgress(stage, f);
  });
  connect(w, &ComputeWorker::layoutStep, this,
          [this](std::shared_ptr<const std::vector<float>> xy, quint64 stream) {
            // While UMAP optimises, draw the layout in one neutral colour.
            // The first step of a run refits: the view may hold a stored embedding's scale.
            // Streamed from the device (UmapView::layoutChannel()), the final layout comes here
            // and ends the stream's drawing.
            layout_fitted_ = layout_fitted_ || view_->drawingStreamedLayout();
            view_->endStreamedLayout(false, stream);
            std::vector<std::int32_t> labels(xy->size() / 2, 0);
            view_->setPoints(render::categorical_points(*xy, labels, {"#808080"}),
                             !layout_fitted_ || view_->points().size() == 0);
            layout_fitted_ = true;
          });
  // A run cancelled by a newer request ends after that request was queued: the window is busy
  // until every requested run has ended.
  // A run's stream ends with it (cancelled, failed): its last layout stays, from the host.
  connect(w, &ComputeWorker::streamFinished, this,
          [this](quint64 stream) { view_->endStreamedLayout(true, stream); });
  connect(w, &ComputeWorker::runEnded, this, [this] {
    pending_runs_ = std::max(0, pending_runs_ - 1);
    setRunning(pending_runs_ > 0);
  });
  connect(w, &ComputeWorker::storeOpened, store_info_, &QPlainTextEdit::setPlainText);
  connect(w, &ComputeWorker::storeFormat, this,
          [this](const QString& path, const QString& format, const QString& encoding, int layout) {
            if (path != path_) return;  // a cancelled run's store
            text_layout_read_ = static_cast<io::TextLayout>(layout);
            transpose_action_->setEnabled(format == "text");
            // Which way a table was read is a guess the user should see, and can undo: said
            // once per table and reading (a message hides the stage label while it shows).
            const QString announced = path + "\n" + QString::number(layout);
            if (format == "text" && announced != layout_announced_) {
              layout_announced_ = announced;
              statusBar()->showMessage("Read as " + encoding +
                                           ". File > Reopen the table transposed reads it the "
                                           "other way.",
                                       15000);
            }
          });
  connect(w, &ComputeWorker::storedPreview, this, &MainWindow::showPreview);
  connect(w, &ComputeWorker::embeddingReady, this,
          [this](const QString& key, std::shared_ptr<const std::vector<float>> xy) {
            // Only the answer to the latest request, for the result it was asked of.
            if (!snapshot_ || key != pending_embedding_ || xy->size() != snapshot_->umap_xy.size())
              return;
            setEmbedding(key, std::move(xy));
            stage_label_->setText("Drawn on the store's " + key);
            emit embeddingShown(key);
          });
  connect(w, &ComputeWorker::qcReady, this, [this](std::shared_ptr<const compute::QcMetrics> m) {
    qc_->setMetrics(std::move(m), params_);
  });
  connect(w, &ComputeWorker::finished, this, [this](std::shared_ptr<const RunSnapshot> snap) {
    showSnapshot(std::move(snap));
    emit runFinished();
  });
  connect(w, &ComputeWorker::failed, this, [this](const QString& message) {
    stage_label_->setText("Error");
    statusBar()->showMessage(message);
    // A failed embedding request leaves the box on the embedding drawn.
    pending_embedding_ = embedding_;
    if (const int i = embedding_box_->findData(embedding_); i >= 0)
      embedding_box_->setCurrentIndex(i);
    if (!property("quietErrors").toBool()) QMessageBox::critical(this, "Orrery", message);
    emit runFailed(message);
  });
  connect(w, &ComputeWorker::countsKept, this, &MainWindow::setCountsTooltip);
  connect(w, &ComputeWorker::annotationsImported, this,
          [this](const QStringList& added, const QStringList& numeric,
                 const QStringList& categorical, const QString& summary) {
            setSearchNames(categorical, numeric);
            stage_label_->setText(summary);
            emit annotationsImported(added, summary);
            if (added.isEmpty() || !snapshot_) return;
            // The table's first column of labels (else its first column) colours the cells.
            QString first = added.first();
            for (const QString& a : added)
              if (categorical.contains(a)) {
                first = a;
                break;
              }
            search_->setText(first);
            colorByGene(first);
          });
  connect(w, &ComputeWorker::cancelled, this, [this] {
    stage_label_->setText("Cancelled");
    emit runCancelled();
  });
  connect(view_, &UmapView::lassoed, this,
          [this](std::shared_ptr<const std::vector<glm::vec2>> polygon) {
            // While a run computes the view may show its layout, not the snapshot's cells.
            if (!snapshot_ || running_) return;
            // The view holds the same cells in the same order (on the GPU where there is one).
            setSelection(std::make_shared<const std::vector<bool>>(
                view_->points().size() == cell_xy_.size()
                    ? view_->pointsInPolygon(*polygon)
                    : render::points_in_polygon(cell_xy_, *polygon)));
          });
  connect(view_, &UmapView::hovered, this, [this](glm::vec2 at, float radius) {
    if (!snapshot_ || running_) return;
    hovered_cell_ = render::nearest_point(cell_xy_, at, radius, [this](std::size_t i) {
      return labels_[i] < 0 || !hidden_[labels_[i]];
    });
    if (hovered_cell_ >= 0)
      QToolTip::showText(QCursor::pos(), describeCell(hovered_cell_));
    else
      QToolTip::hideText();
  });
  connect(w, &ComputeWorker::dotPlotReady, this, [this](std::shared_ptr<const DotPlotData> data) {
    dot_plot_->setData(std::move(data));
    dot_dock_->show();
    dot_dock_->raise();
    stage_label_->setText("Dot plot ready");
    emit dotPlotShown();
  });
  connect(w, &ComputeWorker::selectionMarkers, this,
          [this](std::shared_ptr<const std::vector<MarkerRow>> rows) {
            if (!label_compared_.isEmpty()) {  // a label's markers (showMarkers)
              markers_dock_->setWindowTitle("Markers — " + label_compared_ + " vs rest");
              label_compared_.clear();
              fillMarkerTable(*rows);
              stage_label_->setText("Label compared");
              emit selectionMarkersShown();
              return;
            }
            clusters_->setCurrentRow(-1);
            markers_dock_->setWindowTitle(compared_to_a_ ? "Markers — selection vs group A"
                                                         : "Markers — selection vs rest");
            fillMarkerTable(*rows);
            stage_label_->setText("Selection compared");
            emit selectionMarkersShown();
          });
  connect(w, &ComputeWorker::categoriesReady, this,
          [this](std::shared_ptr<const ObsCategories> categories) {
            if (!snapshot_ || categories->codes.size() != snapshot_->labels.size()) return;
            gene_ = categories->name;
            gene_values_.reset();
            violin_->clear();
            obs_categories_ = std::move(categories);
            redraw();
            stage_label_->setText("Coloured by " + gene_);
            emit geneShown(gene_);
          });
  connect(w, &ComputeWorker::geneReady, this,
          [this](const QString& gene, std::shared_ptr<const std::vector<float>> values) {
            if (!snapshot_ || values->size() != snapshot_->labels.size()) return;
            gene_ = gene;
            gene_values_ = std::move(values);
            obs_categories_.reset();
            violin_->setData(gene, *gene_values_, labels_, names_, colors_, hidden_);
            redraw();
            stage_label_->setText("Coloured by " + gene);
            emit geneShown(gene);
          });
  connect(markers_, &QTableWidget::cellDoubleClicked, this,
          [this](int row, int) { colorByGene(markers_->item(row, 0)->text()); });
  connect(w, &ComputeWorker::saved, this,
          [this](const QString& path) { statusBar()->showMessage("Saved " + path, 5000); });
}

MainWindow::~MainWindow() = default;

QDockWidget* MainWindow::addDock(const QString& title, const char* name, QWidget* widget,
                                 Qt::DockWidgetArea area) {
  auto* dock = new QDockWidget(title, this);
  dock->setObjectName(name);
  dock->setWidget(widget);
  addDockWidget(area, dock);
  return dock;
}

void MainWindow::buildMenus() {
  undo_ = new QUndoStack(this);
  undo_->setUndoLimit(100);
  QMenu* file = menuBar()->addMenu("&File");
  QAction* open = file->addAction("&Open...", this, [this] {
    const QString path = QFileDialog::getOpenFileName(
        this, "Open store", QString(),
        "Stores (*.h5ad *.h5 *.mtx *.mtx.gz *.csv *.tsv *.tab *.txt *.csv.gz *.tsv.gz *.tab.gz "
        "*.txt.gz);;AnnData (*.h5ad);;Cell Ranger (*.h5);;Matrix Market (*.mtx *.mtx.gz);;"
        "Text tables (*.csv *.tsv *.tab *.txt *.csv.gz *.tsv.gz *.tab.gz *.txt.gz);;All files (*)");
    if (!path.isEmpty()) openStore(path);
  });
  open->setShortcut(QKeySequence::Open);
  QAction* open_dir = file->addAction("Open &folder (.zarr or 10x)...", this, [this] {
    const QString path =
        QFileDialog::getExistingDirectory(this, "Open a .zarr store or a 10x Matrix Market folder");
    if (!path.isEmpty()) openStore(path);
  });
  open_dir->setShortcut(QKeySequence("Ctrl+Shift+O"));
  // A text table's rows are guessed to be genes or cells (names, shape): the other reading.
  transpose_action_ = file->addAction("Reopen the table &transposed", this, [this] {
    openStore(path_, text_layout_read_ == io::TextLayout::GenesInRows
                         ? io::TextLayout::CellsInRows
                         : io::TextLayout::GenesInRows);
  });
  transpose_action_->setEnabled(false);
  import_action_ = file->addAction("&Import cell annotations (CSV/TSV)...", this, [this] {
    const QString path = QFileDialog::getOpenFileName(
        this, "Import cell annotations: a row per cell, named as the store's cells", QString(),
        "Tables (*.csv *.tsv *.tab *.txt *.csv.gz *.tsv.gz *.tab.gz *.txt.gz);;All files (*)");
    if (!path.isEmpty()) importAnnotations(path);
  });
  import_action_->setEnabled(false);
  recent_menu_ = file->addMenu("Open &recent");
  fillRecentMenu();
  QAction* png = file->addAction("Export view as &PNG...", this, [this] {
    const QString path =
        QFileDialog::getSaveFileName(this, "Export PNG", "umap.png", "PNG (*.png)");
    if (!path.isEmpty() && !exportPng(path))
      QMessageBox::warning(this, "Orrery", "Could not export " + path);
  });
  png->setShortcut(QKeySequence("Ctrl+E"));
  QAction* figure = file->addAction("Export &figure (PNG, SVG, PDF)...", this, [this] {
    const QString path =
        save_path(this, "Export figure", "umap.pdf", "PDF (*.pdf);;SVG (*.svg);;PNG (*.png)");
    if (path.isEmpty()) return;
    // The resolution of the point layer (and of the whole image for PNG).
    bool ok = false;
    const int dpi = QInputDialog::getInt(this, "Export figure", "Resolution (dots per inch):", 300,
                                         72, 1200, 50, &ok);
    if (ok && !exportFigure(path, dpi))
      QMessageBox::warning(this, "Orrery", "Could not export " + path);
  });
  figure->setShortcut(QKeySequence("Ctrl+Shift+E"));
  figure->setToolTip(
      "The view with title, axes and legend as vectors, points as an image at a chosen dpi");
  QAction* save = file->addAction("&Save results as .h5ad or .zarr...", this, [this] {
    QString filter;
    const QString path =
        save_path(this, "Save results", "orrery-results.h5ad",
                  "AnnData h5ad (*.h5ad);;AnnData zarr (*.zarr);;AnnData zarr v3 (*.zarr);;"
                  "AnnData h5ad, results only: no X, layers or raw (*.h5ad)",
                  &filter);
    if (!path.isEmpty())
      saveStore(path, filter.contains("v3") ? 3 : 2, !filter.contains("results only"));
  });
  save->setShortcut(QKeySequence::Save);
  file->addSeparator();
  QAction* quit = file->addAction("&Quit", qApp, &QApplication::quit);
  quit->setShortcut(QKeySequence::Quit);
  QMenu* edit = menuBar()->addMenu("&Edit");
  QAction* undo = undo_->createUndoAction(this, "&Undo");
  undo->setShortcut(QKeySequence::Undo);
  edit->addAction(undo);
  QAction* redo = undo_->createRedoAction(this, "&Redo");
  redo->setShortcut(QKeySequence::Redo);
  edit->addAction(redo);
  QMenu* view = menuBar()->addMenu("&View");
  view->addAction("&Fit to data", QKeySequence("F"), view_, &UmapView::fitToData);
  QMenu* themes = view->addMenu("&Theme");
  auto* theme_group = new QActionGroup(themes);
  for (const auto& [name, label] : {std::pair<QString, QString>{"system", "Follow the &desktop"},
                                    std::pair<QString, QString>{"light", "&Light"},
                                    std::pair<QString, QString>{"dark", "&Dark"}}) {
    QAction* a = themes->addAction(label, this, [this, name] { setTheme(name); });
    a->setCheckable(true);
    a->setData(name);
    theme_group->addAction(a);
  }
  connect(themes, &QMenu::aboutToShow, this, [this, theme_group] {
    for (QAction* a : theme_group->actions()) a->setChecked(a->data().toString() == theme_);
  });
  QMenu* select = menuBar()->addMenu("&Selection");
  compare_action_ = select->addAction("&Compare selection vs rest", QKeySequence("Ctrl+M"), this,
                                      &MainWindow::compareSelection);
  compare_action_->setToolTip(
      "Wilcoxon markers of the selected cells (lasso: Shift + drag, brush: Ctrl + drag) against "
      "all others");
  compare_action_->setEnabled(false);
  set_a_action_ =
      select->addAction("Set selection as group &A", QKeySequence("Ctrl+1"), this, [this] {
        if (!selection_) return;
        setGroupA(selection_);
        statusBar()->showMessage(
            QString("Group A: %1 cells").arg(std::count(group_a_->begin(), group_a_->end(), true)));
      });
  set_a_action_->setEnabled(false);
  compare_a_action_ =
      select->addAction("Compare selection vs group A", QKeySequence("Ctrl+Shift+M"), this,
                        &MainWindow::compareSelectionWithA);
  compare_a_action_->setToolTip("Wilcoxon markers of the lassoed cells against group A");
  compare_a_action_->setEnabled(false);
  QMenu* markers = menuBar()->addMenu("&Markers");
  QAction* dot = markers->addAction("&Dot plot of top markers", QKeySequence("Ctrl+D"), this,
                                    [this] { showDotPlot(); });
  dot->setToolTip("Top three markers of each cluster: fraction expressing and mean expression");
  QMenu* clusters = menuBar()->addMenu("&Clusters");
  clusters->addAction("&Recolor...", this, [this] {
    const int c = clusters_->currentRow();
    if (c < 0 || c >= static_cast<int>(colors_.size())) return;
    recolorCluster(c, QColorDialog::getColor(QColor(QString::fromStdString(colors_[c])), this,
                                             "Cluster colour"));
  });
  QAction* adopt = clusters->addAction("&Edit the coloured categories as labels", this,
                                       [this] { useCategoriesAsLabels(); });
  adopt->setToolTip(
      "Colour by a categorical obs column first (e.g. cell_type); its categories "
      "then become the labels to rename, recolor, merge, hide and save");
  clusters->addAction("&Merge selected clusters", QKeySequence("Ctrl+G"), this, [this] {
    std::vector<int> rows;
    for (auto* item : clusters_->selectedItems()) rows.push_back(clusters_->row(item));
    mergeClusters(rows);
  });
  QMenu* tables = file->addMenu("Export &table (CSV)");
  auto csv_action = [this, tables](const QString& label, const QString& name, auto method) {
    tables->addAction(label, this, [this, name, method] {
      const QString path =
          QFileDialog::getSaveFileName(this, label_text(name), name, "CSV (*.csv)");
      if (!path.isEmpty() && !(this->*method)(path))
        QMessageBox::warning(this, "Orrery", "Could not write " + path);
    });
  };
  csv_action("Markers shown...", "markers.csv", &MainWindow::exportMarkersCsv);
  csv_action("Cluster of each cell...", "clusters.csv", &MainWindow::exportClustersCsv);
  csv_action("Selected cells...", "selection.csv", &MainWindow::exportSelectionCsv);
  tables->addAction("QC metrics of every cell...", this, [this] {
    const QString path =
        QFileDialog::getSaveFileName(this, label_text("qc.csv"), "qc.csv", "CSV (*.csv)");
    if (!path.isEmpty()) exportQcCsv(path);
  });
  select->addAction("&New label from selection...", QKeySequence("Ctrl+L"), this, [this] {
    bool ok = false;
    const QString name =
        QInputDialog::getText(this, "New label", "Name for the selected cells:", QLineEdit::Normal,
                              QString("label %1").arg(names_.size()), &ok);
    if (ok) labelSelection(name);
  });
  select->addAction("C&lear selection", QKeySequence("Ctrl+Shift+A"), this,
                    [this] { setSelection(nullptr); });
}

void MainWindow::setRunning(bool running) {
  running_ = running;
  cancel_->setEnabled(running);
  progress_->setVisible(running);
  if (running) stage_label_->setToolTip({});  // the last run's warnings go with it
}

void MainWindow::openStore(const QString& path, io::TextLayout text_layout) {
  // The previous store's result leaves with its points: nothing may be picked, lassoed,
  // edited or re-coloured against it while the new store's preview or layout is on screen.
  snapshot_.reset();
  selection_.reset();
  cell_xy_.clear();
  xy_.reset();
  hovered_cell_ = -1;
  labels_.clear();
  labels_state_.reset();
  names_.clear();
  colors_.clear();
  hidden_.clear();
  gene_.clear();
  gene_values_.reset();
  obs_categories_.reset();
  undo_->clear();
  fillMarkerTable({});
  violin_->clear();
  path_ = path;
  text_layout_ = text_layout;
  transpose_action_->setEnabled(false);  // until the store says it is a table
  import_action_->setEnabled(false);     // until its result is on screen
  params_ = params_panel_->applyTo(compute::PipelineParams{});
  rememberRecent(path);
  setWindowTitle("Orrery — " + path);
  stage_label_->setText("Opening " + path);
  view_->setPoints({}, true);
  startRun(true);
}

void MainWindow::startRun(bool preview) {
  if (running_) compute_->cancel();
  clusters_->clear();
  layout_fitted_ = false;
  embedding_box_->setEnabled(false);  // re-enabled with the run's result
  pending_embedding_ = embedding_;
  ++pending_runs_;
  setRunning(true);
  compute_->run(path_, params_, preview, text_layout_);
}

void MainWindow::cancelRun() {
  if (running_) {
    stage_label_->setText("Cancelling...");
    compute_->cancel();
  }
}

void MainWindow::showSnapshot(std::shared_ptr<const RunSnapshot> snap) {
  const std::shared_ptr<const RunSnapshot> previous = std::move(snapshot_);
  snapshot_ = std::move(snap);
  selection_.reset();
  compare_action_->setEnabled(false);
  set_a_action_->setEnabled(false);
  setGroupA(nullptr);  // cells of the previous result
  const auto& s = *snapshot_;
  // Leiden's labels kept from the previous run (only UMAP's or the markers' parameters
  // changed): the cluster edits made on them (names, colours, merges, hidden clusters, new
  // labels) and their undo history stay.
  const bool keep_edits = previous && s.reused_stages.contains("leiden") &&
                          previous->labels == s.labels && labels_.size() == s.labels.size();
  if (!keep_edits) {
    labels_ = s.labels;
    labels_state_.reset();
  }
  embedding_box_->clear();
  embedding_box_->addItem("UMAP (this run)", QString());
  for (const auto& key : s.stored_embeddings)
    embedding_box_->addItem(QString::fromStdString(key) + " (stored)", QString::fromStdString(key));
  embedding_box_->setEnabled(embedding_box_->count() > 1);
  embedding_ = pending_embedding_ = QString();
  xy_ = std::shared_ptr<const std::vector<float>>(snapshot_, &snapshot_->umap_xy);
  // The embedding in cell order: the drawn order may differ (expression colouring sorts).
  cell_xy_.resize(xy_->size() / 2);
  for (std::size_t i = 0; i < cell_xy_.size(); ++i)
    cell_xy_[i] = {(*xy_)[2 * i], (*xy_)[2 * i + 1]};
  hovered_cell_ = -1;
  if (!keep_edits) {
    undo_->clear();  // edits belong to the previous result
    colors_ = s.palette;
  }
  gene_.clear();
  gene_values_.reset();
  obs_categories_.reset();
  {
    QStringList categorical, numeric;
    for (const auto& o : s.obs_categorical) categorical << QString::fromStdString(o);
    for (const auto& o : s.obs_numeric) numeric << QString::fromStdString(o);
    setSearchNames(categorical, numeric);
  }
  import_action_->setEnabled(true);
  if (!keep_edits) {
    names_.clear();
    for (std::size_t c = 0; c < s.cluster_sizes.size(); ++c) names_.push_back(std::to_string(c));
    hidden_.assign(names_.size(), false);
  }
  view_->setPoints({}, true);
  redraw();
  fillClusterList();
  if (!s.cluster_sizes.empty()) clusters_->setCurrentRow(0);
  stage_label_->setText(QString("Done in %1 s").arg(s.seconds, 0, 'f', 1) +
                        (s.reused_stages.isEmpty()
                             ? QString()
                             : " (unchanged, kept: " + s.reused_stages.join(", ") + ")") +
                        (s.warnings.isEmpty() ? QString()
                                              : QString(" · %1 warning%2 (hover to read)")
                                                    .arg(s.warnings.size())
                                                    .arg(s.warnings.size() == 1 ? "" : "s")));
  stage_label_->setToolTip(s.warnings.join("\n"));
  summary_label_->setText(QString("%1 of %2 cells, %3 genes, %4 clusters · %5")
                              .arg(s.n_cells)
                              .arg(s.n_cells_total)
                              .arg(s.n_genes)
                              .arg(s.cluster_sizes.size())
                              .arg(s.backend_note));
  setCountsTooltip(s.counts_mib);
}

void MainWindow::setCountsTooltip(double mib) {
  summary_label_->setToolTip(
      mib > 0 ? QString("The kept counts are in memory (%1 MiB): gene colours, dot plots and "
                        "selection markers read them, not the store.")
                    .arg(mib, 0, 'f', 0)
              : QString("The kept counts are not in memory (over gene_cache_mib or a quarter of "
                        "the machine's memory, or no markers pass): gene colours, dot plots and "
                        "selection markers read the store."));
}

void MainWindow::showPreview(std::shared_ptr<const StoredPreview> preview) {
  // Only while the store just opened computes (a late preview of an earlier store is dropped).
  if (!running_ || preview->store_path != path_ || snapshot_) return;
  const std::size_t n = preview->xy.size() / 2;
  std::vector<std::int32_t> codes(n, 0);
  std::vector<std::string> colors{"#808080"};
  std::vector<std::pair<std::string, std::uint32_t>> legend;
  const QString column = preview->categories ? preview->categories->name : QString();
  if (preview->categories) {
    codes = preview->categories->codes;
    colors = preview->categories->colors;
    for (std::size_t c = 0; c < colors.size(); ++c)
      legend.emplace_back(preview->categories->categories[c], rgba(colors[c]));
  }
  view_->setLegend(
      (column.isEmpty() ? preview->embedding : column + " · stored " + preview->embedding)
          .toStdString(),
      std::move(legend));
  view_->setPoints(
      render::categorical_points(preview->xy, codes, colors, {}, {}, render::default_alpha(n)),
      true);
  stage_label_->setText("Showing the store's " + preview->embedding + " while the pipeline runs");
  emit previewShown(preview->embedding, column);
}

void MainWindow::showEmbedding(const QString& key) {
  if (!snapshot_ || running_) return;
  pending_embedding_ = key;  // an answer still coming for an earlier choice is now stale
  if (key == embedding_) {
    if (const int i = embedding_box_->findData(key); i >= 0) embedding_box_->setCurrentIndex(i);
    return;
  }
  if (key.isEmpty()) {
    setEmbedding(key, std::shared_ptr<const std::vector<float>>(snapshot_, &snapshot_->umap_xy));
    emit embeddingShown(key);
    return;
  }
  stage_label_->setText("Reading " + key + "...");
  compute_->storedEmbedding(key);
}

void MainWindow::setEmbedding(const QString& key, std::shared_ptr<const std::vector<float>> xy) {
  embedding_ = key;
  xy_ = std::move(xy);
  for (std::size_t i = 0; i < cell_xy_.size(); ++i)
    cell_xy_[i] = {(*xy_)[2 * i], (*xy_)[2 * i + 1]};
  hovered_cell_ = -1;
  const int index = embedding_box_->findData(key);
  if (index >= 0) embedding_box_->setCurrentIndex(index);
  view_->setPoints({}, true);  // fit the camera to the new layout
  redraw();
}

void MainWindow::showMarkers(int cluster) {
  if (!snapshot_ || cluster < 0 || cluster >= static_cast<int>(names_.size())) {
    fillMarkerTable({});
    return;
  }
  // The run's markers belong to its Leiden clusters; once the labels were edited (merged, new
  // labels, categories adopted) a label's markers are computed against the rest on demand.
  if (labels_ == snapshot_->labels && cluster < static_cast<int>(snapshot_->markers.size())) {
    markers_dock_->setWindowTitle(QString("Markers — cluster %1 vs rest").arg(cluster));
    fillMarkerTable(snapshot_->markers[cluster]);
    return;
  }
  fillMarkerTable({});
  if (running_) return;
  auto cells = std::make_shared<std::vector<bool>>(labels_.size());
  for (std::size_t i = 0; i < labels_.size(); ++i) (*cells)[i] = labels_[i] == cluster;
  label_compared_ = QString::fromStdString(names_[cluster]);
  compared_to_a_ = false;
  markers_dock_->setWindowTitle("Markers — " + label_compared_ + " vs rest (computing...)");
  stage_label_->setText("Comparing " + label_compared_ + " vs rest...");
  compute_->compareSelection(std::move(cells));
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
  applyMarkerFilter();
}

void MainWindow::setMarkerFilter(const QString& gene_part, double max_pval_adj, double min_logfc) {
  const QSignalBlocker a(marker_gene_filter_), b(marker_max_p_), c(marker_min_lfc_);
  marker_gene_filter_->setText(gene_part);
  marker_max_p_->setText(max_pval_adj >= 1 ? QString() : QString::number(max_pval_adj, 'g', 17));
  marker_min_lfc_->setValue(std::max(min_logfc, marker_min_lfc_->minimum()));
  applyMarkerFilter();
}

void MainWindow::applyMarkerFilter() {
  const QString part = marker_gene_filter_->text().trimmed();
  bool typed = false;
  const double max_p = QLocale::c().toDouble(marker_max_p_->text().trimmed(), &typed);
  const double min_lfc = marker_min_lfc_->value() <= marker_min_lfc_->minimum()
                             ? -std::numeric_limits<double>::infinity()
                             : marker_min_lfc_->value();
  for (int r = 0; r < markers_->rowCount(); ++r) {
    const bool show = markers_->item(r, 0)->text().contains(part, Qt::CaseInsensitive) &&
                      (!typed || markers_->item(r, 3)->data(Qt::DisplayRole).toDouble() <= max_p) &&
                      markers_->item(r, 2)->data(Qt::DisplayRole).toDouble() >= min_lfc;
    markers_->setRowHidden(r, !show);
  }
}

void MainWindow::setSearchNames(const QStringList& categorical, const QStringList& numeric) {
  std::vector<std::string> batch_columns;
  for (const auto& c : categorical) batch_columns.push_back(c.toStdString());
  params_panel_->setBatchColumns(batch_columns);
  QStringList names = categorical + numeric;
  if (snapshot_)
    for (const auto& g : snapshot_->gene_names) names << QString::fromStdString(g);
  if (QCompleter* old = search_->completer()) old->deleteLater();
  auto* completer = new QCompleter(names, search_);
  completer->setCaseSensitivity(Qt::CaseInsensitive);
  completer->setFilterMode(Qt::MatchContains);
  search_->setCompleter(completer);
}

void MainWindow::importAnnotations(const QString& table) {
  if (!snapshot_) return;
  stage_label_->setText("Importing " + QFileInfo(table).fileName() + "...");
  compute_->importAnnotations(table);
}

void MainWindow::colorByGene(const QString& gene) {
  if (!snapshot_) return;
  if (gene.trimmed().isEmpty()) {
    gene_.clear();
    gene_values_.reset();
    obs_categories_.reset();
    violin_->clear();
    redraw();
    return;
  }
  stage_label_->setText("Reading " + gene.trimmed() + "...");
  compute_->geneValues(gene.trimmed());
}

void MainWindow::redraw() {
  if (!snapshot_) return;
  std::vector<std::pair<std::string, std::uint32_t>> legend;
  if (gene_values_) {
    const auto& v = *gene_values_;
    const float lo = render::quantile(v, 0.01), hi = render::quantile(v, 0.99);
    for (int k = 4; k >= 0; --k)  // the colour scale, high to low
      legend.emplace_back(QString::number(lo + (hi - lo) * k / 4.0, 'g', 3).toStdString(),
                          render::viridis(k / 4.0f));
    view_->setLegend(gene_.toStdString(), std::move(legend));
    view_->setPoints(render::continuous_points(*xy_, v, lo, hi, render::default_alpha(v.size())),
                     view_->points().size() == 0);
    return;
  }
  std::vector<bool> none;
  const std::vector<bool>& sel = selection_ ? *selection_ : none;
  if (obs_categories_) {
    for (std::size_t c = 0; c < obs_categories_->categories.size(); ++c)
      legend.emplace_back(obs_categories_->categories[c], rgba(obs_categories_->colors[c]));
    view_->setLegend(gene_.toStdString(), std::move(legend));
    view_->setPoints(
        render::categorical_points(*xy_, obs_categories_->codes, obs_categories_->colors, {}, sel,
                                   render::default_alpha(labels_.size())),
        view_->points().size() == 0);
    return;
  }
  for (std::size_t c = 0; c < names_.size(); ++c)
    if (!hidden_[c]) legend.emplace_back(names_[c], rgba(colors_[c]));
  view_->setLegend("clusters", std::move(legend));
  view_->setPoints(render::categorical_points(*xy_, labels_, colors_, hidden_, sel,
                                              render::default_alpha(labels_.size())),
                   view_->points().size() == 0);
}

void MainWindow::fillClusterList() {
  filling_ = true;
  const int current = clusters_->currentRow();
  clusters_->clear();
  std::vector<std::int64_t> size(names_.size(), 0);
  for (auto l : labels_)
    if (l >= 0) ++size[l];
  for (std::size_t c = 0; c < names_.size(); ++c) {
    QPixmap swatch(14, 14);
    swatch.fill(QColor(QString::fromStdString(colors_[c])));
    auto* item = new QListWidgetItem(QIcon(swatch), QString::fromStdString(names_[c]));
    item->setFlags(item->flags() | Qt::ItemIsEditable | Qt::ItemIsUserCheckable);
    item->setCheckState(hidden_[c] ? Qt::Unchecked : Qt::Checked);
    item->setToolTip(QString("%1 cells; double-click to rename, untick to hide").arg(size[c]));
    item->setData(kClusterSizeRole, static_cast<qlonglong>(size[c]));
    clusters_->addItem(item);
  }
  if (current >= 0 && current < clusters_->count()) clusters_->setCurrentRow(current);
  filling_ = false;
}

QStringList MainWindow::recentFiles() const {
  return QSettings().value("recentFiles").toStringList();
}

void MainWindow::rememberRecent(const QString& path) {
  const QString absolute = QFileInfo(path).absoluteFilePath();
  QStringList list = recentFiles();
  list.removeAll(absolute);
  list.prepend(absolute);
  while (list.size() > 10) list.removeLast();
  QSettings().setValue("recentFiles", list);
  fillRecentMenu();
}

void MainWindow::fillRecentMenu() {
  recent_menu_->clear();
  const QStringList list = recentFiles();
  for (const QString& path : list) {
    QAction* a = recent_menu_->addAction(QFileInfo(path).fileName(), this,
                                         [this, path] { openStore(path); });
    a->setToolTip(path);
    a->setStatusTip(path);
    a->setEnabled(QFileInfo::exists(path));  // moved or deleted stores stay listed, greyed
  }
  recent_menu_->setEnabled(!list.isEmpty());
}

QString MainWindow::describeCell(std::int64_t cell) const {
  if (!snapshot_ || cell < 0 || cell >= static_cast<std::int64_t>(labels_.size())) return {};
  QString text = QString("cell %1").arg(QString::fromStdString(snapshot_->cell_names[cell]));
  const auto label = labels_[cell];
  text += QString("\ncluster %1").arg(label >= 0 ? QString::fromStdString(names_[label]) : "-");
  if (!gene_.isEmpty() && gene_values_ && cell < static_cast<std::int64_t>(gene_values_->size()))
    text += QString("\n%1: %2").arg(gene_).arg((*gene_values_)[cell], 0, 'g', 4);
  return text;
}

MainWindow::Annotation MainWindow::annotation() {
  if (!labels_state_) labels_state_ = std::make_shared<const std::vector<std::int32_t>>(labels_);
  return {names_, colors_, hidden_, labels_state_};
}

void MainWindow::applyAnnotation(const Annotation& a) {
  names_ = a.names;
  colors_ = a.colors;
  hidden_ = a.hidden;
  if (a.labels != labels_state_) {
    labels_ = *a.labels;
    labels_state_ = a.labels;
  }
  fillClusterList();
  redraw();
}

void MainWindow::recordEdit(const QString& text, Annotation before) {
  undo_->push(new AnnotationEdit(this, text, std::move(before), annotation()));
}

void MainWindow::renameCluster(int c, const QString& name) {
  if (c < 0 || c >= static_cast<int>(names_.size()) || name.trimmed().isEmpty()) return;
  if (names_[c] == name.trimmed().toStdString()) return;
  Annotation before = annotation();
  names_[c] = name.trimmed().toStdString();
  recordEdit(QString("Rename %1").arg(name.trimmed()), std::move(before));
  fillClusterList();
  redraw();  // the legend shows the name
}

void MainWindow::recolorCluster(int c, const QColor& color) {
  if (c < 0 || c >= static_cast<int>(colors_.size()) || !color.isValid()) return;
  Annotation before = annotation();
  colors_[c] = color.name(QColor::HexRgb).toStdString();
  recordEdit(QString("Recolor %1").arg(QString::fromStdString(names_[c])), std::move(before));
  fillClusterList();
  redraw();
}

void MainWindow::setClusterHidden(int c, bool hidden) {
  if (c < 0 || c >= static_cast<int>(hidden_.size()) || hidden_[c] == hidden) return;
  Annotation before = annotation();
  hidden_[c] = hidden;
  recordEdit(QString(hidden ? "Hide %1" : "Show %1").arg(QString::fromStdString(names_[c])),
             std::move(before));
  fillClusterList();
  redraw();
}

void MainWindow::mergeClusters(std::vector<int> clusters) {
  std::sort(clusters.begin(), clusters.end());
  clusters.erase(std::unique(clusters.begin(), clusters.end()), clusters.end());
  if (clusters.size() < 2 || clusters.front() < 0 ||
      clusters.back() >= static_cast<int>(names_.size()))
    return;
  // Relabel into the first, then drop the emptied categories and renumber.
  Annotation before = annotation();
  const int into = clusters.front();
  std::vector<int> remap(names_.size());
  std::vector<std::string> names, colors;
  std::vector<bool> hidden;
  for (int c = 0, next = 0; c < static_cast<int>(names_.size()); ++c) {
    if (c != into && std::binary_search(clusters.begin(), clusters.end(), c)) continue;
    remap[c] = next++;
    names.push_back(names_[c]);
    colors.push_back(colors_[c]);
    hidden.push_back(hidden_[c]);
  }
  for (int c : clusters) remap[c] = remap[into];
  for (auto& l : labels_)
    if (l >= 0) l = remap[l];
  names_ = std::move(names);
  colors_ = std::move(colors);
  hidden_ = std::move(hidden);
  labels_state_.reset();
  recordEdit(QString("Merge %1 clusters").arg(clusters.size()), std::move(before));
  fillClusterList();
  redraw();
}

bool MainWindow::useCategoriesAsLabels() {
  if (!obs_categories_ || obs_categories_->codes.size() != labels_.size()) return false;
  Annotation before = annotation();
  const auto categories = std::move(obs_categories_);
  names_ = categories->categories;
  colors_ = categories->colors;
  hidden_.assign(names_.size(), false);
  labels_ = categories->codes;
  labels_state_.reset();
  gene_.clear();
  recordEdit("Use " + categories->name + " as labels", std::move(before));
  fillClusterList();
  redraw();
  stage_label_->setText("Labels: " + categories->name);
  return true;
}

int MainWindow::labelSelection(const QString& name) {
  if (!selection_ || name.trimmed().isEmpty()) return -1;
  const int id = static_cast<int>(names_.size());
  Annotation before = annotation();
  std::int64_t moved = 0;
  for (std::size_t i = 0; i < labels_.size(); ++i)
    if ((*selection_)[i]) {
      labels_[i] = id;
      ++moved;
    }
  if (moved == 0) return -1;
  names_.push_back(name.trimmed().toStdString());
  // The next palette colour not yet used by another category.
  std::string colour = compute::categorical_palette(names_.size()).back();
  for (const auto& c : compute::categorical_palette(std::max<std::size_t>(20, names_.size() + 1)))
    if (std::find(colors_.begin(), colors_.end(), c) == colors_.end()) {
      colour = c;
      break;
    }
  colors_.push_back(colour);
  hidden_.push_back(false);
  labels_state_.reset();
  recordEdit(QString("New label %1").arg(name.trimmed()), std::move(before));
  selection_.reset();
  fillClusterList();
  redraw();
  statusBar()->showMessage(QString("%1 cells labelled \"%2\"").arg(moved).arg(name.trimmed()));
  return id;
}

namespace {

// Writes lines to a temporary file renamed over `path` on success.
bool write_lines(const QString& path, const QStringList& lines) {
  QSaveFile f(path);
  if (!f.open(QIODevice::WriteOnly | QIODevice::Text)) return false;
  for (const auto& l : lines) f.write((l + "\n").toUtf8());
  return f.commit();
}

}  // namespace

bool MainWindow::exportMarkersCsv(const QString& path) const {
  QStringList lines{"gene,score,logfoldchange,pval_adj,pct_in,pct_out"};
  for (int r = 0; r < markers_->rowCount(); ++r) {
    if (markers_->isRowHidden(r)) continue;  // the filter's rows only: the markers shown
    QStringList f{csv_field(markers_->item(r, 0)->text())};
    for (int c = 1; c < 6; ++c)
      f << QString::number(markers_->item(r, c)->data(Qt::DisplayRole).toDouble(), 'g', 10);
    lines << f.join(',');
  }
  return write_lines(path, lines);
}

bool MainWindow::exportClustersCsv(const QString& path) const {
  if (!snapshot_) return false;
  QStringList lines{"cell,cluster"};
  for (std::size_t i = 0; i < labels_.size(); ++i)
    lines << csv_field(QString::fromStdString(snapshot_->cell_names[i])) + ',' +
                 csv_field(QString::fromStdString(names_[labels_[i]]));
  return write_lines(path, lines);
}

bool MainWindow::exportSelectionCsv(const QString& path) const {
  if (!snapshot_ || !selection_) return false;
  QStringList lines{"cell"};
  for (std::size_t i = 0; i < selection_->size(); ++i)
    if ((*selection_)[i]) lines << csv_field(QString::fromStdString(snapshot_->cell_names[i]));
  return write_lines(path, lines);
}

void MainWindow::exportQcCsv(const QString& path) {
  compute_->exportQc(path, qc_->applyTo(params_));
}

void MainWindow::setSelection(std::shared_ptr<const std::vector<bool>> selection) {
  if (!snapshot_) return;
  selection_ = std::move(selection);
  std::vector<bool> none;
  const std::vector<bool>& sel = selection_ ? *selection_ : none;
  const auto n = static_cast<long long>(std::count(sel.begin(), sel.end(), true));
  redraw();
  compare_action_->setEnabled(n > 0);
  set_a_action_->setEnabled(n > 0);
  statusBar()->showMessage(selection_ ? QString("%1 cells selected").arg(n) : QString());
  emit selectionChanged(n);
}

void MainWindow::compareSelection() {
  if (!selection_ || running_) return;
  compared_to_a_ = false;
  stage_label_->setText("Comparing selection vs rest...");
  compute_->compareSelection(selection_);
}

void MainWindow::setGroupA(std::shared_ptr<const std::vector<bool>> cells) {
  group_a_ = std::move(cells);
  compare_a_action_->setEnabled(group_a_ != nullptr);
}

void MainWindow::showDotPlot(int per_cluster) {
  if (!snapshot_ || running_) return;
  QStringList genes;
  for (const auto& rows : snapshot_->markers)
    for (int i = 0; i < per_cluster && i < static_cast<int>(rows.size()); ++i) {
      const QString g = QString::fromStdString(rows[i].gene);
      if (!genes.contains(g) && genes.size() < 40) genes << g;
    }
  if (genes.isEmpty()) return;
  QStringList groups;
  for (const auto& n : names_) groups << QString::fromStdString(n);
  stage_label_->setText("Computing the dot plot...");
  compute_->dotPlot(genes, std::make_shared<const std::vector<std::int32_t>>(labels_), groups);
}

void MainWindow::compareSelectionWithA() {
  if (!selection_ || !group_a_ || running_) return;
  compared_to_a_ = true;
  stage_label_->setText("Comparing selection vs group A...");
  compute_->compareSelection(selection_, group_a_);
}

QImage MainWindow::renderPoints(QSize pixels, float point_scale) const {
  render::OffscreenRenderer renderer;
  render::RenderOptions o;
  o.width = static_cast<std::uint32_t>(std::max(1, pixels.width()));
  o.height = static_cast<std::uint32_t>(std::max(1, pixels.height()));
  o.point_size = view_->pointSize() * point_scale;
  render::Camera camera = view_->camera();
  view_->settleStreamedLayout();  // a layout streamed from CUDA: its positions to the host
  // The whole embedding at the requested resolution.
  camera.fit(view_->points(), static_cast<float>(o.width), static_cast<float>(o.height));
  auto img = renderer.render(view_->points(), camera, o);
  return QImage(img.rgba.data(), static_cast<int>(img.width), static_cast<int>(img.height),
                QImage::Format_RGBA8888)
      .copy();
}

bool MainWindow::exportPng(const QString& path, int scale) {
  if (view_->points().size() == 0) return false;
  try {
    return renderPoints(view_->size() * scale, static_cast<float>(scale)).save(path, "PNG");
  } catch (const std::exception& e) {
    statusBar()->showMessage(QString("Export failed: ") + e.what());
    return false;
  }
}

bool MainWindow::exportFigure(const QString& path, double dpi) {
  if (view_->points().size() == 0) return false;
  render::FigureOptions options;
  options.dpi = dpi;
  render::FigureContent content;
  if (!embedding_.isEmpty()) {  // scanpy's axis names: X_tsne -> TSNE1, X_pca -> PC1
    QString basis = embedding_.startsWith("X_") ? embedding_.mid(2) : embedding_;
    basis = basis == "pca" ? "PC" : basis.toUpper();
    content.x_label = basis + "1";
    content.y_label = basis + "2";
  }
  try {
    const QSize pixels = render::point_layer_pixels(options);
    // Points keep their on-screen size relative to the plot.
    const float scale = static_cast<float>(pixels.width()) / std::max(1, view_->width());
    content.points = renderPoints(pixels, std::max(1.0f, scale));
  } catch (const std::exception& e) {
    statusBar()->showMessage(QString("Export failed: ") + e.what());
    return false;
  }
  if (gene_.isEmpty()) {
    content.title = "leiden";
    for (std::size_t c = 0; c < names_.size(); ++c)
      if (!hidden_[c])
        content.legend.emplace_back(QString::fromStdString(names_[c]),
                                    QColor(QString::fromStdString(colors_[c])));
  } else {
    content.title = gene_;
    if (obs_categories_)
      for (std::size_t c = 0; c < obs_categories_->categories.size(); ++c)
        content.legend.emplace_back(QString::fromStdString(obs_categories_->categories[c]),
                                    QColor(QString::fromStdString(obs_categories_->colors[c])));
  }
  QString error;
  if (!render::export_figure(path, content, options, &error)) {
    statusBar()->showMessage("Export failed: " + error);
    return false;
  }
  return true;
}

void MainWindow::saveStore(const QString& path, int zarr_format, bool with_matrices) {
  auto annotation = std::make_shared<compute::ClusterAnnotation>();
  annotation->labels = labels_;
  annotation->names = names_;
  annotation->colors = colors_;
  compute_->save(path, annotation, zarr_format, with_matrices);
}

void MainWindow::setTheme(const QString& theme) {
  theme_ = theme == "light" || theme == "dark" ? theme : "system";
  QSettings().setValue("theme", theme_);
  if (theme_ == "system") {
    QApplication::setStyle(system_style_);
    QApplication::setPalette(QPalette());  // back to the platform theme's, which follows changes
  } else {
    QApplication::setStyle("Fusion");
    QPalette p = QApplication::style()->standardPalette();
    if (theme_ == "dark") {
      const QColor window(45, 45, 48), base(30, 30, 32), text(230, 230, 230);
      p.setColor(QPalette::Window, window);
      p.setColor(QPalette::WindowText, text);
      p.setColor(QPalette::Base, base);
      p.setColor(QPalette::AlternateBase, window);
      p.setColor(QPalette::Text, text);
      p.setColor(QPalette::Button, window);
      p.setColor(QPalette::ButtonText, text);
      p.setColor(QPalette::ToolTipBase, base);
      p.setColor(QPalette::ToolTipText, text);
      p.setColor(QPalette::Highlight, QColor(42, 130, 218));
      p.setColor(QPalette::HighlightedText, Qt::white);
      p.setColor(QPalette::Disabled, QPalette::Text, QColor(128, 128, 128));
      p.setColor(QPalette::Disabled, QPalette::WindowText, QColor(128, 128, 128));
      p.setColor(QPalette::Disabled, QPalette::ButtonText, QColor(128, 128, 128));
    }
    QApplication::setPalette(p);
  }
  followPalette();
}

// The viewport's background: white on a light palette, the palette's base on a dark one.
void MainWindow::followPalette() {
  const QPalette p = QApplication::palette();
  const bool dark = p.color(QPalette::Window).lightness() < 128;
  view_->setProperty("background", dark ? p.color(QPalette::Base) : QColor(Qt::white));
  view_->requestUpdate();
}

void MainWindow::changeEvent(QEvent* e) {
  // The desktop switched between light and dark: Qt updates the application palette.
  if (e->type() == QEvent::ApplicationPaletteChange || e->type() == QEvent::PaletteChange)
    followPalette();
  QMainWindow::changeEvent(e);
}

void MainWindow::dragEnterEvent(QDragEnterEvent* e) {
  if (e->mimeData()->hasUrls()) e->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* e) {
  const auto urls = e->mimeData()->urls();
  if (!urls.isEmpty() && urls.first().isLocalFile()) openStore(urls.first().toLocalFile());
}

}  // namespace orrery::app
