// zarr v2 and v3 directory stores as an Element tree. Arrays are read chunk by chunk (missing
// chunks are the fill value); v3 sharding reads one inner chunk's byte range from its shard.
// Metadata is validated before anything is allocated: chunk shapes bound every decode.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <type_traits>

#include "element.hpp"
#include "utf8.hpp"
#include "zarr_codecs.hpp"

namespace orrery::io {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using zarr::Bytes;

constexpr std::size_t kMaxChunkBytes = std::size_t{1} << 31;
constexpr std::size_t kMaxStringChunkBytes = std::size_t{1} << 30;
constexpr std::size_t kMaxMetadataBytes = std::size_t{64} << 20;

struct Field;

// Element type of an array: kind 'i', 'u', 'f', 'b' (bool), 'U' (UTF-32 fixed), 'S' (bytes
// fixed), 'O' (variable-length UTF-8) or 'V' (a record of fixed-size fields, as anndata's
// rec-arrays: numpy structured dtypes in v2, zarr-python's "structured" data type in v3); size
// in bytes per element ('U': 4 per character).
struct DType {
  char kind = 0;
  std::size_t size = 0;
  bool big_endian = false;
  std::vector<Field> fields;  // 'V' only
};

struct Field {
  std::string name;
  DType type;
  std::size_t offset = 0;
};

constexpr std::size_t kMaxFields = 4096;

// How a chunk's bytes become elements, in encoding order: bytes->bytes codecs after the
// array->bytes step (bytes with an endianness, or vlen-utf8).
struct Pipeline {
  bool big_endian = false;
  bool vlen = false;
  std::vector<json> byte_codecs;
};

struct Sharding {
  std::vector<std::int64_t> inner;  // inner chunk shape
  Pipeline inner_pipeline;
  bool index_crc = false;
  bool index_at_start = false;
};

struct ArrayMeta {
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> chunks;  // the stored grid (shards when sharded)
  DType dtype;
  Pipeline pipeline;
  std::optional<Sharding> sharding;
  std::string separator = ".";
  bool key_prefix_c = false;  // v3 "default" chunk keys: "c/0/1"
  json fill;
};

std::string read_text(const fs::path& p, const std::string& file, const std::string& element) {
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  if (ec) throw Error(file, element, "cannot read " + p.filename().string());
  if (size > kMaxMetadataBytes) throw Error(file, element, p.filename().string() + " is too large");
  std::ifstream in(p, std::ios::binary);
  std::string s(size, '\0');
  in.read(s.data(), static_cast<std::streamsize>(size));
  if (!in) throw Error(file, element, "cannot read " + p.filename().string());
  return s;
}

json parse_json(const fs::path& p, const std::string& file, const std::string& element) {
  try {
    auto j = json::parse(read_text(p, file, element));
    if (!j.is_object()) throw Error(file, element, p.filename().string() + " is not a JSON object");
    return j;
  } catch (const json::exception& e) {
    throw Error(file, element, p.filename().string() + ": invalid JSON (" + e.what() + ")");
  }
}

std::vector<std::int64_t> int_list(const json& j, const char* what, const std::string& file,
                                   const std::string& element, std::int64_t min_value) {
  if (!j.is_array() || j.size() > 32)
    throw Error(file, element, std::string(what) + " must be a list");
  std::vector<std::int64_t> out;
  for (const auto& v : j) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < min_value)
      throw Error(file, element, std::string(what) + " holds an invalid entry");
    out.push_back(v.get<std::int64_t>());
  }
  return out;
}

bool fixed_size(const DType& d) {
  return d.kind != 0 && d.kind != 'O' && d.kind != 'V';
}

DType parse_v2_dtype(const json& j, const std::string& file, const std::string& element);

// A numpy structured dtype, [[name, typestr], ...]; fields with a sub-array shape, nested
// records or variable-length members have no fixed layout here and make the array unreadable.
DType parse_v2_record(const json& j, const std::string& file, const std::string& element) {
  DType d;
  d.kind = 'V';
  if (j.empty() || j.size() > kMaxFields) return DType{};
  for (const auto& f : j) {
    if (!f.is_array() || f.size() != 2 || !f[0].is_string()) return DType{};
    Field field{f[0].get<std::string>(), parse_v2_dtype(f[1], file, element), d.size};
    if (!fixed_size(field.type)) return DType{};
    d.size += field.type.size;
    d.fields.push_back(std::move(field));
  }
  return d;
}

DType parse_v2_dtype(const json& j, const std::string& file, const std::string& element) {
  if (j.is_array()) return parse_v2_record(j, file, element);
  if (!j.is_string()) return DType{};
  const std::string s = j.get<std::string>();
  if (s.size() < 2 || (s[0] != '<' && s[0] != '>' && s[0] != '|') || (s.size() == 2 && s[1] != 'O'))
    throw Error(file, element, "unrecognised dtype '" + s + "'");
  DType d;
  d.big_endian = s[0] == '>';
  d.kind = s[1];
  if (d.kind == 'O') {
    d.size = 0;
    return d;
  }
  std::size_t n = 0;
  for (std::size_t i = 2; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9' || n > 1'000'000)
      throw Error(file, element, "unrecognised dtype '" + s + "'");
    n = n * 10 + static_cast<std::size_t>(s[i] - '0');
  }
  if (d.kind == 'U') n *= 4;
  const bool ok = ((d.kind == 'i' || d.kind == 'u') && (n == 1 || n == 2 || n == 4 || n == 8)) ||
                  (d.kind == 'f' && (n == 4 || n == 8)) || (d.kind == 'b' && n == 1) ||
                  ((d.kind == 'U' || d.kind == 'S') && n > 0);
  if (!ok) return DType{};
  d.size = n;
  return d;
}

