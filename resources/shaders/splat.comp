#version 450
// Compute splatting for millions of points: each point adds its round, antialiased footprint
// (the same coverage as points.frag) to per-pixel sums with integer atomics, so the result does
// not depend on drawing order and the work runs on every compute unit (GPUs such as the H100
// rasterise on a few units only). Per pixel, five words: alpha-weighted R, G, B and alpha sums
// (x 4096), and the sum of -ln(1 - alpha) (x 4096), from which composite.frag takes the
// coverage 1 - prod(1 - alpha) exactly and the alpha-weighted mean colour.
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) readonly buffer Positions { vec2 pos[]; };
layout(std430, set = 0, binding = 1) readonly buffer Colors { uint rgba[]; };
layout(std430, set = 0, binding = 2) buffer Accum { uint acc[]; };

layout(push_constant) uniform Push {
  vec2 scale;
  vec2 offset;
  vec2 viewport;
  float point_size;
  uint count;
} pc;

void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i >= pc.count) return;
  vec2 centre = ((pos[i] * pc.scale + pc.offset) * 0.5 + 0.5) * pc.viewport;
  float radius = pc.point_size * 0.5;
  // Off-screen points (zoomed in) and non-finite ones (NaN rows of a stored embedding) add
  // nothing; without this their coordinates would overflow the integer conversion below.
  if (any(isnan(centre)) || any(lessThan(centre, vec2(-radius))) ||
      any(greaterThan(centre, pc.viewport + radius)))
    return;
  ivec2 size = ivec2(pc.viewport);
  ivec2 lo = max(ivec2(floor(centre - radius)), ivec2(0));
  ivec2 hi = min(ivec2(ceil(centre + radius)), size - 1);
  vec4 color = unpackUnorm4x8(rgba[i]);
  float rim = max(radius, 1.0);
  for (int y = lo.y; y <= hi.y; ++y)
    for (int x = lo.x; x <= hi.x; ++x) {
      float r = length(vec2(x, y) + 0.5 - centre) / radius;
      if (r > 1.0) continue;
      float a = color.a * clamp((1.0 - r) * rim, 0.0, 1.0);
      if (a <= 0.0) continue;
      uint base = uint(y * size.x + x) * 5u;
      atomicAdd(acc[base + 0u], uint(a * color.r * 4096.0 + 0.5));
      atomicAdd(acc[base + 1u], uint(a * color.g * 4096.0 + 0.5));
      atomicAdd(acc[base + 2u], uint(a * color.b * 4096.0 + 0.5));
      atomicAdd(acc[base + 3u], uint(a * 4096.0 + 0.5));
      if (acc[base + 4u] < 0xF0000000u)  // saturates instead of wrapping (fully covered)
        atomicAdd(acc[base + 4u], uint(-log(max(1.0 - a, 1e-4)) * 4096.0 + 0.5));
    }
}
