// UTF-8 validation of the names and strings a store hands out. AnnData's readers (h5py, zarr)
// decode strictly, so a store with other bytes in its names could be opened here but the
// result written from it could not be read by scanpy: such input is an error naming the
// element, as the brief asks of wrong encodings.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"

namespace orrery::io {

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
inline bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned c = p[i];
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return false;
    for (std::size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return false;
    i += len;
  }
  return true;
}

// Throws naming `element` and the first offending entry (its index and its bytes, escaped).
inline void require_utf8(const std::vector<std::string>& values, const std::string& file,
                         const std::string& element, const char* what = "string") {
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (valid_utf8(values[i])) continue;
    std::string shown;
    for (unsigned char c : values[i].substr(0, 40)) {
      if (c >= 0x20 && c < 0x7F) {
        shown += static_cast<char>(c);
      } else {
        static const char* hex = "0123456789abcdef";
        shown += "\\x";
        shown += hex[c >> 4];
        shown += hex[c & 15];
      }
    }
    throw Error(file, element,
                std::string(what) + " " + std::to_string(i) + " is not UTF-8 text ('" + shown +
                    "'); re-encode the names as UTF-8");
  }
}

}  // namespace orrery::io
