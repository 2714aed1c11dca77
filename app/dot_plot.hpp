// A dot plot of genes by group, as scanpy's sc.pl.dotplot: dot area = fraction of the group's
// cells expressing the gene, colour = mean expression scaled per gene (standard_scale="var"),
// white to dark red. Drawn by one routine for the widget and for images.
#pragma once

#include <QImage>
#include <memory>

#include "compute_thread.hpp"
#include "plot_widget.hpp"

namespace orrery::app {

class DotPlotView : public PlotWidget {
  Q_OBJECT
 public:
  explicit DotPlotView(QWidget* parent = nullptr);
  void setData(std::shared_ptr<const DotPlotData> data);
  std::shared_ptr<const DotPlotData> data() const { return data_; }
  // The plot drawn at `size` (e.g. for export and tests).
  // Where the dot of (group, gene) is centred, and its radius, in a plot of `size`.
  QPointF dotCentre(int group, int gene, QSize size) const;
  double dotRadius(int group, int gene, QSize size) const;
  // The colour for a mean expression scaled to [0, 1].
  static QColor colourFor(double scaled);

 protected:
  void paint(QPainter& p, QSize size) const override;

 private:
  double cellSize(QSize size) const;
  std::shared_ptr<const DotPlotData> data_;
};

}  // namespace orrery::app
