#include "umap_view.hpp"

#include <QKeyEvent>
#include <QMouseEvent>
#include <QVulkanDeviceFunctions>
#include <QWheelEvent>
#include <cmath>

#include "render/interop.hpp"

namespace orrery::app {

void UmapRenderer::initResources() {
  for (auto* p : {&pipeline_, &outline_})
    *p = std::make_unique<render::PointPipeline>(view_->physicalDevice(), view_->device(),
                                                 view_->defaultRenderPass(),
                                                 view_->sampleCountFlagBits());
  splat_ = std::make_unique<render::SplatPipeline>(view_->physicalDevice(), view_->device(),
                                                   view_->defaultRenderPass(),
                                                   view_->sampleCountFlagBits());
  if (render::Overlay::available()) {
    QVulkanInstance* instance = view_->vulkanInstance();
    hud_ = std::make_unique<render::Overlay>(render::OverlayDevice{
        instance->vkInstance(), view_->physicalDevice(), view_->device(),
        view_->graphicsQueueFamilyIndex(), view_->graphicsQueue(), view_->graphicsCommandPool(),
        view_->defaultRenderPass(), view_->sampleCountFlagBits(),
        static_cast<std::uint32_t>(view_->concurrentFrameCount())});
  }
  uploaded_version_ = 0;
  drawn_positions_ = VK_NULL_HANDLE;
  std::lock_guard lock(view_->stream_mutex_);
  view_->stream_device_ = render::OffscreenRenderer::Context{
      view_->physicalDevice(), view_->device(), view_->graphicsQueue(),
      view_->graphicsCommandPool(), view_->graphicsQueueFamilyIndex()};
  // Requested in UmapView's constructor, enabled where offered.
  const auto offered = view_->supportedDeviceExtensions();
  view_->stream_interop_ = true;
  for (const char* e : render::kInteropExtensions)
    view_->stream_interop_ = view_->stream_interop_ && offered.contains(QByteArray(e));
  view_->stream_uuid_ = render::device_uuid(view_->physicalDevice());
}

void UmapRenderer::releaseResources() {
  {
    std::lock_guard lock(view_->stream_mutex_);
    // The device goes: what is drawn from the stream is kept on the host, and the writer
    // stops until its next layout (the compute thread then draws through the host).
    view_->channel_->detach();
    if (view_->drawn_stream_ && view_->drawingStreamedLayout())
      view_->settle(*view_->drawn_stream_, true);
    view_->drawn_stream_ = nullptr;
    view_->stream_device_.reset();
    if (view_->stream_) view_->retired_streams_.push_back(std::move(view_->stream_));
    view_->retired_streams_.clear();  // each waits for the queue
    drawn_positions_ = VK_NULL_HANDLE;
  }
  view_->gpu_select_.reset();
  pipeline_.reset();
  splat_.reset();
  outline_.reset();
  hud_.reset();
}

VkBuffer UmapRenderer::takeStreamedLayout() {
  UmapView& v = *view_;
  std::lock_guard lock(v.stream_mutex_);
  auto* f = v.vulkanInstance()->deviceFunctions(v.device());
  if (!v.retired_streams_.empty()) {  // replaced by the compute thread: destroyed here
    f->vkDeviceWaitIdle(v.device());
    for (const auto& old : v.retired_streams_)
      if (old.get() == v.drawn_stream_) {
        if (v.drawingStreamedLayout()) v.settle(*old, true);
        v.drawn_stream_ = nullptr;
      }
    v.retired_streams_.clear();
  }
  if (!v.stream_) return VK_NULL_HANDLE;
  if (const auto d = v.channel_->take()) {
    // The copy waits for CUDA's `ready` and overwrites what frames in flight may be drawing.
    f->vkDeviceWaitIdle(v.device());
    try {
      v.stream_->consume();
      v.channel_->copied();
    } catch (const std::exception& e) {
      qWarning("the streamed layout stops: %s", e.what());
      v.channel_->close();  // the compute thread draws through the host from here on
      // The copy failed: the drawn buffer still holds the last layout.
      if (v.drawn_stream_ && v.drawingStreamedLayout()) v.settle(*v.drawn_stream_, true);
      return VK_NULL_HANDLE;
    }
    if (d->generation > v.ended_generation_ &&
        d->n == static_cast<std::int64_t>(v.stream_->points())) {
      if (!v.drawingStreamedLayout()) {
        // The first layout drawn from this stream: its points in the layout colour, as the
        // host path draws them; their positions come from the stream's buffer (the host's
        // are filled in when needed: settleStreamedLayout()).
        const auto n = static_cast<std::size_t>(d->n);
        v.points_ = render::categorical_points(std::vector<float>(2 * n, 0.0f),
                                               std::vector<std::int32_t>(n, 0), {"#808080"});
        v.streamed_version_ = ++v.version_;
      }
      v.drawn_stream_ = v.stream_.get();
      v.drawn_generation_ = d->generation;
      v.streamed_bounds_ = d->bounds;
      v.settled_ = false;
      if (d->version == 1 || !v.fitted_) {  // a run's first layout refits, as through the host
        v.fitToData();
        v.fitted_ = true;
      }
      ++v.streamed_layouts_;
    }
  }
  return v.drawingStreamedLayout() && v.drawn_stream_ ? v.drawn_stream_->positions()
                                                      : VK_NULL_HANDLE;
}

void UmapRenderer::startNextFrame() {
  const QSize size = view_->swapChainImageSize();
  view_->camera_.resize(static_cast<float>(size.width()), static_cast<float>(size.height()));
  const VkBuffer streamed = takeStreamedLayout();
  if (!view_->fitted_ && view_->points_.size() > 0) view_->fitToData();
  const QColor bg = view_->property("background").value<QColor>();
  const QColor c = bg.isValid() ? bg : QColor(Qt::white);
  // Buffers are rewritten only between frames: wait for the GPU before replacing them.
  const bool outline = !view_->outline_.empty() || outline_->count() > 0;
  // Frame time: the interval between this frame and the last one, when they follow closely.
  if (view_->frame_clock_.isValid() && view_->frame_clock_.elapsed() < 1000)
    view_->overlay_.frame_ms = static_cast<double>(view_->frame_clock_.nsecsElapsed()) / 1e6;
  view_->frame_clock_.start();
  const bool splat = view_->points_.size() >= view_->splatFrom();
  const bool stale = uploaded_version_ != view_->version_ || uploaded_splat_ != splat;
  if (stale || outline)
    view_->vulkanInstance()->deviceFunctions(view_->device())->vkDeviceWaitIdle(view_->device());
  if (stale) {
    pipeline_->upload(splat ? render::PointSet{} : view_->points_);
    splat_->upload(splat ? view_->points_ : render::PointSet{});
    uploaded_version_ = view_->version_;
    uploaded_splat_ = splat;
    drawn_positions_ = VK_NULL_HANDLE;  // an upload draws its own positions
  }
  if (streamed != drawn_positions_) {  // positions from the streamed layout's buffer
    if (!stale && !outline)
      view_->vulkanInstance()->deviceFunctions(view_->device())->vkDeviceWaitIdle(view_->device());
    if (splat)
      splat_->use_positions(streamed);
    else
      pipeline_->use_positions(streamed);
    drawn_positions_ = streamed;
  }
  if (outline) {  // dark on a light background, light on a dark one
    const std::uint8_t ink = c.lightness() > 127 ? 20 : 235;
    outline_->upload(render::outline_dots(view_->outline_, view_->drag_ == UmapView::Drag::Brush,
                                          view_->camera_, 1.5f, render::pack_rgba(ink, ink, ink)));
  }

  VkClearValue clear[3]{};
  clear[0].color = {{static_cast<float>(c.redF()), static_cast<float>(c.greenF()),
                     static_cast<float>(c.blueF()), 1.0f}};
  clear[1].depthStencil = {1.0f, 0};
  clear[2].color = clear[0].color;
  VkRenderPassBeginInfo rp{};
  rp.sType = VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO;
  rp.renderPass = view_->defaultRenderPass();
  rp.framebuffer = view_->currentFramebuffer();
  rp.renderArea.extent = {static_cast<uint32_t>(size.width()),
                          static_cast<uint32_t>(size.height())};
  rp.clearValueCount = view_->sampleCountFlagBits() > VK_SAMPLE_COUNT_1_BIT ? 3 : 2;
  rp.pClearValues = clear;
  VkCommandBuffer cmd = view_->currentCommandBuffer();
  auto* f = view_->vulkanInstance()->deviceFunctions(view_->device());
  const float point_px = view_->point_size_ * static_cast<float>(view_->devicePixelRatio());
  if (splat) splat_->record_splat(cmd, view_->camera_, rp.renderArea.extent, point_px);
  f->vkCmdBeginRenderPass(cmd, &rp, VK_SUBPASS_CONTENTS_INLINE);
  if (splat)
    splat_->record_composite(cmd, rp.renderArea.extent);
  else
    pipeline_->record(cmd, view_->camera_, rp.renderArea.extent, point_px);
  outline_->record(cmd, view_->camera_, rp.renderArea.extent,
                   3.0f * static_cast<float>(view_->devicePixelRatio()));
  if (hud_ && view_->overlay_on_) {
    view_->overlay_.points = view_->points_.size();
    view_->overlay_.pixels_per_unit =
        view_->camera_.scale().x * static_cast<float>(size.width()) / 2;
    hud_->record(cmd, rp.renderArea.extent, static_cast<float>(view_->devicePixelRatio()),
                 view_->overlay_);
  }
  f->vkCmdEndRenderPass(cmd);
  view_->frameReady();
  ++view_->frames_;
  emit view_->frameRendered();
}

UmapView::UmapView() {
  setFlags(QVulkanWindow::PersistentResources);
  // Linear (UNORM) swapchains, so on-screen colours equal the palette and the offscreen export.
  setPreferredColorFormats({VK_FORMAT_B8G8R8A8_UNORM, VK_FORMAT_R8G8B8A8_UNORM});
  // Memory and semaphores shared with CUDA, where the device offers them.
  QByteArrayList extensions;
  for (const char* e : render::kInteropExtensions) extensions << QByteArray(e);
  setDeviceExtensions(extensions);
  channel_ = std::make_shared<compute::LayoutChannel>(
      [this](std::int64_t n, std::string* why) { return prepareStream(n, why); },
      [this] {  // on the compute thread: a frame takes the layout
        QMetaObject::invokeMethod(
            this, [this] { requestUpdate(); }, Qt::QueuedConnection);
      });
}

UmapView::~UmapView() {
  channel_->close();
}

void UmapView::setStreamWithoutCuda(bool on) {
  std::lock_guard lock(stream_mutex_);
  stream_without_cuda_ = on;
}

std::optional<compute::LayoutChannel::Target> UmapView::prepareStream(std::int64_t n,
                                                                      std::string* why) {
  std::lock_guard lock(stream_mutex_);
  const auto fail = [&](std::string reason) -> std::optional<compute::LayoutChannel::Target> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  if (!stream_device_) return fail("the viewport has no Vulkan device");
  if (n <= 0) return fail("no points");
  if (!stream_without_cuda_) {
    if (!stream_interop_)
      return fail("the viewport's Vulkan device lacks external memory/semaphore fd");
    if (compute::cuda_device_uuid() != stream_uuid_)
      return fail("the viewport's Vulkan device is not the CUDA device");
  }
  // The previous stream may still be drawn: the GUI thread destroys it between frames.
  if (stream_) retired_streams_.push_back(std::move(stream_));
  std::unique_ptr<render::LayoutStream> stream;
  try {
    stream = std::make_unique<render::LayoutStream>(*stream_device_, static_cast<std::size_t>(n),
                                                    !stream_without_cuda_);
    compute::LayoutChannel::Target t;
    if (!stream_without_cuda_) {
      const render::ExportedMemory m = stream->source().export_memory();
      t.positions = std::make_unique<compute::ExternalBuffer>(m.fd, m.allocation_bytes, m.bytes);
      t.ready = std::make_unique<compute::ExternalSemaphore>(stream->ready().export_fd());
      t.consumed = std::make_unique<compute::ExternalSemaphore>(stream->consumed().export_fd());
    }
    stream_ = std::move(stream);
    return t;
  } catch (const std::exception& e) {
    // Destroyed by the GUI thread, which owns the queue its destructor waits for.
    if (stream) retired_streams_.push_back(std::move(stream));
    return fail(std::string("sharing the layout buffer failed: ") + e.what());
  }
}

QVulkanWindowRenderer* UmapView::createRenderer() {
  return new UmapRenderer(this);
}

bool UmapView::software_device() const {
  if (!isValid()) return false;
  VkPhysicalDeviceProperties props;
  vulkanInstance()->functions()->vkGetPhysicalDeviceProperties(physicalDevice(), &props);
  return props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
}

std::size_t UmapView::splatFrom() const {
  if (splat_from_) return *splat_from_;
  return software_device() ? kSplatPointsSoftware : render::RenderOptions::kSplatPoints;
}

void UmapView::settle(render::LayoutStream& stream, bool end) {
  try {
    if (!settled_) {
      const std::vector<float> xy = stream.read_positions();
      points_.positions.resize(xy.size() / 2);
      for (std::size_t i = 0; i < points_.positions.size(); ++i)
        points_.positions[i] = {xy[2 * i], xy[2 * i + 1]};
      gpu_select_version_.reset();  // the positions the device selection holds are older
    }
    settled_ = true;
  } catch (const std::exception& e) {  // a lost device: the placeholders stay, drawn
    qWarning("the streamed layout could not be read back: %s", e.what());
    end = true;
  }
  if (end) {  // drawn from the host from here on: the same positions, uploaded
    streamed_version_.reset();
    ++version_;
    requestUpdate();
  }
}

void UmapView::settleStreamedLayout() {
  std::lock_guard lock(stream_mutex_);
  if (drawingStreamedLayout() && drawn_stream_) settle(*drawn_stream_, false);
}

void UmapView::endStreamedLayout(bool keep_positions, std::uint64_t generation) {
  std::lock_guard lock(stream_mutex_);
  ended_generation_ = std::max(ended_generation_, generation);
  // Only the run's own stream (a later run's may already be drawn).
  if (!drawingStreamedLayout() || drawn_generation_ > generation) return;
  if (keep_positions && drawn_stream_) {
    settle(*drawn_stream_, true);
  } else {
    streamed_version_.reset();
    ++version_;
  }
}

std::vector<bool> UmapView::pointsInPolygon(const std::vector<glm::vec2>& polygon) {
  settleStreamedLayout();
  bool on_device = false;
  if (isValid()) on_device = select_on_device_.value_or(!software_device());
  if (!on_device) return render::points_in_polygon(points_.positions, polygon);
  if (!gpu_select_) {
    gpu_select_ = std::make_unique<render::GpuSelection>(render::OffscreenRenderer::Context{
        physicalDevice(), device(), graphicsQueue(), graphicsCommandPool()});
    gpu_select_version_.reset();
  }
  if (gpu_select_version_ != version_) {
    gpu_select_->set_points(points_.positions);
    gpu_select_version_ = version_;
  }
  return gpu_select_->in_polygon(polygon);
}

void UmapView::setPoints(render::PointSet points, bool refit) {
  points_ = std::move(points);
  ++version_;
  if (refit) fitted_ = false;
  requestUpdate();
}

void UmapView::setLegend(std::string title,
                         std::vector<std::pair<std::string, std::uint32_t>> entries) {
  overlay_.legend_title = std::move(title);
  overlay_.legend = std::move(entries);
  requestUpdate();
}

void UmapView::setOverlayVisible(bool on) {
  overlay_on_ = on && render::Overlay::available();
  requestUpdate();
}

void UmapView::fitToData() {
  const QSize size =
      swapChainImageSize().isEmpty() ? this->size() * devicePixelRatio() : swapChainImageSize();
  if (drawingStreamedLayout())  // the host does not hold these positions: CUDA's bounds
    camera_.fit_box({streamed_bounds_.min_x, streamed_bounds_.min_y},
                    {streamed_bounds_.max_x, streamed_bounds_.max_y},
                    static_cast<float>(size.width()), static_cast<float>(size.height()));
  else
    camera_.fit(points_, static_cast<float>(size.width()), static_cast<float>(size.height()));
  fitted_ = true;
  requestUpdate();
}

glm::vec2 UmapView::toWorld(QPointF p) const {
  const QPointF px = p * devicePixelRatio();
  return camera_.to_world({static_cast<float>(px.x()), static_cast<float>(px.y())});
}

void UmapView::mousePressEvent(QMouseEvent* e) {
  last_mouse_ = e->position();
  outline_.clear();
  drag_ = Drag::Pan;
  if (e->button() != Qt::LeftButton) return;
  if (e->modifiers() & Qt::ShiftModifier) {
    drag_ = Drag::Lasso;
    outline_.push_back(toWorld(e->position()));
  } else if (e->modifiers() & Qt::ControlModifier) {
    drag_ = Drag::Brush;
    brush_start_ = toWorld(e->position());
  }
  requestUpdate();
}

void UmapView::mouseReleaseEvent(QMouseEvent*) {
  if (drag_ == Drag::Lasso || drag_ == Drag::Brush) {
    if (outline_.size() >= 3) {
      auto polygon = std::make_shared<std::vector<glm::vec2>>();
      polygon->swap(outline_);
      emit lassoed(std::move(polygon));
    }
    outline_.clear();
    requestUpdate();  // the outline goes
  }
  drag_ = Drag::None;
}

void UmapView::mouseMoveEvent(QMouseEvent* e) {
  if (drag_ == Drag::Lasso && (e->buttons() & Qt::LeftButton)) {
    outline_.push_back(toWorld(e->position()));
    requestUpdate();
    return;
  }
  if (drag_ == Drag::Brush && (e->buttons() & Qt::LeftButton)) {
    const glm::vec2 a = brush_start_, b = toWorld(e->position());
    outline_ = {a, {b.x, a.y}, b, {a.x, b.y}};
    requestUpdate();
    return;
  }
  if (!(e->buttons() & (Qt::LeftButton | Qt::MiddleButton))) {
    const glm::vec2 at = toWorld(e->position());
    const glm::vec2 off = toWorld(e->position() + QPointF(8, 0));
    emit hovered(at, std::hypot(off.x - at.x, off.y - at.y));
    return;
  }
  const QPointF d = (e->position() - last_mouse_) * devicePixelRatio();
  last_mouse_ = e->position();
  camera_.pan_pixels(static_cast<float>(d.x()), static_cast<float>(d.y()));
  requestUpdate();
}

void UmapView::mouseDoubleClickEvent(QMouseEvent*) {
  fitToData();
}

void UmapView::wheelEvent(QWheelEvent* e) {
  const double steps = e->angleDelta().y() / 120.0;
  const QPointF p = e->position() * devicePixelRatio();
  camera_.zoom_at(static_cast<float>(p.x()), static_cast<float>(p.y()),
                  static_cast<float>(std::pow(1.2, steps)));
  requestUpdate();
}

void UmapView::keyPressEvent(QKeyEvent* e) {
  if (e->key() == Qt::Key_F)
    fitToData();
  else if (e->key() == Qt::Key_Plus || e->key() == Qt::Key_Equal)
    setPointSize(point_size_ + 1);
  else if (e->key() == Qt::Key_O)
    setOverlayVisible(!overlay_on_);
  else if (e->key() == Qt::Key_Minus)
    setPointSize(std::max(1.0f, point_size_ - 1));
  else
    QVulkanWindow::keyPressEvent(e);
}

void UmapView::resizeEvent(QResizeEvent* e) {
  QVulkanWindow::resizeEvent(e);
  requestUpdate();
}

}  // namespace orrery::app
