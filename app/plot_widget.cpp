#include "plot_widget.hpp"

#include <QAction>
#include <QFileDialog>
#include <QMessageBox>

#include "render/figure.hpp"

namespace orrery::app {

PlotWidget::PlotWidget(QWidget* parent) : QWidget(parent) {
  auto* action = new QAction("Export figure (PNG, SVG, PDF)...", this);
  connect(action, &QAction::triggered, this, [this] {
    const QString path = QFileDialog::getSaveFileName(
        this, "Export figure", windowTitle().isEmpty() ? "plot.pdf" : windowTitle() + ".pdf",
        "PDF (*.pdf);;SVG (*.svg);;PNG, 300 dpi (*.png)");
    QString error;
    if (!path.isEmpty() && !exportTo(path, 300, &error))
      QMessageBox::warning(this, "Orrery", error);
  });
  addAction(action);
  setContextMenuPolicy(Qt::ActionsContextMenu);
}

bool PlotWidget::exportTo(const QString& path, double dpi, QString* error) const {
  render::FigureOptions options;
  const bool shown = width() >= 100 && height() >= 100;
  options.size_pt = QSizeF(shown ? size() : QSize(480, 360));
  options.dpi = dpi;
  return render::export_painting(
      path, options, windowTitle(),
      [this](QPainter& p, const QSizeF& page) { paint(p, page.toSize()); }, error);
}

}  // namespace orrery::app
