// libFuzzer: a dense text table. Any input must parse or raise orrery::Error, as a count
// matrix (one pass, two passes into memory, and the temporary store's blocks) and as an
// annotation table.
#include <cstdint>

#include "io/error.hpp"
#include "io/text_reader.hpp"
#include "tests/fuzz/scratch.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto file = orrery::fuzz::scratch() / "table.csv";
  orrery::fuzz::write_file(file, data, size);
  for (const std::size_t budget : {std::size_t{1} << 30, std::size_t{256}, std::size_t{64}}) {
    try {
      orrery::io::OpenOptions options;
      options.transpose_bytes = budget;
      orrery::io::Store s = orrery::io::open_text_matrix(file.string(), options);
      s.X->read_rows(0, s.n_obs());
    } catch (const orrery::Error&) {
    }
  }
  try {
    orrery::io::read_text_table(file.string());
  } catch (const orrery::Error&) {
  }
  return 0;
}
