// JSON in and out of the engine: the render context arrives as JSON
// (transformers gets Python data from json.loads, so the mapping is direct),
// and `tojson` is transformers' json.dumps.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "tokenizer/jinja_value.h"

namespace strata::jinja {

// JSON to template values: objects keep their key order (ordered_json), and
// numbers stay int or float as json.loads would make them. Integers beyond
// 64 bits become floats.
Value from_json(const nlohmann::ordered_json& json);

// json.dumps(value, ensure_ascii=..., indent=..., separators=..., sort_keys=...).
// indent: None, an int or a str. Raises TypeError for values json cannot encode.
std::string to_json(const Value& value, bool ensure_ascii, const Value& indent, std::string_view item_separator,
                    std::string_view key_separator, bool sort_keys);

}  // namespace strata::jinja
