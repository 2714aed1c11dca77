#include "result_writer.hpp"

#include <set>

#include "io/anndata_reader.hpp"
#include "io/anndata_writer.hpp"
#include "io/error.hpp"
#include "palette.hpp"

namespace orrery::compute {
namespace {

template <typename T, typename Src>
std::vector<T> pick(const Src& values, const std::vector<CellIndex>& rows) {
  std::vector<T> out;
  out.reserve(rows.size());
  for (auto i : rows) out.push_back(static_cast<T>(values[i]));
  return out;
}

// scanpy's uns/rank_genes_groups: params plus one rec-array per statistic with a field per
// group, rows ordered by decreasing score within each group.
void write_markers(io::AnnDataWriter& w, const PipelineResult& r, const PipelineParams& p,
                   const std::vector<std::string>& gene_names,
                   const std::vector<std::string>& group_names) {
  const std::string key = "rank_genes_groups";
  w.write_uns_dict(key);
  w.write_uns_dict(key + "/params");
  w.write_uns_string(key + "/params/groupby", "leiden");
  w.write_uns_string(key + "/params/reference", "rest");
  w.write_uns_string(
      key + "/params/method",
      p.wilcoxon.method == "binned" ||
              (p.wilcoxon.method == "auto" &&
               static_cast<std::int64_t>(r.kept_cells.size()) > p.wilcoxon.exact_max_cells)
          ? "wilcoxon_binned"
          : "wilcoxon");
  w.write_uns_bool(key + "/params/use_raw", false);
  w.write_uns_string(key + "/params/corr_method", "benjamini-hochberg");
  w.write_uns_bool(key + "/params/tie_correct", p.wilcoxon.tie_correct);
  std::vector<std::string> groups;
  std::vector<std::vector<std::string>> names;
  std::vector<std::vector<double>> scores, pvals, pvals_adj, lfc;
  for (const auto& m : r.markers) {
    groups.push_back(group_names.at(m.group));
    auto& n = names.emplace_back();
    auto& s = scores.emplace_back();
    auto& pv = pvals.emplace_back();
    auto& pa = pvals_adj.emplace_back();
    auto& l = lfc.emplace_back();
    for (auto g : m.order) {
      n.push_back(gene_names[g]);
      s.push_back(m.scores[g]);
      pv.push_back(m.pvals[g]);
      pa.push_back(m.pvals_adj[g]);
      l.push_back(m.logfoldchanges[g]);
    }
  }
  w.write_uns_recarray(key + "/names", groups, names);
  w.write_uns_recarray(key + "/scores", groups, scores, true);
  w.write_uns_recarray(key + "/logfoldchanges", groups, lfc, true);
  w.write_uns_recarray(key + "/pvals", groups, pvals, false);
  w.write_uns_recarray(key + "/pvals_adj", groups, pvals_adj, false);
}

// A column of the input restricted (and reordered) to `rows`.
ColumnValues subset(const ColumnValues& values, const std::vector<CellIndex>& rows) {
  return std::visit(
      [&](const auto& v) -> ColumnValues {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, Categorical>) {
          Categorical out = v;
          out.codes = pick<std::int32_t>(v.codes, rows);
          return out;
        } else {
          using T = typename V::value_type;
          return pick<T>(v, rows);
        }
      },
      values);
}

}  // namespace

bool is_result_obs_column(const std::string& name) {
  return name == "n_genes_by_counts" || name == "total_counts" || name == "total_counts_mt" ||
         name == "pct_counts_mt" || name == "leiden" ||
         (name.starts_with("pct_counts_in_top_") && name.ends_with("_genes"));
}

