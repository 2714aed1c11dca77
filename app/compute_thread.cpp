#include "compute_thread.hpp"

#include <QDateTime>
#include <QDirIterator>
#include <QFileInfo>

#include <QColor>
#include <QElapsedTimer>
#include <QMetaObject>
#include <QSaveFile>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <type_traits>
#include <variant>

#include "compute/palette.hpp"
#include "compute/result_writer.hpp"
#include "csv.hpp"
#include "io/anndata_reader.hpp"
#include "io/annotations.hpp"

namespace orrery::app {

namespace {

// Visits the QC metrics and the input's numeric obs columns (QC names first, an obs column of
// the same name is skipped) as visit(name, values), where values() builds the column for the
// kept cells only when a caller wants it.
using KeptValues = std::function<std::vector<float>()>;
void for_each_numeric_obs(const io::Store& store, const compute::PipelineResult& r,
                          const std::function<void(const std::string&, const KeptValues&)>& visit) {
  std::vector<std::string> seen;
  auto add = [&](const std::string& name, const auto& all) {
    seen.push_back(name);
    visit(name, [&] {
      std::vector<float> kept;
      kept.reserve(r.kept_cells.size());
      for (auto c : r.kept_cells) kept.push_back(static_cast<float>(all[c]));
      return kept;
    });
  };
  add("n_genes_by_counts", r.cell_qc.n_genes_by_counts);
  add("total_counts", r.cell_qc.total_counts);
  add("total_counts_mt", r.cell_qc.total_counts_qc);
  add("pct_counts_mt", r.cell_qc.pct_counts_qc);
  for (std::size_t t = 0; t < r.cell_qc.top_n.size(); ++t)
    add("pct_counts_in_top_" + std::to_string(r.cell_qc.top_n[t]) + "_genes",
        r.cell_qc.pct_counts_in_top[t]);
  for (const auto& c : store.obs.columns)
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::vector<double>> ||
                        std::is_same_v<V, std::vector<float>> ||
                        std::is_same_v<V, std::vector<std::int32_t>> ||
                        std::is_same_v<V, std::vector<std::int64_t>> ||
                        std::is_same_v<V, std::vector<bool>>) {
            if (std::find(seen.begin(), seen.end(), c.name) == seen.end()) add(c.name, v);
          }
        },
        c.values);
}

// The obs and QC columns one can colour by: numeric ones (for_each_numeric_obs) and categorical.
void colourable_obs(const io::Store& store, const compute::PipelineResult& r,
                    std::vector<std::string>& numeric, std::vector<std::string>& categorical) {
  for_each_numeric_obs(
      store, r, [&](const std::string& name, const KeptValues&) { numeric.push_back(name); });
  for (const auto& c : store.obs.columns)
    if (std::holds_alternative<Categorical>(c.values)) categorical.push_back(c.name);
}

// A categorical column for `cells` (all cells when null), with the store's colours when it has
// one per category, else the categorical palette.
std::shared_ptr<ObsCategories> categories_of(const std::string& name, const Categorical& cat,
                                             const std::vector<CellIndex>* cells) {
  auto out = std::make_shared<ObsCategories>();
  out->name = QString::fromStdString(name);
  if (cells)
    for (auto i : *cells) out->codes.push_back(cat.codes[i]);
  else
    out->codes = cat.codes;
  out->categories = cat.categories;
  // Stored colours as the renderer takes them ("#rrggbb"): matplotlib's "#rrggbbaa" loses its
  // alpha, names such as "red" are looked up; any other makes the palette stand in.
  bool usable = cat.colors.size() == cat.categories.size();
  for (std::size_t c = 0; usable && c < cat.colors.size(); ++c) {
    const QString s = QString::fromStdString(cat.colors[c]);
    const QColor colour(s.size() == 9 && s.startsWith('#') ? s.left(7) : s);
    usable = colour.isValid();
    if (usable) out->colors.push_back(colour.name().toStdString());
  }
  if (!usable) out->colors = compute::categorical_palette(cat.categories.size());
  return out;
}

