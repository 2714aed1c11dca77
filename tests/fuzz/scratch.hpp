// A per-process scratch folder in memory (/dev/shm when present) for fuzz targets whose readers
// take paths: each input is written there, read, and overwritten by the next.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace orrery::fuzz {

inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path base = std::filesystem::exists("/dev/shm")
                                     ? std::filesystem::path("/dev/shm")
                                     : std::filesystem::temp_directory_path();
    auto d = base / ("orrery-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline void write_file(const std::filesystem::path& p, const std::uint8_t* data, std::size_t n) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n));
}

}  // namespace orrery::fuzz
