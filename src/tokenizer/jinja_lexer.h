// Splits a template into Jinja's token stream, with the whitespace rules of
// the environment transformers builds (chat_template_utils.py):
// trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False, and the
// `-`/`+` markers on tags. Mirrors jinja2/lexer.py (3.1): the same rules in
// the same order, written as a hand scanner instead of regular expressions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::jinja {

enum class Tok : uint8_t {
  Data,           // template text
  VariableBegin,  // {{
  VariableEnd,    // }}
  BlockBegin,     // {%
  BlockEnd,       // %}
  Name,
  String,
  Integer,
  Float,
  Operator,  // text holds the operator: + - / // * % ** ~ [ ] ( ) { } == != > >= < <= = . : | , ;
  Eof,
};

struct Token {
  Tok type = Tok::Eof;
  std::string text;  // data, name, decoded string, operator
  int64_t int_value = 0;
  double float_value = 0.0;
  int line = 1;

  bool is_op(std::string_view op) const { return type == Tok::Operator && text == op; }
  bool is_name(std::string_view name) const { return type == Tok::Name && text == name; }
};

// Throws strata::jinja::RenderError("TemplateSyntaxError", "... (line N)")
// for an unclosed comment, an unterminated tag or a character that starts
// no token.
std::vector<Token> tokenize(std::string_view source);

// What a token is called in syntax errors, as jinja2.lexer.describe_token says it.
std::string describe(const Token& token);

}  // namespace strata::jinja
