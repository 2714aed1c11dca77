#include "qc_panel.hpp"

#include <QMouseEvent>
#include <QPainter>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <limits>

namespace orrery::app {
namespace {

constexpr double kOpen = std::numeric_limits<double>::quiet_NaN();
constexpr int kBins = 60;

}  // namespace

HistogramView::HistogramView(QString title, bool log_x, QWidget* parent)
    : PlotWidget(parent), title_(std::move(title)), log_x_(log_x), low_(kOpen), high_(kOpen) {
  setMinimumHeight(90);
  setMouseTracking(true);
  setWindowTitle(title_);  // the exported figure's title and file name
  setToolTip(title_ +
             ": drag the red lines to set the minimum and maximum kept; right-click for a log "
             "or linear axis, or to export the histogram");
  log_action_ = new QAction("Log scale", this);
  log_action_->setCheckable(true);
  log_action_->setChecked(log_x_);
  connect(log_action_, &QAction::toggled, this, &HistogramView::setLogScale);
  insertAction(actions().value(0), log_action_);
}

void HistogramView::setLogScale(bool log_x) {
  if (log_x == log_x_) return;
  log_x_ = log_x;
  const QSignalBlocker quiet(log_action_);
  log_action_->setChecked(log_x);
  setValues(std::move(values_));  // re-binned on the new axis
}

double HistogramView::transform(double v) const {
  return log_x_ ? std::log10(1.0 + std::max(0.0, v)) : v;
}
double HistogramView::inverse(double t) const {
  return log_x_ ? std::pow(10.0, t) - 1.0 : t;
}

void HistogramView::setValues(std::vector<double> values) {
  values_ = std::move(values);
  lo_t_ = std::numeric_limits<double>::max();
  hi_t_ = std::numeric_limits<double>::lowest();
  for (double v : values_)
    if (std::isfinite(v)) {
      lo_t_ = std::min(lo_t_, transform(v));
      hi_t_ = std::max(hi_t_, transform(v));
    }
  if (!(hi_t_ > lo_t_)) {
    lo_t_ = 0;
    hi_t_ = 1;
  }
  bins_.assign(kBins, 0);
  for (double v : values_)
    if (std::isfinite(v)) {
      const int b = static_cast<int>((transform(v) - lo_t_) / (hi_t_ - lo_t_) * kBins);
      ++bins_[std::clamp(b, 0, kBins - 1)];
    }
  update();
}

void HistogramView::setRange(double low, double high) {
  low_ = low;
  high_ = high;
  update();
  emit rangeChanged();
}

QRectF HistogramView::plotRect(QSize size) {
  return QRectF(8, 18, size.width() - 16, size.height() - 26);
}

double HistogramView::valueAt(int x) const {
  const QRectF r = plotRect();
  const double t = lo_t_ + (x - r.left()) / r.width() * (hi_t_ - lo_t_);
  return inverse(std::clamp(t, lo_t_, hi_t_));
}

int HistogramView::pixelOf(double value) const {
  const QRectF r = plotRect();
  return static_cast<int>(
      std::lround(r.left() + (transform(value) - lo_t_) / (hi_t_ - lo_t_) * r.width()));
}

void HistogramView::paint(QPainter& p, QSize size) const {
  p.setRenderHint(QPainter::Antialiasing);
  const QRectF r = plotRect(size);
  auto x_of = [&](double v) {
    return r.left() + (transform(v) - lo_t_) / (hi_t_ - lo_t_) * r.width();
  };
  p.setPen(palette().color(QPalette::WindowText));
  p.drawText(QRectF(8, 0, size.width() - 16, 16), Qt::AlignLeft | Qt::AlignVCenter,
             title_ + (log_x_ ? "  (log scale)" : ""));
  const int peak = bins_.empty() ? 1 : std::max(1, *std::max_element(bins_.begin(), bins_.end()));
  const double w = r.width() / kBins;
  for (int b = 0; b < static_cast<int>(bins_.size()); ++b) {
    const double h = r.height() * bins_[b] / peak;
    const double centre = inverse(lo_t_ + (b + 0.5) / kBins * (hi_t_ - lo_t_));
    const bool kept =
        (std::isnan(low_) || centre >= low_) && (std::isnan(high_) || centre <= high_);
    p.fillRect(QRectF(r.left() + b * w, r.bottom() - h, w - 1, h),
               kept ? palette().color(QPalette::Highlight) : palette().color(QPalette::Mid));
  }
  p.setPen(QPen(QColor(220, 40, 40), 2));
  for (double v : {low_, high_})
    if (!std::isnan(v)) p.drawLine(QPointF(x_of(v), r.top()), QPointF(x_of(v), r.bottom()));
}

void HistogramView::mousePressEvent(QMouseEvent* e) {
  const int x = static_cast<int>(e->position().x());
  const int dl = std::isnan(low_) ? 1 << 20 : std::abs(x - pixelOf(low_));
  const int dh = std::isnan(high_) ? 1 << 20 : std::abs(x - pixelOf(high_));
  // Grab the nearer line, or set a new one on the side of the click.
  if (dl <= dh && dl < 8)
    dragging_ = 1;
  else if (dh < 8)
    dragging_ = 2;
  else
    dragging_ = x < width() / 2 ? 1 : 2;
  mouseMoveEvent(e);
}

void HistogramView::mouseMoveEvent(QMouseEvent* e) {
  if (!dragging_ || !(e->buttons() & Qt::LeftButton)) return;
  const double v = valueAt(static_cast<int>(e->position().x()));
  if (dragging_ == 1)
    setRange(std::isnan(high_) ? v : std::min(v, high_), high_);
  else
    setRange(low_, std::isnan(low_) ? v : std::max(v, low_));
}

void HistogramView::mouseReleaseEvent(QMouseEvent*) {
  dragging_ = 0;
}

QcPanel::QcPanel(QWidget* parent) : QWidget(parent) {
  auto* layout = new QVBoxLayout(this);
  genes_ = new HistogramView("genes per cell (n_genes_by_counts)", false, this);
  counts_ = new HistogramView("counts per cell (total_counts)", true, this);
  mito_ = new HistogramView("% mitochondrial counts", false, this);
  kept_label_ = new QLabel(this);
  apply_ = new QPushButton("Apply thresholds and re-run", this);
  apply_->setToolTip("Re-run filtering and every later stage with these thresholds (Ctrl+R)");
  apply_->setShortcut(QKeySequence("Ctrl+R"));
  apply_->setEnabled(false);
  for (QWidget* w : std::initializer_list<QWidget*>{genes_, counts_, mito_, kept_label_, apply_})
    layout->addWidget(w);
  layout->addStretch();
  for (HistogramView* v : {genes_, counts_, mito_})
    connect(v, &HistogramView::rangeChanged, this, &QcPanel::updateCount);
  connect(apply_, &QPushButton::clicked, this, &QcPanel::applyRequested);
}

void QcPanel::setMetrics(std::shared_ptr<const compute::QcMetrics> metrics,
                         const compute::PipelineParams& params) {
  metrics_ = std::move(metrics);
  const auto& c = metrics_->cells;
  genes_->setValues(std::vector<double>(c.n_genes_by_counts.begin(), c.n_genes_by_counts.end()));
  counts_->setValues(c.total_counts);
  mito_->setValues(c.pct_counts_qc);
  genes_->setRange(params.min_genes, params.max_genes > 0 ? params.max_genes : kOpen);
  counts_->setRange(params.min_counts > 0 ? params.min_counts : kOpen,
                    params.max_counts > 0 ? params.max_counts : kOpen);
  mito_->setRange(kOpen, params.max_pct_qc > 0 ? params.max_pct_qc : kOpen);
  apply_->setEnabled(true);
  updateCount();
}

compute::PipelineParams QcPanel::applyTo(compute::PipelineParams p) const {
  p.min_genes = std::isnan(genes_->low()) ? 0 : static_cast<int>(std::ceil(genes_->low()));
  p.max_genes = std::isnan(genes_->high()) ? 0 : static_cast<int>(std::floor(genes_->high()));
  p.max_pct_qc = std::isnan(mito_->high()) ? 0 : mito_->high();
  p.min_counts = std::isnan(counts_->low()) ? 0 : counts_->low();
  p.max_counts = std::isnan(counts_->high()) ? 0 : counts_->high();
  return p;
}

void QcPanel::updateCount() {
  if (!metrics_) return;
  const compute::PipelineParams p = applyTo({});
  kept_ = compute::count_kept_cells(metrics_->cells, p);
  const auto total = static_cast<std::int64_t>(metrics_->cells.total_counts.size());
  kept_label_->setText(QString("%1 of %2 cells kept (%3%)")
                           .arg(kept_)
                           .arg(total)
                           .arg(total ? 100.0 * kept_ / total : 0.0, 0, 'f', 1));
}

}  // namespace orrery::app
