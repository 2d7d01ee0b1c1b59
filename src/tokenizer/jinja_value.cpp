// Value construction and the Python semantics every part of the engine
// shares: truthiness, str(), repr(), ==, ordering, iteration and len().
#include "tokenizer/jinja_value.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {

void raise(std::string_view cls, std::string message) { throw RenderError(std::string(cls), std::move(message)); }

namespace {

void check_depth(int depth) {
  if (depth > kMaxDepth) raise("RecursionError", "maximum nesting depth of values exceeded");
}

}  // namespace

Value Value::none() {
  Value v;
  v.kind_ = Kind::None;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::Bool;
  v.scalar_.b = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::Int;
  v.scalar_.i = i;
  return v;
}

Value Value::real(double d) {
  Value v;
  v.kind_ = Kind::Float;
  v.scalar_.f = d;
  return v;
}

Value Value::str(std::string text, bool markup) {
  Value v;
  v.kind_ = Kind::Str;
  v.markup_ = markup;
  auto obj = std::make_shared<StrObj>();
  obj->text = std::move(text);
  v.object_ = std::move(obj);
  return v;
}

Value Value::seq(std::vector<Value> items, SeqType type, const char* type_name) {
  auto obj = std::make_shared<SeqObj>();
  int depth = 0;
  for (const Value& item : items) depth = std::max(depth, item.depth());
  obj->depth = depth + 1;
  check_depth(obj->depth);
  obj->items = std::move(items);
  obj->type = type;
  obj->type_name = type_name                   ? type_name
                   : type == SeqType::Tuple    ? "tuple"
                   : type == SeqType::Range    ? "range"
                   : type == SeqType::Iterator ? "generator"
                                               : "list";
  return from_object(Kind::Seq, std::move(obj));
}

Value Value::dict(std::vector<std::pair<Value, Value>> entries) {
  auto obj = std::make_shared<DictObj>();
  int depth = 0;
  for (const auto& [k, v] : entries) depth = std::max({depth, k.depth(), v.depth()});
  obj->depth = depth + 1;
  check_depth(obj->depth);
  obj->entries = std::move(entries);
  return from_object(Kind::Dict, std::move(obj));
}

Value Value::undefined(std::string hint, const char* error_class) {
  auto obj = std::make_shared<UndefObj>();
  obj->hint = std::move(hint);
  obj->error_class = error_class;
  return from_object(Kind::Undefined, std::move(obj));
}

Value Value::undefined_name(std::string_view name) {
  auto obj = std::make_shared<UndefObj>();
  obj->key = Value::str(std::string(name));
  return from_object(Kind::Undefined, std::move(obj));
}

Value Value::undefined_member(const Value& owner, Value key) {
  auto obj = std::make_shared<UndefObj>();
  obj->owner = object_type_repr(owner);
  obj->key = std::move(key);
  return from_object(Kind::Undefined, std::move(obj));
}

Value Value::function(std::string name, NativeFn fn, const char* type_name) {
  auto obj = std::make_shared<FuncObj>();
  obj->name = std::move(name);
  obj->fn = std::move(fn);
  obj->type_name = type_name;
  return from_object(Kind::Func, std::move(obj));
}

Value Value::namespace_object() { return from_object(Kind::Namespace, std::make_shared<NamespaceObj>()); }

Value Value::from_object(Kind kind, std::shared_ptr<Object> object) {
  Value v;
  v.kind_ = kind;
  v.object_ = std::move(object);
  return v;
}

bool Value::is_seq(SeqType type) const { return kind_ == Kind::Seq && as_seq().type == type; }

double Value::as_float() const {
  if (kind_ == Kind::Float) return scalar_.f;
  return static_cast<double>(as_int());
}

const std::string& Value::as_str() const { return static_cast<const StrObj*>(object_.get())->text; }
const SeqObj& Value::as_seq() const { return *static_cast<const SeqObj*>(object_.get()); }
const DictObj& Value::as_dict() const { return *static_cast<const DictObj*>(object_.get()); }
const FuncObj& Value::as_func() const { return *static_cast<const FuncObj*>(object_.get()); }
NamespaceObj& Value::as_namespace() const { return *static_cast<NamespaceObj*>(object_.get()); }
const UndefObj* Value::as_undefined() const { return static_cast<const UndefObj*>(object_.get()); }

