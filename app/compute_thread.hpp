// ComputeThread owns the store, the backend and the pipeline result on a worker QThread. The UI
// sends requests by queued calls (run, save, cancel) and receives immutable snapshots by signal;
// the UI thread never runs a stage.
#pragma once

#include <QObject>
#include <QString>
#include <QThread>
#include <memory>
#include <mutex>

#include "compute/pipeline.hpp"
#include "compute/result_writer.hpp"

namespace orrery::app {

struct MarkerRow {
  std::string gene;
  double score = 0, logfoldchange = 0, pval_adj = 1, pct_in = 0, pct_out = 0;
};

// A dot plot's numbers: per group and gene, the mean log-normalised expression and the fraction
// of the group's cells expressing the gene (row-major, groups x genes).
struct DotPlotData {
  QStringList genes, groups;
  std::vector<double> mean, fraction;
  double at_mean(int group, int gene) const { return mean[group * genes.size() + gene]; }
  double at_fraction(int group, int gene) const { return fraction[group * genes.size() + gene]; }
};

// A categorical obs column for the kept cells (e.g. the input's cell_type), to colour by.
struct ObsCategories {
  QString name;
  std::vector<std::int32_t> codes;  // per kept cell, -1 = missing
  std::vector<std::string> categories, colors;
};

// What the window shows while a store's pipeline runs: the embedding the store already holds
// (scanpy's X_umap of an analysed store, a paper's X_tsne, ...) for every cell, coloured by one
// of its categorical obs columns (preferring one with stored colours) when it has any.
struct StoredPreview {
  QString store_path, embedding;                    // the obsm key
  std::vector<float> xy;                            // n_obs x 2: the embedding's first two columns
  std::shared_ptr<const ObsCategories> categories;  // per cell of the store, or null
};

// What the UI needs to draw and list: copied out of the result once per run.
struct RunSnapshot {
  QString store_path;
  std::int64_t n_cells_total = 0, n_genes_total = 0;
  std::int64_t n_cells = 0, n_genes = 0;
  std::vector<float> umap_xy;  // n_cells x 2
  std::vector<std::int32_t> labels;
  std::vector<std::string> palette;
  std::vector<std::int64_t> cluster_sizes;
  std::vector<std::string> cell_names;
  std::vector<std::string> gene_names;          // kept genes, for search
  std::vector<std::string> obs_numeric;         // numeric obs/QC columns one can colour by
  std::vector<std::string> obs_categorical;     // categorical obs columns one can colour by
  std::vector<std::vector<MarkerRow>> markers;  // per cluster, top genes by score
  // The input's own embeddings (obsm keys with at least two columns), X_umap and X_tsne first:
  // the kept cells can be drawn on them instead of this run's UMAP.
  std::vector<std::string> stored_embeddings;
  QString backend_note;
  bool qc_reused = false;  // the QC pass of an earlier run was reused
  // Stages taken from the previous run because nothing they depend on changed
  // (PipelineHooks::reuse): an Apply that changes Leiden's resolution re-runs Leiden only.
  QStringList reused_stages;
  QStringList warnings;  // what the run warned of (PipelineResult::warnings)
  double seconds = 0;
  // The kept counts held gene by gene after the run (0: gene search and selections read the
  // store until a first query keeps them).
  double counts_mib = 0;
};

class ComputeWorker : public QObject {
  Q_OBJECT
 public:
  explicit ComputeWorker(QObject* parent = nullptr) : QObject(parent) {}
  // Thread-safe: flags the run in progress to stop at its next chunk.
  void cancel();
  // Clears a cancel left over from an earlier run (called when a new run is queued).
  void reset_cancel();
  // Where a device backend streams the UMAP layout while it optimises (the viewport's channel,
  // UmapView::layoutChannel()). Set before the first run.
  void setLayoutChannel(std::shared_ptr<compute::LayoutChannel> channel) {
    layout_channel_ = std::move(channel);
  }
  quint64 stream_generation() const;
  // What the kept counts held gene by gene take (0: none held; passes read the store).
  std::int64_t counts_bytes() const {
    return counts_ ? static_cast<std::int64_t>(counts_->bytes()) : 0;
  }

