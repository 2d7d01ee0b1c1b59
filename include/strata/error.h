// strata::Error — the one exception type for bad input and failed I/O.
//
// Every error carries the file and (when known) the tensor it concerns plus a
// hint for the user ("truncated download?"). what() renders all of it on one
// line so the CLI can print it as is.
#pragma once

#include <stdexcept>
#include <string>

namespace strata {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, std::string file = {}, std::string tensor = {},
                 std::string hint = {});

  const std::string& message() const { return message_; }
  const std::string& file() const { return file_; }
  const std::string& tensor() const { return tensor_; }
  const std::string& hint() const { return hint_; }

 private:
  std::string message_;
  std::string file_;
  std::string tensor_;
  std::string hint_;
};

}  // namespace strata
