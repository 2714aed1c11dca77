// GPU stage benchmark: the stages the CUDA backend runs (QC, HVG moments, normalize, PCA, kNN,
// UMAP and its spectral initial layout, Leiden, markers), timed on the CUDA and CPU backends on the
// same synthetic inputs, plus host-to-device bandwidth (pageable and pinned). Prints one JSON
// object: per stage seconds per backend, rows/s, peak device memory, and the checks that make the
// timings meaningful (Gram agreement, kNN recall of the GPU's exact and inverted-file searches
// against brute force on sampled queries).
// Usage: orrery_bench_gpu [--cells N] [--genes G] [--hvg H] [--knn-cells N] [--dims D] [--k K]
//                         [--cpu-knn-cells N] [--ivf-cells N] [--markers-exact-cells N]
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "compute/backend.hpp"
#include "compute/rng.hpp"
#include "compute/spectral.hpp"
#include "compute/synth.hpp"
#include "io/error.hpp"

#ifdef ORRERY_HAS_CUDA
#include <cuda_runtime.h>
#endif

using namespace orrery;
using json = nlohmann::json;

namespace {

double now() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

struct Args {
  std::int64_t cells = 100000, knn_cells = 1300000, cpu_knn_cells = 100000, ivf_cells = 0;
  std::int32_t genes = 28000;
  int hvg = 2000, dims = 50, k = 15;
  std::int64_t markers_exact_cells = 60000;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    const long long v = std::atoll(argv[i + 1]);
    if (f == "--cells")
      a.cells = v;
    else if (f == "--genes")
      a.genes = static_cast<std::int32_t>(v);
    else if (f == "--hvg")
      a.hvg = static_cast<int>(v);
    else if (f == "--knn-cells")
      a.knn_cells = v;
    else if (f == "--cpu-knn-cells")
      a.cpu_knn_cells = v;
    else if (f == "--ivf-cells")
      a.ivf_cells = v;
    else if (f == "--dims")
      a.dims = static_cast<int>(v);
    else if (f == "--k")
      a.k = static_cast<int>(v);
    else if (f == "--markers-exact-cells")
      a.markers_exact_cells = v;
    else
      throw Error("", f, "unknown option");
  }
  return a;
}

#ifdef ORRERY_HAS_CUDA
// Seconds per GiB moved host to device, 8 copies of 256 MiB.
json transfer_bandwidth() {
  const std::size_t bytes = std::size_t{256} << 20;
  void* device = nullptr;
  void* pinned = nullptr;
  std::vector<char> pageable(bytes, 1);
  if (cudaMalloc(&device, bytes) != cudaSuccess || cudaMallocHost(&pinned, bytes) != cudaSuccess)
    return {{"error", "allocation failed"}};
  std::memset(pinned, 1, bytes);
  auto rate = [&](const void* src) {
    cudaMemcpy(device, src, bytes, cudaMemcpyHostToDevice);  // warm-up
    const double t0 = now();
    for (int i = 0; i < 8; ++i) cudaMemcpy(device, src, bytes, cudaMemcpyHostToDevice);
    cudaDeviceSynchronize();
    return 8.0 * bytes / (now() - t0) / 1e9;
  };
  json j = {{"pageable_gb_per_s", rate(pageable.data())}, {"pinned_gb_per_s", rate(pinned)}};
  cudaFreeHost(pinned);
  cudaFree(device);
  return j;
}
#endif

// Gaussian blobs like a PCA embedding: 30 populations with unequal spreads (generated in
// blocks of 64k rows, each with its own stream, in parallel).
DenseMatrix embedding(std::int64_t n, int dims) {
  compute::Rng rng(17);
  const int clusters = 30;
  std::vector<double> centre(static_cast<std::size_t>(clusters) * dims), spread(clusters);
  for (auto& c : centre) c = 8 * rng.normal();
  for (auto& s : spread) s = 0.5 + 2 * rng.uniform();
  DenseMatrix x(n, dims);
  const std::int64_t block = 65536;
  tbb::parallel_for(std::int64_t{0}, (n + block - 1) / block, [&](std::int64_t b) {
    compute::Rng r(1000 + static_cast<std::uint64_t>(b));
    for (std::int64_t i = b * block; i < std::min(n, (b + 1) * block); ++i) {
      const int c = static_cast<int>(r.next() % clusters);
      for (int d = 0; d < dims; ++d)
        x.at(i, d) = static_cast<float>(centre[c * dims + d] + spread[c] * r.normal() / (1 + d));
    }
  });
  return x;
}