int Value::depth() const {
  switch (kind_) {
    case Kind::Seq:
      return as_seq().depth;
    case Kind::Dict:
      return as_dict().depth;
    case Kind::Namespace:
      return as_namespace().depth;
    default:
      return 0;
  }
}

const Value* DictObj::find(const Value& key) const {
  if (key.is_str()) return find(std::string_view(key.as_str()));
  for (const auto& [k, v] : entries)
    if (!k.is_str() && equal(k, key)) return &v;
  return nullptr;
}

const Value* DictObj::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k.is_str() && k.as_str() == key) return &v;
  return nullptr;
}

const Value* NamespaceObj::find(std::string_view name) const {
  for (const auto& [k, v] : attrs)
    if (k == name) return &v;
  return nullptr;
}

void NamespaceObj::set(std::string_view name, Value value) {
  depth = std::max(depth, value.depth() + 1);
  check_depth(depth);
  for (auto& [k, v] : attrs)
    if (k == name) {
      v = std::move(value);
      return;
    }
  attrs.emplace_back(std::string(name), std::move(value));
}

void DictBuilder::set(Value key, Value value) {
  require_hashable(key);
  for (auto& [k, v] : entries_)
    if (equal(k, key)) {
      v = std::move(value);
      return;
    }
  entries_.emplace_back(std::move(key), std::move(value));
}

std::string UndefObj::message() const {
  // jinja2.runtime.Undefined._undefined_message.
  if (!hint.empty()) return hint;
  if (owner.empty()) return repr(key) + " is undefined";
  if (!key.is_str()) return owner + " has no element " + repr(key);
  return repr_str(owner) + " has no attribute " + repr(key);
}

void raise_undefined(const Value& undefined) {
  const UndefObj* info = undefined.as_undefined();
  if (!info) raise("UndefinedError", "None is undefined");  // a bare Undefined() has no name
  raise(info->error_class, info->message());
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
    case Kind::None:
      return false;
    case Kind::Bool:
      return v.as_bool();
    case Kind::Int:
      return v.as_int() != 0;
    case Kind::Float:
      return v.as_float() != 0.0;
    case Kind::Str:
      return !v.as_str().empty();
    case Kind::Seq:
      return v.as_seq().type == SeqType::Iterator || !v.as_seq().items.empty();
    case Kind::Dict:
      return !v.as_dict().entries.empty();
    default:
      return true;
  }
}

std::string float_repr(double d) {
  // CPython's float_repr: the shortest string that round-trips, in
  // positional notation when the decimal exponent is in [-4, 16), else
  // scientific with at least two exponent digits.
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  const size_t e = sci.find('e');
  std::string mantissa = sci.substr(0, e);
  const int exponent = std::stoi(sci.substr(e + 1));
  const bool negative = !mantissa.empty() && mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  std::string digits;
  for (const char c : mantissa)
    if (c != '.') digits += c;
  const int decpt = exponent + 1;  // digits are 0.d1d2... * 10^decpt
  std::string out = negative ? "-" : "";
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += cat("0.", std::string(static_cast<size_t>(-decpt), '0'), digits);
    } else if (static_cast<size_t>(decpt) >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(decpt) - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += cat(".", digits.substr(1));
    const int exp = decpt - 1;
    char ebuf[16];
    std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += ebuf;
  }
  return out;
}

std::string repr_str(std::string_view s) {
  // CPython's unicode_repr: single quotes unless the text has a single quote
  // and no double quote; non-printable code points escaped.
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const char32_t c = uni::next(s, i);
    char buf[16];
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else if (c < 0x7F || uni::is_printable(c)) {
      out.append(s.substr(start, i - start));
    } else {
      if (c <= 0xFF) {
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      } else if (c <= 0xFFFF) {
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      } else {
        std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(c));
      }
      out += buf;
    }
  }
  out += quote;
  return out;
}

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return "Undefined";
    case Kind::None:
      return "NoneType";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::Str:
      return v.is_markup() ? "Markup" : "str";
    case Kind::Seq:
      return v.as_seq().type_name;
    case Kind::Dict:
      return "dict";
    case Kind::Func:
      return v.as_func().type_name;
    case Kind::Namespace:
      return "Namespace";
    case Kind::Loop:
      return "LoopContext";
  }
  return "object";
}