// The input's obsm entries that can be drawn as an embedding (dense, a row per cell, at least
// two columns): X_umap and X_tsne first, then the others as stored, X_pca last.
std::vector<std::string> stored_embedding_keys(const io::Store& store) {
  std::vector<std::string> keys;
  for (const auto& key : store.obsm_keys) {
    auto e = store.root->open("obsm/" + key);
    if (!e || e->is_group() || e->kind() == io::ElementKind::String ||
        e->kind() == io::ElementKind::Other)
      continue;
    const auto shape = e->shape();
    if (shape.size() == 2 && shape[0] == store.n_obs() && shape[1] >= 2 && shape[1] <= 100000)
      keys.push_back(key);
  }
  auto rank = [](const std::string& k) {
    return k == "X_umap" ? 0 : k == "X_tsne" ? 1 : k == "X_pca" ? 3 : 2;
  };
  std::stable_sort(keys.begin(), keys.end(),
                   [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  return keys;
}

// A store's size and newest modification and status-change times (over every file of a .zarr
// directory), to tell whether it changed since an earlier run; "" when it cannot be read.
QString store_stamp(const QString& path) {
  const QFileInfo root(path);
  if (!root.exists()) return {};
  qint64 bytes = 0, files = 0, modified = 0;
  const auto add = [&](const QFileInfo& f) {
    bytes += f.size();
    ++files;
    modified = std::max({modified, f.lastModified().toMSecsSinceEpoch(),
                         f.metadataChangeTime().toMSecsSinceEpoch()});
  };
  if (root.isDir()) {
    for (QDirIterator it(path, QDir::Files | QDir::Hidden, QDirIterator::Subdirectories);
         it.hasNext();) {
      it.next();
      add(it.fileInfo());
    }
  } else {
    add(root);
  }
  return QString("%1 files, %2 bytes, %3").arg(files).arg(bytes).arg(modified);
}

// The store's first embedding (of `keys`, stored_embedding_keys') coloured by its first categorical
// obs column that has stored colours (as scanpy leaves leiden / cell_type after plotting), else its
// first categorical one of at most 1000 categories; null when it holds no embedding.
std::shared_ptr<StoredPreview> stored_preview(const io::Store& store, const QString& path,
                                              const std::vector<std::string>& keys) {
  if (keys.empty()) return nullptr;
  auto preview = std::make_shared<StoredPreview>();
  preview->store_path = path;
  preview->embedding = QString::fromStdString(keys.front());
  preview->xy =
      io::read_dense_columns(*store.root->require("obsm/" + keys.front()), store.n_obs(), 2).values;
  const Column* chosen = nullptr;
  for (int pass = 0; pass < 2 && !chosen; ++pass)
    for (const auto& c : store.obs.columns)
      if (const auto* cat = std::get_if<Categorical>(&c.values))
        if (pass == 0 ? cat->colors.size() == cat->categories.size() && !cat->colors.empty()
                      : cat->categories.size() <= 1000) {
          chosen = &c;
          break;
        }
  if (chosen)
    preview->categories =
        categories_of(chosen->name, std::get<Categorical>(chosen->values), nullptr);
  return preview;
}

}  // namespace
namespace {

class SignalProgress final : public compute::Progress {
 public:
  explicit SignalProgress(ComputeWorker* w) : worker_(w) {}
  void report(std::string_view stage, double fraction) override {
    // Throttle: one update per stage per percent.
    const int pct = static_cast<int>(fraction * 100);
    if (stage == last_stage_ && pct == last_pct_) return;
    last_stage_ = stage;
    last_pct_ = pct;
    emit worker_->progress(QString::fromUtf8(stage.data(), static_cast<int>(stage.size())),
                           fraction);
  }

 private:
  ComputeWorker* worker_;
  std::string last_stage_;
  int last_pct_ = -1;
};

constexpr std::size_t kTopMarkers = 100;

std::vector<MarkerRow> top_markers(const compute::GroupMarkers& m, const io::Store& store,
                                   const compute::PipelineResult& result) {
  std::vector<MarkerRow> rows;
  for (std::size_t t = 0; t < std::min(kTopMarkers, m.order.size()); ++t) {
    const auto g = m.order[t];
    rows.push_back({store.var.index[result.kept_genes[g]], m.scores[g], m.logfoldchanges[g],
                    m.pvals_adj[g], m.pct_in[g], m.pct_out[g]});
  }
  return rows;
}

}  // namespace

void ComputeWorker::cancel() {
  std::lock_guard lock(progress_mutex_);
  cancel_requested_ = true;
  if (active_) active_->cancel();
}

void ComputeWorker::reset_cancel() {
  std::lock_guard lock(progress_mutex_);
  cancel_requested_ = false;
}

void ComputeWorker::run(const QString& path, const compute::PipelineParams& params,
                        bool preview_wanted, int text_layout) {
  SignalProgress progress(this);
  {
    std::lock_guard lock(progress_mutex_);
    active_ = &progress;
    if (cancel_requested_) progress.cancel();
    cancel_requested_ = false;
  }
  QElapsedTimer timer;
  timer.start();
  std::function<void()> outcome;
  std::shared_ptr<const compute::GeneMajorCounts> previous_counts;  // while a re-run runs
  bool done = false;
  try {
    emit this->progress("open", 0.0);
    io::OpenOptions open_options;
    open_options.progress = [&](std::string_view what, double f) {
      progress.check();
      progress.report(what, f);
    };
    open_options.text_layout = static_cast<io::TextLayout>(text_layout);
    // Annotation tables imported into another store stay with it.
    if (imported_for_ != path) {
      imported_for_.clear();
      imported_tables_.clear();
    }
    // The stamp is taken before reading, so that a later change shows. The tables imported
    // into the store are part of it (a batch key may name their columns).
    QString stamp = store_stamp(path);
    auto store = std::make_unique<io::Store>(io::open_store(path.toStdString(), open_options));
    // A table read the other way round is another matrix: its QC and results are not reused.
    if (!stamp.isEmpty() && store->format == "text")
      stamp += QString(" layout %1").arg(static_cast<int>(store->text_layout));
    for (const QString& table : imported_tables_)  // as importAnnotations appends them
      if (!stamp.isEmpty()) stamp += " + " + store_stamp(table);
    emit storeOpened(QString::fromStdString(io::describe_store(*store, path.toStdString())));
    // Annotations imported into this store come back with it (a table gone since is a
    // warning of the run).
    QStringList import_warnings;
    for (const QString& table : QStringList(imported_tables_)) {
      try {
        QString summary;
        add_annotations(*store, table, summary);
      } catch (const std::exception& e) {
        imported_tables_.removeAll(table);
        import_warnings << QString("annotations not imported again: ") + e.what();
      }
    }
    emit storeFormat(path, QString::fromStdString(store->format),
                     QString::fromStdString(store->x_encoding),
                     static_cast<int>(store->text_layout));
    // A damaged obsm entry costs the preview and the embedding box, not the run.
    std::vector<std::string> embedding_keys;
    try {
      embedding_keys = stored_embedding_keys(*store);
      auto preview = preview_wanted ? stored_preview(*store, path, embedding_keys) : nullptr;
      if (preview) emit storedPreview(std::move(preview));
    } catch (const Cancelled&) {
      throw;
    } catch (const std::exception& e) {
      progress.warn(std::string("no preview of the stored embedding: ") + e.what());
    }
    std::string note;
    auto backend = compute::make_backend(params.backend, &note);
    // Only the final layout comes through the host when the backend streams it to the view.
    if (layout_channel_) backend->stream_layout_to(layout_channel_.get());
    compute::PipelineHooks hooks;
    int last_emitted = -100;
    hooks.on_umap_epoch = [&](int epoch, int n_epochs, const DenseMatrix& emb) {
      if (epoch - last_emitted < 25 && epoch != n_epochs) return;
      last_emitted = epoch;
      emit layoutStep(std::make_shared<const std::vector<float>>(emb.values), stream_generation());
    };
    if (qc_path_ == path && !stamp.isEmpty() && qc_stamp_ == stamp) hooks.reuse_qc = qc_;
    // A re-run on the store on screen (not a store just opened) keeps the stages whose
    // parameters did not change.
    if (preview_wanted) result_path_.clear();  // a store opened (again): computed afresh
    if (!preview_wanted && result_ && result_path_ == path && !stamp.isEmpty() &&
        result_stamp_ == stamp) {
      hooks.reuse = result_.get();
      hooks.reuse_params = &params_;
    }
    // The markers pass keeps the kept counts gene by gene for gene search and selections. The
    // last run's are let go first (two sets could take twice the budget) unless this run keeps
    // its graph, so its cells, genes and normalisation, and they fit the budget.
    hooks.keep_counts_by_gene = true;
    compute::PipelineParams run_params = params;
    run_params.gene_cache_bytes = compute::gene_cache_budget(params);
    if (hooks.reuse && counts_ && counts_->bytes() <= run_params.gene_cache_bytes &&
        compute::reusable_stages(hooks, params, store->n_obs(), store->n_vars(), backend->name())
            .graph)
      previous_counts = hooks.counts_by_gene = counts_;
    counts_.reset();
    if (result_) result_->counts_by_gene.reset();
    hooks.on_qc = [&](std::shared_ptr<const compute::QcMetrics> metrics) {
      qc_path_ = path;
      qc_stamp_ = stamp;
      qc_ = metrics;
      emit qcReady(std::move(metrics));
    };
    auto result = std::make_unique<compute::PipelineResult>(
        compute::run_pipeline(*store, run_params, *backend, progress, hooks));

    auto snap = std::make_shared<RunSnapshot>();
    snap->store_path = path;
    snap->n_cells_total = result->n_cells_total;
    snap->n_genes_total = result->n_genes_total;
    snap->n_cells = static_cast<std::int64_t>(result->kept_cells.size());
    snap->n_genes = static_cast<std::int64_t>(result->kept_genes.size());
    snap->umap_xy = result->x_umap.values;
    snap->labels = result->leiden;
    snap->palette = compute::categorical_palette(result->n_clusters);
    snap->cluster_sizes.assign(result->n_clusters, 0);
    for (auto l : result->leiden) ++snap->cluster_sizes[l];
    for (auto c : result->kept_cells) snap->cell_names.push_back(store->obs.index[c]);
    for (auto g : result->kept_genes) snap->gene_names.push_back(store->var.index[g]);
    colourable_obs(*store, *result, snap->obs_numeric, snap->obs_categorical);
    for (const auto& m : result->markers) snap->markers.push_back(top_markers(m, *store, *result));
    snap->stored_embeddings = embedding_keys;
    snap->backend_note = QString::fromStdString(note);
    snap->qc_reused = result->qc_reused;
    for (const auto& stage : result->reused_stages)
      snap->reused_stages << QString::fromStdString(stage);
    for (const auto& w : result->warnings) snap->warnings << QString::fromStdString(w);
    snap->warnings << import_warnings;
    snap->seconds = timer.elapsed() / 1000.0;

    backend->stream_layout_to(nullptr);
    store_ = std::move(store);
    backend_ = std::move(backend);
    // A run that took its markers from the last one kept no counts: the last run's serve when
    // the cells, genes and excluded genes are the same.
    if (result->counts_by_gene)
      counts_ = result->counts_by_gene;
    else if (previous_counts && result_ && result->kept_cells == result_->kept_cells &&
             result->kept_genes == result_->kept_genes &&
             result->excluded_genes == result_->excluded_genes)
      counts_ = std::move(previous_counts);
    snap->counts_mib = static_cast<double>(counts_bytes()) / (1 << 20);
    result_ = std::move(result);
    params_ = run_params;
    result_path_ = path;
    result_stamp_ = stamp;
    outcome = [this, snap] { emit finished(snap); };
    done = true;
  } catch (const Cancelled&) {
    outcome = [this] { emit cancelled(); };
  } catch (const std::exception& e) {
    outcome = [this, message = QString::fromUtf8(e.what())] { emit failed(message); };
  }
  if (!done && previous_counts) counts_ = std::move(previous_counts);  // result_: the last run's
  {
    std::lock_guard lock(progress_mutex_);
    active_ = nullptr;
  }
  // The run's end first, so the window's busy state is settled when the outcome arrives.
  emit streamFinished(stream_generation());
  emit runEnded();
  outcome();
}

void ComputeWorker::with_kept_counts(const std::function<void(const compute::ChunkSource&)>& pass) {
  if (counts_) {
    pass(counts_->source());
    return;
  }
  const compute::LogNormalize n = compute::log_normalize_of(*result_, params_);
  compute::GeneMajorBuilder builder(static_cast<std::int64_t>(result_->kept_cells.size()),
                                    static_cast<std::int64_t>(result_->kept_genes.size()),
                                    params_.gene_cache_bytes, n.excluded,
                                    result_->kept_gene_n_cells);
  pass(compute::tee_source(compute::kept_counts_source(*store_, *result_, params_), builder));
  counts_ = builder.finish();
  if (counts_) emit countsKept(static_cast<double>(counts_bytes()) / (1 << 20));
}

void ComputeWorker::for_each_gene_value(
    const std::vector<std::int32_t>& columns,
    const std::function<void(std::size_t, std::int64_t, float)>& visit) {
  const compute::LogNormalize n = compute::log_normalize_of(*result_, params_);
  if (counts_) {
    for (std::size_t k = 0; k < columns.size(); ++k) {
      const std::vector<float> v = counts_->values(columns[k], n);
      for (std::size_t row = 0; row < v.size(); ++row)
        if (v[row] != 0.0f) visit(k, static_cast<std::int64_t>(row), v[row]);
    }
    return;
  }
  // From the store, normalised with the host's arithmetic as the counts in memory give them
  // (whatever the backend).
  with_kept_counts([&](const compute::ChunkSource& counts) {
    compute::for_each_column_value(counts, columns, n, visit);
  });
}

quint64 ComputeWorker::stream_generation() const {
  return layout_channel_ ? layout_channel_->generation() : 0;
}

void ComputeWorker::save(const QString& path,
                         std::shared_ptr<const compute::ClusterAnnotation> annotation,
                         int zarr_format, bool with_matrices) {
  if (!result_) {
    emit failed("nothing to save: run the pipeline first");
    return;
  }
  SignalProgress progress(this);
  try {
    compute::write_result_h5ad(*store_, *result_, params_, *backend_, path.toStdString(), progress,
                               annotation.get(), zarr_format, with_matrices);
    emit saved(path);
  } catch (const std::exception& e) {
    emit failed(QString::fromUtf8(e.what()));
  }
}

void ComputeWorker::compareSelection(std::shared_ptr<const std::vector<bool>> selection,
                                     std::shared_ptr<const std::vector<bool>> reference) {
  const std::size_t n = result_ ? result_->kept_cells.size() : 0;
  if (!result_ || selection->size() != n || (reference && reference->size() != n)) {
    emit failed("the selection does not match the current result");
    return;
  }
  SignalProgress progress(this);
  try {
    // Group 0: the selection; group 1: the reference group, or every other cell; -1: left out.
    std::vector<std::int32_t> labels(n);
    std::int64_t n_in = 0, n_ref = 0;
    for (std::size_t i = 0; i < n; ++i) {
      labels[i] = (*selection)[i] ? 0 : (!reference || (*reference)[i]) ? 1 : -1;
      n_in += labels[i] == 0;
      n_ref += labels[i] == 1;
    }
    if (n_in == 0 || n_ref == 0)
      throw Error("", "selection",
                  reference ? "both groups need cells of their own (group A minus the selection "
                              "is empty, or nothing is selected)"
                            : "select some cells, but not all, to compare against the rest");
    compute::WilcoxonOptions options = params_.wilcoxon;
    options.reference = 1;
    options.gene_nnz_bound = result_->kept_gene_n_cells;
    // Every kept cell in one of the groups: the log data's maximum over them is the run's (when
    // it binned its markers), and the binned ranks need no pass to find it.
    if (!reference && options.bin_max <= 0 && result_->log_max > 0)
      options.bin_max = result_->log_max;
    std::vector<compute::GroupMarkers> markers;
    if (counts_)  // each gene ranked from memory (on the CPU, whichever the backend)
      markers = compute::rank_genes_groups(*counts_, compute::log_normalize_of(*result_, params_),
                                           labels, 2, options, progress);
    else
      with_kept_counts([&](const compute::ChunkSource& counts) {
        markers = backend_->rank_genes_groups(
            counts, compute::log_normalize_of(*result_, params_), static_cast<std::int64_t>(n),
            static_cast<std::int64_t>(result_->kept_genes.size()), labels, 2, options, progress);
      });
    emit selectionMarkers(
        std::make_shared<const std::vector<MarkerRow>>(top_markers(markers[0], *store_, *result_)));
  } catch (const std::exception& e) {
    emit failed(QString::fromUtf8(e.what()));
  }
}

std::vector<std::string> ComputeWorker::add_annotations(io::Store& store, const QString& table,
                                                        QString& summary) const {
  std::string said;
  const auto names =
      io::import_annotations(store, table.toStdString(), compute::is_result_obs_column, said);
  summary = QFileInfo(table).fileName() + ": " + QString::fromStdString(said);
  return names;
}

void ComputeWorker::importAnnotations(const QString& table) {
  if (!store_ || !result_) {
    emit failed("no store open: open and run a store before importing annotations");
    return;
  }
  try {
    QString summary;
    const auto names = add_annotations(*store_, table, summary);
    const QString store_path = QString::fromStdString(store_->path);
    if (imported_for_ != store_path) imported_tables_.clear();
    imported_for_ = store_path;
    imported_tables_ << table;
    // The result on screen stays reusable: nothing in it could use the new columns yet.
    const QString table_stamp = " + " + store_stamp(table);
    if (result_path_ == store_path && !result_stamp_.isEmpty()) result_stamp_ += table_stamp;
    if (qc_path_ == store_path && !qc_stamp_.isEmpty()) qc_stamp_ += table_stamp;
    QStringList added, numeric, categorical;
    for (const auto& n : names) added << QString::fromStdString(n);
    std::vector<std::string> numeric_names, categorical_names;
    colourable_obs(*store_, *result_, numeric_names, categorical_names);
    for (const auto& n : numeric_names) numeric << QString::fromStdString(n);
    for (const auto& n : categorical_names) categorical << QString::fromStdString(n);
    emit annotationsImported(added, numeric, categorical, summary);
  } catch (const std::exception& e) {
    emit failed(QString::fromUtf8(e.what()));
  }
}

void ComputeWorker::exportQc(const QString& path, const compute::PipelineParams& thresholds) {
  if (!store_ || !qc_ || qc_path_ != QString::fromStdString(store_->path)) {
    emit failed("no QC metrics yet: open and run a store first");
    return;
  }
  const compute::CellQc& qc = qc_->cells;
  const auto& names = store_->obs.index;
  if (names.size() != qc.total_counts.size()) {
    emit failed("the QC metrics do not belong to the open store");
    return;
  }
  QSaveFile file(path);  // a temporary file, renamed over `path` by commit()
  if (!file.open(QIODevice::WriteOnly)) {
    emit failed("cannot write " + path + ": " + file.errorString());
    return;
  }
  std::string out = "cell,n_genes_by_counts,total_counts,total_counts_mt,pct_counts_mt";
  for (int n : qc.top_n) out += ",pct_counts_in_top_" + std::to_string(n) + "_genes";
  out += ",passes_qc\n";
  char number[32];
  auto put = [&](double v) {
    out += ',';
    if (std::isnan(v)) return;  // an empty field, as pandas writes NaN
    std::snprintf(number, sizeof number, "%.10g", v);
    out += number;
  };
  for (std::size_t i = 0; i < names.size(); ++i) {
    out += csv_field(names[i]);
    put(qc.n_genes_by_counts[i]);
    put(qc.total_counts[i]);
    put(qc.total_counts_qc[i]);
    put(qc.pct_counts_qc[i]);
    for (const auto& top : qc.pct_counts_in_top) put(top[i]);
    out +=
        compute::keep_cell(qc, static_cast<std::int64_t>(i), thresholds) ? ",true\n" : ",false\n";
    if (out.size() > (1u << 20) || i + 1 == names.size()) {
      if (file.write(out.data(), static_cast<qint64>(out.size())) !=
          static_cast<qint64>(out.size())) {
        emit failed("cannot write " + path + ": " + file.errorString());
        return;  // QSaveFile discards the temporary file
      }
      out.clear();
    }
  }
  if (!file.commit()) {
    emit failed("cannot write " + path + ": " + file.errorString());
    return;
  }
  emit saved(path);
}

void ComputeWorker::dotPlot(const QStringList& genes,
                            std::shared_ptr<const std::vector<std::int32_t>> labels,
                            const QStringList& groups) {
  if (!result_ || labels->size() != result_->kept_cells.size()) {
    emit failed("the groups do not match the current result");
    return;
  }
  try {
    // Gene columns among the kept genes; every name must be one.
    const auto map = compute::kept_gene_map(*result_);
    std::vector<std::int32_t> column;
    for (const QString& g : genes) {
      const auto& names = store_->var.index;
      const auto it = std::find(names.begin(), names.end(), g.toStdString());
      const std::int32_t c = it == names.end() ? -1 : map[it - names.begin()];
      if (c < 0) throw Error(store_->path, g.toStdString(), "not a kept gene");
      column.push_back(c);
    }
    auto data = std::make_shared<DotPlotData>();
    data->genes = genes;
    data->groups = groups;
    const auto n_genes = static_cast<std::size_t>(genes.size());
    const auto n_groups = static_cast<std::size_t>(groups.size());
    std::vector<double> sum(n_groups * n_genes, 0.0);
    std::vector<std::int64_t> expressing(n_groups * n_genes, 0), size(n_groups, 0);
    for (auto l : *labels)
      if (l >= 0 && static_cast<std::size_t>(l) < n_groups) ++size[l];
    for_each_gene_value(column, [&](std::size_t k, std::int64_t row, float v) {
      const auto l = (*labels)[row];
      if (l < 0 || static_cast<std::size_t>(l) >= n_groups) return;
      sum[l * n_genes + k] += v;
      expressing[l * n_genes + k] += v > 0;
    });
    data->mean.resize(sum.size());
    data->fraction.resize(sum.size());
    for (std::size_t g = 0; g < n_groups; ++g)
      for (std::size_t k = 0; k < n_genes; ++k) {
        const double n = static_cast<double>(std::max<std::int64_t>(size[g], 1));
        data->mean[g * n_genes + k] = sum[g * n_genes + k] / n;
        data->fraction[g * n_genes + k] = static_cast<double>(expressing[g * n_genes + k]) / n;
      }
    emit dotPlotReady(std::move(data));
  } catch (const std::exception& e) {
    emit failed(QString::fromUtf8(e.what()));
  }
}

void ComputeWorker::geneValues(const QString& gene) {
  if (!result_) {
    emit failed("run the pipeline first");
    return;
  }
  try {
    const std::string name = gene.toStdString();
    if (const Column* c = store_->obs.find(name))
      if (const auto* cat = std::get_if<Categorical>(&c->values)) {
        emit categoriesReady(categories_of(name, *cat, &result_->kept_cells));
        return;
      }
    std::shared_ptr<const std::vector<float>> obs_values;
    for_each_numeric_obs(*store_, *result_,
                         [&](const std::string& column, const KeptValues& values) {
                           if (column == name && !obs_values)
                             obs_values = std::make_shared<const std::vector<float>>(values());
                         });
    if (obs_values) {
      emit geneReady(gene, std::move(obs_values));
      return;
    }
    const auto& names = store_->var.index;
    const auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) throw Error(store_->path, "var", "no gene named '" + name + "'");
    const auto map = compute::kept_gene_map(*result_);
    const std::int32_t g = map[it - names.begin()];
    if (g < 0)
      throw Error(store_->path, name, "gene was filtered out (seen in fewer than min_cells cells)");
    auto values = std::make_shared<std::vector<float>>(result_->kept_cells.size(), 0.0f);
    for_each_gene_value({g}, [&](std::size_t, std::int64_t row, float v) { (*values)[row] = v; });
    emit geneReady(gene, std::move(values));
  } catch (const std::exception& e) {
    emit failed(QString::fromUtf8(e.what()));
  }
}

