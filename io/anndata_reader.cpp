#include "anndata_reader.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "anndata_writer.hpp"
#include "hdf5_guard.hpp"

namespace orrery::io {

namespace {

// Rows of a CSR group (data, indices, indptr), read range by range.
class CsrReader final : public RowChunkReader {
 public:
  CsrReader(std::shared_ptr<const Element> group, std::int64_t rows, std::int64_t cols)
      : group_(std::move(group)), rows_(rows), cols_(cols) {
    data_ = group_->require("data");
    indices_ = group_->require("indices");
    indptr_ = group_->require("indptr");
    for (const auto* e : {data_.get(), indices_.get(), indptr_.get()})
      if (e->kind() != ElementKind::Integer && e->kind() != ElementKind::Float &&
          e->kind() != ElementKind::Bool)
        e->fail("expected a numeric array");
    if (indptr_->length() != rows_ + 1)
      indptr_->fail("length must be n_obs + 1 = " + std::to_string(rows_ + 1));
    nnz_ = data_->length();
    if (indices_->length() != nnz_) data_->fail("data and indices lengths differ");
    std::int64_t last = 0;
    indptr_->read(rows_, rows_ + 1, &last);
    if (last != nnz_)
      indptr_->fail("last entry " + std::to_string(last) + " != nnz " + std::to_string(nnz_));
  }
  std::int64_t n_rows() const override { return rows_; }
  std::int64_t n_cols() const override { return cols_; }
  std::int64_t nnz() const override { return nnz_; }

  CsrMatrix read_rows(std::int64_t r0, std::int64_t r1) override {
    CsrMatrix out;
    read_rows_into(r0, r1, out);
    return out;
  }

  void read_rows_into(std::int64_t r0, std::int64_t r1, CsrMatrix& out) override {
    if (r0 < 0 || r1 > rows_ || r0 > r1) group_->fail("row range out of bounds");
    out.n_rows = r1 - r0;
    out.n_cols = cols_;
    out.indptr.resize(out.n_rows + 1);
    indptr_->read(r0, r1 + 1, out.indptr.data());
    const std::int64_t b = out.indptr.front(), e = out.indptr.back();
    for (std::int64_t r = 0; r < out.n_rows; ++r)
      if (out.indptr[r + 1] < out.indptr[r])
        indptr_->fail("not monotone at row " + std::to_string(r0 + r));
    if (b < 0 || e > nnz_) indptr_->fail("offset outside [0, nnz]");
    // Never allocate what a corrupt indptr declares: rows average at most one value per column.
    constexpr std::int64_t kMaxChunkEntries = std::int64_t{1} << 32;
    if (e - b > kMaxChunkEntries || e - b > (r1 - r0) * std::max<std::int64_t>(cols_, 1))
      indptr_->fail("rows " + std::to_string(r0) + ".." + std::to_string(r1) + " declare " +
                    std::to_string(e - b) + " entries, more than rows x columns");
    for (auto& p : out.indptr) p -= b;
    out.indices.resize(e - b);
    out.data.resize(e - b);
    indices_->read(b, e, out.indices.data());
    data_->read(b, e, out.data.data());
    check_and_sort_rows(out, cols_, indices_->file(), indices_->path(), data_->path());
  }

