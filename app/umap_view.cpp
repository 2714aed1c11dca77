#include "umap_view.hpp"

#include <QKeyEvent>
#include <QMouseEvent>
#include <QVulkanDeviceFunctions>
#include <QWheelEvent>
#include <cmath>

namespace orrery::app {

void UmapRenderer::initResources() {
  pipeline_ = std::make_unique<render::PointPipeline>(view_->physicalDevice(), view_->device(),
                                                      view_->defaultRenderPass(),
                                                      view_->sampleCountFlagBits());
  uploaded_version_ = 0;
}

void UmapRenderer::releaseResources() {
  pipeline_.reset();
}

void UmapRenderer::startNextFrame() {
  // Buffers are rewritten only between frames: wait for the GPU before replacing them.
  if (uploaded_version_ != view_->version_) {
    view_->vulkanInstance()->deviceFunctions(view_->device())->vkDeviceWaitIdle(view_->device());
    pipeline_->upload(view_->points_);
    uploaded_version_ = view_->version_;
  }
  const QSize size = view_->swapChainImageSize();
  view_->camera_.resize(static_cast<float>(size.width()), static_cast<float>(size.height()));
  if (!view_->fitted_ && view_->points_.size() > 0) view_->fitToData();

  VkClearValue clear[3]{};
  const QColor bg = view_->property("background").value<QColor>();
  const QColor c = bg.isValid() ? bg : QColor(Qt::white);
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
  f->vkCmdBeginRenderPass(cmd, &rp, VK_SUBPASS_CONTENTS_INLINE);
  pipeline_->record(cmd, view_->camera_, rp.renderArea.extent,
                    view_->point_size_ * static_cast<float>(view_->devicePixelRatio()));
  f->vkCmdEndRenderPass(cmd);
  view_->frameReady();
  ++view_->frames_;
  emit view_->frameRendered();
}

UmapView::UmapView() {
  setFlags(QVulkanWindow::PersistentResources);
  // Linear (UNORM) swapchains, so on-screen colours equal the palette and the offscreen export.
  setPreferredColorFormats({VK_FORMAT_B8G8R8A8_UNORM, VK_FORMAT_R8G8B8A8_UNORM});
}

QVulkanWindowRenderer* UmapView::createRenderer() {
  return new UmapRenderer(this);
}

void UmapView::setPoints(render::PointSet points, bool refit) {
  points_ = std::move(points);
  ++version_;
  if (refit) fitted_ = false;
  requestUpdate();
}

void UmapView::fitToData() {
  const QSize size =
      swapChainImageSize().isEmpty() ? this->size() * devicePixelRatio() : swapChainImageSize();
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
  lasso_.clear();
  if (e->button() == Qt::LeftButton && (e->modifiers() & Qt::ShiftModifier))
    lasso_.push_back(toWorld(e->position()));
}

void UmapView::mouseReleaseEvent(QMouseEvent*) {
  if (lasso_.size() >= 3) {
    auto polygon = std::make_shared<std::vector<glm::vec2>>();
    polygon->swap(lasso_);
    emit lassoed(std::move(polygon));
  }
  lasso_.clear();
}

void UmapView::mouseMoveEvent(QMouseEvent* e) {
  if (!lasso_.empty() && (e->buttons() & Qt::LeftButton)) {
    lasso_.push_back(toWorld(e->position()));
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
