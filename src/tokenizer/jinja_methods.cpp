// Attribute and item access with the sandbox's rules, and the methods of
// str, list, dict and the loop object that templates call.
//
// jinja2.sandbox.ImmutableSandboxedEnvironment: `obj.name` tries Python's
// getattr first and then obj['name']; `obj[key]` tries the item first and
// then, for a str key, the attribute. Attributes that would mutate a list or
// dict (append, pop, update, ...) and private ones give an Undefined that
// raises SecurityError when used; anything missing gives a plain Undefined.
#include <algorithm>
#include <array>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_ops.h"
#include "tokenizer/jinja_render.h"
#include "tokenizer/jinja_strings.h"
#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {
namespace {

constexpr std::array kStrMethods = {
    "capitalize", "casefold",     "center",       "count",        "endswith",  "find",       "format",
    "index",      "isalnum",      "isalpha",      "isascii",      "isdecimal", "isdigit",    "islower",
    "isnumeric",  "isspace",      "istitle",      "isupper",      "join",      "ljust",      "lower",
    "lstrip",     "partition",    "removeprefix", "removesuffix", "replace",   "rfind",      "rindex",
    "rjust",      "rpartition",   "rsplit",       "rstrip",       "split",     "splitlines", "startswith",
    "strip",      "swapcase",     "title",        "upper",        "zfill",     "encode",     "expandtabs",
    "format_map", "isidentifier", "isprintable",  "maketrans",    "translate"};
constexpr std::array kDictMethods = {"clear", "copy",    "fromkeys",   "get",    "items", "keys",
                                     "pop",   "popitem", "setdefault", "update", "values"};
constexpr std::array kDictMutators = {"clear", "pop", "popitem", "setdefault", "update"};
constexpr std::array kListMethods = {"append", "clear", "copy",   "count",   "extend", "index",
                                     "insert", "pop",   "remove", "reverse", "sort"};
constexpr std::array kListMutators = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"};
constexpr std::array kTupleMethods = {"count", "index"};
constexpr std::array kLoopAttrs = {"index", "index0", "revindex", "revindex0", "first", "last",   "length",
                                   "depth", "depth0", "previtem", "nextitem",  "cycle", "changed"};

template <size_t N>
bool in(const std::array<const char*, N>& names, std::string_view name) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return name == n; });
}

Value unsafe(const Value& obj, std::string_view name) {
  return Value::undefined(
      cat("access to attribute ", repr_str(name), " of ", repr_str(type_name(obj)), " object is unsafe."),
      "SecurityError");
}

bool is_list_like(const Value& v) { return v.is_seq(SeqType::List) || v.is_seq(SeqType::Tuple); }

// What Python's getattr(obj, name) finds among the methods we know, as a
// bound method; Undefined when there is no such attribute.
std::optional<Value> method_attr(const Value& obj, std::string_view name) {
  bool found = false;
  switch (obj.kind()) {
    case Kind::Str:
      found = in(kStrMethods, name);
      break;
    case Kind::Dict:
      if (in(kDictMutators, name)) return unsafe(obj, name);
      found = in(kDictMethods, name);
      break;
    case Kind::Seq:
      if (obj.is_seq(SeqType::List)) {
        if (in(kListMutators, name)) return unsafe(obj, name);
        found = in(kListMethods, name);
      } else if (obj.is_seq(SeqType::Tuple)) {
        found = in(kTupleMethods, name);
      }
      break;
    default:
      break;
  }
  if (!found) return std::nullopt;
  std::string method(name);
  return Value::function(method, [obj, method](Renderer& r, CallArgs& args) {
    if (auto result = call_method(r, obj, method, args)) return *result;
    raise("TypeError", type_name(obj) + "." + method + "() is not supported by this renderer");
  });
}