std::string object_type_repr(const Value& v) {
  // jinja2.utils.object_type_repr: builtins by bare name, others with their module.
  switch (v.kind()) {
    case Kind::None:
      return "None";
    case Kind::Undefined:
      return "jinja2.runtime.Undefined object";
    case Kind::Namespace:
      return "jinja2.utils.Namespace object";
    case Kind::Loop:
      return "jinja2.runtime.LoopContext object";
    case Kind::Str:
      if (v.is_markup()) return "markupsafe.Markup object";
      break;
    case Kind::Func:
      if (std::string_view(v.as_func().type_name) == "Macro") return "jinja2.runtime.Macro object";
      break;
    default:
      break;
  }
  return type_name(v) + " object";
}

void append_str(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return;
    case Kind::Str:
      out += v.as_str();
      return;
    case Kind::Bool:
      out += v.as_bool() ? "True" : "False";
      return;
    case Kind::Int:
      out += std::to_string(v.as_int());
      return;
    default:
      append_repr(out, v);
      return;
  }
}

std::string to_str(const Value& v) {
  if (v.is_str()) return v.as_str();
  std::string out;
  append_str(out, v);
  return out;
}

void append_repr(std::string& out, const Value& v, int depth) {
  if (depth > kMaxDepth)
    raise("RecursionError", "maximum recursion depth exceeded while getting the repr of an object");
  switch (v.kind()) {
    case Kind::Undefined:
      out += "Undefined";
      return;
    case Kind::None:
      out += "None";
      return;
    case Kind::Bool:
      out += v.as_bool() ? "True" : "False";
      return;
    case Kind::Int:
      out += std::to_string(v.as_int());
      return;
    case Kind::Float:
      out += float_repr(v.as_float());
      return;
    case Kind::Str:
      if (v.is_markup()) {
        out += cat("Markup(", repr_str(v.as_str()), ")");
      } else {
        out += repr_str(v.as_str());
      }
      return;
    case Kind::Seq: {
      const SeqObj& s = v.as_seq();
      if (s.type == SeqType::Iterator) {
        out += std::string("<") + s.type_name + " object>";
        return;
      }
      const bool tuple = s.type == SeqType::Tuple;
      if (s.type == SeqType::View) out += std::string(s.type_name) + "(";
      out += tuple ? '(' : '[';
      for (size_t i = 0; i < s.items.size(); ++i) {
        if (i) out += ", ";
        append_repr(out, s.items[i], depth + 1);
      }
      if (tuple && s.items.size() == 1) out += ',';
      out += tuple ? ')' : ']';
      if (s.type == SeqType::View) out += ")";
      return;
    }
    case Kind::Dict: {
      out += '{';
      bool first = true;
      for (const auto& [k, val] : v.as_dict().entries) {
        if (!first) out += ", ";
        first = false;
        append_repr(out, k, depth + 1);
        out += ": ";
        append_repr(out, val, depth + 1);
      }
      out += '}';
      return;
    }
    case Kind::Func:
      if (std::string_view(v.as_func().type_name) == "Macro") {
        out += cat("<Macro ", repr_str(v.as_func().name), ">");
      } else {
        out += cat("<built-in function ", v.as_func().name, ">");
      }
      return;
    case Kind::Namespace: {
      out += "<Namespace {";
      bool first = true;
      for (const auto& [k, val] : v.as_namespace().attrs) {
        if (!first) out += ", ";
        first = false;
        out += repr_str(k) + ": ";
        append_repr(out, val, depth + 1);
      }
      out += "}>";
      return;
    }
    case Kind::Loop:
      out += "<LoopContext>";
      return;
  }
}

std::string repr(const Value& v) {
  std::string out;
  append_repr(out, v);
  return out;
}

namespace {

// Exact comparison of an int64 with a double, as Python compares int and float.
int compare_int_float(int64_t i, double d) {
  if (std::isnan(d)) return 2;  // unordered
  const long double li = static_cast<long double>(i);
  const long double ld = static_cast<long double>(d);
  return li < ld ? -1 : li > ld ? 1 : 0;
}

int compare_numbers(const Value& a, const Value& b) {
  if (a.kind() != Kind::Float && b.kind() != Kind::Float) {
    const int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.kind() == Kind::Float && b.kind() == Kind::Float) {
    const double x = a.as_float(), y = b.as_float();
    if (std::isnan(x) || std::isnan(y)) return 2;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.kind() == Kind::Float) {
    const int r = compare_int_float(b.as_int(), a.as_float());
    return r == 2 ? 2 : -r;
  }
  return compare_int_float(a.as_int(), b.as_float());
}

bool sequence_like(const Value& v) {
  return v.kind() == Kind::Seq &&
         (v.as_seq().type == SeqType::List || v.as_seq().type == SeqType::Tuple || v.as_seq().type == SeqType::Range);
}

}  // namespace

