#include <algorithm>
#include <cstring>

#include "tree_writer.hpp"

namespace orrery::io {

void copy_element(const Element& src, TreeWriter& w, const std::string& dst,
                  std::vector<std::string>& skipped, const std::vector<std::int64_t>* rows) {
  // HDF5 hard links can make a group its own descendant; a copy must not follow them forever.
  if (std::count(src.path().begin(), src.path().end(), '/') > 64)
    src.fail("groups nested more than 64 levels deep (a cycle of links?)");
  const ElementKind kind = src.kind();
  if (kind == ElementKind::Group) {
    w.group(dst, src.attrs());
    for (const auto& name : src.members())
      if (auto member = src.open(name))
        copy_element(*member, w, Element::join(dst, name), skipped, rows);
    return;
  }
  if (kind == ElementKind::Other) {
    skipped.push_back(src.path());
    return;
  }
  auto shape = src.shape();
  const bool subset = rows && !shape.empty();
  if (kind == ElementKind::String) {
    if (shape.size() > 1) {
      skipped.push_back(src.path());
      return;
    }
    std::vector<std::string> values = src.read_strings();
    if (subset) {
      std::vector<std::string> kept;
      for (auto r : *rows) {
        if (r < 0 || r >= static_cast<std::int64_t>(values.size())) src.fail("row out of range");
        kept.push_back(values[static_cast<std::size_t>(r)]);
      }
      values = std::move(kept);
    }
    w.strings(dst, values, shape.empty(), src.attrs());
    return;
  }
  const NumType type = src.stored_type();
  const std::size_t item = num_type_size(type);
  std::int64_t row_items = 1;
  for (std::size_t d = 1; d < shape.size(); ++d) row_items *= shape[d];
  const std::int64_t n_rows = shape.empty() ? 1 : shape[0];
  const auto row_bytes = static_cast<std::size_t>(row_items) * item;
  std::vector<char> all(static_cast<std::size_t>(n_rows) * row_bytes);
  src.read(0, n_rows, type, all.data());
  if (subset) {
    std::vector<char> kept(rows->size() * row_bytes);
    for (std::size_t i = 0; i < rows->size(); ++i) {
      const auto r = (*rows)[i];
      if (r < 0 || r >= n_rows) src.fail("row out of range");
      std::memcpy(kept.data() + i * row_bytes, all.data() + static_cast<std::size_t>(r) * row_bytes,
                  row_bytes);
    }
    all = std::move(kept);
    shape[0] = static_cast<std::int64_t>(rows->size());
  }
  w.array(dst, type, all.data(), shape, src.attrs());
}

}  // namespace orrery::io
