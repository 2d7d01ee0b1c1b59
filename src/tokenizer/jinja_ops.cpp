// Python's arithmetic, concatenation, membership, slicing and %-formatting
// on template values, with CPython 3.11's error messages.
#include "tokenizer/jinja_ops.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "tokenizer/jinja_render.h"
#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {
namespace {

const char* op_symbol(BinOp op) {
  switch (op) {
    case BinOp::Add:
      return "+";
    case BinOp::Sub:
      return "-";
    case BinOp::Mul:
      return "*";
    case BinOp::Div:
      return "/";
    case BinOp::FloorDiv:
      return "//";
    case BinOp::Mod:
      return "%";
    case BinOp::Pow:
      return "** or pow()";
  }
  return "?";
}

[[noreturn]] void unsupported(BinOp op, const Value& a, const Value& b) {
  raise("TypeError", std::string("unsupported operand type(s) for ") + op_symbol(op) + ": '" + type_name(a) +
                         "' and '" + type_name(b) + "'");
}

[[noreturn]] void overflow() { raise("OverflowError", "integer result does not fit in 64 bits"); }

bool is_float_op(const Value& a, const Value& b) { return a.kind() == Kind::Float || b.kind() == Kind::Float; }

// CPython's float_divmod (Objects/floatobject.c), for // and % on floats.
void float_divmod(double vx, double wx, double& floordiv, double& mod) {
  mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
}

Value repeat(Renderer& r, const Value& seq, int64_t times) {
  if (times < 0) times = 0;
  if (seq.is_str()) {
    const std::string& s = seq.as_str();
    if (!s.empty() && static_cast<uint64_t>(times) > r.config().max_output_bytes / s.size()) r.check_string(SIZE_MAX);
    r.check_string(s.size() * static_cast<size_t>(times));
    std::string out;
    out.reserve(s.size() * static_cast<size_t>(times));
    for (int64_t i = 0; i < times; ++i) out += s;
    return Value::str(std::move(out), seq.is_markup());
  }
  const auto& items = seq.as_seq().items;
  if (!items.empty() && static_cast<uint64_t>(times) > (uint64_t{1} << 24) / items.size())
    raise("SecurityError", "a list repetition would build more than 16777216 items");
  r.charge(items.size() * static_cast<uint64_t>(times));
  std::vector<Value> out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::seq(std::move(out), seq.as_seq().type);
}

bool is_list_or_tuple(const Value& v) { return v.is_seq(SeqType::List) || v.is_seq(SeqType::Tuple); }

Value add(Renderer& r, const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (is_float_op(a, b)) return Value::real(a.as_float() + b.as_float());
    int64_t out;
    if (__builtin_add_overflow(a.as_int(), b.as_int(), &out)) overflow();
    return Value::integer(out);
  }
  if (a.is_str() && b.is_str()) {
    r.check_string(a.as_str().size() + b.as_str().size());
    // Markup + str escapes the str (markupsafe.Markup.__add__/__radd__).
    if (a.is_markup() != b.is_markup()) {
      return Value::str(a.is_markup() ? a.as_str() + html_escape(b.as_str()) : html_escape(a.as_str()) + b.as_str(),
                        true);
    }
    return Value::str(a.as_str() + b.as_str(), a.is_markup());
  }
  if (is_list_or_tuple(a) && b.kind() == Kind::Seq && a.as_seq().type == b.as_seq().type) {
    std::vector<Value> out = a.as_seq().items;
    r.charge(out.size() + b.as_seq().items.size());
    out.insert(out.end(), b.as_seq().items.begin(), b.as_seq().items.end());
    return Value::seq(std::move(out), a.as_seq().type);
  }
  if ((a.is_str() && !a.is_markup()) || is_list_or_tuple(a))
    raise("TypeError", cat("can only concatenate ", type_name(a), " (not \"", type_name(b), "\") to ", type_name(a)));
  unsupported(BinOp::Add, a, b);
}

