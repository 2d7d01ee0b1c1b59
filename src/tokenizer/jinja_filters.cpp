// Jinja 3.1's built-in filters (jinja2/filters.py), with transformers'
// tojson. Filters that Jinja implements as generators (map, select, reject,
// selectattr, rejectattr, unique, batch, slice, items) return one-shot
// iterators here too: they print as <generator object>, have no len() and
// are not JSON serialisable, as transformers' renders show.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_json.h"
#include "tokenizer/jinja_ops.h"
#include "tokenizer/jinja_render.h"
#include "tokenizer/jinja_strings.h"
#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {
namespace {

using Args = std::vector<std::optional<Value>>;

Value generator(std::vector<Value> items, const char* type_name = "generator") {
  return Value::seq(std::move(items), SeqType::Iterator, type_name);
}

// markupsafe's soft_str: str() unless it is already a str (Markup stays Markup).
Value soft_str(const Value& v) { return v.is_str() ? v : Value::str(to_str(v)); }

std::vector<Value> items_of(Renderer& r, const Value& v) {
  std::vector<Value> items = iterate(v);
  r.charge(items.size());
  return items;
}

// jinja2.filters.ignore_case.
Value ignore_case(const Value& v) { return v.is_str() ? Value::str(py_lower(v.as_str())) : v; }

// jinja2.filters.make_attrgetter: "a.b.0" walks getitem by getitem.
Value get_path(const Value& item, const Value& attribute, const std::optional<Value>& dflt = std::nullopt) {
  std::vector<Value> parts;
  if (attribute.is_str()) {
    for (const std::string& part : py_split(attribute.as_str(), std::string("."), -1, false)) {
      const bool digits =
          !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
      parts.push_back(digits ? Value::integer(std::strtoll(part.c_str(), nullptr, 10)) : Value::str(part));
    }
  } else {
    parts.push_back(attribute);
  }
  Value out = item;
  for (const Value& part : parts) {
    out = get_item(out, part);
    if (dflt && !dflt->is_none() && out.is_undefined()) out = *dflt;
  }
  return out;
}

// A sort key: the item, an attribute path, or several comma-separated paths
// (jinja2.filters.make_multi_attrgetter), lower-cased unless case_sensitive.
Value sort_key(const Value& item, const std::optional<Value>& attribute, bool case_sensitive) {
  auto post = [&](const Value& v) { return case_sensitive ? v : ignore_case(v); };
  if (!attribute || attribute->is_none()) return post(item);
  if (attribute->is_str() && attribute->as_str().find(',') != std::string::npos) {
    std::vector<Value> keys;
    for (const std::string& part : py_split(attribute->as_str(), std::string(","), -1, false))
      keys.push_back(post(get_path(item, Value::str(part))));
    return Value::seq(std::move(keys));
  }
  return post(get_path(item, *attribute));
}

// Python's sorted(): stable, and stable in reverse too.
void sort_by(std::vector<std::pair<Value, Value>>& keyed, bool reverse) {
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    return reverse ? order(b.first, a.first, "<") : order(a.first, b.first, "<");
  });
}

bool flag(const std::optional<Value>& v, bool dflt = false) { return v ? truthy(*v) : dflt; }

int64_t int_arg(const std::optional<Value>& v, int64_t dflt, std::string_view what) {
  if (!v) return dflt;
  if (!v->is_int()) raise("TypeError", std::string(what) + " must be an integer, not " + type_name(*v));
  return v->as_int();
}

Value f_default(Renderer&, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"default_value", "boolean"}, 0, "default");
  if (v.is_undefined() || (flag(a[1]) && !truthy(v))) return a[0] ? *a[0] : Value::str("");
  return v;
}

Value f_length(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "length");
  return Value::integer(length(v));
}

Value f_string(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "string");
  return soft_str(v);
}

Value f_safe(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "safe");
  return Value::str(to_str(v), true);
}

Value f_escape(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "escape");
  if (v.is_markup()) return v;
  return Value::str(html_escape(to_str(v)), true);
}

