// CUDA-Vulkan interop: a buffer and a semaphore made on the renderer's Vulkan device, imported
// into CUDA by file descriptor. Checks that bytes written by a CUDA kernel are what Vulkan reads
// (after waiting on the semaphore CUDA signalled), that Vulkan's writes are what CUDA reads, and
// that the UMAP layout written by the CUDA backend straight into the buffer renders the same
// image as the host upload of that layout. The Vulkan half runs wherever the device offers the
// extensions; the CUDA half needs a CUDA device that is the same GPU, and skips saying why.
#include <QtTest/QtTest>

#include <unistd.h>
#include <numeric>

#include "compute/backend.hpp"
#include "compute/external.hpp"
#include "compute/rng.hpp"
#include "compute/spectral.hpp"
#include "compute/umap.hpp"
#include "render/interop.hpp"
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

  // The CUDA backend's UMAP writes the final layout into the renderer's buffer and signals;
  // drawing from it gives the image of the host upload of the same layout.
  void umapRendersFromTheSharedBuffer() {
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
    render::SharedBuffer buf(*vk_, n * 8);
    render::SharedSemaphore sem(*vk_);
    const render::ExportedMemory m = buf.export_memory();
    compute::ExternalBuffer ext(m.fd, m.allocation_bytes, m.bytes);
    compute::ExternalSemaphore ready(sem.export_fd());
    QVERIFY(cuda_->stream_layout_to(&ext, &ready));
    compute::UmapOptions uo;
    uo.n_epochs = 100;
    const DenseMatrix emb =
        cuda_->umap(g.connectivities, compute::random_layout(n, 1), uo, quiet, {});
    cuda_->stream_layout_to(nullptr, nullptr);

    render::PointSet host, blank;
    for (std::int64_t i = 0; i < n; ++i) {
      host.positions.push_back({emb.at(i, 0), emb.at(i, 1)});
      const auto c = static_cast<std::uint8_t>(40 * (i % clusters));
      host.colors.push_back(render::pack_rgba(c, 255 - c, 128));
    }
    blank.positions.assign(n, {0.0f, 0.0f});  // wrong on purpose: the shared buffer must win
    blank.colors = host.colors;
    render::Camera camera;
    camera.fit(host, 400, 400);
    render::RenderOptions o;
    o.width = o.height = 400;
    o.point_size = 3;
    const render::Image expected = vk_->render(host, camera, o);
    o.positions = &buf;
    o.wait = &sem;
    const render::Image shared = vk_->render(blank, camera, o);
    QCOMPARE(shared.rgba.size(), expected.rgba.size());
    QVERIFY(shared.rgba == expected.rgba);
    o.positions = nullptr;
    o.wait = nullptr;
    QVERIFY(vk_->render(blank, camera, o).rgba != expected.rgba);
    const auto bytes = buf.read();
    QCOMPARE(std::memcmp(bytes.data(), emb.values.data(), n * 8), 0);
  }
};

QTEST_GUILESS_MAIN(TestInterop)
#include "test_interop.moc"
