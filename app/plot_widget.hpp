// A widget drawn by one paint routine, so the same picture goes to the screen, to images (tests)
// and to figure files: PNG at a chosen resolution, SVG and PDF with text and marks as vectors.
// The dot and violin plots derive from it; right-click offers the export.
#pragma once

#include <QImage>
#include <QPainter>
#include <QWidget>

namespace orrery::app {

class PlotWidget : public QWidget {
 public:
  explicit PlotWidget(QWidget* parent = nullptr);
  QImage renderImage(QSize size) const {
    QImage image(size, QImage::Format_RGB32);
    QPainter p(&image);
    paint(p, size);
    return image;
  }
  // Writes the plot at its on-screen size in points (480 x 360 before it was shown) to `path`:
  // PNG at `dpi`, SVG or PDF, by extension. False with `error` set on failure.
  bool exportTo(const QString& path, double dpi = 300, QString* error = nullptr) const;

 protected:
  virtual void paint(QPainter& p, QSize size) const = 0;
  void paintEvent(QPaintEvent*) override {
    QPainter p(this);
    paint(p, size());
  }
};

}  // namespace orrery::app