Value loop_attr(const Value& loop_value, std::string_view name) {
  const auto& loop = *static_cast<const LoopObj*>(loop_value.object());
  const auto length = static_cast<int64_t>(loop.items.size());
  const int64_t i = loop.index0;
  if (name == "index") return Value::integer(i + 1);
  if (name == "index0") return Value::integer(i);
  if (name == "revindex") return Value::integer(length - i);
  if (name == "revindex0") return Value::integer(length - i - 1);
  if (name == "first") return Value::boolean(i == 0);
  if (name == "last") return Value::boolean(i == length - 1);
  if (name == "length") return Value::integer(length);
  if (name == "depth") return Value::integer(loop.depth0 + 1);
  if (name == "depth0") return Value::integer(loop.depth0);
  if (name == "previtem") {
    if (i == 0) return Value::undefined("there is no previous item");
    return loop.items[static_cast<size_t>(i - 1)];
  }
  if (name == "nextitem") {
    if (i + 1 >= length) return Value::undefined("there is no next item");
    return loop.items[static_cast<size_t>(i + 1)];
  }
  if (name == "cycle" || name == "changed") {
    std::string method(name);
    return Value::function(
        method, [loop_value, method](Renderer& r, CallArgs& args) { return *call_method(r, loop_value, method, args); },
        "method");
  }
  return Value::undefined_member(loop_value, Value::str(std::string(name)));
}

std::optional<std::string> opt_str(const std::optional<Value>& v, std::string_view what) {
  if (!v || v->is_none()) return std::nullopt;
  if (!v->is_str()) raise("TypeError", std::string(what) + " arg must be None or str");
  return v->as_str();
}

int64_t opt_int(const std::optional<Value>& v, int64_t dflt) {
  if (!v || v->is_none()) return dflt;
  if (!v->is_int()) raise("TypeError", cat("'", type_name(*v), "' object cannot be interpreted as an integer"));
  return v->as_int();
}

std::optional<int64_t> opt_index(const std::optional<Value>& v) {
  if (!v || v->is_none()) return std::nullopt;
  if (!v->is_int()) raise("TypeError", "slice indices must be integers or None or have an __index__ method");
  return v->as_int();
}

// CPython's wording differs by method: find/count/index say "must be str",
// the others name themselves and the argument.
const std::string& need_str(const std::optional<Value>& v, std::string_view func, int position = 1) {
  if (v && v->is_str()) return v->as_str();
  const std::string type = v ? type_name(*v) : "NoneType";
  if (func == "find" || func == "rfind" || func == "index" || func == "rindex" || func == "count")
    raise("TypeError", cat("must be str, not ", type));
  raise("TypeError", cat(func, "() argument ", std::to_string(position), " must be str, not ", type));
}

Value str_list(const std::vector<std::string>& parts, bool markup) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (const auto& p : parts) items.push_back(Value::str(p, markup));
  return Value::seq(std::move(items));
}

// str.startswith/endswith with a str or a tuple of str, over [start, end).
bool affix_match(const std::string& s, const Value& affix, const std::optional<Value>& start,
                 const std::optional<Value>& end, bool suffix, std::string_view func) {
  const auto b = opt_index(start), e = opt_index(end);
  std::string_view window = s;
  if (b || e) {
    const auto len = static_cast<int64_t>(uni::length(s));
    int64_t lo = b.value_or(0), hi = e.value_or(len);
    if (lo < 0) lo = std::max<int64_t>(0, lo + len);
    if (hi < 0) hi = std::max<int64_t>(0, hi + len);
    hi = std::min(hi, len);
    if (lo > len) return false;
    if (hi < lo) hi = lo;
    const size_t bo = uni::byte_offset(s, static_cast<size_t>(lo)), eo = uni::byte_offset(s, static_cast<size_t>(hi));
    window = window.substr(bo, eo - bo);
  }
  auto one = [&](const Value& a) {
    if (!a.is_str())
      raise("TypeError", cat("tuple for ", std::string(func), " must only contain str, not ", type_name(a)));
    const std::string& t = a.as_str();
    if (t.size() > window.size()) return false;
    return suffix ? window.substr(window.size() - t.size()) == t : window.substr(0, t.size()) == t;
  };
  if (affix.is_str()) return one(affix);
  if (affix.is_seq(SeqType::Tuple)) return std::any_of(affix.as_seq().items.begin(), affix.as_seq().items.end(), one);
  raise("TypeError", std::string(func) + " first arg must be str or a tuple of str, not " + type_name(affix));
}

template <typename Pred>
bool all_cps(const std::string& s, Pred pred) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size();)
    if (!pred(uni::next(s, i))) return false;
  return true;
}

