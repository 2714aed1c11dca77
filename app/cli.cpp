#include "cli.hpp"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "compute/pipeline.hpp"
#include "compute/result_writer.hpp"
#include "compute/synth.hpp"
#include "demo.hpp"
#include "io/annotations.hpp"
#include "io/error.hpp"
#include "io/store.hpp"

namespace orrery::app {
namespace {

constexpr const char* kUsage = R"(usage:
  orrery                          open the GUI (demo dataset)
  orrery STORE                    open STORE in the GUI
  orrery --headless [-o OUT.h5ad] [--report R.json]
                                  run the pipeline on the demo dataset without a window
  orrery run STORE -o OUT.h5ad [--params P.json] [--backend cpu|cuda|auto] [--threads N]
                   [--report R.json] [--quiet] [--zarr-format 2|3] [--results-only]
                   [--text-layout genes|cells] [--obs TABLE.csv]...
  orrery synth -o OUT.h5ad [--cells N] [--genes N] [--clusters K] [--seed S] [--zarr-format 2|3]
  orrery info STORE [--text-layout genes|cells]
  orrery check STORE [--chunk-mib M] [--text-layout genes|cells]
                                  read every row of X in chunks of M MiB (default 256; also the
                                  block size of a CSC or Matrix Market conversion): reports
                                  corrupt data by file and element, rows/s and peak memory

STORE is an .h5ad file, a .zarr directory (v2 or v3), a Cell Ranger .h5 file, a 10x Matrix
Market folder (matrix.mtx[.gz], genes/features, barcodes) or a dense text table (.csv, .tsv,
.tab, .txt, each also .gz) with names in its header and first column. Whether the table holds
genes or cells in rows is guessed from its names and shape; --text-layout says it. --obs adds
the columns of a table of cell annotations (.csv/.tsv, a row per cell named as the store's
cells) to obs before the run: written with the results, usable as hvg.batch_key. An OUT
ending in .zarr is written as a zarr directory store, version 2 unless --zarr-format 3.
--results-only leaves out X, the input's layers and raw (an AnnData whose X is None): obs,
var, obsm, obsp, uns and varm only.
)";

compute::Progress* g_progress = nullptr;

void on_sigint(int) {
  if (g_progress) g_progress->cancel();
}

class TerminalProgress final : public compute::Progress {
 public:
  explicit TerminalProgress(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO)) {}
  void report(std::string_view stage, double fraction) override {
    if (quiet_) return;
    const int pct = static_cast<int>(fraction * 100);
    if (stage == stage_ && (pct == pct_ || (!tty_ && pct != 100))) return;
    stage_ = stage;
    pct_ = pct;
    if (tty_) {
      const int filled = pct / 5;
      std::fprintf(stderr, "\r\033[K%-22s [%.*s%*s] %3d%%", stage_.c_str(), filled,
                   "====================", 20 - filled, "", pct);
      if (pct >= 100) std::fputc('\n', stderr);
    } else {
      std::fprintf(stderr, "%s %d%%\n", stage_.c_str(), pct);
    }
  }

 private:
  bool quiet_, tty_;
  std::string stage_;
  int pct_ = -1;
};

struct Args {
  std::vector<std::string> positional;
  std::vector<std::string> obs_tables;
  std::string out, report, params, backend, threads;
  std::string cells, genes, clusters, seed;
  std::string chunk_mib, zarr_format, text_layout;
  bool quiet = false;
  bool results_only = false;
};

Args parse(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    auto value = [&](std::string& dst) {
      if (i + 1 >= argc) throw Error("", s, "missing value");
      dst = argv[++i];
    };
    if (s == "-o" || s == "--out")
      value(a.out);
    else if (s == "--report")
      value(a.report);
    else if (s == "--params")
      value(a.params);
    else if (s == "--backend")
      value(a.backend);
    else if (s == "--threads")
      value(a.threads);
    else if (s == "--cells")
      value(a.cells);
    else if (s == "--genes")
      value(a.genes);
    else if (s == "--clusters")
      value(a.clusters);
    else if (s == "--seed")
      value(a.seed);
    else if (s == "--chunk-mib")
      value(a.chunk_mib);
    else if (s == "--zarr-format")
      value(a.zarr_format);
    else if (s == "--text-layout")
      value(a.text_layout);
    else if (s == "--obs")
      value(a.obs_tables.emplace_back());
    else if (s == "--quiet" || s == "-q")
      a.quiet = true;
    else if (s == "--results-only")
      a.results_only = true;
    else if (s == "--headless")
      continue;
    else if (s.rfind("-", 0) == 0)
      throw Error("", s, "unknown option");
    else
      a.positional.push_back(s);
  }
  return a;
}

