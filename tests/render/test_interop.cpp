// CUDA-Vulkan interop: a buffer and a semaphore made on the renderer's Vulkan device, imported
// into CUDA by file descriptor. Checks that bytes written by a CUDA kernel are what Vulkan reads
// (after waiting on the semaphore CUDA signalled), that Vulkan's writes are what CUDA reads, and
// that the UMAP layout the CUDA backend streams while it optimises reaches the renderer's buffer
// and renders the same image as the host upload of that layout. The Vulkan half runs wherever
// the device offers the extensions; the CUDA half needs a CUDA device that is the same GPU, and
// skips saying why.
#include <QtTest/QtTest>

#include <unistd.h>
#include <atomic>
#include <cmath>
#include <numeric>
#include <thread>

#include "compute/backend.hpp"
#include "compute/external.hpp"
#include "compute/layout_channel.hpp"
#include "compute/rng.hpp"
#include "compute/spectral.hpp"
#include "compute/umap.hpp"
#include "render/interop.hpp"
#include "render/layout_stream.hpp"
#include "render/offscreen.hpp"

using namespace orrery;

class TestInterop : public QObject {
  Q_OBJECT
  std::unique_ptr<render::OffscreenRenderer> vk_;
  std::unique_ptr<compute::Backend> cuda_;

  // Why the CUDA half cannot run here, or "".
  std::string cuda_missing() {
    std::string why;
    if (!compute::cuda_compiled()) return "CUDA backend not compiled";
    if (!cuda_) cuda_ = compute::make_cuda_backend(&why);
    if (!cuda_) return "no CUDA device: " + why;
    if (compute::cuda_device_uuid() != vk_->device_uuid())
      return "the Vulkan device (" + vk_->device_name() + ") is not the CUDA device";
    return "";
  }

 private slots:
  void initTestCase() {
    try {
      vk_ = std::make_unique<render::OffscreenRenderer>();
    } catch (const std::exception& e) {
      QSKIP(qPrintable(QString("no Vulkan device: %1").arg(e.what())));
    }
    if (!vk_->interop_supported())
      QSKIP(qPrintable(QString::fromStdString("Vulkan device " + vk_->device_name() +
                                              " lacks external memory/semaphore fd")));
    qInfo("Vulkan device: %s", vk_->device_name().c_str());
  }

  // Vulkan alone: the exportable buffer holds what is written to it, and exports descriptors.
  void sharedBufferOnVulkan() {
    render::SharedBuffer buf(*vk_, 4096 * 4);
    std::vector<std::uint32_t> words(4096);
    std::iota(words.begin(), words.end(), 1000u);
    buf.write(words.data(), words.size() * 4);
    const auto bytes = buf.read();
    QCOMPARE(std::memcmp(bytes.data(), words.data(), bytes.size()), 0);
    render::ExportedMemory m = buf.export_memory();
    QVERIFY(m.fd >= 0);
    QVERIFY(m.allocation_bytes >= m.bytes);
    QCOMPARE(m.bytes, std::size_t{4096 * 4});
    ::close(m.fd);
    render::SharedSemaphore sem(*vk_);
    const int fd = sem.export_fd();
    QVERIFY(fd >= 0);
    ::close(fd);
  }

  // Both ways through one allocation: a CUDA kernel's words read by Vulkan after the CUDA
  // signal, and Vulkan's words read by CUDA.
  void cudaAndVulkanSeeTheSameBytes() {
    if (const auto why = cuda_missing(); !why.empty()) QSKIP(why.c_str());
    const std::size_t n = 1 << 20;
    render::SharedBuffer buf(*vk_, n * 4);
    render::SharedSemaphore sem(*vk_);
    const render::ExportedMemory m = buf.export_memory();
    compute::ExternalBuffer ext(m.fd, m.allocation_bytes, m.bytes);
    compute::ExternalSemaphore ready(sem.export_fd());
    ext.fill_sequence(12345u);
    ready.signal();
    const auto seen = buf.read(&sem);
    const auto* w = reinterpret_cast<const std::uint32_t*>(seen.data());
    for (std::size_t i = 0; i < n; i += 997) QCOMPARE(w[i], 12345u + std::uint32_t(i));
    QCOMPARE(w[n - 1], 12345u + std::uint32_t(n - 1));
    std::vector<std::uint32_t> words(n);
    for (std::size_t i = 0; i < n; ++i) words[i] = 0x9e3779b9u * std::uint32_t(i);
    buf.write(words.data(), n * 4);
    const auto back = ext.read();
    QCOMPARE(std::memcmp(back.data(), words.data(), n * 4), 0);
  }

