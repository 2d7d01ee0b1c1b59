// Python str methods on UTF-8 text (CPython 3.11 Objects/unicodeobject.c
// semantics: code point indices, Unicode whitespace, full case mappings for
// the common one-to-many cases).
#include "tokenizer/jinja_strings.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_render.h"
#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {
namespace {

// Byte offset of the code point before `end`.
size_t prev_boundary(std::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

char32_t cp_at(std::string_view s, size_t offset) { return uni::next(s, offset); }

// Python's slice-style adjustment of find()'s start/end, in code points.
void adjust_range(int64_t len, std::optional<int64_t> start, std::optional<int64_t> end, int64_t& b, int64_t& e) {
  b = start.value_or(0);
  e = end.value_or(len);
  if (e > len) e = len;
  if (e < 0) e = std::max<int64_t>(0, e + len);
  if (b < 0) b = std::max<int64_t>(0, b + len);
}

}  // namespace

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  std::u32string set;
  if (chars) set = uni::decode(*chars);
  auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : uni::is_space(c); };
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e) {
      size_t next = b;
      if (!strip_it(uni::next(s, next))) break;
      b = next;
    }
  }
  if (right) {
    while (e > b) {
      const size_t start = prev_boundary(s, e);
      if (!strip_it(cp_at(s, start))) break;
      e = start;
    }
  }
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) raise("ValueError", "empty separator");
    if (!from_right) {
      size_t pos = 0;
      while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
        const size_t f = s.find(*sep, pos);
        if (f == std::string_view::npos) break;
        out.emplace_back(s.substr(pos, f - pos));
        pos = f + sep->size();
      }
      out.emplace_back(s.substr(pos));
      return out;
    }
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t f = s.substr(0, end).rfind(*sep);
      if (f == std::string_view::npos) break;
      out.emplace_back(s.substr(f + sep->size(), end - f - sep->size()));
      end = f;
    }
    out.emplace_back(s.substr(0, end));
    std::reverse(out.begin(), out.end());
    return out;
  }
  auto space_at = [&](size_t offset) { return uni::is_space(cp_at(s, offset)); };
  if (!from_right) {
    size_t i = 0;
    while (true) {
      while (i < s.size() && space_at(i)) uni::next(s, i);
      if (i >= s.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        out.emplace_back(s.substr(i));
        break;
      }
      size_t j = i;
      while (j < s.size() && !space_at(j)) uni::next(s, j);
      out.emplace_back(s.substr(i, j - i));
      i = j;
    }
    return out;
  }
  size_t e = s.size();
  while (true) {
    while (e > 0 && space_at(prev_boundary(s, e))) e = prev_boundary(s, e);
    if (e == 0) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      out.emplace_back(s.substr(0, e));
      break;
    }
    size_t b = e;
    while (b > 0 && !space_at(prev_boundary(s, b))) b = prev_boundary(s, b);
    out.emplace_back(s.substr(b, e - b));
    e = b;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
  std::vector<std::string> out;
  size_t start = 0, i = 0;
  while (i < s.size()) {
    const size_t at = i;
    const char32_t c = uni::next(s, i);
    if (!uni::is_line_break(c)) continue;
    size_t end_of_break = i;
    if (c == '\r' && i < s.size() && s[i] == '\n') end_of_break = ++i;
    out.emplace_back(s.substr(start, (keepends ? end_of_break : at) - start));
    start = i;
  }
  if (start < s.size()) out.emplace_back(s.substr(start));
  return out;
}

std::string py_replace(std::string_view s, std::string_view old, std::string_view with, int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts `with` before every code point and at the end.
    int64_t done = 0;
    size_t i = 0;
    while (i <= s.size()) {
      if (count < 0 || done < count) {
        out += with;
        ++done;
      }
      if (i == s.size()) break;
      const size_t start = i;
      uni::next(s, i);
      out.append(s.substr(start, i - start));
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t f = s.find(old, pos);
    if (f == std::string_view::npos) break;
    out.append(s.substr(pos, f - pos));
    out += with;
    pos = f + old.size();
    ++done;
  }
  out.append(s.substr(pos));
  return out;
}

