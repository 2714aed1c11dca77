#include "palette.hpp"

#include <cmath>
#include <cstdio>

#include "io/error.hpp"

namespace orrery::compute {

std::vector<std::string> categorical_palette(std::size_t n) {
  static const char* base[] = {"#1f77b4", "#ff7f0e", "#279e68", "#d62728", "#aa40fc",
                               "#8c564b", "#e377c2", "#b5bd61", "#17becf", "#aec7e8",
                               "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
                               "#f7b6d2", "#dbdb8d", "#9edae5", "#ad494a", "#8c6d31"};
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) {
    if (n <= 20) {
      out.emplace_back(base[i]);
      continue;
    }
    // Golden-angle hues with alternating lightness keep neighbours distinct.
    const double h = std::fmod(static_cast<double>(i) * 137.508, 360.0) / 60.0;
    const double s = 0.65, v = (i % 3 == 0) ? 0.95 : (i % 3 == 1 ? 0.75 : 0.55);
    const double c = v * s, x = c * (1 - std::fabs(std::fmod(h, 2.0) - 1)), m = v - c;
    double rgb[3] = {0, 0, 0};
    const int sector = static_cast<int>(h);
    const double table[6][3] = {{c, x, 0}, {x, c, 0}, {0, c, x}, {0, x, c}, {x, 0, c}, {c, 0, x}};
    for (int k = 0; k < 3; ++k) rgb[k] = table[sector % 6][k] + m;
    char buf[8];
    std::snprintf(buf, sizeof buf, "#%02x%02x%02x", static_cast<int>(rgb[0] * 255 + 0.5),
                  static_cast<int>(rgb[1] * 255 + 0.5), static_cast<int>(rgb[2] * 255 + 0.5));
    out.emplace_back(buf);
  }
  return out;
}

std::array<std::uint8_t, 3> parse_hex_color(const std::string& hex) {
  unsigned r = 0, g = 0, b = 0;
  if (hex.size() != 7 || hex[0] != '#' ||
      std::sscanf(hex.c_str() + 1, "%02x%02x%02x", &r, &g, &b) != 3)
    throw Error("", "color", "expected #rrggbb, got '" + hex + "'");
  return {static_cast<std::uint8_t>(r), static_cast<std::uint8_t>(g), static_cast<std::uint8_t>(b)};
}

}  // namespace orrery::compute
