// The main window: opens a store (dialog, command line, drag and drop), runs the pipeline on
// the compute thread with progress and cancel, shows the UMAP coloured by Leiden cluster with
// a cluster list whose edits can be undone, and exports the view (PNG), tables (CSV) and the
// annotated dataset (.h5ad or .zarr).
#pragma once

#include <QAction>
#include <QComboBox>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QElapsedTimer>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMainWindow>
#include <QMenu>
#include <QPalette>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QTableWidget>
#include <QUndoStack>
#include <memory>

#include "compute_thread.hpp"
#include "dot_plot.hpp"
#include "params_panel.hpp"
#include "qc_panel.hpp"
#include "umap_view.hpp"
#include "violin_plot.hpp"

namespace orrery::app {

// The Clusters list's item role holding a category's number of cells (drawn after its name).
constexpr int kClusterSizeRole = Qt::UserRole + 1;

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(QVulkanInstance* vulkan, QWidget* parent = nullptr);
  ~MainWindow() override;

  // `text_layout`: how a text table's rows are read (guessed unless said).
  void openStore(const QString& path, io::TextLayout text_layout = io::TextLayout::Guess);
  UmapView* umapView() const { return view_; }
  ComputeThread* computeThread() const { return compute_.get(); }
  std::shared_ptr<const RunSnapshot> snapshot() const { return snapshot_; }
  bool isRunning() const { return running_; }
  std::shared_ptr<const std::vector<bool>> selection() const { return selection_; }
  const std::vector<std::string>& clusterNames() const { return names_; }
  const std::vector<std::string>& clusterColors() const { return colors_; }
  const std::vector<std::int32_t>& clusterLabels() const { return labels_; }
  std::shared_ptr<const std::vector<float>> geneValues() const { return gene_values_; }
  // The categorical obs column the view is coloured by, if any.
  std::shared_ptr<const ObsCategories> obsCategories() const { return obs_categories_; }
  QLineEdit* geneSearch() const { return search_; }
  QListWidget* clusterList() const { return clusters_; }
  QUndoStack* undoStack() const { return undo_; }
  // Stores opened before, most recent first (QSettings "recentFiles", at most 10).
  QStringList recentFiles() const;
  QMenu* recentMenu() const { return recent_menu_; }
  // Picking: the cell last found under the pointer (-1: none) and its description.
  std::int64_t hoveredCell() const { return hovered_cell_; }
  QString describeCell(std::int64_t cell) const;

  // The cluster annotation (names, colours, hidden flags, each cell's category), as undo/redo
  // keeps it. Labels are shared between states that did not change them.
  struct Annotation {
    std::vector<std::string> names, colors;
    std::vector<bool> hidden;
    std::shared_ptr<const std::vector<std::int32_t>> labels;
  };
  Annotation annotation();
  void applyAnnotation(const Annotation& a);
  QTableWidget* markerTable() const { return markers_; }
  // Shows only the markers whose gene contains `gene_part` (case-insensitive), with adjusted
  // p <= max_pval_adj and log2 fold change >= min_logfc (the Markers dock's filter row).
  void setMarkerFilter(const QString& gene_part, double max_pval_adj = 1.0,
                       double min_logfc = -1e9);
  QcPanel* qcPanel() const { return qc_; }
  ParamsPanel* paramsPanel() const { return params_panel_; }
  DotPlotView* dotPlot() const { return dot_plot_; }
  ViolinView* violinPlot() const { return violin_; }
  QString storeSummary() const { return store_info_->toPlainText(); }
  // The status bar's stage text (stage, then the estimated time left once known).
  QString statusText() const { return stage_label_->text(); }
  QComboBox* embeddingBox() const { return embedding_box_; }
  // The embedding drawn: "" for this run's UMAP, else the input's obsm key.
  QString embedding() const { return embedding_; }
  // The points drawn, per kept cell in cell order (x, y).
  std::shared_ptr<const std::vector<float>> embeddingXy() const { return xy_; }
  const compute::PipelineParams& params() const { return params_; }

