#include "inflate.hpp"

#include <libdeflate.h>

#include <memory>

namespace orrery::io {

bool inflate_exact(const unsigned char* in, std::size_t in_size, unsigned char* out,
                   std::size_t out_size) {
  // libdeflate's decompressors are not shared between threads: one per thread, made at its
  // first chunk (the reader's read-ahead threads are new for each chunk; allocating is cheap).
  thread_local const std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)>
      decompressor(libdeflate_alloc_decompressor(), libdeflate_free_decompressor);
  if (!decompressor) return false;
  const bool gzip = in_size >= 2 && in[0] == 0x1f && in[1] == 0x8b;
  std::size_t produced = 0;
  const libdeflate_result rc =
      gzip ? libdeflate_gzip_decompress(decompressor.get(), in, in_size, out, out_size, &produced)
           : libdeflate_zlib_decompress(decompressor.get(), in, in_size, out, out_size, &produced);
  return rc == LIBDEFLATE_SUCCESS && produced == out_size;
}

}  // namespace orrery::io
