// The values a Jinja template computes with, with Python's semantics: what
// transformers' chat templates see is Python data (None, bool, int, float,
// str, list, dict) plus Jinja's own objects (Undefined, Markup, namespace,
// macros, the loop object). Printing, comparing, truthiness, repr() and the
// errors' wording follow CPython 3.11 and Jinja 3.1 so that renders and error
// messages match transformers byte for byte.
//
// Lists, tuples and dicts are immutable once built (the sandbox forbids
// mutating them), so they are shared by pointer; only a namespace changes, as
// Python's does. Every container records its nesting depth, capped at
// kMaxDepth, so that the recursive walks (repr, tojson, equality) and the
// destructors stay within the stack however a template nests values.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace strata::jinja {

class Renderer;
class Value;

// The deepest nesting of containers a value may have (Python's own recursion
// limit of 1000 stops json.dumps and repr at about this depth too).
inline constexpr int kMaxDepth = 500;

// An error raised while rendering, as Python would raise it: `cls` is the
// exception class name ("TypeError", "UndefinedError", "TemplateError", ...)
// and `message` its str().
class RenderError : public std::runtime_error {
 public:
  RenderError(std::string cls, std::string message)
      : std::runtime_error(cls + ": " + message), cls_(std::move(cls)), message_(std::move(message)) {}
  const std::string& cls() const { return cls_; }
  const std::string& message() const { return message_; }

 private:
  std::string cls_;
  std::string message_;
};

[[noreturn]] void raise(std::string_view cls, std::string message);

// Joins text pieces into one string. Messages are built with it rather than
// with "literal" + std::string, on which GCC 12 gives a false -Wrestrict
// (GCC bug 105651).
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, Str, Seq, Dict, Func, Namespace, Loop };

// The Python sequence types share one representation and differ in what they
// allow: an iterator (a generator from map/select, dict.items() iterators)
// has no len(), cannot be indexed, is consumed by one pass and is not JSON
// serialisable; a dict view has a len() but no indexing.
enum class SeqType : uint8_t { List, Tuple, Range, Iterator, View };

struct Object {
  virtual ~Object() = default;
};

// Arguments of a call, as Python receives them.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

using NativeFn = std::function<Value(Renderer&, CallArgs&)>;

class Value {
 public:
  Value() = default;  // a plain Undefined with no name
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value real(double v);
  static Value str(std::string text, bool markup = false);
  // `type_name` is the Python type's name for iterators and views ("generator", "dict_items").
  static Value seq(std::vector<Value> items, SeqType type = SeqType::List, const char* type_name = nullptr);
  static Value tuple(std::vector<Value> items) { return seq(std::move(items), SeqType::Tuple); }
  // Entries must have distinct keys; use DictBuilder otherwise.
  static Value dict(std::vector<std::pair<Value, Value>> entries);
  // Undefined values, with the message Jinja gives when one is misused.
  static Value undefined(std::string hint, const char* error_class = "UndefinedError");
  static Value undefined_name(std::string_view name);
  static Value undefined_member(const Value& owner, Value key);
  static Value function(std::string name, NativeFn fn, const char* type_name = "builtin_function_or_method");
  static Value namespace_object();
  static Value from_object(Kind kind, std::shared_ptr<Object> object);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_str() const { return kind_ == Kind::Str; }
  bool is_markup() const { return kind_ == Kind::Str && markup_; }
  // int in Python's sense: bool is an int.
  bool is_int() const { return kind_ == Kind::Int || kind_ == Kind::Bool; }
  bool is_number() const { return kind_ == Kind::Int || kind_ == Kind::Bool || kind_ == Kind::Float; }
  bool is_seq(SeqType type) const;

  bool as_bool() const { return scalar_.b; }
  int64_t as_int() const { return kind_ == Kind::Bool ? (scalar_.b ? 1 : 0) : scalar_.i; }
  double as_float() const;
  const std::string& as_str() const;
  const struct SeqObj& as_seq() const;
  const struct DictObj& as_dict() const;
  const struct FuncObj& as_func() const;
  struct NamespaceObj& as_namespace() const;
  const struct UndefObj* as_undefined() const;  // null for a plain Undefined
  Object* object() const { return object_.get(); }
  const std::shared_ptr<Object>& shared_object() const { return object_; }
  // Nesting depth: 0 for scalars, 1 for a flat list.
  int depth() const;

 private:
  Kind kind_ = Kind::Undefined;
  bool markup_ = false;
  union Scalar {
    bool b;
    int64_t i;
    double f;
  } scalar_{.i = 0};
  std::shared_ptr<Object> object_;
};

struct StrObj final : Object {
  std::string text;
};

struct SeqObj final : Object {
  std::vector<Value> items;
  SeqType type = SeqType::List;
  const char* type_name = "list";
  int depth = 1;
  mutable bool consumed = false;  // iterators: a second pass sees nothing
};

struct DictObj final : Object {
  std::vector<std::pair<Value, Value>> entries;
  int depth = 1;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
};

struct FuncObj final : Object {
  std::string name;
  const char* type_name = "builtin_function_or_method";
  NativeFn fn;
};

// jinja2.utils.Namespace: the one mutable object templates have.
struct NamespaceObj final : Object {
  std::vector<std::pair<std::string, Value>> attrs;
  int depth = 1;
  const Value* find(std::string_view name) const;
  void set(std::string_view name, Value value);
};

// Why a value is undefined: Jinja's message when the value is misused.
struct UndefObj final : Object {
  std::string hint;   // the whole message, when given
  std::string owner;  // object_type_repr of what was searched; empty for a free name
  Value key;          // the name or key that was missing
  const char* error_class = "UndefinedError";
  std::string message() const;
};

// Builds a dict the way Python's {...} does: a repeated key keeps its first
// position and takes the last value.
class DictBuilder {
 public:
  void set(Value key, Value value);
  Value build() { return Value::dict(std::move(entries_)); }

 private:
  std::vector<std::pair<Value, Value>> entries_;
};

// Python semantics shared by the whole engine.
bool truthy(const Value& v);
void append_str(std::string& out, const Value& v);  // str(v)
std::string to_str(const Value& v);
void append_repr(std::string& out, const Value& v, int depth = 0);  // repr(v)
std::string repr(const Value& v);
std::string repr_str(std::string_view s);  // repr() of a str
std::string float_repr(double d);
std::string type_name(const Value& v);         // type(v).__name__
std::string object_type_repr(const Value& v);  // Jinja's "dict object" / "None"
bool equal(const Value& a, const Value& b, int depth = 0);
// a <op> b for op in < <= > >=; raises TypeError where Python does.
bool order(const Value& a, const Value& b, std::string_view op, int depth = 0);
bool hashable(const Value& v);
void require_hashable(const Value& v);
[[noreturn]] void raise_undefined(const Value& undefined);

// The items `for x in v` visits; raises TypeError for what Python cannot
// iterate. An iterator is consumed by the call.
std::vector<Value> iterate(const Value& v);
// len(v); raises TypeError where Python does.
int64_t length(const Value& v);

}  // namespace strata::jinja
