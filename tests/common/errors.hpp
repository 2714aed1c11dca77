// The message of the orrery::Error a call throws, for tests that check it names the file and
// the field: "(no error)" when the call throws none, so the check fails showing that.
#pragma once

#include <QString>

#include "io/error.hpp"

namespace orrery::test {

template <typename F>
QString error_message(F&& call) {
  try {
    call();
  } catch (const Error& e) {
    return QString::fromUtf8(e.what());
  }
  return QStringLiteral("(no error)");
}

}  // namespace orrery::test
