// Writes an AnnData store that anndata >= 0.8 and scanpy read: .h5ad, or a zarr directory (v2, or
// v3 as anndata >= 0.11 writes with zarr-python 3) when the path ends in ".zarr". X as csr_matrix
// (streamed in row chunks), obs/var dataframes (categoricals, bools, numbers, strings), obsm dense
// arrays, obsp CSR graphs and uns entries. Everything goes to a temporary path next to the target,
// renamed over it by commit(); an uncommitted writer removes its temporary output.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "dataframe.hpp"
#include "matrix.hpp"
#include "tree_writer.hpp"

namespace orrery::io {

// True when `path` names a zarr store (ends in ".zarr", with or without a trailing slash).
bool is_zarr_path(const std::string& path);

class AnnDataWriter {
 public:
  // `zarr_format` (2 or 3) applies when `path` names a zarr store.
  explicit AnnDataWriter(std::string path, int zarr_format = 2);
  ~AnnDataWriter();
  AnnDataWriter(const AnnDataWriter&) = delete;
  AnnDataWriter& operator=(const AnnDataWriter&) = delete;

  // X in row chunks: `next` fills the next chunk and returns false when rows are exhausted.
  void write_X(std::int64_t n_rows, std::int64_t n_cols,
               const std::function<bool(CsrMatrix&)>& next);
  // layers/<key> (e.g. the input's raw counts), streamed the same way.
  void write_layer(const std::string& key, std::int64_t n_rows, std::int64_t n_cols,
                   const std::function<bool(CsrMatrix&)>& next);
  void write_obs(const DataFrame& df) { write_dataframe("obs", df); }
  void write_var(const DataFrame& df) { write_dataframe("var", df); }
  void write_obsm(const std::string& key, const DenseMatrix& m);
  void write_obsp(const std::string& key, const CsrMatrix& m);
  void write_uns_strings(const std::string& key, const std::vector<std::string>& values);
  void write_uns_number(const std::string& key, double value);
  void write_uns_integer(const std::string& key, std::int64_t value);  // int64, as numpy's int
  void write_uns_numbers(const std::string& key, const std::vector<double>& values);
  // Nested uns entries by path below uns ("rank_genes_groups/params/method").
  void write_uns_dict(const std::string& path);
  void write_uns_string(const std::string& path, const std::string& value);
  void write_uns_bool(const std::string& path, bool value);
  // anndata "rec-array": one compound row per entry with a field per name (e.g. per group).
  void write_uns_recarray(const std::string& path, const std::vector<std::string>& fields,
                          const std::vector<std::vector<std::string>>& columns);
  void write_uns_recarray(const std::string& path, const std::vector<std::string>& fields,
                          const std::vector<std::vector<double>>& columns, bool single_precision);

  // raw/X (rows streamed as for write_X) with raw/var and raw/varm copied from the input's raw.
  void write_raw(const Element& input_raw, std::int64_t n_rows, std::int64_t n_cols,
                 const std::function<bool(CsrMatrix&)>& next, std::vector<std::string>& skipped);
  // Copies an element of another store unchanged to `path` here (see io::copy_element), e.g.
  // the input's uns entries, or with `rows` its varm arrays for the kept genes.
  void copy(const Element& src, const std::string& path, std::vector<std::string>& skipped,
            const std::vector<std::int64_t>* rows = nullptr) {
    copy_element(src, *tree_, path, skipped, rows);
  }

  // Closes the store and renames it to the target path.
  void commit();

 private:
  void write_dataframe(const std::string& name, const DataFrame& df);
  void write_csr_group(const std::string& path, const CsrMatrix& m);
  void write_streamed_csr(const std::string& path, std::int64_t n_rows, std::int64_t n_cols,
                          const std::function<bool(CsrMatrix&)>& next);

  std::string path_;
  std::string tmp_path_;
  bool zarr_ = false;
  std::unique_ptr<TreeWriter> tree_;
  bool committed_ = false;
};

}  // namespace orrery::io
