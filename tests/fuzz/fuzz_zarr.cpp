// libFuzzer: one zarr array, as metadata plus its first chunk. The input is the metadata JSON, a
// NUL byte, then the chunk's bytes; metadata naming zarr_format 3 becomes zarr.json. Opening and
// reading (numbers, strings or the fields of records) must succeed or raise orrery::Error.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/element.hpp"
#include "tests/fuzz/scratch.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  const auto* nul = static_cast<const std::uint8_t*>(std::memchr(data, 0, size));
  const std::size_t meta_size = nul ? static_cast<std::size_t>(nul - data) : size;
  const std::string meta(reinterpret_cast<const char*>(data), meta_size);
  const std::uint8_t* chunk = nul ? nul + 1 : data + size;
  const std::size_t chunk_size = static_cast<std::size_t>(data + size - chunk);

  const fs::path dir = orrery::fuzz::scratch() / "array.zarr";
  fs::remove_all(dir);
  const bool v3 = meta.find("\"zarr_format\": 3") != std::string::npos ||
                  meta.find("\"zarr_format\":3") != std::string::npos;
  orrery::fuzz::write_file(dir / (v3 ? "zarr.json" : ".zarray"),
                           reinterpret_cast<const std::uint8_t*>(meta.data()), meta.size());
  // The first chunk's key for the declared rank (1-D "0" / "c/0", 2-D "0.0" / "c/0/0").
  std::size_t rank = 1;
  try {
    rank = std::clamp<std::size_t>(nlohmann::json::parse(meta).at("shape").size(), 1, 4);
  } catch (const nlohmann::json::exception&) {
  }
  std::string key = v3 ? "c" : "";
  for (std::size_t d = 0; d < rank; ++d) key += key.empty() ? "0" : (v3 ? "/0" : ".0");
  orrery::fuzz::write_file(dir / key, chunk, chunk_size);
  try {
    auto array = orrery::io::open_zarr_root(dir.string());
    for (const auto& name : array->fields()) {  // record arrays: every field
      auto field = array->field(name);
      if (field->kind() == orrery::io::ElementKind::String) {
        field->read_strings();
      } else if (const auto n = field->length(); n <= (1 << 20)) {
        std::vector<double> out(static_cast<std::size_t>(n));
        field->read(0, n, out.data());
      }
    }
    if (array->kind() == orrery::io::ElementKind::String) {
      array->read_strings();
    } else if (!array->is_group()) {
      const auto shape = array->shape();
      std::int64_t n = 1;
      for (auto s : shape) n = s > 0 && n <= (1 << 20) / s ? n * s : (1 << 20) + 1;
      // The harness allocates the output; the reader must not allocate what metadata declares.
      if (!shape.empty() && n <= (1 << 20)) {
        std::vector<double> out(static_cast<std::size_t>(n));
        array->read(0, shape[0], out.data());
      }
    }
  } catch (const orrery::Error&) {
  }
  return 0;
}
