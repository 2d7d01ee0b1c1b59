// The built-in filters, tests, global functions and the methods of str,
// list and dict that templates may call, with Jinja 3.1's and Python 3.11's
// semantics. Transformers' environment replaces `tojson` and adds the
// globals `raise_exception` and `strftime_now`.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace strata::jinja {

// Null when Jinja has no filter or test of that name.
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);

// A global function (range, namespace, dict, joiner, cycler, lipsum,
// raise_exception, strftime_now), or Undefined.
Value find_global(std::string_view name);

// Jinja's sandboxed getattr (`obj.name`) and getitem (`obj[key]`): methods
// first for attribute syntax, items first for subscripts, Undefined when
// neither exists, and an Undefined that raises SecurityError for methods
// that would mutate a list or dict, or for private (`__x`) attributes.
Value get_attr(const Value& obj, std::string_view name);
// Python's getattr alone, without the fallback to items (the attr filter).
Value get_python_attr(const Value& obj, std::string_view name);
Value get_item(const Value& obj, const Value& key);

// Calls `obj.name(args)` directly when obj is a str, list or dict with a
// safe method of that name; nullopt when the generic path must be taken.
std::optional<Value> call_method(Renderer& r, const Value& obj, std::string_view name, CallArgs& args);

// Binds a call's arguments to named parameters the way Python does
// (positional first, then keywords by name); an absent parameter is nullopt.
// `required` parameters must be given. `func` names the callable in errors.
std::vector<std::optional<Value>> bind_args(const CallArgs& args, std::initializer_list<std::string_view> names,
                                            size_t required, std::string_view func);

}  // namespace strata::jinja
