// The viewport's heads-up overlay, drawn with Dear ImGui's Vulkan backend into the same render
// pass as the points: the legend (categories and their colours, or the colour scale's name and
// range), a scale bar in data units, the number of points drawn and the frame time. Passive: it
// takes no input. Built when Debian's libimgui-dev (with its Vulkan backend source) is present.
#pragma once

#include <vulkan/vulkan.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace orrery::render {

struct OverlayContent {
  std::vector<std::pair<std::string, std::uint32_t>> legend;  // name, RGBA8 (R low byte)
  std::string legend_title;
  std::uint64_t points = 0;
  double frame_ms = 0;
  float pixels_per_unit = 0;  // data scale for the scale bar (0: none)
};

struct OverlayDevice {
  VkInstance instance;
  VkPhysicalDevice physical;
  VkDevice device;
  std::uint32_t queue_family;
  VkQueue queue;
  VkCommandPool command_pool;  // for the one-off font upload
  VkRenderPass render_pass;
  VkSampleCountFlagBits samples;
  std::uint32_t frames_in_flight;
};

class Overlay {
 public:
  // True when this build has the overlay (Dear ImGui found at configure time).
  static bool available();
  explicit Overlay(const OverlayDevice& device);
  ~Overlay();
  Overlay(const Overlay&) = delete;
  Overlay& operator=(const Overlay&) = delete;

  // Lays the overlay out for a frame of `extent` pixels at `scale` (device pixel ratio) and
  // records its draw commands into `cmd`, inside the render pass.
  void record(VkCommandBuffer cmd, VkExtent2D extent, float scale, const OverlayContent& content);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace orrery::render
