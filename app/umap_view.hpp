// The UMAP viewport: a QVulkanWindow drawing the point scene with render::PointPipeline through
// the host upload path, with pan (drag), zoom to cursor (wheel), fit (double click / F), lasso
// selection (Shift + drag) and brush selection (Ctrl + drag), both outlined while dragging;
// reports where the pointer hovers, for picking.
#pragma once

#include <QVulkanWindow>
#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <QElapsedTimer>

#include "compute/layout_channel.hpp"
#include "render/gpu_selection.hpp"
#include "render/layout_stream.hpp"
#include "render/offscreen.hpp"
#include "render/overlay.hpp"
#include "render/point_pipeline.hpp"
#include "render/selection.hpp"
#include "render/splat_pipeline.hpp"

namespace orrery::app {

class UmapView;

class UmapRenderer : public QVulkanWindowRenderer {
 public:
  explicit UmapRenderer(UmapView* view) : view_(view) {}
  void initResources() override;
  void releaseResources() override;
  void startNextFrame() override;

 private:
  UmapView* view_;
  std::unique_ptr<render::PointPipeline> pipeline_;
  std::unique_ptr<render::PointPipeline> outline_;  // the selection outline being dragged
  // From UmapView::splatFrom() points on, points are splatted by compute instead.
  std::unique_ptr<render::SplatPipeline> splat_;
  std::unique_ptr<render::Overlay> hud_;  // legend, scale bar, counts (Dear ImGui)
  std::uint64_t uploaded_version_ = 0;
  bool uploaded_splat_ = false;
  VkBuffer drawn_positions_ = VK_NULL_HANDLE;  // a streamed layout's buffer, when drawn from it
  // Takes a layout streamed from the device, if one has arrived (UmapView::layoutChannel()).
  // Returns the buffer to draw positions from: the stream's, or none (the uploaded ones).
  VkBuffer takeStreamedLayout();
};

class UmapView : public QVulkanWindow {
  Q_OBJECT
 public:
  UmapView();
  ~UmapView() override;
  QVulkanWindowRenderer* createRenderer() override;

  // Replaces the points; `refit` recentres the camera on them.
  void setPoints(render::PointSet points, bool refit);
  void fitToData();
  const render::PointSet& points() const { return points_; }
  const render::Camera& camera() const { return camera_; }
  std::uint64_t version() const { return version_; }
  float pointSize() const { return point_size_; }
  void setPointSize(float px) {
    point_size_ = px;
    requestUpdate();
  }
  std::uint64_t framesRendered() const { return frames_; }
  // From this many points on, points are splatted by compute (render/splat_pipeline.hpp);
  // nullopt: automatic, from kSplatPoints on a GPU and from kSplatPointsSoftware on a software
  // rasteriser (lavapipe draws 1.2M sprites in ~1.1 s a frame, splats them in ~0.45 s).
  void setSplatFrom(std::optional<std::size_t> points) {
    splat_from_ = points;
    requestUpdate();
  }
  std::size_t splatFrom() const;
  static constexpr std::size_t kSplatPointsSoftware = 200000;
  // The points inside a lasso polygon (data coordinates), in the order of points(): computed on
  // the Vulkan device when it is a GPU (render/gpu_selection.hpp; forced on by
  // setSelectOnDevice(true), e.g. for tests on lavapipe), on the CPU otherwise.
  std::vector<bool> pointsInPolygon(const std::vector<glm::vec2>& polygon);
  void setSelectOnDevice(bool on) { select_on_device_ = on; }
  // The heads-up overlay (legend, scale bar, cell count, frame time): its legend, and whether it
  // shows (O toggles it; off when this build has no Dear ImGui).
  void setLegend(std::string title, std::vector<std::pair<std::string, std::uint32_t>> entries);
  void setOverlayVisible(bool on);
  bool overlayVisible() const { return overlay_on_; }
  // The outline being dragged (data coordinates): a lasso's path or a brush's four corners.
  const std::vector<glm::vec2>& outline() const { return outline_; }

