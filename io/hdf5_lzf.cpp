// The LZF filter (HDF5 filter id 32000, h5py's compression="lzf") for reading, on Debian's liblzf:
// Debian's own hdf5-plugin-lzf does not load (its plugin leaves lzf_decompress unresolved), so
// Orrery registers a decoder with the HDF5 library itself. Writing LZF is not supported.
#include <hdf5.h>
#include <lzf.h>

#include <cerrno>
#include <cstdlib>
#include <mutex>

#include "hdf5_handle.hpp"

namespace orrery::io {
namespace {

constexpr H5Z_filter_t kLzf = 32000;
constexpr std::size_t kMaxChunk = std::size_t{1} << 31;  // no chunk decodes beyond 2 GiB

// h5py stores the chunk's uncompressed size in cd_values[2]; without it the output buffer grows
// from the compressed size until the data fit (up to kMaxChunk).
size_t lzf_filter(unsigned int flags, size_t cd_nelmts, const unsigned int cd_values[],
                  size_t nbytes, size_t* buf_size, void** buf) {
  if (!(flags & H5Z_FLAG_REVERSE)) return 0;  // no encoder
  std::size_t size = cd_nelmts >= 3 && cd_values[2] > 0 ? cd_values[2] : 2 * nbytes + 64;
  while (size <= kMaxChunk) {
    void* out = std::malloc(size);
    if (!out) return 0;
    const unsigned int n = lzf_decompress(*buf, static_cast<unsigned int>(nbytes), out,
                                          static_cast<unsigned int>(size));
    if (n > 0) {
      std::free(*buf);
      *buf = out;
      *buf_size = size;
      return n;
    }
    const int why = errno;
    std::free(out);
    if (why != E2BIG || (cd_nelmts >= 3 && cd_values[2] > 0)) return 0;  // corrupt data
    size *= 2;
  }
  return 0;
}

}  // namespace

void register_lzf_filter() {
  static std::once_flag once;
  std::call_once(once, [] {
    static const H5Z_class2_t filter = {H5Z_CLASS_T_VERS,       kLzf,    1,       1,
                                        "lzf (orrery, liblzf)", nullptr, nullptr, lzf_filter};
    H5Zregister(&filter);
  });
}

}  // namespace orrery::io