Value multiply(Renderer& r, const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (is_float_op(a, b)) return Value::real(a.as_float() * b.as_float());
    int64_t out;
    if (__builtin_mul_overflow(a.as_int(), b.as_int(), &out)) overflow();
    return Value::integer(out);
  }
  const bool a_seq = a.is_str() || is_list_or_tuple(a);
  const bool b_seq = b.is_str() || is_list_or_tuple(b);
  // Markup's __mul__/__rmul__ hand the other operand to str.__mul__.
  if (a.is_markup() && !b.is_int())
    raise("TypeError", cat("'", type_name(b), "' object cannot be interpreted as an integer"));
  if (b.is_markup() && !a.is_int())
    raise("TypeError", cat("'", type_name(a), "' object cannot be interpreted as an integer"));
  if (a_seq && b.is_int()) return repeat(r, a, b.as_int());
  if (b_seq && a.is_int()) return repeat(r, b, a.as_int());
  if (a_seq) raise("TypeError", cat("can't multiply sequence by non-int of type '", type_name(b), "'"));
  if (b_seq) raise("TypeError", cat("can't multiply sequence by non-int of type '", type_name(a), "'"));
  unsupported(BinOp::Mul, a, b);
}

Value divide(const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) unsupported(BinOp::Div, a, b);
  if (b.as_float() == 0.0)
    raise("ZeroDivisionError", is_float_op(a, b) ? "float division by zero" : "division by zero");
  if (!is_float_op(a, b)) {
    return Value::real(
        static_cast<double>(static_cast<long double>(a.as_int()) / static_cast<long double>(b.as_int())));
  }
  return Value::real(a.as_float() / b.as_float());
}

Value floor_divide(const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) unsupported(BinOp::FloorDiv, a, b);
  if (is_float_op(a, b)) {
    if (b.as_float() == 0.0) raise("ZeroDivisionError", "float floor division by zero");
    double div, mod;
    float_divmod(a.as_float(), b.as_float(), div, mod);
    return Value::real(div);
  }
  const int64_t x = a.as_int(), y = b.as_int();
  if (y == 0) raise("ZeroDivisionError", "integer division or modulo by zero");
  if (x == std::numeric_limits<int64_t>::min() && y == -1) overflow();
  int64_t q = x / y;
  if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
  return Value::integer(q);
}

Value modulo(Renderer& r, const Value& a, const Value& b) {
  if (a.is_str()) return Value::str(percent_format(r, a.as_str(), b), a.is_markup());
  if (!a.is_number() || !b.is_number()) unsupported(BinOp::Mod, a, b);
  if (is_float_op(a, b)) {
    if (b.as_float() == 0.0) raise("ZeroDivisionError", "float modulo");
    double div, mod;
    float_divmod(a.as_float(), b.as_float(), div, mod);
    return Value::real(mod);
  }
  const int64_t x = a.as_int(), y = b.as_int();
  if (y == 0) raise("ZeroDivisionError", "integer modulo by zero");
  if (y == -1) return Value::integer(0);
  int64_t m = x % y;
  if (m != 0 && ((m < 0) != (y < 0))) m += y;
  return Value::integer(m);
}

Value power(const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) unsupported(BinOp::Pow, a, b);
  if (!is_float_op(a, b) && b.as_int() >= 0) {
    int64_t base = a.as_int(), exp = b.as_int(), result = 1;
    while (exp > 0) {
      if (exp & 1)
        if (__builtin_mul_overflow(result, base, &result)) overflow();
      exp >>= 1;
      if (exp > 0 && __builtin_mul_overflow(base, base, &base)) overflow();
    }
    return Value::integer(result);
  }
  if (a.as_float() == 0.0 && b.as_float() < 0) raise("ZeroDivisionError", "0.0 cannot be raised to a negative power");
  return Value::real(std::pow(a.as_float(), b.as_float()));
}

// Python's PySlice_AdjustIndices: clamps start/stop for a sequence of `len`.
void adjust_slice(int64_t len, const Value& start_v, const Value& stop_v, int64_t step, int64_t& start, int64_t& stop) {
  auto clamp = [&](const Value& v, int64_t dflt_pos, int64_t dflt_neg) {
    if (v.is_none()) return step < 0 ? dflt_neg : dflt_pos;
    int64_t i = v.as_int();
    if (i < 0) {
      i += len;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= len) {
      i = step < 0 ? len - 1 : len;
    }
    return i;
  };
  start = clamp(start_v, 0, len - 1);
  stop = clamp(stop_v, len, -1);
}