bool equal(const Value& a, const Value& b, int depth) {
  if (depth > kMaxDepth) raise("RecursionError", "maximum recursion depth exceeded in comparison");
  if (a.is_number() && b.is_number()) return compare_numbers(a, b) == 0;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::Undefined:
    case Kind::None:
      return true;
    case Kind::Str:
      return a.as_str() == b.as_str();
    case Kind::Seq: {
      const SeqObj& x = a.as_seq();
      const SeqObj& y = b.as_seq();
      if (!sequence_like(a) || !sequence_like(b)) return &x == &y;
      if (x.type != y.type || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!equal(x.items[i], y.items[i], depth + 1)) return false;
      return true;
    }
    case Kind::Dict: {
      const DictObj& x = a.as_dict();
      const DictObj& y = b.as_dict();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [k, v] : x.entries) {
        const Value* other = y.find(k);
        if (!other || !equal(v, *other, depth + 1)) return false;
      }
      return true;
    }
    default:
      return a.object() == b.object();
  }
}

bool order(const Value& a, const Value& b, std::string_view op, int depth) {
  if (depth > kMaxDepth) raise("RecursionError", "maximum recursion depth exceeded in comparison");
  if (a.is_undefined()) raise_undefined(a);
  if (b.is_undefined()) raise_undefined(b);
  auto result = [&](int c) {
    if (c == 2) return false;  // NaN
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
  };
  if (a.is_number() && b.is_number()) return result(compare_numbers(a, b));
  if (a.is_str() && b.is_str()) {
    // UTF-8 byte order is code point order.
    const int c = a.as_str().compare(b.as_str());
    return result(c < 0 ? -1 : c > 0 ? 1 : 0);
  }
  if (sequence_like(a) && sequence_like(b) && a.as_seq().type == b.as_seq().type) {
    const auto& x = a.as_seq().items;
    const auto& y = b.as_seq().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equal(x[i], y[i], depth + 1)) return order(x[i], y[i], op, depth + 1);
    return result(x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0);
  }
  std::string message = "'";
  message.append(op).append("' not supported between instances of '").append(type_name(a));
  message.append("' and '").append(type_name(b)).append("'");
  raise("TypeError", std::move(message));
}

bool hashable(const Value& v) {
  switch (v.kind()) {
    case Kind::Dict:
    case Kind::Namespace:
      return false;
    case Kind::Seq:
      if (v.as_seq().type == SeqType::List) return false;
      if (v.as_seq().type == SeqType::Tuple)
        for (const Value& item : v.as_seq().items)
          if (!hashable(item)) return false;
      return true;
    default:
      return true;
  }
}

void require_hashable(const Value& v) {
  if (!hashable(v)) raise("TypeError", cat("unhashable type: '", type_name(v), "'"));
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return {};
    case Kind::Str: {
      std::vector<Value> out;
      const std::string& s = v.as_str();
      for (size_t i = 0; i < s.size();) {
        const size_t start = i;
        uni::next(s, i);
        out.push_back(Value::str(s.substr(start, i - start)));  // str.__iter__ yields plain str
      }
      return out;
    }
    case Kind::Seq: {
      const SeqObj& s = v.as_seq();
      if (s.type == SeqType::Iterator) {
        if (s.consumed) return {};
        s.consumed = true;
      }
      return s.items;
    }
    case Kind::Dict: {
      std::vector<Value> out;
      out.reserve(v.as_dict().entries.size());
      for (const auto& [k, val] : v.as_dict().entries) out.push_back(k);
      return out;
    }
    default:
      raise("TypeError", cat("'", type_name(v), "' object is not iterable"));
  }
}

int64_t length(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return 0;
    case Kind::Str:
      return static_cast<int64_t>(uni::length(v.as_str()));
    case Kind::Seq:
      if (v.as_seq().type != SeqType::Iterator) return static_cast<int64_t>(v.as_seq().items.size());
      break;
    case Kind::Dict:
      return static_cast<int64_t>(v.as_dict().entries.size());
    default:
      break;
  }
  raise("TypeError", cat("object of type '", type_name(v), "' has no len()"));
}

}  // namespace strata::jinja
