#version 450
// Round, antialiased points: coverage falls off over about one pixel at the rim.
layout(push_constant) uniform Push {
  vec2 scale;
  vec2 offset;
  vec2 viewport;
  float point_size;
  float pad;
} pc;

layout(location = 0) in vec4 v_color;
layout(location = 1) in vec2 v_corner;
layout(location = 0) out vec4 out_color;

void main() {
  float r = length(v_corner);
  if (r > 1.0) discard;
  float rim = max(pc.point_size * 0.5, 1.0);
  float coverage = clamp((1.0 - r) * rim, 0.0, 1.0);
  out_color = vec4(v_color.rgb, v_color.a * coverage);
}
