// The UMAP layout streamed from the device to a renderer while it optimises: the handshake
// between the device writer (the CUDA backend's UMAP, on the compute thread) and the renderer
// (the viewport, on the GUI thread), both working on one buffer and two binary semaphores of the
// renderer's Vulkan device imported into CUDA (compute/external.hpp, render/layout_stream.hpp).
//
// A binary semaphore must be waited on once per signal, and the renderer draws at its own pace,
// so the writer writes only when the renderer has asked (want), then signals `ready`; the
// renderer copies the buffer into its own (waiting on `ready`) and signals `consumed`, which the
// writer waits on, on the device, before its next write. No host copy of the layout is made.
// Nothing here knows CUDA or Vulkan; the state machine is tested on the CPU.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "compute/external.hpp"

namespace orrery::compute {

struct LayoutBounds {
  float min_x = 0, min_y = 0, max_x = 0, max_y = 0;
};

class LayoutChannel {
 public:
  // What the writer writes into for n points: positions (n x float2) and the two semaphores.
  struct Target {
    std::unique_ptr<ExternalBuffer> positions;
    std::unique_ptr<ExternalSemaphore> ready, consumed;
  };
  // Made on the renderer's side (the writer's thread calls it, once per layout); nullopt and a
  // reason in `why` when it cannot be (no external memory, another device, ...).
  using Prepare = std::function<std::optional<Target>(std::int64_t n, std::string* why)>;
  // Called on the writer's thread after each delivery (e.g. to ask for a frame).
  using Notify = std::function<void()>;

  LayoutChannel(Prepare prepare, Notify on_delivered);
  ~LayoutChannel();
  LayoutChannel(const LayoutChannel&) = delete;
  LayoutChannel& operator=(const LayoutChannel&) = delete;

  // ---- writer ----
  // Prepares the target for `n` points; false (with the reason) when streaming cannot happen,
  // or when the channel was closed. The target lives until the next open or the destructor.
  // The first layout after an open is wanted without asking.
  bool open(std::int64_t n, std::string* why);
  Target* target() { return target_ ? &*target_ : nullptr; }
  // Whether to write now: nullopt when the renderer has not asked (or the channel is closed);
  // otherwise whether the writer must first wait on `consumed` (the renderer's last copy).
  std::optional<bool> begin_write();
  // The layout after `epoch` epochs is written and `ready` is signalled (in stream order).
  void delivered(int epoch, const LayoutBounds& bounds);
  // Whether the renderer still takes layouts from this open (neither detached nor closed):
  // when not, the writer shows its progress another way (the host path).
  bool live() const;

  // ---- renderer ----
  void want();
  struct Delivery {
    std::uint64_t version = 0;     // 1, 2, ... per delivery since open
    std::uint64_t generation = 0;  // 1, 2, ... per open
    std::int64_t n = 0;
    int epoch = 0;
    LayoutBounds bounds;
  };
  // A delivery not yet taken. The caller must then submit its copy (waiting on `ready`,
  // signalling `consumed`) and say so with copied(), or close() the channel when it could not.
  std::optional<Delivery> take();
  // The copy of the last delivery taken is submitted; the writer may write again (after
  // waiting on `consumed`). Also asks for the next layout.
  void copied();
  // No further writes until the next open (the renderer's device went away).
  void detach();
  // No further writes at all (a copy failed, the renderer is going).
  void close();
  bool closed() const;
  // The current open's number (1, 2, ...; 0 before the first).
  std::uint64_t generation() const;
  // Writes so far (for tests and the report).
  std::uint64_t deliveries() const;

 private:
  enum class State { Idle, Wanted, Delivered, Taken };
  mutable std::mutex mutex_;
  Prepare prepare_;
  Notify on_delivered_;
  std::optional<Target> target_;
  State state_ = State::Idle;
  bool consumed_pending_ = false;  // `consumed` will be signalled: the writer must wait on it
  bool closed_ = false, detached_ = false;
  std::int64_t n_ = 0;
  std::uint64_t version_ = 0, generation_ = 0;
  Delivery last_;
};

}  // namespace orrery::compute