namespace {

// The input's own columns, kept for the kept rows unless the result has a column of that name.
void carry_columns(const DataFrame& input, const std::vector<CellIndex>& rows, DataFrame& out) {
  for (const auto& c : input.columns)
    if (!out.find(c.name))
      out.columns.push_back({c.name, subset(c.values, rows), c.nullable, c.nullable_bytes});
}

// Streams `reader`'s rows of the kept cells with columns through `column_map` (-1 drops), as
// chunks of `n_cols` columns.
std::function<bool(CsrMatrix&)> kept_rows(io::RowChunkReader& reader, const PipelineResult& r,
                                          const std::vector<std::int32_t>& column_map,
                                          std::int64_t n_cols, std::size_t chunk_bytes,
                                          Progress& progress) {
  const std::int64_t step = reader.rows_for_budget(chunk_bytes);
  return [&reader, &r, &column_map, n_cols, step, &progress, r0 = std::int64_t{0},
          raw = CsrMatrix{}](CsrMatrix& chunk) mutable {
    if (r0 >= reader.n_rows()) return false;
    progress.check();
    const std::int64_t r1 = std::min(reader.n_rows(), r0 + step);
    reader.read_rows_into(r0, r1, raw);
    kept_chunk(raw, r0, r, column_map, chunk);
    chunk.n_cols = n_cols;
    r0 = r1;
    return true;
  };
}

// The rest of the input AnnData: raw (all of its genes, kept cells), varm (kept genes), obsp
// graphs other than ours (kept cells both ways) and uns entries the results do not replace.
// What cannot be copied is named in a warning, never silently dropped.
void carry_input_elements(io::Store& store, const PipelineResult& r, const PipelineParams& p,
                          const DataFrame& obs, io::AnnDataWriter& w, Progress& progress,
                          bool with_raw) {
  const io::Element& root = *store.root;
  std::vector<std::string> skipped;
  if (auto raw = root.open("raw"); raw && store.has_raw && with_raw) {
    auto x = raw->require("X");
    const auto shape = x->is_group() ? x->int_attr("shape") : x->shape();
    if (shape.size() != 2) x->fail("raw/X has no 2-D shape");
    auto reader = io::open_matrix(std::move(x), store.n_obs(), shape[1], {});
    std::vector<std::int32_t> identity(static_cast<std::size_t>(shape[1]));
    for (std::size_t g = 0; g < identity.size(); ++g) identity[g] = static_cast<std::int32_t>(g);
    progress.report("write: raw", 0.0);
    w.write_raw(*raw, static_cast<std::int64_t>(r.kept_cells.size()), shape[1],
                kept_rows(*reader, r, identity, shape[1], p.chunk_bytes, progress), skipped);
  }
  if (auto varm = root.open("varm"); varm && varm->is_group()) {
    const std::vector<std::int64_t> genes(r.kept_genes.begin(), r.kept_genes.end());
    for (const auto& key : varm->members())
      w.copy(*varm->require(key), "varm/" + key, skipped, &genes);
  }
  std::vector<std::int32_t> cell_map(static_cast<std::size_t>(store.n_obs()), -1);
  for (std::size_t i = 0; i < r.kept_cells.size(); ++i)
    cell_map[r.kept_cells[i]] = static_cast<std::int32_t>(i);
  const auto n_kept = static_cast<std::int64_t>(r.kept_cells.size());
  for (const auto& key : store.obsp_keys) {
    if (key == "connectivities" || key == "distances") continue;
    auto reader = io::open_matrix(root.require("obsp/" + key), store.n_obs(), store.n_obs(), {});
    auto next = kept_rows(*reader, r, cell_map, n_kept, p.chunk_bytes, progress);
    CsrMatrix kept, chunk;
    kept.n_rows = 0;
    kept.n_cols = n_kept;
    while (next(chunk)) {
      for (std::int64_t i = 0; i < chunk.n_rows; ++i)
        kept.indptr.push_back(kept.indptr.back() + chunk.indptr[i + 1] - chunk.indptr[i]);
      kept.indices.insert(kept.indices.end(), chunk.indices.begin(), chunk.indices.end());
      kept.data.insert(kept.data.end(), chunk.data.begin(), chunk.data.end());
      kept.n_rows += chunk.n_rows;
    }
    w.write_obsp(key, kept);
  }
  // Entries the results write themselves: scanpy's records of this run and the colours of
  // every categorical obs column written.
  std::set<std::string> ours = {"neighbors", "umap", "leiden", "pca", "hvg", "rank_genes_groups"};
  for (const auto& column : obs.columns) ours.insert(column.name + "_colors");
  if (auto uns = root.open("uns"); uns && uns->is_group())
    for (const auto& key : uns->members())
      if (!ours.count(key)) w.copy(*uns->require(key), "uns/" + key, skipped);
  if (!skipped.empty()) {
    std::string list;
    for (const auto& s : skipped) list += (list.empty() ? "" : ", ") + s;
    progress.warn("not copied (no anndata form Orrery can write): " + list);
  }
}

// scanpy's uns entries describing how the results were computed.
void write_uns_params(io::AnnDataWriter& w, const PipelineResult& r, const PipelineParams& p) {
  w.write_uns_dict("neighbors");
  w.write_uns_string("neighbors/connectivities_key", "connectivities");
  w.write_uns_string("neighbors/distances_key", "distances");
  w.write_uns_dict("neighbors/params");
  w.write_uns_integer("neighbors/params/n_neighbors", p.neighbors.n_neighbors);
  w.write_uns_integer("neighbors/params/n_pcs", p.neighbors.n_pcs);
  w.write_uns_string("neighbors/params/method", "umap");
  w.write_uns_string("neighbors/params/metric", p.neighbors.metric);
  w.write_uns_integer("neighbors/params/random_state", static_cast<std::int64_t>(p.neighbors.seed));
  const auto [a, b] = find_ab_params(p.umap.spread, p.umap.min_dist);
  w.write_uns_dict("umap");
  w.write_uns_dict("umap/params");
  w.write_uns_number("umap/params/a", a);
  w.write_uns_number("umap/params/b", b);
  w.write_uns_dict("leiden");
  w.write_uns_dict("leiden/params");
  w.write_uns_number("leiden/params/resolution", p.leiden.resolution);
  w.write_uns_integer("leiden/params/random_state", static_cast<std::int64_t>(p.leiden.seed));
  w.write_uns_integer("leiden/params/n_iterations", p.leiden.n_iterations);
  if (!r.leiden_flavor.empty()) w.write_uns_string("leiden/params/flavor", r.leiden_flavor);
  w.write_uns_dict("pca");
  w.write_uns_numbers("pca/variance", r.pca.variance);
  w.write_uns_numbers("pca/variance_ratio", r.pca.variance_ratio);
  w.write_uns_dict("hvg");
  w.write_uns_string("hvg/flavor", p.hvg.flavor);
}

}  // namespace

