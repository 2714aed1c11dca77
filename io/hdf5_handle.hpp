// RAII for HDF5 identifiers and small helpers shared by the h5ad reader and writer. HDF5's own
// error stack printing is silenced; failures become orrery::Error naming file and element.
#pragma once

#include <hdf5.h>

#include <string>
#include <utility>

#include "element.hpp"
#include "error.hpp"

namespace orrery::io {

class H5Id {
 public:
  H5Id() = default;
  explicit H5Id(hid_t id) : id_(id) {}
  ~H5Id() { reset(); }
  H5Id(H5Id&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
  H5Id& operator=(H5Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;

  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && H5Iis_valid(id_) > 0) H5Idec_ref(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// The native HDF5 memory type of a NumType (Bool as int8, as h5py's enum stores it).
inline hid_t native_type(NumType t) {
  switch (t) {
    case NumType::Bool:
    case NumType::I8:
      return H5T_NATIVE_INT8;
    case NumType::I32:
      return H5T_NATIVE_INT32;
    case NumType::I64:
      return H5T_NATIVE_INT64;
    case NumType::F32:
      return H5T_NATIVE_FLOAT;
    case NumType::F64:
      return H5T_NATIVE_DOUBLE;
  }
  return H5T_NATIVE_DOUBLE;
}

// Turns HDF5's automatic stderr error printing off for the process (errors are reported by us).
void silence_hdf5_errors();
// Lets HDF5 read datasets written with h5py's LZF filter (hdf5_lzf.cpp); idempotent.
void register_lzf_filter();

inline H5Id checked(hid_t id, const std::string& file, const std::string& element,
                    const char* what) {
  if (id < 0) throw Error(file, element, what);
  return H5Id(id);
}

}  // namespace orrery::io
