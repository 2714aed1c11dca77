#include "params_panel.hpp"

#include <cmath>
#include <limits>

#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QVBoxLayout>

namespace orrery::app {

namespace {

constexpr const char* kNoBatch = "(none)";

QSpinBox* spin(int lo, int hi, const QString& tip) {
  auto* s = new QSpinBox;
  s->setRange(lo, hi);
  s->setToolTip(tip);
  return s;
}

QDoubleSpinBox* dspin(double lo, double hi, double step, int decimals, const QString& tip) {
  auto* s = new QDoubleSpinBox;
  s->setRange(lo, hi);
  s->setSingleStep(step);
  s->setDecimals(decimals);
  s->setToolTip(tip);
  return s;
}

QComboBox* combo(const QStringList& items, const QString& tip) {
  auto* c = new QComboBox;
  c->addItems(items);
  c->setToolTip(tip);
  return c;
}

}  // namespace

ParamsPanel::ParamsPanel(QWidget* parent) : QWidget(parent) {
  target_sum_ = dspin(0, 1e9, 1000, 0, "normalize_total target sum per cell; 0: the median total");
  zero_center_ = new QCheckBox("zero-center scaled values");
  zero_center_->setToolTip(
      "scale(zero_center=True); off: divide by the standard deviation only (PCA still centres)");
  exclude_ = new QCheckBox("exclude highly expressed");
  exclude_->setToolTip("normalize_total(exclude_highly_expressed=True, max_fraction=0.05)");
  flavor_ = combo({"cell_ranger", "seurat", "seurat_v3"},
                  "highly_variable_genes flavor (seurat_v3 works on counts)");
  n_top_ = spin(0, 100000, "number of highly variable genes; 0: use the dispersion cutoffs");
  batch_ = combo({kNoBatch},
                 "highly_variable_genes(batch_key=...): genes chosen within each batch of this obs "
                 "column, then ranked by how many batches chose them (cell_ranger, seurat)");
  max_value_ = dspin(0, 1e6, 1, 3, "scale: clip scaled values above this (0: no clipping)");
  n_comps_ = spin(2, 100, "principal components");
  n_neighbors_ = spin(2, 200, "neighbours per cell, the cell included (scanpy's n_neighbors)");
  n_pcs_ = spin(0, 100, "principal components used for the neighbours (0: all)");
  metric_ = combo({"euclidean", "cosine"}, "distance in PCA space");
  const compute::KnnOptions knn_defaults;
  knn_method_ = combo({"auto", "exact", "nndescent", "ivf"},
                      QString("exact: every pair (tiled GEMM on the GPU); nndescent: approximate, "
                              "CPU; ivf: approximate inverted file, CUDA backend; auto: exact up "
                              "to %1 cells (%2 on the GPU), else nndescent (ivf on the GPU)")
                          .arg(knn_defaults.exact_max_cells)
                          .arg(knn_defaults.gpu_exact_max_cells));
  min_dist_ = dspin(0, 3, 0.05, 2, "UMAP min_dist");
  init_ = combo({"spectral", "pca", "random"}, "UMAP initial layout");
  n_epochs_ = spin(0, 100000, "UMAP epochs (0: 500 up to 10k cells, else 200)");
  resolution_ = dspin(0.01, 20, 0.1, 2, "Leiden resolution: higher gives more clusters");
  leiden_flavor_ =
      combo({"auto", "igraph", "parallel"},
            "igraph: scanpy's Leiden, one thread; parallel: Orrery's, all cores or "
            "the GPU, the same labels on both; auto: parallel on the GPU, else igraph");
  seed_ = spin(0, 1 << 30, "random seed of UMAP and Leiden");
  markers_ = new QCheckBox("marker genes per cluster");
  markers_->setToolTip("rank_genes_groups (Wilcoxon) of each Leiden cluster against the rest");
  backend_ = combo({"auto", "cpu", "cuda"}, "auto: CUDA when a device is present, else CPU");

  auto* form = new QFormLayout;
  form->addRow("Target sum", target_sum_);
  form->addRow("", exclude_);
  form->addRow("HVG flavor", flavor_);
  form->addRow("HVG genes", n_top_);
  form->addRow("HVG batch", batch_);
  form->addRow("Scale max", max_value_);
  form->addRow("", zero_center_);
  form->addRow("PCs", n_comps_);
  form->addRow("Neighbours", n_neighbors_);
  form->addRow("PCs for kNN", n_pcs_);
  form->addRow("Metric", metric_);
  form->addRow("kNN method", knn_method_);
  form->addRow("UMAP min_dist", min_dist_);
  form->addRow("UMAP init", init_);
  form->addRow("UMAP epochs", n_epochs_);
  form->addRow("Leiden resolution", resolution_);
  form->addRow("Leiden flavour", leiden_flavor_);
  form->addRow("Seed", seed_);
  form->addRow("", markers_);
  form->addRow("Backend", backend_);
  apply_ = new QPushButton("Apply and re-run");
  apply_->setToolTip("Run the analysis with these parameters (QC is reused)");
  reset_ = new QPushButton("Reset");
  reset_->setToolTip("Back to the defaults (scanpy's pbmc3k tutorial); Apply to run them");
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(reset_);
  buttons->addStretch(1);
  buttons->addWidget(apply_);
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(form);
  layout->addLayout(buttons);
  layout->addStretch(1);
  connect(apply_, &QPushButton::clicked, this, &ParamsPanel::applyRequested);
  connect(reset_, &QPushButton::clicked, this, [this] { setParams(compute::PipelineParams{}); });
  setParams(compute::PipelineParams{});
}

void ParamsPanel::setParams(const compute::PipelineParams& p) {
  target_sum_->setValue(p.target_sum > 0 ? p.target_sum : 0);
  exclude_->setChecked(p.exclude_highly_expressed);
  zero_center_->setChecked(p.scale_zero_center);
  flavor_->setCurrentText(QString::fromStdString(p.hvg.flavor));
  n_top_->setValue(p.hvg.n_top_genes);
  const QString batch =
      p.hvg.batch_key.empty() ? QString(kNoBatch) : QString::fromStdString(p.hvg.batch_key);
  if (batch_->findText(batch) < 0) batch_->addItem(batch);
  batch_->setCurrentText(batch);
  max_value_->setValue(std::isfinite(p.scale_max_value) ? p.scale_max_value : 0.0);
  n_comps_->setValue(p.pca.n_comps);
  n_neighbors_->setValue(p.neighbors.n_neighbors);
  n_pcs_->setValue(p.neighbors.n_pcs);
  metric_->setCurrentText(QString::fromStdString(p.neighbors.metric));
  knn_method_->setCurrentText(QString::fromStdString(p.neighbors.method));
  min_dist_->setValue(p.umap.min_dist);
  init_->setCurrentText(QString::fromStdString(p.umap.init));
  n_epochs_->setValue(p.umap.n_epochs);
  resolution_->setValue(p.leiden.resolution);
  leiden_flavor_->setCurrentText(
      QString::fromStdString(p.leiden.flavor == "leidenalg" ? "igraph" : p.leiden.flavor));
  seed_->setValue(static_cast<int>(p.leiden.seed));
  markers_->setChecked(p.markers);
  backend_->setCurrentText(QString::fromStdString(p.backend));
}

void ParamsPanel::setBatchColumns(const std::vector<std::string>& columns) {
  const QString current = batch_->currentText();
  batch_->clear();
  batch_->addItem(kNoBatch);
  for (const auto& c : columns) batch_->addItem(QString::fromStdString(c));
  if (batch_->findText(current) < 0) batch_->addItem(current);
  batch_->setCurrentText(current);
}

compute::PipelineParams ParamsPanel::applyTo(compute::PipelineParams p) const {
  p.target_sum = target_sum_->value();
  p.exclude_highly_expressed = exclude_->isChecked();
  p.scale_zero_center = zero_center_->isChecked();
  p.hvg.flavor = flavor_->currentText().toStdString();
  p.hvg.n_top_genes = n_top_->value();
  p.hvg.batch_key = batch_->currentText() == kNoBatch ? "" : batch_->currentText().toStdString();
  p.scale_max_value = max_value_->value() > 0 ? static_cast<float>(max_value_->value())
                                              : std::numeric_limits<float>::infinity();
  p.pca.n_comps = n_comps_->value();
  p.neighbors.n_neighbors = n_neighbors_->value();
  p.neighbors.n_pcs = n_pcs_->value();
  p.neighbors.metric = metric_->currentText().toStdString();
  p.neighbors.method = knn_method_->currentText().toStdString();
  p.umap.min_dist = min_dist_->value();
  p.umap.init = init_->currentText().toStdString();
  p.umap.n_epochs = n_epochs_->value();
  p.leiden.resolution = resolution_->value();
  p.leiden.flavor = leiden_flavor_->currentText().toStdString();
  p.umap.seed = p.leiden.seed = static_cast<std::uint64_t>(seed_->value());
  p.markers = markers_->isChecked();
  p.backend = backend_->currentText().toStdString();
  return p;
}

}  // namespace orrery::app
