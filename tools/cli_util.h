// Small helpers shared by the subcommands.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata {
class Model;
class Tokenizer;
}

namespace strata::cli {

// Writes decoded text to stdout as the bytes it is: a token may decode to a
// NUL byte, which C string output would stop at.
void write_text(std::string_view text);

// Parses "1,403,407" (spaces allowed) into ids; throws strata::Error otherwise.
std::vector<int32_t> parse_id_list(const std::string& text);

// Reads all of standard input.
std::string read_stdin();

// The ids that end a generation: generation_config.json's, else
// config.json's, else the tokenizer's EOS (tokenizer may be null).
std::vector<int32_t> eos_ids_of(const Model& model, const Tokenizer* tokenizer);

}  // namespace strata::cli
