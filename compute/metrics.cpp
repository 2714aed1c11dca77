#include "metrics.hpp"

#include <map>
#include <unordered_map>

#include "io/error.hpp"

namespace orrery::compute {

double adjusted_rand_index(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b) {
  if (a.size() != b.size()) throw Error("", "ari", "labelings differ in length");
  const double n = static_cast<double>(a.size());
  std::map<std::pair<int, int>, double> joint;
  std::unordered_map<int, double> ra, rb;
  for (std::size_t i = 0; i < a.size(); ++i) {
    joint[{a[i], b[i]}] += 1;
    ra[a[i]] += 1;
    rb[b[i]] += 1;
  }
  auto comb2 = [](double x) { return x * (x - 1) / 2; };
  double sum_joint = 0, sum_a = 0, sum_b = 0;
  for (auto& [k, v] : joint) sum_joint += comb2(v);
  for (auto& [k, v] : ra) sum_a += comb2(v);
  for (auto& [k, v] : rb) sum_b += comb2(v);
  const double expected = sum_a * sum_b / comb2(n);
  const double max_index = 0.5 * (sum_a + sum_b);
  if (max_index == expected) return 1.0;
  return (sum_joint - expected) / (max_index - expected);
}

std::vector<std::int32_t> encode_labels(const std::vector<std::string>& labels) {
  std::unordered_map<std::string, std::int32_t> codes;
  std::vector<std::int32_t> out;
  out.reserve(labels.size());
  for (auto& l : labels) {
    auto [it, inserted] = codes.emplace(l, static_cast<std::int32_t>(codes.size()));
    out.push_back(it->second);
  }
  return out;
}

}  // namespace orrery::compute