Value f_forceescape(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "forceescape");
  return Value::str(html_escape(to_str(v)), true);
}

Value f_trim(Renderer&, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"chars"}, 0, "trim");
  const Value s = soft_str(v);
  std::optional<std::string> chars;
  if (a[0] && !a[0]->is_none()) {
    if (!a[0]->is_str()) raise("TypeError", "strip arg must be None or str");
    chars = a[0]->as_str();
  }
  return Value::str(py_strip(s.as_str(), chars, true, true), s.is_markup());
}

Value f_upper(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "upper");
  const Value s = soft_str(v);
  return Value::str(py_upper(s.as_str()), s.is_markup());
}

Value f_lower(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "lower");
  const Value s = soft_str(v);
  return Value::str(py_lower(s.as_str()), s.is_markup());
}

Value f_capitalize(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "capitalize");
  const Value s = soft_str(v);
  return Value::str(py_capitalize(s.as_str()), s.is_markup());
}

// jinja2's do_title: split on runs of `-`, whitespace, `(`, `{`, `[`, `<`;
// each piece gets its first character upper-cased and the rest lower-cased.
Value f_title(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "title");
  const Value sv = soft_str(v);
  const std::string& s = sv.as_str();
  auto is_sep = [](char32_t c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || uni::is_space(c); };
  std::string out;
  bool piece_start = true;
  bool in_sep = false;
  for (size_t i = 0; i < s.size();) {
    const char32_t c = uni::next(s, i);
    const bool sep = is_sep(c);
    if (sep != in_sep) piece_start = true;
    in_sep = sep;
    if (piece_start) {
      uni::append_upper(out, c);
      piece_start = false;
    } else {
      uni::append_lower(out, c);
    }
  }
  return Value::str(std::move(out), sv.is_markup());
}

Value f_replace(Renderer& r, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"old", "new", "count"}, 2, "replace");
  const int64_t count = a[2] && !a[2]->is_none() ? int_arg(a[2], -1, "count") : -1;
  std::string out = py_replace(to_str(v), to_str(*a[0]), to_str(*a[1]), count);
  r.check_string(out.size());
  return Value::str(std::move(out));
}

Value f_join(Renderer& r, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"d", "attribute"}, 0, "join");
  const std::string sep = a[0] ? to_str(*a[0]) : "";
  std::string out;
  bool first = true;
  for (const Value& item : items_of(r, v)) {
    if (!first) out += sep;
    first = false;
    append_str(out, a[1] && !a[1]->is_none() ? get_path(item, *a[1]) : item);
    r.check_string(out.size());
  }
  return Value::str(std::move(out));
}

Value f_list(Renderer& r, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "list");
  return Value::seq(items_of(r, v));
}

Value f_first(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "first");
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value f_last(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "last");
  // reversed(seq): sequences, dicts and Undefined (which has __len__ and __getitem__).
  const bool reversible = v.is_undefined() || v.is_str() || v.kind() == Kind::Dict ||
                          (v.kind() == Kind::Seq && v.as_seq().type != SeqType::Iterator);
  if (!reversible) raise("TypeError", cat("'", type_name(v), "' object is not reversible"));
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value f_items(Renderer& r, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "items");
  if (v.is_undefined()) return generator({});
  if (v.kind() != Kind::Dict) raise("TypeError", "Can only get item pairs from a mapping.");
  r.charge(v.as_dict().entries.size());
  std::vector<Value> out;
  for (const auto& [k, val] : v.as_dict().entries) out.push_back(Value::tuple({k, val}));
  return generator(std::move(out));
}

