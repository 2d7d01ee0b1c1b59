// Parsing tokenizer.json without building a DOM for its two big members.
//
// A Qwen2 tokenizer.json is 5.4 MB, nearly all of it model.vocab (151k
// entries) and model.merges (151k pairs). As nlohmann::json values those are a
// std::map of 151k nodes and 151k small arrays, which cost more to build, walk
// and free than everything else in loading. A SAX handler instead collects
// them straight into flat vectors and builds an ordinary DOM for the rest.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace strata::tokenizer_detail {

struct TokenizerJson {
  // The document, minus model.vocab when it was an object and model.merges
  // when it was an array (those are below instead).
  nlohmann::json rest;
  std::optional<std::vector<std::pair<std::string, int64_t>>> vocab;
  // Each merge as its two tokens, from either "a b" or ["a", "b"].
  std::optional<std::vector<std::pair<std::string, std::string>>> merges;
};

// Throws strata::Error naming `file` for malformed JSON or a vocab/merges
// entry of the wrong shape.
TokenizerJson parse_tokenizer_json(const std::string& text, const std::string& file);

}  // namespace strata::tokenizer_detail
