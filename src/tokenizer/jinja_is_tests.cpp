// Jinja 3.1's tests (jinja2/tests.py): what `x is name(args)` checks.
#include <unordered_map>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_ops.h"
#include "tokenizer/jinja_render.h"
#include "tokenizer/jinja_strings.h"

namespace strata::jinja {
namespace {

const Value& arg(CallArgs& args, std::string_view test, size_t index = 0) {
  if (index < args.positional.size()) return args.positional[index];
  if (index == 0 && args.keyword.size() == 1) return args.keyword[0].second;
  raise("TypeError", cat("test_", std::string(test), "() missing a required positional argument"));
}

bool t_defined(Renderer&, const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(Renderer&, const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_none(Renderer&, const Value& v, CallArgs&) { return v.is_none(); }
bool t_boolean(Renderer&, const Value& v, CallArgs&) { return v.kind() == Kind::Bool; }
bool t_true(Renderer&, const Value& v, CallArgs&) { return v.kind() == Kind::Bool && v.as_bool(); }
bool t_false(Renderer&, const Value& v, CallArgs&) { return v.kind() == Kind::Bool && !v.as_bool(); }
bool t_integer(Renderer&, const Value& v, CallArgs&) { return v.kind() == Kind::Int; }
bool t_float(Renderer&, const Value& v, CallArgs&) { return v.kind() == Kind::Float; }
bool t_number(Renderer&, const Value& v, CallArgs&) { return v.is_number(); }
bool t_string(Renderer&, const Value& v, CallArgs&) { return v.is_str(); }
bool t_mapping(Renderer&, const Value& v, CallArgs&) { return v.kind() == Kind::Dict; }
bool t_escaped(Renderer&, const Value& v, CallArgs&) { return v.is_markup(); }

// len() and __getitem__ both exist: str, list, tuple, range, dict, and
// Undefined (whose __getitem__ raises but exists).
bool t_sequence(Renderer&, const Value& v, CallArgs&) {
  switch (v.kind()) {
    case Kind::Undefined:
    case Kind::Str:
    case Kind::Dict:
      return true;
    case Kind::Seq:
      return v.as_seq().type == SeqType::List || v.as_seq().type == SeqType::Tuple || v.as_seq().type == SeqType::Range;
    default:
      return false;
  }
}

bool t_iterable(Renderer&, const Value& v, CallArgs&) {
  switch (v.kind()) {
    case Kind::Undefined:
    case Kind::Str:
    case Kind::Seq:
    case Kind::Dict:
    case Kind::Loop:
      return true;
    default:
      return false;
  }
}

bool t_callable(Renderer&, const Value& v, CallArgs&) {
  return v.kind() == Kind::Func || v.kind() == Kind::Loop || v.kind() == Kind::Undefined;
}

bool t_odd(Renderer& r, const Value& v, CallArgs&) {
  return equal(binary_op(r, BinOp::Mod, v, Value::integer(2)), Value::integer(1));
}
bool t_even(Renderer& r, const Value& v, CallArgs&) {
  return equal(binary_op(r, BinOp::Mod, v, Value::integer(2)), Value::integer(0));
}
bool t_divisibleby(Renderer& r, const Value& v, CallArgs& args) {
  return equal(binary_op(r, BinOp::Mod, v, arg(args, "divisibleby")), Value::integer(0));
}

bool t_lower(Renderer&, const Value& v, CallArgs&) {
  const std::string s = to_str(v);
  return py_lower(s) == s && py_upper(s) != s;
}
bool t_upper(Renderer&, const Value& v, CallArgs&) {
  const std::string s = to_str(v);
  return py_upper(s) == s && py_lower(s) != s;
}

bool t_eq(Renderer&, const Value& v, CallArgs& args) { return equal(v, arg(args, "eq")); }
bool t_ne(Renderer&, const Value& v, CallArgs& args) { return !equal(v, arg(args, "ne")); }
bool t_lt(Renderer&, const Value& v, CallArgs& args) { return order(v, arg(args, "lt"), "<"); }
bool t_le(Renderer&, const Value& v, CallArgs& args) { return order(v, arg(args, "le"), "<="); }
bool t_gt(Renderer&, const Value& v, CallArgs& args) { return order(v, arg(args, "gt"), ">"); }
bool t_ge(Renderer&, const Value& v, CallArgs& args) { return order(v, arg(args, "ge"), ">="); }
bool t_in(Renderer&, const Value& v, CallArgs& args) { return contains(arg(args, "in"), v); }

// `is`: the same object; CPython shares None, the bools and small ints.
bool t_sameas(Renderer&, const Value& v, CallArgs& args) {
  const Value& other = arg(args, "sameas");
  if (v.kind() != other.kind()) return false;
  switch (v.kind()) {
    case Kind::None:
    case Kind::Undefined:
      return v.object() == other.object();
    case Kind::Bool:
      return v.as_bool() == other.as_bool();
    case Kind::Int:
      return v.as_int() == other.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
    case Kind::Float:
      return false;
    default:
      return v.object() == other.object();
  }
}

bool t_filter(Renderer&, const Value& v, CallArgs&) { return v.is_str() && find_filter(v.as_str()) != nullptr; }
bool t_test(Renderer&, const Value& v, CallArgs&) { return v.is_str() && find_test(v.as_str()) != nullptr; }

const std::unordered_map<std::string_view, TestFn>& tests() {
  static const std::unordered_map<std::string_view, TestFn> table = {
      {"boolean", t_boolean},
      {"callable", t_callable},
      {"defined", t_defined},
      {"divisibleby", t_divisibleby},
      {"eq", t_eq},
      {"equalto", t_eq},
      {"==", t_eq},
      {"escaped", t_escaped},
      {"even", t_even},
      {"false", t_false},
      {"filter", t_filter},
      {"float", t_float},
      {"ge", t_ge},
      {">=", t_ge},
      {"gt", t_gt},
      {"greaterthan", t_gt},
      {">", t_gt},
      {"in", t_in},
      {"integer", t_integer},
      {"iterable", t_iterable},
      {"le", t_le},
      {"<=", t_le},
      {"lower", t_lower},
      {"lt", t_lt},
      {"lessthan", t_lt},
      {"<", t_lt},
      {"mapping", t_mapping},
      {"ne", t_ne},
      {"!=", t_ne},
      {"none", t_none},
      {"number", t_number},
      {"odd", t_odd},
      {"sameas", t_sameas},
      {"sequence", t_sequence},
      {"string", t_string},
      {"test", t_test},
      {"true", t_true},
      {"undefined", t_undefined},
      {"upper", t_upper},
  };
  return table;
}

}  // namespace

TestFn find_test(std::string_view name) {
  const auto& table = tests();
  const auto it = table.find(name);
  return it == table.end() ? nullptr : it->second;
}

}  // namespace strata::jinja