template <typename Seq>
Seq take_slice(const Seq& seq, int64_t start, int64_t stop, int64_t step) {
  Seq out;
  if (step > 0) {
    for (int64_t i = start; i < stop; i += step) out.push_back(seq[static_cast<size_t>(i)]);
  } else {
    for (int64_t i = start; i > stop; i += step) out.push_back(seq[static_cast<size_t>(i)]);
  }
  return out;
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '"':
        out += "&#34;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

Value binary_op(Renderer& r, BinOp op, const Value& a, const Value& b) {
  // Undefined's arithmetic dunders raise, on either side of the operator,
  // except that str % x formats first (str's own __mod__ runs before x's).
  if (a.is_undefined()) raise_undefined(a);
  if (op == BinOp::Mod && a.is_str()) return Value::str(percent_format(r, a.as_str(), b), a.is_markup());
  if (b.is_undefined()) raise_undefined(b);
  switch (op) {
    case BinOp::Add:
      return add(r, a, b);
    case BinOp::Sub:
      if (!a.is_number() || !b.is_number()) unsupported(op, a, b);
      if (is_float_op(a, b)) return Value::real(a.as_float() - b.as_float());
      {
        int64_t out;
        if (__builtin_sub_overflow(a.as_int(), b.as_int(), &out)) overflow();
        return Value::integer(out);
      }
    case BinOp::Mul:
      return multiply(r, a, b);
    case BinOp::Div:
      return divide(a, b);
    case BinOp::FloorDiv:
      return floor_divide(a, b);
    case BinOp::Mod:
      return modulo(r, a, b);
    case BinOp::Pow:
      return power(a, b);
  }
  unsupported(op, a, b);
}

Value unary_op(UnaryOp op, const Value& a) {
  if (a.is_undefined()) raise_undefined(a);
  if (op == UnaryOp::Not) return Value::boolean(!truthy(a));
  if (a.kind() == Kind::Float) return Value::real(op == UnaryOp::Neg ? -a.as_float() : a.as_float());
  if (a.is_int()) {
    if (op == UnaryOp::Pos) return Value::integer(a.as_int());
    if (a.as_int() == std::numeric_limits<int64_t>::min()) overflow();
    return Value::integer(-a.as_int());
  }
  raise("TypeError",
        std::string("bad operand type for unary ") + (op == UnaryOp::Neg ? "-" : "+") + ": '" + type_name(a) + "'");
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::Undefined:
      return false;
    case Kind::Str:
      if (!item.is_str())
        raise("TypeError", cat("'in <string>' requires string as left operand, not ", type_name(item)));
      return container.as_str().find(item.as_str()) != std::string::npos;
    case Kind::Seq:
      for (const Value& v : iterate(container))
        if (equal(v, item)) return true;
      return false;
    case Kind::Dict:
      require_hashable(item);
      return container.as_dict().find(item) != nullptr;
    default:
      raise("TypeError", cat("argument of type '", type_name(container), "' is not iterable"));
  }
}

Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  // Jinja compiles slices to Python's own subscript (no sandbox getitem), so
  // what Python raises is raised.
  if (obj.is_undefined()) raise_undefined(obj);
  const bool sliceable =
      obj.is_str() || obj.is_seq(SeqType::List) || obj.is_seq(SeqType::Tuple) || obj.is_seq(SeqType::Range);
  if (!sliceable) {
    if (obj.kind() == Kind::Dict) raise("TypeError", "unhashable type: 'slice'");
    raise("TypeError", cat("'", type_name(obj), "' object is not subscriptable"));
  }
  for (const Value* v : {&start, &stop, &step}) {
    if (!v->is_none() && !v->is_int())
      raise("TypeError", "slice indices must be integers or None or have an __index__ method");
  }
  const int64_t st = step.is_none() ? 1 : step.as_int();
  if (st == 0) raise("ValueError", "slice step cannot be zero");
  if (obj.is_str()) {
    const std::string& s = obj.as_str();
    const bool ascii = uni::is_ascii(s);
    const int64_t len = static_cast<int64_t>(ascii ? s.size() : uni::length(s));
    int64_t b, e;
    adjust_slice(len, start, stop, st, b, e);
    if (ascii) return Value::str(take_slice(s, b, e, st), obj.is_markup());
    return Value::str(uni::encode(take_slice(uni::decode(s), b, e, st)), obj.is_markup());
  }
  const auto& items = obj.as_seq().items;
  int64_t b, e;
  adjust_slice(static_cast<int64_t>(items.size()), start, stop, st, b, e);
  return Value::seq(take_slice(items, b, e, st), obj.as_seq().type);
}

