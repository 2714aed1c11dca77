// Decoders for the byte codecs zarr stores use: blosc (lz4/zstd/zlib/blosclz, any shuffle),
// zstd, gzip/zlib, numcodecs' LZ4 framing, and the crc32c checksum of zarr v3. Each bounds its
// output by a limit known before decoding, so a corrupt header never allocates what it declares.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "error.hpp"

namespace orrery::io::zarr {

using Bytes = std::vector<std::uint8_t>;

// Decodes `in` with codec `id` ("blosc", "zstd", "gzip", "zlib", "lz4"). `expected` is the exact
// decoded size when known (fixed-size elements), or 0 with `limit` bounding it (variable-length
// strings). Failures throw orrery::Error naming `file` and `element`.
Bytes decompress(const std::string& id, const Bytes& in, std::size_t expected, std::size_t limit,
                 const std::string& file, const std::string& element);

// Decodes `in` with codec `id` straight into `out`, a chunk of exactly `size` bytes (no copy, no
// allocation). False where that codec or stream has no such path (then `out` may hold anything
// and `decompress` decodes it, or says why it cannot); a corrupt chunk throws as decompress does.
bool decompress_into(const std::string& id, const Bytes& in, std::uint8_t* out, std::size_t size,
                     const std::string& file, const std::string& element);

// CRC-32C (Castagnoli), as zarr v3's crc32c codec appends it.
std::uint32_t crc32c(const std::uint8_t* data, std::size_t n);

}  // namespace orrery::io::zarr
