#include "h5ad_writer.hpp"

#include <unistd.h>

#include <filesystem>
#include <type_traits>

namespace orrery::io {
namespace {

void set_string_attr(hid_t obj, const char* name, const std::string& value) {
  H5Id type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  H5Id space(H5Screate(H5S_SCALAR));
  H5Id attr(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT));
  const char* p = value.c_str();
  H5Awrite(attr, type, &p);
}

void set_string_array_attr(hid_t obj, const char* name, const std::vector<std::string>& values) {
  H5Id type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  hsize_t n = values.size();
  H5Id space(H5Screate_simple(1, &n, nullptr));
  H5Id attr(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT));
  std::vector<const char*> ptrs;
  for (auto& v : values) ptrs.push_back(v.c_str());
  H5Awrite(attr, type, ptrs.data());
}

void set_encoding(hid_t obj, const char* type, const char* version) {
  set_string_attr(obj, "encoding-type", type);
  set_string_attr(obj, "encoding-version", version);
}

H5Id create_group(hid_t parent, const std::string& name, const char* encoding,
                  const char* version) {
  H5Id g(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!g.valid()) throw Error("", name, "cannot create HDF5 group");
  if (encoding) set_encoding(g, encoding, version);
  return g;
}

// h5py's boolean type: an int8 enum with FALSE = 0 and TRUE = 1.
H5Id bool_type() {
  H5Id t(H5Tenum_create(H5T_NATIVE_INT8));
  std::int8_t f = 0, tr = 1;
  H5Tenum_insert(t, "FALSE", &f);
  H5Tenum_insert(t, "TRUE", &tr);
  return t;
}

template <typename T>
hid_t native_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  if constexpr (std::is_same_v<T, std::int8_t>) return H5T_NATIVE_INT8;
  if constexpr (std::is_same_v<T, std::int32_t>) return H5T_NATIVE_INT32;
  if constexpr (std::is_same_v<T, std::int64_t>) return H5T_NATIVE_INT64;
}

H5Id dataset_props(hsize_t rank, const hsize_t* dims) {
  H5Id props(H5Pcreate(H5P_DATASET_CREATE));
  hsize_t chunk[2] = {1, 1};
  bool nonzero = true;
  for (hsize_t i = 0; i < rank; ++i) nonzero = nonzero && dims[i] > 0;
  if (nonzero) {
    // ~256 KiB chunks along the first axis.
    hsize_t row = rank == 2 ? dims[1] : 1;
    chunk[0] =
        std::max<hsize_t>(1, std::min<hsize_t>(dims[0], (1 << 16) / std::max<hsize_t>(1, row)));
    if (rank == 2) chunk[1] = dims[1];
    H5Pset_chunk(props, static_cast<int>(rank), chunk);
    H5Pset_deflate(props, 4);
  }
  return props;
}

template <typename T>
void write_array(hid_t parent, const std::string& name, const T* values, hsize_t rank,
                 const hsize_t* dims, hid_t file_type = -1) {
  H5Id space(H5Screate_simple(static_cast<int>(rank), dims, nullptr));
  H5Id props = dataset_props(rank, dims);
  hid_t type = file_type >= 0 ? file_type : native_type<T>();
  H5Id d(H5Dcreate2(parent, name.c_str(), type, space, H5P_DEFAULT, props, H5P_DEFAULT));
  if (!d.valid()) throw Error("", name, "cannot create dataset");
  if (H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0)
    throw Error("", name, "write failed");
  set_encoding(d, "array", "0.2.0");
}

template <typename T>
void write_vector(hid_t parent, const std::string& name, const std::vector<T>& v) {
  hsize_t n = v.size();
  write_array(parent, name, v.data(), 1, &n);
}