DType parse_v3_dtype(const json& j);

const json& config_of(const json& codec);

// zarr-python 3.1's "structured" data type: {"fields": [[name, data type], ...]}, each field of
// a fixed size.
DType parse_v3_record(const json& j) {
  const json& fields = config_of(j).value("fields", json());
  if (!fields.is_array() || fields.empty() || fields.size() > kMaxFields) return DType{};
  DType d;
  d.kind = 'V';
  for (const auto& f : fields) {
    if (!f.is_array() || f.size() != 2 || !f[0].is_string()) return DType{};
    DType t = parse_v3_dtype(f[1]);
    if (!fixed_size(t)) return DType{};
    d.fields.push_back({f[0].get<std::string>(), t, d.size});
    d.size += t.size;
  }
  return d;
}

// Data types spelled as objects: records, and fixed-length strings of `length_bytes`.
DType parse_v3_object_dtype(const json& j) {
  const std::string name = j.value("name", "");
  if (name == "structured") return parse_v3_record(j);
  const json& length = config_of(j).value("length_bytes", json());
  if ((name != "fixed_length_utf32" && name != "null_terminated_bytes") ||
      !length.is_number_integer() || length.get<std::int64_t>() <= 0 ||
      length.get<std::int64_t>() > 4'000'000)
    return DType{};
  DType t;
  t.kind = name == "fixed_length_utf32" ? 'U' : 'S';
  t.size = length.get<std::size_t>();
  if (t.kind == 'U' && t.size % 4 != 0) return DType{};
  return t;
}

DType parse_v3_dtype(const json& j) {
  if (j.is_object()) return parse_v3_object_dtype(j);
  if (!j.is_string()) return DType{};
  static const std::pair<const char*, DType> names[] = {
      {"bool", {'b', 1, false, {}}},    {"int8", {'i', 1, false, {}}},
      {"int16", {'i', 2, false, {}}},   {"int32", {'i', 4, false, {}}},
      {"int64", {'i', 8, false, {}}},   {"uint8", {'u', 1, false, {}}},
      {"uint16", {'u', 2, false, {}}},  {"uint32", {'u', 4, false, {}}},
      {"uint64", {'u', 8, false, {}}},  {"float32", {'f', 4, false, {}}},
      {"float64", {'f', 8, false, {}}}, {"string", {'O', 0, false, {}}}};
  for (const auto& [name, d] : names)
    if (j.get<std::string>() == name) return d;
  return DType{};
}

const json& config_of(const json& codec) {
  static const json empty = json::object();
  auto it = codec.find("configuration");
  return it != codec.end() && it->is_object() ? *it : empty;
}

Pipeline parse_v3_pipeline(const json& codecs, const std::string& file, const std::string& element,
                           std::optional<Sharding>* sharding);

Sharding parse_sharding(const json& config, const std::string& file, const std::string& element) {
  Sharding s;
  s.inner = int_list(config.value("chunk_shape", json()), "sharding chunk_shape", file, element, 1);
  s.inner_pipeline =
      parse_v3_pipeline(config.value("codecs", json::array()), file, element, nullptr);
  for (const auto& c : config.value("index_codecs", json::array())) {
    const std::string name = c.value("name", "");
    if (name == "crc32c")
      s.index_crc = true;
    else if (name == "bytes" && config_of(c).value("endian", "little") != "little")
      throw Error(file, element, "big-endian shard indexes are not supported");
    else if (name != "bytes")
      throw Error(file, element, "unsupported shard index codec '" + name + "'");
  }
  s.index_at_start = config.value("index_location", "end") == "start";
  return s;
}

Pipeline parse_v3_pipeline(const json& codecs, const std::string& file, const std::string& element,
                           std::optional<Sharding>* sharding) {
  if (!codecs.is_array()) throw Error(file, element, "codecs must be a list");
  Pipeline p;
  bool seen_array_to_bytes = false;
  for (const auto& c : codecs) {
    const std::string name = c.is_object() ? c.value("name", "") : "";
    const json& config = config_of(c);
    if (name == "transpose") {
      auto order = int_list(config.value("order", json()), "transpose order", file, element, 0);
      for (std::size_t i = 0; i < order.size(); ++i)
        if (order[i] != static_cast<std::int64_t>(i))
          throw Error(file, element, "transposed chunk layouts are not supported");
    } else if (name == "bytes") {
      p.big_endian = config.value("endian", "little") == "big";
      seen_array_to_bytes = true;
    } else if (name == "vlen-utf8") {
      p.vlen = true;
      seen_array_to_bytes = true;
    } else if (name == "sharding_indexed") {
      if (!sharding || seen_array_to_bytes)
        throw Error(file, element, "nested or misplaced sharding codec");
      *sharding = parse_sharding(config, file, element);
      seen_array_to_bytes = true;
    } else if (name == "blosc" || name == "gzip" || name == "zstd" || name == "crc32c") {
      if (!seen_array_to_bytes) throw Error(file, element, "codec '" + name + "' before bytes");
      p.byte_codecs.push_back(c);
    } else {
      throw Error(file, element, "unsupported codec '" + name + "'");
    }
  }
  if (sharding && *sharding && !p.byte_codecs.empty())
    throw Error(file, element, "codecs after sharding_indexed are not supported");
  return p;
}

