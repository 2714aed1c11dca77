// PipelineParams from JSON and their validation: every field named in errors as "section.key".
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "pipeline.hpp"

namespace orrery::compute {
namespace {

using nlohmann::json;

template <typename T>
void take(const json& section, const std::string& where, const char* key, T& out) {
  if (!section.contains(key)) return;
  try {
    out = section.at(key).get<T>();
  } catch (const json::exception& e) {
    throw Error("", where + "." + key, std::string("wrong type: ") + e.what());
  }
}

void reject_unknown(const json& section, const std::string& where,
                    std::initializer_list<const char*> known) {
  if (!section.is_object()) throw Error("", where, "expected an object");
  for (auto it = section.begin(); it != section.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (!ok)
      throw Error("", where.empty() ? it.key() : where + "." + it.key(), "unknown parameter");
  }
}

void require(bool ok, const char* field, const std::string& message) {
  if (!ok) throw Error("", field, message);
}

// scanpy names the seeds random_state; either name is taken, not both.
void take_seed(const json& section, const std::string& where, std::uint64_t& seed) {
  if (section.contains("seed") && section.contains("random_state"))
    throw Error("", where + ".random_state", "give seed or random_state, not both");
  for (const char* key : {"seed", "random_state"}) {
    if (!section.contains(key)) continue;
    const json& v = section[key];
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0))
      throw Error("", where + "." + key, "must be a non-negative integer (runs here are seeded)");
    seed = v.get<std::uint64_t>();
  }
}

}  // namespace