 public slots:
  // `preview`: emit storedPreview first when the store holds an embedding (a store just
  // opened; re-runs keep their result on screen).
  // `text_layout`: an io::TextLayout, how a text table's rows are read.
  void run(const QString& path, const orrery::compute::PipelineParams& params, bool preview,
           int text_layout = 0);
  // `zarr_format` (2 or 3) when `path` ends in .zarr; without `with_matrices` the results only
  // (no X, layers or raw: compute::write_result_h5ad).
  void save(const QString& path,
            std::shared_ptr<const orrery::compute::ClusterAnnotation> annotation, int zarr_format,
            bool with_matrices);
  // A kept gene's log-normalised values, or an obs / QC column (checked first, as scanpy's
  // color= does): numeric ones as values per kept cell, categorical ones as categories.
  void geneValues(const QString& gene);
  // Wilcoxon markers of `selection` against the rest, or against `reference` when given (cells
  // in both count for the selection).
  void compareSelection(std::shared_ptr<const std::vector<bool>> selection,
                        std::shared_ptr<const std::vector<bool>> reference = nullptr);
  // Dot plot numbers of `genes` for the groups of `labels` (kept-cell order, -1: none), named
  // `groups`; one pass over the store.
  void dotPlot(const QStringList& genes, std::shared_ptr<const std::vector<std::int32_t>> labels,
               const QStringList& groups);
  // The first two columns of the input's obsm `key` for the kept cells: embeddingReady.
  void storedEmbedding(const QString& key);
  // The QC metrics of every cell of the store as CSV (as scanpy's obs columns, plus whether the
  // cell passes `thresholds`), written on this thread to a temporary file renamed on success;
  // saved(path) or failed().
  void exportQc(const QString& path, const orrery::compute::PipelineParams& thresholds);
  // Adds the columns of a table of cell annotations (.csv/.tsv, a row per cell) to the open
  // store's obs, and again each time a run reopens that store: annotationsImported or failed().
  void importAnnotations(const QString& table);

 signals:
  void progress(const QString& stage, double fraction);
  // A layout through the host; `stream`: the layout channel's generation then (0: none), the
  // stream this layout ends (UmapView::endStreamedLayout).
  void layoutStep(std::shared_ptr<const std::vector<float>> xy, quint64 stream);
  // A run ended (before its outcome): the layout stream it may have opened ends with it.
  void streamFinished(quint64 stream);
  void qcReady(std::shared_ptr<const orrery::compute::QcMetrics> metrics);
  // The opened store described as by `orrery info`, before the first pass over X.
  void storeOpened(const QString& summary);
  // With storeOpened: the store's format ("h5ad", "text", ...), how X is held (x_encoding:
  // for a text table, which way its rows were read and why) and, for a text table, that
  // io::TextLayout.
  void storeFormat(const QString& path, const QString& format, const QString& encoding,
                   int text_layout);
  // After storeOpened, when the store holds an embedding; the pipeline then runs.
  void storedPreview(std::shared_ptr<const orrery::app::StoredPreview> preview);
  void embeddingReady(const QString& key, std::shared_ptr<const std::vector<float>> xy);
  void finished(std::shared_ptr<const orrery::app::RunSnapshot> snapshot);
  void saved(const QString& path);
  void geneReady(const QString& gene, std::shared_ptr<const std::vector<float>> values);
  void selectionMarkers(std::shared_ptr<const std::vector<orrery::app::MarkerRow>> rows);
  void dotPlotReady(std::shared_ptr<const orrery::app::DotPlotData> data);
  void categoriesReady(std::shared_ptr<const orrery::app::ObsCategories> categories);
  // A query after the run kept the counts gene by gene (`mib` of memory): the next ones read
  // them, not the store.
  void countsKept(double mib);
  // The columns a table added (`added`), the store's numeric and categorical obs columns one
  // can colour by now, and a line saying what was matched.
  void annotationsImported(const QStringList& added, const QStringList& numeric,
                           const QStringList& categorical, const QString& summary);
  void failed(const QString& message);
  void cancelled();
  // After every run, however it ended, just before finished, failed or cancelled.
  void runEnded();