void ComputeWorker::storedEmbedding(const QString& key) {
  if (!result_) {
    emit failed("run the pipeline first");
    return;
  }
  try {
    auto xy = std::make_shared<std::vector<float>>(
        io::read_dense_rows(*store_->root->require("obsm/" + key.toStdString()), store_->n_obs(),
                            &result_->kept_cells, 2)
            .values);
    emit embeddingReady(key, std::move(xy));
  } catch (const std::exception& e) {
    emit failed(QString::fromUtf8(e.what()));
  }
}

ComputeThread::ComputeThread(QObject* parent) : QObject(parent), worker_(new ComputeWorker) {
  qRegisterMetaType<orrery::compute::PipelineParams>();
  qRegisterMetaType<std::shared_ptr<const orrery::app::RunSnapshot>>();
  qRegisterMetaType<std::shared_ptr<const std::vector<float>>>();
  qRegisterMetaType<std::shared_ptr<const orrery::compute::QcMetrics>>();
  qRegisterMetaType<std::shared_ptr<const std::vector<bool>>>();
  qRegisterMetaType<std::shared_ptr<const orrery::compute::ClusterAnnotation>>();
  qRegisterMetaType<std::shared_ptr<const std::vector<orrery::app::MarkerRow>>>();
  qRegisterMetaType<std::shared_ptr<const std::vector<std::int32_t>>>();
  qRegisterMetaType<std::shared_ptr<const orrery::app::DotPlotData>>();
  qRegisterMetaType<std::shared_ptr<const orrery::app::ObsCategories>>();
  qRegisterMetaType<std::shared_ptr<const orrery::app::StoredPreview>>();
  worker_->moveToThread(&thread_);
  connect(&thread_, &QThread::finished, worker_, &QObject::deleteLater);
  thread_.setObjectName("orrery-compute");
  thread_.start();
}

