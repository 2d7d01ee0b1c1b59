// The template globals: Jinja's range (capped by the sandbox at 100000
// items), dict, namespace and joiner, plus transformers' raise_exception and
// strftime_now (chat_template_utils.py).
#include <ctime>
#include <unordered_map>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_render.h"
#include "tokenizer/jinja_strings.h"

namespace strata::jinja {
namespace {

// jinja2.sandbox.MAX_RANGE.
constexpr int64_t kMaxRange = 100000;

int64_t range_arg(const Value& v) {
  if (!v.is_int()) raise("TypeError", cat("'", type_name(v), "' object cannot be interpreted as an integer"));
  return v.as_int();
}

Value g_range(Renderer& r, CallArgs& args) {
  if (!args.keyword.empty()) raise("TypeError", "range() takes no keyword arguments");
  const auto& p = args.positional;
  if (p.empty()) raise("TypeError", "range expected at least 1 argument, got 0");
  if (p.size() > 3) raise("TypeError", cat("range expected at most 3 arguments, got ", std::to_string(p.size())));
  int64_t start = 0, stop, step = 1;
  if (p.size() == 1) {
    stop = range_arg(p[0]);
  } else {
    start = range_arg(p[0]);
    stop = range_arg(p[1]);
    if (p.size() == 3) step = range_arg(p[2]);
  }
  if (step == 0) raise("ValueError", "range() arg 3 must not be zero");
  // The count in unsigned 64-bit arithmetic: start, stop and step may be any int64.
  uint64_t count = 0;
  const auto ustart = static_cast<uint64_t>(start), ustop = static_cast<uint64_t>(stop);
  if (step > 0 && start < stop) count = (ustop - ustart - 1) / static_cast<uint64_t>(step) + 1;
  if (step < 0 && start > stop) count = (ustart - ustop - 1) / (0 - static_cast<uint64_t>(step)) + 1;
  if (count > static_cast<uint64_t>(kMaxRange))
    raise("OverflowError", "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  r.charge(count);
  std::vector<Value> items;
  items.reserve(count);
  // Modular arithmetic gives the exact in-range values without signed overflow.
  for (uint64_t i = 0; i < count; ++i)
    items.push_back(Value::integer(static_cast<int64_t>(ustart + i * static_cast<uint64_t>(step))));
  return Value::seq(std::move(items), SeqType::Range);
}

// dict(mapping or pairs, **kwargs), the shared core of dict() and namespace().
std::vector<std::pair<Value, Value>> dict_entries(CallArgs& args, std::string_view func) {
  if (args.positional.size() > 1)
    raise("TypeError",
          std::string(func) + " expected at most 1 argument, got " + std::to_string(args.positional.size()));
  DictBuilder builder;
  std::vector<std::pair<Value, Value>> entries;
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.kind() == Kind::Dict) {
      for (const auto& [k, v] : src.as_dict().entries) builder.set(k, v);
    } else {
      size_t index = 0;
      for (const Value& pair : iterate(src)) {
        const std::vector<Value> kv = pair.is_str() || pair.kind() == Kind::Seq ? iterate(pair) : std::vector<Value>{};
        if (kv.size() != 2)
          raise("ValueError", cat("dictionary update sequence element #", std::to_string(index), " has length ",
                                  std::to_string(kv.size()), "; 2 is required"));
        builder.set(kv[0], kv[1]);
        ++index;
      }
    }
  }
  for (const auto& [k, v] : args.keyword) builder.set(Value::str(k), v);
  const Value d = builder.build();
  return d.as_dict().entries;
}

Value g_dict(Renderer&, CallArgs& args) { return Value::dict(dict_entries(args, "dict")); }

Value g_namespace(Renderer& r, CallArgs& args) {
  Value ns = Value::namespace_object();
  for (auto& [k, v] : dict_entries(args, "namespace")) {
    if (!k.is_str()) raise("TypeError", "keywords must be strings");
    ns.as_namespace().set(k.as_str(), v);
  }
  r.track(ns);
  return ns;
}

Value g_raise_exception(Renderer&, CallArgs& args) {
  if (args.positional.size() + args.keyword.size() != 1)
    raise("TypeError", "raise_exception() takes 1 positional argument but " +
                           std::to_string(args.positional.size() + args.keyword.size()) + " were given");
  raise("TemplateError", to_str(args.positional.empty() ? args.keyword[0].second : args.positional[0]));
}

Value g_strftime_now(Renderer& r, CallArgs& args) {
  if (args.positional.size() != 1 || !args.keyword.empty() || !args.positional[0].is_str())
    raise("TypeError", "strftime_now() takes one format string");
  std::tm tm{};
  if (r.config().now) {
    tm = r.config().now();
  } else {
    const std::time_t t = std::time(nullptr);
    localtime_r(&t, &tm);
  }
  // datetime.strftime handles %f itself (microseconds; the pinned clock has none).
  const std::string format = py_replace(args.positional[0].as_str(), "%f", "000000", -1);
  if (format.empty()) return Value::str("");
  std::string buf(format.size() * 4 + 64, '\0');
  for (int attempt = 0; attempt < 8; ++attempt) {
    const size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &tm);
    if (n > 0) return Value::str(buf.substr(0, n));
    buf.resize(buf.size() * 4);
  }
  return Value::str("");
}

// joiner(sep): a function that returns "" the first time and sep after.
Value g_joiner(Renderer&, CallArgs& args) {
  const auto a = bind_args(args, {"sep"}, 0, "joiner");
  const std::string sep = a[0] ? to_str(*a[0]) : ", ";
  auto used = std::make_shared<bool>(false);
  return Value::function("joiner", [sep, used](Renderer&, CallArgs&) {
    if (!*used) {
      *used = true;
      return Value::str("");
    }
    return Value::str(sep);
  });
}

using GlobalFn = Value (*)(Renderer&, CallArgs&);

const std::unordered_map<std::string_view, Value>& globals() {
  static const std::unordered_map<std::string_view, Value> table = [] {
    std::unordered_map<std::string_view, Value> t;
    auto add = [&](std::string_view name, GlobalFn fn, const char* type = "function") {
      t.emplace(name, Value::function(std::string(name), fn, type));
    };
    add("range", g_range);
    add("dict", g_dict, "type");
    add("namespace", g_namespace, "type");
    add("joiner", g_joiner, "type");
    add("raise_exception", g_raise_exception);
    add("strftime_now", g_strftime_now);
    return t;
  }();
  return table;
}

}  // namespace

Value find_global(std::string_view name) {
  const auto& table = globals();
  const auto it = table.find(name);
  return it == table.end() ? Value() : it->second;
}

}  // namespace strata::jinja