void write_result_h5ad(io::Store& store, const PipelineResult& r, const PipelineParams& p,
                       Backend& backend, const std::string& out_path, Progress& progress,
                       const ClusterAnnotation* annotation, int zarr_format, bool with_matrices) {
  io::AnnDataWriter w(out_path, zarr_format);
  const auto gene_map = kept_gene_map(r);
  io::RowChunkReader& x = *store.X;
  const std::int64_t step = x.rows_for_budget(p.chunk_bytes);
  std::int64_t r0 = 0;
  PipelineParams params = p;
  CsrMatrix raw;  // reused from chunk to chunk
  if (with_matrices)
    w.write_X(static_cast<std::int64_t>(r.kept_cells.size()),
              static_cast<std::int64_t>(r.kept_genes.size()), [&](CsrMatrix& chunk) {
                if (r0 >= x.n_rows()) return false;
                progress.check();
                const std::int64_t r1 = std::min(x.n_rows(), r0 + step);
                x.read_rows_into(r0, r1, raw);
                log_normalized_chunk(raw, r0, r, gene_map, params, backend, chunk);
                progress.report("write", static_cast<double>(r1) / x.n_rows());
                r0 = r1;
                return true;
              });

  DataFrame obs;
  obs.index.reserve(r.kept_cells.size());
  for (auto i : r.kept_cells) obs.index.push_back(store.obs.index[i]);
  obs.columns.push_back(
      {"n_genes_by_counts", pick<std::int32_t>(r.cell_qc.n_genes_by_counts, r.kept_cells)});
  obs.columns.push_back({"total_counts", pick<float>(r.cell_qc.total_counts, r.kept_cells)});
  for (std::size_t t = 0; t < r.cell_qc.top_n.size(); ++t)
    obs.columns.push_back({"pct_counts_in_top_" + std::to_string(r.cell_qc.top_n[t]) + "_genes",
                           pick<double>(r.cell_qc.pct_counts_in_top[t], r.kept_cells)});
  obs.columns.push_back({"total_counts_mt", pick<float>(r.cell_qc.total_counts_qc, r.kept_cells)});
  obs.columns.push_back({"pct_counts_mt", pick<float>(r.cell_qc.pct_counts_qc, r.kept_cells)});
  Categorical leiden;
  if (annotation) {
    if (annotation->labels.size() != r.kept_cells.size() ||
        annotation->colors.size() != annotation->names.size())
      throw Error(out_path, "obs/leiden", "annotation does not match the result");
    leiden.codes = annotation->labels;
    leiden.categories = annotation->names;
    leiden.colors = annotation->colors;
  } else {
    leiden.codes.assign(r.leiden.begin(), r.leiden.end());
    for (int c = 0; c < r.n_clusters; ++c) leiden.categories.push_back(std::to_string(c));
    leiden.colors = categorical_palette(r.n_clusters);
  }
  const std::vector<std::string> categories = leiden.categories;
  obs.columns.push_back({"leiden", std::move(leiden)});
  carry_columns(store.obs, r.kept_cells, obs);
  w.write_obs(obs);

  DataFrame var;
  std::vector<CellIndex> genes(r.kept_genes.begin(), r.kept_genes.end());
  for (auto g : genes) var.index.push_back(store.var.index[g]);
  if (const Column* ids = store.var.find("gene_ids"))
    if (auto* v = std::get_if<std::vector<std::string>>(&ids->values))
      var.columns.push_back({"gene_ids", pick<std::string>(*v, genes)});
  var.columns.push_back({"n_cells", std::vector<std::int64_t>(r.kept_gene_n_cells)});
  std::vector<bool> hv(r.hvg.highly_variable.begin(), r.hvg.highly_variable.end());
  var.columns.push_back({"highly_variable", std::move(hv)});
  var.columns.push_back({"means", r.hvg.means});
  if (p.hvg.flavor == "seurat_v3") {  // scanpy's column names for this flavor
    var.columns.push_back({"variances", r.hvg.variances});
    var.columns.push_back({"variances_norm", r.hvg.variances_norm});
    var.columns.push_back({"highly_variable_rank", r.hvg.rank});
  } else {
    var.columns.push_back({"dispersions", r.hvg.dispersions});
    var.columns.push_back({"dispersions_norm", r.hvg.dispersions_norm});
  }
  if (!r.hvg.n_batches.empty()) {  // hvg.batch_key: scanpy's names
    var.columns.push_back(
        {"highly_variable_nbatches",
         std::vector<std::int64_t>(r.hvg.n_batches.begin(), r.hvg.n_batches.end())});
    if (p.hvg.flavor != "seurat_v3")  // scanpy reports it for the other flavors only
      var.columns.push_back(
          {"highly_variable_intersection",
           std::vector<bool>(r.hvg.intersection.begin(), r.hvg.intersection.end())});
  }
  carry_columns(store.var, genes, var);
  w.write_var(var);

  w.write_obsm("X_pca", r.x_pca);
  w.write_obsm("X_umap", r.x_umap);
  // The input's own embeddings (e.g. a published X_tsne), restricted to the kept cells.
  for (const auto& key : store.obsm_keys) {
    if (key == "X_pca" || key == "X_umap" || !store.root) continue;
    auto element = store.root->open("obsm/" + key);
    if (!element || element->is_group() || element->shape().size() != 2) continue;
    w.write_obsm(key, io::read_dense_rows(*element, store.n_obs(), &r.kept_cells));
  }
  // The input's layers (e.g. raw counts), streamed for the kept cells and genes.
  for (const auto& key : store.layer_keys) {
    if (!store.root || !with_matrices) break;
    auto layer =
        io::open_matrix(store.root->require("layers/" + key), store.n_obs(), store.n_vars(), {});
    const std::int64_t layer_step = layer->rows_for_budget(p.chunk_bytes);
    std::int64_t l0 = 0;
    CsrMatrix raw_layer;
    w.write_layer(key, static_cast<std::int64_t>(r.kept_cells.size()),
                  static_cast<std::int64_t>(r.kept_genes.size()), [&](CsrMatrix& chunk) {
                    if (l0 >= layer->n_rows()) return false;
                    progress.check();
                    const std::int64_t l1 = std::min(layer->n_rows(), l0 + layer_step);
                    layer->read_rows_into(l0, l1, raw_layer);
                    kept_chunk(raw_layer, l0, r, gene_map, chunk);
                    l0 = l1;
                    return true;
                  });
  }
  if (store.root) carry_input_elements(store, r, p, obs, w, progress, with_matrices);
  write_uns_params(w, r, p);
  w.write_obsp("connectivities", r.graph.connectivities);
  w.write_obsp("distances", r.graph.distances);
  // Markers belong to the Leiden clusters; after merges or new labels they no longer describe
  // the categories, so they are written only when the cells' categories are still Leiden's.
  const bool relabelled =
      annotation && (annotation->labels != r.leiden ||
                     annotation->names.size() != static_cast<std::size_t>(r.n_clusters));
  if (!r.markers.empty() && !relabelled) write_markers(w, r, p, var.index, categories);
  progress.check();
  w.commit();
}

}  // namespace orrery::compute
