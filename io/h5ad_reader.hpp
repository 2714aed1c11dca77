// h5ad (and Cell Ranger .h5) through the HDF5 C API: obs/var indexes and X as a RowChunkReader
// that reads rows by hyperslab (CSR groups or dense 2-D datasets), so X is never loaded whole.
#pragma once

#include <string>
#include <vector>

#include "hdf5_handle.hpp"
#include "store.hpp"

namespace orrery::io {

Store open_h5ad(const std::string& path, const OpenOptions& options = {});

// Reads a 1-D string dataset (variable- or fixed-length) as UTF-8 strings.
std::vector<std::string> read_string_dataset(hid_t parent, const std::string& name,
                                             const std::string& file);

}  // namespace orrery::io