Value f_dictsort(Renderer& r, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"case_sensitive", "by", "reverse"}, 0, "dictsort");
  int pos = 0;
  if (a[1]) {
    const std::string by = to_str(*a[1]);
    if (by == "value") {
      pos = 1;
    } else if (by != "key") {
      raise("FilterArgumentError", "You can only sort by either \"key\" or \"value\"");
    }
  }
  if (v.is_undefined()) raise_undefined(v);  // value.items() on Undefined
  if (v.kind() != Kind::Dict) raise("AttributeError", cat("'", type_name(v), "' object has no attribute 'items'"));
  r.charge(v.as_dict().entries.size());
  std::vector<std::pair<Value, Value>> keyed;
  for (const auto& [k, val] : v.as_dict().entries) {
    const Value key = pos == 0 ? k : val;
    keyed.emplace_back(flag(a[0]) ? key : ignore_case(key), Value::tuple({k, val}));
  }
  sort_by(keyed, flag(a[2]));
  std::vector<Value> out;
  for (auto& [key, item] : keyed) out.push_back(std::move(item));
  return Value::seq(std::move(out));
}

Value f_sort(Renderer& r, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"reverse", "case_sensitive", "attribute"}, 0, "sort");
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : items_of(r, v)) keyed.emplace_back(sort_key(item, a[2], flag(a[1])), item);
  sort_by(keyed, flag(a[0]));
  std::vector<Value> out;
  for (auto& [key, item] : keyed) out.push_back(std::move(item));
  return Value::seq(std::move(out));
}

Value f_unique(Renderer& r, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"case_sensitive", "attribute"}, 0, "unique");
  std::vector<Value> seen, out;
  for (const Value& item : items_of(r, v)) {
    const Value key = sort_key(item, a[1], flag(a[0]));
    require_hashable(key);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equal(s, key); })) continue;
    seen.push_back(key);
    out.push_back(item);
  }
  return generator(std::move(out));
}

Value min_or_max(Renderer& r, const Value& v, CallArgs& args, bool max) {
  const Args a = bind_args(args, {"case_sensitive", "attribute"}, 0, max ? "max" : "min");
  const std::vector<Value> items = items_of(r, v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key = sort_key(items[0], a[1], flag(a[0]));
  for (size_t i = 1; i < items.size(); ++i) {
    const Value key = sort_key(items[i], a[1], flag(a[0]));
    if (max ? order(key, best_key, ">") : order(key, best_key, "<")) {
      best = i;
      best_key = key;
    }
  }
  return items[best];
}

Value f_min(Renderer& r, const Value& v, CallArgs& args) { return min_or_max(r, v, args, false); }
Value f_max(Renderer& r, const Value& v, CallArgs& args) { return min_or_max(r, v, args, true); }

Value f_sum(Renderer& r, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"attribute", "start"}, 0, "sum");
  Value total = a[1] ? *a[1] : Value::integer(0);
  for (const Value& item : items_of(r, v))
    total = binary_op(r, BinOp::Add, total, a[0] && !a[0]->is_none() ? get_path(item, *a[0]) : item);
  return total;
}

Value f_map(Renderer& r, const Value& v, CallArgs& args) {
  if (!truthy(v)) return generator({});
  std::vector<Value> out;
  if (args.positional.empty()) {
    std::optional<Value> attribute, dflt;
    for (const auto& [k, val] : args.keyword) {
      if (k == "attribute") {
        attribute = val;
      } else if (k == "default") {
        dflt = val;
      } else {
        raise("FilterArgumentError", cat("Unexpected keyword argument ", repr_str(k)));
      }
    }
    if (!attribute) raise("FilterArgumentError", "map requires a filter argument");
    for (const Value& item : items_of(r, v)) out.push_back(get_path(item, *attribute, dflt ? dflt : Value::none()));
    return generator(std::move(out));
  }
  const std::string name = to_str(args.positional[0]);
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : items_of(r, v)) {
    CallArgs call = rest;
    out.push_back(r.call_filter(name, item, call));
  }
  return generator(std::move(out));
}

Value select_or_reject(Renderer& r, const Value& v, CallArgs& args, bool select, bool by_attr) {
  if (!truthy(v)) return generator({});
  size_t off = 0;
  Value attribute;
  if (by_attr) {
    if (args.positional.empty()) raise("FilterArgumentError", "Missing parameter for attribute name");
    attribute = args.positional[0];
    off = 1;
  }
  std::optional<std::string> test;
  CallArgs test_args;
  if (args.positional.size() > off) {
    test = to_str(args.positional[off]);
    test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(off) + 1, args.positional.end());
    test_args.keyword = args.keyword;
  }
  std::vector<Value> out;
  for (const Value& item : items_of(r, v)) {
    const Value subject = by_attr ? get_path(item, attribute) : item;
    bool pass;
    if (test) {
      CallArgs call = test_args;
      pass = r.call_test(*test, subject, call);
    } else {
      pass = truthy(subject);
    }
    if (pass == select) out.push_back(item);
  }
  return generator(std::move(out));
}

