// The parameters of every stage after QC (normalize, HVG, scale, PCA, neighbors, UMAP, Leiden,
// markers) and the backend, edited in a form with scanpy's defaults; "Apply and re-run" hands
// them to the next run (QC thresholds stay with the QC panel), "Reset" restores the defaults.
#pragma once

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QPushButton>
#include <QSpinBox>
#include <QWidget>

#include <string>
#include <vector>

#include "compute/pipeline.hpp"

namespace orrery::app {

class ParamsPanel : public QWidget {
  Q_OBJECT
 public:
  explicit ParamsPanel(QWidget* parent = nullptr);
  // Shows `params` in the form.
  void setParams(const compute::PipelineParams& params);
  // The form's values applied to `params` (QC fields untouched).
  compute::PipelineParams applyTo(compute::PipelineParams params) const;

  // The categorical obs columns of the opened store, offered as HVG batch keys.
  void setBatchColumns(const std::vector<std::string>& columns);

  QComboBox* flavor() const { return flavor_; }
  QComboBox* batchKey() const { return batch_; }
  QSpinBox* nTopGenes() const { return n_top_; }
  QDoubleSpinBox* resolution() const { return resolution_; }
  QComboBox* leidenFlavor() const { return leiden_flavor_; }
  QComboBox* knnMethod() const { return knn_method_; }
  QPushButton* applyButton() const { return apply_; }
  QPushButton* resetButton() const { return reset_; }

 signals:
  void applyRequested();

 private:
  QDoubleSpinBox* target_sum_;
  QCheckBox* exclude_;
  QCheckBox* zero_center_;
  QComboBox* flavor_;
  QSpinBox* n_top_;
  QComboBox* batch_;
  QDoubleSpinBox* max_value_;
  QSpinBox* n_comps_;
  QSpinBox* n_neighbors_;
  QSpinBox* n_pcs_;
  QComboBox* metric_;
  QComboBox* knn_method_;
  QDoubleSpinBox* min_dist_;
  QComboBox* init_;
  QSpinBox* n_epochs_;
  QDoubleSpinBox* resolution_;
  QComboBox* leiden_flavor_;
  QSpinBox* seed_;
  QCheckBox* markers_;
  QComboBox* backend_;
  QPushButton* apply_;
  QPushButton* reset_;
};

}  // namespace orrery::app