int64_t py_find(std::string_view s, std::string_view sub, std::optional<int64_t> start, std::optional<int64_t> end,
                bool from_right) {
  const auto len = static_cast<int64_t>(uni::length(s));
  int64_t b, e;
  adjust_range(len, start, end, b, e);
  if (b > len || e - b < static_cast<int64_t>(uni::length(sub))) return -1;
  const size_t bb = uni::byte_offset(s, static_cast<size_t>(b));
  const size_t eb = uni::byte_offset(s, static_cast<size_t>(e));
  const std::string_view window = s.substr(bb, eb - bb);
  const size_t f = from_right ? window.rfind(sub) : window.find(sub);
  if (f == std::string_view::npos) return -1;
  return b + static_cast<int64_t>(uni::cp_index(window, f));
}

int64_t py_count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(uni::length(s)) + 1;
  int64_t n = 0;
  for (size_t pos = s.find(sub); pos != std::string_view::npos; pos = s.find(sub, pos + sub.size())) ++n;
  return n;
}

std::string py_upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) uni::append_upper(out, uni::next(s, i));
  return out;
}

std::string py_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) uni::append_lower(out, uni::next(s, i));
  return out;
}

std::string py_title(std::string_view s) {
  std::string out;
  bool previous_cased = false;
  for (size_t i = 0; i < s.size();) {
    const char32_t c = uni::next(s, i);
    if (previous_cased) {
      uni::append_lower(out, c);
    } else {
      uni::append_title(out, c);
    }
    previous_cased = uni::is_cased(c);
  }
  return out;
}

std::string py_capitalize(std::string_view s) {
  std::string out;
  bool first = true;
  for (size_t i = 0; i < s.size();) {
    const char32_t c = uni::next(s, i);
    if (first) {
      first = false;
      uni::append_title(out, c);
    } else {
      uni::append_lower(out, c);
    }
  }
  return out;
}

std::string py_swapcase(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const char32_t c = uni::next(s, i);
    if (uni::is_upper(c)) {
      uni::append_lower(out, c);
    } else if (uni::is_lower(c)) {
      uni::append_upper(out, c);
    } else {
      uni::append(out, c);
    }
  }
  return out;
}

std::string py_pad(std::string_view s, int64_t width, std::string_view fill, char align) {
  const auto len = static_cast<int64_t>(uni::length(s));
  if (width <= len) return std::string(s);
  if (width > (int64_t{1} << 26)) raise("OverflowError", "padding width too large");
  const int64_t marg = width - len;
  int64_t left = 0;
  if (align == '>') left = marg;
  if (align == '^') left = marg / 2 + (marg & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = left; i < marg; ++i) out += fill;
  return out;
}

namespace {

struct Spec {
  std::string fill = " ";
  char align = 0;
  char sign = '-';
  bool alternate = false;
  bool zero = false;
  int64_t width = -1;
  char grouping = 0;
  int precision = -1;
  char type = 0;
};

Spec parse_spec(std::string_view spec) {
  Spec s;
  size_t i = 0;
  auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  // A fill character may be any code point, followed by an alignment.
  if (!spec.empty()) {
    size_t j = 0;
    uni::next(spec, j);
    if (j < spec.size() && is_align(spec[j])) {
      s.fill = std::string(spec.substr(0, j));
      s.align = spec[j];
      i = j + 1;
    } else if (is_align(spec[0])) {
      s.align = spec[0];
      i = 1;
    }
  }
  if (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == ' ')) s.sign = spec[i++];
  if (i < spec.size() && spec[i] == '#') {
    s.alternate = true;
    ++i;
  }
  if (i < spec.size() && spec[i] == '0') {
    s.zero = true;
    ++i;
  }
  while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9') {
    s.width = std::max<int64_t>(s.width, 0) * 10 + (spec[i++] - '0');
    if (s.width > 100000) raise("ValueError", "Too many decimal digits in format string");
  }
  if (i < spec.size() && (spec[i] == ',' || spec[i] == '_')) s.grouping = spec[i++];
  if (i < spec.size() && spec[i] == '.') {
    ++i;
    s.precision = 0;
    if (i >= spec.size() || spec[i] < '0' || spec[i] > '9') raise("ValueError", "Format specifier missing precision");
    while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9') {
      s.precision = s.precision * 10 + (spec[i++] - '0');
      if (s.precision > 100000) raise("ValueError", "Too many decimal digits in format string");
    }
  }
  if (i < spec.size()) s.type = spec[i++];
  if (i < spec.size()) raise("ValueError", "Invalid format specifier");
  return s;
}

