// Python's operators on template values: arithmetic (64-bit ints that raise
// OverflowError where Python would grow a big int), concatenation with
// Markup's escaping, `in`, slicing, and printf-style `str % args`.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace strata::jinja {

Value binary_op(Renderer& r, BinOp op, const Value& a, const Value& b);
Value unary_op(UnaryOp op, const Value& a);  // Neg or Pos
// `item in container`.
bool contains(const Value& container, const Value& item);
// obj[start:stop:step] for str, list, tuple and range; raises what Python raises otherwise.
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// markupsafe.escape of text: & < > ' " become entities.
std::string html_escape(std::string_view text);
// `fmt % args`, Python's printf-style formatting.
std::string percent_format(Renderer& r, std::string_view fmt, const Value& args);

}  // namespace strata::jinja
