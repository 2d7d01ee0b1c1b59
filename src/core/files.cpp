#include "core/files.h"

#include <fstream>

#include "strata/error.h"

namespace strata {

std::string read_file(const std::filesystem::path& path, const std::string& what, const std::string& hint) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + what, path.string(), "", hint);
  std::string text;
  char chunk[1 << 16];
  do {
    in.read(chunk, sizeof chunk);
    text.append(chunk, static_cast<size_t>(in.gcount()));
  } while (in);
  // read() stops with eof at the end; bad means the bytes could not be read.
  if (in.bad()) throw Error("cannot read " + what, path.string());
  return text;
}

}  // namespace strata
