// TreeWriter for HDF5 (the h5ad container): chunked, deflate-compressed datasets, h5py's bool
// enum, variable-length UTF-8 strings, compound record arrays.
#include <libdeflate.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <memory>

#include "hdf5_handle.hpp"
#include "tree_writer.hpp"

namespace orrery::io {

static_assert(std::endian::native == std::endian::little,
              "chunks are written as they lie in memory: the file's types are little-endian");

namespace {

// Chunks are compressed here, on all cores, as HDF5's own filters would (byte shuffle when the
// dataset has it, then zlib-wrapped deflate), and stored with H5Dwrite_chunk: H5Dwrite runs the
// filters one chunk at a time on the calling thread, which made writing a store's X the longest
// step of synth and of a full output. The file is the same format; h5py and anndata read it.
class ChunkWriter {
 public:
  // `chunk_bytes`: one whole chunk (edge chunks are stored whole, padded with zeros).
  ChunkWriter(hid_t dataset, std::size_t element_size, std::size_t chunk_bytes, bool shuffle,
              int level, std::string file, std::string path)
      : d_(dataset),
        size_(element_size),
        chunk_bytes_(chunk_bytes),
        shuffle_(shuffle),
        level_(level),
        file_(std::move(file)),
        path_(std::move(path)) {}

  // Writes chunks first, first + 1, ... from `bytes` (n whole chunks' worth, the last possibly
  // short and then padded). `offset_of(i)` is chunk i's first element's coordinates.
  template <typename OffsetOf>
  void write(std::size_t first, const unsigned char* bytes, std::size_t n, OffsetOf offset_of) {
    const std::size_t chunks = (n + chunk_bytes_ - 1) / chunk_bytes_;
    constexpr std::size_t kBatch = 64;  // chunks compressed together: bounded memory
    std::vector<std::vector<unsigned char>> out(std::min(kBatch, chunks));
    for (std::size_t b0 = 0; b0 < chunks; b0 += kBatch) {
      const std::size_t b1 = std::min(chunks, b0 + kBatch);
      tbb::parallel_for(b0, b1, [&](std::size_t c) {
        const std::size_t at = c * chunk_bytes_, len = std::min(chunk_bytes_, n - at);
        compress(bytes + at, len, out[c - b0]);
      });
      for (std::size_t c = b0; c < b1; ++c) {
        const std::vector<hsize_t> offset = offset_of(first + c);
        const auto& z = out[c - b0];
        if (z.empty()) throw Error(file_, path_, "cannot compress: no deflate compressor");
        if (H5Dwrite_chunk(d_, H5P_DEFAULT, 0, offset.data(), z.size(), z.data()) < 0)
          throw Error(file_, path_, "write failed (disk full?)");
      }
    }
  }

 private:
  // libdeflate's compressors, one per thread and level, made when first needed.
  struct Compressors {
    std::array<libdeflate_compressor*, 13> at{};
    ~Compressors() {
      for (auto* c : at)
        if (c) libdeflate_free_compressor(c);
    }
    libdeflate_compressor* get(int level) {
      auto& c = at[static_cast<std::size_t>(level)];
      if (!c) c = libdeflate_alloc_compressor(level);
      return c;
    }
  };

  // One chunk, shuffled if asked and padded to its whole size, compressed into `z` (left
  // empty when no compressor could be made).
  void compress(const unsigned char* from, std::size_t len, std::vector<unsigned char>& z) const {
    thread_local Compressors compressors;
    thread_local std::vector<unsigned char> chunk;
    libdeflate_compressor* c = compressors.get(level_);
    z.clear();
    if (!c) return;
    chunk.resize(chunk_bytes_);  // every byte is written below: the values, then zeros
    if (shuffle_) {              // HDF5's shuffle: byte j of every element, then byte j + 1, ...
      const std::size_t elements = chunk_bytes_ / size_, given = len / size_;
      for (std::size_t j = 0; j < size_; ++j) {
        unsigned char* to = chunk.data() + j * elements;
        for (std::size_t i = 0; i < given; ++i) to[i] = from[i * size_ + j];
        std::fill(to + given, to + elements, 0);
      }
    } else {
      std::memcpy(chunk.data(), from, len);
      std::fill(chunk.begin() + static_cast<std::ptrdiff_t>(len), chunk.end(), 0);
    }
    z.resize(libdeflate_zlib_compress_bound(c, chunk_bytes_));
    z.resize(libdeflate_zlib_compress(c, chunk.data(), chunk_bytes_, z.data(), z.size()));
  }