void PipelineParams::update_from_json(const json& j) {
  reject_unknown(j, "",
                 {"qc", "normalize", "hvg", "scale", "pca", "neighbors", "umap", "leiden",
                  "markers", "chunk_mib", "pca_cache_mib", "gene_cache_mib", "backend"});
  if (j.contains("qc")) {
    const auto& s = j["qc"];
    reject_unknown(s, "qc",
                   {"mito_prefix", "min_genes", "max_genes", "max_pct_mito", "min_cells",
                    "min_counts", "max_counts", "percent_top"});
    if (s.contains("percent_top") && s["percent_top"].is_null())
      percent_top.clear();  // scanpy's percent_top=None
    else
      take(s, "qc", "percent_top", percent_top);
    take(s, "qc", "min_counts", min_counts);
    take(s, "qc", "max_counts", max_counts);
    take(s, "qc", "mito_prefix", qc_prefix);
    take(s, "qc", "min_genes", min_genes);
    take(s, "qc", "max_genes", max_genes);
    take(s, "qc", "max_pct_mito", max_pct_qc);
    take(s, "qc", "min_cells", min_cells);
  }
  if (j.contains("normalize")) {
    reject_unknown(j["normalize"], "normalize",
                   {"target_sum", "exclude_highly_expressed", "max_fraction"});
    take(j["normalize"], "normalize", "exclude_highly_expressed", exclude_highly_expressed);
    take(j["normalize"], "normalize", "max_fraction", max_fraction);
    if (j["normalize"].contains("target_sum") && j["normalize"]["target_sum"].is_null())
      target_sum = 0;
    else
      take(j["normalize"], "normalize", "target_sum", target_sum);
  }
  if (j.contains("hvg")) {
    const auto& s = j["hvg"];
    reject_unknown(s, "hvg",
                   {"flavor", "n_top_genes", "min_mean", "max_mean", "min_disp", "max_disp",
                    "n_bins", "span", "batch_key"});
    take(s, "hvg", "batch_key", hvg.batch_key);
    take(s, "hvg", "span", hvg.span);
    take(s, "hvg", "flavor", hvg.flavor);
    if (s.contains("n_top_genes") && s["n_top_genes"].is_null())
      hvg.n_top_genes = 0;  // scanpy's None: select by the mean and dispersion cutoffs
    else
      take(s, "hvg", "n_top_genes", hvg.n_top_genes);
    take(s, "hvg", "min_mean", hvg.min_mean);
    take(s, "hvg", "max_mean", hvg.max_mean);
    take(s, "hvg", "min_disp", hvg.min_disp);
    take(s, "hvg", "max_disp", hvg.max_disp);
    take(s, "hvg", "n_bins", hvg.n_bins);
  }
  if (j.contains("scale")) {
    reject_unknown(j["scale"], "scale", {"max_value", "zero_center"});
    if (j["scale"].contains("max_value") && j["scale"]["max_value"].is_null())
      scale_max_value = std::numeric_limits<float>::infinity();  // scanpy's None
    else
      take(j["scale"], "scale", "max_value", scale_max_value);
    take(j["scale"], "scale", "zero_center", scale_zero_center);
  }
  if (j.contains("pca")) {
    reject_unknown(j["pca"], "pca", {"n_comps", "svd_solver"});
    take(j["pca"], "pca", "n_comps", pca.n_comps);
    // scanpy's solvers all approximate the same top components; here they are always the exact
    // eigenvectors of the streamed covariance, so the name is checked and otherwise ignored.
    std::string solver = "arpack";
    take(j["pca"], "pca", "svd_solver", solver);
    require(solver == "arpack" || solver == "randomized" || solver == "auto" ||
                solver == "lobpcg" || solver == "covariance_eigh" || solver == "tsqr",
            "pca.svd_solver", "must be arpack, randomized, auto, lobpcg, covariance_eigh or tsqr");
  }
  if (j.contains("neighbors")) {
    const auto& s = j["neighbors"];
    reject_unknown(
        s, "neighbors",
        {"n_neighbors", "n_pcs", "metric", "method", "exact_max_cells", "ivf_lists", "ivf_probes"});
    take(s, "neighbors", "ivf_lists", neighbors.ivf_lists);
    take(s, "neighbors", "ivf_probes", neighbors.ivf_probes);
    take(s, "neighbors", "method", neighbors.method);
    take(s, "neighbors", "exact_max_cells", neighbors.exact_max_cells);
    take(s, "neighbors", "n_neighbors", neighbors.n_neighbors);
    take(s, "neighbors", "n_pcs", neighbors.n_pcs);
    take(s, "neighbors", "metric", neighbors.metric);
  }
  if (j.contains("umap")) {
    const auto& s = j["umap"];
    reject_unknown(s, "umap",
                   {"min_dist", "spread", "n_epochs", "learning_rate", "seed", "random_state",
                    "negative_sample_rate", "init"});
    take(s, "umap", "init", umap.init);
    take(s, "umap", "min_dist", umap.min_dist);
    take(s, "umap", "spread", umap.spread);
    take(s, "umap", "n_epochs", umap.n_epochs);
    take(s, "umap", "learning_rate", umap.learning_rate);
    take_seed(s, "umap", umap.seed);
    take(s, "umap", "negative_sample_rate", umap.negative_sample_rate);
  }
  if (j.contains("leiden")) {
    const auto& s = j["leiden"];
    reject_unknown(s, "leiden", {"resolution", "n_iterations", "seed", "random_state", "flavor"});
    take(s, "leiden", "flavor", leiden.flavor);
    take(s, "leiden", "resolution", leiden.resolution);
    take(s, "leiden", "n_iterations", leiden.n_iterations);
    take_seed(s, "leiden", leiden.seed);
  }
  if (j.contains("markers")) {
    const auto& s = j["markers"];
    if (s.is_boolean()) {
      markers = s.get<bool>();
    } else {
      reject_unknown(s, "markers", {"enabled", "method", "tie_correct", "n_bins", "corr_method"});
      take(s, "markers", "enabled", markers);
      take(s, "markers", "method", wilcoxon.method);
      if (wilcoxon.method == "wilcoxon") wilcoxon.method = "exact";  // scanpy's method name
      std::string correction = "benjamini-hochberg";
      take(s, "markers", "corr_method", correction);
      require(correction == "benjamini-hochberg", "markers.corr_method",
              "only benjamini-hochberg (scanpy's default) is computed");
      take(s, "markers", "tie_correct", wilcoxon.tie_correct);
      take(s, "markers", "n_bins", wilcoxon.n_bins);
    }
  }
  if (j.contains("chunk_mib")) {
    double mib = 0;
    take(j, "", "chunk_mib", mib);
    require(mib >= 1 && mib <= 1 << 20, "chunk_mib", "must be between 1 and 1048576");
    chunk_bytes = static_cast<std::size_t>(mib * 1024 * 1024);
  }
  if (j.contains("pca_cache_mib")) {
    double mib = 0;
    take(j, "", "pca_cache_mib", mib);
    require(mib >= 0 && mib <= 1 << 24, "pca_cache_mib", "must be between 0 and 16777216");
    pca_cache_bytes = static_cast<std::size_t>(mib * 1024 * 1024);
  }
  if (j.contains("gene_cache_mib")) {
    double mib = 0;
    take(j, "", "gene_cache_mib", mib);
    require(mib >= 0 && mib <= 1 << 24, "gene_cache_mib", "must be between 0 and 16777216");
    gene_cache_bytes = static_cast<std::size_t>(mib * 1024 * 1024);
  }
  take(j, "", "backend", backend);
  validate();
}

