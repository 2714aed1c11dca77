// Violin plot of one gene (or obs value) by group, as scanpy's sc.pl.violin(groupby=...): per
// group a kernel density of the cells' values (Gaussian-smoothed histogram, mirrored), filled in
// the group's colour, with the median marked. Computed from the values the UI already holds.
#pragma once

#include <QImage>
#include <string>
#include <vector>
#include "plot_widget.hpp"

namespace orrery::app {

class ViolinView : public PlotWidget {
  Q_OBJECT
 public:
  static constexpr int kBins = 64;
  explicit ViolinView(QWidget* parent = nullptr);
  // `values` and `labels` per cell; groups are named and coloured ("#rrggbb"); hidden groups
  // are left out.
  void setData(const QString& title, const std::vector<float>& values,
               const std::vector<std::int32_t>& labels, const std::vector<std::string>& names,
               const std::vector<std::string>& colors, const std::vector<bool>& hidden);
  void clear();
  // Per group: density over kBins bins of [0, top] (sums to 1), the median, and the top.
  const std::vector<std::vector<double>>& densities() const { return density_; }
  const std::vector<double>& medians() const { return median_; }
  double top() const { return top_; }

 protected:
  void paint(QPainter& p, QSize size) const override;

 private:
  QString title_;
  std::vector<QString> names_;
  std::vector<QColor> colors_;
  std::vector<std::vector<double>> density_;
  std::vector<double> median_;
  double top_ = 0, bottom_ = 0;
};

}  // namespace orrery::app
