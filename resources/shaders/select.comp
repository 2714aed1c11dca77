#version 450
// Lasso and brush selection on the GPU: one invocation per point, the even-odd test of
// render/selection.cpp over the edges of the point's horizontal slab (mode 0), or the
// rectangle [lo, hi] inclusive (mode 1). Sets bit i % 32 of word i / 32 for a selected point
// (the words start zeroed): 1/32 of the bytes to read back.
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) readonly buffer Points { vec2 pts[]; };
layout(std430, set = 0, binding = 1) readonly buffer Polygon { vec2 poly[]; };
layout(std430, set = 0, binding = 2) readonly buffer SlabStart { uint slab_start[]; };
layout(std430, set = 0, binding = 3) readonly buffer SlabEdges { uint slab_edges[]; };
layout(std430, set = 0, binding = 4) buffer Inside { uint inside[]; };

layout(push_constant) uniform Push {
  vec2 lo;
  vec2 hi;
  uint count;
  uint vertices;
  uint slabs;
  uint mode;
} pc;

void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i >= pc.count) return;
  vec2 p = pts[i];
  bool box = p.x >= pc.lo.x && p.x <= pc.hi.x && p.y >= pc.lo.y && p.y <= pc.hi.y;
  if (pc.mode == 1u || !box) {
    if (pc.mode == 1u && box) atomicOr(inside[i / 32u], 1u << (i % 32u));
    return;
  }
  precise float height = pc.hi.y - pc.lo.y;
  int k = 0;
  if (height > 0.0) k = clamp(int((p.y - pc.lo.y) / height * float(pc.slabs)), 0, int(pc.slabs) - 1);
  bool in_poly = false;
  for (uint e = slab_start[k]; e < slab_start[k + 1]; ++e) {
    uint a = slab_edges[e];
    vec2 u = poly[a], v = poly[a == 0u ? pc.vertices - 1u : a - 1u];
    precise float x = (v.x - u.x) * (p.y - u.y) / (v.y - u.y) + u.x;
    if ((u.y > p.y) != (v.y > p.y) && p.x < x) in_poly = !in_poly;
  }
  if (in_poly) atomicOr(inside[i / 32u], 1u << (i % 32u));
}