 public slots:
  void cancelRun();
  bool exportPng(const QString& path, int scale = 2);
  // A figure of the whole embedding (.png, .svg or .pdf by extension): title, axes and legend as
  // vectors, the points as an image at `dpi`.
  bool exportFigure(const QString& path, double dpi = 300);
  // Writes the results (with the annotation edits) to an .h5ad or a .zarr store of `zarr_format`.
  // Without `with_matrices`, the results only: no X, layers or raw (an AnnData whose X is None).
  void saveStore(const QString& path, int zarr_format = 2, bool with_matrices = true);
  void setSelection(std::shared_ptr<const std::vector<bool>> selection);
  void compareSelection();
  // "Selection A vs B": the current selection (B) against a group set earlier (A).
  void setGroupA(std::shared_ptr<const std::vector<bool>> cells);
  void compareSelectionWithA();
  // Dot plot of the top `per_cluster` markers of each cluster (at most 40 genes) by the current
  // categories (edits included), computed on the compute thread.
  void showDotPlot(int per_cluster = 3);
  // Draws the kept cells on the input's obsm `key` (read on the compute thread) instead of this
  // run's UMAP; "" goes back to the UMAP. Colours, selection and edits stay.
  void showEmbedding(const QString& key);
  // Colours the UMAP by a gene's expression (viridis, 1st-99th percentile); empty: by cluster.
  void colorByGene(const QString& gene);
  // Adds a table's cell annotations (.csv/.tsv) to obs and colours by its first column.
  void importAnnotations(const QString& table);
  // Cluster annotation edits (written by saveStore as the obs "leiden" categorical and colours).
  void renameCluster(int cluster, const QString& name);
  void recolorCluster(int cluster, const QColor& color);
  void setClusterHidden(int cluster, bool hidden);
  void mergeClusters(std::vector<int> clusters);  // into the first
  // Moves the selected cells into a new category named `name` (a fresh colour); returns its index.
  int labelSelection(const QString& name);
  // The categorical obs column the view is coloured by becomes the editable labels (its
  // categories, colours and each cell's code; cells with a missing value keep no label): one
  // undoable edit. False when the view is not coloured by one.
  bool useCategoriesAsLabels();
  // Tables as CSV: the markers shown, each kept cell's cluster, the selected cells.
  bool exportMarkersCsv(const QString& path) const;
  bool exportClustersCsv(const QString& path) const;
  bool exportSelectionCsv(const QString& path) const;
  // QC metrics of every cell of the store and whether it passes the QC panel's thresholds,
  // written on the compute thread (ComputeWorker::saved or failed when done).
  void exportQcCsv(const QString& path);

 signals:
  void runFinished();
  void runFailed(const QString& message);
  // A table's cell annotations were added to obs as these columns; `summary`: what matched.
  void annotationsImported(const QStringList& columns, const QString& summary);
  void runCancelled();
  void runProgress(const QString& stage, double fraction);
  void selectionChanged(long long n_selected);
  void selectionMarkersShown();
  void dotPlotShown();
  void geneShown(const QString& gene);
  // The store's own embedding drawn while its pipeline runs, coloured by `column` ("" if none).
  void previewShown(const QString& embedding, const QString& column);
  void embeddingShown(const QString& key);

 public:
  // "system" follows the desktop's palette (and its changes); "light" and "dark" are Fusion
  // palettes. The viewport's background follows. Remembered in the settings.
  void setTheme(const QString& theme);
  QString theme() const { return theme_; }

 protected:
  void changeEvent(QEvent* e) override;
  void dragEnterEvent(QDragEnterEvent* e) override;
  void dropEvent(QDropEvent* e) override;

