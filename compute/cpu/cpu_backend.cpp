#include <tbb/parallel_for.h>

#include "compute/backend.hpp"
#include "compute/elementwise.hpp"

namespace orrery::compute {
namespace {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  void normalize_log1p(CsrMatrix& chunk, double target_sum,
                       const std::vector<char>* excluded) override {
    tbb::parallel_for(std::int64_t{0}, chunk.n_rows, [&](std::int64_t r) {
      const auto b = chunk.indptr[r], e = chunk.indptr[r + 1];
      const double total = row_total(chunk, r, excluded);
      for (auto k = b; k < e; ++k)
        chunk.data[k] = normalize_log1p_value(chunk.data[k], total, target_sum);
    });
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() {
  return std::make_unique<CpuBackend>();
}

}  // namespace orrery::compute
