// The Backend interface: one implementation per device family (cpu/, cuda/). The pipeline calls
// backends for the per-chunk transforms; make_backend("auto") picks CUDA when a device exists and
// says why it did not otherwise.
#pragma once

#include <memory>
#include <string>

#include "io/matrix.hpp"

namespace orrery::compute {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // In place: each row scaled to sum to target_sum, then log1p. With `excluded` (one flag per
  // column), flagged columns do not count towards a row's total (normalize_total's
  // exclude_highly_expressed) but are scaled like the others.
  virtual void normalize_log1p(CsrMatrix& chunk, double target_sum,
                               const std::vector<char>* excluded = nullptr) = 0;
};

std::unique_ptr<Backend> make_cpu_backend();

// Available only when built with CUDA; returns nullptr with `why` set when no device is usable.
std::unique_ptr<Backend> make_cuda_backend(std::string* why);
bool cuda_compiled();
int cuda_device_count();

// "cpu", "cuda" or "auto". `note` receives a one-line explanation of the choice.
std::unique_ptr<Backend> make_backend(const std::string& kind, std::string* note);

}  // namespace orrery::compute