double fill_number(const json& f) {
  if (f.is_number()) return f.get<double>();
  if (f.is_boolean()) return f.get<bool>() ? 1.0 : 0.0;
  if (f.is_string()) {
    const auto s = f.get<std::string>();
    if (s == "NaN") return std::nan("");
    if (s == "Infinity") return INFINITY;
    if (s == "-Infinity") return -INFINITY;
  }
  return 0.0;
}

// Writes `v` as one element of type `d` (native byte order).
void store_scalar(double v, const DType& d, std::uint8_t* out) {
  auto put = [out](auto x) { std::memcpy(out, &x, sizeof x); };
  switch (d.kind) {
    case 'f':
      d.size == 4 ? put(static_cast<float>(v)) : put(v);
      break;
    case 'b':
      put(static_cast<std::uint8_t>(v != 0.0));
      break;
    case 'i':
    case 'u': {
      const auto i = static_cast<std::int64_t>(v);
      if (d.size == 1)
        put(static_cast<std::int8_t>(i));
      else if (d.size == 2)
        put(static_cast<std::int16_t>(i));
      else if (d.size == 4)
        put(static_cast<std::int32_t>(i));
      else
        put(i);
      break;
    }
    default:
      break;
  }
}

template <typename Src, typename Dst>
void convert_run(const std::uint8_t* src, std::size_t n, Dst* dst) {
  if constexpr (std::is_same_v<Src, Dst>) {
    std::memcpy(dst, src, n * sizeof(Src));
    return;
  }
  for (std::size_t i = 0; i < n; ++i) {
    Src v;
    std::memcpy(&v, src + i * sizeof(Src), sizeof(Src));
    dst[i] = static_cast<Dst>(v);
  }
}

template <typename Dst>
void convert_to(const std::uint8_t* src, const DType& d, std::size_t n, Dst* dst) {
  switch (d.kind) {
    case 'b':
    case 'u':
      if (d.size == 1) return convert_run<std::uint8_t>(src, n, dst);
      if (d.size == 2) return convert_run<std::uint16_t>(src, n, dst);
      if (d.size == 4) return convert_run<std::uint32_t>(src, n, dst);
      return convert_run<std::uint64_t>(src, n, dst);
    case 'i':
      if (d.size == 1) return convert_run<std::int8_t>(src, n, dst);
      if (d.size == 2) return convert_run<std::int16_t>(src, n, dst);
      if (d.size == 4) return convert_run<std::int32_t>(src, n, dst);
      return convert_run<std::int64_t>(src, n, dst);
    case 'f':
      if (d.size == 4) return convert_run<float>(src, n, dst);
      return convert_run<double>(src, n, dst);
    default:
      return;
  }
}

void convert(const std::uint8_t* src, const DType& d, std::size_t n, NumType t, void* out,
             std::size_t at) {
  switch (t) {
    case NumType::Bool:
    case NumType::I8:
      return convert_to(src, d, n, static_cast<std::int8_t*>(out) + at);
    case NumType::I32:
      return convert_to(src, d, n, static_cast<std::int32_t*>(out) + at);
    case NumType::I64:
      return convert_to(src, d, n, static_cast<std::int64_t*>(out) + at);
    case NumType::F32:
      return convert_to(src, d, n, static_cast<float*>(out) + at);
    case NumType::F64:
      return convert_to(src, d, n, static_cast<double*>(out) + at);
  }
}

void byteswap_elements(Bytes& b, std::size_t size) {
  if (size <= 1) return;
  for (std::size_t i = 0; i + size <= b.size(); i += size)
    std::reverse(b.begin() + i, b.begin() + i + size);
}

// Bytes [offset, offset + n) of chunk file `p` (n = UINT64_MAX: to its end) into `out`; false
// where the file does not exist (a chunk never written).
bool read_bytes_into(const fs::path& p, std::uint64_t offset, std::uint64_t n, Bytes& out,
                     const std::string& file, const std::string& element) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return false;
  const auto size = fs::file_size(p, ec);
  if (ec) throw Error(file, element, "cannot read chunk " + p.filename().string());
  if (n == UINT64_MAX) n = size - std::min<std::uint64_t>(offset, size);
  if (offset > size || n > size - offset)
    throw Error(file, element, "chunk " + p.filename().string() + " is truncated");
  if (n > kMaxChunkBytes)
    throw Error(file, element, "chunk " + p.filename().string() + " is too large");
  out.resize(n);
  std::ifstream in(p, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(n));
  if (!in) throw Error(file, element, "cannot read chunk " + p.filename().string());
  return true;
}

std::optional<Bytes> read_bytes(const fs::path& p, std::uint64_t offset, std::uint64_t n,
                                const std::string& file, const std::string& element) {
  Bytes out;
  if (!read_bytes_into(p, offset, n, out, file, element)) return std::nullopt;
  return out;
}

// The most a reading thread keeps of its encoded-chunk buffer between chunks.
constexpr std::size_t kKeptBufferBytes = std::size_t{16} << 20;

