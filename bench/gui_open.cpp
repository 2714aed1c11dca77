// What a user waits for when opening a store in the window: seconds from openStore until the
// store's summary (obs columns, shapes), the stored embedding drawn (an analysed store's
// X_umap), the QC histograms filled (end of the first pass over X) and, with --until done, the
// pipeline's result; plus the longest the UI event loop went without running a 10 ms timer
// (the UI thread never runs a stage, so this stays small) and the process's peak RSS. Runs
// the real MainWindow, so it needs a display (Xvfb) and a Vulkan driver (lavapipe here).
// With --gene NAME (or `top`: cluster 0's top marker) after --until done, also the seconds
// from asking to colour by that gene until it is shown (gene_s).
// Usage: orrery_bench_gui_open STORE [--until preview|qc|done] [--timeout SECONDS] [--gene NAME]
#include <sys/resource.h>

#include <QApplication>
#include <QElapsedTimer>
#include <QTimer>
#include <QVulkanInstance>
#include <cstdio>
#include <cstring>
#include <optional>

#include "io/hdf5_guard.hpp"
#include "main_window.hpp"

int main(int argc, char** argv) {
  if (auto status = orrery::io::hdf5_guard_main(argc, argv)) return *status;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s STORE [--until preview|qc|done] [--timeout SECONDS]\n",
                 argv[0]);
    return 2;
  }
  std::string until = "qc";
  double timeout = 3600;
  QString gene;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--gene")) gene = QString::fromLocal8Bit(argv[i + 1]);
    if (!std::strcmp(argv[i], "--until")) until = argv[i + 1];
    if (!std::strcmp(argv[i], "--timeout")) timeout = std::atof(argv[i + 1]);
  }
  QApplication app(argc, argv);
  QApplication::setOrganizationName("OrreryBench");
  QVulkanInstance vulkan;
  vulkan.setApiVersion(QVersionNumber(1, 1));
  if (!vulkan.create()) {
    std::fprintf(stderr, "no Vulkan instance (error %d)\n", vulkan.errorCode());
    return 2;
  }
  orrery::app::MainWindow window(&vulkan);
  window.setProperty("quietErrors", true);
  window.resize(1400, 900);
  window.show();

  QElapsedTimer clock;
  std::optional<double> summary, preview, preview_frame, qc, done, gene_asked, gene_shown;
  double longest_stall = 0, stall_ended = 0;
  qint64 last_tick = 0;
  QString failure, preview_what;
  auto now = [&] { return clock.nsecsElapsed() / 1e9; };
  auto* w = window.computeThread()->worker();
  QObject::connect(w, &orrery::app::ComputeWorker::storeOpened, [&] { summary = now(); });
  QObject::connect(&window, &orrery::app::MainWindow::previewShown,
                   [&](const QString& embedding, const QString& column) {
                     preview = now();
                     preview_what = embedding + " by " + column;
                   });
  // The preview counts as seen once the view has rendered a frame after it.
  std::uint64_t frames_at_preview = 0;
  QObject::connect(&window, &orrery::app::MainWindow::previewShown,
                   [&] { frames_at_preview = window.umapView()->framesRendered(); });
  QObject::connect(w, &orrery::app::ComputeWorker::qcReady, [&] { qc = now(); });
  QObject::connect(&window, &orrery::app::MainWindow::runFinished, [&] {
    done = now();
    if (gene.isEmpty() || until != "done") return;
    const auto& markers = window.snapshot()->markers;
    if (gene == "top" && !markers.empty() && !markers[0].empty())
      gene = QString::fromStdString(markers[0][0].gene);
    gene_asked = now();
    window.colorByGene(gene);
  });
  QObject::connect(&window, &orrery::app::MainWindow::geneShown, [&] {
    if (gene_asked) gene_shown = now();
  });
  QObject::connect(&window, &orrery::app::MainWindow::runFailed,
                   [&](const QString& message) { failure = message; });
  QTimer tick;
  tick.setInterval(10);
  QObject::connect(&tick, &QTimer::timeout, [&] {
    const qint64 t = clock.elapsed();
    if ((t - last_tick) / 1000.0 > longest_stall) {
      longest_stall = (t - last_tick) / 1000.0;
      stall_ended = t / 1000.0;
    }
    last_tick = t;
    if (preview && !preview_frame && window.umapView()->framesRendered() > frames_at_preview)
      preview_frame = now();
    const bool finished = !failure.isEmpty() || now() > timeout ||
                          (done && (!gene_asked || gene_shown)) || (until == "qc" && qc) ||
                          (until == "preview" && preview_frame);
    if (finished) app.quit();
  });
  clock.start();
  tick.start();
  window.openStore(QString::fromLocal8Bit(argv[1]));
  app.exec();
  window.cancelRun();

  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto field = [](const std::optional<double>& v) {
    return v ? QString::number(*v, 'f', 2) : QString("null");
  };
  std::printf(
      "{\"store\": \"%s\", \"summary_s\": %s, \"preview_s\": %s, \"preview_drawn_s\": %s, "
      "\"preview\": \"%s\", \"qc_s\": %s, \"done_s\": %s, \"longest_ui_stall_s\": %.3f, "
      "\"stall_ended_s\": %.2f, \"gene\": \"%s\", \"gene_s\": %s, "
      "\"peak_rss_mib\": %.0f, \"error\": \"%s\"}\n",
      argv[1], qPrintable(field(summary)), qPrintable(field(preview)),
      qPrintable(field(preview_frame)), qPrintable(preview_what), qPrintable(field(qc)),
      qPrintable(field(done)), longest_stall, stall_ended, qPrintable(gene),
      qPrintable(field(gene_shown && gene_asked ? std::optional<double>(*gene_shown - *gene_asked)
                                                : std::nullopt)),
      usage.ru_maxrss / 1024.0, qPrintable(failure));
  return failure.isEmpty() ? 0 : 1;
}