namespace {

struct FormatSpec {
  std::string flags;
  int width = -1;
  int precision = -1;
  char conversion = 's';
};

std::string pad(std::string text, const FormatSpec& spec, bool numeric) {
  const auto len = static_cast<int>(uni::length(text));
  if (spec.width <= len) return text;
  const size_t fill = static_cast<size_t>(spec.width - len);
  if (spec.flags.find('-') != std::string::npos) return text + std::string(fill, ' ');
  if (numeric && spec.flags.find('0') != std::string::npos) {
    size_t sign = (!text.empty() && (text[0] == '-' || text[0] == '+' || text[0] == ' ')) ? 1 : 0;
    if (text.size() > sign + 1 && text[sign] == '0' && (text[sign + 1] | 0x20) == 'x') sign += 2;
    return text.substr(0, sign) + std::string(fill, '0') + text.substr(sign);
  }
  return std::string(fill, ' ') + text;
}

std::string format_one(const Value& v, const FormatSpec& spec, size_t index) {
  const char conv = spec.conversion;
  auto sign_flags = [&](std::string s, bool negative) {
    if (!negative) {
      if (spec.flags.find('+') != std::string::npos) return std::string("+").append(s);
      if (spec.flags.find(' ') != std::string::npos) return std::string(" ").append(s);
    }
    return s;
  };
  switch (conv) {
    case 's':
    case 'r':
    case 'a': {
      std::string s = conv == 's' ? to_str(v) : repr(v);
      if (spec.precision >= 0) s = s.substr(0, uni::byte_offset(s, static_cast<size_t>(spec.precision)));
      return pad(std::move(s), spec, false);
    }
    case 'd':
    case 'i':
    case 'u':
    case 'x':
    case 'X':
    case 'o': {
      const bool integral_only = conv == 'x' || conv == 'X' || conv == 'o';
      if (!v.is_number() || (integral_only && v.kind() == Kind::Float)) {
        raise("TypeError", std::string("%") + conv + " format: " + (integral_only ? "an integer" : "a real number") +
                               " is required, not " + type_name(v));
      }
      double d = v.as_float();
      if (v.kind() == Kind::Float && (!std::isfinite(d) || std::fabs(d) >= 9.2e18))
        raise("OverflowError", "cannot convert float to a 64-bit integer");
      const int64_t i = v.kind() == Kind::Float ? static_cast<int64_t>(d) : v.as_int();
      const bool negative = i < 0;
      const uint64_t mag = negative ? 0 - static_cast<uint64_t>(i) : static_cast<uint64_t>(i);
      char buf[80];
      const char* fmt = conv == 'x' ? "%llx" : conv == 'X' ? "%llX" : conv == 'o' ? "%llo" : "%llu";
      std::snprintf(buf, sizeof buf, fmt, static_cast<unsigned long long>(mag));
      std::string digits = buf;
      if (spec.precision > static_cast<int>(digits.size()))
        digits = std::string(static_cast<size_t>(spec.precision) - digits.size(), '0') + digits;
      if (spec.flags.find('#') != std::string::npos && conv != 'd' && conv != 'i' && conv != 'u')
        digits = std::string(conv == 'o' ? "0o" : conv == 'x' ? "0x" : "0X").append(digits);
      return pad(sign_flags(std::string(negative ? "-" : "").append(digits), negative), spec, true);
    }
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G': {
      if (!v.is_number()) raise("TypeError", cat("must be real number, not ", type_name(v)));
      const double d = v.as_float();
      std::string cfmt = "%";
      for (const char f : spec.flags)
        if (f == '#') cfmt += f;
      const int precision = spec.precision < 0 ? 6 : spec.precision;
      cfmt += ".*";
      cfmt += conv;
      std::vector<char> buf(static_cast<size_t>(precision) + 400);
      std::snprintf(buf.data(), buf.size(), cfmt.c_str(), precision, std::fabs(d));
      std::string text = std::signbit(d) ? "-" : "";
      text += buf.data();
      return pad(sign_flags(std::move(text), std::signbit(d)), spec, true);
    }
    case 'c': {
      if (v.is_str() && uni::length(v.as_str()) == 1) return pad(v.as_str(), spec, false);
      if (!v.is_int()) raise("TypeError", "%c requires int or char");
      const int64_t cp = v.as_int();
      if (cp < 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        raise("OverflowError", "%c arg not in range(0x110000)");
      std::string s;
      uni::append(s, static_cast<char32_t>(cp));
      return pad(std::move(s), spec, false);
    }
    default: {
      char buf[96];
      std::snprintf(buf, sizeof buf, "unsupported format character '%c' (0x%x) at index %zu", conv,
                    static_cast<unsigned>(static_cast<unsigned char>(conv)), index);
      raise("ValueError", buf);
    }
  }
}

}  // namespace

