// Publication figures of a rendered view: the point layer embedded as a high-DPI image, with the
// title, axis labels and legend drawn as vectors (text and shapes stay editable in SVG and PDF).
// One painter routine serves PNG, SVG (QSvgGenerator) and PDF (QPdfWriter). Qt GUI only, no
// widgets and no Vulkan.
#pragma once

#include <QColor>
#include <QImage>
#include <QSizeF>
#include <QString>
#include <functional>
#include <utility>
#include <vector>

class QPainter;

namespace orrery::render {

struct FigureContent {
  QImage points;  // the rendered point layer (square or not; drawn keeping its aspect ratio)
  QString title;
  QString x_label = "UMAP1", y_label = "UMAP2";
  std::vector<std::pair<QString, QColor>> legend;  // categories, in order
  QString legend_title;
};

struct FigureOptions {
  QSizeF size_pt{432, 324};  // 6 x 4.5 inches
  double dpi = 300;          // PNG resolution, and the resolution the point image is made for
};

// The pixel size the point layer should be rendered at for `options` (its share of the page).
QSize point_layer_pixels(const FigureOptions& options);

// Lays the figure out on `painter` in a page of `page` units (points).
void paint_figure(QPainter& painter, const QSizeF& page, const FigureContent& content);

// Writes whatever `paint` draws on a page of `options.size_pt` points to `path` as PNG (at
// options.dpi), SVG or PDF by its extension; false with `error` set on failure.
bool export_painting(const QString& path, const FigureOptions& options, const QString& title,
                     const std::function<void(QPainter&, const QSizeF&)>& paint,
                     QString* error = nullptr);

// Writes `path` as PNG, SVG or PDF by its extension; false with `error` set on failure.
bool export_figure(const QString& path, const FigureContent& content, const FigureOptions& options,
                   QString* error = nullptr);

}  // namespace orrery::render
