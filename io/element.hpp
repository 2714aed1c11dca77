// The tree inside a hierarchical array store, as AnnData sees it: groups with named members and
// string attributes, arrays with a shape and an element type. HDF5 files (hdf5_element.cpp) and
// zarr v2/v3 directories (zarr_element.cpp) implement it, so AnnData's encodings are decoded once
// (anndata_reader.cpp) for every backend.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "error.hpp"

namespace orrery::io {

enum class ElementKind { Group, Integer, Float, Bool, String, Other };

// Element types in memory: what arrays are read into (converted from whatever the store holds)
// and written from. Bool is one byte, 0 or 1.
enum class NumType { Bool, I8, I32, I64, F32, F64 };

// The NumType for a stored integer or float of `bytes` bytes.
inline NumType widen_integer(std::size_t bytes, bool is_signed) {
  if (bytes == 1 && is_signed) return NumType::I8;
  if (bytes <= 2 || (bytes == 4 && is_signed)) return NumType::I32;
  return NumType::I64;
}
inline NumType widen_float(std::size_t bytes) {
  return bytes <= 4 ? NumType::F32 : NumType::F64;
}

inline std::size_t num_type_size(NumType t) {
  switch (t) {
    case NumType::Bool:
    case NumType::I8:
      return 1;
    case NumType::I32:
    case NumType::F32:
      return 4;
    case NumType::I64:
    case NumType::F64:
      return 8;
  }
  return 8;
}

template <typename T>
constexpr NumType num_type_of();
template <>
constexpr NumType num_type_of<std::int8_t>() {
  return NumType::I8;
}
template <>
constexpr NumType num_type_of<std::int32_t>() {
  return NumType::I32;
}
template <>
constexpr NumType num_type_of<std::int64_t>() {
  return NumType::I64;
}
template <>
constexpr NumType num_type_of<float>() {
  return NumType::F32;
}
template <>
constexpr NumType num_type_of<double>() {
  return NumType::F64;
}

class Element {
 public:
  virtual ~Element() = default;

  // For errors: the store's path and this element's path inside it ("obs/cell_type/codes").
  virtual const std::string& file() const = 0;
  virtual const std::string& path() const = 0;

  virtual ElementKind kind() const = 0;
  bool is_group() const { return kind() == ElementKind::Group; }

  // Groups: member names (sorted), and a member by name or nullptr when there is none.
  virtual std::vector<std::string> members() const = 0;
  virtual std::unique_ptr<Element> open(const std::string& member) const = 0;

  virtual bool has_attr(const std::string& key) const = 0;
  // A string attribute, scalar or array; empty when absent or not strings.
  virtual std::vector<std::string> string_attr(const std::string& key) const = 0;
  // An integer attribute, scalar or array; empty when absent or not integers.
  virtual std::vector<std::int64_t> int_attr(const std::string& key) const = 0;
  // Every attribute that is a string, integer, float or boolean (scalar or 1-D list) as JSON,
  // for copying elements unchanged; attributes of other types are left out.
  virtual nlohmann::json attrs() const = 0;

  // Arrays: the shape, and elements [begin, end) of the first axis (with all of the others, in
  // C order) converted to `type`; a scalar (shape {}) is read as [0, 1). Out-of-range requests
  // and unreadable data throw orrery::Error.
  virtual std::vector<std::int64_t> shape() const = 0;
  virtual void read(std::int64_t begin, std::int64_t end, NumType type, void* out) const = 0;
  // The in-memory type that holds an array's elements without loss (float32 stays F32, uint8
  // widens to I32); meaningless for groups and strings.
  virtual NumType stored_type() const = 0;
  // Compound (record) arrays, as anndata before 0.7 stored obs and var: the field names (empty
  // for anything else), and one field as a 1-D array element of its own.
  virtual std::vector<std::string> fields() const { return {}; }
  virtual std::unique_ptr<Element> field(const std::string& name) const { return nullptr; }
  // Looks up chunks of a chunked 1-D array across its whole index without reading data
  // (HDF5's chunk B-tree), for the HDF5 guard; throws orrery::Error when a lookup fails. A
  // no-op elsewhere.
  virtual void visit_chunk_index() const {}
  // The whole 1-D string array (or the one string of a scalar), UTF-8.
  virtual std::vector<std::string> read_strings() const = 0;

  template <typename T>
  void read(std::int64_t begin, std::int64_t end, T* out) const {
    read(begin, end, num_type_of<T>(), out);
  }

  [[noreturn]] void fail(const std::string& message) const { throw Error(file(), path(), message); }

  // Opens a member that must exist.
  std::unique_ptr<Element> require(const std::string& member) const {
    auto e = open(member);
    if (!e) throw Error(file(), join(path(), member), "missing");
    return e;
  }
  std::string string_attr_or(const std::string& key, const std::string& fallback) const {
    auto v = string_attr(key);
    return v.empty() ? fallback : v.front();
  }
  // The number of elements along the first axis of a 1-D array (error otherwise).
  std::int64_t length() const {
    auto s = shape();
    if (is_group() || s.size() != 1) fail("expected a 1-D array");
    return s[0];
  }
  static std::string join(const std::string& parent, const std::string& member) {
    return parent.empty() ? member : parent + "/" + member;
  }
};

// The whole of a 1-D numeric array, whose length must be `expected`.
template <typename T>
std::vector<T> read_all(const Element& e, std::int64_t expected) {
  if (e.kind() == ElementKind::String || e.is_group()) e.fail("expected a numeric array");
  const auto n = e.length();
  if (n != expected)
    e.fail("length " + std::to_string(n) + " does not match the index (" +
           std::to_string(expected) + ")");
  std::vector<T> out(static_cast<std::size_t>(n));
  e.read(0, n, out.data());
  return out;
}

// Opens an HDF5 file's root group (hdf5_element.cpp) or a zarr v2/v3 directory's root
// (zarr_element.cpp). Neither is ever opened for writing.
std::unique_ptr<Element> open_hdf5_root(const std::string& path);
// An HDF5 file image held in memory (copied); `name` stands for the file in errors.
std::unique_ptr<Element> open_hdf5_image(const void* data, std::size_t size,
                                         const std::string& name);
std::unique_ptr<Element> open_zarr_root(const std::string& path);

}  // namespace orrery::io