std::string percent_format(Renderer& r, std::string_view fmt, const Value& args) {
  std::vector<Value> positional;
  const Value* mapping = nullptr;
  if (args.is_seq(SeqType::Tuple)) {
    positional = args.as_seq().items;
  } else {
    // CPython treats any subscriptable non-tuple (a dict, but also a list) as
    // the mapping for %(name)s, and then does not complain about unused arguments.
    if (args.kind() == Kind::Dict || args.is_seq(SeqType::List) || args.is_undefined()) mapping = &args;
    positional.push_back(args);
  }
  size_t next = 0;
  bool used_mapping = false;
  std::string out;
  auto next_arg = [&]() -> const Value& {
    if (next >= positional.size()) raise("TypeError", "not enough arguments for format string");
    return positional[next++];
  };
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    const size_t start = i;
    if (++i >= fmt.size()) raise("ValueError", "incomplete format");
    const Value* value = nullptr;
    if (fmt[i] == '(') {
      if (!mapping) raise("TypeError", "format requires a mapping");
      const size_t close = fmt.find(')', i);
      if (close == std::string_view::npos) raise("ValueError", "incomplete format key");
      if (mapping->is_undefined()) raise_undefined(*mapping);
      if (mapping->kind() != Kind::Dict) raise("TypeError", "list indices must be integers or slices, not str");
      const Value* found = mapping->as_dict().find(fmt.substr(i + 1, close - i - 1));
      if (!found) raise("KeyError", repr_str(fmt.substr(i + 1, close - i - 1)));
      value = found;
      used_mapping = true;
      i = close + 1;
    }
    FormatSpec spec;
    while (i < fmt.size() && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos) spec.flags += fmt[i++];
    if (i < fmt.size() && fmt[i] == '*') {
      spec.width = static_cast<int>(next_arg().as_int());
      ++i;
    } else {
      while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9')
        spec.width = std::max(spec.width, 0) * 10 + (fmt[i++] - '0');
    }
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      spec.precision = 0;
      if (i < fmt.size() && fmt[i] == '*') {
        spec.precision = static_cast<int>(next_arg().as_int());
        ++i;
      } else {
        while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9')
          spec.precision = spec.precision * 10 + (fmt[i++] - '0');
      }
    }
    if (spec.width > 100000 || spec.precision > 100000) raise("ValueError", "width or precision too big");
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) raise("ValueError", "incomplete format");
    spec.conversion = fmt[i];
    if (spec.conversion == '%') {
      out += '%';
      continue;
    }
    if (!value) value = &next_arg();
    out += format_one(*value, spec, i - start + start);
    r.check_string(out.size());
  }
  if (next < positional.size() && !used_mapping && !mapping)
    raise("TypeError", "not all arguments converted during string formatting");
  return out;
}

}  // namespace strata::jinja