void write_strings(hid_t parent, const std::string& name, const std::vector<std::string>& v) {
  H5Id type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  hsize_t n = v.size();
  H5Id space(H5Screate_simple(1, &n, nullptr));
  H5Id props = dataset_props(1, &n);
  H5Id d(H5Dcreate2(parent, name.c_str(), type, space, H5P_DEFAULT, props, H5P_DEFAULT));
  if (!d.valid()) throw Error("", name, "cannot create dataset");
  std::vector<const char*> ptrs;
  ptrs.reserve(v.size());
  for (auto& s : v) ptrs.push_back(s.c_str());
  if (n > 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
    throw Error("", name, "write failed");
  set_encoding(d, "string-array", "0.2.0");
}

void write_column(hid_t parent, const Column& c) {
  std::visit(
      [&](const auto& values) {
        using V = std::decay_t<decltype(values)>;
        if constexpr (std::is_same_v<V, std::vector<std::string>>) {
          write_strings(parent, c.name, values);
        } else if constexpr (std::is_same_v<V, std::vector<bool>>) {
          std::vector<std::int8_t> bytes(values.begin(), values.end());
          H5Id t = bool_type();
          hsize_t n = bytes.size();
          H5Id space(H5Screate_simple(1, &n, nullptr));
          H5Id d(
              H5Dcreate2(parent, c.name.c_str(), t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
          if (n > 0) H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
          set_encoding(d, "array", "0.2.0");
        } else if constexpr (std::is_same_v<V, Categorical>) {
          H5Id g = create_group(parent, c.name, "categorical", "0.2.0");
          H5Id t = bool_type();
          H5Id space(H5Screate(H5S_SCALAR));
          H5Id attr(H5Acreate2(g, "ordered", t, space, H5P_DEFAULT, H5P_DEFAULT));
          std::int8_t no = 0;
          H5Awrite(attr, t, &no);
          write_strings(g, "categories", values.categories);
          write_vector(g, "codes", values.codes);
        } else {
          write_vector(parent, c.name, values);
        }
      },
      c.values);
}

}  // namespace

H5adWriter::H5adWriter(std::string path) : path_(std::move(path)) {
  silence_hdf5_errors();
  tmp_path_ = path_ + ".tmp-" + std::to_string(::getpid());
  file_ = H5Id(H5Fcreate(tmp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!file_.valid()) throw Error(path_, "", "cannot create output file");
  H5Id root(H5Gopen2(file_, "/", H5P_DEFAULT));
  set_encoding(root, "anndata", "0.1.0");
  for (const char* g : {"obsm", "varm", "obsp", "varp", "layers", "uns"})
    create_group(file_, g, "dict", "0.1.0");
}

H5adWriter::~H5adWriter() {
  if (!committed_) {
    file_.reset();
    std::error_code ec;
    std::filesystem::remove(tmp_path_, ec);
  }
}

hid_t H5adWriter::group(const std::string& name) {
  return H5Gopen2(file_, name.c_str(), H5P_DEFAULT);
}

void H5adWriter::write_X(std::int64_t n_rows, std::int64_t n_cols,
                         const std::function<bool(CsrMatrix&)>& next) {
  H5Id g = create_group(file_, "X", "csr_matrix", "0.1.0");
  {
    std::int64_t shape[2] = {n_rows, n_cols};
    hsize_t two = 2;
    H5Id space(H5Screate_simple(1, &two, nullptr));
    H5Id attr(H5Acreate2(g, "shape", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT));
    H5Awrite(attr, H5T_NATIVE_INT64, shape);
  }
  auto make_extendible = [&](const char* name, hid_t type) {
    hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = 1 << 16;
    H5Id space(H5Screate_simple(1, &zero, &unlimited));
    H5Id props(H5Pcreate(H5P_DATASET_CREATE));
    H5Pset_chunk(props, 1, &chunk);
    // Level 1: most of gzip's size reduction on counts at a fraction of level 4's time.
    H5Pset_shuffle(props);
    H5Pset_deflate(props, 1);
    H5Id d(H5Dcreate2(g, name, type, space, H5P_DEFAULT, props, H5P_DEFAULT));
    if (!d.valid()) throw Error(path_, std::string("X/") + name, "cannot create dataset");
    return d;
  };
  H5Id data = make_extendible("data", H5T_IEEE_F32LE);
  H5Id indices = make_extendible("indices", H5T_STD_I32LE);
  H5Id indptr = make_extendible("indptr", H5T_STD_I64LE);
  auto append = [&](hid_t d, hid_t mem, const void* values, hsize_t count, hsize_t& size,
                    const char* name) {
    if (count == 0) return;
    hsize_t new_size = size + count;
    H5Dset_extent(d, &new_size);
    H5Id space(H5Dget_space(d));
    H5Sselect_hyperslab(space, H5S_SELECT_SET, &size, nullptr, &count, nullptr);
    H5Id memspace(H5Screate_simple(1, &count, nullptr));
    if (H5Dwrite(d, mem, memspace, space, H5P_DEFAULT, values) < 0)
      throw Error(path_, std::string("X/") + name, "write failed (disk full?)");
    size = new_size;
  };
  hsize_t nnz = 0, ptr_size = 0;
  std::int64_t rows = 0;
  std::int64_t zero = 0;
  append(indptr, H5T_NATIVE_INT64, &zero, 1, ptr_size, "indptr");
  CsrMatrix chunk;
  while (next(chunk)) {
    std::vector<std::int64_t> offsets(chunk.indptr.begin() + 1, chunk.indptr.end());
    for (auto& o : offsets) o += static_cast<std::int64_t>(nnz);
    append(data, H5T_NATIVE_FLOAT, chunk.data.data(), chunk.data.size(), nnz, "data");
    hsize_t idx_size = nnz - chunk.data.size();
    append(indices, H5T_NATIVE_INT32, chunk.indices.data(), chunk.indices.size(), idx_size,
           "indices");
    append(indptr, H5T_NATIVE_INT64, offsets.data(), offsets.size(), ptr_size, "indptr");
    rows += chunk.n_rows;
  }
  if (rows != n_rows)
    throw Error(
        path_, "X",
        "chunks delivered " + std::to_string(rows) + " rows, expected " + std::to_string(n_rows));
}

void H5adWriter::write_dataframe(const std::string& name, const DataFrame& df) {
  H5Id g = create_group(file_, name, "dataframe", "0.2.0");
  set_string_attr(g, "_index", "_index");
  std::vector<std::string> order;
  for (auto& c : df.columns) order.push_back(c.name);
  set_string_array_attr(g, "column-order", order);
  write_strings(g, "_index", df.index);
  for (auto& c : df.columns) {
    write_column(g, c);
    if (auto* cat = std::get_if<Categorical>(&c.values); cat && !cat->colors.empty())
      write_uns_strings(c.name + "_colors", cat->colors);
  }
}

void H5adWriter::write_obsm(const std::string& key, const DenseMatrix& m) {
  H5Id g(group("obsm"));
  hsize_t dims[2] = {static_cast<hsize_t>(m.rows), static_cast<hsize_t>(m.cols)};
  write_array(g, key, m.values.data(), 2, dims);
}

void H5adWriter::write_csr_group(hid_t parent, const std::string& name, const CsrMatrix& m) {
  H5Id g = create_group(parent, name, "csr_matrix", "0.1.0");
  std::int64_t shape[2] = {m.n_rows, m.n_cols};
  hsize_t two = 2;
  H5Id space(H5Screate_simple(1, &two, nullptr));
  H5Id attr(H5Acreate2(g, "shape", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT));
  H5Awrite(attr, H5T_NATIVE_INT64, shape);
  write_vector(g, "data", m.data);
  write_vector(g, "indices", m.indices);
  write_vector(g, "indptr", m.indptr);
}

void H5adWriter::write_obsp(const std::string& key, const CsrMatrix& m) {
  H5Id g(group("obsp"));
  write_csr_group(g, key, m);
}

void H5adWriter::write_uns_strings(const std::string& key, const std::vector<std::string>& v) {
  H5Id g(group("uns"));
  write_strings(g, key, v);
}

void H5adWriter::write_uns_number(const std::string& key, double value) {
  H5Id g(group("uns"));
  H5Id space(H5Screate(H5S_SCALAR));
  H5Id d(H5Dcreate2(g, key.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value);
  set_encoding(d, "numeric-scalar", "0.2.0");
}

void H5adWriter::write_uns_dict(const std::string& path) {
  H5Id g(group("uns"));
  create_group(g, path, "dict", "0.1.0");
}

void H5adWriter::write_uns_string(const std::string& path, const std::string& value) {
  H5Id g(group("uns"));
  H5Id type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  H5Id space(H5Screate(H5S_SCALAR));
  H5Id d(H5Dcreate2(g, path.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!d.valid()) throw Error(path_, "uns/" + path, "cannot create dataset");
  const char* p = value.c_str();
  H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &p);
  set_encoding(d, "string", "0.2.0");
}

void H5adWriter::write_uns_bool(const std::string& path, bool value) {
  H5Id g(group("uns"));
  H5Id t = bool_type();
  H5Id space(H5Screate(H5S_SCALAR));
  H5Id d(H5Dcreate2(g, path.c_str(), t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!d.valid()) throw Error(path_, "uns/" + path, "cannot create dataset");
  std::int8_t v = value ? 1 : 0;
  H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
  set_encoding(d, "numeric-scalar", "0.2.0");
}

namespace {

// Writes a compound dataset whose members all have `member` type, laid out back to back.
void write_compound(hid_t parent, const std::string& file, const std::string& path,
                    const std::vector<std::string>& fields, hid_t member, std::size_t member_size,
                    std::size_t rows, const void* buffer) {
  H5Id type(H5Tcreate(H5T_COMPOUND, member_size * std::max<std::size_t>(1, fields.size())));
  for (std::size_t f = 0; f < fields.size(); ++f)
    if (H5Tinsert(type, fields[f].c_str(), f * member_size, member) < 0)
      throw Error(file, path, "bad field name '" + fields[f] + "'");
  hsize_t n = rows;
  H5Id space(H5Screate_simple(1, &n, nullptr));
  H5Id d(H5Dcreate2(parent, path.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!d.valid()) throw Error(file, path, "cannot create dataset");
  if (rows > 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer) < 0)
    throw Error(file, path, "write failed");
  set_encoding(d, "rec-array", "0.2.0");
}

}  // namespace

void H5adWriter::write_uns_recarray(const std::string& path, const std::vector<std::string>& fields,
                                    const std::vector<std::vector<std::string>>& columns) {
  H5Id g(group("uns"));
  const std::size_t rows = columns.empty() ? 0 : columns[0].size();
  std::vector<const char*> buffer(rows * fields.size());
  for (std::size_t f = 0; f < fields.size(); ++f) {
    if (columns[f].size() != rows) throw Error(path_, "uns/" + path, "ragged columns");
    for (std::size_t r = 0; r < rows; ++r) buffer[r * fields.size() + f] = columns[f][r].c_str();
  }
  H5Id str(H5Tcopy(H5T_C_S1));
  H5Tset_size(str, H5T_VARIABLE);
  H5Tset_cset(str, H5T_CSET_UTF8);
  write_compound(g, path_, path, fields, str, sizeof(char*), rows, buffer.data());
}

void H5adWriter::write_uns_recarray(const std::string& path, const std::vector<std::string>& fields,
                                    const std::vector<std::vector<double>>& columns,
                                    bool single_precision) {
  H5Id g(group("uns"));
  const std::size_t rows = columns.empty() ? 0 : columns[0].size();
  for (const auto& c : columns)
    if (c.size() != rows) throw Error(path_, "uns/" + path, "ragged columns");
  if (single_precision) {
    std::vector<float> buffer(rows * fields.size());
    for (std::size_t f = 0; f < fields.size(); ++f)
      for (std::size_t r = 0; r < rows; ++r)
        buffer[r * fields.size() + f] = static_cast<float>(columns[f][r]);
    write_compound(g, path_, path, fields, H5T_NATIVE_FLOAT, sizeof(float), rows, buffer.data());
  } else {
    std::vector<double> buffer(rows * fields.size());
    for (std::size_t f = 0; f < fields.size(); ++f)
      for (std::size_t r = 0; r < rows; ++r) buffer[r * fields.size() + f] = columns[f][r];
    write_compound(g, path_, path, fields, H5T_NATIVE_DOUBLE, sizeof(double), rows, buffer.data());
  }
}

void H5adWriter::commit() {
  if (H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) throw Error(path_, "", "flush failed");
  file_.reset();
  std::error_code ec;
  std::filesystem::rename(tmp_path_, path_, ec);
  if (ec) throw Error(path_, "", "cannot rename temporary file: " + ec.message());
  committed_ = true;
}

}  // namespace orrery::io