Value f_select(Renderer& r, const Value& v, CallArgs& args) { return select_or_reject(r, v, args, true, false); }
Value f_reject(Renderer& r, const Value& v, CallArgs& args) { return select_or_reject(r, v, args, false, false); }
Value f_selectattr(Renderer& r, const Value& v, CallArgs& args) { return select_or_reject(r, v, args, true, true); }
Value f_rejectattr(Renderer& r, const Value& v, CallArgs& args) { return select_or_reject(r, v, args, false, true); }

Value f_tojson(Renderer& r, const Value& v, CallArgs& args) {
  // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
  const Args a = bind_args(args, {"ensure_ascii", "indent", "separators", "sort_keys"}, 0, "tojson");
  const Value indent = a[1] ? *a[1] : Value::none();
  std::string item_sep = indent.is_none() ? ", " : ",";
  std::string key_sep = ": ";
  if (a[2] && !a[2]->is_none()) {
    const std::vector<Value> seps = iterate(*a[2]);
    if (seps.size() != 2) raise("ValueError", "separators must be an (item_separator, key_separator) pair");
    item_sep = to_str(seps[0]);
    key_sep = to_str(seps[1]);
  }
  std::string out = to_json(v, flag(a[0]), indent, item_sep, key_sep, flag(a[3]));
  r.check_string(out.size());
  return Value::str(std::move(out));
}

Value f_indent(Renderer& r, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"width", "first", "blank"}, 0, "indent");
  if (v.is_undefined()) raise_undefined(v);
  // do_indent starts with `s += "\n"`: a list takes it (and then has no splitlines).
  if (v.is_seq(SeqType::List)) raise("AttributeError", "'list' object has no attribute 'splitlines'");
  if (v.is_seq(SeqType::Tuple)) raise("TypeError", "can only concatenate tuple (not \"str\") to tuple");
  if (!v.is_str()) raise("TypeError", cat("unsupported operand type(s) for +=: '", type_name(v), "' and 'str'"));
  std::string indention;
  if (a[0] && a[0]->is_str()) {
    indention = a[0]->as_str();
  } else {
    const int64_t width = int_arg(a[0], 4, "width");
    indention = std::string(static_cast<size_t>(std::clamp<int64_t>(width, 0, 1 << 16)), ' ');
  }
  const std::vector<std::string> lines = py_splitlines(v.as_str() + "\n", false);
  std::string out;
  if (flag(a[2])) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) out.append("\n").append(indention);
      out += lines[i];
    }
  } else {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) out.append("\n").append(lines[i].empty() ? std::string() : indention);
      out += lines[i];
    }
  }
  if (flag(a[1])) out = indention + out;
  r.check_string(out.size());
  return Value::str(std::move(out), v.is_markup());
}

Value f_center(Renderer&, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"width"}, 0, "center");
  return Value::str(py_pad(to_str(v), int_arg(a[0], 80, "width"), " ", '^'));
}

