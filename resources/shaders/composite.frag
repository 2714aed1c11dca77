#version 450
// The splatted points over whatever the pass drew before (the cleared background): coverage
// 1 - prod(1 - alpha) and the alpha-weighted mean colour of the points on the pixel.
layout(std430, set = 0, binding = 2) readonly buffer Accum { uint acc[]; };
layout(push_constant) uniform Push {
  vec2 scale;
  vec2 offset;
  vec2 viewport;
  float point_size;
  uint count;
} pc;
layout(location = 0) out vec4 out_color;

void main() {
  ivec2 p = ivec2(gl_FragCoord.xy);
  uint base = uint(p.y * int(pc.viewport.x) + p.x) * 5u;
  float w = float(acc[base + 3u]);
  if (w <= 0.0) discard;
  vec3 color = vec3(float(acc[base]), float(acc[base + 1u]), float(acc[base + 2u])) / w;
  out_color = vec4(color, 1.0 - exp(-float(acc[base + 4u]) / 4096.0));
}
