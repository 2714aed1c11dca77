#include "h5ad_reader.hpp"

#include "h5ad_writer.hpp"

#include <unistd.h>
#include <algorithm>
#include <cmath>

#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>

namespace orrery::io {

void silence_hdf5_errors() {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

namespace {

// Reads `n` strings of HDF5 string type `type` (variable- or fixed-length) through `read`, which
// fills a buffer in the given memory type (an H5Aread or H5Dread). False when the read fails.
bool read_strings(hid_t type, std::size_t n, const std::function<herr_t(hid_t, void*)>& read,
                  std::vector<std::string>& out) {
  out.assign(n, {});
  if (n == 0) return true;
  if (H5Tis_variable_str(type) > 0) {
    H5Id mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem, H5T_VARIABLE);
    H5Tset_cset(mem, H5Tget_cset(type));
    std::vector<char*> ptrs(n, nullptr);
    if (read(mem, ptrs.data()) < 0) return false;
    for (std::size_t i = 0; i < n; ++i) out[i] = ptrs[i] ? ptrs[i] : "";
    const hsize_t count = n;
    H5Id space(H5Screate_simple(1, &count, nullptr));
    H5Dvlen_reclaim(mem, space, H5P_DEFAULT, ptrs.data());
    return true;
  }
  const std::size_t size = H5Tget_size(type);
  std::vector<char> buf(n * size);
  if (read(type, buf.data()) < 0) return false;
  for (std::size_t i = 0; i < n; ++i)
    out[i].assign(buf.data() + i * size, strnlen(buf.data() + i * size, size));
  return true;
}

// A string attribute (scalar or array); empty when absent or not strings.
std::vector<std::string> string_attr_values(hid_t obj, const char* name) {
  std::vector<std::string> out;
  if (H5Aexists(obj, name) <= 0) return out;
  H5Id attr(H5Aopen(obj, name, H5P_DEFAULT));
  if (!attr.valid()) return out;
  H5Id type(H5Aget_type(attr));
  H5Id space(H5Aget_space(attr));
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  if (n <= 0 || H5Tget_class(type) != H5T_STRING) return out;
  if (!read_strings(
          type, static_cast<std::size_t>(n),
          [&](hid_t mem, void* buf) { return H5Aread(attr, mem, buf); }, out))
    out.clear();
  return out;
}

std::string read_string_attr(hid_t obj, const char* name) {
  auto values = string_attr_values(obj, name);
  return values.empty() ? std::string() : values.front();
}

std::vector<hsize_t> dataset_dims(hid_t dset) {
  H5Id space(H5Dget_space(dset));
  int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(std::max(rank, 0));
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

// Reads elements [begin, end) of a 1-D dataset converted to the memory type `mem`.
template <typename T>
void read_range(hid_t dset, hid_t mem, hsize_t begin, hsize_t end, T* out, const std::string& file,
                const std::string& element) {
  if (end <= begin) return;
  H5Id space(H5Dget_space(dset));
  hsize_t count = end - begin;
  if (H5Sselect_hyperslab(space, H5S_SELECT_SET, &begin, nullptr, &count, nullptr) < 0)
    throw Error(file, element, "range selection failed");
  H5Id memspace(H5Screate_simple(1, &count, nullptr));
  if (H5Dread(dset, mem, memspace, space, H5P_DEFAULT, out) < 0)
    throw Error(file, element, "read failed (corrupt, truncated, or unreadable filter)");
}

class CsrReader final : public RowChunkReader {
 public:
  CsrReader(std::string file, H5Id group, std::int64_t rows, std::int64_t cols)
      : file_(std::move(file)), group_(std::move(group)), rows_(rows), cols_(cols) {
    data_ = open("data");
    indices_ = open("indices");
    indptr_ = open("indptr");
    auto ip = dataset_dims(indptr_);
    if (ip.size() != 1 || static_cast<std::int64_t>(ip[0]) != rows_ + 1)
      throw Error(file_, "X/indptr", "length must be n_obs + 1 = " + std::to_string(rows_ + 1));
    auto nd = dataset_dims(data_), ni = dataset_dims(indices_);
    if (nd.size() != 1 || ni.size() != 1 || nd[0] != ni[0])
      throw Error(file_, "X/data", "data and indices lengths differ");
    nnz_ = static_cast<std::int64_t>(nd[0]);
    std::int64_t last = 0;
    read_range(indptr_.get(), H5T_NATIVE_INT64, rows_, rows_ + 1, &last, file_, "X/indptr");
    if (last != nnz_)
      throw Error(file_, "X/indptr",
                  "last entry " + std::to_string(last) + " != nnz " + std::to_string(nnz_));
  }
  std::int64_t n_rows() const override { return rows_; }
  std::int64_t n_cols() const override { return cols_; }
  std::int64_t nnz() const override { return nnz_; }

  CsrMatrix read_rows(std::int64_t r0, std::int64_t r1) override {
    if (r0 < 0 || r1 > rows_ || r0 > r1) throw Error(file_, "X", "row range out of bounds");
    CsrMatrix out;
    out.n_rows = r1 - r0;
    out.n_cols = cols_;
    out.indptr.resize(out.n_rows + 1);
    read_range(indptr_.get(), H5T_NATIVE_INT64, r0, r1 + 1, out.indptr.data(), file_, "X/indptr");
    const std::int64_t b = out.indptr.front(), e = out.indptr.back();
    for (std::int64_t r = 0; r < out.n_rows; ++r)
      if (out.indptr[r + 1] < out.indptr[r])
        throw Error(file_, "X/indptr", "not monotone at row " + std::to_string(r0 + r));
    if (b < 0 || e > nnz_) throw Error(file_, "X/indptr", "offset outside [0, nnz]");
    // Never allocate what a corrupt indptr declares: rows average at most one value per column.
    constexpr std::int64_t kMaxChunkEntries = std::int64_t{1} << 32;
    if (e - b > kMaxChunkEntries || e - b > (r1 - r0) * std::max<std::int64_t>(cols_, 1))
      throw Error(file_, "X/indptr",
                  "rows " + std::to_string(r0) + ".." + std::to_string(r1) + " declare " +
                      std::to_string(e - b) + " entries, more than rows x columns");
    for (auto& p : out.indptr) p -= b;
    out.indices.resize(e - b);
    out.data.resize(e - b);
    read_range(indices_.get(), H5T_NATIVE_INT32, b, e, out.indices.data(), file_, "X/indices");
    read_range(data_.get(), H5T_NATIVE_FLOAT, b, e, out.data.data(), file_, "X/data");
    for (auto i : out.indices)
      if (i < 0 || i >= cols_)
        throw Error(file_, "X/indices", "column index " + std::to_string(i) + " out of range");
    for (auto v : out.data)
      if (!std::isfinite(v)) throw Error(file_, "X/data", "NaN or Inf value");
    sort_rows(out, file_, "X/indices");
    return out;
  }

 private:
  H5Id open(const char* name) {
    H5Id d(H5Dopen2(group_, name, H5P_DEFAULT));
    if (!d.valid()) throw Error(file_, std::string("X/") + name, "missing dataset");
    return d;
  }
  std::string file_;
  H5Id group_, data_, indices_, indptr_;
  std::int64_t rows_, cols_, nnz_ = 0;
};

class DenseReader final : public RowChunkReader {
 public:
  DenseReader(std::string file, H5Id dset, std::int64_t rows, std::int64_t cols)
      : file_(std::move(file)), dset_(std::move(dset)), rows_(rows), cols_(cols) {}
  std::int64_t n_rows() const override { return rows_; }
  std::int64_t n_cols() const override { return cols_; }
  // Unknown without a pass; treat as dense for chunk sizing.
  std::int64_t nnz() const override { return rows_ * cols_; }
  CsrMatrix read_rows(std::int64_t r0, std::int64_t r1) override {
    if (r0 < 0 || r1 > rows_ || r0 > r1) throw Error(file_, "X", "row range out of bounds");
    std::vector<float> block((r1 - r0) * cols_);
    if (r1 > r0) {
      H5Id space(H5Dget_space(dset_));
      hsize_t start[2] = {static_cast<hsize_t>(r0), 0};
      hsize_t count[2] = {static_cast<hsize_t>(r1 - r0), static_cast<hsize_t>(cols_)};
      H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
      H5Id mem(H5Screate_simple(2, count, nullptr));
      if (H5Dread(dset_, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, block.data()) < 0)
        throw Error(file_, "X", "read failed (corrupt or truncated?)");
    }
    CsrMatrix out;
    out.n_rows = r1 - r0;
    out.n_cols = cols_;
    out.indptr.assign(1, 0);
    for (std::int64_t r = 0; r < out.n_rows; ++r) {
      for (std::int64_t c = 0; c < cols_; ++c) {
        float v = block[r * cols_ + c];
        if (!std::isfinite(v)) throw Error(file_, "X", "NaN or Inf value");
        if (v != 0.0f) {
          out.indices.push_back(static_cast<GeneIndex>(c));
          out.data.push_back(v);
        }
      }
      out.indptr.push_back(out.nnz());
    }
    return out;
  }

 private:
  std::string file_;
  H5Id dset_;
  std::int64_t rows_, cols_;
};

std::vector<std::string> member_names(hid_t group) {
  std::vector<std::string> names;
  H5G_info_t info;
  if (H5Gget_info(group, &info) < 0) return names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    char name[1024] = {};
    if (H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                           H5P_DEFAULT) > 0)
      names.emplace_back(name);
  }
  return names;
}

template <typename T>
std::vector<T> read_numeric(hid_t parent, const std::string& name, hid_t mem,
                            const std::string& file, std::size_t expected) {
  H5Id d(H5Dopen2(parent, name.c_str(), H5P_DEFAULT));
  if (!d.valid()) throw Error(file, name, "missing dataset");
  auto dims = dataset_dims(d);
  if (dims.size() != 1 || dims[0] != expected)
    throw Error(file, name,
                "length " + (dims.empty() ? std::string("?") : std::to_string(dims[0])) +
                    " does not match the index (" + std::to_string(expected) + ")");
  std::vector<T> out(expected);
  if (expected > 0 && H5Dread(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    throw Error(file, name, "read failed");
  return out;
}

// One dataframe column in any anndata encoding: numeric, bool, string-array, categorical,
// nullable-integer / nullable-boolean (missing as NaN).
Column read_column(hid_t frame, const std::string& name, const std::string& where, std::size_t n) {
  const std::string element = where + "/" + name;
  H5Id obj(H5Oopen(frame, name.c_str(), H5P_DEFAULT));
  if (!obj.valid()) throw Error(where, name, "listed in column-order but missing");
  if (H5Iget_type(obj) == H5I_GROUP) {
    const std::string enc = read_string_attr(obj, "encoding-type");
    if (enc == "categorical") {
      Categorical cat;
      cat.codes = read_numeric<std::int32_t>(obj, "codes", H5T_NATIVE_INT32, element, n);
      H5Id cats(H5Dopen2(obj, "categories", H5P_DEFAULT));
      if (!cats.valid()) throw Error(where, name + "/categories", "missing");
      H5Id type(H5Dget_type(cats));
      if (H5Tget_class(type) == H5T_STRING) {
        cat.categories = read_string_dataset(obj, "categories", element);
      } else {
        auto dims = dataset_dims(cats);
        auto values = read_numeric<double>(obj, "categories", H5T_NATIVE_DOUBLE, element,
                                           dims.empty() ? 0 : dims[0]);
        for (double v : values) {
          std::string s = std::to_string(v);
          if (v == std::floor(v) && std::fabs(v) < 1e15)
            s = std::to_string(static_cast<long long>(v));
          cat.categories.push_back(s);
        }
      }
      for (auto c : cat.codes)
        if (c < -1 || c >= static_cast<std::int32_t>(cat.categories.size()))
          throw Error(where, name + "/codes", "code " + std::to_string(c) + " out of range");
      return {name, std::move(cat)};
    }
    if (enc == "nullable-integer" || enc == "nullable-boolean") {
      auto values = read_numeric<double>(obj, "values", H5T_NATIVE_DOUBLE, element, n);
      auto mask = read_numeric<std::int8_t>(obj, "mask", H5T_NATIVE_INT8, element, n);
      for (std::size_t i = 0; i < n; ++i)
        if (mask[i]) values[i] = std::numeric_limits<double>::quiet_NaN();
      return {name, std::move(values)};
    }
    throw Error(where, name, "unknown column encoding '" + enc + "'");
  }
  H5Id d(H5Dopen2(frame, name.c_str(), H5P_DEFAULT));
  H5Id type(H5Dget_type(d));
  switch (H5Tget_class(type)) {
    case H5T_STRING: {
      auto v = read_string_dataset(frame, name, where);
      if (v.size() != n) throw Error(where, name, "length does not match the index");
      return {name, std::move(v)};
    }
    case H5T_ENUM: {  // h5py's bool
      auto raw = read_numeric<std::int8_t>(frame, name, H5T_NATIVE_INT8, where, n);
      return {name, std::vector<bool>(raw.begin(), raw.end())};
    }
    case H5T_INTEGER:
      return {name, read_numeric<std::int64_t>(frame, name, H5T_NATIVE_INT64, where, n)};
    case H5T_FLOAT:
      return {name, read_numeric<double>(frame, name, H5T_NATIVE_DOUBLE, where, n)};
    default:
      throw Error(where, name, "unsupported column type");
  }
}

DataFrame read_dataframe(hid_t file_id, const char* frame, const std::string& file) {
  H5Id group(H5Gopen2(file_id, frame, H5P_DEFAULT));
  if (!group.valid()) throw Error(file, frame, "missing dataframe group");
  const std::string enc = read_string_attr(group, "encoding-type");
  if (!enc.empty() && enc != "dataframe")
    throw Error(file, frame, "unknown dataframe encoding '" + enc + "'");
  std::string index_name = read_string_attr(group, "_index");
  if (index_name.empty()) index_name = "_index";
  const std::string where = file + ": " + frame;
  DataFrame df;
  df.index = read_string_dataset(group, index_name, where);
  std::vector<std::string> order = string_attr_values(group, "column-order");
  if (H5Aexists(group, "column-order") <= 0)  // pre-0.7 stores: every member but the index
    for (auto& m : member_names(group))
      if (m != index_name && m != "__categories") order.push_back(m);
  for (const auto& name : order)
    df.columns.push_back(read_column(group, name, where, df.index.size()));
  return df;
}

std::vector<std::string> group_keys(hid_t file_id, const char* name) {
  if (H5Lexists(file_id, name, H5P_DEFAULT) <= 0) return {};
  H5Id g(H5Gopen2(file_id, name, H5P_DEFAULT));
  return g.valid() ? member_names(g) : std::vector<std::string>{};
}

}  // namespace

std::vector<std::string> read_string_dataset(hid_t parent, const std::string& name,
                                             const std::string& file) {
  H5Id dset(H5Dopen2(parent, name.c_str(), H5P_DEFAULT));
  if (!dset.valid()) throw Error(file, name, "missing dataset");
  H5Id type(H5Dget_type(dset));
  if (H5Tget_class(type) != H5T_STRING) throw Error(file, name, "expected a string dataset");
  auto dims = dataset_dims(dset);
  if (dims.size() != 1) throw Error(file, name, "expected a 1-D string dataset");
  const std::size_t n = dims[0];
  const std::size_t size = H5Tget_size(type);
  if (H5Tis_variable_str(type) <= 0 && (size == 0 || n > (std::size_t{1} << 34) / size))
    throw Error(file, name, "absurd size");
  std::vector<std::string> out;
  if (!read_strings(
          type, n,
          [&](hid_t mem, void* buf) {
            return H5Dread(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
          },
          out))
    throw Error(file, name, "read failed");
  return out;
}

namespace {

// Cell Ranger's HDF5: a group (v3 "matrix", v2 one per genome) holding a genes x cells CSC
// matrix, which is cells x genes CSR, plus barcodes and gene ids/names.
Store open_10x_h5(const std::string& path, hid_t file) {
  std::string group_name = "matrix";
  std::string ids_path = "features/id", names_path = "features/name";
  if (H5Lexists(file, "matrix", H5P_DEFAULT) <= 0) {
    // v2: the first group is the genome.
    H5G_info_t info;
    H5Gget_info(file, &info);
    if (info.nlinks == 0) throw Error(path, "", "empty HDF5 file");
    char name[256] = {};
    H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, 0, name, sizeof name, H5P_DEFAULT);
    group_name = name;
    ids_path = "genes";
    names_path = "gene_names";
  }
  H5Id group(H5Gopen2(file, group_name.c_str(), H5P_DEFAULT));
  if (!group.valid()) throw Error(path, group_name, "cannot open 10x matrix group");
  std::int64_t shape[2] = {0, 0};
  {
    H5Id d(H5Dopen2(group, "shape", H5P_DEFAULT));
    if (!d.valid() || H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, shape) < 0)
      throw Error(path, group_name + "/shape", "missing or unreadable");
  }
  Store store;
  store.path = path;
  store.format = "10x-h5";
  store.x_encoding = "10x csc (genes x cells), read as cells x genes CSR";
  const std::string where = path + ": " + group_name;
  store.obs.index = read_string_dataset(group, "barcodes", where);
  auto ids = read_string_dataset(group, ids_path, where);
  auto names = read_string_dataset(group, names_path, where);
  if (static_cast<std::int64_t>(store.obs.index.size()) != shape[1] ||
      static_cast<std::int64_t>(names.size()) != shape[0] || ids.size() != names.size())
    throw Error(path, group_name, "barcodes/features do not match shape");
  make_unique(names);
  store.var.index = std::move(names);
  store.var.columns.push_back({"gene_ids", std::move(ids)});
  store.X = std::make_unique<CsrReader>(path, std::move(group), shape[1], shape[0]);
  return store;
}

}  // namespace

// A CSC X (genes as the compressed axis) cannot be sliced by cell. It is transposed once into a
// temporary CSR store, cell block by cell block within the memory budget: each block is one pass
// over the CSC data. The temporary file is unlinked as soon as it is open.
std::unique_ptr<RowChunkReader> transpose_csc(const std::string& path, H5Id group,
                                              std::int64_t n_obs, std::int64_t n_vars,
                                              const OpenOptions& options) {
  CsrReader by_gene(path, std::move(group), n_vars, n_obs);  // rows = genes, cols = cells
  auto report = [&](double f) {
    if (options.progress) options.progress("transposing CSC X to a temporary CSR store", f);
  };
  const std::int64_t gene_step = by_gene.rows_for_budget(std::size_t{256} << 20);
  std::vector<std::int64_t> row_nnz(n_obs, 0);
  for (std::int64_t g0 = 0; g0 < n_vars; g0 += gene_step) {
    CsrMatrix c = by_gene.read_rows(g0, std::min(n_vars, g0 + gene_step));
    for (auto cell : c.indices) ++row_nnz[cell];
  }
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() /
                       ("orrery-csr-" + std::to_string(::getpid()) + "-" +
                        std::to_string(reinterpret_cast<std::uintptr_t>(&row_nnz)) + ".h5");
  {
    H5adWriter w(tmp.string());
    std::int64_t c0 = 0;
    const std::size_t budget = std::max<std::size_t>(options.transpose_bytes, 8);
    w.write_X(n_obs, n_vars, [&](CsrMatrix& block) {
      if (c0 >= n_obs) return false;
      std::int64_t c1 = c0, bytes = 0;
      while (c1 < n_obs &&
             (c1 == c0 || bytes + row_nnz[c1] * 8 <= static_cast<std::int64_t>(budget)))
        bytes += row_nnz[c1++] * 8;
      block = CsrMatrix{};
      block.n_rows = c1 - c0;
      block.n_cols = n_vars;
      block.indptr.assign(block.n_rows + 1, 0);
      for (std::int64_t i = c0; i < c1; ++i)
        block.indptr[i - c0 + 1] = block.indptr[i - c0] + row_nnz[i];
      block.indices.resize(block.indptr.back());
      block.data.resize(block.indptr.back());
      std::vector<std::int64_t> fill(block.indptr.begin(), block.indptr.end() - 1);
      for (std::int64_t g0 = 0; g0 < n_vars; g0 += gene_step) {
        CsrMatrix c = by_gene.read_rows(g0, std::min(n_vars, g0 + gene_step));
        for (std::int64_t r = 0; r < c.n_rows; ++r)
          for (auto k = c.indptr[r]; k < c.indptr[r + 1]; ++k) {
            const auto cell = c.indices[k];
            if (cell < c0 || cell >= c1) continue;
            const auto at = fill[cell - c0]++;
            block.indices[at] = static_cast<GeneIndex>(g0 + r);
            block.data[at] = c.data[k];
          }
      }
      report(static_cast<double>(c1) / static_cast<double>(n_obs));
      c0 = c1;
      return true;
    });
    w.write_obs(DataFrame{});
    w.write_var(DataFrame{});
    w.commit();
  }
  H5Id file(H5Fopen(tmp.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  std::error_code ec;
  fs::remove(tmp, ec);  // the open handle keeps the data until the reader closes
  if (!file.valid()) throw Error(path, "X", "cannot reopen the transposed temporary store");
  H5Id x(H5Gopen2(file, "X", H5P_DEFAULT));
  return std::make_unique<CsrReader>(path, std::move(x), n_obs, n_vars);
}

Store open_h5ad(const std::string& path, const OpenOptions& options) {
  silence_hdf5_errors();
  H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file.valid()) throw Error(path, "", "not a readable HDF5 file (truncated or corrupt?)");
  if (H5Lexists(file, "obs", H5P_DEFAULT) <= 0 && H5Lexists(file, "X", H5P_DEFAULT) <= 0)
    return open_10x_h5(path, file);
  Store store;
  store.path = path;
  store.format = "h5ad";
  store.obs = read_dataframe(file, "obs", path);
  store.var = read_dataframe(file, "var", path);
  store.obsm_keys = group_keys(file, "obsm");
  store.layer_keys = group_keys(file, "layers");
  store.uns_keys = group_keys(file, "uns");
  const auto n_obs = static_cast<std::int64_t>(store.obs.index.size());
  const auto n_vars = static_cast<std::int64_t>(store.var.index.size());

  if (H5Lexists(file, "X", H5P_DEFAULT) <= 0) throw Error(path, "X", "missing");
  H5Id x_obj(H5Oopen(file, "X", H5P_DEFAULT));
  if (!x_obj.valid()) throw Error(path, "X", "cannot open");
  if (H5Iget_type(x_obj) == H5I_GROUP) {
    H5Id group(H5Gopen2(file, "X", H5P_DEFAULT));
    std::string enc = read_string_attr(group, "encoding-type");
    if (enc.empty()) enc = read_string_attr(group, "h5sparse_format") + "_matrix";
    if (enc != "csr_matrix" && enc != "csc_matrix")
      throw Error(path, "X", "unknown sparse encoding '" + enc + "'");
    store.x_encoding = enc;
    std::int64_t shape[2] = {0, 0};
    if (H5Aexists(group, "shape") > 0) {
      H5Id attr(H5Aopen(group, "shape", H5P_DEFAULT));
      H5Aread(attr, H5T_NATIVE_INT64, shape);
    }
    if (shape[0] != n_obs || shape[1] != n_vars)
      throw Error(path, "X",
                  "shape (" + std::to_string(shape[0]) + ", " + std::to_string(shape[1]) +
                      ") does not match obs x var");
    if (enc == "csc_matrix") {
      store.X = transpose_csc(path, std::move(group), n_obs, n_vars, options);
      store.x_encoding = "csc_matrix (streamed from a temporary CSR transpose)";
    } else {
      store.X = std::make_unique<CsrReader>(path, std::move(group), n_obs, n_vars);
    }
  } else {
    H5Id dset(H5Dopen2(file, "X", H5P_DEFAULT));
    auto dims = dataset_dims(dset);
    if (dims.size() != 2 || static_cast<std::int64_t>(dims[0]) != n_obs ||
        static_cast<std::int64_t>(dims[1]) != n_vars)
      throw Error(path, "X", "dense X shape does not match obs x var");
    store.X = std::make_unique<DenseReader>(path, std::move(dset), n_obs, n_vars);
    store.x_encoding = "array (dense)";
  }
  return store;
}

}  // namespace orrery::io
