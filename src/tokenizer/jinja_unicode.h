// The parts of Python's str semantics that depend on Unicode, for the Jinja
// engine: code point iteration over UTF-8, str.isspace (also Python's `\s`),
// str.splitlines boundaries, str.isprintable (for repr), and case mapping.
// Strings inside the engine are always valid UTF-8 (checked where they enter:
// the template source and the JSON context), so decoding never fails here.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace strata::jinja::uni {

// Whether `s` is well-formed UTF-8 (no surrogates, no overlongs).
bool valid_utf8(std::string_view s);

// Decodes the code point that starts at s[i] and moves i past it.
char32_t next(std::string_view s, size_t& i);
void append(std::string& out, char32_t cp);
std::u32string decode(std::string_view s);
std::string encode(std::u32string_view cps);

bool is_ascii(std::string_view s);
// len() of a Python str.
size_t length(std::string_view s);
// The byte offset of code point `index` (index <= length).
size_t byte_offset(std::string_view s, size_t index);
// The code point index of byte offset `offset` (a code point boundary).
size_t cp_index(std::string_view s, size_t offset);

bool is_space(char32_t c);       // str.isspace(), and what re's \s matches in a str pattern
bool is_line_break(char32_t c);  // where str.splitlines() splits (\r\n counts once)
bool is_printable(char32_t c);   // str.isprintable(): what repr() leaves unescaped
bool is_alpha(char32_t c);
bool is_digit(char32_t c);    // str.isdigit()
bool is_decimal(char32_t c);  // str.isdecimal()
bool is_numeric(char32_t c);  // str.isnumeric()
bool is_alnum(char32_t c);
bool is_upper(char32_t c);
bool is_lower(char32_t c);
bool is_cased(char32_t c);
bool is_word(char32_t c);  // re's \w in a str pattern

// Python's str.upper()/lower()/title() of one code point. Python uses the
// full case mappings (so 'ß'.upper() is 'SS'); utf8proc gives the simple
// ones, and the few one-to-many mappings that chat templates could meet are
// special-cased.
void append_upper(std::string& out, char32_t c);
void append_lower(std::string& out, char32_t c);
void append_title(std::string& out, char32_t c);

}  // namespace strata::jinja::uni