// Python's int(str, base): optional sign and whitespace, underscores between digits.
std::optional<int64_t> parse_int(std::string_view text, int base) {
  const std::string s = py_strip(text, std::nullopt, true, true);
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  if (base == 16 && s.size() > i + 1 && s[i] == '0' && (s[i + 1] | 0x20) == 'x') i += 2;
  if (base == 8 && s.size() > i + 1 && s[i] == '0' && (s[i + 1] | 0x20) == 'o') i += 2;
  if (base == 2 && s.size() > i + 1 && s[i] == '0' && (s[i + 1] | 0x20) == 'b') i += 2;
  if (i >= s.size()) return std::nullopt;
  uint64_t value = 0;
  bool last_digit = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_' && last_digit && i + 1 < s.size()) {
      last_digit = false;
      continue;
    }
    int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'z' ? (c | 0x20) - 'a' + 10 : 99;
    if (d >= base) return std::nullopt;
    if (value > (static_cast<uint64_t>(INT64_MAX) + 1) / static_cast<uint64_t>(base)) return std::nullopt;
    value = value * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
    last_digit = true;
  }
  if (!last_digit) return std::nullopt;
  if (value > static_cast<uint64_t>(INT64_MAX) + (negative ? 1 : 0)) return std::nullopt;
  return negative ? static_cast<int64_t>(0 - value) : static_cast<int64_t>(value);
}

// Python's float(str).
std::optional<double> parse_float(std::string_view text) {
  std::string s = py_strip(text, std::nullopt, true, true);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 1])))
      continue;
    clean += s[i];
  }
  if (clean.empty()) return std::nullopt;
  const std::string lower = py_lower(clean);
  const std::string body = lower[0] == '+' || lower[0] == '-' ? lower.substr(1) : lower;
  if (body == "inf" || body == "infinity" || body == "nan") {
    const double d = body == "nan" ? std::nan("") : HUGE_VAL;
    return lower[0] == '-' ? -d : d;
  }
  if (body.find_first_not_of("0123456789.e+-") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size()) return std::nullopt;
  return d;
}

std::optional<int64_t> float_to_int(double d) {
  if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return std::nullopt;
  return static_cast<int64_t>(d);
}

Value f_int(Renderer&, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"default", "base"}, 0, "int");
  if (v.is_undefined()) raise_undefined(v);  // Undefined.__int__ raises
  const Value dflt = a[0] ? *a[0] : Value::integer(0);
  const int64_t base = int_arg(a[1], 10, "base");
  if (base < 2 || base > 36) raise("ValueError", "int() base must be >= 2 and <= 36, or 0");
  // int(float): NaN is a ValueError, which do_int catches; infinity is an
  // OverflowError, which it does not; a finite value Python would make a big int.
  auto from_float = [&](double d) {
    if (auto i = float_to_int(d)) return Value::integer(*i);
    if (std::isnan(d)) return dflt;
    if (std::isinf(d)) raise("OverflowError", "cannot convert float infinity to integer");
    raise("OverflowError", cat("int(", float_repr(d), ") does not fit in 64 bits"));
  };
  if (v.is_str()) {
    if (auto i = parse_int(v.as_str(), static_cast<int>(base))) return Value::integer(*i);
    if (auto d = parse_float(v.as_str())) return from_float(*d);
    return dflt;
  }
  if (v.is_int()) return Value::integer(v.as_int());
  if (v.kind() == Kind::Float) return from_float(v.as_float());
  return dflt;
}

Value f_float(Renderer&, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"default"}, 0, "float");
  if (v.is_undefined()) raise_undefined(v);  // Undefined.__float__ raises
  if (v.is_number()) return Value::real(v.as_float());
  if (v.is_str())
    if (auto d = parse_float(v.as_str())) return Value::real(*d);
  return a[0] ? *a[0] : Value::real(0.0);
}

Value f_abs(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "abs");
  if (v.kind() == Kind::Float) return Value::real(std::fabs(v.as_float()));
  if (v.is_int()) return v.as_int() < 0 ? unary_op(UnaryOp::Neg, v) : Value::integer(v.as_int());
  raise("TypeError", cat("bad operand type for abs(): '", type_name(v), "'"));
}

