#include "annotations.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "error.hpp"

namespace orrery::io {
namespace {

// pandas' default missing-value markers (read_csv's na_values), the common ones.
bool missing(const std::string& f) {
  static const char* const kMissing[] = {"",     "NA",   "N/A",  "n/a",  "NaN",  "nan",
                                         "-NaN", "<NA>", "NULL", "null", "None", "#N/A"};
  return std::any_of(std::begin(kMissing), std::end(kMissing),
                     [&](const char* m) { return f == m; });
}

bool as_integer(const std::string& f, std::int64_t& v) {
  const char* b = f.data() + (!f.empty() && f[0] == '+' ? 1 : 0);
  const auto [end, ec] = std::from_chars(b, f.data() + f.size(), v);
  return ec == std::errc() && end == f.data() + f.size() && b != end;
}

bool as_number(const std::string& f, double& v) {
  return parse_number(f, v) && std::isfinite(v);
}

// pandas reads these as booleans.
int as_bool(const std::string& f) {
  if (f == "TRUE" || f == "True" || f == "true") return 1;
  if (f == "FALSE" || f == "False" || f == "false") return 0;
  return -1;
}

// Column `j` of the table: `row_of[cell]` is the table row of each cell (-1: none).
Column typed_column(const TextTable& t, std::size_t j, const std::vector<std::int64_t>& row_of) {
  bool all_int = true, all_number = true, all_bool = true, any = false;
  for (const auto& row : t.cells) {
    const std::string& f = row[j];
    if (missing(f)) continue;
    any = true;
    std::int64_t i = 0;
    double d = 0;
    all_int = all_int && as_integer(f, i);
    all_number = all_number && as_number(f, d);
    all_bool = all_bool && as_bool(f) >= 0;
  }
  const std::size_t n = row_of.size();
  auto field = [&](std::size_t cell) -> const std::string* {
    if (row_of[cell] < 0) return nullptr;
    const std::string& f = t.cells[static_cast<std::size_t>(row_of[cell])][j];
    return missing(f) ? nullptr : &f;
  };
  bool gaps = false;
  for (std::size_t c = 0; c < n && !gaps; ++c) gaps = field(c) == nullptr;
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

  Column col;
  col.name = t.columns[j];
  if (any && (all_bool || all_int)) {
    if (!gaps) {
      if (all_bool) {
        std::vector<bool> v(n);
        for (std::size_t c = 0; c < n; ++c) v[c] = as_bool(*field(c)) == 1;
        col.values = std::move(v);
      } else {
        std::vector<std::int64_t> v(n);
        for (std::size_t c = 0; c < n; ++c) as_integer(*field(c), v[c]);
        col.values = std::move(v);
      }
      return col;
    }
    // Some cells have none: anndata's nullable encodings, held as doubles with NaN.
    std::vector<double> v(n, kNaN);
    for (std::size_t c = 0; c < n; ++c) {
      const std::string* f = field(c);
      if (!f) continue;
      std::int64_t i = 0;
      if (all_bool)
        v[c] = as_bool(*f);
      else if (as_integer(*f, i))
        v[c] = static_cast<double>(i);
    }
    col.values = std::move(v);
    col.nullable = all_bool ? "nullable-boolean" : "nullable-integer";
    return col;
  }
  if (!any || all_number) {
    std::vector<double> v(n, kNaN);
    for (std::size_t c = 0; c < n; ++c)
      if (const std::string* f = field(c)) as_number(*f, v[c]);
    col.values = std::move(v);
    return col;
  }
  Categorical cat;
  for (const auto& row : t.cells)
    if (!missing(row[j])) cat.categories.push_back(row[j]);
  std::sort(cat.categories.begin(), cat.categories.end());
  cat.categories.erase(std::unique(cat.categories.begin(), cat.categories.end()),
                       cat.categories.end());
  cat.codes.assign(n, -1);
  for (std::size_t c = 0; c < n; ++c)
    if (const std::string* f = field(c))
      cat.codes[c] = static_cast<std::int32_t>(
          std::lower_bound(cat.categories.begin(), cat.categories.end(), *f) -
          cat.categories.begin());
  col.values = std::move(cat);
  return col;
}

}  // namespace

CellAnnotations annotations_for_cells(const TextTable& table, const std::vector<std::string>& cells,
                                      const std::string& file) {
  std::unordered_map<std::string, std::int64_t> cell_of;
  cell_of.reserve(cells.size());
  for (std::size_t c = 0; c < cells.size(); ++c)
    cell_of.emplace(cells[c], static_cast<std::int64_t>(c));
  std::unordered_map<std::string, std::size_t> seen;
  for (std::size_t r = 0; r < table.rows.size(); ++r)
    if (!seen.emplace(table.rows[r], r).second)
      throw Error(file, "row names",
                  "'" + table.rows[r] + "' names data rows " +
                      std::to_string(seen[table.rows[r]] + 1) + " and " + std::to_string(r + 1) +
                      ": each cell once");

  CellAnnotations out;
  std::vector<std::int64_t> row_of(cells.size(), -1);
  auto match = [&](const std::string& suffix) {
    std::int64_t matched = 0;
    for (std::size_t r = 0; r < table.rows.size(); ++r) {
      const auto it = cell_of.find(table.rows[r] + suffix);
      if (it == cell_of.end()) continue;
      row_of[static_cast<std::size_t>(it->second)] = static_cast<std::int64_t>(r);
      ++matched;
    }
    return matched;
  };
  out.matched = match("");
  if (out.matched == 0) {
    out.matched = match("-1");
    out.added_suffix = out.matched > 0;
  }
  if (out.matched == 0)
    throw Error(file, "row names",
                "none of its " + std::to_string(table.rows.size()) +
                    " rows names a cell of the store (its first: '" +
                    (table.rows.empty() ? std::string() : table.rows.front()) +
                    "'; the store's first cell: '" +
                    (cells.empty() ? std::string() : cells.front()) + "')");
  out.unmatched = static_cast<std::int64_t>(table.rows.size()) - out.matched;
  for (std::size_t j = 0; j < table.columns.size(); ++j)
    out.columns.push_back(typed_column(table, j, row_of));
  return out;
}

std::string describe_import(const CellAnnotations& found, std::size_t n_columns,
                            std::int64_t n_cells) {
  std::string s = std::to_string(n_columns) + " column(s) for " + std::to_string(found.matched) +
                  " of " + std::to_string(n_cells) + " cells";
  if (found.added_suffix) s += " (names with -1 added)";
  if (found.unmatched)
    s += "; " + std::to_string(found.unmatched) + " rows naming no cell left out";
  return s;
}

std::vector<std::string> add_obs_columns(DataFrame& obs, std::vector<Column> columns,
                                         const std::function<bool(const std::string&)>& taken) {
  std::vector<std::string> names;
  for (Column& c : columns) {
    const std::string base = c.name.empty() ? std::string("annotation") : c.name;
    std::string name = base;
    for (int k = 1; obs.find(name) || (taken && taken(name)); ++k)
      name = base + "_" + std::to_string(k);
    c.name = name;
    names.push_back(name);
    obs.columns.push_back(std::move(c));
  }
  return names;
}

std::vector<std::string> import_annotations(Store& store, const std::string& table,
                                            const std::function<bool(const std::string&)>& taken,
                                            std::string& summary) {
  CellAnnotations found = annotations_for_cells(read_text_table(table), store.obs.index, table);
  const auto names = add_obs_columns(store.obs, std::move(found.columns), taken);
  summary = describe_import(found, names.size(), store.n_obs());
  return names;
}

}  // namespace orrery::io