 private:
  std::mutex progress_mutex_;
  compute::Progress* active_ = nullptr;
  bool cancel_requested_ = false;
  std::unique_ptr<io::Store> store_;
  std::unique_ptr<compute::Backend> backend_;
  std::shared_ptr<compute::LayoutChannel> layout_channel_;
  std::unique_ptr<compute::PipelineResult> result_;
  compute::PipelineParams params_;
  // Tables of cell annotations imported into store `imported_for_`'s obs, in order.
  QString imported_for_;
  QStringList imported_tables_;
  // Adds `table`'s columns to `store`'s obs; returns their names and sets `summary`.
  std::vector<std::string> add_annotations(io::Store& store, const QString& table,
                                           QString& summary) const;
  // result_'s kept counts gene by gene (from its markers pass, or the first pass after it that
  // read them within the budget), or null: gene search, dot plots and selection markers then
  // read memory instead of the store.
  std::shared_ptr<const compute::GeneMajorCounts> counts_;
  // Runs `pass` over the kept counts: from memory when held, else from the store, keeping them
  // gene by gene for the next pass when they fit counts_budget().
  void with_kept_counts(const std::function<void(const compute::ChunkSource&)>& pass);
  // Calls visit(k, row, value) with the log-normalised values of kept gene columns[k] (rows
  // increasing for each k; rows of zero value may be left out).
  void for_each_gene_value(const std::vector<std::int32_t>& columns,
                           const std::function<void(std::size_t, std::int64_t, float)>& visit);
  // The store result_ was computed on, and its file's size and modification time then (a
  // store changed on disk, or opened again, is not reused).
  QString result_path_;
  QString result_stamp_;
  // QC metrics of the last store opened, reused when only thresholds or later stages change.
  QString qc_path_, qc_stamp_;
  std::shared_ptr<const compute::QcMetrics> qc_;
};

class ComputeThread : public QObject {
  Q_OBJECT
 public:
  explicit ComputeThread(QObject* parent = nullptr);
  ~ComputeThread() override;
  ComputeWorker* worker() const { return worker_; }
  void run(const QString& path, const compute::PipelineParams& params, bool preview = false,
           io::TextLayout text_layout = io::TextLayout::Guess);
  void save(const QString& path, std::shared_ptr<const compute::ClusterAnnotation> annotation = {},
            int zarr_format = 2, bool with_matrices = true);
  void compareSelection(std::shared_ptr<const std::vector<bool>> selection,
                        std::shared_ptr<const std::vector<bool>> reference = nullptr);
  void geneValues(const QString& gene);
  void dotPlot(const QStringList& genes, std::shared_ptr<const std::vector<std::int32_t>> labels,
               const QStringList& groups);
  void exportQc(const QString& path, const compute::PipelineParams& thresholds);
  void storedEmbedding(const QString& key);
  void importAnnotations(const QString& table);
  void cancel() { worker_->cancel(); }

 private:
  QThread thread_;
  ComputeWorker* worker_;
};

}  // namespace orrery::app

Q_DECLARE_METATYPE(orrery::compute::PipelineParams)
Q_DECLARE_METATYPE(std::shared_ptr<const orrery::app::RunSnapshot>)
Q_DECLARE_METATYPE(std::shared_ptr<const std::vector<float>>)
Q_DECLARE_METATYPE(std::shared_ptr<const orrery::compute::QcMetrics>)
Q_DECLARE_METATYPE(std::shared_ptr<const std::vector<bool>>)
Q_DECLARE_METATYPE(std::shared_ptr<const orrery::compute::ClusterAnnotation>)
Q_DECLARE_METATYPE(std::shared_ptr<const std::vector<orrery::app::MarkerRow>>)
Q_DECLARE_METATYPE(std::shared_ptr<const std::vector<std::int32_t>>)
Q_DECLARE_METATYPE(std::shared_ptr<const orrery::app::DotPlotData>)
Q_DECLARE_METATYPE(std::shared_ptr<const orrery::app::ObsCategories>)
Q_DECLARE_METATYPE(std::shared_ptr<const orrery::app::StoredPreview>)