Value f_round(Renderer&, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"precision", "method"}, 0, "round");
  const int64_t precision = int_arg(a[0], 0, "precision");
  const std::string method = a[1] ? to_str(*a[1]) : "common";
  if (method != "common" && method != "ceil" && method != "floor")
    raise("FilterArgumentError", "method must be common, ceil or floor");
  if (!v.is_number()) raise("TypeError", cat("type ", type_name(v), " doesn't define __round__ method"));
  if (method == "common") {
    if (v.is_int() && precision >= 0) return Value::integer(v.as_int());
    // printf rounds the exact binary value half-to-even, as Python's round does.
    if (precision >= 0 && precision <= 300) {
      char buf[512];
      std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), v.as_float());
      return Value::real(std::strtod(buf, nullptr));
    }
    const double scale = std::pow(10.0, static_cast<double>(precision));
    return Value::real(std::nearbyint(v.as_float() * scale) / scale);
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.as_float() * scale;
  return Value::real((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value f_batch(Renderer& r, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"linecount", "fill_with"}, 1, "batch");
  const int64_t n = int_arg(a[0], 1, "linecount");
  if (n <= 0) raise("FilterArgumentError", "batch size must be positive");
  std::vector<Value> out, tmp;
  for (const Value& item : items_of(r, v)) {
    if (static_cast<int64_t>(tmp.size()) == n) {
      out.push_back(Value::seq(std::move(tmp)));
      tmp.clear();
    }
    tmp.push_back(item);
  }
  if (!tmp.empty()) {
    if (a[1] && !a[1]->is_none())
      while (static_cast<int64_t>(tmp.size()) < n) tmp.push_back(*a[1]);
    out.push_back(Value::seq(std::move(tmp)));
  }
  return generator(std::move(out));
}

Value f_slice(Renderer& r, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"slices", "fill_with"}, 1, "slice");
  const int64_t slices = int_arg(a[0], 1, "slices");
  if (slices <= 0) raise("ZeroDivisionError", "integer division or modulo by zero");
  const std::vector<Value> seq = items_of(r, v);
  const auto len = static_cast<int64_t>(seq.size());
  const int64_t per = len / slices, extra = len % slices;
  int64_t offset = 0;
  std::vector<Value> out;
  for (int64_t k = 0; k < slices; ++k) {
    const int64_t start = offset + k * per;
    if (k < extra) ++offset;
    const int64_t end = offset + (k + 1) * per;
    std::vector<Value> tmp(seq.begin() + start, seq.begin() + end);
    if (a[1] && !a[1]->is_none() && k >= extra) tmp.push_back(*a[1]);
    out.push_back(Value::seq(std::move(tmp)));
  }
  return generator(std::move(out));
}

Value f_groupby(Renderer& r, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"attribute", "default", "case_sensitive"}, 1, "groupby");
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : items_of(r, v)) {
    Value key = get_path(item, *a[0], a[1]);
    keyed.emplace_back(flag(a[2]) ? key : ignore_case(key), item);
  }
  sort_by(keyed, false);
  std::vector<Value> out;
  for (size_t i = 0; i < keyed.size();) {
    std::vector<Value> group;
    size_t j = i;
    while (j < keyed.size() && equal(keyed[j].first, keyed[i].first)) group.push_back(keyed[j++].second);
    out.push_back(Value::seq({keyed[i].first, Value::seq(std::move(group))}, SeqType::Tuple, "_GroupTuple"));
    i = j;
  }
  return Value::seq(std::move(out));
}

Value f_reverse(Renderer& r, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "reverse");
  if (v.is_str()) return slice(v, Value::none(), Value::none(), Value::integer(-1));
  const char* type = v.is_seq(SeqType::List)  ? "list_reverseiterator"
                     : v.kind() == Kind::Dict ? "dict_reversekeyiterator"
                                              : "reversed";
  if (v.is_none() || v.is_number()) raise("FilterArgumentError", "argument must be iterable");
  const bool iterator = v.kind() == Kind::Seq && v.as_seq().type == SeqType::Iterator;
  std::vector<Value> items = items_of(r, v);
  std::reverse(items.begin(), items.end());
  if (iterator) return Value::seq(std::move(items));  // list(value) reversed
  return generator(std::move(items), type);
}

Value f_attr(Renderer&, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"name"}, 1, "attr");
  // Only getattr: no fallback to items, unlike `obj.name`.
  return get_python_attr(v, to_str(*a[0]));
}

