// The QC panel: histograms of genes per cell, counts per cell and percent mitochondrial counts
// with draggable minimum/maximum thresholds, a live count of the cells kept, and Apply, which
// re-runs the analysis with the new thresholds (reusing the QC pass).
#pragma once

#include <QAction>
#include <QLabel>
#include <QPushButton>
#include <QWidget>
#include <memory>
#include <vector>

#include "compute/pipeline.hpp"
#include "plot_widget.hpp"

namespace orrery::app {

// One metric's histogram with a [low, high] window; NaN bounds mean "no bound". Right-click:
// log or linear axis, and the figure export every plot has (PlotWidget).
class HistogramView : public PlotWidget {
  Q_OBJECT
 public:
  HistogramView(QString title, bool log_x, QWidget* parent = nullptr);
  void setValues(std::vector<double> values);
  void setRange(double low, double high);  // NaN: open
  // A log10(1 + x) axis or a linear one (right-click toggles it); thresholds stay.
  void setLogScale(bool log_x);
  bool logScale() const { return log_x_; }
  double low() const { return low_; }
  double high() const { return high_; }
  QSize sizeHint() const override { return {320, 110}; }
  // For tests: the x pixel of a value and back.
  double valueAt(int x) const;
  int pixelOf(double value) const;

 signals:
  void rangeChanged();

 protected:
  void paint(QPainter& p, QSize size) const override;
  void mousePressEvent(QMouseEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mouseReleaseEvent(QMouseEvent*) override;

 private:
  QRectF plotRect() const { return plotRect(size()); }
  static QRectF plotRect(QSize size);
  double transform(double v) const;
  double inverse(double t) const;

  QString title_;
  bool log_x_;
  QAction* log_action_ = nullptr;
  std::vector<double> values_;
  std::vector<int> bins_;
  double lo_t_ = 0, hi_t_ = 1;  // transformed data range
  double low_, high_;
  int dragging_ = 0;  // 1 low, 2 high
};

class QcPanel : public QWidget {
  Q_OBJECT
 public:
  explicit QcPanel(QWidget* parent = nullptr);
  void setMetrics(std::shared_ptr<const compute::QcMetrics> metrics,
                  const compute::PipelineParams& params);
  // Thresholds as now set in the panel, applied to `params`.
  compute::PipelineParams applyTo(compute::PipelineParams params) const;
  std::int64_t keptCells() const { return kept_; }
  HistogramView* genesView() const { return genes_; }
  HistogramView* countsView() const { return counts_; }
  HistogramView* mitoView() const { return mito_; }
  QPushButton* applyButton() const { return apply_; }

 signals:
  void applyRequested();

 private:
  void updateCount();

  std::shared_ptr<const compute::QcMetrics> metrics_;
  HistogramView* genes_;
  HistogramView* counts_;
  HistogramView* mito_;
  QLabel* kept_label_;
  QPushButton* apply_;
  std::int64_t kept_ = 0;
};

}  // namespace orrery::app
