// Categorical colours for cluster labels: scanpy's 20-colour default for up to 20 categories,
// then evenly spaced hues. Colours are "#rrggbb" so they can be written to uns/<key>_colors.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace orrery::compute {

std::vector<std::string> categorical_palette(std::size_t n);
std::array<std::uint8_t, 3> parse_hex_color(const std::string& hex);

}  // namespace orrery::compute