std::optional<Value> str_method(Renderer& r, const Value& self, std::string_view name, CallArgs& args) {
  const std::string& s = self.as_str();
  const bool mk = self.is_markup();
  auto bind = [&](std::initializer_list<std::string_view> names, size_t required) {
    return bind_args(args, names, required, name);
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const auto a = bind({"chars"}, 0);
    return Value::str(py_strip(s, opt_str(a[0], name), name != "rstrip", name != "lstrip"), mk);
  }
  if (name == "split" || name == "rsplit") {
    const auto a = bind({"sep", "maxsplit"}, 0);
    const auto parts = py_split(s, opt_str(a[0], "sep"), opt_int(a[1], -1), name == "rsplit");
    r.charge(parts.size());
    return str_list(parts, mk);
  }
  if (name == "splitlines") {
    const auto a = bind({"keepends"}, 0);
    return str_list(py_splitlines(s, a[0] && truthy(*a[0])), mk);
  }
  if (name == "startswith" || name == "endswith") {
    const auto a = bind({"prefix", "start", "end"}, 1);
    return Value::boolean(affix_match(s, *a[0], a[1], a[2], name == "endswith", name));
  }
  if (name == "replace") {
    const auto a = bind({"old", "new", "count"}, 2);
    std::string out = py_replace(s, need_str(a[0], "replace"), need_str(a[1], "replace", 2), opt_int(a[2], -1));
    r.check_string(out.size());
    return Value::str(std::move(out), mk);
  }
  if (name == "upper") return Value::str(py_upper(s), mk);
  if (name == "lower" || name == "casefold") return Value::str(py_lower(s), mk);
  if (name == "title") return Value::str(py_title(s), mk);
  if (name == "capitalize") return Value::str(py_capitalize(s), mk);
  if (name == "swapcase") return Value::str(py_swapcase(s), mk);
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    const auto a = bind({"sub", "start", "end"}, 1);
    const int64_t at = py_find(s, need_str(a[0], name), opt_index(a[1]), opt_index(a[2]), name[0] == 'r');
    if (at < 0 && (name == "index" || name == "rindex")) raise("ValueError", "substring not found");
    return Value::integer(at);
  }
  if (name == "count") {
    const auto a = bind({"sub"}, 1);
    return Value::integer(py_count(s, need_str(a[0], "count")));
  }
  if (name == "join") {
    const auto a = bind({"iterable"}, 1);
    std::string out;
    size_t i = 0;
    for (const Value& item : iterate(*a[0])) {
      if (!item.is_str())
        raise("TypeError",
              cat("sequence item ", std::to_string(i), ": expected str instance, ", type_name(item), " found"));
      if (i++) out += s;
      out += item.as_str();
      r.check_string(out.size());
    }
    return Value::str(std::move(out), mk);
  }
  if (name == "format") return Value::str(py_format(r, s, args), mk);
  if (name == "center" || name == "ljust" || name == "rjust") {
    const auto a = bind({"width", "fillchar"}, 1);
    const std::string fill = a[1] ? need_str(a[1], name) : " ";
    if (uni::length(fill) != 1) raise("TypeError", "The fill character must be exactly one character long");
    return Value::str(py_pad(s, opt_int(a[0], 0), fill, name == "center" ? '^' : name == "ljust" ? '<' : '>'), mk);
  }
  if (name == "zfill") {
    const auto a = bind({"width"}, 1);
    const bool sign = !s.empty() && (s[0] == '+' || s[0] == '-');
    const std::string body = py_pad(s.substr(sign ? 1 : 0), opt_int(a[0], 0) - (sign ? 1 : 0), "0", '>');
    return Value::str((sign ? s.substr(0, 1) : "") + body, mk);
  }
  if (name == "partition" || name == "rpartition") {
    const auto a = bind({"sep"}, 1);
    const std::string& sep = need_str(a[0], name);
    if (sep.empty()) raise("ValueError", "empty separator");
    const size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
    std::vector<Value> parts;
    if (at == std::string::npos) {
      parts = name == "partition" ? std::vector<Value>{Value::str(s, mk), Value::str("", mk), Value::str("", mk)}
                                  : std::vector<Value>{Value::str("", mk), Value::str("", mk), Value::str(s, mk)};
    } else {
      parts = {Value::str(s.substr(0, at), mk), Value::str(sep, mk), Value::str(s.substr(at + sep.size()), mk)};
    }
    return Value::tuple(std::move(parts));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const auto a = bind({"affix"}, 1);
    const std::string& affix = need_str(a[0], name);
    if (name == "removeprefix" && s.compare(0, affix.size(), affix) == 0) return Value::str(s.substr(affix.size()), mk);
    if (name == "removesuffix" && affix.size() <= s.size() &&
        s.compare(s.size() - affix.size(), affix.size(), affix) == 0)
      return Value::str(s.substr(0, s.size() - affix.size()), mk);
    return Value::str(s, mk);
  }
  if (name == "isalpha") return Value::boolean(all_cps(s, uni::is_alpha));
  if (name == "isdigit") return Value::boolean(all_cps(s, uni::is_digit));
  if (name == "isdecimal") return Value::boolean(all_cps(s, uni::is_decimal));
  if (name == "isnumeric") return Value::boolean(all_cps(s, uni::is_numeric));
  if (name == "isalnum") return Value::boolean(all_cps(s, uni::is_alnum));
  if (name == "isspace") return Value::boolean(all_cps(s, uni::is_space));
  if (name == "isascii") return Value::boolean(uni::is_ascii(s));
  if (name == "isupper" || name == "islower") {
    bool cased = false, ok = true;
    for (size_t i = 0; i < s.size();) {
      const char32_t c = uni::next(s, i);
      if (name == "isupper" ? uni::is_lower(c) : uni::is_upper(c)) ok = false;
      if (uni::is_cased(c)) cased = true;
    }
    return Value::boolean(ok && cased);
  }
  return std::nullopt;
}