long long to_int(const std::string& s, const char* field, long long lo, long long hi) {
  try {
    std::size_t pos = 0;
    long long v = std::stoll(s, &pos);
    if (pos != s.size() || v < lo || v > hi) throw std::out_of_range(s);
    return v;
  } catch (const std::exception&) {
    throw Error("", field,
                "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                    "], got '" + s + "'");
  }
}

int zarr_format(const Args& a) {
  return a.zarr_format.empty() ? 2 : static_cast<int>(to_int(a.zarr_format, "--zarr-format", 2, 3));
}

io::TextLayout text_layout(const Args& a) {
  if (a.text_layout.empty()) return io::TextLayout::Guess;
  if (a.text_layout == "genes") return io::TextLayout::GenesInRows;
  if (a.text_layout == "cells") return io::TextLayout::CellsInRows;
  throw Error(
      "", "--text-layout",
      "expected genes (a row per gene) or cells (a row per cell), got '" + a.text_layout + "'");
}

void write_report(const std::string& path, const nlohmann::json& j) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) throw Error(path, "", "cannot write report");
    out << j.dump(2) << "\n";
  }
  std::filesystem::rename(tmp, path);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int cmd_run(const Args& a, const std::string& store_path) {
  if (a.out.empty()) throw Error("", "-o", "output path required");
  compute::PipelineParams params;
  if (!a.params.empty()) {
    std::ifstream in(a.params);
    if (!in) throw Error(a.params, "", "cannot open parameter file");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw Error(a.params, "", std::string("invalid JSON: ") + e.what());
    }
    try {
      params.update_from_json(j);
    } catch (const Error& e) {
      throw Error(a.params, e.element(), e.what());
    }
  }
  if (!a.backend.empty()) params.backend = a.backend;
  if (!a.threads.empty())
    set_thread_count(static_cast<int>(to_int(a.threads, "--threads", 1, 4096)));
  params.validate();

  TerminalProgress progress(a.quiet);
  g_progress = &progress;
  std::signal(SIGINT, on_sigint);
  std::string note;
  auto backend = compute::make_backend(params.backend, &note);
  if (!a.quiet) std::fprintf(stderr, "%s\n", note.c_str());
  io::OpenOptions open_options;
  open_options.progress = [&](std::string_view what, double f) { progress.report(what, f); };
  open_options.text_layout = text_layout(a);
  const auto opening = std::chrono::steady_clock::now();
  io::Store store = io::open_store(store_path, open_options);
  const double open_seconds = seconds_since(opening);
  if (!a.quiet)
    std::fprintf(stderr, "%s: %lld cells x %lld genes (%s)\n", store_path.c_str(),
                 static_cast<long long>(store.n_obs()), static_cast<long long>(store.n_vars()),
                 store.format.c_str());
  for (const std::string& table : a.obs_tables) {
    std::string summary;
    const auto names = io::import_annotations(store, table, compute::is_result_obs_column, summary);
    if (a.quiet) continue;
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    std::fprintf(stderr, "%s: %s: %s\n", table.c_str(), summary.c_str(), list.c_str());
  }
  auto result = compute::run_pipeline(store, params, *backend, progress);
  // The counts the markers kept are not written: let them go before the copy of X.
  const double counts_mib =
      result.counts_by_gene ? static_cast<double>(result.counts_by_gene->bytes()) / (1 << 20) : 0;
  result.counts_by_gene.reset();
  const auto writing = std::chrono::steady_clock::now();
  compute::write_result_h5ad(store, result, params, *backend, a.out, progress, nullptr,
                             zarr_format(a), !a.results_only);
  auto report = compute::report_json(result, params);
  // Outside the stages: opening the store (names, obs/var) and writing the output.
  report["open_seconds"] = open_seconds;
  report["write_seconds"] = seconds_since(writing);
  report["gene_cache_mib"] = counts_mib;
  report["input"] = store_path;
  report["output"] = a.out;
  if (!a.report.empty()) write_report(a.report, report);
  if (!a.quiet)
    std::fprintf(stderr, "%lld cells, %lld genes after filters; %d Leiden clusters; wrote %s\n",
                 static_cast<long long>(result.kept_cells.size()),
                 static_cast<long long>(result.kept_genes.size()), result.n_clusters,
                 a.out.c_str());
  return 0;
}

int cmd_synth(const Args& a) {
  if (a.out.empty()) throw Error("", "-o", "output path required");
  compute::SynthOptions o;
  o.zarr_format = zarr_format(a);
  if (!a.cells.empty()) o.n_cells = to_int(a.cells, "--cells", 1, 1LL << 36);
  if (!a.genes.empty()) o.n_genes = static_cast<int>(to_int(a.genes, "--genes", 14, 1 << 30));
  if (!a.clusters.empty())
    o.n_clusters = static_cast<int>(to_int(a.clusters, "--clusters", 1, 1000));
  if (!a.seed.empty()) o.seed = static_cast<std::uint64_t>(to_int(a.seed, "--seed", 0, 1LL << 62));
  TerminalProgress progress(a.quiet);
  g_progress = &progress;
  std::signal(SIGINT, on_sigint);
  compute::write_synth_h5ad(o, a.out, progress);
  if (!a.quiet)
    std::fprintf(stderr, "wrote %s: %lld cells x %d genes, %d clusters, seed %llu\n", a.out.c_str(),
                 static_cast<long long>(o.n_cells), o.n_genes, o.n_clusters,
                 static_cast<unsigned long long>(o.seed));
  return 0;
}

