// A widget drawn by one paint routine, so the same picture goes to the screen and to images
// (export, tests). The dot and violin plots derive from it.
#pragma once

#include <QImage>
#include <QPainter>
#include <QWidget>

namespace orrery::app {

class PlotWidget : public QWidget {
 public:
  using QWidget::QWidget;
  QImage renderImage(QSize size) const {
    QImage image(size, QImage::Format_RGB32);
    QPainter p(&image);
    paint(p, size);
    return image;
  }

 protected:
  virtual void paint(QPainter& p, QSize size) const = 0;
  void paintEvent(QPaintEvent*) override {
    QPainter p(this);
    paint(p, size());
  }
};

}  // namespace orrery::app
