#include "overlay.hpp"

#include <cmath>
#include <cstdio>

#include "io/error.hpp"

#if ORRERY_HAS_IMGUI
#include <imgui.h>
#include <imgui_impl_vulkan.h>
#endif

namespace orrery::render {

#if ORRERY_HAS_IMGUI

namespace {

ImVec4 unpack(std::uint32_t rgba) {
  return {static_cast<float>(rgba & 0xff) / 255.0f, static_cast<float>((rgba >> 8) & 0xff) / 255.0f,
          static_cast<float>((rgba >> 16) & 0xff) / 255.0f, 1.0f};
}

// A round number of data units close to `target_px` pixels: 1, 2 or 5 times a power of ten.
float nice_length(float pixels_per_unit, float target_px) {
  const float raw = target_px / pixels_per_unit;
  const float decade = std::pow(10.0f, std::floor(std::log10(raw)));
  for (float step : {1.0f, 2.0f, 5.0f, 10.0f})
    if (step * decade >= raw * 0.75f) return step * decade;
  return 10 * decade;
}

void check(VkResult r) {
  if (r != VK_SUCCESS) throw Error("", "vulkan overlay", "error " + std::to_string(r));
}

}  // namespace

struct Overlay::State {
  VkDevice device;
  VkDescriptorPool pool = VK_NULL_HANDLE;
  ImGuiContext* context = nullptr;
};

bool Overlay::available() {
  return true;
}

Overlay::Overlay(const OverlayDevice& d) : state_(std::make_unique<State>()) {
  state_->device = d.device;
  VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, 4};
  VkDescriptorPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  pool_info.flags = VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT;
  pool_info.maxSets = 4;
  pool_info.poolSizeCount = 1;
  pool_info.pPoolSizes = &size;
  check(vkCreateDescriptorPool(d.device, &pool_info, nullptr, &state_->pool));

  IMGUI_CHECKVERSION();
  state_->context = ImGui::CreateContext();
  ImGui::SetCurrentContext(state_->context);
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;  // nothing written next to the user's files
  io.LogFilename = nullptr;
  ImGui::StyleColorsDark();
  ImGui::GetStyle().WindowRounding = 4.0f;

  ImGui_ImplVulkan_InitInfo info{};
  info.Instance = d.instance;
  info.PhysicalDevice = d.physical;
  info.Device = d.device;
  info.QueueFamily = d.queue_family;
  info.Queue = d.queue;
  info.DescriptorPool = state_->pool;
  info.MinImageCount = 2;
  info.ImageCount = std::max<std::uint32_t>(2, d.frames_in_flight + 1);
  info.MSAASamples = d.samples;
  info.CheckVkResultFn = check;
  if (!ImGui_ImplVulkan_Init(&info, d.render_pass))
    throw Error("", "vulkan overlay", "Dear ImGui's Vulkan backend did not start");

  // The font atlas goes to the device once, through a one-off command buffer.
  VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  alloc.commandPool = d.command_pool;
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  check(vkAllocateCommandBuffers(d.device, &alloc, &cmd));
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(vkBeginCommandBuffer(cmd, &begin));
  ImGui_ImplVulkan_CreateFontsTexture(cmd);
  check(vkEndCommandBuffer(cmd));
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &cmd;
  check(vkQueueSubmit(d.queue, 1, &submit, VK_NULL_HANDLE));
  check(vkQueueWaitIdle(d.queue));
  ImGui_ImplVulkan_DestroyFontUploadObjects();
  vkFreeCommandBuffers(d.device, d.command_pool, 1, &cmd);
}

Overlay::~Overlay() {
  ImGui::SetCurrentContext(state_->context);
  ImGui_ImplVulkan_Shutdown();
  ImGui::DestroyContext(state_->context);
  vkDestroyDescriptorPool(state_->device, state_->pool, nullptr);
}

void Overlay::record(VkCommandBuffer cmd, VkExtent2D extent, float scale, const OverlayContent& c) {
  ImGui::SetCurrentContext(state_->context);
  ImGuiIO& io = ImGui::GetIO();
  io.DisplaySize = ImVec2(static_cast<float>(extent.width), static_cast<float>(extent.height));
  io.DeltaTime = 1.0f / 60.0f;
  io.FontGlobalScale = scale;
  ImGui_ImplVulkan_NewFrame();
  ImGui::NewFrame();
  const ImGuiWindowFlags flags = ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_AlwaysAutoResize |
                                 ImGuiWindowFlags_NoInputs | ImGuiWindowFlags_NoSavedSettings |
                                 ImGuiWindowFlags_NoFocusOnAppearing | ImGuiWindowFlags_NoNav;
  const float pad = 8 * scale;
  ImGui::SetNextWindowBgAlpha(0.6f);
  if (!c.legend.empty()) {
    ImGui::SetNextWindowPos(ImVec2(io.DisplaySize.x - pad, pad), ImGuiCond_Always, ImVec2(1, 0));
    ImGui::Begin("legend", nullptr, flags);
    if (!c.legend_title.empty()) ImGui::TextUnformatted(c.legend_title.c_str());
    const std::size_t shown = std::min<std::size_t>(c.legend.size(), 40);
    for (std::size_t i = 0; i < shown; ++i) {
      ImGui::ColorButton(("##swatch" + std::to_string(i)).c_str(), unpack(c.legend[i].second),
                         ImGuiColorEditFlags_NoTooltip | ImGuiColorEditFlags_NoBorder,
                         ImVec2(12 * scale, 12 * scale));
      ImGui::SameLine();
      ImGui::TextUnformatted(c.legend[i].first.c_str());
    }
    if (c.legend.size() > shown) ImGui::Text("... %zu more", c.legend.size() - shown);
    ImGui::End();
  }
  ImGui::SetNextWindowBgAlpha(0.6f);
  ImGui::SetNextWindowPos(ImVec2(pad, io.DisplaySize.y - pad), ImGuiCond_Always, ImVec2(0, 1));
  ImGui::Begin("stats", nullptr, flags);
  ImGui::Text("%llu cells  %.1f ms/frame", static_cast<unsigned long long>(c.points), c.frame_ms);
  if (c.pixels_per_unit > 0) {
    const float units = nice_length(c.pixels_per_unit, 100 * scale);
    const float px = units * c.pixels_per_unit;
    const ImVec2 at = ImGui::GetCursorScreenPos();
    ImGui::GetWindowDrawList()->AddLine(ImVec2(at.x, at.y + 6 * scale),
                                        ImVec2(at.x + px, at.y + 6 * scale),
                                        IM_COL32(255, 255, 255, 255), 2 * scale);
    ImGui::Dummy(ImVec2(px, 10 * scale));
    ImGui::Text("%g UMAP units", static_cast<double>(units));
  }
  ImGui::End();
  ImGui::Render();
  ImGui_ImplVulkan_RenderDrawData(ImGui::GetDrawData(), cmd);
}

#else  // no Dear ImGui in this build

struct Overlay::State {};
bool Overlay::available() {
  return false;
}
Overlay::Overlay(const OverlayDevice&) {
  throw Error("", "vulkan overlay", "this build has no Dear ImGui (libimgui-dev)");
}
Overlay::~Overlay() = default;
void Overlay::record(VkCommandBuffer, VkExtent2D, float, const OverlayContent&) {}

#endif

}  // namespace orrery::render