int cmd_info(const Args& a) {
  const std::string& path = a.positional[0];
  io::OpenOptions options;
  options.text_layout = text_layout(a);
  io::Store store = io::open_store(path, options);
  std::fputs(io::describe_store(store, path).c_str(), stdout);
  return 0;
}

// Streams X chunk by chunk (reading ahead on a second thread) as the pipeline does, so a store
// can be verified end to end and the reader's throughput and memory measured. One JSON line.
int cmd_check(const Args& a) {
  const long long mib = a.chunk_mib.empty() ? 256 : to_int(a.chunk_mib, "--chunk-mib", 1, 65536);
  TerminalProgress progress(a.quiet);
  io::OpenOptions options;
  options.progress = [&](std::string_view what, double f) { progress.report(what, f); };
  // A CSC X or a Matrix Market file larger than the chunk is converted in blocks of the chunk.
  options.transpose_bytes = static_cast<std::size_t>(mib) << 20;
  options.text_layout = text_layout(a);
  const auto t0 = std::chrono::steady_clock::now();
  io::Store store = io::open_store(a.positional[0], options);
  const auto t_open = std::chrono::steady_clock::now();
  if (!store.X) throw Error(a.positional[0], "X", "the store has no X to check");
  const std::int64_t step = store.X->rows_for_budget(static_cast<std::size_t>(mib) << 20);
  std::int64_t nnz = 0;
  double sum = 0;
  io::for_each_chunk(*store.X, step, [&](CsrMatrix& chunk, std::int64_t r0) {
    nnz += chunk.nnz();
    for (float v : chunk.data) sum += v;
    progress.report("reading X", static_cast<double>(r0 + chunk.n_rows) / store.n_obs());
  });
  const auto t1 = std::chrono::steady_clock::now();
  const double open_s = std::chrono::duration<double>(t_open - t0).count();
  const double read_s = std::chrono::duration<double>(t1 - t_open).count();
  const nlohmann::json out = {
      {"store", a.positional[0]},
      {"format", store.format},
      {"x", store.x_encoding},
      {"rows", store.n_obs()},
      {"cols", store.n_vars()},
      {"nnz", nnz},
      {"sum", sum},
      {"chunk_mib", mib},
      {"rows_per_chunk", step},
      {"open_seconds", open_s},
      {"read_seconds", read_s},
      {"rows_per_second", static_cast<double>(store.n_obs()) / std::max(read_s, 1e-9)},
      {"peak_rss_mib", compute::peak_rss_mib()}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

bool is_cli_invocation(int argc, char** argv) {
  if (argc < 2) return false;
  const std::string s = argv[1];
  return s == "run" || s == "synth" || s == "info" || s == "check" || s == "--headless" ||
         s == "--help" || s == "-h";
}

int run_cli(int argc, char** argv) {
  const std::string cmd = argv[1];
  try {
    // `orrery run --help` as well as `orrery --help`.
    for (int i = 1; i < argc; ++i)
      if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
        std::fputs(kUsage, stdout);
        return 0;
      }
    if (cmd == "--headless") {
      Args a = parse(argc, argv, 2);
      if (a.out.empty()) a.out = "orrery-demo.h5ad";
      if (a.report.empty()) a.report = "orrery-demo-report.json";
      const std::string demo = ensure_demo_store();
      return cmd_run(a, demo);
    }
    Args a = parse(argc, argv, 2);
    if (cmd == "run") {
      if (a.positional.size() != 1) throw Error("", "run", "expected one STORE argument");
      return cmd_run(a, a.positional[0]);
    }
    if (cmd == "synth") return cmd_synth(a);
    if (cmd == "check") {
      if (a.positional.size() != 1) throw Error("", "check", "expected one STORE argument");
      return cmd_check(a);
    }
    if (cmd == "info") {
      if (a.positional.size() != 1) throw Error("", "info", "expected one STORE argument");
      return cmd_info(a);
    }
  } catch (const Cancelled&) {
    std::fprintf(stderr, "\norrery: cancelled; no output written\n");
    return 130;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\norrery: error: %s\n", e.what());
    return 2;
  }
  std::fputs(kUsage, stderr);
  return 2;
}

}  // namespace orrery::app