// Recall of `r` against brute force (double) on `queries` evenly spaced rows.
double sampled_recall(const DenseMatrix& x, const compute::KnnResult& r, int queries) {
  const std::int64_t n = x.rows;
  const int k = r.k;
  std::atomic<std::int64_t> hit = 0, total = 0;
  tbb::parallel_for(0, queries, [&](int q) {
    const std::int64_t i = static_cast<std::int64_t>(q) * n / queries;
    std::vector<std::pair<double, std::int64_t>> d(n);
    for (std::int64_t j = 0; j < n; ++j) {
      double s2 = 0;
      for (int c = 0; c < x.cols; ++c) {
        const double diff = double(x.at(i, c)) - x.at(j, c);
        s2 += diff * diff;
      }
      d[j] = {j == i ? -1.0 : s2, j};
    }
    std::partial_sort(d.begin(), d.begin() + k, d.end());
    for (int t = 1; t < k; ++t)
      for (int u = 1; u < k; ++u) hit += r.indices[i * k + u] == d[t].second;
    total += k - 1;
  });
  return double(hit) / double(total);
}

}  // namespace

int main(int argc, char** argv) try {
  const Args a = parse(argc, argv);
  std::string note;
  auto cpu = compute::make_cpu_backend();
  std::string why;
  auto cuda = compute::make_cuda_backend(&why);
  json out = {{"device", cuda ? why : "none: " + why},
              {"host_threads", std::thread::hardware_concurrency()},
              {"cells", a.cells},
              {"genes", a.genes},
              {"hvg", a.hvg}};
  std::vector<std::pair<std::string, compute::Backend*>> backends = {{"cpu", cpu.get()}};
  if (cuda) backends.emplace_back("cuda", cuda.get());
#ifdef ORRERY_HAS_CUDA
  if (cuda) out["host_to_device"] = transfer_bandwidth();
#endif

  // Synthetic counts in chunks of 20k cells: normalize + log1p, then the Gram pass over `hvg`
  // evenly spaced genes (scale statistics from the first pass).
  compute::SynthOptions so;
  so.n_cells = a.cells;
  so.n_genes = a.genes;
  const compute::SynthGenerator gen(so);
  const double t_gen = now();
  std::vector<CsrMatrix> chunks((a.cells + 19999) / 20000);
  tbb::parallel_for(std::size_t{0}, chunks.size(), [&](std::size_t i) {
    const std::int64_t r0 = static_cast<std::int64_t>(i) * 20000;
    chunks[i] = gen.rows(r0, std::min(a.cells, r0 + 20000));
  });
  std::int64_t nnz = 0;
  for (const auto& c : chunks) nnz += c.nnz();
  out["synth_seconds"] = now() - t_gen;
  out["nnz"] = nnz;
  // QC (mitochondrial-like genes: every 50th; scanpy's percent_top) and the HVG moments (seurat's
  // expm1 moments too) over the counts, each backend on the same chunks.
  {
    std::vector<char> mt(a.genes, 0);
    for (std::int32_t g = 0; g < a.genes; g += 50) mt[g] = 1;
    std::vector<compute::GeneQc> genes(backends.size());
    std::vector<compute::GeneMoments> moments(backends.size());
    for (std::size_t b = 0; b < backends.size(); ++b) {
      compute::CellQc cells;
      std::vector<std::int64_t> kept;
      double t0 = now();
      auto qc = backends[b].second->qc_pass(mt, {50, 100, 200, 500}, a.genes);
      for (const auto& c : chunks) qc->add(c, cells, [&](std::int64_t) { return true; });
      qc->finish(genes[b], kept);
      double s = now() - t0;
      out["stages"]["qc"][backends[b].first] = {{"seconds", s}, {"rows_per_s", a.cells / s}};
      t0 = now();
      auto pass = backends[b].second->moment_pass(
          {.n_genes = a.genes, .expm1 = true, .n_batches = 0, .normalize = {.target_sum = 1e4}});
      CsrMatrix scratch;
      for (const auto& c : chunks) {
        scratch = c;  // the pass may overwrite its input
        pass->add(scratch, nullptr);
      }
      moments[b] = pass->finish();
      s = now() - t0;
      out["stages"]["hvg_moments"][backends[b].first] = {{"seconds", s},
                                                         {"rows_per_s", a.cells / s}};
    }
    if (backends.size() == 2) {
      out["checks"]["qc_gene_totals_equal"] = genes[0].total_counts == genes[1].total_counts;
      double worst = 0;
      for (std::size_t g = 0; g < moments[0].sum.size(); ++g)
        worst = std::max(worst, std::fabs(moments[0].sum[g] - moments[1].sum[g]) /
                                    std::max(1.0, std::fabs(moments[0].sum[g])));
      out["checks"]["hvg_moment_max_rel_diff"] = worst;
    }
  }
  std::vector<std::vector<CsrMatrix>> lognorm(backends.size());
  for (std::size_t b = 0; b < backends.size(); ++b) {
    lognorm[b] = chunks;
    const double t0 = now();
    for (auto& c : lognorm[b]) backends[b].second->normalize_log1p(c, 1e4);
    const double s = now() - t0;
    out["stages"]["normalize_log1p"][backends[b].first] = {{"seconds", s},
                                                           {"rows_per_s", a.cells / s}};
  }
  compute::ScaledColumns cols;
  cols.column.assign(a.genes, -1);
  const int h = std::min<int>(a.hvg, a.genes);
  for (int c = 0; c < h; ++c) cols.column[static_cast<std::int64_t>(c) * a.genes / h] = c;
  {
    std::vector<double> sum(h, 0), sumsq(h, 0);
    for (const auto& c : lognorm[0])
      for (std::int64_t k = 0; k < c.nnz(); ++k)
        if (const int col = cols.column[c.indices[k]]; col >= 0)
          sum[col] += c.data[k], sumsq[col] += double(c.data[k]) * c.data[k];
    for (int c = 0; c < h; ++c) {
      const double m = sum[c] / a.cells, v = sumsq[c] / a.cells - m * m;
      cols.mean.push_back(static_cast<float>(m));
      cols.inv_std.push_back(v > 0 ? static_cast<float>(1 / std::sqrt(v)) : 1.0f);
    }
  }
  // The Gram pass and the projection take the counts and normalise them themselves, as the
  // pipeline gives them.
  const compute::LogNormalize normalize{.target_sum = 1e4};
  std::vector<compute::GramSums> sums;
  for (std::size_t b = 0; b < backends.size(); ++b) {
    const double t0 = now();
    auto pass = backends[b].second->gram_pass(cols, normalize);
    CsrMatrix scratch;
    for (const auto& c : chunks) {
      scratch = c;  // the pass may overwrite its input
      pass->add(scratch);
    }
    sums.push_back(pass->finish());
    const double s = now() - t0;
    out["stages"]["pca_gram"][backends[b].first] = {{"seconds", s}, {"rows_per_s", a.cells / s}};
  }
  if (sums.size() == 2) {
    const Eigen::MatrixXd la = sums[0].ww.triangularView<Eigen::Lower>();
    const Eigen::MatrixXd lb = sums[1].ww.triangularView<Eigen::Lower>();
    out["checks"]["gram_max_rel_diff"] = (la - lb).cwiseAbs().maxCoeff() / la.cwiseAbs().maxCoeff();
  }
  const Eigen::MatrixXd cov = compute::gram_covariance(cols, sums[0]);
  const Eigen::VectorXd mean = compute::gram_mean(cols, sums[0]);
  compute::PcaModel model;
  for (auto& [name, backend] : backends) {
    const double t0 = now();
    model = backend->pca(cov, mean, 50);
    out["stages"]["pca_eigensolve"][name] = {{"seconds", now() - t0},
                                             {"first_ratio", model.variance_ratio[0]}};
  }
  {
    std::vector<DenseMatrix> projected;
    for (auto& [name, backend] : backends) {
      const double t0 = now();
      projected.emplace_back(a.cells, static_cast<std::int64_t>(model.variance.size()));
      auto pass = backend->projection_pass(model, cols, normalize);
      CsrMatrix scratch;
      std::int64_t row = 0;
      for (const auto& c : chunks) {
        scratch = c;
        pass->add(scratch, projected.back(), row);
        row += c.n_rows;
      }
      pass->finish();
      const double s = now() - t0;
      out["stages"]["pca_project"][name] = {{"seconds", s}, {"rows_per_s", a.cells / s}};
    }
    if (projected.size() == 2) {
      double largest = 0, worst = 0;
      for (std::size_t e = 0; e < projected[0].values.size(); ++e) {
        largest = std::max(largest, std::fabs(double(projected[0].values[e])));
        worst = std::max(worst, std::fabs(double(projected[0].values[e]) - projected[1].values[e]));
      }
      out["checks"]["projection_max_diff_of_largest"] = largest > 0 ? worst / largest : 0.0;
    }
  }
  // Markers, 20 groups against the rest: binned over every cell, exact over the first
  // `markers_exact_cells`; each backend reads the same counts and normalises them, as in the
  // pipeline.
  {
    std::vector<std::int32_t> labels(a.cells);
    for (std::int64_t i = 0; i < a.cells; ++i) labels[i] = static_cast<std::int32_t>(i * 7 % 20);
    for (const char* method : {"binned", "exact"}) {
      const bool exact = std::string(method) == "exact";
      const std::int64_t cells = exact ? std::min(a.cells, a.markers_exact_cells) : a.cells;
      std::vector<std::int32_t> used(labels.begin(), labels.begin() + cells);
      auto source = [&](const compute::ChunkVisitor& visit) {
        std::int64_t r0 = 0;
        CsrMatrix scratch;
        for (const auto& c : chunks) {
          if (r0 + c.n_rows > cells) break;
          scratch = c;  // the markers normalise it in place
          visit(scratch, r0);
          r0 += c.n_rows;
        }
      };
      std::int64_t covered = 0;  // whole chunks only
      for (const auto& c : chunks) {
        if (covered + c.n_rows > cells) break;  // as `source` stops
        covered += c.n_rows;
      }
      used.resize(covered);
      compute::WilcoxonOptions wo;
      wo.method = method;
      std::vector<std::vector<compute::GroupMarkers>> m;
      for (auto& [name, backend] : backends) {
        compute::Progress quiet_markers;
        const double t0 = now();
        m.push_back(backend->rank_genes_groups(source, normalize, covered, a.genes, used, 20, wo,
                                               quiet_markers));
        const double s = now() - t0;
        out["stages"][std::string("markers_") + method][name] = {
            {"cells", covered}, {"seconds", s}, {"rows_per_s", covered / s}};
      }
      if (m.size() == 2) {
        double worst = 0;
        for (std::size_t g = 0; g < m[0].size(); ++g)
          for (std::size_t j = 0; j < m[0][g].scores.size(); ++j)
            worst = std::max(worst, std::fabs(m[0][g].scores[j] - m[1][g].scores[j]));
        out["checks"][std::string("markers_") + method + "_max_score_diff"] = worst;
      }
    }
  }
  lognorm.clear();
  chunks.clear();

  // kNN: exact on the GPU over knn_cells points; the CPU's NN-descent over cpu_knn_cells. The
  // GPU's lists are checked against brute force (double) for 1000 sampled queries.
  compute::Progress quiet;
  compute::KnnOptions ko;
  ko.n_neighbors = a.k;
  if (cuda) {
    const DenseMatrix x = embedding(a.knn_cells, a.dims);
    ko.method = "exact";
    const double t0 = now();
    const compute::KnnResult r = cuda->knn(x, ko, quiet);
    const double s = now() - t0;
    out["stages"]["knn_exact"]["cuda"] = {
        {"cells", a.knn_cells}, {"seconds", s}, {"rows_per_s", a.knn_cells / s}};
    out["checks"]["knn_exact_recall_sampled"] = sampled_recall(x, r, 1000);
    // The inverted-file search on the same points, against the exact lists.
    ko.method = "ivf";
    const double t_ivf = now();
    const compute::KnnResult approx = cuda->knn(x, ko, quiet);
    const double s_ivf = now() - t_ivf;
    out["stages"]["knn_ivf"]["cuda"] = {{"cells", a.knn_cells},
                                        {"seconds", s_ivf},
                                        {"rows_per_s", a.knn_cells / s_ivf},
                                        {"probes", ko.ivf_probes},
                                        {"recall_vs_exact", compute::knn_recall(approx, r)}};
    // UMAP (200 epochs, random init) on the fuzzy graph of these neighbours.
    const compute::FuzzyGraph g = compute::fuzzy_simplicial_set(r);
    const double t1 = now();
    cuda->umap(g.connectivities, compute::random_layout(a.knn_cells, 0), {}, quiet, {});
    const double su = now() - t1;
    out["stages"]["umap"]["cuda"] = {
        {"cells", a.knn_cells}, {"seconds", su}, {"rows_per_s", a.knn_cells / su}};
    // The spectral initial layout of the same graph: Lanczos with its vector work on the
    // device (every component of 128 vertices and more), then the same iteration on the host's
    // cores, and how far apart the two layouts are (in the [0, 10] box).
    cuda->take_host_fallbacks();
    const double t4 = now();
    const compute::SpectralResult on_gpu =
        compute::spectral_layout(g.connectivities, x, 0, cuda->spectral_eigensolver(0));
    const double s_gpu = now() - t4;
    const std::vector<std::string> gpu_fallbacks = cuda->take_host_fallbacks();
    const double t5 = now();
    const compute::SpectralResult on_cpu =
        compute::spectral_layout(g.connectivities, x, 0, cpu->spectral_eigensolver(0));
    const double s_cpu = now() - t5;
    double most = 0;
    for (std::size_t i = 0; i < on_cpu.embedding.values.size(); ++i)
      most = std::max(most, static_cast<double>(std::fabs(on_cpu.embedding.values[i] -
                                                          on_gpu.embedding.values[i])));
    out["stages"]["spectral"]["cuda"] = {{"cells", a.knn_cells},
                                         {"seconds", s_gpu},
                                         {"note", on_gpu.note},
                                         {"host_fallbacks", gpu_fallbacks}};
    out["stages"]["spectral"]["cpu"] = {
        {"cells", a.knn_cells}, {"seconds", s_cpu}, {"note", on_cpu.note}};
    out["checks"]["spectral_max_difference"] = most;
    // Leiden, parallel flavour, on the same graph: the device, then the CPU twin (all host
    // threads), whose labels must be the device's.
    compute::LeidenOptions lo;
    lo.flavor = "parallel";
    const double t2 = now();
    const auto on_device = cuda->leiden(g.connectivities, lo, quiet);
    const double sl = now() - t2;
    const double t3 = now();
    const auto on_host = cpu->leiden(g.connectivities, lo, quiet);
    const double sh = now() - t3;
    out["stages"]["leiden_parallel"]["cuda"] = {
        {"cells", a.knn_cells}, {"seconds", sl}, {"rows_per_s", a.knn_cells / sl}};
    out["stages"]["leiden_parallel"]["cpu"] = {
        {"cells", a.knn_cells}, {"seconds", sh}, {"rows_per_s", a.knn_cells / sh}};
    out["checks"]["leiden_parallel_same_labels"] = on_device == on_host;
    out["checks"]["leiden_parallel_clusters"] =
        on_host.empty() ? 0 : *std::max_element(on_host.begin(), on_host.end()) + 1;
  }
  if (cuda && a.ivf_cells > 0) {  // atlas scale: the inverted file alone
    const double t_gen = now();
    const DenseMatrix x = embedding(a.ivf_cells, a.dims);
    const double gen = now() - t_gen;
    ko.method = "ivf";
    const double t0 = now();
    const compute::KnnResult r = cuda->knn(x, ko, quiet);
    const double s_ivf = now() - t0;
    out["stages"]["knn_ivf_large"]["cuda"] = {{"cells", a.ivf_cells},
                                              {"seconds", s_ivf},
                                              {"rows_per_s", a.ivf_cells / s_ivf},
                                              {"probes", ko.ivf_probes},
                                              {"generate_seconds", gen},
                                              {"recall_sampled", sampled_recall(x, r, 200)}};
  }
  {
    const DenseMatrix x = embedding(a.cpu_knn_cells, a.dims);
    ko.method = "exact";
    const compute::KnnResult r = cuda ? cuda->knn(x, ko, quiet) : compute::knn(x, ko, quiet);
    const compute::FuzzyGraph g = compute::fuzzy_simplicial_set(r);
    const double t0 = now();
    cpu->umap(g.connectivities, compute::random_layout(a.cpu_knn_cells, 0), {}, quiet, {});
    const double s = now() - t0;
    out["stages"]["umap"]["cpu"] = {
        {"cells", a.cpu_knn_cells}, {"seconds", s}, {"rows_per_s", a.cpu_knn_cells / s}};
    const double t1 = now();
    cpu->leiden(g.connectivities, {}, quiet);  // igraph, scanpy's algorithm
    const double sl = now() - t1;
    out["stages"]["leiden_igraph"]["cpu"] = {
        {"cells", a.cpu_knn_cells}, {"seconds", sl}, {"rows_per_s", a.cpu_knn_cells / sl}};
  }
  {
    const DenseMatrix x = embedding(a.cpu_knn_cells, a.dims);
    ko.method = "nndescent";
    const double t0 = now();
    compute::knn(x, ko, quiet);
    const double s = now() - t0;
    out["stages"]["knn_nndescent"]["cpu"] = {
        {"cells", a.cpu_knn_cells}, {"seconds", s}, {"rows_per_s", a.cpu_knn_cells / s}};
  }
  if (cuda) out["peak_device_mib"] = cuda->device_peak_bytes() / 1048576.0;
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "orrery_bench_gpu: %s\n", e.what());
  return 1;
}
