// The writing side of the Element tree: groups, arrays, string arrays, record arrays and
// attributes, created in a new HDF5 file (hdf5_tree_writer.cpp) or zarr v2/v3 directory
// (zarr_tree_writer.cpp). AnnData's encodings are produced once on top of it (anndata_writer.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "element.hpp"

namespace orrery::io {

// Attributes as JSON: strings, lists of strings, integers, lists of integers and booleans.
using Attrs = nlohmann::json;

// A 1-D array written piece by piece (a streamed X/data, X/indices, X/indptr).
class ArrayAppender {
 public:
  virtual ~ArrayAppender() = default;
  virtual void append(const void* values, std::size_t count) = 0;
  // Writes what is buffered and the final length; the array is complete afterwards.
  virtual void finish() = 0;
};

class TreeWriter {
 public:
  virtual ~TreeWriter() = default;
  // Paths are relative to the root ("" is the root) and their parents exist.
  virtual void group(const std::string& path, const Attrs& attrs) = 0;
  // An N-D array (C order); shape {} is a scalar.
  virtual void array(const std::string& path, NumType type, const void* values,
                     const std::vector<std::int64_t>& shape, const Attrs& attrs) = 0;
  // A 1-D string array, or a scalar string when `scalar`.
  virtual void strings(const std::string& path, const std::vector<std::string>& values, bool scalar,
                       const Attrs& attrs) = 0;
  virtual std::unique_ptr<ArrayAppender> appender(const std::string& path, NumType type,
                                                  const Attrs& attrs) = 0;
  // A record array: one row per entry, one field per name, all fields numeric of `type` (F32 or
  // F64; `values` row-major) or, with `texts`, all strings.
  virtual void records(const std::string& path, const std::vector<std::string>& fields,
                       NumType type, const std::vector<double>& values,
                       const std::vector<std::string>* texts, std::size_t rows,
                       const Attrs& attrs) = 0;
  // Flushes and closes; the store at the temporary path is complete.
  virtual void close() = 0;
};

std::unique_ptr<TreeWriter> make_hdf5_writer(const std::string& path);

// Copies `src` (a group and everything below it, or one array) to `dst` unchanged: attributes,
// numeric arrays in their stored type, string arrays and scalars. With `rows`, arrays keep only
// those indices of their first axis (a gene subset of varm) and groups pass `rows` down.
// Record arrays are copied when their fields are all floats or all strings; elements with no
// copy form (records mixing both or holding integers, unreadable or oversized records, opaque
// types, strings of more than one dimension) are left out and their paths added to `skipped`.
void copy_element(const Element& src, TreeWriter& w, const std::string& dst,
                  std::vector<std::string>& skipped,
                  const std::vector<std::int64_t>* rows = nullptr);
// A zarr directory store, version 2 or 3 (zarr_tree_writer.cpp).
std::unique_ptr<TreeWriter> make_zarr_writer(const std::string& path, int format = 2);

}  // namespace orrery::io
