// What streaming the UMAP layout to the renderer costs the CUDA optimisation: the CUDA backend's
// UMAP of an N-point blob graph timed without a stream, streamed to a renderer that takes every
// layout as soon as it is written (the most the writer can be asked for), streamed to one that
// takes a layout per frame (FRAME_MS apart, as the viewport does), and without a stream again
// (the spread of the two plain runs is the noise). Each taken layout is copied on the device
// (render::LayoutStream::consume), as the viewport copies it. Prints one JSON object.
// Needs a CUDA device that is also the Vulkan device; says why and exits 2 otherwise.
// Usage: orrery_bench_umap_stream [N] [EPOCHS] [FRAME_MS]   (default 1300000 200 16)
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "compute/backend.hpp"
#include "compute/external.hpp"
#include "compute/layout_channel.hpp"
#include "compute/rng.hpp"
#include "compute/spectral.hpp"
#include "render/layout_stream.hpp"
#include "render/offscreen.hpp"

using namespace orrery;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Run {
  double seconds = 0;
  std::uint64_t layouts = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t n = argc > 1 ? std::atoll(argv[1]) : 1300000;
  const int epochs = argc > 2 ? std::atoi(argv[2]) : 200;
  const int frame_ms = argc > 3 ? std::atoi(argv[3]) : 16;
  if (n < 100 || epochs < 1 || frame_ms < 0) {
    std::fprintf(stderr, "usage: orrery_bench_umap_stream [N>=100] [EPOCHS>=1] [FRAME_MS>=0]\n");
    return 1;
  }
  std::string why;
  std::unique_ptr<compute::Backend> cuda = compute::make_cuda_backend(&why);
  if (!cuda) {
    std::fprintf(stderr, "orrery_bench_umap_stream: no CUDA device: %s\n", why.c_str());
    return 2;
  }
  render::OffscreenRenderer vk;
  if (!vk.interop_supported() || compute::cuda_device_uuid() != vk.device_uuid()) {
    std::fprintf(stderr, "orrery_bench_umap_stream: the Vulkan device %s cannot share with CUDA\n",
                 vk.device_name().c_str());
    return 2;
  }

  // Blobs in 10 dimensions, their kNN graph and fuzzy set on the device.
  const int clusters = 10;
  compute::Rng rng(7);
  DenseMatrix x(n, 10);
  for (std::int64_t i = 0; i < n; ++i)
    for (int d = 0; d < 10; ++d)
      x.at(i, d) = static_cast<float>(20.0 * ((i % clusters) == d) + rng.normal());
  compute::Progress quiet;
  auto t0 = std::chrono::steady_clock::now();
  compute::KnnOptions ko;
  ko.method = n > 500000 ? "ivf" : "exact";
  const compute::FuzzyGraph g = cuda->fuzzy_simplicial_set(cuda->knn(x, ko, quiet), 1.0);
  const double graph_s = seconds_since(t0);
  const DenseMatrix init = compute::random_layout(n, 1);
  compute::UmapOptions uo;
  uo.n_epochs = epochs;

  std::unique_ptr<render::LayoutStream> stream;
  compute::LayoutChannel channel(
      [&](std::int64_t points, std::string*) -> std::optional<compute::LayoutChannel::Target> {
        // A new stream per layout, as the viewport makes one: its semaphores start unsignalled.
        stream = std::make_unique<render::LayoutStream>(vk.context(), points, true);
        compute::LayoutChannel::Target t;
        const render::ExportedMemory m = stream->source().export_memory();
        t.positions = std::make_unique<compute::ExternalBuffer>(m.fd, m.allocation_bytes, m.bytes);
        t.ready = std::make_unique<compute::ExternalSemaphore>(stream->ready().export_fd());
        t.consumed = std::make_unique<compute::ExternalSemaphore>(stream->consumed().export_fd());
        return t;
      },
      [] {});

  // pace < 0: no stream.
  auto run = [&](int pace_ms) {
    Run r;
    const bool streamed = pace_ms >= 0;
    if (streamed && !cuda->stream_layout_to(&channel)) {
      std::fprintf(stderr, "orrery_bench_umap_stream: the backend declined the stream\n");
      std::exit(2);
    }
    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> taken{0};
    std::thread renderer;
    if (streamed)
      renderer = std::thread([&] {
        while (!done) {
          if (channel.take()) {
            stream->consume();
            channel.copied();
            ++taken;
            if (pace_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pace_ms));
          } else {
            std::this_thread::yield();
          }
        }
      });
    const auto start = std::chrono::steady_clock::now();
    const DenseMatrix emb = cuda->umap(g.connectivities, init, uo, quiet, {});
    r.seconds = seconds_since(start);
    if (streamed) {
      cuda->stream_layout_to(nullptr);
      const auto wait = std::chrono::steady_clock::now();
      while (taken.load() != channel.deliveries() && seconds_since(wait) < 10)
        std::this_thread::yield();
      done = true;
      renderer.join();
      r.layouts = channel.deliveries();  // counted from the run's open
    }
    if (emb.rows != n) std::exit(3);
    return r;
  };
  const Run plain = run(-1);
  const Run eager = run(0);
  const Run paced = run(frame_ms);
  const Run plain2 = run(-1);
  std::printf(
      "{\"bench\": \"umap_stream\", \"device\": \"%s\", \"points\": %lld, \"epochs\": %d, "
      "\"graph_seconds\": %.3f, \"plain_seconds\": [%.3f, %.3f], "
      "\"streamed_every_layout\": {\"seconds\": %.3f, \"layouts\": %llu}, "
      "\"streamed_per_frame\": {\"frame_ms\": %d, \"seconds\": %.3f, \"layouts\": %llu}}\n",
      vk.device_name().c_str(), static_cast<long long>(n), epochs, graph_s, plain.seconds,
      plain2.seconds, eager.seconds, static_cast<unsigned long long>(eager.layouts), frame_ms,
      paced.seconds, static_cast<unsigned long long>(paced.layouts));
  return 0;
}