// Whether elements stored as `d` are, byte for byte, elements of type `t` on this machine.
bool stored_as(const DType& d, NumType t) {
  if (d.big_endian && d.size > 1) return false;
  switch (t) {
    case NumType::I8:
      return d.kind == 'i' && d.size == 1;
    case NumType::I32:
      return d.kind == 'i' && d.size == 4;
    case NumType::I64:
      return d.kind == 'i' && d.size == 8;
    case NumType::F32:
      return d.kind == 'f' && d.size == 4;
    case NumType::F64:
      return d.kind == 'f' && d.size == 8;
    case NumType::Bool:
      return false;
  }
  return false;
}

std::uint32_t load_u32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}
std::uint64_t load_u64(const std::uint8_t* p) {
  return std::uint64_t{load_u32(p)} | std::uint64_t{load_u32(p + 4)} << 32;
}

class ZarrElement final : public Element {
 public:
  ZarrElement(std::string file, std::string path, fs::path dir, int version, bool group, json attrs,
              ArrayMeta meta)
      : file_(std::move(file)),
        path_(std::move(path)),
        dir_(std::move(dir)),
        version_(version),
        group_(group),
        attrs_(std::move(attrs)),
        meta_(std::move(meta)) {}

  // The node stored in `dir`, or nullptr when `dir` holds no zarr metadata.
  static std::unique_ptr<ZarrElement> load(const std::string& file, const std::string& path,
                                           const fs::path& dir) {
    try {
      return load_metadata(file, path, dir);
    } catch (const json::exception& e) {  // a field of the wrong JSON type
      throw Error(file, path, std::string("invalid zarr metadata (") + e.what() + ")");
    }
  }
  static std::unique_ptr<ZarrElement> load_metadata(const std::string& file,
                                                    const std::string& path, const fs::path& dir) {
    std::error_code ec;
    if (fs::exists(dir / "zarr.json", ec)) {
      json j = parse_json(dir / "zarr.json", file, path);
      if (j.value("zarr_format", 0) != 3)
        throw Error(file, path, "zarr.json: zarr_format is not 3");
      json attrs = j.value("attributes", json::object());
      const std::string type = j.value("node_type", "");
      if (type == "group")
        return std::make_unique<ZarrElement>(file, path, dir, 3, true, attrs, ArrayMeta{});
      if (type != "array") throw Error(file, path, "zarr.json: unknown node_type '" + type + "'");
      return std::make_unique<ZarrElement>(file, path, dir, 3, false, attrs,
                                           parse_v3(j, file, path));
    }
    json attrs = json::object();
    if (fs::exists(dir / ".zattrs", ec)) attrs = parse_json(dir / ".zattrs", file, path);
    if (fs::exists(dir / ".zgroup", ec))
      return std::make_unique<ZarrElement>(file, path, dir, 2, true, attrs, ArrayMeta{});
    if (fs::exists(dir / ".zarray", ec))
      return std::make_unique<ZarrElement>(
          file, path, dir, 2, false, attrs,
          parse_v2(parse_json(dir / ".zarray", file, path), file, path));
    return nullptr;
  }

  const std::string& file() const override { return file_; }
  const std::string& path() const override { return path_; }

  ElementKind kind() const override {
    if (group_) return ElementKind::Group;
    switch (meta_.dtype.kind) {
      case 'i':
      case 'u':
        return ElementKind::Integer;
      case 'f':
        return ElementKind::Float;
      case 'b':
        return ElementKind::Bool;
      case 'U':
      case 'S':
      case 'O':
        return ElementKind::String;
      default:
        return ElementKind::Other;
    }
  }

