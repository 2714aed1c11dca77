// TreeWriter for zarr directory stores, as anndata writes them through zarr-python. Version 2:
// .zgroup / .zarray / .zattrs, chunks along the first axis compressed with blosc-lz4 + shuffle,
// strings as object arrays with the vlen-utf8 filter, scalars as 0-d arrays, record arrays as
// structured dtypes with fixed-width unicode fields. Version 3: one zarr.json per node with the
// attributes inside, chunk keys c/i/j, codecs bytes (little-endian) or vlen-utf8 then blosc-lz4,
// strings as the "string" data type, record arrays as the "structured" data type with
// fixed_length_utf32 or float fields, as zarr-python 3.1 writes numpy structured arrays.
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <blosc.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "error.hpp"
#include "tree_writer.hpp"

namespace orrery::io {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t kChunkBytes = std::size_t{1} << 20;

const char* dtype_name(NumType t) {
  switch (t) {
    case NumType::Bool:
      return "|b1";
    case NumType::I8:
      return "|i1";
    case NumType::I32:
      return "<i4";
    case NumType::I64:
      return "<i8";
    case NumType::F32:
      return "<f4";
    case NumType::F64:
      return "<f8";
  }
  return "<f8";
}

// Zarr v3 data type names (core spec).
const char* v3_type_name(NumType t) {
  switch (t) {
    case NumType::Bool:
      return "bool";
    case NumType::I8:
      return "int8";
    case NumType::I32:
      return "int32";
    case NumType::I64:
      return "int64";
    case NumType::F32:
      return "float32";
    case NumType::F64:
      return "float64";
  }
  return "float64";
}

json zero_of(NumType t) {
  if (t == NumType::Bool) return json(false);
  if (t == NumType::F32 || t == NumType::F64) return json(0.0);
  return json(0);
}

// Base64 of `n` zero bytes (a zero record as a v3 fill value).
std::string base64_of_zeros(std::size_t n) {
  std::string out((n / 3) * 4, 'A');
  if (n % 3 == 1) out += "AA==";
  if (n % 3 == 2) out += "AAA=";
  return out;
}

void put_u32(Bytes& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// UTF-8 to UTF-32LE code points (invalid bytes become U+FFFD), for fixed-width unicode.
std::vector<std::uint32_t> utf32(const std::string& s) {
  std::vector<std::uint32_t> out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    std::uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += n;
  }
  return out;
}

class ZarrTreeWriter;

class ZarrAppender final : public ArrayAppender {
 public:
  ZarrAppender(ZarrTreeWriter& w, std::string path, NumType type, Attrs attrs)
      : w_(w),
        path_(std::move(path)),
        type_(type),
        size_(num_type_size(type)),
        attrs_(std::move(attrs)) {
    chunk_elements_ = kChunkBytes / size_;
    // Chunks compressed together: twice the cores, 4 to 32 (1 MiB each, per array).
    batch_chunks_ = std::clamp<std::size_t>(
        2 * static_cast<std::size_t>(tbb::this_task_arena::max_concurrency()), 4, 32);
  }
  void append(const void* values, std::size_t count) override;
  void finish() override;

 private:
  void flush_chunks();
  ZarrTreeWriter& w_;
  std::string path_;
  NumType type_;
  std::size_t size_, chunk_elements_, batch_chunks_;
  Attrs attrs_;
  Bytes buffer_;
  std::size_t chunks_written_ = 0, total_ = 0;
};

class ZarrTreeWriter final : public TreeWriter {
 public:
  ZarrTreeWriter(std::string path, int format) : root_(std::move(path)), v3_(format == 3) {
    if (format != 2 && format != 3)
      throw Error(root_.string(), "",
                  "zarr format " + std::to_string(format) + " (expected 2 or 3)");
    std::error_code ec;
    fs::create_directories(root_, ec);
    if (ec) throw Error(root_.string(), "", "cannot create output folder: " + ec.message());
  }

  void group(const std::string& path, const Attrs& attrs) override {
    make_dir(path);
    if (v3_) {
      write_text(path, "zarr.json",
                 json{{"zarr_format", 3},
                      {"node_type", "group"},
                      {"attributes", attrs.is_null() ? json::object() : attrs}});
      return;
    }
    write_text(path, ".zgroup", json{{"zarr_format", 2}});
    write_text(path, ".zattrs", attrs.is_null() ? json::object() : attrs);
  }

