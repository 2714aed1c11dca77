#include "zarr_codecs.hpp"

#include <blosc.h>
#include <lz4.h>
#include <zlib.h>
#include <zstd.h>

#include <array>
#include <cstring>
#include <memory>
#include <optional>

#include "inflate.hpp"

namespace orrery::io::zarr {

namespace {

[[noreturn]] void bad(const std::string& file, const std::string& element, const std::string& id,
                      const std::string& why) {
  throw Error(file, element, id + " chunk: " + why);
}

void check_size(std::size_t declared, std::size_t expected, std::size_t limit,
                const std::string& file, const std::string& element, const std::string& id) {
  if (expected != 0 && declared != expected)
    bad(file, element, id,
        "declares " + std::to_string(declared) + " bytes, the chunk holds " +
            std::to_string(expected));
  if (declared > limit)
    bad(file, element, id, "declares " + std::to_string(declared) + " bytes, over the limit");
}

Bytes inflate_any(const Bytes& in, std::size_t expected, std::size_t limit, const std::string& file,
                  const std::string& element, const std::string& id) {
  if (expected != 0 && expected <= limit) {  // the usual case, whole-buffer; else zlib says why
    Bytes out(expected);
    if (inflate_exact(in.data(), in.size(), out.data(), expected)) return out;
  }
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) bad(file, element, id, "zlib init failed");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  Bytes out(expected != 0 ? expected : std::min<std::size_t>(limit, in.size() * 4 + 1024));
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  std::size_t produced = 0;
  while (true) {
    if (produced == out.size()) {
      if (expected != 0 || out.size() >= limit)
        bad(file, element, id, "decodes to more bytes than the chunk holds");
      out.resize(std::min(limit, out.size() * 2));
    }
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size() - produced, 1u << 30));
    const std::size_t before = zs.avail_out;
    const int rc = inflate(&zs, Z_NO_FLUSH);
    produced += before - zs.avail_out;
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) bad(file, element, id, "corrupt stream");
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) bad(file, element, id, "truncated stream");
  }
  if (expected != 0 && produced != expected)
    bad(file, element, id,
        "decodes to " + std::to_string(produced) + " bytes, expected " + std::to_string(expected));
  out.resize(produced);
  return out;
}

}  // namespace

namespace {

// The decoded size a blosc or numcodecs-LZ4 chunk declares in its header; nullopt for other codecs
// and zstd frames without a content size.
std::optional<std::size_t> declared_size(const std::string& id, const Bytes& in,
                                         const std::string& file, const std::string& element) {
  if (id == "blosc") {
    std::size_t nbytes = 0;
    if (in.size() < BLOSC_MIN_HEADER_LENGTH ||
        blosc_cbuffer_validate(in.data(), in.size(), &nbytes) != 0)
      bad(file, element, id, "invalid header");
    return nbytes;
  }
  if (id == "zstd") {
    const unsigned long long size = ZSTD_getFrameContentSize(in.data(), in.size());
    if (size == ZSTD_CONTENTSIZE_ERROR) bad(file, element, id, "invalid frame");
    if (size == ZSTD_CONTENTSIZE_UNKNOWN) return std::nullopt;
    return static_cast<std::size_t>(size);
  }
  if (id == "lz4") {  // numcodecs: little-endian uint32 decoded size, then one LZ4 block
    if (in.size() < 4) bad(file, element, id, "truncated header");
    return std::size_t{in[0]} | std::size_t{in[1]} << 8 | std::size_t{in[2]} << 16 |
           std::size_t{in[3]} << 24;
  }
  return std::nullopt;
}

// Decodes a chunk whose header declared `size` bytes (declared_size) into `out`.
void decode_declared(const std::string& id, const Bytes& in, std::uint8_t* out, std::size_t size,
                     const std::string& file, const std::string& element) {
  if (size == 0) return;
  bool ok = false;
  if (id == "blosc") {
    ok = blosc_decompress_ctx(in.data(), out, size, 1) == static_cast<int>(size);
  } else if (id == "zstd") {
    const std::size_t got = ZSTD_decompress(out, size, in.data(), in.size());
    ok = !ZSTD_isError(got) && got == size;
  } else if (id == "lz4") {
    const int got = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data() + 4),
                                        reinterpret_cast<char*>(out),
                                        static_cast<int>(in.size() - 4), static_cast<int>(size));
    ok = got >= 0 && static_cast<std::size_t>(got) == size;
  }
  if (!ok) bad(file, element, id, "corrupt data");
}

Bytes zstd_stream(const Bytes& in, std::size_t expected, std::size_t limit, const std::string& file,
                  const std::string& element, const std::string& id) {
  std::unique_ptr<ZSTD_DStream, std::size_t (*)(ZSTD_DStream*)> ds(ZSTD_createDStream(),
                                                                   ZSTD_freeDStream);
  ZSTD_initDStream(ds.get());
  Bytes out;
  std::array<std::uint8_t, 1 << 16> buf{};
  ZSTD_inBuffer src{in.data(), in.size(), 0};
  while (src.pos < src.size) {
    ZSTD_outBuffer dst{buf.data(), buf.size(), 0};
    const std::size_t rc = ZSTD_decompressStream(ds.get(), &dst, &src);
    if (ZSTD_isError(rc)) bad(file, element, id, "corrupt data");
    out.insert(out.end(), buf.data(), buf.data() + dst.pos);
    if (out.size() > limit) bad(file, element, id, "decodes to more bytes than allowed");
    if (rc == 0) break;
    if (dst.pos == 0 && src.pos == src.size) bad(file, element, id, "truncated stream");
  }
  if (expected != 0 && out.size() != expected) bad(file, element, id, "wrong decoded size");
  return out;
}

}  // namespace

Bytes decompress(const std::string& id, const Bytes& in, std::size_t expected, std::size_t limit,
                 const std::string& file, const std::string& element) {
  if (id == "gzip" || id == "zlib") return inflate_any(in, expected, limit, file, element, id);
  if (id != "blosc" && id != "zstd" && id != "lz4")
    throw Error(file, element, "unsupported compressor '" + id + "'");
  const std::optional<std::size_t> size = declared_size(id, in, file, element);
  if (!size) return zstd_stream(in, expected, limit, file, element, id);
  check_size(*size, expected, limit, file, element, id);
  Bytes out(*size);
  decode_declared(id, in, out.data(), *size, file, element);
  return out;
}

bool decompress_into(const std::string& id, const Bytes& in, std::uint8_t* out, std::size_t size,
                     const std::string& file, const std::string& element) {
  if (id == "gzip" || id == "zlib") return inflate_exact(in.data(), in.size(), out, size);
  if (id != "blosc" && id != "zstd" && id != "lz4") return false;
  const std::optional<std::size_t> declared = declared_size(id, in, file, element);
  if (!declared) return false;
  check_size(*declared, size, size, file, element, id);
  decode_declared(id, in, out, size, file, element);
  return true;
}

std::uint32_t crc32c(const std::uint8_t* data, std::size_t n) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

}  // namespace orrery::io::zarr