std::optional<Value> dict_method(Renderer& r, const Value& self, std::string_view name, CallArgs& args) {
  const DictObj& d = self.as_dict();
  if (name == "get") {
    const auto a = bind_args(args, {"key", "default"}, 1, "get");
    require_hashable(*a[0]);
    if (const Value* v = d.find(*a[0])) return *v;
    return a[1] ? *a[1] : Value::none();
  }
  if (name == "items" || name == "keys" || name == "values") {
    bind_args(args, {}, 0, name);
    r.charge(d.entries.size());
    std::vector<Value> out;
    out.reserve(d.entries.size());
    for (const auto& [k, v] : d.entries) {
      if (name == "items") {
        out.push_back(Value::tuple({k, v}));
      } else {
        out.push_back(name == "keys" ? k : v);
      }
    }
    const char* type = name == "items" ? "dict_items" : name == "keys" ? "dict_keys" : "dict_values";
    return Value::seq(std::move(out), SeqType::View, type);
  }
  if (name == "copy") {
    bind_args(args, {}, 0, name);
    return Value::dict(d.entries);
  }
  return std::nullopt;
}

std::optional<Value> seq_method(const Value& self, std::string_view name, CallArgs& args) {
  const auto& items = self.as_seq().items;
  if (name == "count") {
    const auto a = bind_args(args, {"value"}, 1, "count");
    return Value::integer(std::count_if(items.begin(), items.end(), [&](const Value& v) { return equal(v, *a[0]); }));
  }
  if (name == "index") {
    const auto a = bind_args(args, {"value", "start", "stop"}, 1, "index");
    for (size_t i = 0; i < items.size(); ++i)
      if (equal(items[i], *a[0])) return Value::integer(static_cast<int64_t>(i));
    raise("ValueError",
          (self.is_seq(SeqType::Tuple) ? "tuple.index(x): x not in tuple" : repr(*a[0]) + " is not in list"));
  }
  if (name == "copy" && self.is_seq(SeqType::List)) {
    bind_args(args, {}, 0, name);
    return Value::seq(items);
  }
  return std::nullopt;
}

std::optional<Value> loop_method(const Value& self, std::string_view name, CallArgs& args) {
  auto& loop = *static_cast<LoopObj*>(self.object());
  if (name == "cycle") {
    if (args.positional.empty()) raise("TypeError", "no items for cycling given");
    return args.positional[static_cast<size_t>(loop.index0) % args.positional.size()];
  }
  if (name == "changed") {
    const Value current = Value::tuple(args.positional);
    if (loop.changed_seen && equal(loop.changed_last, current)) return Value::boolean(false);
    loop.changed_seen = true;
    loop.changed_last = current;
    return Value::boolean(true);
  }
  return std::nullopt;
}

}  // namespace

