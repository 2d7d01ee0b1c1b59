// Reading a whole file, with the one-line error every caller wants.
#pragma once

#include <filesystem>
#include <string>

namespace strata {

// The bytes of the file at `path`. Throws strata::Error naming the file,
// "cannot open WHAT" (with `hint`, when given) if it cannot be opened and
// "cannot read WHAT" if reading fails (a directory, an I/O error); `what`
// says what the file is ("config.json", "the tree file").
std::string read_file(const std::filesystem::path& path, const std::string& what, const std::string& hint = {});

}  // namespace strata
