// orrery::Error: the one exception type Orrery throws for bad input and failed I/O.
// It names the file and the element (dataset, field, line) so a user can find the problem;
// the GUI shows what(), the CLI prints it and exits 2.
#pragma once

#include <stdexcept>
#include <string>

namespace orrery {

class Error : public std::runtime_error {
 public:
  Error(std::string file, std::string element, const std::string& message)
      : std::runtime_error(compose(file, element, message)),
        file_(std::move(file)),
        element_(std::move(element)) {}
  explicit Error(const std::string& message) : std::runtime_error(message) {}

  const std::string& file() const { return file_; }
  const std::string& element() const { return element_; }

 private:
  static std::string compose(const std::string& file, const std::string& element,
                             const std::string& message) {
    std::string out = file.empty() ? std::string() : file;
    if (!element.empty()) out += (out.empty() ? "" : ": ") + element;
    return out.empty() ? message : out + ": " + message;
  }
  std::string file_;
  std::string element_;
};

// Raised when a long operation stops because the user asked it to.
class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("cancelled") {}
};

}  // namespace orrery