ComputeThread::~ComputeThread() {
  worker_->cancel();
  thread_.quit();
  thread_.wait();
}

void ComputeThread::run(const QString& path, const compute::PipelineParams& params, bool preview,
                        io::TextLayout text_layout) {
  worker_->reset_cancel();
  QMetaObject::invokeMethod(worker_, "run", Qt::QueuedConnection, Q_ARG(QString, path),
                            Q_ARG(orrery::compute::PipelineParams, params), Q_ARG(bool, preview),
                            Q_ARG(int, static_cast<int>(text_layout)));
}

void ComputeThread::compareSelection(std::shared_ptr<const std::vector<bool>> selection,
                                     std::shared_ptr<const std::vector<bool>> reference) {
  QMetaObject::invokeMethod(worker_, "compareSelection", Qt::QueuedConnection,
                            Q_ARG(std::shared_ptr<const std::vector<bool>>, selection),
                            Q_ARG(std::shared_ptr<const std::vector<bool>>, reference));
}

void ComputeThread::dotPlot(const QStringList& genes,
                            std::shared_ptr<const std::vector<std::int32_t>> labels,
                            const QStringList& groups) {
  QMetaObject::invokeMethod(worker_, "dotPlot", Qt::QueuedConnection, Q_ARG(QStringList, genes),
                            Q_ARG(std::shared_ptr<const std::vector<std::int32_t>>, labels),
                            Q_ARG(QStringList, groups));
}

