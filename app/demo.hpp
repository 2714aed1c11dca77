// The built-in demo dataset: a synthetic store generated on first use (deterministic, seed 0)
// and cached under $XDG_CACHE_HOME/orrery (or ~/.cache/orrery). Also the thread-count switch.
#pragma once

#include <string>

namespace orrery::app {

std::string ensure_demo_store();
void set_thread_count(int n);

}  // namespace orrery::app
