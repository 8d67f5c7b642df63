// recap::Error is the one exception type for problems a user can fix (bad input files,
// bad configs, missing runs). Its message must name the file or key and the problem; the
// CLI prints it without a stack trace and exits with status 2. Bugs use assertions instead.
#pragma once
#include <stdexcept>
#include <string>

namespace recap {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace recap