void PipelineParams::validate() const {
  require(min_genes >= 0, "qc.min_genes", "must be >= 0");
  require(max_fraction > 0 && max_fraction <= 1, "normalize.max_fraction", "must be in (0, 1]");
  require(percent_top.size() <= 16, "qc.percent_top", "at most 16 entries");
  for (std::size_t i = 0; i < percent_top.size(); ++i)
    require(percent_top[i] >= 1 && percent_top[i] <= 1000000 &&
                (i == 0 || percent_top[i] > percent_top[i - 1]),
            "qc.percent_top", "must be ascending numbers of genes between 1 and 1000000");
  require(max_genes >= 0, "qc.max_genes", "must be >= 0 (0: no bound)");
  require(std::isfinite(max_pct_qc), "qc.max_pct_mito", "must be finite");
  require(min_cells >= 0, "qc.min_cells", "must be >= 0");
  require(std::isfinite(min_counts) && std::isfinite(max_counts), "qc.min_counts",
          "must be finite");
  require(std::isfinite(target_sum), "normalize.target_sum", "must be finite");
  require(hvg.span > 0 && hvg.span <= 1, "hvg.span", "must be in (0, 1]");
  require(hvg.flavor == "cell_ranger" || hvg.flavor == "seurat" || hvg.flavor == "seurat_v3",
          "hvg.flavor", "must be cell_ranger, seurat or seurat_v3");
  require(hvg.n_top_genes >= 0 && hvg.n_top_genes <= 1000000, "hvg.n_top_genes",
          "must be between 0 and 1e6");
  require(hvg.n_bins >= 1 && hvg.n_bins <= 10000, "hvg.n_bins", "must be between 1 and 10000");
  require(hvg.flavor != "seurat_v3" || hvg.n_top_genes > 0, "hvg.n_top_genes",
          "seurat_v3 selects a number of genes (scanpy needs n_top_genes too)");
  require(scale_max_value > 0, "scale.max_value", "must be positive (or null: no clipping)");
  require(pca.n_comps >= 1 && pca.n_comps <= 1000, "pca.n_comps", "must be between 1 and 1000");
  require(neighbors.n_neighbors >= 2 && neighbors.n_neighbors <= 1000, "neighbors.n_neighbors",
          "must be between 2 and 1000");
  require(neighbors.metric == "euclidean" || neighbors.metric == "cosine", "neighbors.metric",
          "must be euclidean or cosine");
  require(neighbors.method == "auto" || neighbors.method == "exact" ||
              neighbors.method == "nndescent" || neighbors.method == "ivf",
          "neighbors.method", "must be auto, exact, nndescent or ivf");
  require(neighbors.ivf_lists >= 0 && neighbors.ivf_lists <= 1000000, "neighbors.ivf_lists",
          "must be between 0 (auto) and 1e6");
  require(neighbors.ivf_probes >= 1 && neighbors.ivf_probes <= 4096, "neighbors.ivf_probes",
          "must be between 1 and 4096");
  require(neighbors.n_pcs >= 0, "neighbors.n_pcs", "must be >= 0");
  require(umap.min_dist >= 0 && umap.spread > 0 && umap.min_dist <= umap.spread, "umap.min_dist",
          "need 0 <= min_dist <= spread");
  require(umap.init == "spectral" || umap.init == "pca" || umap.init == "random", "umap.init",
          "must be \"spectral\", \"pca\" or \"random\"");
  require(umap.n_epochs >= 0 && umap.n_epochs <= 100000, "umap.n_epochs", "must be 0..100000");
  require(umap.negative_sample_rate >= 0 && umap.negative_sample_rate <= 100,
          "umap.negative_sample_rate", "must be 0..100");
  require(leiden.resolution > 0 && std::isfinite(leiden.resolution), "leiden.resolution",
          "must be positive");
  require(leiden.n_iterations <= 100000, "leiden.n_iterations",
          "must be at most 100000 (negative: until stable)");
  require(leiden.flavor == "auto" || leiden.flavor == "igraph" || leiden.flavor == "leidenalg" ||
              leiden.flavor == "parallel",
          "leiden.flavor", "must be auto, igraph (or leidenalg) or parallel");
  require(wilcoxon.method == "exact" || wilcoxon.method == "binned" || wilcoxon.method == "auto",
          "markers.method", "must be exact (or wilcoxon), binned or auto");
  require(wilcoxon.n_bins >= 2 && wilcoxon.n_bins <= 100000, "markers.n_bins", "must be 2..100000");
  require(backend == "cpu" || backend == "cuda" || backend == "auto", "backend",
          "must be cpu, cuda or auto");
}

