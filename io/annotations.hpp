// Cell annotations from a table (a row per cell, named as the store's cells: a CSV of labels
// from another tool, a demultiplexer's calls) as obs columns, typed as pandas reads such a table
// and anndata writes it: whole numbers int64, other numbers float64, TRUE/FALSE bool, anything
// else categorical with sorted categories. Where some cells have no value, whole numbers and
// booleans become anndata's nullable integer / boolean (pandas' read_csv would make them float64
// and object), so that labels like Seurat's cluster numbers stay whole.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dataframe.hpp"
#include "store.hpp"
#include "text_reader.hpp"

namespace orrery::io {

struct CellAnnotations {
  std::vector<Column> columns;  // a value for every cell of the store, missing where none
  std::int64_t matched = 0;     // table rows that name a cell
  std::int64_t unmatched = 0;   // table rows that name none (left out)
  // Rows matched by adding "-1" to their names: Cell Ranger's barcodes written without it.
  bool added_suffix = false;
};

// The columns of `table` (read from `file`) for `cells`, the store's obs names. A name twice
// in the table, or no row naming any cell, is an error naming the file.
CellAnnotations annotations_for_cells(const TextTable& table, const std::vector<std::string>& cells,
                                      const std::string& file);

// What an import did, for a person: "2 column(s) for 80 of 2700 cells (names with -1 added);
// 3 rows naming no cell left out".
std::string describe_import(const CellAnnotations& found, std::size_t n_columns,
                            std::int64_t n_cells);

// Adds `columns` to `obs`. A name obs already has, or one `taken` claims (the pipeline's own
// columns), gets "_1", "_2", ... appended. Returns the names given, in order.
std::vector<std::string> add_obs_columns(DataFrame& obs, std::vector<Column> columns,
                                         const std::function<bool(const std::string&)>& taken);

// All of it for one file: reads `table`, matches it to `store`'s cells and adds its columns to
// the store's obs (names as add_obs_columns gives them, returned); `summary` gets
// describe_import's line.
std::vector<std::string> import_annotations(Store& store, const std::string& table,
                                            const std::function<bool(const std::string&)>& taken,
                                            std::string& summary);

}  // namespace orrery::io
