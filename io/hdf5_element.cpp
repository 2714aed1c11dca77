// HDF5 files as an Element tree through the C API: rows are read by hyperslab, so an array is
// never loaded whole unless asked for, and HDF5 does the type conversion and the filters.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <limits>
#include <type_traits>

#include <hdf5_hl.h>

#include "element.hpp"
#include "hdf5_handle.hpp"
#include "inflate.hpp"
#include "utf8.hpp"

namespace orrery::io {

void silence_hdf5_errors() {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

namespace {

// Reads `n` strings of HDF5 string type `type` (variable- or fixed-length) through `read`, which
// fills a buffer in the given memory type (an H5Aread or H5Dread). False when the read fails.
bool read_h5_strings(hid_t type, std::size_t n, const std::function<herr_t(hid_t, void*)>& read,
                     std::vector<std::string>& out) {
  out.assign(n, {});
  if (n == 0) return true;
  if (H5Tis_variable_str(type) > 0) {
    H5Id mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem, H5T_VARIABLE);
    H5Tset_cset(mem, H5Tget_cset(type));
    std::vector<char*> ptrs(n, nullptr);
    const bool ok = read(mem, ptrs.data()) >= 0;
    if (ok)
      for (std::size_t i = 0; i < n; ++i) out[i] = ptrs[i] ? ptrs[i] : "";
    // Also after a failed read: the strings converted before the failure are ours to free.
    const hsize_t count = n;
    H5Id space(H5Screate_simple(1, &count, nullptr));
    H5Dvlen_reclaim(mem, space, H5P_DEFAULT, ptrs.data());
    return ok;
  }
  const std::size_t size = H5Tget_size(type);
  std::vector<char> buf(n * size);
  if (read(type, buf.data()) < 0) return false;
  for (std::size_t i = 0; i < n; ++i)
    out[i].assign(buf.data() + i * size, strnlen(buf.data() + i * size, size));
  return true;
}

class Hdf5Element final : public Element {
 public:
  Hdf5Element(std::string file, std::string path, H5Id id)
      : file_(std::move(file)), path_(std::move(path)), id_(std::move(id)) {}
  // One field of a compound dataset, as a 1-D array of its own.
  Hdf5Element(std::string file, std::string path, hid_t dataset, std::string field)
      : file_(std::move(file)), path_(std::move(path)), field_(std::move(field)) {
    H5Iinc_ref(dataset);
    id_ = H5Id(dataset);
  }

  const std::string& file() const override { return file_; }
  const std::string& path() const override { return path_; }

  ElementKind kind() const override {
    if (H5Iget_type(id_) == H5I_GROUP) return ElementKind::Group;
    H5Id type = element_type();
    switch (H5Tget_class(type)) {
      case H5T_INTEGER:
        return ElementKind::Integer;
      case H5T_FLOAT:
        return ElementKind::Float;
      case H5T_ENUM:  // h5py's bool
        return ElementKind::Bool;
      case H5T_STRING:
        return ElementKind::String;
      default:
        return ElementKind::Other;
    }
  }

  std::vector<std::string> members() const override {
    std::vector<std::string> names;
    H5G_info_t info;
    if (!is_group() || H5Gget_info(id_, &info) < 0) return names;
    for (hsize_t i = 0; i < info.nlinks; ++i) {
      char name[1024] = {};
      if (H5Lget_name_by_idx(id_, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                             H5P_DEFAULT) > 0)
        names.emplace_back(name);
    }
    require_utf8(names, file_, path_, "member name");
    return names;
  }

  std::unique_ptr<Element> open(const std::string& member) const override {
    if (!is_group() || member.empty()) return nullptr;
    // Checks each level so that a missing parent is "absent", not an HDF5 failure.
    std::size_t at = 0;
    while (true) {
      const auto slash = member.find('/', at);
      const std::string prefix = member.substr(0, slash);
      if (H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0) return nullptr;
      if (slash == std::string::npos) break;
      at = slash + 1;
    }
    H5Id obj(H5Oopen(id_, member.c_str(), H5P_DEFAULT));
    if (!obj.valid()) return nullptr;
    return std::make_unique<Hdf5Element>(file_, join(path_, member), std::move(obj));
  }

  bool has_attr(const std::string& key) const override { return H5Aexists(id_, key.c_str()) > 0; }

  std::vector<std::string> string_attr(const std::string& key) const override {
    std::vector<std::string> out;
    if (!has_attr(key)) return out;
    H5Id attr(H5Aopen(id_, key.c_str(), H5P_DEFAULT));
    if (!attr.valid()) return out;
    H5Id type(H5Aget_type(attr));
    H5Id space(H5Aget_space(attr));
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    if (n <= 0 || H5Tget_class(type) != H5T_STRING) return out;
    if (!read_h5_strings(
            type, static_cast<std::size_t>(n),
            [&](hid_t mem, void* buf) { return H5Aread(attr, mem, buf); }, out))
      out.clear();
    require_utf8(out, file_, path_ + " attribute " + key);
    return out;
  }

  std::vector<std::int64_t> int_attr(const std::string& key) const override {
    std::vector<std::int64_t> out;
    if (!has_attr(key)) return out;
    H5Id attr(H5Aopen(id_, key.c_str(), H5P_DEFAULT));
    H5Id type(H5Aget_type(attr));
    H5Id space(H5Aget_space(attr));
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    if (n <= 0 || n > 64 || H5Tget_class(type) != H5T_INTEGER) return out;
    out.resize(static_cast<std::size_t>(n));
    if (H5Aread(attr, H5T_NATIVE_INT64, out.data()) < 0) out.clear();
    return out;
  }

  nlohmann::json attrs() const override {
    nlohmann::json out = nlohmann::json::object();
    std::vector<std::string> names;
    H5Aiterate2(
        id_, H5_INDEX_NAME, H5_ITER_INC, nullptr,
        [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
          static_cast<std::vector<std::string>*>(data)->emplace_back(name);
          return 0;
        },
        &names);
    for (const auto& key : names) {
      H5Id attr(H5Aopen(id_, key.c_str(), H5P_DEFAULT));
      if (!attr.valid()) continue;
      H5Id type(H5Aget_type(attr));
      H5Id space(H5Aget_space(attr));
      const bool scalar = H5Sget_simple_extent_ndims(space) == 0;
      const hssize_t n = H5Sget_simple_extent_npoints(space);
      if (n < 0 || n > 1 << 20) continue;
      nlohmann::json values = nlohmann::json::array();
      switch (H5Tget_class(type)) {
        case H5T_STRING:
          for (auto& v : string_attr(key)) values.push_back(std::move(v));
          break;
        case H5T_INTEGER: {
          std::vector<std::int64_t> v(static_cast<std::size_t>(n));
          if (H5Aread(attr, H5T_NATIVE_INT64, v.data()) < 0) continue;
          values = v;
          break;
        }
        case H5T_FLOAT: {
          std::vector<double> v(static_cast<std::size_t>(n));
          if (H5Aread(attr, H5T_NATIVE_DOUBLE, v.data()) < 0) continue;
          values = v;
          break;
        }
        case H5T_ENUM: {  // h5py's bool: an int8 enum
          if (H5Tget_size(type) != 1) continue;
          std::vector<std::int8_t> v(static_cast<std::size_t>(n));
          if (H5Aread(attr, type, v.data()) < 0) continue;
          for (auto b : v) values.push_back(b != 0);
          break;
        }
        default:
          continue;
      }
      if (scalar && values.size() == 1)
        out[key] = values.front();
      else
        out[key] = std::move(values);
    }
    return out;
  }

  NumType stored_type() const override {
    H5Id type = element_type();
    const std::size_t bytes = H5Tget_size(type);
    switch (H5Tget_class(type)) {
      case H5T_ENUM:
        return NumType::Bool;
      case H5T_FLOAT:
        return widen_float(bytes);
      default:
        return widen_integer(bytes, H5Tget_sign(type) != H5T_SGN_NONE);
    }
  }

  std::vector<std::string> fields() const override {
    std::vector<std::string> names;
    if (is_group() || !field_.empty()) return names;
    H5Id type(H5Dget_type(id_));
    if (H5Tget_class(type) != H5T_COMPOUND) return names;
    const int n = H5Tget_nmembers(type);
    for (int i = 0; i < n; ++i) {
      char* name = H5Tget_member_name(type, static_cast<unsigned>(i));
      if (!name) continue;
      names.emplace_back(name);
      H5free_memory(name);
    }
    return names;
  }

  std::unique_ptr<Element> field(const std::string& name) const override {
    const auto names = fields();
    if (std::find(names.begin(), names.end(), name) == names.end()) return nullptr;
    return std::make_unique<Hdf5Element>(file_, join(path_, name), id_.get(), name);
  }

  std::vector<std::int64_t> shape() const override {
    if (is_group()) return {};
    H5Id space(H5Dget_space(id_));
    const int rank = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
    if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    return {dims.begin(), dims.end()};
  }

  void read(std::int64_t begin, std::int64_t end, NumType type, void* out) const override {
    const auto dims = shape();
    if (dims.empty() && begin == 0 && end == 1) {  // a scalar
      H5Id mem = memory_type(native_type(type));
      if (H5Dread(id_, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) fail("read failed");
      return;
    }
    if (dims.empty() || begin < 0 || end > dims[0] || begin > end)
      fail("range [" + std::to_string(begin) + ", " + std::to_string(end) + ") out of bounds");
    if (end == begin) return;
    if (read_deflated_chunks(begin, end, type, out)) return;
    std::vector<hsize_t> start(dims.size(), 0), count(dims.begin(), dims.end());
    start[0] = static_cast<hsize_t>(begin);
    count[0] = static_cast<hsize_t>(end - begin);
    H5Id space(H5Dget_space(id_));
    if (H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) <
        0)
      fail("range selection failed");
    H5Id mem(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
    H5Id mem_type = memory_type(native_type(type));
    if (H5Dread(id_, mem_type, mem, space, H5P_DEFAULT, out) < 0)
      fail("read failed (corrupt, truncated, or unreadable filter)");
  }

  void visit_chunk_index() const override {
    const Chunked1d layout = chunked_1d();
    const hsize_t chunk = layout.chunk, n = layout.length;
    if (chunk == 0) return;
    // Lookups at evenly spaced chunks, at most 2048 (each costs ~0.2 ms here): the leaves of
    // HDF5's chunk B-tree hold at least 32 chunks each, so up to ~32k chunks every leaf and
    // every path to it is visited; beyond that, a sample.
    const hsize_t slots = (n + chunk - 1) / chunk;
    const hsize_t lookups = std::min<hsize_t>(slots, 2048);
    for (hsize_t k = 0; k < lookups; ++k) {
      const hsize_t c = lookups > 1 ? k * (slots - 1) / (lookups - 1) : 0;
      hsize_t offset = c * chunk, size = 0;
      unsigned mask = 0;
      haddr_t address = 0;
      if (H5Dget_chunk_info_by_coord(id_, &offset, &mask, &address, &size) < 0)
        fail("the index of chunk " + std::to_string(offset) + " cannot be read");
    }
  }

  std::vector<std::string> read_strings() const override {
    H5Id type = element_type();
    if (H5Tget_class(type) != H5T_STRING) fail("expected a string dataset");
    const std::size_t n = shape().empty() ? 1 : static_cast<std::size_t>(length());
    const std::size_t size = H5Tget_size(type);
    if (H5Tis_variable_str(type) <= 0 && (size == 0 || n > (std::size_t{1} << 34) / size))
      fail("absurd size");
    std::vector<std::string> out;
    if (!read_h5_strings(
            type, n,
            [&](hid_t mem, void* buf) {
              H5Id wrapped = memory_type(mem);
              return H5Dread(id_, wrapped, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
            },
            out))
      fail("read failed");
    require_utf8(out, file_, path_);
    return out;
  }

 private:
  // A chunked 1-D dataset's creation properties, length and chunk length (chunk 0 for anything
  // else: a group, a compound field, another rank or layout).
  struct Chunked1d {
    H5Id dcpl;
    hsize_t length = 0, chunk = 0;
  };
  Chunked1d chunked_1d() const {
    Chunked1d out;
    if (!field_.empty() || H5Iget_type(id_) != H5I_DATASET) return out;
    H5Id space(H5Dget_space(id_));
    hsize_t length = 0, chunk = 0;
    if (H5Sget_simple_extent_ndims(space) != 1 ||
        H5Sget_simple_extent_dims(space, &length, nullptr) != 1)
      return out;
    H5Id dcpl(H5Dget_create_plist(id_));
    if (!dcpl.valid() || H5Pget_layout(dcpl) != H5D_CHUNKED || H5Pget_chunk(dcpl, 1, &chunk) != 1)
      return out;
    out.dcpl = std::move(dcpl);
    out.length = length;
    out.chunk = chunk;
    return out;
  }

  // Large reads of a 1-D deflated dataset (X/data and X/indices of a CSR X): HDF5 hands over
  // the raw chunks one after the other and they are inflated, unshuffled and converted on all
  // cores (H5Dread inflates one chunk at a time on the calling thread). False, with nothing
  // read, where the layout is anything else ([shuffle +] deflate of a little-endian 4- or 8-byte
  // number, every chunk allocated and fully filtered), so that H5Dread reads it.
  bool read_deflated_chunks(std::int64_t begin, std::int64_t end, NumType type, void* out) const {
    const Chunked1d layout = chunked_1d();
    const hsize_t chunk = layout.chunk;
    const H5Id& dcpl = layout.dcpl;
    if (chunk == 0) return false;
    if (static_cast<std::uint64_t>(end - begin) < 2 * chunk) return false;  // not worth it
    const int n_filters = H5Pget_nfilters(dcpl);
    bool shuffle = false, deflate = false;
    for (int i = 0; i < n_filters; ++i) {
      unsigned flags = 0, config = 0, values[8] = {};
      std::size_t n_values = 8;
      char name[64] = {};
      const H5Z_filter_t id = H5Pget_filter2(dcpl, static_cast<unsigned>(i), &flags, &n_values,
                                             values, sizeof name, name, &config);
      if (id == H5Z_FILTER_SHUFFLE && i == 0 && n_filters == 2)
        shuffle = true;
      else if (id == H5Z_FILTER_DEFLATE && i == n_filters - 1)
        deflate = true;
      else
        return false;
    }
    if (!deflate) return false;
    H5Id stored(H5Dget_type(id_));
    const std::size_t size = H5Tget_size(stored);
    enum class Kind { F32, F64, I32, I64, U32, U64 } kind;
    if (H5Tequal(stored, H5T_IEEE_F32LE) > 0)
      kind = Kind::F32;
    else if (H5Tequal(stored, H5T_IEEE_F64LE) > 0)
      kind = Kind::F64;
    else if (H5Tequal(stored, H5T_STD_I32LE) > 0)
      kind = Kind::I32;
    else if (H5Tequal(stored, H5T_STD_I64LE) > 0)
      kind = Kind::I64;
    else if (H5Tequal(stored, H5T_STD_U32LE) > 0)
      kind = Kind::U32;
    else if (H5Tequal(stored, H5T_STD_U64LE) > 0)
      kind = Kind::U64;
    else
      return false;
    const bool float_stored = kind == Kind::F32 || kind == Kind::F64;
    if (float_stored && type != NumType::F32 && type != NumType::F64) return false;  // HDF5's job
    // Chunks of up to 64 MiB (h5py's and anndata's are KiB to a few MiB); others go to HDF5.
    if (chunk > (std::uint64_t{64} << 20) / size) return false;
    const std::size_t chunk_bytes = static_cast<std::size_t>(chunk) * size;
    // The chunks' compressed sizes come from the file's index: together they cannot exceed the
    // file, so a corrupt index is refused before anything of its declared size is allocated.
    hsize_t file_bytes = 0;
    {
      H5Id file(H5Iget_file_id(id_));
      if (!file.valid() || H5Fget_filesize(file, &file_bytes) < 0) return false;
    }
    const hsize_t c0 = static_cast<hsize_t>(begin) / chunk;
    const hsize_t c1 = (static_cast<hsize_t>(end) - 1) / chunk + 1;
    // The compressed chunks, read serially (HDF5 serialises its calls anyway).
    std::vector<hsize_t> stored_bytes(c1 - c0);
    hsize_t total = 0;
    for (hsize_t c = c0; c < c1; ++c) {
      hsize_t offset = c * chunk, bytes = 0;
      if (H5Dget_chunk_storage_size(id_, &offset, &bytes) < 0 || bytes == 0) return false;
      if (bytes > 2 * chunk_bytes + 65536) return false;  // not deflate output of this chunk
      stored_bytes[c - c0] = bytes;
      total += bytes;
    }
    if (total > file_bytes)
      fail("chunks " + std::to_string(c0 * chunk) + ".. declare " + std::to_string(total) +
           " compressed bytes, more than the file's " + std::to_string(file_bytes));
    std::vector<std::vector<unsigned char>> raw(c1 - c0);
    for (hsize_t c = c0; c < c1; ++c) {
      hsize_t offset = c * chunk;
      const hsize_t bytes = stored_bytes[c - c0];
      auto& r = raw[c - c0];
      r.resize(static_cast<std::size_t>(bytes));
      std::uint32_t mask = 0;
      if (H5Dread_chunk(id_, H5P_DEFAULT, &offset, &mask, r.data()) < 0)
        fail("chunk at " + std::to_string(offset) + " cannot be read (truncated or corrupt)");
      if (mask != 0) return false;  // a filter was skipped for this chunk
    }
    std::atomic<std::int64_t> bad{-1};
    // Stored as the type asked for: a chunk inside the range inflates straight into `out`.
    const bool as_stored = (kind == Kind::F32 && type == NumType::F32) ||
                           (kind == Kind::F64 && type == NumType::F64) ||
                           (kind == Kind::I32 && type == NumType::I32) ||
                           (kind == Kind::I64 && type == NumType::I64);
    tbb::parallel_for(hsize_t{0}, c1 - c0, [&](hsize_t i) {
      const auto first = static_cast<std::int64_t>((c0 + i) * chunk);
      const std::int64_t lo = std::max(begin, first);
      const std::int64_t hi = std::min(end, first + static_cast<std::int64_t>(chunk));
      if (as_stored && !shuffle && hi - lo == static_cast<std::int64_t>(chunk)) {
        auto* at = static_cast<unsigned char*>(out) + static_cast<std::size_t>(lo - begin) * size;
        if (!inflate_exact(raw[i].data(), raw[i].size(), at, chunk_bytes)) bad.store(first);
        return;
      }
      // Buffers each thread keeps between chunks (no zero-fill per chunk) up to 16 MiB chunks.
      thread_local std::vector<unsigned char> kept_plain, kept_unshuffled;
      std::vector<unsigned char> own_plain, own_unshuffled;
      const bool keep = chunk_bytes <= (std::size_t{16} << 20);
      auto& plain = keep ? kept_plain : own_plain;
      auto& unshuffled = keep ? kept_unshuffled : own_unshuffled;
      plain.resize(chunk_bytes);
      if (!inflate_exact(raw[i].data(), raw[i].size(), plain.data(), chunk_bytes)) {
        bad.store(first);
        return;
      }
      const unsigned char* values = plain.data();
      if (shuffle) {  // HDF5's shuffle: byte j of every element, then byte j + 1, ...
        unshuffled.resize(chunk_bytes);
        if (size == 4)
          unshuffle<4>(plain.data(), chunk, unshuffled.data());
        else
          unshuffle<8>(plain.data(), chunk, unshuffled.data());
        values = unshuffled.data();
      }
      const unsigned char* from = values + static_cast<std::size_t>(lo - first) * size;
      const auto n = static_cast<std::size_t>(hi - lo);
      const auto at = static_cast<std::size_t>(lo - begin);
      switch (kind) {
        case Kind::F32:
          convert_values<float>(from, n, type, out, at);
          break;
        case Kind::F64:
          convert_values<double>(from, n, type, out, at);
          break;
        case Kind::I32:
          convert_values<std::int32_t>(from, n, type, out, at);
          break;
        case Kind::I64:
          convert_values<std::int64_t>(from, n, type, out, at);
          break;
        case Kind::U32:
          convert_values<std::uint32_t>(from, n, type, out, at);
          break;
        case Kind::U64:
          convert_values<std::uint64_t>(from, n, type, out, at);
          break;
      }
    });
    if (bad.load() >= 0)
      fail("chunk at " + std::to_string(bad.load()) +
           ": deflate data corrupt or not of the chunk's size");
    return true;
  }

  // HDF5's shuffle undone for `n` elements of `Size` bytes: element e's byte j is at j * n + e.
  // Elements written in order, each from its bytes' `Size` streams.
  template <std::size_t Size>
  static void unshuffle(const unsigned char* from, std::size_t n, unsigned char* to) {
    for (std::size_t e = 0; e < n; ++e)
      for (std::size_t j = 0; j < Size; ++j) to[e * Size + j] = from[j * n + e];
  }

  // Elements of type Src (little-endian bytes at `from`) converted to `type` into `out` from
  // index `at`; integers out of the target's range are clamped, as HDF5 converts them.
  template <typename Src>
  static void convert_values(const unsigned char* from, std::size_t n, NumType type, void* out,
                             std::size_t at) {
    auto each = [&](auto* dst) {
      using Dst = std::remove_pointer_t<decltype(dst)>;
      if constexpr (std::is_same_v<Src, Dst>) {  // the usual case: the stored type itself
        std::memcpy(dst + at, from, n * sizeof(Src));
        return;
      } else if constexpr (std::is_integral_v<Src> && std::is_integral_v<Dst> &&
                           std::numeric_limits<Src>::digits <= std::numeric_limits<Dst>::digits &&
                           (std::is_signed_v<Dst> || !std::is_signed_v<Src>)) {
        for (std::size_t i = 0; i < n; ++i) {  // every value fits: no clamping
          Src v;
          std::memcpy(&v, from + i * sizeof(Src), sizeof(Src));
          dst[at + i] = static_cast<Dst>(v);
        }
        return;
      }
      for (std::size_t i = 0; i < n; ++i) {
        Src v;
        std::memcpy(&v, from + i * sizeof(Src), sizeof(Src));
        if constexpr (std::is_integral_v<Dst>) {
          const auto x = static_cast<long double>(v);  // exact for 64-bit integers on x86-64
          dst[at + i] = x < static_cast<long double>(std::numeric_limits<Dst>::lowest())
                            ? std::numeric_limits<Dst>::lowest()
                        : x > static_cast<long double>(std::numeric_limits<Dst>::max())
                            ? std::numeric_limits<Dst>::max()
                            : static_cast<Dst>(v);
        } else {
          dst[at + i] = static_cast<Dst>(v);
        }
      }
    };
    switch (type) {
      case NumType::Bool: {
        auto* dst = static_cast<std::uint8_t*>(out);
        for (std::size_t i = 0; i < n; ++i) {
          Src v;
          std::memcpy(&v, from + i * sizeof(Src), sizeof(Src));
          dst[at + i] = v != 0;
        }
        break;
      }
      case NumType::I8:
        each(static_cast<std::int8_t*>(out));
        break;
      case NumType::I32:
        each(static_cast<std::int32_t*>(out));
        break;
      case NumType::I64:
        each(static_cast<std::int64_t*>(out));
        break;
      case NumType::F32:
        each(static_cast<float*>(out));
        break;
      case NumType::F64:
        each(static_cast<double*>(out));
        break;
    }
  }

  // The type of this element's values: the dataset's, or its field's.
  H5Id element_type() const {
    H5Id type(H5Dget_type(id_));
    if (field_.empty()) return type;
    const int index = H5Tget_member_index(type, field_.c_str());
    if (index < 0) fail("no field " + field_);
    return H5Id(H5Tget_member_type(type, static_cast<unsigned>(index)));
  }
  // A memory type for reading: `mem` itself, or for a field a one-member compound holding it,
  // so that HDF5 converts just that field.
  H5Id memory_type(hid_t mem) const {
    H5Id copy(H5Tcopy(mem));
    if (field_.empty()) return copy;
    H5Id wrapped(H5Tcreate(H5T_COMPOUND, H5Tget_size(mem)));
    if (H5Tinsert(wrapped, field_.c_str(), 0, copy) < 0) fail("cannot read field " + field_);
    return wrapped;
  }

  std::string file_, path_;
  std::string field_;  // non-empty: this element is one field of a compound dataset
  H5Id id_;
};

}  // namespace

std::unique_ptr<Element> open_hdf5_root(const std::string& path) {
  silence_hdf5_errors();
  register_lzf_filter();
  H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file.valid()) throw Error(path, "", "not a readable HDF5 file (truncated or corrupt?)");
  H5Id root(H5Gopen2(file, "/", H5P_DEFAULT));
  if (!root.valid()) throw Error(path, "/", "cannot open the root group");
  return std::make_unique<Hdf5Element>(path, "", std::move(root));
}

std::unique_ptr<Element> open_hdf5_image(const void* data, std::size_t size,
                                         const std::string& name) {
  silence_hdf5_errors();
  register_lzf_filter();
  if (size == 0) throw Error(name, "", "empty HDF5 image");
  H5Id file(H5LTopen_file_image(const_cast<void*>(data), size, 0));
  if (!file.valid()) throw Error(name, "", "not a readable HDF5 image");
  H5Id root(H5Gopen2(file, "/", H5P_DEFAULT));
  if (!root.valid()) throw Error(name, "/", "cannot open the root group");
  return std::make_unique<Hdf5Element>(name, "", std::move(root));
}

}  // namespace orrery::io
