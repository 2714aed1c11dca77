// Where tests find ../shared (real datasets and scanpy reference values): $ORRERY_SHARED, else
// the folder beside the source tree. Tests that need it skip with the path they looked at.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace orrery::test {

inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("ORRERY_SHARED"); env && *env) return env;
  return std::filesystem::path(ORRERY_SOURCE_DIR) / ".." / "shared";
}

inline std::filesystem::path pbmc3k_dir() {
  return shared_dir() / "data" / "pbmc3k" / "filtered_gene_bc_matrices" / "hg19";
}

// Reads a tab-separated file with a header: first column is the row name.
struct Table {
  std::vector<std::string> header;
  std::vector<std::string> rows;
  std::vector<std::vector<std::string>> cells;
};

inline Table read_tsv(const std::filesystem::path& path) {
  Table t;
  std::ifstream in(path);
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string x;
    while (std::getline(ss, x, '\t')) f.push_back(x);
    if (!line.empty() && line.back() == '\t') f.push_back("");
    if (first) {
      t.header = f;
      first = false;
      continue;
    }
    t.rows.push_back(f.empty() ? "" : f[0]);
    t.cells.emplace_back(f.begin() + (f.empty() ? 0 : 1), f.end());
  }
  return t;
}

}  // namespace orrery::test