 private:
  std::shared_ptr<const Element> group_;
  std::unique_ptr<Element> data_, indices_, indptr_;
  std::int64_t rows_, cols_, nnz_ = 0;
};

// Rows of a dense 2-D array, returned as CSR without the zeros.
class DenseReader final : public RowChunkReader {
 public:
  DenseReader(std::shared_ptr<const Element> array, std::int64_t rows, std::int64_t cols)
      : array_(std::move(array)), rows_(rows), cols_(cols) {}
  std::int64_t n_rows() const override { return rows_; }
  std::int64_t n_cols() const override { return cols_; }
  // Unknown without a pass; treat as dense for chunk sizing.
  std::int64_t nnz() const override { return rows_ * cols_; }
  CsrMatrix read_rows(std::int64_t r0, std::int64_t r1) override {
    if (r0 < 0 || r1 > rows_ || r0 > r1) array_->fail("row range out of bounds");
    std::vector<float> block((r1 - r0) * cols_);
    array_->read(r0, r1, block.data());
    CsrMatrix out;
    out.n_rows = r1 - r0;
    out.n_cols = cols_;
    out.indptr.assign(1, 0);
    for (std::int64_t r = 0; r < out.n_rows; ++r) {
      for (std::int64_t c = 0; c < cols_; ++c) {
        float v = block[r * cols_ + c];
        if (!std::isfinite(v)) array_->fail("NaN or Inf value");
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
  std::shared_ptr<const Element> array_;
  std::int64_t rows_, cols_;
};

std::string number_label(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  return std::to_string(v);
}

// A categorical column from its integer codes and its categories (strings or numbers).
Categorical read_categorical(const Element& codes, const Element& categories, std::int64_t n) {
  Categorical cat;
  cat.codes = read_all<std::int32_t>(codes, n);
  if (categories.kind() == ElementKind::String) {
    cat.categories = categories.read_strings();
  } else {
    for (double v : read_all<double>(categories, categories.length()))
      cat.categories.push_back(number_label(v));
  }
  for (auto c : cat.codes)
    if (c < -1 || c >= static_cast<std::int32_t>(cat.categories.size()))
      codes.fail("code " + std::to_string(c) + " out of range");
  return cat;
}

Column read_column(const Element& obj, const std::string& name, std::int64_t n,
                   const Element* categories);

// One dataframe column in any anndata encoding: numeric, bool, string-array, categorical,
// nullable-integer / nullable-boolean (missing as NaN); anndata 0.7's categoricals are codes
// with their categories in the frame's __categories group.
Column read_column(const Element& frame, const std::string& name, std::int64_t n) {
  auto obj = frame.open(name);
  if (!obj) throw Error(frame.file(), Element::join(frame.path(), name), "listed but missing");
  auto categories = obj->is_group() ? nullptr : frame.open("__categories/" + name);
  return read_column(*obj, name, n, categories.get());
}

// A column element; integer codes with `categories` make a categorical.
Column read_column(const Element& element, const std::string& name, std::int64_t n,
                   const Element* categories) {
  const Element* obj = &element;
  if (categories && obj->kind() == ElementKind::Integer)
    return {name, read_categorical(*obj, *categories, n)};
  if (obj->is_group()) {
    const std::string enc = obj->string_attr_or("encoding-type", "");
    if (enc == "categorical")
      return {name, read_categorical(*obj->require("codes"), *obj->require("categories"), n)};
    if (enc == "nullable-integer" || enc == "nullable-boolean") {
      auto stored = obj->require("values");
      auto values = read_all<double>(*stored, n);
      auto mask = read_all<std::int8_t>(*obj->require("mask"), n);
      for (std::int64_t i = 0; i < n; ++i)
        if (mask[i]) values[i] = std::numeric_limits<double>::quiet_NaN();
      const NumType t = stored->stored_type();
      return {name, std::move(values), enc, t == NumType::I8 ? 1 : (t == NumType::I32 ? 4 : 8)};
    }
    obj->fail("unknown column encoding '" + enc + "'");
  }
  switch (obj->kind()) {
    case ElementKind::String: {
      auto v = obj->read_strings();
      if (static_cast<std::int64_t>(v.size()) != n) obj->fail("length does not match the index");
      return {name, std::move(v)};
    }
    case ElementKind::Bool: {
      auto raw = read_all<std::int8_t>(*obj, n);
      return {name, std::vector<bool>(raw.begin(), raw.end())};
    }
    case ElementKind::Integer:
      return {name, read_all<std::int64_t>(*obj, n)};
    case ElementKind::Float:
      return {name, read_all<double>(*obj, n)};
    default:
      obj->fail("unsupported column type");
  }
}

// anndata before 0.7: a record array whose first field is the index; a categorical column holds
// codes, with its categories in uns/<column>_categories.
DataFrame read_record_dataframe(const Element& root, const Element& records) {
  const auto fields = records.fields();
  DataFrame df;
  auto index = records.field(fields.front());
  if (index->kind() != ElementKind::String) index->fail("expected strings (the index)");
  df.index = index->read_strings();
  for (std::size_t f = 1; f < fields.size(); ++f) {
    auto categories = root.open("uns/" + fields[f] + "_categories");
    df.columns.push_back(read_column(*records.field(fields[f]), fields[f],
                                     static_cast<std::int64_t>(df.index.size()), categories.get()));
  }
  return df;
}

DataFrame read_dataframe(const Element& root, const char* name) {
  auto group = root.open(name);
  if (group && !group->is_group() && !group->fields().empty())
    return read_record_dataframe(root, *group);
  if (!group || !group->is_group()) throw Error(root.file(), name, "missing dataframe group");
  const std::string enc = group->string_attr_or("encoding-type", "");
  if (!enc.empty() && enc != "dataframe") group->fail("unknown dataframe encoding '" + enc + "'");
  const std::string index_name = group->string_attr_or("_index", "_index");
  DataFrame df;
  auto index = group->require(index_name);
  if (index->kind() != ElementKind::String) index->fail("expected a string array");
  df.index = index->read_strings();
  std::vector<std::string> order = group->string_attr("column-order");
  if (!group->has_attr("column-order"))  // pre-0.7 stores: every member but the index
    for (auto& m : group->members())
      if (m != index_name && m != "__categories") order.push_back(m);
  for (const auto& column : order)
    df.columns.push_back(read_column(*group, column, static_cast<std::int64_t>(df.index.size())));
  return df;
}

// anndata keeps a categorical column's colours in uns/<column>_colors; attached when there is
// one colour per category.
void attach_colors(const Element& root, DataFrame& df) {
  auto uns = root.open("uns");
  if (!uns || !uns->is_group()) return;
  for (auto& c : df.columns) {
    auto* cat = std::get_if<Categorical>(&c.values);
    if (!cat) continue;
    auto colors = uns->open(c.name + "_colors");
    if (!colors || colors->kind() != ElementKind::String || colors->shape().size() != 1) continue;
    auto values = colors->read_strings();
    if (values.size() == cat->categories.size()) cat->colors = std::move(values);
  }
}

std::vector<std::string> group_keys(const Element& root, const char* name) {
  auto g = root.open(name);
  return g && g->is_group() ? g->members() : std::vector<std::string>{};
}

// Cell Ranger's HDF5: a group (v3 "matrix", v2 one per genome) holding a genes x cells CSC
// matrix, which is cells x genes CSR, plus barcodes and gene ids/names.
Store open_10x_h5(std::shared_ptr<const Element> root) {
  std::string group_name = "matrix";
  std::string ids_path = "features/id", names_path = "features/name";
  if (!root->open("matrix")) {
    auto members = root->members();  // v2: the first group is the genome
    if (members.empty()) root->fail("empty HDF5 file");
    group_name = members.front();
    ids_path = "genes";
    names_path = "gene_names";
  }
  std::shared_ptr<const Element> group = root->require(group_name);
  auto shape_el = group->require("shape");
  if (shape_el->length() != 2) shape_el->fail("expected 2 entries");
  std::int64_t shape[2] = {0, 0};
  shape_el->read(0, 2, shape);
  Store store;
  store.path = root->file();
  store.format = "10x-h5";
  store.x_encoding = "10x csc (genes x cells), read as cells x genes CSR";
  store.obs.index = group->require("barcodes")->read_strings();
  auto ids = group->require(ids_path)->read_strings();
  auto names = group->require(names_path)->read_strings();
  if (static_cast<std::int64_t>(store.obs.index.size()) != shape[1] ||
      static_cast<std::int64_t>(names.size()) != shape[0] || ids.size() != names.size())
    group->fail("barcodes/features do not match shape");
  make_unique(names);
  store.var.index = std::move(names);
  store.var.columns.push_back({"gene_ids", std::move(ids)});
  store.X = std::make_unique<CsrReader>(std::move(group), shape[1], shape[0]);
  return store;
}

// A CSC matrix (genes as the compressed axis) cannot be sliced by cell. It is transposed once
// into a temporary CSR store, cell block by cell block within the memory budget: each block is
// one pass over the CSC data. The temporary file is unlinked as soon as it is open.
std::unique_ptr<RowChunkReader> transpose_csc(std::shared_ptr<const Element> group,
                                              std::int64_t n_obs, std::int64_t n_vars,
                                              const OpenOptions& options) {
  const std::string source = group->file() + ": " + group->path();
  CsrReader by_gene(std::move(group), n_vars, n_obs);  // rows = genes, cols = cells
  auto report = [&](double f) {
    if (options.progress) options.progress("transposing CSC X to a temporary CSR store", f);
  };
  const std::int64_t gene_step = by_gene.rows_for_budget(std::size_t{256} << 20);
  std::vector<std::int64_t> row_nnz(n_obs, 0);
  for (std::int64_t g0 = 0; g0 < n_vars; g0 += gene_step) {
    CsrMatrix c = by_gene.read_rows(g0, std::min(n_vars, g0 + gene_step));
    for (auto cell : c.indices) ++row_nnz[cell];
  }
  return temporary_csr_store(
      row_nnz, n_vars, options.transpose_bytes, source,
      [&](std::int64_t c0, std::int64_t c1, CsrMatrix& block) {
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
      },
      report);
}

}  // namespace

std::vector<std::int64_t> row_blocks(const std::vector<std::int64_t>& row_nnz,
                                     std::size_t budget_bytes) {
  const auto n_rows = static_cast<std::int64_t>(row_nnz.size());
  const auto budget = static_cast<std::int64_t>(std::max<std::size_t>(budget_bytes, 8));
  std::vector<std::int64_t> starts{0};
  for (std::int64_t r0 = 0, r1 = 0; r0 < n_rows; r0 = r1) {
    std::int64_t bytes = 0;
    while (r1 < n_rows && (r1 == r0 || bytes + row_nnz[r1] * 8 <= budget))
      bytes += row_nnz[r1++] * 8;
    starts.push_back(r1);
  }
  return starts;
}

std::unique_ptr<RowChunkReader> temporary_csr_store(
    const std::vector<std::int64_t>& row_nnz, std::int64_t n_cols, std::size_t budget_bytes,
    const std::string& source,
    const std::function<void(std::int64_t, std::int64_t, CsrMatrix&)>& fill,
    const std::function<void(double)>& progress) {
  namespace fs = std::filesystem;
  const auto n_rows = static_cast<std::int64_t>(row_nnz.size());
  const fs::path tmp = fs::temp_directory_path() /
                       ("orrery-csr-" + std::to_string(::getpid()) + "-" +
                        std::to_string(reinterpret_cast<std::uintptr_t>(&row_nnz)) + ".h5");
  {
    AnnDataWriter w(tmp.string());
    const std::vector<std::int64_t> starts = row_blocks(row_nnz, budget_bytes);
    std::size_t b = 0;
    w.write_X(n_rows, n_cols, [&](CsrMatrix& block) {
      if (b + 1 >= starts.size()) return false;
      const std::int64_t r0 = starts[b], r1 = starts[b + 1];
      block = csr_with_row_lengths(row_nnz, r0, r1, n_cols);
      fill(r0, r1, block);
      if (progress) progress(static_cast<double>(r1) / static_cast<double>(n_rows));
      ++b;
      return true;
    });
    w.write_obs(DataFrame{});
    w.write_var(DataFrame{});
    w.commit();
  }
  std::shared_ptr<const Element> file;
  try {
    file = open_hdf5_root(tmp.string());
  } catch (const Error&) {
    std::error_code removed;
    fs::remove(tmp, removed);
    throw Error(source, "", "cannot reopen the temporary CSR store");
  }
  std::error_code ec;
  fs::remove(tmp, ec);  // the open handle keeps the data until the reader closes
  return std::make_unique<CsrReader>(file->require("X"), n_rows, n_cols);
}

std::unique_ptr<RowChunkReader> open_matrix(std::shared_ptr<const Element> matrix,
                                            std::int64_t n_obs, std::int64_t n_vars,
                                            const OpenOptions& options, std::string* encoding) {
  std::string enc;
  std::unique_ptr<RowChunkReader> reader;
  if (matrix->is_group()) {
    enc = matrix->string_attr_or("encoding-type", "");
    if (enc.empty()) enc = matrix->string_attr_or("h5sparse_format", "") + "_matrix";
    if (enc != "csr_matrix" && enc != "csc_matrix")
      matrix->fail("unknown sparse encoding '" + enc + "'");
    auto shape = matrix->int_attr("shape");
    if (shape.size() != 2 || shape[0] != n_obs || shape[1] != n_vars)
      matrix->fail("shape " +
                   (shape.size() == 2
                        ? "(" + std::to_string(shape[0]) + ", " + std::to_string(shape[1]) + ")"
                        : std::string("(missing)")) +
                   " does not match obs x var (" + std::to_string(n_obs) + ", " +
                   std::to_string(n_vars) + ")");
    if (enc == "csc_matrix") {
      reader = transpose_csc(std::move(matrix), n_obs, n_vars, options);
      enc = "csc_matrix (streamed from a temporary CSR transpose)";
    } else {
      reader = std::make_unique<CsrReader>(std::move(matrix), n_obs, n_vars);
    }
  } else {
    auto dims = matrix->shape();
    if (dims.size() != 2 || dims[0] != n_obs || dims[1] != n_vars)
      matrix->fail("dense shape does not match obs x var");
    if (matrix->kind() == ElementKind::String || matrix->kind() == ElementKind::Other)
      matrix->fail("expected a numeric array");
    reader = std::make_unique<DenseReader>(std::move(matrix), n_obs, n_vars);
    enc = "array (dense)";
  }
  if (encoding) *encoding = enc;
  return reader;
}

DenseMatrix read_dense_rows(const Element& array, std::int64_t n_obs,
                            const std::vector<CellIndex>* rows, std::int64_t n_cols,
                            std::size_t block_bytes) {
  auto dims = array.shape();
  if (array.is_group() || dims.size() != 2 || dims[0] != n_obs)
    array.fail("expected a dense array with " + std::to_string(n_obs) + " rows");
  if (n_cols < 0) n_cols = dims[1];
  if (dims[1] < n_cols)
    array.fail("has " + std::to_string(dims[1]) + " columns, " + std::to_string(n_cols) +
               " are needed");
  if (dims[1] > 100000) array.fail("absurd number of columns " + std::to_string(dims[1]));
  const auto n_out = rows ? static_cast<std::int64_t>(rows->size()) : n_obs;
  for (std::int64_t i = 0; rows && i < n_out; ++i)
    if ((*rows)[i] < 0 || (*rows)[i] >= n_obs || (i > 0 && (*rows)[i] <= (*rows)[i - 1]))
      throw Error(array.file(), array.path(), "internal: rows to read must rise within the array");
  DenseMatrix m(n_out, n_cols);
  const std::int64_t block = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(block_bytes) / (8 * std::max<std::int64_t>(dims[1], 1)));
  std::vector<double> values;
  // Output row `i` is array row `row(i)`; a block starts at the next row wanted, so blocks
  // holding none are not read.
  const auto row = [&](std::int64_t i) { return rows ? (*rows)[i] : i; };
  for (std::int64_t i = 0; i < n_out;) {
    const std::int64_t r0 = row(i), r1 = std::min(n_obs, r0 + block);
    values.resize(static_cast<std::size_t>((r1 - r0) * dims[1]));
    array.read(r0, r1, values.data());
    for (; i < n_out && row(i) < r1; ++i)
      for (std::int64_t c = 0; c < n_cols; ++c)
        m.values[static_cast<std::size_t>(i * n_cols + c)] =
            static_cast<float>(values[static_cast<std::size_t>((row(i) - r0) * dims[1] + c)]);
  }
  return m;
}

DenseMatrix read_dense(const Element& array, std::int64_t n_obs) {
  return read_dense_rows(array, n_obs, nullptr);
}

DenseMatrix read_dense_columns(const Element& array, std::int64_t n_obs, std::int64_t n_cols) {
  return read_dense_rows(array, n_obs, nullptr, n_cols);
}

Store open_anndata(std::shared_ptr<const Element> root, const std::string& format,
                   const OpenOptions& options) {
  if (!root->open("obs") && !root->open("X")) return open_10x_h5(std::move(root));
  Store store;
  store.path = root->file();
  store.format = format;
  store.obs = read_dataframe(*root, "obs");
  store.var = read_dataframe(*root, "var");
  attach_colors(*root, store.obs);
  store.obsm_keys = group_keys(*root, "obsm");
  store.obsp_keys = group_keys(*root, "obsp");
  store.layer_keys = group_keys(*root, "layers");
  store.uns_keys = group_keys(*root, "uns");
  store.has_raw = root->open("raw/X") != nullptr;
  const auto n_obs = static_cast<std::int64_t>(store.obs.index.size());
  const auto n_vars = static_cast<std::int64_t>(store.var.index.size());
  // anndata writes no X when it is None (e.g. Orrery's --results-only output): opened with
  // Store::X null, for info, obs and the stored embeddings; the pipeline needs X and says so.
  if (options.open_x && root->open("X"))
    store.X = open_matrix(root->require("X"), n_obs, n_vars, options, &store.x_encoding);
  else if (options.open_x)
    store.x_encoding = "none (an AnnData without X)";
  store.root = std::move(root);
  return store;
}

Store open_h5ad(const std::string& path, const OpenOptions& options) {
  guard_hdf5_file(path, options.progress);  // in a child process first, when enabled
  return open_anndata(open_hdf5_root(path), "h5ad", options);
}

Store open_zarr(const std::string& path, const OpenOptions& options) {
  return open_anndata(open_zarr_root(path), "zarr", options);
}

}  // namespace orrery::io