json report_json(const PipelineResult& r, const PipelineParams& p) {
  json stages = json::array();
  for (const auto& t : r.timings)
    stages.push_back({{"stage", t.name},
                      {"seconds", t.seconds},
                      {"cpu_seconds", t.cpu_seconds},
                      {"read_wait_seconds", t.read_wait_seconds},
                      {"staging_seconds", t.staging_seconds},
                      {"device_wait_seconds", t.device_wait_seconds},
                      {"peak_rss_mib", t.peak_rss_mib},
                      {"rows", t.rows},
                      {"rows_per_second", t.seconds > 0 ? t.rows / t.seconds : 0.0}});
  std::vector<double> ratio(r.pca.variance_ratio.begin(), r.pca.variance_ratio.end());
  return {{"backend", r.backend_note},
          {"n_cells", r.n_cells_total},
          {"n_genes", r.n_genes_total},
          {"n_cells_after_filter", r.kept_cells.size()},
          {"n_genes_after_filter", r.kept_genes.size()},
          {"target_sum", r.target_sum},
          {"n_hvg", r.hvg_genes.size()},
          {"pca_variance_ratio", ratio},
          {"leiden_n_clusters", r.n_clusters},
          {"leiden_flavor", r.leiden_flavor},
          {"umap_init", r.umap_init},
          {"reused_stages", r.reused_stages},
          {"warnings", r.warnings},
          {"peak_rss_mib", peak_rss_mib()},
          {"device_peak_mib", static_cast<double>(r.device_peak_bytes) / (1 << 20)},
          {"pca_cache_mib", static_cast<double>(r.pca_cache_bytes) / (1 << 20)},
          {"gene_cache_mib",
           r.counts_by_gene ? static_cast<double>(r.counts_by_gene->bytes()) / (1 << 20) : 0.0},
          {"stages", stages}};
}

}  // namespace orrery::compute
