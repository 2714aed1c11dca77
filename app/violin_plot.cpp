#include "violin_plot.hpp"

#include <QPainter>
#include <QPainterPath>
#include <algorithm>
#include <cmath>

namespace orrery::app {

ViolinView::ViolinView(QWidget* parent) : PlotWidget(parent) {
  setMinimumSize(200, 150);
}

void ViolinView::clear() {
  title_.clear();
  density_.clear();
  median_.clear();
  names_.clear();
  colors_.clear();
  update();
}

void ViolinView::setData(const QString& title, const std::vector<float>& values,
                         const std::vector<std::int32_t>& labels,
                         const std::vector<std::string>& names,
                         const std::vector<std::string>& colors, const std::vector<bool>& hidden) {
  clear();
  title_ = title;
  if (values.size() != labels.size() || values.empty()) return;
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  bottom_ = std::min(0.0f, *lo);
  top_ = *hi > bottom_ ? *hi : bottom_ + 1;
  const double width = (top_ - bottom_) / kBins;
  // Gaussian smoothing over the bins (bandwidth ~1.5 bins), renormalised to sum to 1.
  std::vector<double> kernel;
  for (int d = -4; d <= 4; ++d) kernel.push_back(std::exp(-0.5 * d * d / (1.5 * 1.5)));
  for (std::size_t g = 0; g < names.size(); ++g) {
    if (g < hidden.size() && hidden[g]) continue;
    std::vector<double> hist(kBins, 0.0);
    std::vector<float> members;
    for (std::size_t i = 0; i < values.size(); ++i)
      if (labels[i] == static_cast<std::int32_t>(g)) {
        const int b = std::clamp(static_cast<int>((values[i] - bottom_) / width), 0, kBins - 1);
        hist[b] += 1;
        members.push_back(values[i]);
      }
    if (members.empty()) continue;
    std::vector<double> smooth(kBins, 0.0);
    double total = 0;
    for (int b = 0; b < kBins; ++b) {
      for (int d = -4; d <= 4; ++d)
        if (b + d >= 0 && b + d < kBins) smooth[b] += hist[b + d] * kernel[d + 4];
      total += smooth[b];
    }
    for (auto& v : smooth) v /= total;
    std::nth_element(members.begin(), members.begin() + members.size() / 2, members.end());
    names_.push_back(QString::fromStdString(names[g]));
    colors_.push_back(QColor(QString::fromStdString(g < colors.size() ? colors[g] : "#808080")));
    density_.push_back(std::move(smooth));
    median_.push_back(members[members.size() / 2]);
  }
  update();
}

void ViolinView::paint(QPainter& p, QSize size) const {
  p.fillRect(QRect(QPoint(0, 0), size), Qt::white);
  if (density_.empty()) {
    p.drawText(QRect(QPoint(0, 0), size), Qt::AlignCenter, "Colour by a gene to see its violins");
    return;
  }
  p.setRenderHint(QPainter::Antialiasing);
  const double left = 40, right = 8, top = 24, bottom = 40;
  const double plot_h = size.height() - top - bottom;
  const double slot = (size.width() - left - right) / static_cast<double>(density_.size());
  const auto y_of = [&](double v) {
    return top + plot_h * (1.0 - (v - bottom_) / (top_ - bottom_));
  };
  p.setPen(Qt::black);
  p.drawText(QRectF(0, 2, size.width(), top - 4), Qt::AlignCenter, title_);
  p.drawLine(QPointF(left, top), QPointF(left, top + plot_h));
  for (double v : {bottom_, (bottom_ + top_) / 2, top_})
    p.drawText(QRectF(0, y_of(v) - 8, left - 4, 16), Qt::AlignRight | Qt::AlignVCenter,
               QString::number(v, 'g', 3));
  for (std::size_t g = 0; g < density_.size(); ++g) {
    const double peak = *std::max_element(density_[g].begin(), density_[g].end());
    const double centre = left + (g + 0.5) * slot, half = 0.45 * slot;
    QPainterPath outline;
    std::vector<QPointF> right_side;
    for (int b = 0; b < kBins; ++b) {
      const double v = bottom_ + (b + 0.5) * (top_ - bottom_) / kBins;
      const double w = peak > 0 ? half * density_[g][b] / peak : 0;
      right_side.emplace_back(centre + w, y_of(v));
    }
    outline.moveTo(right_side.front());
    for (const auto& q : right_side) outline.lineTo(q);
    for (auto it = right_side.rbegin(); it != right_side.rend(); ++it)
      outline.lineTo(2 * centre - it->x(), it->y());
    outline.closeSubpath();
    p.setPen(QPen(colors_[g].darker(140), 0.8));
    p.setBrush(colors_[g]);
    p.drawPath(outline);
    p.setPen(QPen(Qt::black, 1.5));
    p.drawLine(QPointF(centre - half * 0.3, y_of(median_[g])),
               QPointF(centre + half * 0.3, y_of(median_[g])));
    p.drawText(QRectF(centre - slot / 2, top + plot_h + 4, slot, bottom - 8),
               Qt::AlignHCenter | Qt::AlignTop, names_[g]);
  }
}

}  // namespace orrery::app
