// The renderer's end of a UMAP layout streamed from CUDA while it optimises
// (compute/layout_channel.hpp has the handshake): a source buffer and two binary semaphores the
// device writer imports, and the buffer the point pipelines draw. consume() copies the source
// into it on the device, after the writer's `ready` signal and signalling `consumed`, so the
// writer never overwrites what a frame is drawing, and the layout never passes through the host.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "interop.hpp"
#include "offscreen.hpp"

namespace orrery::render {

class LayoutStream {
 public:
  // For `points` positions (float2). `exportable`: the source and the semaphores can be
  // exported to CUDA (the device has the external memory/semaphore fd extensions enabled).
  LayoutStream(const OffscreenRenderer::Context& context, std::size_t points, bool exportable);
  ~LayoutStream();  // waits for the queue
  LayoutStream(const LayoutStream&) = delete;
  LayoutStream& operator=(const LayoutStream&) = delete;

  std::size_t points() const { return points_; }
  SharedBuffer& source() { return *source_; }
  SharedSemaphore& ready() { return *ready_; }
  SharedSemaphore& consumed() { return *consumed_; }
  // What the point pipelines draw (use_positions), device-local.
  VkBuffer positions() const { return positions_->buffer(); }

  // Waits (on the device) for `ready`, copies the source into positions(), signals `consumed`,
  // and waits for the copy to finish. Not while a frame drawing positions() is in flight.
  void consume();

  // The writer's part, done by Vulkan (tests, and a writer without CUDA): optionally waits on
  // `consumed`, writes `xy` (points() x float2) into the source and signals `ready`.
  void write_source(const float* xy, bool wait_consumed);
  // positions() read back to the host (tests).
  std::vector<float> read_positions();

 private:
  OffscreenRenderer::Context ctx_;
  std::size_t points_;
  bool exportable_;
  std::unique_ptr<SharedBuffer> source_;
  std::unique_ptr<SharedSemaphore> ready_, consumed_;
  std::unique_ptr<SharedBuffer> positions_;  // not exported
};

}  // namespace orrery::render
