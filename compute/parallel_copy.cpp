#include "parallel_copy.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>

namespace orrery::compute {

void parallel_copy(void* to, const void* from, std::size_t bytes) {
  constexpr std::size_t kPiece = std::size_t{4} << 20;
  if (bytes < 2 * kPiece) {
    if (bytes) std::memcpy(to, from, bytes);
    return;
  }
  const std::size_t pieces = (bytes + kPiece - 1) / kPiece;
  tbb::parallel_for(std::size_t{0}, pieces, [&](std::size_t i) {
    const std::size_t at = i * kPiece;
    std::memcpy(static_cast<char*>(to) + at, static_cast<const char*>(from) + at,
                std::min(kPiece, bytes - at));
  });
}

}  // namespace orrery::compute