  void array(const std::string& path, NumType type, const void* values,
             const std::vector<std::int64_t>& shape, const Attrs& attrs) override {
    const std::size_t size = num_type_size(type);
    std::size_t row = size;  // bytes per index of the first axis
    for (std::size_t d = 1; d < shape.size(); ++d) row *= static_cast<std::size_t>(shape[d]);
    std::size_t total = shape.empty() ? size : row * static_cast<std::size_t>(shape[0]);
    const auto* bytes = static_cast<const std::uint8_t*>(values);
    make_dir(path);
    std::vector<std::int64_t> chunks = shape;
    if (shape.empty()) {
      write_chunk(path, key(0, 0), Bytes(bytes, bytes + total), 0);
    } else {
      chunks[0] = static_cast<std::int64_t>(
          std::max<std::size_t>(1, kChunkBytes / std::max<std::size_t>(row, 1)));
      if (shape[0] > 0) chunks[0] = std::min(chunks[0], shape[0]);
      const std::size_t chunk_bytes = row * static_cast<std::size_t>(chunks[0]);
      const std::size_t n = (total + chunk_bytes - 1) / chunk_bytes;
      if (n > 0) make_parent_of(path, key(0, shape.size()));
      tbb::parallel_for(std::size_t{0}, n, [&](std::size_t i) {  // compressed on all cores
        const std::size_t at = i * chunk_bytes;
        if (total - at >= chunk_bytes) {
          write_chunk(path, key(i, shape.size()), bytes + at, chunk_bytes, size);
          return;
        }
        Bytes chunk(chunk_bytes, 0);  // edge chunks are stored full size, zero padded
        std::memcpy(chunk.data(), bytes + at, total - at);
        write_chunk(path, key(i, shape.size()), chunk, size);
      });
    }
    write_meta(path, shape, chunks, numeric_type(type), zero_of(type), Kind::Numeric,
               shape.empty() ? 0 : size, attrs);
  }

  void strings(const std::string& path, const std::vector<std::string>& values, bool scalar,
               const Attrs& attrs) override {
    make_dir(path);
    if (scalar && v3_) {  // a 0-d "string" array
      write_chunk(path, key(0, 0), vlen_utf8(values.empty() ? std::string() : values.front()), 1);
      write_meta(path, {}, {}, json("string"), json(""), Kind::Strings, 1, attrs);
    } else if (scalar) {  // numpy's fixed-width unicode, as anndata writes a str
      auto cps = utf32(values.empty() ? std::string() : values.front());
      if (cps.empty()) cps.push_back(0);  // numpy's '<U1' holding ""
      Bytes raw;
      for (auto cp : cps) put_u32(raw, cp);
      write_chunk(path, key(0, 0), raw, 0);
      write_meta(path, {}, {}, "<U" + std::to_string(cps.size()), json(""), Kind::Numeric, 0,
                 attrs);
    } else {
      const std::size_t n = values.size();
      const std::size_t per = std::max<std::size_t>(1, std::min<std::size_t>(n, 1 << 16));
      for (std::size_t c0 = 0, i = 0; c0 < n; c0 += per, ++i) {
        Bytes raw;
        put_u32(raw, static_cast<std::uint32_t>(per));
        for (std::size_t k = c0; k < c0 + per; ++k) {
          const std::string& s = k < n ? values[k] : std::string();
          put_u32(raw, static_cast<std::uint32_t>(s.size()));
          raw.insert(raw.end(), s.begin(), s.end());
        }
        write_chunk(path, key(i, 1), raw, 1);
      }
      write_meta(path, {static_cast<std::int64_t>(n)}, {static_cast<std::int64_t>(per)},
                 v3_ ? json("string") : json("|O"), v3_ ? json("") : json(0), Kind::Strings, 1,
                 attrs);
    }
  }

  std::unique_ptr<ArrayAppender> appender(const std::string& path, NumType type,
                                          const Attrs& attrs) override {
    make_dir(path);
    return std::make_unique<ZarrAppender>(*this, path, type, attrs);
  }