  hid_t d_;
  std::size_t size_, chunk_bytes_;
  bool shuffle_;
  int level_;
  std::string file_, path_;
};

H5Id utf8_type() {
  H5Id type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  return type;
}

// h5py's boolean type: an int8 enum with FALSE = 0 and TRUE = 1.
H5Id bool_type() {
  H5Id t(H5Tenum_create(H5T_NATIVE_INT8));
  std::int8_t f = 0, tr = 1;
  H5Tenum_insert(t, "FALSE", &f);
  H5Tenum_insert(t, "TRUE", &tr);
  return t;
}

// The file type: little-endian standard types, and h5py's enum for bools.
H5Id file_type(NumType t) {
  switch (t) {
    case NumType::Bool:
      return bool_type();
    case NumType::I8:
      return H5Id(H5Tcopy(H5T_STD_I8LE));
    case NumType::I32:
      return H5Id(H5Tcopy(H5T_STD_I32LE));
    case NumType::I64:
      return H5Id(H5Tcopy(H5T_STD_I64LE));
    case NumType::F32:
      return H5Id(H5Tcopy(H5T_IEEE_F32LE));
    case NumType::F64:
      return H5Id(H5Tcopy(H5T_IEEE_F64LE));
  }
  return H5Id(H5Tcopy(H5T_IEEE_F64LE));
}

// Whether an array of these dimensions is stored in chunks (not scalars or empty arrays).
bool chunked(const std::vector<hsize_t>& dims) {
  return !dims.empty() && std::none_of(dims.begin(), dims.end(), [](hsize_t d) { return d == 0; });
}

// Elements after the first axis (a row).
hsize_t row_elements(const std::vector<hsize_t>& dims) {
  hsize_t row = 1;
  for (std::size_t i = 1; i < dims.size(); ++i) row *= dims[i];
  return row;
}

// ~64 Ki elements per chunk, whole rows.
hsize_t chunk_rows(const std::vector<hsize_t>& dims) {
  return std::max<hsize_t>(
      1, std::min<hsize_t>(dims[0], (1 << 16) / std::max<hsize_t>(1, row_elements(dims))));
}

constexpr int kArrayLevel = 4;

// Chunks of whole rows along the first axis, deflate 4; none for scalars and empty arrays.
H5Id dataset_props(const std::vector<hsize_t>& dims) {
  H5Id props(H5Pcreate(H5P_DATASET_CREATE));
  if (!chunked(dims)) return props;
  std::vector<hsize_t> chunk(dims);
  chunk[0] = chunk_rows(dims);
  H5Pset_chunk(props, static_cast<int>(dims.size()), chunk.data());
  H5Pset_deflate(props, kArrayLevel);
  return props;
}

H5Id dataspace(const std::vector<hsize_t>& dims) {
  if (dims.empty()) return H5Id(H5Screate(H5S_SCALAR));
  return H5Id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
}

constexpr hsize_t kAppendChunk = 1 << 16;  // elements
constexpr int kAppendLevel =
    1;  // most of gzip's size reduction on counts, at a fraction of 4's time

// Appends to an extendible 1-D dataset (shuffle + deflate 1): whole chunks are compressed on all
// cores as they fill; the last, partial one at finish().
class Hdf5Appender final : public ArrayAppender {
 public:
  Hdf5Appender(H5Id dset, NumType type, std::string file, std::string path)
      : dset_(std::move(dset)),
        size_(num_type_size(type)),
        chunks_(dset_, size_, kAppendChunk * size_, true, kAppendLevel, file, path),
        file_(std::move(file)),
        path_(std::move(path)) {}
  void append(const void* values, std::size_t count) override {
    if (count == 0) return;
    hsize_t new_size = elements_ + count;
    if (H5Dset_extent(dset_, &new_size) < 0) throw Error(file_, path_, "cannot extend dataset");
    elements_ = new_size;
    const auto* bytes = static_cast<const unsigned char*>(values);
    std::size_t n = count * size_;
    const std::size_t chunk_bytes = kAppendChunk * size_;
    if (!pending_.empty()) {  // fill the partial chunk first
      const std::size_t take = std::min(n, chunk_bytes - pending_.size());
      pending_.insert(pending_.end(), bytes, bytes + take);
      bytes += take;
      n -= take;
      if (pending_.size() < chunk_bytes) return;
      write(pending_.data(), chunk_bytes);
      pending_.clear();
    }
    const std::size_t whole = n / chunk_bytes * chunk_bytes;
    write(bytes, whole);
    pending_.assign(bytes + whole, bytes + n);
  }
  void finish() override {
    if (!pending_.empty()) write(pending_.data(), pending_.size());
    pending_.clear();
  }

 private:
  void write(const unsigned char* bytes, std::size_t n) {
    if (n == 0) return;
    chunks_.write(written_, bytes, n, [](std::size_t c) {
      return std::vector<hsize_t>{static_cast<hsize_t>(c) * kAppendChunk};
    });
    written_ += (n + kAppendChunk * size_ - 1) / (kAppendChunk * size_);
  }

