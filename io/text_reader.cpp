#include "text_reader.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>

#include "entry_matrix.hpp"
#include "error.hpp"
#include "utf8.hpp"

namespace fs = std::filesystem;

namespace orrery::io {
namespace {

enum class Separator { Comma, Tab, Semicolon, Space };

const char* separator_name(Separator s) {
  return s == Separator::Comma       ? "comma"
         : s == Separator::Tab       ? "tab"
         : s == Separator::Semicolon ? "semicolon"
                                     : "space";
}

// A line's separator outside quoted names: a tab if it has one, else the commoner of commas and
// semicolons (Excel writes semicolons where the decimal mark is a comma).
std::optional<Separator> separator_in(const std::string& line) {
  bool quoted = false;
  std::size_t commas = 0, semicolons = 0;
  for (char c : line) {
    if (c == '"') quoted = !quoted;
    if (quoted) continue;
    if (c == '\t') return Separator::Tab;
    commas += c == ',' ? 1 : 0;
    semicolons += c == ';' ? 1 : 0;
  }
  if (commas == 0 && semicolons == 0) return std::nullopt;
  return semicolons > commas ? Separator::Semicolon : Separator::Comma;
}

// The genes x cells `table` (a row per gene) as cells x genes: cell c has `cell_nnz[c]` entries.
CsrMatrix cells_of(const CsrMatrix& table, const std::vector<std::int64_t>& cell_nnz) {
  CsrMatrix m = csr_with_row_lengths(cell_nnz, 0, table.n_cols, table.n_rows);
  std::vector<std::int64_t> at(m.indptr.begin(), m.indptr.end() - 1);
  for (std::int64_t g = 0; g < table.n_rows; ++g)
    for (auto k = table.indptr[g]; k < table.indptr[g + 1]; ++k) {
      const auto c = static_cast<std::size_t>(table.indices[k]);
      m.indices[at[c]] = static_cast<GeneIndex>(g);
      m.data[at[c]++] = table.data[k];
    }
  return m;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// A table file's name in lower case without ".gz": what its extension says.
std::string table_name(const std::string& path) {
  std::string name = lower(fs::path(path).filename().string());
  if (name.ends_with(".gz")) name.resize(name.size() - 3);
  return name;
}

// A table's separator: the first line's, else the second's (R's header of a one-column table
// has none), else the name's (.csv, .tsv, .tab), else runs of spaces.
Separator separator_of(const std::string& file, const std::string& first,
                       const std::string& second) {
  if (const auto s = separator_in(first)) return *s;
  if (const auto s = separator_in(second)) return *s;
  const std::string name = table_name(file);
  if (name.ends_with(".csv")) return Separator::Comma;
  if (name.ends_with(".tsv") || name.ends_with(".tab")) return Separator::Tab;
  return Separator::Space;
}

bool blank(const std::string& line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t'; });
}

// Splits `line` into `fields` in place: quotes are taken off ("" inside quotes is one "), and
// the fields are views into `line`. Errors name `file` and the line.
void split_fields(std::string& line, Separator sep, const std::string& file, long line_no,
                  std::vector<std::string_view>& fields) {
  fields.clear();
  auto is_sep = [sep](char c) {
    return sep == Separator::Comma       ? c == ','
           : sep == Separator::Tab       ? c == '\t'
           : sep == Separator::Semicolon ? c == ';'
                                         : c == ' ' || c == '\t';
  };
  auto fail = [&](const std::string& what) {
    throw Error(file,
                "line " + std::to_string(line_no) + ", field " + std::to_string(fields.size() + 1),
                what);
  };
  char* s = line.data();
  const std::size_t n = line.size();
  std::size_t r = 0, w = 0;  // read and write positions: fields only shrink
  auto skip_spaces = [&] {
    while (r < n && (s[r] == ' ' || s[r] == '\t')) ++r;
  };
  if (sep == Separator::Space) skip_spaces();
  while (true) {
    const std::size_t start = w;
    while (r < n && s[r] == ' ' && sep != Separator::Space) ++r;  // "a, b" as R never writes
    if (r < n && s[r] == '"') {
      ++r;
      while (true) {
        if (r >= n) fail("a quote is not closed (a name over several lines is not supported)");
        if (s[r] == '"') {
          if (r + 1 < n && s[r + 1] == '"') {
            s[w++] = '"';
            r += 2;
            continue;
          }
          ++r;
          break;
        }
        s[w++] = s[r++];
      }
      while (r < n && !is_sep(s[r])) {
        if (s[r] != ' ' && s[r] != '\r') fail("text after a closing quote");
        ++r;
      }
    } else {
      while (r < n && !is_sep(s[r])) s[w++] = s[r++];
      while (w > start && (s[w - 1] == ' ' || s[w - 1] == '\r')) --w;
    }
    fields.emplace_back(s + start, w - start);
    if (r >= n) break;
    if (sep == Separator::Space) {
      skip_spaces();
      if (r >= n) break;
    } else {
      ++r;  // a separator at the very end leaves an empty last field
    }
  }
}

// How a table's lines are laid out, from its first two lines.
struct Format {
  Separator sep = Separator::Comma;
  bool header = true;
  bool row_names = true;
  // Columns of names before the values: 0 without row names, 2 or more where other names
  // follow them (GEO's gene id then symbol).
  std::size_t name_columns = 1;
  std::size_t fields = 0;  // on every row
};

// Not a name: a number, however large (1e999), or how R and pandas write a missing one. Names
// may start with digits ("0610005C13Rik", "7SK").
bool value_like(std::string_view f) {
  if (f.empty() || f == "NA" || f == "N/A") return true;
  if (f.front() == '+') f.remove_prefix(1);
  double v = 0;
  const auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
  return end == f.data() + f.size() && end != f.data() &&
         (ec == std::errc() || ec == std::errc::result_out_of_range);
}

std::string shown(std::string_view f) {
  std::string s(f.substr(0, 40));
  if (f.size() > 40) s += "...";
  return s;
}

// The first non-blank line, or false.
bool next_line(LineReader& lines, std::string& line) {
  while (lines.next(line))
    if (!blank(line)) return true;
  return false;
}

// Whether the first fields of the rows, from `first` (the first row's) and then the next lines
// (up to 20 rows), count up 0, 1, 2, ... or 1, 2, 3, ... over at least 3 rows: pandas' RangeIndex
// under a named index, not a column of values.
bool first_fields_count_up(LineReader& lines, Separator sep, const std::string& file,
                           std::string_view first) {
  if (first != "0" && first != "1") return false;
  const long start = first == "0" ? 0 : 1;
  std::string line;
  std::vector<std::string_view> fields;
  long rows = 1;
  for (; rows < 20 && next_line(lines, line); ++rows) {
    split_fields(line, sep, file, lines.line_no(), fields);
    if (fields.empty() || fields.front() != std::to_string(start + rows)) return false;
  }
  return rows >= 3;
}

// The format, read from the first two non-blank lines; `header_fields` gets the header's.
Format read_format(const std::string& file, std::vector<std::string>* header_fields,
                   std::string* index_name) {
  LineReader lines(file);
  std::string first, second;
  if (!next_line(lines, first)) throw Error(file, "", "empty file: no header and no rows");
  const long first_no = lines.line_no();
  if (first.rfind("\xff\xfe", 0) == 0 || first.rfind("\xfe\xff", 0) == 0)
    throw Error(file, "", "UTF-16 text; save the table as UTF-8");
  const bool has_second = next_line(lines, second);
  const long second_no = lines.line_no();
  Format f;
  f.sep = separator_of(file, first, second);
  std::vector<std::string_view> head, row;
  // A quoted field is a name, even a number's (R quotes every column name it writes).
  const bool quoted = first.find('"') != std::string::npos;
  split_fields(first, f.sep, file, first_no, head);
  double v = 0;
  f.header =
      quoted || !std::all_of(head.begin(), head.end(), [&](auto h) { return parse_number(h, v); });
  // pandas writes integer column labels (0, 1, ..., m - 1) unquoted, with to_csv(index=False)
  // nothing else on the line: a header, which a row of counts of 4 or more genes practically
  // never equals.
  bool range_labels = head.size() >= 4;
  for (std::size_t i = 0; i < head.size() && range_labels; ++i)
    range_labels = head[i] == std::to_string(i);
  f.header = f.header || range_labels;
  if (!f.header) {
    f.row_names = false;
    f.name_columns = 0;
    f.fields = head.size();
    return f;
  }
  if (!has_second) throw Error(file, "", "a header but no rows");
  split_fields(second, f.sep, file, second_no, row);
  f.fields = row.size();
  std::size_t skip = 0;
  if (row.size() == head.size() + 1) {  // R: the header has no field over the row names
    f.row_names = true;
  } else if (row.size() == head.size()) {
    // pandas writes the index's name (often empty) over it; without names the rows are numbers
    f.row_names = head.front().empty() || !parse_number(row.front(), v) ||
                  first_fields_count_up(lines, f.sep, file, row.front());
    skip = f.row_names ? 1 : 0;
    if (f.row_names && index_name) *index_name = std::string(head.front());
  } else {
    throw Error(file, "line " + std::to_string(second_no),
                std::to_string(row.size()) + " fields, but the header (line " +
                    std::to_string(first_no) + ") has " + std::to_string(head.size()));
  }
  // More names after the row names (a symbol after an id): the fields before the first number.
  f.name_columns = f.row_names ? 1 : 0;
  if (f.row_names)
    while (f.name_columns + 1 < row.size() && !value_like(row[f.name_columns])) ++f.name_columns;
  if (header_fields)
    for (std::size_t i = skip; i < head.size(); ++i) header_fields->emplace_back(head[i]);
  return f;
}

// Calls row(line_no, fields) for each row of values (not the header), checking their number.
template <typename Row>
void for_each_row(LineReader& lines, const Format& f, const std::string& file, Row&& row) {
  std::string line;
  std::vector<std::string_view> fields;
  bool header = f.header;
  while (next_line(lines, line)) {
    if (header) {
      header = false;
      continue;
    }
    split_fields(line, f.sep, file, lines.line_no(), fields);
    if (fields.size() != f.fields)
      throw Error(file, "line " + std::to_string(lines.line_no()),
                  std::to_string(fields.size()) + " fields where the rows before have " +
                      std::to_string(f.fields));
    row(lines.line_no(), fields);
  }
}

// A row's numbers: visit(column, value) for each that is not zero. Errors name line and column.
template <typename Visit>
void row_values(const std::vector<std::string_view>& fields, const Format& f,
                const std::string& file, long line_no, Visit&& visit) {
  const std::size_t first = f.name_columns;
  for (std::size_t c = first; c < fields.size(); ++c) {
    double v = 0;
    const bool number = parse_number(fields[c], v) && std::isfinite(v);
    if (!number || std::fabs(v) > std::numeric_limits<float>::max())
      throw Error(
          file, "line " + std::to_string(line_no) + ", column " + std::to_string(c + 1),
          "'" + shown(fields[c]) + "' is " +
              (number ? "beyond single precision (the matrix's floats)" : "not a finite number"));
    if (v != 0.0) visit(static_cast<std::int64_t>(c - first), static_cast<float>(v));
  }
}

// The second and later passes: the table's nonzero values as (gene, cell, value).
class TextEntries final : public EntryStream {
 public:
  TextEntries(const std::string& file, const Format& f, bool genes_in_rows, std::int64_t n_rows)
      : file_(file), format_(f), genes_in_rows_(genes_in_rows), n_rows_(n_rows), lines_(file) {}

  bool next(std::int32_t& gene, std::int64_t& cell, float& value) override {
    while (at_ == row_.size()) {
      if (!read_row()) return false;
    }
    const auto& [column, v] = row_[at_++];
    gene = static_cast<std::int32_t>(genes_in_rows_ ? row_no_ : column);
    cell = genes_in_rows_ ? column : row_no_;
    value = v;
    return true;
  }

 private:
  bool read_row() {
    while (next_line(lines_, line_)) {
      if (!header_done_ && format_.header) {
        header_done_ = true;
        continue;
      }
      header_done_ = true;
      split_fields(line_, format_.sep, file_, lines_.line_no(), fields_);
      if (fields_.size() != format_.fields || ++row_no_ >= n_rows_)
        throw Error(file_, "line " + std::to_string(lines_.line_no()),
                    "the file changed while it was read (its rows differ between passes)");
      row_.clear();
      at_ = 0;
      row_values(fields_, format_, file_, lines_.line_no(),
                 [&](std::int64_t c, float v) { row_.emplace_back(c, v); });
      return true;
    }
    return false;
  }

  std::string file_;
  Format format_;
  bool genes_in_rows_;
  std::int64_t n_rows_;  // as the first pass counted them
  LineReader lines_;
  std::string line_;
  std::vector<std::string_view> fields_;
  std::vector<std::pair<std::int64_t, float>> row_;
  std::size_t at_ = 0;
  std::int64_t row_no_ = -1;
  bool header_done_ = false;
};

// A share of the first names (up to 500) for which `is` holds.
template <typename Is>
double share(const std::vector<std::string>& names, Is&& is) {
  const std::size_t n = std::min<std::size_t>(names.size(), 500);
  if (n == 0) return 0.0;
  std::size_t yes = 0;
  for (std::size_t i = 0; i < n; ++i) yes += is(names[i]) ? 1 : 0;
  return static_cast<double>(yes) / static_cast<double>(n);
}

// A cell barcode: ten or more of A, C, G, T, N in a row (10x, Drop-seq), with anything around.
bool barcode_like(const std::string& name) {
  int run = 0;
  for (char c : name) {
    run = (c == 'A' || c == 'C' || c == 'G' || c == 'T' || c == 'N') ? run + 1 : 0;
    if (run >= 10) return true;
  }
  return false;
}

// An Ensembl gene id: ENS, upper-case letters (a species), G, and digits (ENSG00000141510,
// ENSMUSG00000059552), a version after a dot allowed.
bool ensembl_like(const std::string& name) {
  if (name.rfind("ENS", 0) != 0) return false;
  std::size_t i = 3;
  while (i < name.size() && name[i] >= 'A' && name[i] <= 'Z' && name[i] != 'G') ++i;
  if (i >= name.size() || name[i] != 'G') return false;
  std::size_t digits = 0;
  for (++i; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) ++digits;
  return digits >= 6 && (i == name.size() || name[i] == '.');
}

// Whether the table's rows are genes, and why it was guessed so.
bool guess_genes_in_rows(const std::vector<std::string>& row_names,
                         const std::vector<std::string>& col_names, std::int64_t n_rows,
                         std::int64_t n_cols, std::string& why) {
  if (share(col_names, barcode_like) >= 0.5) {
    why = "guessed: the columns are named like cell barcodes";
    return true;
  }
  if (share(row_names, ensembl_like) >= 0.5) {
    why = "guessed: the rows are named like Ensembl gene ids";
    return true;
  }
  if (share(row_names, barcode_like) >= 0.5) {
    why = "guessed: the rows are named like cell barcodes";
    return false;
  }
  if (share(col_names, ensembl_like) >= 0.5) {
    why = "guessed: the columns are named like Ensembl gene ids";
    return false;
  }
  why = n_rows > n_cols ? "guessed: more rows than columns" : "guessed: no more rows than columns";
  return n_rows > n_cols;
}

}  // namespace

bool parse_number(std::string_view f, double& v) {
  if (!f.empty() && f.front() == '+') f.remove_prefix(1);
  if (f.empty()) return false;
  const auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
  return ec == std::errc() && end == f.data() + f.size();
}

bool is_text_matrix(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  const std::string name = table_name(path);
  return name.ends_with(".csv") || name.ends_with(".tsv") || name.ends_with(".tab") ||
         name.ends_with(".txt");
}

Store open_text_matrix(const std::string& path, const OpenOptions& options) {
  std::vector<std::string> col_names, row_names;
  const Format format = read_format(path, &col_names, nullptr);
  const std::int64_t n_cols =
      static_cast<std::int64_t>(format.fields) - static_cast<std::int64_t>(format.name_columns);
  if (n_cols <= 0) throw Error(path, "header", "no columns of values, only names");
  require_utf8(col_names, path, "header", "column name");
  // The header's names over the further name columns, then the values' names.
  const std::size_t extra = format.name_columns > 1 ? format.name_columns - 1 : 0;
  std::vector<std::string> extra_headers;
  if (extra > 0) {
    extra_headers.assign(col_names.begin(), col_names.begin() + static_cast<std::ptrdiff_t>(extra));
    col_names.erase(col_names.begin(), col_names.begin() + static_cast<std::ptrdiff_t>(extra));
  }
  std::vector<std::vector<std::string>> extra_names(extra);

  // Pass 1: the names and each row's and column's entries. The values are kept as read (a CSR
  // row per line) while 24 bytes an entry fit the conversion budget (their vectors' spare
  // capacity, and the transposed copy): then there is no second pass.
  std::vector<std::int64_t> row_nnz, col_nnz(static_cast<std::size_t>(n_cols), 0);
  std::int64_t nnz = 0, values = 0, next_report = 1 << 20;
  CsrMatrix table;  // indptr starts as {0}
  bool keep = n_cols <= INT32_MAX;
  {
    LineReader lines(path);
    for_each_row(lines, format, path, [&](long line_no, const std::vector<std::string_view>& f) {
      for (std::size_t k = 0; k < format.name_columns; ++k)
        if (!valid_utf8(f[k]))
          throw Error(path, "line " + std::to_string(line_no),
                      (k == 0 ? std::string("the row name") : "name " + std::to_string(k + 1)) +
                          " is not UTF-8; re-encode the file as UTF-8");
      if (format.row_names) row_names.emplace_back(f.front());
      for (std::size_t k = 0; k < extra; ++k) extra_names[k].emplace_back(f[k + 1]);
      std::int64_t in_row = 0;
      row_values(f, format, path, line_no, [&](std::int64_t c, float v) {
        ++col_nnz[static_cast<std::size_t>(c)];
        ++in_row;
        if (keep) {
          table.indices.push_back(static_cast<GeneIndex>(c));
          table.data.push_back(v);
        }
      });
      row_nnz.push_back(in_row);
      nnz += in_row;
      if (keep) {
        table.indptr.push_back(static_cast<std::int64_t>(table.indices.size()));
        if (static_cast<std::size_t>(nnz) * 24 > options.transpose_bytes) {
          keep = false;
          table = CsrMatrix{};
        }
      }
      // Progress (and, through it, Cancel) every million or so values, however wide the rows.
      values += n_cols;
      if (values >= next_report && options.progress) {
        next_report = values + (1 << 20);
        options.progress("counting the text table's values", lines.fraction());
      }
    });
  }
  const auto n_rows = static_cast<std::int64_t>(row_nnz.size());
  if (n_rows == 0) throw Error(path, "", "a header but no rows");

  bool genes_in_rows = options.text_layout == TextLayout::GenesInRows;
  std::string why = "as asked";
  if (options.text_layout == TextLayout::Guess)
    genes_in_rows = guess_genes_in_rows(row_names, col_names, n_rows, n_cols, why);
  if ((genes_in_rows ? n_rows : n_cols) > INT32_MAX) throw Error(path, "", "more than 2^31 genes");

  EntryCounts counts;
  counts.n_genes = genes_in_rows ? n_rows : n_cols;
  counts.n_cells = genes_in_rows ? n_cols : n_rows;
  counts.nnz = nnz;
  counts.row_nnz = genes_in_rows ? std::move(col_nnz) : std::move(row_nnz);
  counts.sorted = !genes_in_rows || n_rows <= 1;  // genes in rows: every line has every cell

  Store store;
  store.path = path;
  store.format = "text";
  store.text_layout = genes_in_rows ? TextLayout::GenesInRows : TextLayout::CellsInRows;
  const std::string names =
      !format.row_names ? "no row names (the first column holds numbers)"
      : extra == 0      ? "names in the first column"
                        : "names in the first " + std::to_string(format.name_columns) + " columns";
  std::string encoding = std::string("dense text, ") + separator_name(format.sep) + "-separated, " +
                         names + ", " + (genes_in_rows ? "genes" : "cells") + " in rows (" + why +
                         ")";
  if (keep) {
    table.n_rows = n_rows;
    table.n_cols = n_cols;
    store.X =
        make_memory_reader(genes_in_rows ? cells_of(table, counts.row_nnz) : std::move(table));
    encoding += ", parsed into CSR in memory in one pass";
  } else {
    store.X = cells_from_entries(
        path, "the text table", counts,
        [&] { return std::make_unique<TextEntries>(path, format, genes_in_rows, n_rows); }, options,
        &encoding);
  }
  store.x_encoding = std::move(encoding);

  auto named = [](std::vector<std::string> names, std::int64_t n, const char* prefix) {
    if (names.empty())
      for (std::int64_t i = 0; i < n; ++i) names.push_back(prefix + std::to_string(i));
    return names;
  };
  // The further name columns describe the rows: Ensembl ids then symbols are read as 10x's
  // features are (symbols as var names, the ids as gene_ids), others keep their header names.
  DataFrame& rows = genes_in_rows ? store.var : store.obs;
  if (genes_in_rows && extra > 0 && share(row_names, ensembl_like) >= 0.5 &&
      share(extra_names[0], ensembl_like) < 0.5) {
    rows.columns.push_back({"gene_ids", std::move(row_names)});
    row_names = std::move(extra_names[0]);
    extra_headers.erase(extra_headers.begin());
    extra_names.erase(extra_names.begin());
  }
  for (std::size_t k = 0; k < extra_names.size(); ++k) {
    std::string name = extra_headers[k];
    for (int n = 2; name.empty() || rows.find(name); ++n) name = "names_" + std::to_string(n);
    rows.columns.push_back({name, std::move(extra_names[k])});
  }
  std::vector<std::string>& cells = genes_in_rows ? col_names : row_names;
  std::vector<std::string>& genes = genes_in_rows ? row_names : col_names;
  store.obs.index = named(std::move(cells), counts.n_cells, "cell");
  store.var.index = named(std::move(genes), counts.n_genes, "gene");
  make_unique(store.var.index);
  return store;
}

TextTable read_text_table(const std::string& path) {
  TextTable t;
  const Format format = read_format(path, &t.columns, &t.index_name);
  if (!format.header || !format.row_names)
    throw Error(path, "header",
                "a table of annotations needs a header of column names and a name on each row");
  require_utf8(t.columns, path, "header", "column name");
  LineReader lines(path);
  for_each_row(lines, format, path, [&](long line_no, const std::vector<std::string_view>& f) {
    std::vector<std::string> row(f.begin() + 1, f.end());
    for (const std::string_view field : f)
      if (!valid_utf8(field))
        throw Error(path, "line " + std::to_string(line_no),
                    "not UTF-8 text; re-encode the file as UTF-8");
    t.rows.emplace_back(f.front());
    t.cells.push_back(std::move(row));
  });
  return t;
}

}  // namespace orrery::io