std::string group_digits(const std::string& digits, char sep) {
  if (!sep) return digits;
  std::string out;
  const size_t n = digits.size();
  for (size_t i = 0; i < n; ++i) {
    if (i && (n - i) % 3 == 0) out += sep;
    out += digits[i];
  }
  return out;
}

std::string align_number(const std::string& sign, const std::string& body, const Spec& s) {
  const auto len = static_cast<int64_t>(uni::length(sign) + uni::length(body));
  const char align = s.align ? s.align : (s.zero ? '=' : '>');
  const std::string fill = !s.align && s.zero ? "0" : s.fill;
  if (s.width <= len) return sign + body;
  if (align == '=') {
    std::string out = sign;
    for (int64_t i = len; i < s.width; ++i) out += fill;
    return out + body;
  }
  return py_pad(sign + body, s.width, fill, align);
}

}  // namespace

std::string py_format_value(const Value& v, std::string_view spec_text) {
  if (spec_text.empty()) return to_str(v);
  const Spec s = parse_spec(spec_text);
  if (v.is_str()) {
    if (s.type && s.type != 's')
      raise("ValueError", std::string("Unknown format code '") + s.type + "' for object of type 'str'");
    std::string text = v.as_str();
    if (s.precision >= 0) text = text.substr(0, uni::byte_offset(text, static_cast<size_t>(s.precision)));
    return py_pad(text, s.width, s.fill, s.align ? (s.align == '=' ? '<' : s.align) : '<');
  }
  if (v.is_int() && (!s.type || std::string_view("bdoxXcn").find(s.type) != std::string_view::npos)) {
    const int64_t i = v.as_int();
    const uint64_t mag = i < 0 ? 0 - static_cast<uint64_t>(i) : static_cast<uint64_t>(i);
    std::string digits;
    if (s.type == 'c') {
      uni::append(digits, static_cast<char32_t>(mag));
      return py_pad(digits, s.width, s.fill, s.align ? s.align : '<');
    }
    const int base = s.type == 'b' ? 2 : s.type == 'o' ? 8 : (s.type == 'x' || s.type == 'X') ? 16 : 10;
    uint64_t m = mag;
    do {
      digits.insert(digits.begin(), "0123456789abcdef"[m % static_cast<uint64_t>(base)]);
      m /= static_cast<uint64_t>(base);
    } while (m);
    if (s.type == 'X')
      for (char& c : digits) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    digits = group_digits(digits, s.grouping);
    std::string sign = i < 0 ? "-" : s.sign == '+' ? "+" : s.sign == ' ' ? " " : "";
    if (s.alternate && base != 10) sign += base == 2 ? "0b" : base == 8 ? "0o" : s.type == 'X' ? "0X" : "0x";
    return align_number(sign, digits, s);
  }
  if (v.is_number()) {
    double d = v.as_float();
    char type = s.type;
    std::string body;
    if (!type) {
      if (s.precision < 0) {
        body = float_repr(std::fabs(d));
      } else {
        char buf[512];
        std::snprintf(buf, sizeof buf, "%.*g", std::max(s.precision, 1), std::fabs(d));
        body = buf;
        if (body.find_first_of(".e") == std::string::npos && std::isfinite(d)) body += ".0";
      }
    } else if (std::string_view("eEfFgG%n").find(type) != std::string_view::npos) {
      const bool percent = type == '%';
      if (percent) {
        d *= 100;
        type = 'f';
      }
      if (type == 'n') type = 'g';
      const std::string cfmt = std::string(s.alternate ? "%#.*" : "%.*") + type;
      const int precision = s.precision < 0 ? 6 : s.precision;
      std::vector<char> buf(static_cast<size_t>(precision) + 400);
      std::snprintf(buf.data(), buf.size(), cfmt.c_str(), precision, std::fabs(d));
      body = buf.data();
      if (percent) body += '%';
    } else {
      raise("ValueError", std::string("Unknown format code '") + type + "' for object of type '" + type_name(v) + "'");
    }
    if (s.grouping) {
      const size_t dot = body.find_first_of(".e%");
      body = group_digits(body.substr(0, dot), s.grouping) + (dot == std::string::npos ? "" : body.substr(dot));
    }
    const bool negative = std::signbit(d) && !std::isnan(d);
    const std::string sign = negative ? "-" : s.sign == '+' ? "+" : s.sign == ' ' ? " " : "";
    return align_number(sign, body, s);
  }
  raise("TypeError", cat("unsupported format string passed to ", type_name(v), ".__format__"));
}

