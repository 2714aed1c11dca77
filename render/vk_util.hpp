// Small Vulkan helpers shared by the render pipelines: shader modules, memory types, buffers
// that own their memory and grow on demand, the alpha-blended graphics pipeline every point
// pass uses, and one-shot command submission.
#pragma once

#include <vulkan/vulkan.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>

namespace orrery::render {

VkShaderModule make_shader_module(VkDevice device, const std::uint32_t* code, std::size_t bytes);

// Index of a memory type allowed by `type_bits` with all of `flags`.
std::uint32_t find_memory_type(VkPhysicalDevice physical, std::uint32_t type_bits,
                               VkMemoryPropertyFlags flags);

// Host: visible and coherent (written by the host); HostCached: also cached where offered (read
// back by the host); Device: device-local.
enum class MemoryKind { Host, HostCached, Device };

struct GpuBuffer {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  VkDeviceSize capacity = 0;
};

// Makes `b` hold at least `bytes` (256 at least), replacing it when smaller; its contents are
// then undefined. Not while a submitted command uses it.
void ensure_buffer(VkPhysicalDevice physical, VkDevice device, GpuBuffer& b, VkDeviceSize bytes,
                   VkBufferUsageFlags usage, MemoryKind kind);
void destroy_buffer(VkDevice device, GpuBuffer& b);
// Host-visible buffers only.
void write_buffer(VkDevice device, const GpuBuffer& b, const void* data, VkDeviceSize bytes);
void read_buffer(VkDevice device, const GpuBuffer& b, void* data, VkDeviceSize bytes);

// One descriptor set of `bindings` storage buffers (bindings 0..n-1), with its layout and pool.
struct StorageDescriptors {
  VkDescriptorSetLayout layout = VK_NULL_HANDLE;
  VkDescriptorPool pool = VK_NULL_HANDLE;
  VkDescriptorSet set = VK_NULL_HANDLE;
};
StorageDescriptors make_storage_descriptors(VkDevice device, std::uint32_t bindings,
                                            VkShaderStageFlags stages);
void destroy_storage_descriptors(VkDevice device, StorageDescriptors& d);
// Points binding i of `set` at the whole of buffers[i]. Not while a submitted command uses it.
void write_storage_descriptors(VkDevice device, VkDescriptorSet set,
                               std::initializer_list<VkBuffer> buffers);

// The pipeline state of every point pass: no depth test, alpha blending (src alpha, one minus src
// alpha), dynamic viewport and scissor, `samples` to match the render pass.
VkPipeline make_blended_pipeline(VkDevice device, VkPipelineLayout layout, VkRenderPass pass,
                                 VkSampleCountFlagBits samples, VkShaderModule vert,
                                 VkShaderModule frag,
                                 const VkPipelineVertexInputStateCreateInfo& vertex_input,
                                 VkPrimitiveTopology topology);

// Records commands with `record` into a fresh command buffer of `pool`, submits it to `queue`
// (after `wait` is signalled, when given; signalling `signal`, when given) and waits for it to
// finish.
void submit_and_wait(VkDevice device, VkQueue queue, VkCommandPool pool,
                     const std::function<void(VkCommandBuffer)>& record,
                     VkSemaphore wait = VK_NULL_HANDLE,
                     VkPipelineStageFlags wait_stage = VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                     VkSemaphore signal = VK_NULL_HANDLE);

}  // namespace orrery::render
