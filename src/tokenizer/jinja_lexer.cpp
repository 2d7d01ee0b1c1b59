// Jinja's lexer (jinja2/lexer.py, 3.1) for the chat-template environment.
//
// Text outside tags is data. At a tag start the text before it may lose
// whitespace: all of it for `{%-`/`{{-`/`{#-`, or (lstrip_blocks) the blanks
// between the last newline and a `{%`/`{#` tag that starts its line. A tag
// end may eat what follows: all whitespace for `-%}`, one newline for `%}`
// (trim_blocks) and `#}`, nothing for `+%}` or `}}`.
#include "tokenizer/jinja_lexer.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "tokenizer/jinja_unicode.h"
#include "tokenizer/jinja_value.h"

namespace strata::jinja {
namespace {

[[noreturn]] void syntax_error(const std::string& message, int line) {
  raise("TemplateSyntaxError", message + " (line " + std::to_string(line) + ")");
}

// Python's str.rstrip() (Unicode whitespace).
std::string_view rstrip(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t i = start;
    if (!uni::is_space(uni::next(s, i))) break;
    end = start;
  }
  return s.substr(0, end);
}

// Length of the run of Python whitespace (`\s*`) at s[pos].
size_t whitespace_run(std::string_view s, size_t pos) {
  size_t i = pos;
  while (i < s.size()) {
    size_t j = i;
    if (!uni::is_space(uni::next(s, j))) break;
    i = j;
  }
  return i - pos;
}

bool all_whitespace(std::string_view s) { return !s.empty() && whitespace_run(s, 0) == s.size(); }

int count_newlines(std::string_view s) {
  int n = 0;
  for (const char c : s) n += c == '\n';
  return n;
}

bool is_name_start(unsigned char c) { return c == '_' || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c >= 0x80; }
bool is_name_char(unsigned char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// `(\d+_)*\d+` at s[pos]; returns the length matched (0: none).
size_t digits_run(std::string_view s, size_t pos) {
  size_t i = pos, matched = 0;
  while (i < s.size() && is_digit(s[i])) {
    while (i < s.size() && is_digit(s[i])) ++i;
    matched = i - pos;
    if (i + 1 < s.size() && s[i] == '_' && is_digit(s[i + 1])) {
      ++i;
    } else {
      break;
    }
  }
  return matched;
}

// jinja2.lexer.float_re at s[pos]: digits, then a fraction and/or an exponent.
size_t match_float(std::string_view s, size_t pos) {
  if (pos > 0 && s[pos - 1] == '.') return 0;
  const size_t whole = digits_run(s, pos);
  if (!whole) return 0;
  size_t i = pos + whole;
  size_t fraction_end = 0;
  if (i + 1 < s.size() && s[i] == '.') {
    const size_t frac = digits_run(s, i + 1);
    if (frac) fraction_end = i + 1 + frac;
  }
  // Exponent, after the fraction or directly after the digits.
  const size_t before_exp = fraction_end ? fraction_end : i;
  if (before_exp < s.size() && (s[before_exp] | 0x20) == 'e') {
    size_t j = before_exp + 1;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
    const size_t exp = digits_run(s, j);
    if (exp) return j + exp - pos;
  }
  return fraction_end ? fraction_end - pos : 0;
}

// jinja2.lexer.integer_re at s[pos].
size_t match_integer(std::string_view s, size_t pos) {
  auto is_base_digit = [](char c, int base) {
    if (base == 2) return c == '0' || c == '1';
    if (base == 8) return c >= '0' && c <= '7';
    if (base == 16) return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
    return is_digit(c);
  };
  auto run = [&](size_t i, int base) {  // (_?d)+ from i
    const size_t start = i;
    while (true) {
      if (i < s.size() && is_base_digit(s[i], base)) {
        ++i;
      } else if (i + 1 < s.size() && s[i] == '_' && is_base_digit(s[i + 1], base)) {
        i += 2;
      } else {
        break;
      }
    }
    return i - start;
  };
  if (pos >= s.size() || !is_digit(s[pos])) return 0;
  if (s[pos] == '0' && pos + 1 < s.size()) {
    const char p = static_cast<char>(s[pos + 1] | 0x20);
    const int base = p == 'b' ? 2 : p == 'o' ? 8 : p == 'x' ? 16 : 0;
    if (base) {
      const size_t n = run(pos + 2, base);
      if (n) return 2 + n;
    }
  }
  if (s[pos] == '0') {  // 0(_?0)*
    size_t i = pos + 1;
    while (true) {
      if (i < s.size() && s[i] == '0') {
        ++i;
      } else if (i + 1 < s.size() && s[i] == '_' && s[i + 1] == '0') {
        i += 2;
      } else {
        break;
      }
    }
    return i - pos;
  }
  return 1 + run(pos + 1, 10);
}

int64_t parse_integer(std::string_view text, int line) {
  std::string clean;
  for (const char c : text)
    if (c != '_') clean += c;
  int base = 10;
  size_t start = 0;
  if (clean.size() > 1 && clean[0] == '0' && std::isalpha(static_cast<unsigned char>(clean[1]))) {
    const char p = static_cast<char>(clean[1] | 0x20);
    base = p == 'b' ? 2 : p == 'o' ? 8 : 16;
    start = 2;
  }
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(clean.c_str() + start, &end, base);
  if (errno == ERANGE || v > static_cast<unsigned long long>(INT64_MAX))
    syntax_error(cat("integer literal ", std::string(text), " is too large (64-bit integers only)"), line);
  return static_cast<int64_t>(v);
}

int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  c = static_cast<char>(c | 0x20);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The body of a string literal through Python's
// .encode("ascii", "backslashreplace").decode("unicode-escape"), as
// jinja2.lexer does: the usual escapes work, unknown ones stay as written.
std::string unescape(std::string_view body, int line) {
  std::string out;
  for (size_t i = 0; i < body.size();) {
    const char c = body[i];
    if (c != '\\') {
      const size_t start = i;
      uni::next(body, i);
      out.append(body.substr(start, i - start));
      continue;
    }
    if (i + 1 >= body.size()) syntax_error("\\ at end of string", line);
    const auto n = static_cast<unsigned char>(body[i + 1]);
    if (n >= 0x80) {
      // backslashreplace turned the character into \xNN/\uNNNN text, so the
      // escaped backslash stays and the escape's text follows literally.
      size_t j = i + 1;
      const char32_t cp = uni::next(body, j);
      char buf[16];
      if (cp <= 0xFF) {
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(cp));
      } else if (cp <= 0xFFFF) {
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
      } else {
        std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(cp));
      }
      out += buf;
      i = j;
      continue;
    }
    i += 2;
    switch (n) {
      case '\n':
        break;
      case '\\':
        out += '\\';
        break;
      case '\'':
        out += '\'';
        break;
      case '"':
        out += '"';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
      case 'u':
      case 'U': {
        const size_t digits = n == 'x' ? 2 : n == 'u' ? 4 : 8;
        char32_t cp = 0;
        for (size_t k = 0; k < digits; ++k) {
          const int h = i + k < body.size() ? hex_value(body[i + k]) : -1;
          if (h < 0) {
            syntax_error(n == 'x'   ? "truncated \\xXX escape"
                         : n == 'u' ? "truncated \\uXXXX escape"
                                    : "truncated \\UXXXXXXXX escape",
                         line);
          }
          cp = cp * 16 + static_cast<char32_t>(h);
        }
        i += digits;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) syntax_error("illegal Unicode character", line);
        uni::append(out, cp);
        break;
      }
      case 'N':
        syntax_error("\\N{...} escapes are not supported", line);
      default:
        if (n >= '0' && n <= '7') {
          char32_t cp = n - '0';
          for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k)
            cp = cp * 8 + (body[i++] - '0');
          uni::append(out, cp);
        } else {
          out += '\\';
          out += static_cast<char>(n);
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) root();
    push(Tok::Eof, "");
    return std::move(tokens_);
  }

 private:
  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;  // the last match ended with a newline
  std::vector<Token> tokens_;

  void push(Tok type, std::string text) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.line = line_;
    tokens_.push_back(std::move(t));
  }

  bool at(size_t p, std::string_view s) const { return std::string_view(src_).substr(p, s.size()) == s; }

  // The text before a tag, with the tag's whitespace control applied.
  void emit_text_before_tag(std::string_view text, char sign, bool lstrip_allowed) {
    std::string_view kept = text;
    if (sign == '-') {
      kept = rstrip(text);
    } else if (sign != '+' && lstrip_allowed) {
      const size_t nl = text.rfind('\n');
      const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && all_whitespace(text.substr(l_pos))) kept = text.substr(0, l_pos);
    }
    if (!kept.empty()) push(Tok::Data, std::string(kept));
    line_ += count_newlines(text);
  }

  // Matches `{%[-+]?\s*raw\s*(-%}\s*|%})` at p; returns its end or 0.
  size_t match_raw_begin(size_t p) const {
    size_t i = p + 2;
    if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) ++i;
    i += whitespace_run(src_, i);
    if (!at(i, "raw")) return 0;
    i += 3;
    i += whitespace_run(src_, i);
    if (at(i, "-%}")) return i + 3 + whitespace_run(src_, i + 3);
    if (at(i, "%}")) return i + 2;
    return 0;
  }

  void root() {
    // The earliest tag start: {{, {% (maybe raw) or {#.
    size_t p = pos_;
    while (true) {
      p = src_.find('{', p);
      if (p == std::string::npos || p + 1 >= src_.size()) {
        const std::string rest = src_.substr(pos_);
        if (!rest.empty()) push(Tok::Data, rest);
        line_ += count_newlines(rest);
        line_starting_ = !rest.empty() && rest.back() == '\n';
        pos_ = src_.size();
        return;
      }
      const char k = src_[p + 1];
      if (k == '{' || k == '%' || k == '#') break;
      ++p;
    }
    const char kind = src_[p + 1];
    const char sign = p + 2 < src_.size() && (src_[p + 2] == '-' || src_[p + 2] == '+') ? src_[p + 2] : 0;
    const std::string_view text = std::string_view(src_).substr(pos_, p - pos_);
    if (kind == '%') {
      if (const size_t raw_end = match_raw_begin(p)) {
        emit_text_before_tag(text, sign, true);
        line_ += count_newlines(std::string_view(src_).substr(p, raw_end - p));
        line_starting_ = src_[raw_end - 1] == '\n';
        pos_ = raw_end;
        raw_body();
        return;
      }
    }
    emit_text_before_tag(text, sign, kind != '{');
    pos_ = p + 2 + (sign ? 1 : 0);
    line_starting_ = false;
    if (kind == '#') {
      comment();
    } else {
      tag(kind == '%');
    }
  }

  void comment() {
    const int start_line = line_;
    for (size_t i = pos_; i + 1 < src_.size(); ++i) {
      size_t end = 0;
      if (at(i, "+#}")) {
        end = i + 3;
      } else if (at(i, "-#}")) {
        end = i + 3 + whitespace_run(src_, i + 3);
      } else if (at(i, "#}")) {
        end = i + 2 + (at(i + 2, "\n") ? 1 : 0);
      }
      if (end) {
        line_ += count_newlines(std::string_view(src_).substr(pos_, end - pos_));
        line_starting_ = src_[end - 1] == '\n';
        pos_ = end;
        return;
      }
    }
    syntax_error("Missing end of comment tag", start_line);
  }

  void raw_body() {
    for (size_t i = pos_; i + 1 < src_.size(); ++i) {
      if (!at(i, "{%")) continue;
      size_t j = i + 2;
      const char sign = j < src_.size() && (src_[j] == '-' || src_[j] == '+') ? src_[j] : 0;
      if (sign) ++j;
      j += whitespace_run(src_, j);
      if (!at(j, "endraw")) continue;
      j += 6;
      j += whitespace_run(src_, j);
      size_t end = 0;
      if (at(j, "+%}")) {
        end = j + 3;
      } else if (at(j, "-%}")) {
        end = j + 3 + whitespace_run(src_, j + 3);
      } else if (at(j, "%}")) {
        end = j + 2 + (at(j + 2, "\n") ? 1 : 0);
      }
      if (!end) continue;
      emit_text_before_tag(std::string_view(src_).substr(pos_, i - pos_), sign, true);
      line_ += count_newlines(std::string_view(src_).substr(i, end - i));
      line_starting_ = src_[end - 1] == '\n';
      pos_ = end;
      return;
    }
    syntax_error("Missing end of raw directive", line_);
  }

  // Tokens of a {% ... %} or {{ ... }} tag, up to and including its end.
  void tag(bool block) {
    push(block ? Tok::BlockBegin : Tok::VariableBegin, "");
    std::vector<char> brackets;
    const std::string_view s = src_;
    while (true) {
      if (pos_ >= s.size()) {
        syntax_error(std::string("unexpected end of template, expected '") +
                         (block ? "end of statement block" : "end of print statement") + "'",
                     line_);
      }
      if (brackets.empty()) {
        size_t end = 0;
        if (block) {
          if (at(pos_, "+%}")) {
            end = pos_ + 3;
          } else if (at(pos_, "-%}")) {
            end = pos_ + 3 + whitespace_run(s, pos_ + 3);
          } else if (at(pos_, "%}")) {
            end = pos_ + 2 + (at(pos_ + 2, "\n") ? 1 : 0);
          }
        } else {
          if (at(pos_, "-}}")) {
            end = pos_ + 3 + whitespace_run(s, pos_ + 3);
          } else if (at(pos_, "}}")) {
            end = pos_ + 2;
          }
        }
        if (end) {
          push(block ? Tok::BlockEnd : Tok::VariableEnd, "");
          line_ += count_newlines(s.substr(pos_, end - pos_));
          line_starting_ = s[end - 1] == '\n';
          pos_ = end;
          return;
        }
      }
      if (const size_t ws = whitespace_run(s, pos_)) {
        const std::string_view run = s.substr(pos_, ws);
        line_ += count_newlines(run);
        line_starting_ = run.back() == '\n';
        pos_ += ws;
        continue;
      }
      line_starting_ = false;
      if (const size_t n = match_float(s, pos_)) {
        std::string clean;
        for (const char c : s.substr(pos_, n))
          if (c != '_') clean += c;
        push(Tok::Float, std::string(s.substr(pos_, n)));
        tokens_.back().float_value = std::strtod(clean.c_str(), nullptr);
        pos_ += n;
        continue;
      }
      if (const size_t n = match_integer(s, pos_)) {
        push(Tok::Integer, std::string(s.substr(pos_, n)));
        tokens_.back().int_value = parse_integer(s.substr(pos_, n), line_);
        pos_ += n;
        continue;
      }
      const auto c = static_cast<unsigned char>(s[pos_]);
      if (is_name_start(c)) {
        size_t i = pos_ + 1;
        while (i < s.size() && is_name_char(static_cast<unsigned char>(s[i]))) ++i;
        std::string name(s.substr(pos_, i - pos_));
        // Jinja accepts Python identifiers; the engine keeps to letters, digits and _.
        for (size_t k = 0; k < name.size();) {
          const char32_t cp = uni::next(name, k);
          if (cp >= 0x80 && !uni::is_alnum(cp)) syntax_error("Invalid character in identifier", line_);
        }
        push(Tok::Name, std::move(name));
        pos_ = i;
        continue;
      }
      if (c == '\'' || c == '"') {
        size_t i = pos_ + 1;
        while (i < s.size() && s[i] != static_cast<char>(c)) i += s[i] == '\\' ? 2 : 1;
        if (i >= s.size())
          syntax_error(
              cat("unexpected char ", repr_str(std::string(1, static_cast<char>(c))), " at ", std::to_string(pos_)),
              line_);
        const std::string_view body = s.substr(pos_ + 1, i - pos_ - 1);
        push(Tok::String, unescape(body, line_));
        line_ += count_newlines(body);
        pos_ = i + 1;
        continue;
      }
      static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
      std::string op;
      for (const auto two : kTwo)
        if (at(pos_, two)) op = two;
      if (op.empty() && std::string_view("+-/*%~[](){}><=.:|,;").find(static_cast<char>(c)) != std::string_view::npos)
        op = std::string(1, static_cast<char>(c));
      if (op.empty()) {
        size_t i = pos_;
        const char32_t cp = uni::next(s, i);
        std::string ch;
        uni::append(ch, cp);
        syntax_error(cat("unexpected char ", repr_str(ch), " at ", std::to_string(pos_)), line_);
      }
      if (op == "(" || op == "[" || op == "{") {
        brackets.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
      } else if (op == ")" || op == "]" || op == "}") {
        if (brackets.empty()) syntax_error(cat("unexpected '", op, "'"), line_);
        if (brackets.back() != op[0])
          syntax_error(cat("unexpected '", op, "', expected '", std::string(1, brackets.back()), "'"), line_);
        brackets.pop_back();
      }
      push(Tok::Operator, op);
      pos_ += op.size();
    }
  }
};

// Jinja splits on \r\n, \r and \n, joins with \n, and drops one empty last
// line (keep_trailing_newline=False).
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
  if (!uni::valid_utf8(source)) raise("TemplateSyntaxError", "the template is not valid UTF-8 (line 1)");
  return Lexer(normalize_newlines(source)).run();
}

std::string describe(const Token& token) {
  switch (token.type) {
    case Tok::Name:
      return token.text;
    case Tok::Data:
      return "template data / text";
    case Tok::VariableBegin:
      return "begin of print statement";
    case Tok::VariableEnd:
      return "end of print statement";
    case Tok::BlockBegin:
      return "begin of statement block";
    case Tok::BlockEnd:
      return "end of statement block";
    case Tok::String:
      return "string";
    case Tok::Integer:
      return "integer";
    case Tok::Float:
      return "float";
    case Tok::Operator:
      return token.text;
    case Tok::Eof:
      return "end of template";
  }
  return "token";
}

}  // namespace strata::jinja
