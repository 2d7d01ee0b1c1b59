// Python's str methods over UTF-8 text, indexed by code point as Python is:
// strip, split, splitlines, replace, find, case changes and str.format.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace strata::jinja {

// str.strip/lstrip/rstrip; chars: the code points to remove (nullopt: whitespace).
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split / str.rsplit; sep nullopt splits on whitespace runs; maxsplit < 0: no limit.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right);
std::vector<std::string> py_splitlines(std::string_view s, bool keepends);
std::string py_replace(std::string_view s, std::string_view old, std::string_view with, int64_t count);
// str.find/rfind over [start, end) in code points; -1 when absent.
int64_t py_find(std::string_view s, std::string_view sub, std::optional<int64_t> start, std::optional<int64_t> end,
                bool from_right);
int64_t py_count(std::string_view s, std::string_view sub);
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_title(std::string_view s);
std::string py_capitalize(std::string_view s);
std::string py_swapcase(std::string_view s);
// str.center/ljust/rjust with a one-character fill.
std::string py_pad(std::string_view s, int64_t width, std::string_view fill, char align);
// str.format(*args, **kwargs) as Jinja's sandboxed formatter runs it.
std::string py_format(Renderer& r, std::string_view fmt, const CallArgs& args);
// format(value, spec): the format-spec mini-language for str, int and float.
std::string py_format_value(const Value& v, std::string_view spec);

}  // namespace strata::jinja