  std::vector<std::string> members() const override {
    std::vector<std::string> out;
    if (!group_) return out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
      if (!entry.is_directory(ec)) continue;
      const auto& d = entry.path();
      const bool node = version_ == 3
                            ? fs::exists(d / "zarr.json", ec)
                            : fs::exists(d / ".zgroup", ec) || fs::exists(d / ".zarray", ec);
      if (node) out.push_back(d.filename().string());
    }
    std::sort(out.begin(), out.end());
    require_utf8(out, file_, path_, "member name");
    return out;
  }

  std::unique_ptr<Element> open(const std::string& member) const override {
    if (!group_ || member.empty() || member.find("..") != std::string::npos || member[0] == '/')
      return nullptr;
    return load(file_, join(path_, member), dir_ / member);
  }

  bool has_attr(const std::string& key) const override { return attrs_.contains(key); }
  json attrs() const override { return attrs_; }
  NumType stored_type() const override {
    switch (meta_.dtype.kind) {
      case 'b':
        return NumType::Bool;
      case 'f':
        return widen_float(meta_.dtype.size);
      default:
        return widen_integer(meta_.dtype.size, meta_.dtype.kind == 'i');
    }
  }

  std::vector<std::string> string_attr(const std::string& key) const override {
    std::vector<std::string> out;
    auto it = attrs_.find(key);
    if (it == attrs_.end()) return out;
    if (it->is_string()) out.push_back(it->get<std::string>());
    if (it->is_array())
      for (const auto& v : *it) {
        if (!v.is_string()) return {};
        out.push_back(v.get<std::string>());
      }
    return out;
  }

  std::vector<std::int64_t> int_attr(const std::string& key) const override {
    std::vector<std::int64_t> out;
    auto it = attrs_.find(key);
    if (it == attrs_.end()) return out;
    if (it->is_number_integer()) out.push_back(it->get<std::int64_t>());
    if (it->is_array())
      for (const auto& v : *it) {
        if (!v.is_number_integer()) return {};
        out.push_back(v.get<std::int64_t>());
      }
    return out;
  }

  std::vector<std::int64_t> shape() const override { return meta_.shape; }

  std::vector<std::string> fields() const override {
    std::vector<std::string> names;
    for (const auto& f : meta_.dtype.fields) names.push_back(f.name);
    return names;
  }

  // The field is read through the record array's chunks: decoded whole, then its bytes picked
  // out of every record.
  std::unique_ptr<Element> field(const std::string& name) const override {
    for (const auto& f : meta_.dtype.fields) {
      if (f.name != name) continue;
      if (meta_.shape.size() != 1) fail("record arrays must be 1-D");
      ArrayMeta m = meta_;
      m.dtype = f.type;
      auto e = std::make_unique<ZarrElement>(file_, join(path_, name), dir_, version_, false,
                                             json::object(), std::move(m));
      e->record_size_ = meta_.dtype.size;
      e->field_offset_ = f.offset;
      return e;
    }
    return nullptr;
  }

  void read(std::int64_t begin, std::int64_t end, NumType type, void* out) const override {
    const auto& s = meta_.shape;
    const char k = meta_.dtype.kind;
    if (group_ || s.size() > 2) fail("expected a scalar, 1-D or 2-D array");
    if (k != 'i' && k != 'u' && k != 'f' && k != 'b') fail("expected a numeric array");
    if (s.empty()) {  // a scalar: chunk "0" (v2) or "c" (v3) holds the one element
      if (begin != 0 || end != 1) fail("a scalar is read as [0, 1)");
      convert(numeric_chunk({})->data(), meta_.dtype, 1, type, out, 0);
      return;
    }
    if (begin < 0 || end > s[0] || begin > end)
      fail("range [" + std::to_string(begin) + ", " + std::to_string(end) + ") out of bounds");
    const auto inner = unit_shape();
    const std::int64_t cols = s.size() == 2 ? s[1] : 1;
    const std::int64_t c0 = inner[0], c1 = s.size() == 2 ? inner[1] : 1;
    const std::size_t size = meta_.dtype.size;
    if (c1 == cols && end > begin) {
      // Chunks of whole rows (every 1-D array, X/data and X/indices among them): a chunk's rows
      // are one run in `out`, converted at once, and the chunks between the first and the last
      // are decoded on all cores. The last goes through the cache, as the next range of a pass
      // starts in it.
      const auto index_of = [&](std::int64_t i0) {
        std::vector<std::int64_t> index{i0};
        if (s.size() == 2) index.push_back(0);
        return index;
      };
      const auto put = [&](std::int64_t i0, const std::uint8_t* chunk) {
        const std::int64_t r_lo = std::max(begin, i0 * c0), r_hi = std::min(end, (i0 + 1) * c0);
        convert(chunk + static_cast<std::size_t>((r_lo - i0 * c0) * cols) * size, meta_.dtype,
                static_cast<std::size_t>((r_hi - r_lo) * cols), type, out,
                static_cast<std::size_t>((r_lo - begin) * cols));
      };
      const std::int64_t first = begin / c0, last = (end - 1) / c0;
      put(first, numeric_chunk(index_of(first))->data());
      if (last == first) return;
      // A damaged chunk is reported as a serial read would: the lowest one.
      std::mutex failed_mutex;
      std::int64_t failed_at = last;
      std::exception_ptr failed;
      const std::size_t out_size = num_type_size(type);
      tbb::parallel_for(first + 1, last, [&](std::int64_t i0) {
        try {
          auto* at = static_cast<std::uint8_t*>(out) +
                     static_cast<std::size_t>((i0 * c0 - begin) * cols) * out_size;
          if (decoded_into(index_of(i0), type, at)) return;
          const Bytes chunk = decoded_numeric(index_of(i0));
          put(i0, chunk.data());
        } catch (...) {
          std::lock_guard lock(failed_mutex);
          if (i0 < failed_at) {
            failed_at = i0;
            failed = std::current_exception();
          }
        }
      });
      if (failed) std::rethrow_exception(failed);
      put(last, numeric_chunk(index_of(last))->data());
      return;
    }
    for (std::int64_t i0 = begin / c0; i0 * c0 < end; ++i0) {
      for (std::int64_t i1 = 0; i1 * c1 < cols; ++i1) {
        std::vector<std::int64_t> index{i0};
        if (s.size() == 2) index.push_back(i1);
        auto chunk = numeric_chunk(index);
        const std::int64_t r_lo = std::max(begin, i0 * c0), r_hi = std::min(end, (i0 + 1) * c0);
        const std::int64_t col_lo = i1 * c1, col_hi = std::min(cols, (i1 + 1) * c1);
        for (std::int64_t r = r_lo; r < r_hi; ++r) {
          const std::size_t src = static_cast<std::size_t>((r - i0 * c0) * c1) * size;
          convert(chunk->data() + src, meta_.dtype, static_cast<std::size_t>(col_hi - col_lo), type,
                  out, static_cast<std::size_t>((r - begin) * cols + col_lo));
        }
      }
    }
  }

  std::vector<std::string> read_strings() const override {
    if (kind() != ElementKind::String) fail("expected a string array");
    std::vector<std::string> out;
    if (meta_.shape.empty()) {  // a scalar string
      auto raw = chunk_bytes({});
      if (!raw) fail("the scalar's chunk is missing");
      append_strings(*raw, 1, 1, out);
      require_utf8(out, file_, path_);
      return out;
    }
    const auto n = length();
    const auto c0 = unit_shape()[0];
    for (std::int64_t i0 = 0; i0 * c0 < n; ++i0) {
      const auto take = static_cast<std::size_t>(std::min(c0, n - i0 * c0));
      auto raw = chunk_bytes({i0});
      if (!raw) fail("chunk " + std::to_string(i0) + " of a string array is missing");
      append_strings(*raw, static_cast<std::size_t>(c0), take, out);
    }
    require_utf8(out, file_, path_);
    return out;
  }

 private:
  static ArrayMeta parse_v2(const json& j, const std::string& file, const std::string& path) {
    if (j.value("zarr_format", 0) != 2) throw Error(file, path, ".zarray: zarr_format is not 2");
    ArrayMeta m;
    m.shape = int_list(j.value("shape", json()), "shape", file, path, 0);
    m.chunks = int_list(j.value("chunks", json()), "chunks", file, path, 1);
    if (m.chunks.size() != m.shape.size())
      throw Error(file, path, "chunks and shape differ in rank");
    m.dtype = parse_v2_dtype(j.value("dtype", json()), file, path);
    m.pipeline.big_endian = m.dtype.big_endian;
    if (j.value("order", "C") != "C")
      throw Error(file, path, "Fortran-ordered chunks are not supported");
    m.separator = j.value("dimension_separator", ".");
    if (m.separator != "." && m.separator != "/")
      throw Error(file, path, "invalid dimension_separator");
    const json filters = j.value("filters", json());
    if (filters.is_array())
      for (const auto& f : filters) {
        const std::string id = f.is_object() ? f.value("id", "") : "";
        if (id == "vlen-utf8")
          m.pipeline.vlen = true;
        else
          throw Error(file, path, "unsupported filter '" + id + "'");
      }
    if (m.dtype.kind == 'O' && !m.pipeline.vlen)
      throw Error(file, path, "object arrays need the vlen-utf8 filter");
    if (m.dtype.kind != 'O' && m.pipeline.vlen)
      throw Error(file, path, "the vlen-utf8 filter applies to object (string) arrays only");
    const json comp = j.value("compressor", json());
    if (comp.is_object()) {
      json codec = comp;
      codec["name"] = comp.value("id", "");
      m.pipeline.byte_codecs.push_back(codec);
    }
    m.fill = j.value("fill_value", json());
    return m;
  }

  static ArrayMeta parse_v3(const json& j, const std::string& file, const std::string& path) {
    ArrayMeta m;
    m.shape = int_list(j.value("shape", json()), "shape", file, path, 0);
    const json grid = j.value("chunk_grid", json::object());
    if (grid.value("name", "") != "regular")
      throw Error(file, path, "only regular chunk grids are supported");
    m.chunks = int_list(config_of(grid).value("chunk_shape", json()), "chunk_shape", file, path, 1);
    if (m.chunks.size() != m.shape.size())
      throw Error(file, path, "chunk_shape and shape differ in rank");
    m.dtype = parse_v3_dtype(j.value("data_type", json()));
    const json keys = j.value("chunk_key_encoding", json::object());
    const std::string enc = keys.value("name", "default");
    m.key_prefix_c = enc == "default";
    if (enc != "default" && enc != "v2")
      throw Error(file, path, "unknown chunk_key_encoding '" + enc + "'");
    m.separator = config_of(keys).value("separator", m.key_prefix_c ? "/" : ".");
    if (m.separator != "." && m.separator != "/")
      throw Error(file, path, "invalid chunk key separator");
    m.pipeline = parse_v3_pipeline(j.value("codecs", json::array()), file, path, &m.sharding);
    if (m.sharding) {
      if (m.sharding->inner.size() != m.shape.size())
        throw Error(file, path, "sharding chunk_shape rank differs");
      for (std::size_t d = 0; d < m.shape.size(); ++d)
        if (m.chunks[d] % m.sharding->inner[d] != 0)
          throw Error(file, path, "shard shape is not a multiple of the inner chunk shape");
      m.dtype.big_endian = m.sharding->inner_pipeline.big_endian;
    } else {
      m.dtype.big_endian = m.pipeline.big_endian;
    }
    for (auto& f : m.dtype.fields) f.type.big_endian = m.dtype.big_endian;
    const bool vlen = m.sharding ? m.sharding->inner_pipeline.vlen : m.pipeline.vlen;
    if (m.dtype.kind == 'O' && !vlen)
      throw Error(file, path, "string arrays need the vlen-utf8 codec");
    if (m.dtype.kind != 'O' && vlen)
      throw Error(file, path, "the vlen-utf8 codec applies to string arrays only");
    m.fill = j.value("fill_value", json());
    return m;
  }

  // The chunk shape that reads are made of: inner chunks when sharded.
  const std::vector<std::int64_t>& unit_shape() const {
    return meta_.sharding ? meta_.sharding->inner : meta_.chunks;
  }

  std::size_t unit_elements() const {
    std::size_t n = 1;
    for (auto c : unit_shape()) {
      if (n > kMaxChunkBytes / static_cast<std::size_t>(c)) fail("absurd chunk shape");
      n *= static_cast<std::size_t>(c);
    }
    return n;
  }

  // The decoded size of one unit chunk of `element_size`-byte elements, bounded like its shape.
  std::size_t unit_bytes(std::size_t element_size) const {
    const std::size_t n = unit_elements();
    if (element_size > 0 && n > kMaxChunkBytes / element_size) fail("absurd chunk size");
    return n * element_size;
  }

  fs::path key_path(const std::vector<std::int64_t>& index) const {
    std::string key = meta_.key_prefix_c ? "c" : "";
    for (std::size_t d = 0; d < index.size(); ++d) {
      if (!key.empty()) key += meta_.separator;
      key += std::to_string(index[d]);
    }
    if (key.empty()) key = "0";
    return dir_ / key;
  }

  // The encoded bytes of unit chunk `index`, or nullopt when it was never written.
  std::optional<Bytes> encoded_unit(const std::vector<std::int64_t>& index) const {
    if (!meta_.sharding) return read_bytes(key_path(index), 0, UINT64_MAX, file_, path_);
    const auto& inner = meta_.sharding->inner;
    std::vector<std::int64_t> shard(index.size());
    std::size_t slot = 0, n_inner = 1;
    for (std::size_t d = 0; d < index.size(); ++d) {
      const auto per = meta_.chunks[d] / inner[d];
      shard[d] = index[d] / per;
      slot = slot * static_cast<std::size_t>(per) + static_cast<std::size_t>(index[d] % per);
      n_inner *= static_cast<std::size_t>(per);
    }
    const fs::path p = key_path(shard);
    std::error_code ec;
    if (!fs::exists(p, ec)) return std::nullopt;
    const std::uint64_t file_size = fs::file_size(p, ec);
    const std::uint64_t index_bytes = n_inner * 16 + (meta_.sharding->index_crc ? 4 : 0);
    if (index_bytes > file_size) fail("shard " + p.filename().string() + " is truncated");
    const std::uint64_t index_at = meta_.sharding->index_at_start ? 0 : file_size - index_bytes;
    std::lock_guard lock(shard_mutex_);
    if (shard_cache_key_ != p) {
      // Checked before it replaces the cached index, so a bad one is never used later.
      std::optional<Bytes> index = read_bytes(p, index_at, index_bytes, file_, path_);
      if (!index) fail("shard " + p.filename().string() + " disappeared while reading");
      if (meta_.sharding->index_crc &&
          zarr::crc32c(index->data(), n_inner * 16) != load_u32(index->data() + n_inner * 16))
        fail("shard " + p.filename().string() + ": index checksum mismatch");
      shard_index_ = std::move(*index);
      shard_cache_key_ = p;
    }
    const std::uint64_t offset = load_u64(shard_index_.data() + slot * 16);
    const std::uint64_t nbytes = load_u64(shard_index_.data() + slot * 16 + 8);
    if (offset == UINT64_MAX && nbytes == UINT64_MAX) return std::nullopt;
    return read_bytes(p, offset, nbytes, file_, path_);
  }

  // The decoded bytes of unit chunk `index` (elements in native byte order, or vlen-utf8).
  std::optional<Bytes> chunk_bytes(const std::vector<std::int64_t>& index) const {
    auto raw = encoded_unit(index);
    if (!raw) return std::nullopt;
    const Pipeline& p = meta_.sharding ? meta_.sharding->inner_pipeline : meta_.pipeline;
    const bool vlen = p.vlen;
    const std::size_t expected =
        vlen ? 0 : unit_bytes(record_size_ ? record_size_ : meta_.dtype.size);
    const std::string element = path_ + " chunk " + key_path(index).filename().string();
    for (auto it = p.byte_codecs.rbegin(); it != p.byte_codecs.rend(); ++it) {
      const std::string name = it->value("name", "");
      if (name == "crc32c") {
        if (raw->size() < 4) throw Error(file_, element, "too short for its checksum");
        const std::size_t n = raw->size() - 4;
        if (zarr::crc32c(raw->data(), n) != load_u32(raw->data() + n))
          throw Error(file_, element, "checksum mismatch");
        raw->resize(n);
        continue;
      }
      const bool last = std::next(it) == p.byte_codecs.rend();
      *raw = zarr::decompress(name, *raw, last ? expected : 0,
                              vlen ? kMaxStringChunkBytes : kMaxChunkBytes, file_, element);
    }
    if (!vlen) {
      if (raw->size() != expected)
        throw Error(file_, element,
                    "holds " + std::to_string(raw->size()) + " bytes, expected " +
                        std::to_string(expected));
      if (record_size_) {  // this field's bytes out of each record
        const std::size_t n = unit_elements(), size = meta_.dtype.size;
        Bytes mine(n * size);
        for (std::size_t i = 0; i < n; ++i)
          std::memcpy(mine.data() + i * size, raw->data() + i * record_size_ + field_offset_, size);
        *raw = std::move(mine);
      }
      if (meta_.dtype.big_endian && meta_.dtype.kind != 'U')
        byteswap_elements(*raw, meta_.dtype.size);
    }
    return raw;
  }

  // A numeric chunk; never-written chunks are the fill value. The last chunk is cached, as
  // consecutive row ranges usually share their boundary chunk.
  std::shared_ptr<const Bytes> numeric_chunk(const std::vector<std::int64_t>& index) const {
    std::lock_guard lock(mutex_);
    if (cached_ && cached_index_ == index) return cached_;
    cached_ = std::make_shared<const Bytes>(decoded_numeric(index));
    cached_index_ = index;
    return cached_;
  }

  // Unit chunk `index` decoded straight into `out` (room for the whole chunk as elements of type
  // `t`), where it is stored as `t` in this machine's byte order under at most one compressor:
  // no copy and no buffer of its own (the chunk file's bytes go to a buffer each thread keeps).
  // False, with nothing read, where it takes decoded_numeric's path (shards, record fields,
  // checksums, conversions, byte swaps) or was never written (then decoded_numeric fills it).
  bool decoded_into(const std::vector<std::int64_t>& index, NumType t, std::uint8_t* out) const {
    const Pipeline& p = meta_.pipeline;
    if (meta_.sharding || record_size_ || p.vlen || p.big_endian || p.byte_codecs.size() > 1 ||
        !stored_as(meta_.dtype, t))
      return false;
    const std::string codec = p.byte_codecs.empty() ? "" : p.byte_codecs[0].value("name", "");
    if (codec == "crc32c") return false;
    thread_local Bytes encoded;
    const fs::path key = key_path(index);
    if (!read_bytes_into(key, 0, UINT64_MAX, encoded, file_, path_)) return false;
    const std::size_t size = unit_bytes(meta_.dtype.size);
    const std::string element = path_ + " chunk " + key.filename().string();
    bool done = true;
    if (codec.empty()) {
      if (encoded.size() != size)
        throw Error(
            file_, element,
            "holds " + std::to_string(encoded.size()) + " bytes, expected " + std::to_string(size));
      std::memcpy(out, encoded.data(), size);
    } else {
      done = zarr::decompress_into(codec, encoded, out, size, file_, element);
    }
    if (encoded.capacity() > kKeptBufferBytes) Bytes().swap(encoded);  // not kept past a read
    return done;
  }

  // A numeric chunk, decoded (no cache; safe on several threads at once).
  Bytes decoded_numeric(const std::vector<std::int64_t>& index) const {
    auto raw = chunk_bytes(index);
    if (!raw) {
      raw.emplace(unit_bytes(meta_.dtype.size));
      std::vector<std::uint8_t> one(meta_.dtype.size);
      store_scalar(fill_number(meta_.fill), meta_.dtype, one.data());
      for (std::size_t i = 0; i < raw->size(); i += one.size())
        std::memcpy(raw->data() + i, one.data(), one.size());
    }
    return std::move(*raw);
  }

  // Appends the first `take` of a chunk's `per_chunk` strings.
  void append_strings(const Bytes& raw, std::size_t per_chunk, std::size_t take,
                      std::vector<std::string>& out) const {
    const DType& d = meta_.dtype;
    if (d.kind == 'O') {
      if (raw.size() < 4) fail("vlen-utf8 chunk is truncated");
      const std::size_t n = load_u32(raw.data());
      if (n != per_chunk)
        fail("vlen-utf8 chunk holds " + std::to_string(n) + " strings, expected " +
             std::to_string(per_chunk));
      std::size_t at = 4;
      for (std::size_t i = 0; i < n; ++i) {
        if (at + 4 > raw.size()) fail("vlen-utf8 chunk is truncated");
        const std::size_t len = load_u32(raw.data() + at);
        at += 4;
        if (len > raw.size() - at) fail("vlen-utf8 chunk is truncated");
        if (i < take) out.emplace_back(reinterpret_cast<const char*>(raw.data() + at), len);
        at += len;
      }
      return;
    }
    if (raw.size() < take * d.size) fail("string chunk is truncated");
    for (std::size_t i = 0; i < take; ++i) {
      const std::uint8_t* p = raw.data() + i * d.size;
      std::string s;
      if (d.kind == 'S') {
        s.assign(reinterpret_cast<const char*>(p),
                 strnlen(reinterpret_cast<const char*>(p), d.size));
      } else {  // UTF-32 code points to UTF-8
        for (std::size_t c = 0; c < d.size / 4; ++c) {
          std::uint32_t cp = load_u32(p + 4 * c);
          if (d.big_endian) cp = __builtin_bswap32(cp);
          if (cp == 0) break;
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            fail("invalid code point in a UTF-32 string");
          if (cp < 0x80) {
            s += static_cast<char>(cp);
          } else if (cp < 0x800) {
            s += static_cast<char>(0xC0 | (cp >> 6));
            s += static_cast<char>(0x80 | (cp & 0x3F));
          } else if (cp < 0x10000) {
            s += static_cast<char>(0xE0 | (cp >> 12));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            s += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            s += static_cast<char>(0xF0 | (cp >> 18));
            s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            s += static_cast<char>(0x80 | (cp & 0x3F));
          }
        }
      }
      out.push_back(std::move(s));
    }
  }

  std::string file_, path_;
  fs::path dir_;
  int version_;
  bool group_;
  json attrs_;
  ArrayMeta meta_;
  // A field of a record array: the record's size and the field's offset in it (0: not a field).
  std::size_t record_size_ = 0, field_offset_ = 0;
  mutable std::mutex mutex_;
  mutable std::shared_ptr<const Bytes> cached_;
  mutable std::vector<std::int64_t> cached_index_;
  mutable std::mutex shard_mutex_;
  mutable fs::path shard_cache_key_;
  mutable Bytes shard_index_;
};

}  // namespace

std::unique_ptr<Element> open_zarr_root(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) throw Error(path, "", "not a zarr directory store");
  auto root = ZarrElement::load(path, "", path);
  if (!root) throw Error(path, "", "no .zgroup, .zarray or zarr.json: not a zarr store");
  return root;
}

}  // namespace orrery::io