  H5Id dset_;
  std::size_t size_;
  ChunkWriter chunks_;
  std::string file_, path_;
  hsize_t elements_ = 0;
  std::size_t written_ = 0;  // chunks
  std::vector<unsigned char> pending_;
};

class Hdf5TreeWriter final : public TreeWriter {
 public:
  explicit Hdf5TreeWriter(std::string path) : path_(std::move(path)) {
    silence_hdf5_errors();
    file_ = H5Id(H5Fcreate(path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    if (!file_.valid()) throw Error(path_, "", "cannot create output file");
  }

  void group(const std::string& path, const Attrs& attrs) override {
    H5Id g(path.empty() ? H5Gopen2(file_, "/", H5P_DEFAULT)
                        : H5Gcreate2(file_, path.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (!g.valid()) throw Error(path_, path, "cannot create group");
    set_attrs(g, path, attrs);
  }

  void array(const std::string& path, NumType type, const void* values,
             const std::vector<std::int64_t>& shape, const Attrs& attrs) override {
    const std::vector<hsize_t> dims(shape.begin(), shape.end());
    H5Id space = dataspace(dims);
    H5Id props = dataset_props(dims);
    H5Id ft = file_type(type);
    H5Id d(H5Dcreate2(file_, path.c_str(), ft, space, H5P_DEFAULT, props, H5P_DEFAULT));
    if (!d.valid()) throw Error(path_, path, "cannot create dataset");
    const hid_t mem = type == NumType::Bool ? ft.get() : native_type(type);
    if (chunked(dims)) {
      // Chunks of whole rows, compressed on all cores (the values are already the file's
      // little-endian layout).
      const hsize_t rows = chunk_rows(dims), row = row_elements(dims);
      const std::size_t size = num_type_size(type);
      ChunkWriter chunks(d, size, rows * row * size, false, kArrayLevel, path_, path);
      chunks.write(0, static_cast<const unsigned char*>(values), dims[0] * row * size,
                   [&](std::size_t c) {
                     std::vector<hsize_t> offset(dims.size(), 0);
                     offset[0] = static_cast<hsize_t>(c) * rows;
                     return offset;
                   });
    } else if (H5Sget_simple_extent_npoints(space) > 0 &&
               H5Dwrite(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0) {
      throw Error(path_, path, "write failed");
    }
    set_attrs(d, path, attrs);
  }

  void strings(const std::string& path, const std::vector<std::string>& values, bool scalar,
               const Attrs& attrs) override {
    H5Id type = utf8_type();
    const std::vector<hsize_t> dims =
        scalar ? std::vector<hsize_t>{} : std::vector<hsize_t>{values.size()};
    H5Id space = dataspace(dims);
    H5Id props = dataset_props(dims);
    H5Id d(H5Dcreate2(file_, path.c_str(), type, space, H5P_DEFAULT, props, H5P_DEFAULT));
    if (!d.valid()) throw Error(path_, path, "cannot create dataset");
    std::vector<const char*> ptrs;
    ptrs.reserve(values.size());
    for (const auto& s : values) ptrs.push_back(s.c_str());
    if (!ptrs.empty() && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
      throw Error(path_, path, "write failed");
    set_attrs(d, path, attrs);
  }

  std::unique_ptr<ArrayAppender> appender(const std::string& path, NumType type,
                                          const Attrs& attrs) override {
    hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = kAppendChunk;
    H5Id space(H5Screate_simple(1, &zero, &unlimited));
    H5Id props(H5Pcreate(H5P_DATASET_CREATE));
    H5Pset_chunk(props, 1, &chunk);
    H5Pset_shuffle(props);
    H5Pset_deflate(props, kAppendLevel);
    H5Id ft = file_type(type);
    H5Id d(H5Dcreate2(file_, path.c_str(), ft, space, H5P_DEFAULT, props, H5P_DEFAULT));
    if (!d.valid()) throw Error(path_, path, "cannot create dataset");
    set_attrs(d, path, attrs);
    return std::make_unique<Hdf5Appender>(std::move(d), type, path_, path);
  }

  void records(const std::string& path, const std::vector<std::string>& fields, NumType type,
               const std::vector<double>& values, const std::vector<std::string>* texts,
               std::size_t rows, const Attrs& attrs) override {
    H5Id member = texts ? utf8_type() : H5Id(H5Tcopy(native_type(type)));
    const std::size_t member_size = texts ? sizeof(char*) : num_type_size(type);
    H5Id compound(H5Tcreate(H5T_COMPOUND, member_size * std::max<std::size_t>(1, fields.size())));
    for (std::size_t f = 0; f < fields.size(); ++f)
      if (H5Tinsert(compound, fields[f].c_str(), f * member_size, member) < 0)
        throw Error(path_, path, "bad field name '" + fields[f] + "'");
    std::vector<unsigned char> buffer(rows * fields.size() * member_size);
    for (std::size_t i = 0; i < rows * fields.size(); ++i) {
      if (texts) {
        const char* p = (*texts)[i].c_str();
        std::memcpy(buffer.data() + i * member_size, &p, sizeof p);
      } else if (type == NumType::F32) {
        const auto v = static_cast<float>(values[i]);
        std::memcpy(buffer.data() + i * member_size, &v, sizeof v);
      } else {
        std::memcpy(buffer.data() + i * member_size, &values[i], sizeof(double));
      }
    }
    const hsize_t n = rows;
    H5Id space(H5Screate_simple(1, &n, nullptr));
    H5Id d(H5Dcreate2(file_, path.c_str(), compound, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (!d.valid()) throw Error(path_, path, "cannot create dataset");
    if (rows > 0 && H5Dwrite(d, compound, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0)
      throw Error(path_, path, "write failed");
    set_attrs(d, path, attrs);
  }

  void close() override {
    if (H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) throw Error(path_, "", "flush failed");
    file_.reset();
  }

 private:
  void set_attrs(hid_t obj, const std::string& path, const Attrs& attrs) {
    for (const auto& [key, value] : attrs.items()) {
      const bool strings =
          value.is_string() || (value.is_array() && !value.empty() && value.front().is_string());
      const bool list = value.is_array();
      // Only scalars and flat lists of one JSON type have an HDF5 attribute form (a zarr
      // store's attributes may hold anything); the rest are not copied.
      const auto first = list && !value.empty() ? value.front().type() : value.type();
      bool flat = !value.is_object() && !value.is_null();
      if (list)
        for (const auto& v : value)
          flat = flat && (v.type() == first || (v.is_number() && value.front().is_number())) &&
                 !v.is_array() && !v.is_object() && !v.is_null();
      if (!flat) continue;
      const std::vector<hsize_t> dims =
          list ? std::vector<hsize_t>{value.size()} : std::vector<hsize_t>{};
      H5Id space = dataspace(dims);
      if (strings || (list && value.empty())) {
        H5Id type = utf8_type();
        std::vector<std::string> held;
        if (list)
          for (const auto& v : value) held.push_back(v.get<std::string>());
        else
          held.push_back(value.get<std::string>());
        std::vector<const char*> ptrs;
        for (const auto& s : held) ptrs.push_back(s.c_str());
        H5Id attr(H5Acreate2(obj, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT));
        if (!attr.valid() || (!ptrs.empty() && H5Awrite(attr, type, ptrs.data()) < 0))
          throw Error(path_, path, "cannot write attribute " + key);
      } else if (value.is_number_float() ||
                 (list && std::any_of(value.begin(), value.end(),
                                      [](const auto& v) { return v.is_number_float(); }))) {
        std::vector<double> reals;
        if (list)
          for (const auto& v : value) reals.push_back(v.get<double>());
        else
          reals.push_back(value.get<double>());
        H5Id attr(H5Acreate2(obj, key.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT));
        if (!attr.valid() || H5Awrite(attr, H5T_NATIVE_DOUBLE, reals.data()) < 0)
          throw Error(path_, path, "cannot write attribute " + key);
      } else if (value.is_boolean() || (list && value.front().is_boolean())) {
        H5Id type = bool_type();
        std::vector<std::int8_t> flags;
        if (list)
          for (const auto& v : value) flags.push_back(v.get<bool>() ? 1 : 0);
        else
          flags.push_back(value.get<bool>() ? 1 : 0);
        H5Id attr(H5Acreate2(obj, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT));
        if (!attr.valid() || H5Awrite(attr, type, flags.data()) < 0)
          throw Error(path_, path, "cannot write attribute " + key);
      } else {
        std::vector<std::int64_t> ints;
        if (list)
          for (const auto& v : value) ints.push_back(v.get<std::int64_t>());
        else
          ints.push_back(value.get<std::int64_t>());
        H5Id attr(H5Acreate2(obj, key.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT));
        if (!attr.valid() || H5Awrite(attr, H5T_NATIVE_INT64, ints.data()) < 0)
          throw Error(path_, path, "cannot write attribute " + key);
      }
    }
  }

  std::string path_;
  H5Id file_;
};

}  // namespace

std::unique_ptr<TreeWriter> make_hdf5_writer(const std::string& path) {
  return std::make_unique<Hdf5TreeWriter>(path);
}

}  // namespace orrery::io
