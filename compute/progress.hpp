// Progress and cooperative cancellation for long stages. The compute thread (GUI) or the CLI
// implements report(); stages call check() once per chunk so a cancel stops within a chunk.
#pragma once

#include <atomic>
#include <cstdio>
#include <string_view>

#include "io/error.hpp"

namespace orrery::compute {

class Progress {
 public:
  virtual ~Progress() = default;
  // `fraction` in [0, 1] of the named stage.
  virtual void report(std::string_view stage, double fraction) {}
  // Something the user should know that does not stop the run (standard error by default).
  virtual void warn(std::string_view message) {
    std::fprintf(stderr, "orrery: warning: %.*s\n", static_cast<int>(message.size()),
                 message.data());
  }
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  void check() const {
    if (cancelled()) throw Cancelled();
  }

 private:
  std::atomic<bool> cancelled_{false};
};

}  // namespace orrery::compute