  void records(const std::string& path, const std::vector<std::string>& fields, NumType type,
               const std::vector<double>& values, const std::vector<std::string>* texts,
               std::size_t rows, const Attrs& attrs) override {
    make_dir(path);
    json dtype = json::array();
    std::size_t width = 1;  // characters per text field
    if (texts)
      for (const auto& s : *texts) width = std::max(width, utf32(s).size());
    const std::size_t member = texts ? 4 * width : num_type_size(type);
    const std::string member_type =
        texts ? "<U" + std::to_string(width) : std::string(dtype_name(type));
    for (const auto& f : fields) {
      if (!v3_) {
        dtype.push_back(json::array({f, member_type}));
        continue;
      }
      json type_v3 = texts ? json{{"name", "fixed_length_utf32"},
                                  {"configuration", {{"length_bytes", 4 * width}}}}
                           : json(v3_type_name(type));
      dtype.push_back(json::array({f, type_v3}));
    }
    // v3: the "structured" form (fields as [name, type] pairs, the fill value as the base64 of a
    // zero record), which zarr-python 3.1 writes and every later version still reads; the
    // newer "struct" spelling is not understood by 3.1.
    if (v3_) dtype = json{{"name", "structured"}, {"configuration", {{"fields", dtype}}}};
    const json fill = v3_ ? json(base64_of_zeros(fields.size() * member)) : json(nullptr);
    Bytes raw(std::max<std::size_t>(rows, 1) * fields.size() * member, 0);
    for (std::size_t i = 0; i < rows * fields.size(); ++i) {
      std::uint8_t* at = raw.data() + i * member;
      if (texts) {
        auto cps = utf32((*texts)[i]);
        for (std::size_t c = 0; c < cps.size(); ++c) std::memcpy(at + 4 * c, &cps[c], 4);
      } else if (type == NumType::F32) {
        const auto v = static_cast<float>(values[i]);
        std::memcpy(at, &v, 4);
      } else {
        std::memcpy(at, &values[i], 8);
      }
    }
    write_chunk(path, key(0, 1), raw, member);
    const auto n = static_cast<std::int64_t>(rows);
    write_meta(path, {n}, {std::max<std::int64_t>(n, 1)}, dtype, fill, Kind::Numeric, member,
               attrs);
  }

  void close() override {}

  // The folder a chunk key with a '/' (v3's "c/i") needs. Thread-safe: creating a folder that
  // exists is no error.
  void make_parent_of(const std::string& path, const std::string& name) {
    if (name.find('/') != std::string::npos)
      make_dir((fs::path(path) / name).parent_path().string());
  }
  // Blosc-lz4 with byte shuffle at `typesize` (0: stored uncompressed, as zarr does for 0-d).
  void write_chunk(const std::string& path, const std::string& name, const Bytes& raw,
                   std::size_t typesize) {
    write_chunk(path, name, raw.data(), raw.size(), typesize);
  }
  void write_chunk(const std::string& path, const std::string& name, const std::uint8_t* raw,
                   std::size_t raw_size, std::size_t typesize) {
    Bytes out;
    if (typesize == 0) {
      out.assign(raw, raw + raw_size);
    } else {
      out.resize(raw_size + BLOSC_MAX_OVERHEAD);
      const int n = blosc_compress_ctx(5, BLOSC_SHUFFLE, typesize, raw_size, raw, out.data(),
                                       out.size(), "lz4", 0, 1);
      if (n <= 0) throw Error(root_.string(), path, "blosc compression failed");
      out.resize(static_cast<std::size_t>(n));
    }
    const fs::path file = root_ / path / name;
    make_parent_of(path, name);
    std::ofstream f(file, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
    if (!f) throw Error(root_.string(), path, "write failed (disk full?)");
  }

  // Numeric: fixed-size elements (the bytes codec in v3); Strings: vlen-utf8 (a v2 filter on
  // object arrays, the array-to-bytes codec in v3).
  enum class Kind { Numeric, Strings };

  // The array's metadata and attributes. `typesize` is blosc's element size (0: the chunks are
  // stored uncompressed, as zarr does for 0-d arrays).
  void write_meta(const std::string& path, const std::vector<std::int64_t>& shape,
                  const std::vector<std::int64_t>& chunks, const json& dtype, const json& fill,
                  Kind kind, std::size_t typesize, const Attrs& attrs) {
    const json attributes = attrs.is_null() ? json::object() : attrs;
    if (v3_) {
      json codecs = json::array();
      if (kind == Kind::Strings)
        codecs.push_back(json{{"name", "vlen-utf8"}, {"configuration", json::object()}});
      else
        codecs.push_back(json{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}});
      if (typesize > 0)
        codecs.push_back(json{{"name", "blosc"},
                              {"configuration",
                               {{"cname", "lz4"},
                                {"clevel", 5},
                                {"shuffle", kind == Kind::Strings ? "noshuffle" : "shuffle"},
                                {"typesize", typesize},
                                {"blocksize", 0}}}});
      write_text(
          path, "zarr.json",
          json{{"zarr_format", 3},
               {"node_type", "array"},
               {"shape", shape},
               {"data_type", dtype},
               {"chunk_grid", {{"name", "regular"}, {"configuration", {{"chunk_shape", chunks}}}}},
               {"chunk_key_encoding",
                {{"name", "default"}, {"configuration", {{"separator", "/"}}}}},
               {"fill_value", fill},
               {"codecs", codecs},
               {"attributes", attributes}});
      return;
    }
    json compressor = nullptr;
    if (typesize > 0)
      compressor = {
          {"id", "blosc"}, {"cname", "lz4"}, {"clevel", 5}, {"shuffle", 1}, {"blocksize", 0}};
    write_text(path, ".zarray",
               json{{"zarr_format", 2},
                    {"shape", shape},
                    {"chunks", chunks},
                    {"dtype", dtype},
                    {"compressor", compressor},
                    {"fill_value", fill},
                    {"filters", kind == Kind::Strings ? json::array({json{{"id", "vlen-utf8"}}})
                                                      : json(nullptr)},
                    {"order", "C"}});
    write_text(path, ".zattrs", attributes);
  }

