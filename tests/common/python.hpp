// Runs Debian's python3 (anndata, zarr, h5py) from a QtTest: interop tests write stores with the
// Python reference stack and read them back, and skip when a package is missing.
#pragma once

#include <QtCore/QProcess>
#include <QtCore/QStringList>

namespace orrery::test {

// Runs /usr/bin/python3 with `argv` ("-c", code, args... or a script path, args...). False with
// the reason in `why` on failure; a reason starting "SKIP" when the script exited 77 (missing
// package).
inline bool run_python(const QStringList& argv, QString* why) {
  QProcess p;
  p.start("/usr/bin/python3", argv);
  if (!p.waitForFinished(300000)) {
    *why = "python3 did not finish";
    return false;
  }
  const QString err = p.readAllStandardError();
  if (p.exitCode() == 77) {
    *why = "SKIP " + err;
    return false;
  }
  if (p.exitCode() != 0) {
    *why = "python3 failed: " + err;
    return false;
  }
  return true;
}

}  // namespace orrery::test

// Runs python3 with the remaining arguments; skips the test when the script exits 77 because
// `package` is missing, fails on any other error.
#define RUN_PYTHON_OR_SKIP(package, ...)                               \
  do {                                                                 \
    QString why_;                                                      \
    if (!orrery::test::run_python(QStringList{__VA_ARGS__}, &why_)) {  \
      if (why_.startsWith("SKIP")) QSKIP(package " is not installed"); \
      QFAIL(qPrintable(why_));                                         \
    }                                                                  \
  } while (0)
