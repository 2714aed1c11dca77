#include "offscreen.hpp"

#include <chrono>

#include <cstring>

#include "interop.hpp"
#include "point_pipeline.hpp"
#include "splat_pipeline.hpp"
#include "vk_check.hpp"

namespace orrery::render {

struct OffscreenRenderer::Impl {
  VkInstance instance = VK_NULL_HANDLE;
  VkPhysicalDevice physical = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  VkQueue queue = VK_NULL_HANDLE;
  std::uint32_t queue_family = 0;
  VkCommandPool pool = VK_NULL_HANDLE;
  std::string name;
  bool interop = false;
  std::array<std::uint8_t, 16> uuid{};

  ~Impl() {
    if (device) {
      vkDeviceWaitIdle(device);
      if (pool) vkDestroyCommandPool(device, pool, nullptr);
      vkDestroyDevice(device, nullptr);
    }
    if (instance) vkDestroyInstance(instance, nullptr);
  }
};

OffscreenRenderer::OffscreenRenderer() : impl_(std::make_unique<Impl>()) {
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "orrery";
  app.apiVersion = VK_API_VERSION_1_1;
  VkInstanceCreateInfo info{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  info.pApplicationInfo = &app;
  VkResult r = vkCreateInstance(&info, nullptr, &impl_->instance);
  if (r != VK_SUCCESS)
    throw Error("", "vulkan",
                "no Vulkan driver (install mesa-vulkan-drivers for lavapipe); vkCreateInstance = " +
                    std::to_string(static_cast<int>(r)));
  std::uint32_t count = 0;
  vkEnumeratePhysicalDevices(impl_->instance, &count, nullptr);
  std::vector<VkPhysicalDevice> devices(count);
  vkEnumeratePhysicalDevices(impl_->instance, &count, devices.data());
  if (devices.empty()) throw Error("", "vulkan", "no Vulkan device");
  // Prefer a real GPU; lavapipe (CPU) otherwise.
  int best = -1, best_score = -1;
  for (std::size_t i = 0; i < devices.size(); ++i) {
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(devices[i], &p);
    std::uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(devices[i], &nq, nullptr);
    std::vector<VkQueueFamilyProperties> qs(nq);
    vkGetPhysicalDeviceQueueFamilyProperties(devices[i], &nq, qs.data());
    for (std::uint32_t q = 0; q < nq; ++q) {
      if (!(qs[q].queueFlags & VK_QUEUE_GRAPHICS_BIT)) continue;
      const int score = p.deviceType == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU     ? 3
                        : p.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ? 2
                                                                                 : 1;
      if (score > best_score) {
        best_score = score;
        best = static_cast<int>(i);
        impl_->queue_family = q;
        impl_->name = p.deviceName;
      }
      break;
    }
  }
  if (best < 0) throw Error("", "vulkan", "no Vulkan device with a graphics queue");
  impl_->physical = devices[best];

  // CUDA interop when the device offers it (render/interop.hpp).
  impl_->interop = interop_extensions_offered(impl_->physical);
  impl_->uuid = render::device_uuid(impl_->physical);

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo queue_info{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  queue_info.queueFamilyIndex = impl_->queue_family;
  queue_info.queueCount = 1;
  queue_info.pQueuePriorities = &priority;
  VkDeviceCreateInfo device_info{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  device_info.queueCreateInfoCount = 1;
  device_info.pQueueCreateInfos = &queue_info;
  if (impl_->interop) {
    device_info.enabledExtensionCount = 2;
    device_info.ppEnabledExtensionNames = kInteropExtensions;
  }
  ORRERY_VK_CHECK(vkCreateDevice(impl_->physical, &device_info, nullptr, &impl_->device));
  vkGetDeviceQueue(impl_->device, impl_->queue_family, 0, &impl_->queue);
  VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool_info.queueFamilyIndex = impl_->queue_family;
  pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  ORRERY_VK_CHECK(vkCreateCommandPool(impl_->device, &pool_info, nullptr, &impl_->pool));
}

OffscreenRenderer::~OffscreenRenderer() = default;

std::string OffscreenRenderer::device_name() const {
  return impl_->name;
}

bool OffscreenRenderer::interop_supported() const {
  return impl_->interop;
}

std::array<std::uint8_t, 16> OffscreenRenderer::device_uuid() const {
  return impl_->uuid;
}

OffscreenRenderer::Context OffscreenRenderer::context() const {
  return {impl_->physical, impl_->device, impl_->queue, impl_->pool, impl_->queue_family};
}

Image OffscreenRenderer::render(const PointSet& points, Camera camera, const RenderOptions& o) {
  if (o.width == 0 || o.height == 0 || o.width > 16384 || o.height > 16384)
    throw Error("", "export", "image size must be 1..16384 pixels per side");
  VkDevice dev = impl_->device;
  const VkFormat format = VK_FORMAT_R8G8B8A8_UNORM;
  camera.resize(static_cast<float>(o.width), static_cast<float>(o.height));

  // Every object below is released by this guard, whatever throws.
  struct Objects {
    VkDevice dev;
    VkImage image = VK_NULL_HANDLE;
    VkDeviceMemory image_mem = VK_NULL_HANDLE;
    VkImageView view = VK_NULL_HANDLE;
    VkRenderPass pass = VK_NULL_HANDLE;
    VkFramebuffer framebuffer = VK_NULL_HANDLE;
    GpuBuffer readback;
    VkFence fence = VK_NULL_HANDLE;
    ~Objects() {
      if (fence) vkDestroyFence(dev, fence, nullptr);
      if (framebuffer) vkDestroyFramebuffer(dev, framebuffer, nullptr);
      if (pass) vkDestroyRenderPass(dev, pass, nullptr);
      if (view) vkDestroyImageView(dev, view, nullptr);
      if (image) vkDestroyImage(dev, image, nullptr);
      if (image_mem) vkFreeMemory(dev, image_mem, nullptr);
      destroy_buffer(dev, readback);
    }
  } obj{dev};

  VkImageCreateInfo image_info{VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO};
  image_info.imageType = VK_IMAGE_TYPE_2D;
  image_info.format = format;
  image_info.extent = {o.width, o.height, 1};
  image_info.mipLevels = 1;
  image_info.arrayLayers = 1;
  image_info.samples = VK_SAMPLE_COUNT_1_BIT;
  image_info.tiling = VK_IMAGE_TILING_OPTIMAL;
  image_info.usage = VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT | VK_IMAGE_USAGE_TRANSFER_SRC_BIT;
  ORRERY_VK_CHECK(vkCreateImage(dev, &image_info, nullptr, &obj.image));
  VkMemoryRequirements req;
  vkGetImageMemoryRequirements(dev, obj.image, &req);
  VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex =
      find_memory_type(impl_->physical, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
  ORRERY_VK_CHECK(vkAllocateMemory(dev, &alloc, nullptr, &obj.image_mem));
  ORRERY_VK_CHECK(vkBindImageMemory(dev, obj.image, obj.image_mem, 0));

  VkImageViewCreateInfo view_info{VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO};
  view_info.image = obj.image;
  view_info.viewType = VK_IMAGE_VIEW_TYPE_2D;
  view_info.format = format;
  view_info.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1};
  ORRERY_VK_CHECK(vkCreateImageView(dev, &view_info, nullptr, &obj.view));

  VkAttachmentDescription color{};
  color.format = format;
  color.samples = VK_SAMPLE_COUNT_1_BIT;
  color.loadOp = VK_ATTACHMENT_LOAD_OP_CLEAR;
  color.storeOp = VK_ATTACHMENT_STORE_OP_STORE;
  color.stencilLoadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE;
  color.stencilStoreOp = VK_ATTACHMENT_STORE_OP_DONT_CARE;
  color.initialLayout = VK_IMAGE_LAYOUT_UNDEFINED;
  color.finalLayout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL;
  VkAttachmentReference ref{0, VK_IMAGE_LAYOUT_COLOR_ATTACHMENT_OPTIMAL};
  VkSubpassDescription subpass{};
  subpass.pipelineBindPoint = VK_PIPELINE_BIND_POINT_GRAPHICS;
  subpass.colorAttachmentCount = 1;
  subpass.pColorAttachments = &ref;
  VkSubpassDependency dep{};
  dep.srcSubpass = 0;
  dep.dstSubpass = VK_SUBPASS_EXTERNAL;
  dep.srcStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT;
  dep.dstStageMask = VK_PIPELINE_STAGE_TRANSFER_BIT;
  dep.srcAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT;
  dep.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
  VkRenderPassCreateInfo pass_info{VK_STRUCTURE_TYPE_RENDER_PASS_CREATE_INFO};
  pass_info.attachmentCount = 1;
  pass_info.pAttachments = &color;
  pass_info.subpassCount = 1;
  pass_info.pSubpasses = &subpass;
  pass_info.dependencyCount = 1;
  pass_info.pDependencies = &dep;
  ORRERY_VK_CHECK(vkCreateRenderPass(dev, &pass_info, nullptr, &obj.pass));

  VkFramebufferCreateInfo fb_info{VK_STRUCTURE_TYPE_FRAMEBUFFER_CREATE_INFO};
  fb_info.renderPass = obj.pass;
  fb_info.attachmentCount = 1;
  fb_info.pAttachments = &obj.view;
  fb_info.width = o.width;
  fb_info.height = o.height;
  fb_info.layers = 1;
  ORRERY_VK_CHECK(vkCreateFramebuffer(dev, &fb_info, nullptr, &obj.framebuffer));

  const VkDeviceSize bytes = static_cast<VkDeviceSize>(o.width) * o.height * 4;
  ensure_buffer(impl_->physical, dev, obj.readback, bytes, VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                MemoryKind::HostCached);

  if (o.frames < 1 || o.frames > 100000) throw Error("", "export", "frames must be 1..100000");
  const bool splat =
      o.points == RenderOptions::Points::Splat ||
      (o.points == RenderOptions::Points::Auto && points.size() >= RenderOptions::kSplatPoints);
  std::unique_ptr<PointPipeline> sprites;
  std::unique_ptr<SplatPipeline> splats;
  if (splat)
    splats = std::make_unique<SplatPipeline>(impl_->physical, dev, obj.pass, VK_SAMPLE_COUNT_1_BIT);
  else
    sprites =
        std::make_unique<PointPipeline>(impl_->physical, dev, obj.pass, VK_SAMPLE_COUNT_1_BIT);
  // Points in a frame: the splat pass (outside the render pass), then the draw inside it.
  const auto before_pass = [&](VkCommandBuffer c) {
    if (splats) splats->record_splat(c, camera, {o.width, o.height}, o.point_size);
  };
  const auto in_pass = [&](VkCommandBuffer c) {
    if (splats)
      splats->record_composite(c, {o.width, o.height});
    else
      sprites->record(c, camera, {o.width, o.height}, o.point_size);
  };
  using Clock = std::chrono::steady_clock;
  const auto ms_since = [](Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  auto t_upload = Clock::now();
  if (splats)
    splats->upload(points);
  else
    sprites->upload(points);
  const double upload_ms = ms_since(t_upload);
  if (o.positions) {
    if (o.positions->size() < points.size() * sizeof(glm::vec2))
      throw Error("", "export", "shared position buffer smaller than the point set");
  }
  if (const VkBuffer b = o.positions ? o.positions->buffer() : o.position_buffer) {
    if (splats)
      splats->use_positions(b);
    else
      sprites->use_positions(b);
  }
  VkClearValue clear{};
  std::memcpy(clear.color.float32, o.background.data(), sizeof(float) * 4);
  VkRenderPassBeginInfo rp{VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO};
  rp.renderPass = obj.pass;
  rp.framebuffer = obj.framebuffer;
  rp.renderArea = {{0, 0}, {o.width, o.height}};
  rp.clearValueCount = 1;
  rp.pClearValues = &clear;
  VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  ORRERY_VK_CHECK(vkCreateFence(dev, &fence_info, nullptr, &obj.fence));
  if (o.wait) {  // an empty submission that waits for the writer (CUDA) to signal
    const VkSemaphore wait = o.wait->handle();
    const VkPipelineStageFlags stage = VK_PIPELINE_STAGE_VERTEX_INPUT_BIT;
    VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    submit.waitSemaphoreCount = 1;
    submit.pWaitSemaphores = &wait;
    submit.pWaitDstStageMask = &stage;
    ORRERY_VK_CHECK(vkQueueSubmit(impl_->queue, 1, &submit, obj.fence));
    ORRERY_VK_CHECK(vkWaitForFences(dev, 1, &obj.fence, VK_TRUE, UINT64_MAX));
    ORRERY_VK_CHECK(vkResetFences(dev, 1, &obj.fence));
  }
  std::vector<double> frame_ms;

  VkCommandBufferAllocateInfo cmd_info{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  cmd_info.commandPool = impl_->pool;
  cmd_info.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  cmd_info.commandBufferCount = 1;
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  ORRERY_VK_CHECK(vkAllocateCommandBuffers(dev, &cmd_info, &cmd));
  struct CmdGuard {
    VkDevice dev;
    VkCommandPool pool;
    VkCommandBuffer cmd;
    ~CmdGuard() { vkFreeCommandBuffers(dev, pool, 1, &cmd); }
  } cmd_guard{dev, impl_->pool, cmd};

  if (o.frames > 1) {  // the frames before the last: clear and draw only, each timed
    VkCommandBuffer draw = VK_NULL_HANDLE;
    ORRERY_VK_CHECK(vkAllocateCommandBuffers(dev, &cmd_info, &draw));
    CmdGuard draw_guard{dev, impl_->pool, draw};
    VkCommandBufferBeginInfo reusable{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    ORRERY_VK_CHECK(vkBeginCommandBuffer(draw, &reusable));
    before_pass(draw);
    vkCmdBeginRenderPass(draw, &rp, VK_SUBPASS_CONTENTS_INLINE);
    in_pass(draw);
    vkCmdEndRenderPass(draw);
    ORRERY_VK_CHECK(vkEndCommandBuffer(draw));
    VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    submit.commandBufferCount = 1;
    submit.pCommandBuffers = &draw;
    for (int f = 0; f + 1 < o.frames; ++f) {
      const auto t0 = Clock::now();
      ORRERY_VK_CHECK(vkQueueSubmit(impl_->queue, 1, &submit, obj.fence));
      ORRERY_VK_CHECK(vkWaitForFences(dev, 1, &obj.fence, VK_TRUE, UINT64_MAX));
      frame_ms.push_back(ms_since(t0));
      ORRERY_VK_CHECK(vkResetFences(dev, 1, &obj.fence));
    }
  }

  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  ORRERY_VK_CHECK(vkBeginCommandBuffer(cmd, &begin));
  before_pass(cmd);
  vkCmdBeginRenderPass(cmd, &rp, VK_SUBPASS_CONTENTS_INLINE);
  in_pass(cmd);
  vkCmdEndRenderPass(cmd);
  VkBufferImageCopy region{};
  region.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1};
  region.imageExtent = {o.width, o.height, 1};
  vkCmdCopyImageToBuffer(cmd, obj.image, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL, obj.readback.buffer,
                         1, &region);
  VkBufferMemoryBarrier barrier{VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  barrier.srcQueueFamilyIndex = barrier.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
  barrier.buffer = obj.readback.buffer;
  barrier.size = VK_WHOLE_SIZE;
  vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 0,
                       nullptr, 1, &barrier, 0, nullptr);
  ORRERY_VK_CHECK(vkEndCommandBuffer(cmd));

  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &cmd;
  const auto t_last = Clock::now();
  ORRERY_VK_CHECK(vkQueueSubmit(impl_->queue, 1, &submit, obj.fence));
  ORRERY_VK_CHECK(vkWaitForFences(dev, 1, &obj.fence, VK_TRUE, UINT64_MAX));
  frame_ms.push_back(ms_since(t_last));  // includes the copy to the readback buffer

  Image out;
  out.upload_ms = upload_ms;
  out.frame_ms = std::move(frame_ms);
  out.width = o.width;
  out.height = o.height;
  out.rgba.resize(bytes);
  read_buffer(dev, obj.readback, out.rgba.data(), bytes);
  return out;
}

}  // namespace orrery::render