void ComputeThread::importAnnotations(const QString& table) {
  QMetaObject::invokeMethod(worker_, "importAnnotations", Qt::QueuedConnection,
                            Q_ARG(QString, table));
}

void ComputeThread::exportQc(const QString& path, const compute::PipelineParams& thresholds) {
  QMetaObject::invokeMethod(worker_, "exportQc", Qt::QueuedConnection, Q_ARG(QString, path),
                            Q_ARG(orrery::compute::PipelineParams, thresholds));
}

void ComputeThread::storedEmbedding(const QString& key) {
  QMetaObject::invokeMethod(worker_, "storedEmbedding", Qt::QueuedConnection, Q_ARG(QString, key));
}

void ComputeThread::geneValues(const QString& gene) {
  QMetaObject::invokeMethod(worker_, "geneValues", Qt::QueuedConnection, Q_ARG(QString, gene));
}

void ComputeThread::save(const QString& path,
                         std::shared_ptr<const compute::ClusterAnnotation> annotation,
                         int zarr_format, bool with_matrices) {
  QMetaObject::invokeMethod(
      worker_, "save", Qt::QueuedConnection, Q_ARG(QString, path),
      Q_ARG(std::shared_ptr<const orrery::compute::ClusterAnnotation>, annotation),
      Q_ARG(int, zarr_format), Q_ARG(bool, with_matrices));
}

}  // namespace orrery::app
