// CSV fields as pandas writes and reads them: quoted (with doubled quotes) only when the text
// holds a comma, a quote or a line break.
#pragma once

#include <QString>
#include <string>
#include <string_view>

namespace orrery::app {

inline std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\n\r") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

inline QString csv_field(const QString& s) {
  return QString::fromStdString(csv_field(s.toStdString()));
}

}  // namespace orrery::app
