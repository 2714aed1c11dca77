#include "anndata_writer.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <type_traits>

#include "error.hpp"

namespace orrery::io {

namespace {

namespace fs = std::filesystem;

Attrs encoding(const char* type, const char* version) {
  return Attrs{{"encoding-type", type}, {"encoding-version", version}};
}

template <typename T>
void write_vector(TreeWriter& t, const std::string& path, const std::vector<T>& v) {
  t.array(path, num_type_of<T>(), v.data(), {static_cast<std::int64_t>(v.size())},
          encoding("array", "0.2.0"));
}

// anndata's nullable-integer / nullable-boolean: values (int64 or bool; 0 where missing) and a
// mask (true where missing), from doubles with NaN where missing.
void write_nullable(TreeWriter& t, const std::string& path, const Column& c) {
  const auto* v = std::get_if<std::vector<double>>(&c.values);
  if (!v) throw Error("", path, "a nullable column must hold doubles (NaN where missing)");
  const auto n = static_cast<std::int64_t>(v->size());
  std::vector<std::int8_t> mask(v->size());
  for (std::size_t i = 0; i < v->size(); ++i) mask[i] = std::isnan((*v)[i]);
  t.group(path, encoding(c.nullable.c_str(), "0.1.0"));
  if (c.nullable == "nullable-boolean") {
    std::vector<std::int8_t> values(v->size());
    for (std::size_t i = 0; i < v->size(); ++i) values[i] = !mask[i] && (*v)[i] != 0.0;
    t.array(path + "/values", NumType::Bool, values.data(), {n}, encoding("array", "0.2.0"));
  } else {
    // Back at the width they were read with (as widened on reading: 1, 4 or 8 bytes), clamped
    // to it (a value beyond int64 could only come from an unsigned 64-bit column).
    const int bytes = c.nullable_bytes == 1 || c.nullable_bytes == 4 ? c.nullable_bytes : 8;
    const double lo = bytes == 1 ? -128.0 : (bytes == 4 ? -2147483648.0 : -9223372036854775808.0);
    const double hi = bytes == 1 ? 127.0 : (bytes == 4 ? 2147483647.0 : 9223372036854774784.0);
    std::vector<std::int64_t> wide(v->size());
    for (std::size_t i = 0; i < v->size(); ++i)
      wide[i] = mask[i] ? 0 : static_cast<std::int64_t>(std::clamp((*v)[i], lo, hi));
    if (bytes == 8) {
      t.array(path + "/values", NumType::I64, wide.data(), {n}, encoding("array", "0.2.0"));
    } else if (bytes == 4) {
      std::vector<std::int32_t> narrow(wide.begin(), wide.end());
      t.array(path + "/values", NumType::I32, narrow.data(), {n}, encoding("array", "0.2.0"));
    } else {
      std::vector<std::int8_t> narrow(wide.begin(), wide.end());
      t.array(path + "/values", NumType::I8, narrow.data(), {n}, encoding("array", "0.2.0"));
    }
  }
  t.array(path + "/mask", NumType::Bool, mask.data(), {n}, encoding("array", "0.2.0"));
}

void write_column(TreeWriter& t, const std::string& path, const Column& c) {
  if (c.nullable == "nullable-integer" || c.nullable == "nullable-boolean")
    return write_nullable(t, path, c);
  std::visit(
      [&](const auto& values) {
        using V = std::decay_t<decltype(values)>;
        if constexpr (std::is_same_v<V, std::vector<std::string>>) {
          t.strings(path, values, false, encoding("string-array", "0.2.0"));
        } else if constexpr (std::is_same_v<V, std::vector<bool>>) {
          std::vector<std::int8_t> bytes(values.begin(), values.end());
          t.array(path, NumType::Bool, bytes.data(), {static_cast<std::int64_t>(bytes.size())},
                  encoding("array", "0.2.0"));
        } else if constexpr (std::is_same_v<V, Categorical>) {
          Attrs attrs = encoding("categorical", "0.2.0");
          attrs["ordered"] = false;
          t.group(path, attrs);
          t.strings(path + "/categories", values.categories, false,
                    encoding("string-array", "0.2.0"));
          write_vector(t, path + "/codes", values.codes);
        } else {
          write_vector(t, path, values);
        }
      },
      c.values);
}

void remove_path(const std::string& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
}

}  // namespace

bool is_zarr_path(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (p.size() < 5) return false;
  std::string ext = p.substr(p.size() - 5);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".zarr";
}

AnnDataWriter::AnnDataWriter(std::string path, int zarr_format) : path_(std::move(path)) {
  while (path_.size() > 1 && path_.back() == '/') path_.pop_back();
  zarr_ = is_zarr_path(path_);
  tmp_path_ = path_ + ".tmp-" + std::to_string(::getpid());
  remove_path(tmp_path_);
  tree_ = zarr_ ? make_zarr_writer(tmp_path_, zarr_format) : make_hdf5_writer(tmp_path_);
  tree_->group("", encoding("anndata", "0.1.0"));
  for (const char* g : {"obsm", "varm", "obsp", "varp", "layers", "uns"})
    tree_->group(g, encoding("dict", "0.1.0"));
}

AnnDataWriter::~AnnDataWriter() {
  if (!committed_) {
    tree_.reset();
    remove_path(tmp_path_);
  }
}

void AnnDataWriter::write_X(std::int64_t n_rows, std::int64_t n_cols,
                            const std::function<bool(CsrMatrix&)>& next) {
  write_streamed_csr("X", n_rows, n_cols, next);
}

void AnnDataWriter::write_layer(const std::string& key, std::int64_t n_rows, std::int64_t n_cols,
                                const std::function<bool(CsrMatrix&)>& next) {
  write_streamed_csr("layers/" + key, n_rows, n_cols, next);
}

void AnnDataWriter::write_raw(const Element& input_raw, std::int64_t n_rows, std::int64_t n_cols,
                              const std::function<bool(CsrMatrix&)>& next,
                              std::vector<std::string>& skipped) {
  tree_->group("raw", input_raw.attrs());
  write_streamed_csr("raw/X", n_rows, n_cols, next);
  for (const char* name : {"var", "varm"})
    if (auto e = input_raw.open(name)) copy(*e, std::string("raw/") + name, skipped);
}

void AnnDataWriter::write_streamed_csr(const std::string& path, std::int64_t n_rows,
                                       std::int64_t n_cols,
                                       const std::function<bool(CsrMatrix&)>& next) {
  Attrs attrs = encoding("csr_matrix", "0.1.0");
  attrs["shape"] = {n_rows, n_cols};
  tree_->group(path, attrs);
  auto data = tree_->appender(path + "/data", NumType::F32, Attrs::object());
  auto indices = tree_->appender(path + "/indices", NumType::I32, Attrs::object());
  auto indptr = tree_->appender(path + "/indptr", NumType::I64, Attrs::object());
  std::int64_t nnz = 0, rows = 0;
  const std::int64_t zero = 0;
  indptr->append(&zero, 1);
  CsrMatrix chunk;
  while (next(chunk)) {
    std::vector<std::int64_t> offsets(chunk.indptr.begin() + 1, chunk.indptr.end());
    for (auto& o : offsets) o += nnz;
    data->append(chunk.data.data(), chunk.data.size());
    indices->append(chunk.indices.data(), chunk.indices.size());
    indptr->append(offsets.data(), offsets.size());
    nnz += chunk.nnz();
    rows += chunk.n_rows;
  }
  data->finish();
  indices->finish();
  indptr->finish();
  if (rows != n_rows)
    throw Error(
        path_, path,
        "chunks delivered " + std::to_string(rows) + " rows, expected " + std::to_string(n_rows));
}

void AnnDataWriter::write_dataframe(const std::string& name, const DataFrame& df) {
  Attrs attrs = encoding("dataframe", "0.2.0");
  attrs["_index"] = "_index";
  attrs["column-order"] = Attrs::array();
  for (const auto& c : df.columns) attrs["column-order"].push_back(c.name);
  tree_->group(name, attrs);
  tree_->strings(name + "/_index", df.index, false, encoding("string-array", "0.2.0"));
  for (const auto& c : df.columns) {
    write_column(*tree_, name + "/" + c.name, c);
    if (auto* cat = std::get_if<Categorical>(&c.values); cat && !cat->colors.empty())
      write_uns_strings(c.name + "_colors", cat->colors);
  }
}

void AnnDataWriter::write_obsm(const std::string& key, const DenseMatrix& m) {
  tree_->array("obsm/" + key, NumType::F32, m.values.data(), {m.rows, m.cols},
               encoding("array", "0.2.0"));
}

void AnnDataWriter::write_csr_group(const std::string& path, const CsrMatrix& m) {
  Attrs attrs = encoding("csr_matrix", "0.1.0");
  attrs["shape"] = {m.n_rows, m.n_cols};
  tree_->group(path, attrs);
  write_vector(*tree_, path + "/data", m.data);
  write_vector(*tree_, path + "/indices", m.indices);
  write_vector(*tree_, path + "/indptr", m.indptr);
}

void AnnDataWriter::write_obsp(const std::string& key, const CsrMatrix& m) {
  write_csr_group("obsp/" + key, m);
}

void AnnDataWriter::write_uns_strings(const std::string& key, const std::vector<std::string>& v) {
  tree_->strings("uns/" + key, v, false, encoding("string-array", "0.2.0"));
}

void AnnDataWriter::write_uns_number(const std::string& key, double value) {
  tree_->array("uns/" + key, NumType::F64, &value, {}, encoding("numeric-scalar", "0.2.0"));
}

void AnnDataWriter::write_uns_integer(const std::string& key, std::int64_t value) {
  tree_->array("uns/" + key, NumType::I64, &value, {}, encoding("numeric-scalar", "0.2.0"));
}

void AnnDataWriter::write_uns_numbers(const std::string& key, const std::vector<double>& values) {
  write_vector(*tree_, "uns/" + key, values);
}

void AnnDataWriter::write_uns_dict(const std::string& path) {
  tree_->group("uns/" + path, encoding("dict", "0.1.0"));
}

void AnnDataWriter::write_uns_string(const std::string& path, const std::string& value) {
  tree_->strings("uns/" + path, {value}, true, encoding("string", "0.2.0"));
}

void AnnDataWriter::write_uns_bool(const std::string& path, bool value) {
  const std::int8_t v = value ? 1 : 0;
  tree_->array("uns/" + path, NumType::Bool, &v, {}, encoding("numeric-scalar", "0.2.0"));
}

void AnnDataWriter::write_uns_recarray(const std::string& path,
                                       const std::vector<std::string>& fields,
                                       const std::vector<std::vector<std::string>>& columns) {
  const std::size_t rows = columns.empty() ? 0 : columns[0].size();
  std::vector<std::string> texts(rows * fields.size());
  for (std::size_t f = 0; f < fields.size(); ++f) {
    if (columns[f].size() != rows) throw Error(path_, "uns/" + path, "ragged columns");
    for (std::size_t r = 0; r < rows; ++r) texts[r * fields.size() + f] = columns[f][r];
  }
  tree_->records("uns/" + path, fields, NumType::F64, {}, &texts, rows,
                 encoding("rec-array", "0.2.0"));
}

void AnnDataWriter::write_uns_recarray(const std::string& path,
                                       const std::vector<std::string>& fields,
                                       const std::vector<std::vector<double>>& columns,
                                       bool single_precision) {
  const std::size_t rows = columns.empty() ? 0 : columns[0].size();
  std::vector<double> values(rows * fields.size());
  for (std::size_t f = 0; f < fields.size(); ++f) {
    if (columns[f].size() != rows) throw Error(path_, "uns/" + path, "ragged columns");
    for (std::size_t r = 0; r < rows; ++r) values[r * fields.size() + f] = columns[f][r];
  }
  tree_->records("uns/" + path, fields, single_precision ? NumType::F32 : NumType::F64, values,
                 nullptr, rows, encoding("rec-array", "0.2.0"));
}

void AnnDataWriter::commit() {
  tree_->close();
  std::error_code ec;
  if (zarr_ && fs::exists(path_)) {
    // A directory cannot be renamed over a non-empty one: move the old store aside first.
    const std::string old = path_ + ".old-" + std::to_string(::getpid());
    fs::rename(path_, old, ec);
    if (ec) throw Error(path_, "", "cannot replace the existing store: " + ec.message());
    fs::rename(tmp_path_, path_, ec);
    if (ec) {
      fs::rename(old, path_);
      throw Error(path_, "", "cannot rename temporary store: " + ec.message());
    }
    remove_path(old);
  } else {
    fs::rename(tmp_path_, path_, ec);
    if (ec) throw Error(path_, "", "cannot rename temporary file: " + ec.message());
  }
  committed_ = true;
}

}  // namespace orrery::io
