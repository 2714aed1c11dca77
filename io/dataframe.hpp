// A minimal column store for obs/var: an index of names plus typed columns, enough to carry
// what the pipeline produces and what anndata's dataframe encoding holds.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace orrery {

struct Categorical {
  std::vector<std::int32_t> codes;  // -1 = missing
  std::vector<std::string> categories;
  std::vector<std::string> colors;  // optional "#rrggbb" per category, written to uns/<key>_colors

  bool operator==(const Categorical&) const = default;
};

using ColumnValues = std::variant<std::vector<double>, std::vector<float>,
                                  std::vector<std::int32_t>, std::vector<std::int64_t>,
                                  std::vector<bool>, std::vector<std::string>, Categorical>;

struct Column {
  std::string name;
  ColumnValues values;
  // anndata's "nullable-integer" or "nullable-boolean" when the column was one: its values are
  // then doubles with NaN where missing, and it is written back in that encoding ("" otherwise).
  std::string nullable = "";
  int nullable_bytes = 8;  // nullable-integer: the width its values were stored with (1, 4, 8)
};

struct DataFrame {
  std::vector<std::string> index;
  std::vector<Column> columns;

  const Column* find(const std::string& name) const {
    for (const auto& c : columns)
      if (c.name == name) return &c;
    return nullptr;
  }
};

}  // namespace orrery
