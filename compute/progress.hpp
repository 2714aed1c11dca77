// Progress and cooperative cancellation for long stages. The compute thread (GUI) or the CLI
// implements report(); stages call check() once per chunk so a cancel stops within a chunk.
#pragma once

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "io/error.hpp"

namespace orrery::compute {

class Progress {
 public:
  virtual ~Progress() = default;
  // `fraction` in [0, 1] of the named stage.
  virtual void report(std::string_view stage, double fraction) {}
  // Something the user should know that does not stop the run: kept in warnings() (in order;
  // stages may warn from worker threads) and shown by on_warning.
  void warn(std::string_view message) {
    {
      std::lock_guard<std::mutex> lock(warnings_mutex_);
      warnings_.emplace_back(message);
    }
    on_warning(message);
  }
  std::vector<std::string> warnings() const {
    std::lock_guard<std::mutex> lock(warnings_mutex_);
    return warnings_;
  }
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  void check() const {
    if (cancelled()) throw Cancelled();
  }

 protected:
  // Standard error by default.
  virtual void on_warning(std::string_view message) {
    std::fprintf(stderr, "orrery: warning: %.*s\n", static_cast<int>(message.size()),
                 message.data());
  }

 private:
  std::atomic<bool> cancelled_{false};
  mutable std::mutex warnings_mutex_;
  std::vector<std::string> warnings_;
};

}  // namespace orrery::compute
