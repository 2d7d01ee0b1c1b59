#include "strata/error.h"

namespace strata {
namespace {

std::string render(const std::string& message, const std::string& file, const std::string& tensor,
                   const std::string& hint) {
  std::string out;
  if (!file.empty()) out += file + ": ";
  if (!tensor.empty()) out += "tensor '" + tensor + "': ";
  out += message;
  if (!hint.empty()) out += " (" + hint + ")";
  // Errors are printed on one line; never let a newline from a file sneak in.
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  return out;
}

}  // namespace

Error::Error(std::string message, std::string file, std::string tensor, std::string hint)
    : std::runtime_error(render(message, file, tensor, hint)),
      message_(std::move(message)),
      file_(std::move(file)),
      tensor_(std::move(tensor)),
      hint_(std::move(hint)) {}

}  // namespace strata
