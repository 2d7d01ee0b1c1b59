#include "cli_util.h"

#include <charconv>
#include <cstdio>
#include <iostream>
#include <iterator>

#include "strata/error.h"
#include "strata/model.h"
#include "strata/tokenizer.h"

namespace strata::cli {

std::vector<int32_t> eos_ids_of(const Model& model, const Tokenizer* tokenizer) {
  std::vector<int32_t> ids = model.generation_config().eos_token_ids;
  if (ids.empty()) ids = model.config().eos_token_ids;
  if (ids.empty() && tokenizer && tokenizer->eos_id()) ids.push_back(*tokenizer->eos_id());
  return ids;
}

void write_text(std::string_view text) { std::fwrite(text.data(), 1, text.size(), stdout); }

std::vector<int32_t> parse_id_list(const std::string& text) {
  std::vector<int32_t> ids;
  size_t at = 0;
  while (at <= text.size()) {
    size_t end = text.find(',', at);
    if (end == std::string::npos) end = text.size();
    size_t b = at, e = end;
    while (b < e && text[b] == ' ') ++b;
    while (e > b && text[e - 1] == ' ') --e;
    int32_t value = 0;
    const auto [ptr, ec] = std::from_chars(text.data() + b, text.data() + e, value);
    if (b == e || ec != std::errc() || ptr != text.data() + e || value < 0)
      throw Error("bad token id list '" + text + "'", "", "", "expected non-negative integers like 1,403,407");
    ids.push_back(value);
    at = end + 1;
  }
  return ids;
}

std::string read_stdin() {
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

}  // namespace strata::cli
