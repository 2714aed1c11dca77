// The main window: opens a store (dialog, command line, drag and drop), runs the pipeline on
// the compute thread with progress and cancel, shows the UMAP coloured by Leiden cluster with
// a cluster list, and exports the view (PNG) and the annotated dataset (.h5ad).
#pragma once

#include <QAction>
#include <QDockWidget>
#include <QLabel>
#include <QListWidget>
#include <QMainWindow>
#include <QProgressBar>
#include <QPushButton>
#include <QTableWidget>
#include <memory>

#include "compute_thread.hpp"
#include "qc_panel.hpp"
#include "umap_view.hpp"

namespace orrery::app {

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(QVulkanInstance* vulkan, QWidget* parent = nullptr);
  ~MainWindow() override;

  void openStore(const QString& path);
  UmapView* umapView() const { return view_; }
  ComputeThread* computeThread() const { return compute_.get(); }
  std::shared_ptr<const RunSnapshot> snapshot() const { return snapshot_; }
  bool isRunning() const { return running_; }
  std::shared_ptr<const std::vector<bool>> selection() const { return selection_; }
  QListWidget* clusterList() const { return clusters_; }
  QTableWidget* markerTable() const { return markers_; }
  QcPanel* qcPanel() const { return qc_; }
  const compute::PipelineParams& params() const { return params_; }

 public slots:
  void cancelRun();
  bool exportPng(const QString& path, int scale = 2);
  void saveH5ad(const QString& path);
  void setSelection(std::shared_ptr<const std::vector<bool>> selection);
  void compareSelection();

 signals:
  void runFinished();
  void runFailed(const QString& message);
  void runCancelled();
  void runProgress(const QString& stage, double fraction);
  void selectionChanged(long long n_selected);
  void selectionMarkersShown();

 protected:
  void dragEnterEvent(QDragEnterEvent* e) override;
  void dropEvent(QDropEvent* e) override;

 private:
  void buildMenus();
  void setRunning(bool running);
  void startRun();
  void showSnapshot(std::shared_ptr<const RunSnapshot> snap);
  void showMarkers(int cluster);
  void fillMarkerTable(const std::vector<MarkerRow>& rows);

  std::unique_ptr<ComputeThread> compute_;
  UmapView* view_ = nullptr;
  QListWidget* clusters_ = nullptr;
  QTableWidget* markers_ = nullptr;
  QcPanel* qc_ = nullptr;
  QDockWidget* markers_dock_ = nullptr;
  QAction* compare_action_ = nullptr;
  std::shared_ptr<const std::vector<bool>> selection_;
  QString path_;
  compute::PipelineParams params_;
  QLabel* stage_label_ = nullptr;
  QLabel* summary_label_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QPushButton* cancel_ = nullptr;
  std::shared_ptr<const RunSnapshot> snapshot_;
  bool running_ = false;
};

}  // namespace orrery::app
