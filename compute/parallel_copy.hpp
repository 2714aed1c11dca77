// A memcpy on all cores, for filling the CUDA backend's page-locked staging buffers: one thread
// copies a few GB/s, the device's link takes ~50 GB/s.
#pragma once

#include <cstddef>

namespace orrery::compute {

// Copies `bytes` from `from` to `to` (not overlapping) in pieces of 4 MiB on TBB's threads;
// copies under 8 MiB on the calling thread.
void parallel_copy(void* to, const void* from, std::size_t bytes);

}  // namespace orrery::compute
