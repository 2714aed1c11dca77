// Whole-buffer DEFLATE decoding (zlib or gzip wrapper) with libdeflate, about twice as fast as
// zlib's streaming inflate: every pass over a deflate-compressed store spends most of its time
// here.
#pragma once

#include <cstddef>

namespace orrery::io {

// Decodes the zlib or gzip (one member; told apart by the gzip magic) stream `in` into exactly
// `out_size` bytes at `out`, checking its checksum. False when the stream is corrupt, truncated
// or decodes to another size. Thread-safe (one decompressor per thread).
bool inflate_exact(const unsigned char* in, std::size_t in_size, unsigned char* out,
                   std::size_t out_size);

}  // namespace orrery::io
