// Agreement between two labelings (adjusted Rand index), used to compare clusterings with
// reference annotations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace orrery::compute {

double adjusted_rand_index(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b);

// Maps strings to dense integer codes in first-seen order.
std::vector<std::int32_t> encode_labels(const std::vector<std::string>& labels);

}  // namespace orrery::compute
