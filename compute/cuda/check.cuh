// One macro for every CUDA runtime call: failures become orrery::Error with the call and reason.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "io/error.hpp"

#define ORRERY_CUDA_CHECK(call)                                                                \
  do {                                                                                         \
    cudaError_t orrery_status_ = (call);                                                       \
    if (orrery_status_ != cudaSuccess)                                                         \
      throw ::orrery::Error("", #call,                                                         \
                            std::string("CUDA error: ") + cudaGetErrorString(orrery_status_)); \
  } while (0)