Value f_format(Renderer& r, const Value& v, CallArgs& args) {
  if (!args.positional.empty() && !args.keyword.empty())
    raise("FilterArgumentError", "can't handle positional and keyword arguments at the same time");
  const Value s = soft_str(v);
  Value format_args;
  if (!args.keyword.empty()) {
    std::vector<std::pair<Value, Value>> entries;
    for (const auto& [k, val] : args.keyword) entries.emplace_back(Value::str(k), val);
    format_args = Value::dict(std::move(entries));
  } else {
    format_args = Value::tuple(args.positional);
  }
  return Value::str(percent_format(r, s.as_str(), format_args), s.is_markup());
}

Value f_truncate(Renderer&, const Value& v, CallArgs& args) {
  const Args a = bind_args(args, {"length", "killwords", "end", "leeway"}, 0, "truncate");
  const int64_t len = int_arg(a[0], 255, "length");
  const std::string end = a[2] ? to_str(*a[2]) : "...";
  const int64_t leeway = int_arg(a[3], 5, "leeway");
  const auto end_len = static_cast<int64_t>(uni::length(end));
  if (len < end_len)
    raise("AssertionError", cat("expected length >= ", std::to_string(end_len), ", got ", std::to_string(len)));
  if (leeway < 0) raise("AssertionError", cat("expected leeway >= 0, got ", std::to_string(leeway)));
  // do_truncate measures and slices whatever it is given.
  if (length(v) <= len + leeway) return v;
  if (!v.is_str()) raise("AttributeError", cat("'", type_name(v), "' object has no attribute 'rsplit'"));
  const std::string& s = v.as_str();
  const std::string head = s.substr(0, uni::byte_offset(s, static_cast<size_t>(len - end_len)));
  if (flag(a[1])) return Value::str(head + end);
  return Value::str(py_split(head, std::string(" "), 1, true)[0] + end);
}

Value f_wordcount(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "wordcount");
  const std::string s = to_str(v);
  int64_t words = 0;
  bool in_word = false;
  for (size_t i = 0; i < s.size();) {
    const bool w = uni::is_word(uni::next(s, i));
    if (w && !in_word) ++words;
    in_word = w;
  }
  return Value::integer(words);
}

Value f_pprint(Renderer&, const Value& v, CallArgs& args) {
  bind_args(args, {}, 0, "pprint");
  return Value::str(repr(v));
}

const std::unordered_map<std::string_view, FilterFn>& filters() {
  static const std::unordered_map<std::string_view, FilterFn> table = {
      {"abs", f_abs},
      {"attr", f_attr},
      {"batch", f_batch},
      {"capitalize", f_capitalize},
      {"center", f_center},
      {"count", f_length},
      {"d", f_default},
      {"default", f_default},
      {"dictsort", f_dictsort},
      {"e", f_escape},
      {"escape", f_escape},
      {"first", f_first},
      {"float", f_float},
      {"forceescape", f_forceescape},
      {"format", f_format},
      {"groupby", f_groupby},
      {"indent", f_indent},
      {"int", f_int},
      {"items", f_items},
      {"join", f_join},
      {"last", f_last},
      {"length", f_length},
      {"list", f_list},
      {"lower", f_lower},
      {"map", f_map},
      {"max", f_max},
      {"min", f_min},
      {"pprint", f_pprint},
      {"reject", f_reject},
      {"rejectattr", f_rejectattr},
      {"replace", f_replace},
      {"reverse", f_reverse},
      {"round", f_round},
      {"safe", f_safe},
      {"select", f_select},
      {"selectattr", f_selectattr},
      {"slice", f_slice},
      {"sort", f_sort},
      {"string", f_string},
      {"sum", f_sum},
      {"title", f_title},
      {"tojson", f_tojson},
      {"trim", f_trim},
      {"truncate", f_truncate},
      {"unique", f_unique},
      {"upper", f_upper},
      {"wordcount", f_wordcount},
  };
  return table;
}

}  // namespace

FilterFn find_filter(std::string_view name) {
  const auto& table = filters();
  const auto it = table.find(name);
  return it == table.end() ? nullptr : it->second;
}

}  // namespace strata::jinja