 private:
  void buildMenus();
  void followPalette();
  QDockWidget* addDock(const QString& title, const char* name, QWidget* widget,
                       Qt::DockWidgetArea area);
  void setRunning(bool running);
  // `preview`: a store just opened, whose stored embedding is drawn while it runs.
  void startRun(bool preview = false);
  void showSnapshot(std::shared_ptr<const RunSnapshot> snap);
  void showPreview(std::shared_ptr<const StoredPreview> preview);
  // Makes `xy` (kept cells) the drawn embedding, refits the camera and redraws.
  void setEmbedding(const QString& key, std::shared_ptr<const std::vector<float>> xy);
  void showMarkers(int cluster);
  void fillMarkerTable(const std::vector<MarkerRow>& rows);
  void applyMarkerFilter();
  void fillClusterList();
  void redraw();
  void rememberRecent(const QString& path);
  void fillRecentMenu();
  // The points of the view (whole embedding) rendered offscreen at `pixels`.
  QImage renderPoints(QSize pixels, float point_scale) const;
  // Pushes an undoable edit from `before` to the current annotation.
  void recordEdit(const QString& text, Annotation before);

  std::unique_ptr<ComputeThread> compute_;
  UmapView* view_ = nullptr;
  QListWidget* clusters_ = nullptr;
  QTableWidget* markers_ = nullptr;
  QLineEdit* marker_gene_filter_ = nullptr;
  QLineEdit* marker_max_p_ = nullptr;  // empty: any
  QDoubleSpinBox* marker_min_lfc_ = nullptr;
  QcPanel* qc_ = nullptr;
  ParamsPanel* params_panel_ = nullptr;
  DotPlotView* dot_plot_ = nullptr;
  QDockWidget* dot_dock_ = nullptr;
  ViolinView* violin_ = nullptr;
  QPlainTextEdit* store_info_ = nullptr;
  QDockWidget* markers_dock_ = nullptr;
  QAction* compare_action_ = nullptr;
  // File > Reopen the table transposed: enabled while a text table is open.
  QAction* transpose_action_ = nullptr;
  // File > Import cell annotations: enabled while a result is on screen.
  QAction* import_action_ = nullptr;
  // The colour-by box's completions: categorical and numeric obs columns, then kept genes.
  void setSearchNames(const QStringList& categorical, const QStringList& numeric);
  // The summary's tooltip: whether the kept counts are in memory (`mib` > 0) or read.
  void setCountsTooltip(double mib);
  io::TextLayout text_layout_ = io::TextLayout::Guess;       // asked for path_
  io::TextLayout text_layout_read_ = io::TextLayout::Guess;  // how the table was read
  QString layout_announced_;  // the table and reading the status bar last described
  QAction* set_a_action_ = nullptr;
  QAction* compare_a_action_ = nullptr;
  std::shared_ptr<const std::vector<bool>> group_a_;
  bool compared_to_a_ = false;
  QString label_compared_;  // the label whose markers vs the rest are being computed, or ""
  QString eta_stage_;
  QElapsedTimer eta_clock_;
  std::shared_ptr<const std::vector<bool>> selection_;
  std::vector<std::int32_t> labels_;
  std::shared_ptr<const std::vector<std::int32_t>> labels_state_;  // labels_ as last shared
  QUndoStack* undo_ = nullptr;
  QMenu* recent_menu_ = nullptr;
  std::vector<std::string> names_, colors_;
  std::vector<bool> hidden_;
  QString gene_;  // colouring gene, empty for clusters
  std::shared_ptr<const std::vector<float>> gene_values_;
  std::shared_ptr<const ObsCategories> obs_categories_;
  QLineEdit* search_ = nullptr;
  bool filling_ = false;
  int pending_runs_ = 0;
  QString path_;
  compute::PipelineParams params_;
  QLabel* stage_label_ = nullptr;
  QLabel* summary_label_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QPushButton* cancel_ = nullptr;
  std::shared_ptr<const RunSnapshot> snapshot_;
  bool running_ = false;
  std::int64_t hovered_cell_ = -1;
  std::vector<glm::vec2> cell_xy_;                // the embedding in cell order (lasso and picking)
  std::shared_ptr<const std::vector<float>> xy_;  // the same, as drawn
  QString embedding_;                             // "" = this run's UMAP, else an obsm key
  QString pending_embedding_;   // the embedding last asked for (replies to others are stale)
  bool layout_fitted_ = false;  // the run's first layout step has refit the camera
  QComboBox* embedding_box_ = nullptr;
  QString theme_ = "system";
  QString system_style_;
};

}  // namespace orrery::app