  json numeric_type(NumType t) const { return v3_ ? json(v3_type_name(t)) : json(dtype_name(t)); }

  // numcodecs' VLenUTF8 encoding of one string (zarr's vlen-utf8 codec).
  static Bytes vlen_utf8(const std::string& s) {
    Bytes raw;
    put_u32(raw, 1);
    put_u32(raw, static_cast<std::uint32_t>(s.size()));
    raw.insert(raw.end(), s.begin(), s.end());
    return raw;
  }

  // The key of chunk i along the first axis (0 along the others); rank 0 is a 0-d array.
  std::string key(std::size_t i, std::size_t rank) const {
    if (v3_) {
      std::string k = "c";
      if (rank > 0) {
        k.push_back('/');
        k.append(std::to_string(i));
      }
      for (std::size_t d = 1; d < rank; ++d) k.append("/0");
      return k;
    }
    std::string k = std::to_string(i);
    for (std::size_t d = 1; d < rank; ++d) k += ".0";
    return k;
  }

 private:
  void make_dir(const std::string& path) {
    std::error_code ec;
    fs::create_directories(root_ / path, ec);
    if (ec) throw Error(root_.string(), path, "cannot create folder: " + ec.message());
  }
  void write_text(const std::string& path, const char* name, const json& j) {
    std::ofstream f(root_ / path / name, std::ios::trunc);
    f << j.dump(4);
    if (!f) throw Error(root_.string(), path, std::string("cannot write ") + name);
  }

  fs::path root_;
  bool v3_;
};

void ZarrAppender::append(const void* values, std::size_t count) {
  const auto* p = static_cast<const std::uint8_t*>(values);
  std::size_t left = count;
  const std::size_t batch_elements = chunk_elements_ * batch_chunks_;
  while (left > 0) {
    const std::size_t room = batch_elements - buffer_.size() / size_;
    const std::size_t take = std::min(room, left);
    buffer_.insert(buffer_.end(), p, p + take * size_);
    p += take * size_;
    left -= take;
    total_ += take;
    if (buffer_.size() == batch_elements * size_) flush_chunks();
  }
}

// The buffered chunks (the last one zero-padded), compressed and written on all cores.
void ZarrAppender::flush_chunks() {
  const std::size_t chunk_bytes = chunk_elements_ * size_;
  const std::size_t n = (buffer_.size() + chunk_bytes - 1) / chunk_bytes;
  if (n == 0) return;
  buffer_.resize(n * chunk_bytes, 0);
  w_.make_parent_of(path_, w_.key(chunks_written_, 1));
  tbb::parallel_for(std::size_t{0}, n, [&](std::size_t c) {
    w_.write_chunk(path_, w_.key(chunks_written_ + c, 1), buffer_.data() + c * chunk_bytes,
                   chunk_bytes, size_);
  });
  chunks_written_ += n;
  buffer_.clear();
}

void ZarrAppender::finish() {
  flush_chunks();
  w_.write_meta(path_, {static_cast<std::int64_t>(total_)},
                {static_cast<std::int64_t>(chunk_elements_)}, w_.numeric_type(type_),
                zero_of(type_), ZarrTreeWriter::Kind::Numeric, size_, attrs_);
}

}  // namespace

std::unique_ptr<TreeWriter> make_zarr_writer(const std::string& path, int format) {
  return std::make_unique<ZarrTreeWriter>(path, format);
}

}  // namespace orrery::io
