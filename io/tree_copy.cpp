#include <algorithm>
#include <cstring>

#include "tree_writer.hpp"

namespace orrery::io {

namespace {

constexpr std::size_t kMaxRecordBytes = std::size_t{256} << 20;

bool copy_records_or_throw(const Element& src, TreeWriter& w, const std::string& dst,
                           const std::vector<std::string>& fields,
                           const std::vector<std::int64_t>* rows) {
  const auto shape = src.shape();
  if (shape.size() != 1) return false;
  std::vector<std::unique_ptr<Element>> columns;
  bool strings = false, numbers = false, all_f32 = true;
  for (const auto& name : fields) {
    auto f = src.field(name);
    if (!f) return false;
    const auto kind = f->kind();
    if (kind == ElementKind::String)
      strings = true;
    else if (kind == ElementKind::Float)
      numbers = true;
    else
      return false;
    if (kind != ElementKind::String && f->stored_type() != NumType::F32) all_f32 = false;
    columns.push_back(std::move(f));
  }
  if (strings == numbers) return false;  // mixed (or no fields)
  std::vector<std::int64_t> order;
  if (rows) {
    for (auto r : *rows)
      if (r < 0 || r >= shape[0]) src.fail("row out of range");
    order = *rows;
  } else {
    for (std::int64_t r = 0; r < shape[0]; ++r) order.push_back(r);
  }
  const std::size_t n = order.size(), k = fields.size();
  if (n * k * 8 > kMaxRecordBytes) return false;
  std::vector<std::string> texts(strings ? n * k : 0);
  std::vector<double> values(numbers ? n * k : 0);
  std::size_t longest = 1;  // the zarr writer gives every string the longest one's width
  for (std::size_t f = 0; f < k; ++f) {
    if (strings) {
      const auto column = columns[f]->read_strings();
      for (std::size_t i = 0; i < n; ++i) {
        texts[i * k + f] = column.at(static_cast<std::size_t>(order[i]));
        longest = std::max(longest, texts[i * k + f].size());
      }
      if (n * k * 4 * longest > kMaxRecordBytes) return false;
    } else {
      std::vector<double> column(static_cast<std::size_t>(shape[0]));
      columns[f]->read(0, shape[0], column.data());
      for (std::size_t i = 0; i < n; ++i)
        values[i * k + f] = column[static_cast<std::size_t>(order[i])];
    }
  }
  w.records(dst, fields, all_f32 ? NumType::F32 : NumType::F64, values, strings ? &texts : nullptr,
            n, src.attrs());
  return true;
}

// A 1-D record array (anndata's rec-arrays, such as a rank_genes_groups of the input) whose
// fields are all strings or all floats, as TreeWriter::records writes them; false when it has
// another form (integer fields would not survive a float64 copy unchanged), cannot be read, or
// would take more than kMaxRecordBytes to write: the caller names it as not copied.
bool copy_records(const Element& src, TreeWriter& w, const std::string& dst,
                  const std::vector<std::string>& fields, const std::vector<std::int64_t>* rows) {
  try {
    return copy_records_or_throw(src, w, dst, fields, rows);
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

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
    if (const auto fields = src.fields();
        !fields.empty() && copy_records(src, w, dst, fields, rows))
      return;
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
