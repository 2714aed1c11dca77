#include "figure.hpp"

#include <QFileInfo>
#include <QFont>
#include <QFontMetricsF>
#include <QPageSize>
#include <QPainter>
#include <QPainterPath>
#include <QPdfWriter>
#include <QSvgGenerator>
#include <algorithm>
#include <cmath>
#include <functional>

namespace orrery::render {

namespace {

// Page layout, in points: the plot takes the left part, the legend the right.
struct Layout {
  QRectF title, plot, legend;
};

Layout layout(const QSizeF& page, bool has_legend) {
  const double margin = 12, title_h = 22;
  const double legend_w = has_legend ? std::min(150.0, page.width() * 0.3) : 0;
  Layout l;
  l.title = QRectF(margin, margin, page.width() - 2 * margin, title_h);
  const double top = margin + title_h + 4;
  const double avail_w = page.width() - 2 * margin - legend_w;
  const double avail_h = page.height() - top - margin;
  l.plot = QRectF(margin, top, std::max(1.0, avail_w), std::max(1.0, avail_h));
  l.legend = QRectF(margin + avail_w + 6, top, std::max(0.0, legend_w - 6), avail_h);
  return l;
}

}  // namespace

QSize point_layer_pixels(const FigureOptions& o) {
  const QRectF plot = layout(o.size_pt, true).plot;
  const double scale = o.dpi / 72.0;
  return {std::max(1, static_cast<int>(std::lround(plot.width() * scale))),
          std::max(1, static_cast<int>(std::lround(plot.height() * scale)))};
}

void paint_figure(QPainter& p, const QSizeF& page, const FigureContent& c) {
  const Layout l = layout(page, !c.legend.empty());
  p.setRenderHint(QPainter::Antialiasing);
  p.setRenderHint(QPainter::SmoothPixmapTransform);
  p.fillRect(QRectF(QPointF(0, 0), page), Qt::white);

  // Layout units are points, whatever the device: font sizes are given in those units (pixel
  // sizes of the painter's coordinate system), not in the device's points.
  QFont title_font("DejaVu Sans");
  title_font.setPixelSize(12);
  p.setFont(title_font);
  p.setPen(Qt::black);
  p.drawText(l.title, Qt::AlignHCenter | Qt::AlignVCenter, c.title);

  // The point layer, centred in the plot area at its own aspect ratio.
  if (!c.points.isNull()) {
    QSizeF s = QSizeF(c.points.size()).scaled(l.plot.size(), Qt::KeepAspectRatio);
    const QRectF target(l.plot.center() - QPointF(s.width() / 2, s.height() / 2), s);
    p.drawImage(target, c.points);
  }

  // scanpy-style axis arrows in the lower-left corner, labelled.
  QFont small("DejaVu Sans");
  small.setPixelSize(8);
  p.setFont(small);
  const double arrow = std::min(l.plot.width(), l.plot.height()) * 0.15;
  const QPointF origin = l.plot.bottomLeft() + QPointF(4, -4);
  QPen axis(Qt::black, 0.8);
  p.setPen(axis);
  p.drawLine(origin, origin + QPointF(arrow, 0));
  p.drawLine(origin, origin - QPointF(0, arrow));
  QPainterPath heads;
  heads.moveTo(origin + QPointF(arrow, 0));
  heads.lineTo(origin + QPointF(arrow - 4, -2.5));
  heads.lineTo(origin + QPointF(arrow - 4, 2.5));
  heads.closeSubpath();
  heads.moveTo(origin - QPointF(0, arrow));
  heads.lineTo(origin - QPointF(2.5, arrow - 4));
  heads.lineTo(origin - QPointF(-2.5, arrow - 4));
  heads.closeSubpath();
  p.fillPath(heads, Qt::black);
  p.drawText(QRectF(origin.x() + 2, origin.y() - 12, arrow, 11), Qt::AlignLeft | Qt::AlignBottom,
             c.x_label);
  p.save();
  p.translate(origin.x() - 2, origin.y() - 2);
  p.rotate(-90);
  p.drawText(QRectF(0, -12, arrow, 11), Qt::AlignLeft | Qt::AlignBottom, c.y_label);
  p.restore();

  // Legend: a round swatch and the name per category, in columns that fit the height.
  if (!c.legend.empty()) {
    const QFontMetricsF fm(small);
    const double row = std::max(fm.height() + 2, 10.0);
    double y = l.legend.top();
    if (!c.legend_title.isEmpty()) {
      p.setPen(Qt::black);
      p.drawText(QRectF(l.legend.left(), y, l.legend.width(), row),
                 Qt::AlignLeft | Qt::AlignVCenter, c.legend_title);
      y += row;
    }
    for (const auto& [name, colour] : c.legend) {
      if (y + row > l.legend.bottom()) break;
      p.setPen(Qt::NoPen);
      p.setBrush(colour);
      p.drawEllipse(QRectF(l.legend.left(), y + row / 2 - 3, 6, 6));
      p.setPen(Qt::black);
      p.drawText(QRectF(l.legend.left() + 10, y, l.legend.width() - 10, row),
                 Qt::AlignLeft | Qt::AlignVCenter,
                 fm.elidedText(name, Qt::ElideRight, l.legend.width() - 10));
      y += row;
    }
  }
}

bool export_painting(const QString& path, const FigureOptions& o, const QString& title,
                     const std::function<void(QPainter&, const QSizeF&)>& paint, QString* error) {
  const QString ext = QFileInfo(path).suffix().toLower();
  auto fail = [&](const QString& why) {
    if (error) *error = why;
    return false;
  };
  if (o.size_pt.width() < 36 || o.size_pt.height() < 36 || !(o.dpi >= 36 && o.dpi <= 2400))
    return fail("figure size must be at least 0.5 inch and resolution 36-2400 dpi");
  if (ext == "svg") {
    QSvgGenerator svg;
    svg.setFileName(path);
    svg.setSize(o.size_pt.toSize());
    svg.setViewBox(QRectF(QPointF(0, 0), o.size_pt));
    svg.setResolution(72);  // one SVG unit = one point
    svg.setTitle(title);
    svg.setDescription("Orrery figure");
    QPainter p;
    if (!p.begin(&svg)) return fail("cannot write " + path);
    paint(p, o.size_pt);
    return p.end() ? true : fail("cannot write " + path);
  }
  if (ext == "pdf") {
    QPdfWriter pdf(path);
    pdf.setPageSize(QPageSize(o.size_pt, QPageSize::Point));
    pdf.setPageMargins(QMarginsF(0, 0, 0, 0));
    pdf.setResolution(static_cast<int>(o.dpi));
    pdf.setTitle(title);
    pdf.setCreator("Orrery");
    QPainter p;
    if (!p.begin(&pdf)) return fail("cannot write " + path);
    p.scale(o.dpi / 72.0, o.dpi / 72.0);  // lay out in points
    paint(p, o.size_pt);
    return p.end() ? true : fail("cannot write " + path);
  }
  if (ext == "png") {
    const double scale = o.dpi / 72.0;
    QImage image(static_cast<int>(std::lround(o.size_pt.width() * scale)),
                 static_cast<int>(std::lround(o.size_pt.height() * scale)), QImage::Format_ARGB32);
    image.setDotsPerMeterX(static_cast<int>(std::lround(o.dpi / 0.0254)));
    image.setDotsPerMeterY(static_cast<int>(std::lround(o.dpi / 0.0254)));
    QPainter p(&image);
    p.scale(scale, scale);
    paint(p, o.size_pt);
    p.end();
    return image.save(path, "PNG") ? true : fail("cannot write " + path);
  }
  return fail("unknown figure format '" + ext + "' (png, svg or pdf)");
}

bool export_figure(const QString& path, const FigureContent& c, const FigureOptions& o,
                   QString* error) {
  return export_painting(
      path, o, c.title, [&](QPainter& p, const QSizeF& page) { paint_figure(p, page, c); }, error);
}

}  // namespace orrery::render
