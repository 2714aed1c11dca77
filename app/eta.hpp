// The status bar's estimate of the time left in a stage, from the time it has taken so far and
// the fraction done (no estimate until the stage is 2% and one second in).
#pragma once

#include <QString>
#include <cmath>

namespace orrery::app {

inline QString remaining_text(double elapsed_seconds, double fraction) {
  if (!(fraction >= 0.02) || fraction >= 1.0 || elapsed_seconds < 1.0) return {};
  const double left = elapsed_seconds * (1.0 - fraction) / fraction;
  if (left < 60) return QString("~%1 s left").arg(std::max(1L, std::lround(left)));
  if (left < 3600) return QString("~%1 min left").arg(std::lround(left / 60));
  return QString("~%1 h %2 min left")
      .arg(static_cast<long>(left / 3600))
      .arg(std::lround(std::fmod(left, 3600) / 60));
}

}  // namespace orrery::app