  // The CUDA backend's UMAP streams its layout through a LayoutChannel while it optimises: a
  // renderer thread takes each layout, copies it on the device (render::LayoutStream), and what
  // it copied is the layout CUDA wrote (its bounds are the ones CUDA computed; the last one is
  // the layout returned), drawn as the host upload of the same positions draws.
  void umapStreamsIntoTheRenderer() {
    if (const auto why = cuda_missing(); !why.empty()) QSKIP(why.c_str());
    const std::int64_t n = 20000;
    const int clusters = 5;
    compute::Rng rng(4);
    DenseMatrix x(n, 10);
    for (std::int64_t i = 0; i < n; ++i)
      for (int d = 0; d < 10; ++d)
        x.at(i, d) = static_cast<float>(20.0 * ((i % clusters) == d % clusters) + rng.normal());
    compute::Progress quiet;
    compute::KnnOptions ko;
    ko.method = "exact";
    const compute::FuzzyGraph g = compute::fuzzy_simplicial_set(cuda_->knn(x, ko, quiet));

    std::unique_ptr<render::LayoutStream> stream;
    std::atomic<int> notified{0};
    compute::LayoutChannel channel(
        [&](std::int64_t points, std::string*) -> std::optional<compute::LayoutChannel::Target> {
          stream = std::make_unique<render::LayoutStream>(vk_->context(), points, true);
          compute::LayoutChannel::Target t;
          const render::ExportedMemory m = stream->source().export_memory();
          t.positions =
              std::make_unique<compute::ExternalBuffer>(m.fd, m.allocation_bytes, m.bytes);
          t.ready = std::make_unique<compute::ExternalSemaphore>(stream->ready().export_fd());
          t.consumed = std::make_unique<compute::ExternalSemaphore>(stream->consumed().export_fd());
          return t;
        },
        [&] { ++notified; });
    QVERIFY(cuda_->stream_layout_to(&channel));
    struct Seen {
      compute::LayoutChannel::Delivery d;
      std::vector<float> xy;
    };
    std::vector<Seen> seen;
    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> taken{0};
    std::thread renderer([&] {
      while (!done) {
        if (const auto d = channel.take()) {
          stream->consume();
          channel.copied();
          seen.push_back({*d, stream->read_positions()});
          ++taken;
        }
      }
    });
    compute::UmapOptions uo;
    uo.n_epochs = 500;
    int epoch_calls = 0;
    const DenseMatrix emb = cuda_->umap(g.connectivities, compute::random_layout(n, 1), uo, quiet,
                                        [&](int, int, const DenseMatrix&) { ++epoch_calls; });
    cuda_->stream_layout_to(nullptr);
    // The renderer takes what is left.
    const bool drained =
        QTest::qWaitFor([&] { return taken.load() == channel.deliveries(); }, 10000);
    done = true;
    renderer.join();
    QVERIFY(drained);
    QCOMPARE(epoch_calls, 1);  // streamed: the host sees the final layout only
    // Layouts between the first and the last: the renderer is served while the device
    // optimises (a host that queued every epoch at once served only those two).
    QVERIFY2(seen.size() >= 3, qPrintable(QString::number(seen.size())));
    QCOMPARE(static_cast<int>(seen.size()), notified.load());
    for (std::size_t i = 0; i < seen.size(); ++i) {
      const Seen& s = seen[i];
      QCOMPARE(s.d.version, std::uint64_t(i + 1));
      QCOMPARE(s.d.n, n);
      if (i) QVERIFY(s.d.epoch > seen[i - 1].d.epoch);
      float lo_x = INFINITY, lo_y = INFINITY, hi_x = -INFINITY, hi_y = -INFINITY;
      for (std::int64_t p = 0; p < n; ++p) {
        lo_x = std::min(lo_x, s.xy[2 * p]);
        hi_x = std::max(hi_x, s.xy[2 * p]);
        lo_y = std::min(lo_y, s.xy[2 * p + 1]);
        hi_y = std::max(hi_y, s.xy[2 * p + 1]);
      }
      QCOMPARE(s.d.bounds.min_x, lo_x);
      QCOMPARE(s.d.bounds.max_x, hi_x);
      QCOMPARE(s.d.bounds.min_y, lo_y);
      QCOMPARE(s.d.bounds.max_y, hi_y);
    }
    qInfo("%zu layouts streamed over %d epochs", seen.size(), uo.n_epochs);
    const Seen& last = seen.back();
    if (last.d.epoch == uo.n_epochs) QVERIFY(last.xy == emb.values);

    render::PointSet host, blank;
    for (std::int64_t i = 0; i < n; ++i) {
      host.positions.push_back({last.xy[2 * i], last.xy[2 * i + 1]});
      const auto c = static_cast<std::uint8_t>(40 * (i % clusters));
      host.colors.push_back(render::pack_rgba(c, 255 - c, 128));
    }
    blank.positions.assign(n, {0.0f, 0.0f});  // wrong on purpose: the streamed buffer must win
    blank.colors = host.colors;
    render::Camera camera;
    camera.fit(host, 400, 400);
    render::RenderOptions o;
    o.width = o.height = 400;
    o.point_size = 3;
    const render::Image expected = vk_->render(host, camera, o);
    o.position_buffer = stream->positions();
    QVERIFY(vk_->render(blank, camera, o).rgba == expected.rgba);
    o.position_buffer = VK_NULL_HANDLE;
    QVERIFY(vk_->render(blank, camera, o).rgba != expected.rgba);

    // A second layout that nobody takes while it optimises: its first layout (after 0 epochs)
    // waits for the renderer, which then copies exactly the layout the run started from.
    const DenseMatrix init = compute::random_layout(n, 2);
    QVERIFY(cuda_->stream_layout_to(&channel));
    cuda_->umap(g.connectivities, init, uo, quiet, {});
    cuda_->stream_layout_to(nullptr);
    const auto first = channel.take();
    QVERIFY(first);
    QCOMPARE(first->epoch, 0);
    QCOMPARE(first->generation, std::uint64_t{2});
    stream->consume();
    channel.copied();
    QVERIFY(stream->read_positions() == init.values);
  }
};

QTEST_GUILESS_MAIN(TestInterop)
#include "test_interop.moc"
