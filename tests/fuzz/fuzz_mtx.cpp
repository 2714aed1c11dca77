// libFuzzer: a Matrix Market coordinate file. Any input must parse or raise orrery::Error.
#include <cstdint>

#include "io/error.hpp"
#include "io/mtx_reader.hpp"
#include "tests/fuzz/scratch.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto file = orrery::fuzz::scratch() / "matrix.mtx";
  orrery::fuzz::write_file(file, data, size);
  try {
    orrery::io::read_mtx_transposed(file.string());
  } catch (const orrery::Error&) {
  }
  return 0;
}
