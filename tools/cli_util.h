// Small helpers shared by the subcommands.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::cli {

// Writes decoded text to stdout as the bytes it is: a token may decode to a
// NUL byte, which C string output would stop at.
void write_text(std::string_view text);

// Parses "1,403,407" (spaces allowed) into ids; throws strata::Error otherwise.
std::vector<int32_t> parse_id_list(const std::string& text);

// Reads all of standard input.
std::string read_stdin();

}  // namespace strata::cli
