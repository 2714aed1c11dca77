#include "dot_plot.hpp"

#include <QPainter>
#include <algorithm>
#include <cmath>

namespace orrery::app {

namespace {
constexpr double kLeft = 110, kTop = 90, kMargin = 8;
}  // namespace

DotPlotView::DotPlotView(QWidget* parent) : PlotWidget(parent) {
  setMinimumSize(200, 150);
  setToolTip(
      "Dot size: fraction of the group's cells expressing the gene; colour: mean "
      "expression, scaled per gene");
}

void DotPlotView::setData(std::shared_ptr<const DotPlotData> data) {
  data_ = std::move(data);
  update();
}

double DotPlotView::cellSize(QSize size) const {
  if (!data_ || data_->genes.isEmpty() || data_->groups.isEmpty()) return 0;
  const double w = (size.width() - kLeft - kMargin) / data_->genes.size();
  const double h = (size.height() - kTop - kMargin) / data_->groups.size();
  return std::clamp(std::min(w, h), 4.0, 36.0);
}

QPointF DotPlotView::dotCentre(int group, int gene, QSize size) const {
  const double cell = cellSize(size);
  return {kLeft + (gene + 0.5) * cell, kTop + (group + 0.5) * cell};
}

double DotPlotView::dotRadius(int group, int gene, QSize size) const {
  if (!data_) return 0;
  return 0.45 * cellSize(size) * std::sqrt(std::clamp(data_->at_fraction(group, gene), 0.0, 1.0));
}

QColor DotPlotView::colourFor(double t) {
  t = std::clamp(t, 0.0, 1.0);
  // White (low) to dark red (high), like matplotlib's "Reds" ends.
  const QColor lo(255, 245, 240), hi(103, 0, 13);
  return QColor::fromRgbF(lo.redF() + t * (hi.redF() - lo.redF()),
                          lo.greenF() + t * (hi.greenF() - lo.greenF()),
                          lo.blueF() + t * (hi.blueF() - lo.blueF()));
}

void DotPlotView::paint(QPainter& p, QSize size) const {
  p.fillRect(QRect(QPoint(0, 0), size), Qt::white);
  if (!data_ || data_->genes.isEmpty() || data_->groups.isEmpty()) {
    p.drawText(QRect(QPoint(0, 0), size), Qt::AlignCenter, "Markers → Dot plot (Ctrl+D)");
    return;
  }
  p.setRenderHint(QPainter::Antialiasing);
  const double cell = cellSize(size);
  const int n_genes = static_cast<int>(data_->genes.size());
  const int n_groups = static_cast<int>(data_->groups.size());
  QFont font = p.font();
  font.setPixelSize(std::clamp(static_cast<int>(cell * 0.45), 7, 12));
  p.setFont(font);
  p.setPen(Qt::black);
  for (int g = 0; g < n_groups; ++g)
    p.drawText(QRectF(2, kTop + g * cell, kLeft - 8, cell), Qt::AlignRight | Qt::AlignVCenter,
               data_->groups[g]);
  for (int k = 0; k < n_genes; ++k) {
    p.save();
    p.translate(kLeft + (k + 0.5) * cell + font.pixelSize() / 2.0, kTop - 4);
    p.rotate(-60);
    p.drawText(QPointF(0, 0), data_->genes[k]);
    p.restore();
  }
  p.setPen(QColor(220, 220, 220));
  p.drawRect(QRectF(kLeft, kTop, n_genes * cell, n_groups * cell));
  for (int k = 0; k < n_genes; ++k) {
    double top = 0;
    for (int g = 0; g < n_groups; ++g) top = std::max(top, data_->at_mean(g, k));
    for (int g = 0; g < n_groups; ++g) {
      const double r = dotRadius(g, k, size);
      if (r <= 0) continue;
      p.setPen(QPen(QColor(80, 80, 80), 0.5));
      p.setBrush(colourFor(top > 0 ? data_->at_mean(g, k) / top : 0));
      p.drawEllipse(dotCentre(g, k, size), r, r);
    }
  }
}

}  // namespace orrery::app
