// Writes an AnnData .h5ad that anndata >= 0.8 and scanpy read: X as csr_matrix (streamed in
// row chunks), obs/var dataframes (categoricals, bools, numbers, strings), obsm dense arrays,
// obsp CSR graphs and uns entries. Everything goes to a temporary file next to the target,
// renamed over it by commit(); an uncommitted writer removes its temporary file.
#pragma once

#include <functional>
#include <string>

#include "dataframe.hpp"
#include "hdf5_handle.hpp"
#include "matrix.hpp"

namespace orrery::io {

class H5adWriter {
 public:
  explicit H5adWriter(std::string path);
  ~H5adWriter();
  H5adWriter(const H5adWriter&) = delete;
  H5adWriter& operator=(const H5adWriter&) = delete;

  // X in row chunks: `next` fills the next chunk and returns false when rows are exhausted.
  void write_X(std::int64_t n_rows, std::int64_t n_cols,
               const std::function<bool(CsrMatrix&)>& next);
  void write_obs(const DataFrame& df) { write_dataframe("obs", df); }
  void write_var(const DataFrame& df) { write_dataframe("var", df); }
  void write_obsm(const std::string& key, const DenseMatrix& m);
  void write_obsp(const std::string& key, const CsrMatrix& m);
  void write_uns_strings(const std::string& key, const std::vector<std::string>& values);
  void write_uns_number(const std::string& key, double value);
  // Nested uns entries by path below uns ("rank_genes_groups/params/method").
  void write_uns_dict(const std::string& path);
  void write_uns_string(const std::string& path, const std::string& value);
  void write_uns_bool(const std::string& path, bool value);
  // anndata "rec-array": one compound row per entry with a field per name (e.g. per group).
  void write_uns_recarray(const std::string& path, const std::vector<std::string>& fields,
                          const std::vector<std::vector<std::string>>& columns);
  void write_uns_recarray(const std::string& path, const std::vector<std::string>& fields,
                          const std::vector<std::vector<double>>& columns, bool single_precision);

  // Closes the file and renames it to the target path.
  void commit();

 private:
  void write_dataframe(const std::string& name, const DataFrame& df);
  void write_csr_group(hid_t parent, const std::string& name, const CsrMatrix& m);
  hid_t group(const std::string& name);

  std::string path_;
  std::string tmp_path_;
  H5Id file_;
  bool committed_ = false;
};

}  // namespace orrery::io
