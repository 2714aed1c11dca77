#include "demo.hpp"

#include <tbb/global_control.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "compute/synth.hpp"

namespace orrery::app {

std::string ensure_demo_store() {
  namespace fs = std::filesystem;
  fs::path dir;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    dir = fs::path(x) / "orrery";
  else if (const char* h = std::getenv("HOME"); h && *h)
    dir = fs::path(h) / ".cache" / "orrery";
  else
    dir = fs::temp_directory_path() / "orrery";
  fs::create_directories(dir);
  compute::SynthOptions o;  // 3000 cells x 2000 genes, 8 clusters, seed 0
  const fs::path path = dir / "demo-3000x2000-seed0.h5ad";
  if (!fs::exists(path)) {
    compute::Progress quiet;
    compute::write_synth_h5ad(o, path.string(), quiet);
  }
  return path.string();
}

void set_thread_count(int n) {
  static std::unique_ptr<tbb::global_control> control;
  control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, n);
}

}  // namespace orrery::app
