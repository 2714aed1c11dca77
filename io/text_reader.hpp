// Dense tables as text (.csv, .tsv, .tab, .txt, gzipped or not), as R's write.csv/write.table,
// pandas' to_csv and many GEO supplements hold count matrices and cell annotations: a header of
// column names (R leaves out the row names' field), then a line per row with its name first;
// comma-, tab-, semicolon- or space-separated, fields quoted or not. A count table is read as a
// store whose X holds genes in rows (R's way, transposed here) or cells in rows (pandas'): see
// TextLayout.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "store.hpp"

namespace orrery::io {

// A number as the tables write them: what std::from_chars reads, a leading '+' allowed, and
// nothing else in the field (NaN and inf included: callers check finiteness).
bool parse_number(std::string_view field, double& v);

// A regular file named *.csv, *.tsv, *.tab or *.txt, each also with .gz.
bool is_text_matrix(const std::string& path);

// The table's numbers as X (zeros not stored), its row and column names as obs and var.
// Values must be finite numbers; bad ones are errors naming the line and column.
Store open_text_matrix(const std::string& path, const OpenOptions& options = {});

// A table of strings: cell annotations and the like (a few columns, any number of rows).
struct TextTable {
  std::string index_name;                       // the header's first field when it names the rows
  std::vector<std::string> columns;             // column names
  std::vector<std::string> rows;                // row names
  std::vector<std::vector<std::string>> cells;  // cells[row][column]
};
// Reads a whole table (the header is required and rows must be named); errors name the line.
TextTable read_text_table(const std::string& path);

}  // namespace orrery::io
