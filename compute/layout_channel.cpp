#include "layout_channel.hpp"

#include <utility>

namespace orrery::compute {

LayoutChannel::LayoutChannel(Prepare prepare, Notify on_delivered)
    : prepare_(std::move(prepare)), on_delivered_(std::move(on_delivered)) {}

LayoutChannel::~LayoutChannel() = default;

bool LayoutChannel::open(std::int64_t n, std::string* why) {
  {
    // The previous target's imports go before the renderer replaces what they import. The
    // renderer's side is prepared without this lock held: the renderer takes its own lock
    // before this one.
    std::lock_guard lock(mutex_);
    target_.reset();
    state_ = State::Idle;
    consumed_pending_ = false;
    version_ = 0;
    n_ = 0;
    detached_ = false;
    ++generation_;
    if (closed_) {
      if (why) *why = "the renderer closed the layout stream";
      return false;
    }
  }
  std::optional<Target> t = prepare_ ? prepare_(n, why) : std::nullopt;
  std::lock_guard lock(mutex_);
  if (!t || closed_) return false;
  target_ = std::move(t);
  n_ = n;
  state_ = State::Wanted;  // the first layout is always wanted: it sets up the renderer's view
  return true;
}

std::optional<bool> LayoutChannel::begin_write() {
  std::lock_guard lock(mutex_);
  if (closed_ || detached_ || !target_ || state_ != State::Wanted) return std::nullopt;
  const bool wait = consumed_pending_;
  consumed_pending_ = false;
  return wait;
}

void LayoutChannel::delivered(int epoch, const LayoutBounds& bounds) {
  {
    std::lock_guard lock(mutex_);
    state_ = State::Delivered;
    last_ = {++version_, generation_, n_, epoch, bounds};
  }
  if (on_delivered_) on_delivered_();
}

void LayoutChannel::want() {
  std::lock_guard lock(mutex_);
  if (state_ == State::Idle) state_ = State::Wanted;
}

std::optional<LayoutChannel::Delivery> LayoutChannel::take() {
  std::lock_guard lock(mutex_);
  if (closed_ || detached_ || state_ != State::Delivered) return std::nullopt;
  state_ = State::Taken;
  return last_;
}

void LayoutChannel::copied() {
  std::lock_guard lock(mutex_);
  if (state_ != State::Taken) return;
  consumed_pending_ = true;
  state_ = State::Wanted;
}

bool LayoutChannel::live() const {
  std::lock_guard lock(mutex_);
  return target_ && !closed_ && !detached_;
}

void LayoutChannel::detach() {
  std::lock_guard lock(mutex_);
  detached_ = true;
}

std::uint64_t LayoutChannel::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

void LayoutChannel::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
}

bool LayoutChannel::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

std::uint64_t LayoutChannel::deliveries() const {
  std::lock_guard lock(mutex_);
  return version_;
}

}  // namespace orrery::compute
