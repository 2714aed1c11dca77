// One macro for every Vulkan call: a failing VkResult becomes orrery::Error naming the call.
#pragma once

#include <vulkan/vulkan.h>

#include <string>

#include "io/error.hpp"

#define ORRERY_VK_CHECK(call)                                                                \
  do {                                                                                       \
    VkResult orrery_vk_result_ = (call);                                                     \
    if (orrery_vk_result_ != VK_SUCCESS)                                                     \
      throw ::orrery::Error(                                                                 \
          "", #call, "Vulkan error " + std::to_string(static_cast<int>(orrery_vk_result_))); \
  } while (0)