  // The channel through which the CUDA backend streams the UMAP layout into this view while it
  // optimises (compute/layout_channel.hpp): each layout is copied on the device from the
  // buffer CUDA writes into the one drawn, without passing through the host. Where the device
  // cannot share memory with CUDA (no external-memory extensions, another GPU), the channel
  // declines and the layout comes through the host (setPoints).
  std::shared_ptr<compute::LayoutChannel> layoutChannel() const { return channel_; }
  // Stops drawing the layouts streamed up to the channel's open number `generation` (a run's
  // own, from the compute thread; later streams are drawn again), e.g. when its final layout
  // comes through the host or the run ends otherwise; with `keep_positions` the points stay
  // where the stream last put them. The first layout of a stream refits.
  void endStreamedLayout(bool keep_positions, std::uint64_t generation);
  // Whether the points drawn now are a streamed layout, and how many have been drawn.
  bool drawingStreamedLayout() const { return streamed_version_ == version_; }
  // Reads the streamed positions back into points() (export, selection: the host's copy is
  // filled in only when needed).
  void settleStreamedLayout();
  std::uint64_t streamedLayouts() const { return streamed_layouts_; }
  // Tests on devices without external memory: the channel's stream is made without export and
  // the test writes it through Vulkan (render::LayoutStream::write_source) instead of CUDA.
  void setStreamWithoutCuda(bool on);
  render::LayoutStream* layoutStreamForTests() { return stream_.get(); }

 signals:
  void frameRendered();
  // A finished lasso polygon or brush rectangle (four corners) in data coordinates.
  void lassoed(std::shared_ptr<const std::vector<glm::vec2>> polygon);
  // The pointer rests at `world` (no button pressed); `radius` is 8 pixels in data units.
  void hovered(glm::vec2 world, float radius);

 protected:
  void mousePressEvent(QMouseEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mouseReleaseEvent(QMouseEvent* e) override;
  void mouseDoubleClickEvent(QMouseEvent* e) override;
  void wheelEvent(QWheelEvent* e) override;
  void keyPressEvent(QKeyEvent* e) override;
  void resizeEvent(QResizeEvent* e) override;

 private:
  friend class UmapRenderer;
  glm::vec2 toWorld(QPointF widget_pos) const;
  render::PointSet points_;
  render::Camera camera_;
  std::uint64_t version_ = 0;
  std::uint64_t frames_ = 0;
  float point_size_ = 5.0f;
  std::optional<std::size_t> splat_from_;
  bool software_device() const;
  std::optional<bool> select_on_device_;  // unset: when the device is a GPU
  std::unique_ptr<render::GpuSelection> gpu_select_;
  std::optional<std::uint64_t> gpu_select_version_;  // the points version uploaded there
  QPointF last_mouse_;
  enum class Drag { None, Pan, Lasso, Brush };
  Drag drag_ = Drag::None;
  glm::vec2 brush_start_{};
  std::vector<glm::vec2> outline_;
  render::OverlayContent overlay_;
  bool overlay_on_ = render::Overlay::available();
  QElapsedTimer frame_clock_;
  bool fitted_ = false;

  // The streamed layout. prepareStream runs on the compute thread (the channel's Prepare) and
  // replaces stream_ under stream_mutex_; the GUI thread copies, draws and destroys streams.
  std::optional<compute::LayoutChannel::Target> prepareStream(std::int64_t n, std::string* why);
  std::shared_ptr<compute::LayoutChannel> channel_;
  std::mutex stream_mutex_;
  std::unique_ptr<render::LayoutStream> stream_;
  std::vector<std::unique_ptr<render::LayoutStream>> retired_streams_;
  std::optional<render::OffscreenRenderer::Context> stream_device_;  // set while resources live
  bool stream_interop_ = false;
  std::array<std::uint8_t, 16> stream_uuid_{};
  bool stream_without_cuda_ = false;
  std::uint64_t ended_generation_ = 0;             // streams up to this open are not drawn any more
  std::optional<std::uint64_t> streamed_version_;  // the points version drawn from stream_
  compute::LayoutBounds streamed_bounds_;          // of the layout drawn from it
  bool settled_ = false;                           // points_ holds its positions
  render::LayoutStream* drawn_stream_ = nullptr;   // stream_ or a retired one, while drawn
  std::uint64_t drawn_generation_ = 0;
  std::uint64_t streamed_layouts_ = 0;
  // Reads `stream`'s positions into points_; `end` (or a failed read): draws points_ from the
  // host from now on. With stream_mutex_ held, on the GUI thread.
  void settle(render::LayoutStream& stream, bool end);
};

}  // namespace orrery::app