std::string py_format(Renderer& r, std::string_view fmt, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  bool used_auto = false, used_manual = false;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      raise("ValueError", "Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i + 1);
    if (close == std::string_view::npos) raise("ValueError", "Single '{' encountered in format string");
    const std::string_view field = fmt.substr(i + 1, close - i - 1);
    i = close;
    size_t name_end = field.find_first_of("!:");
    const std::string_view name_part = field.substr(0, name_end);
    char conversion = 0;
    std::string_view spec;
    if (name_end != std::string_view::npos && field[name_end] == '!') {
      if (name_end + 1 >= field.size()) raise("ValueError", "end of string while looking for conversion specifier");
      conversion = field[name_end + 1];
      if (name_end + 2 < field.size() && field[name_end + 2] != ':')
        raise("ValueError", "expected ':' after conversion specifier");
      if (name_end + 2 < field.size()) spec = field.substr(name_end + 3);
    } else if (name_end != std::string_view::npos) {
      spec = field.substr(name_end + 1);
    }
    // The first part names an argument; .attr and [key] parts walk into it.
    const size_t first_end = std::min(name_part.find_first_of(".["), name_part.size());
    const std::string_view first = name_part.substr(0, first_end);
    Value value;
    if (first.empty()) {
      if (used_manual)
        raise("ValueError", "cannot switch from manual field specification to automatic field numbering");
      used_auto = true;
      if (auto_index >= args.positional.size())
        raise("IndexError",
              cat("Replacement index ", std::to_string(auto_index), " out of range for positional args tuple"));
      value = args.positional[auto_index++];
    } else if (std::all_of(first.begin(), first.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      if (used_auto) raise("ValueError", "cannot switch from automatic field numbering to manual field specification");
      used_manual = true;
      const size_t index = std::stoul(std::string(first));
      if (index >= args.positional.size())
        raise("IndexError", cat("Replacement index ", std::string(first), " out of range for positional args tuple"));
      value = args.positional[index];
    } else {
      bool found = false;
      for (const auto& [k, v] : args.keyword)
        if (k == first) {
          value = v;
          found = true;
        }
      if (!found) raise("KeyError", repr_str(first));
    }
    for (size_t p = first_end; p < name_part.size();) {
      if (name_part[p] == '.') {
        const size_t end = std::min(name_part.find_first_of(".[", p + 1), name_part.size());
        value = get_attr(value, name_part.substr(p + 1, end - p - 1));
        p = end;
      } else {
        const size_t end = name_part.find(']', p);
        if (end == std::string_view::npos) raise("ValueError", "Missing ']' in format string");
        const std::string_view key = name_part.substr(p + 1, end - p - 1);
        const bool numeric =
            !key.empty() && std::all_of(key.begin(), key.end(), [](char d) { return d >= '0' && d <= '9'; });
        value = get_item(value, numeric ? Value::integer(std::stoll(std::string(key))) : Value::str(std::string(key)));
        p = end + 1;
      }
    }
    if (value.is_undefined()) raise_undefined(value);
    if (conversion == 'r' || conversion == 'a') {
      value = Value::str(repr(value));
    } else if (conversion == 's') {
      value = Value::str(to_str(value));
    } else if (conversion) {
      raise("ValueError", std::string("Unknown conversion specifier ") + conversion);
    }
    out += py_format_value(value, spec);
    r.check_string(out.size());
  }
  return out;
}

}  // namespace strata::jinja
