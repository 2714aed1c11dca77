#version 450
// Instanced point sprites: four corners per point, expanded in pixels around the projected
// centre so sizes do not depend on the largePoints device feature.
layout(location = 0) in vec2 in_position;  // per instance
layout(location = 1) in vec4 in_color;     // per instance, unorm8 RGBA

layout(push_constant) uniform Push {
  vec2 scale;       // world -> NDC
  vec2 offset;
  vec2 viewport;    // pixels
  float point_size; // pixels (diameter)
  float pad;
} pc;

layout(location = 0) out vec4 v_color;
layout(location = 1) out vec2 v_corner;

void main() {
  vec2 corner = vec2(float(gl_VertexIndex & 1), float((gl_VertexIndex >> 1) & 1)) * 2.0 - 1.0;
  vec2 centre = in_position * pc.scale + pc.offset;
  vec2 radius_ndc = vec2(pc.point_size) / pc.viewport;  // half-size in NDC = size px / viewport
  gl_Position = vec4(centre + corner * radius_ndc, 0.0, 1.0);
  v_color = in_color;
  v_corner = corner;
}