std::vector<std::optional<Value>> bind_args(const CallArgs& args, std::initializer_list<std::string_view> names,
                                            size_t required, std::string_view func) {
  std::vector<std::optional<Value>> out(names.size());
  if (args.positional.size() > names.size()) {
    raise("TypeError", std::string(func) + "() takes at most " + std::to_string(names.size()) + " argument" +
                           (names.size() == 1 ? "" : "s") + " (" + std::to_string(args.positional.size()) + " given)");
  }
  for (size_t i = 0; i < args.positional.size(); ++i) out[i] = args.positional[i];
  for (const auto& [k, v] : args.keyword) {
    const auto it = std::find(names.begin(), names.end(), k);
    if (it == names.end())
      raise("TypeError", std::string(func) + "() got an unexpected keyword argument " + repr_str(k));
    const auto index = static_cast<size_t>(it - names.begin());
    if (out[index]) raise("TypeError", std::string(func) + "() got multiple values for argument " + repr_str(k));
    out[index] = v;
  }
  for (size_t i = 0; i < required; ++i)
    if (!out[i])
      raise("TypeError", std::string(func) + "() missing required argument " + repr_str(*(names.begin() + i)));
  return out;
}

Value get_python_attr(const Value& obj, std::string_view name) {
  if (obj.is_undefined()) raise_undefined(obj);
  // Python objects have dunder attributes; the sandbox refuses them all.
  if (name.size() > 4 && name.starts_with("__") && name.ends_with("__")) return unsafe(obj, name);
  switch (obj.kind()) {
    case Kind::Dict:
    case Kind::Str:
    case Kind::Seq:
      if (auto m = method_attr(obj, name)) return *m;
      // groupby's namedtuple (grouper, list).
      if (obj.kind() == Kind::Seq && std::string_view(obj.as_seq().type_name) == "_GroupTuple") {
        if (name == "grouper") return obj.as_seq().items[0];
        if (name == "list") return obj.as_seq().items[1];
      }
      break;
    case Kind::Namespace:
      if (const Value* v = obj.as_namespace().find(name)) return *v;
      break;
    case Kind::Loop:
      if (in(kLoopAttrs, name)) return loop_attr(obj, name);
      break;
    default:
      break;
  }
  return Value::undefined_member(obj, Value::str(std::string(name)));
}

Value get_attr(const Value& obj, std::string_view name) {
  Value attr = get_python_attr(obj, name);
  // No such attribute: a dict still has the item.
  if (attr.is_undefined() && obj.kind() == Kind::Dict && attr.as_undefined()->hint.empty())
    if (const Value* v = obj.as_dict().find(name)) return *v;
  return attr;
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) raise_undefined(obj);
  switch (obj.kind()) {
    case Kind::Dict:
      if (hashable(key))
        if (const Value* v = obj.as_dict().find(key)) return *v;
      break;
    case Kind::Seq:
    case Kind::Str: {
      if (!key.is_int() || (obj.kind() == Kind::Seq && !is_list_like(obj) && !obj.is_seq(SeqType::Range))) break;
      int64_t i = key.as_int();
      if (obj.is_str()) {
        const std::string& s = obj.as_str();
        const auto len = static_cast<int64_t>(uni::length(s));
        if (i < 0) i += len;
        if (i < 0 || i >= len) break;
        size_t b = uni::byte_offset(s, static_cast<size_t>(i)), e = b;
        uni::next(s, e);
        return Value::str(s.substr(b, e - b), obj.is_markup());
      }
      const auto& items = obj.as_seq().items;
      if (i < 0) i += static_cast<int64_t>(items.size());
      if (i < 0 || i >= static_cast<int64_t>(items.size())) break;
      return items[static_cast<size_t>(i)];
    }
    default:
      break;
  }
  // The item lookup failed: a str key may still name an attribute.
  if (key.is_str()) {
    const Value attr = get_attr(obj, key.as_str());
    if (!attr.is_undefined() || (attr.as_undefined() && !attr.as_undefined()->hint.empty())) return attr;
  }
  return Value::undefined_member(obj, key);
}

std::optional<Value> call_method(Renderer& r, const Value& obj, std::string_view name, CallArgs& args) {
  switch (obj.kind()) {
    case Kind::Str:
      return str_method(r, obj, name, args);
    case Kind::Dict:
      if (in(kDictMutators, name)) return std::nullopt;
      return dict_method(r, obj, name, args);
    case Kind::Seq:
      if (!is_list_like(obj)) return std::nullopt;
      return seq_method(obj, name, args);
    case Kind::Loop:
      return loop_method(obj, name, args);
    default:
      return std::nullopt;
  }
}

}  // namespace strata::jinja
