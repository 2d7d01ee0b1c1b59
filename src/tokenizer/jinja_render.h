// The interpreter: runs a parsed template against a context, with Jinja's
// scoping (each for-loop iteration, macro call, set/filter block gets its own
// scope; if-blocks share their parent's; macros see the scope they were
// defined in, late-bound) and the sandbox's limits: a budget of work (loop
// iterations, macro calls, items walked by filters, bytes built), a cap on
// output and string size, and a cap on call and evaluation depth, so that a
// hostile template ends with a one-line error instead of a hang or a crash.
//
// A Renderer is used for one render by one thread.
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace strata::jinja {

struct RenderConfig {
  size_t max_output_bytes = 64u << 20;  // the render, any captured block, any one string
  uint64_t max_work = 10'000'000;       // loop iterations, macro calls, items walked, bytes/256
  int max_call_depth = 100;             // nested macro calls and recursive loops
  std::function<std::tm()> now;         // strftime_now's clock; empty: local time
};

// A variable scope; see the header comment for which constructs make one.
struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;
  const Value* find_local(std::string_view name) const;
  void set(std::string_view name, Value value);
};
using ScopePtr = std::shared_ptr<Scope>;

// jinja2.runtime.LoopContext: the `loop` variable.
struct LoopObj final : Object {
  std::vector<Value> items;
  int64_t index0 = 0;
  int depth0 = 0;
  const Stmt* stmt = nullptr;  // the for statement, to run it again for loop(...)
  ScopePtr scope;              // the scope the for statement runs in
  Value changed_last;
  bool changed_seen = false;
};

class Renderer {
 public:
  Renderer(const Template& tpl, RenderConfig config);
  ~Renderer();
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  // Renders with `context` (a dict) as the template's variables. Throws
  // RenderError; line() then tells where.
  std::string render(const Value& context);
  int line() const { return line_; }

  // For the built-ins.
  Value call(const Value& callee, CallArgs& args);
  Value call_filter(std::string_view name, const Value& input, CallArgs& args);
  bool call_test(std::string_view name, const Value& input, CallArgs& args);
  const RenderConfig& config() const { return config_; }
  // Spends `units` of the work budget; raises SecurityError when it runs out.
  void charge(uint64_t units);
  // Raises SecurityError if a string of `bytes` would exceed the size cap,
  // and charges the work of building it.
  void check_string(size_t bytes);
  // Tracks a namespace so the end of the render can break reference cycles through it.
  void track(const Value& ns);

 private:
  enum class Flow { Normal, Break, Continue };

  const Template& tpl_;
  RenderConfig config_;
  // Output buffers: the render's, then one per captured block (macro
  // call, set block, filter block) being rendered.
  std::vector<std::unique_ptr<std::string>> outputs_;
  std::string* out_ = nullptr;
  uint64_t work_ = 0;
  int call_depth_ = 0;
  int eval_depth_ = 0;
  int line_ = 0;
  std::vector<std::weak_ptr<Scope>> closure_scopes_;
  std::vector<std::weak_ptr<Object>> namespaces_;

  struct DepthGuard;
  struct Capture;

  void emit(std::string_view text);
  Flow exec_body(const Body& body, const ScopePtr& scope);
  Flow exec(const Stmt& s, const ScopePtr& scope);
  void exec_for(const Stmt& s, const ScopePtr& scope, const Value& iterable, int depth0);
  void assign(const Target& target, const Value& value, const ScopePtr& scope);
  std::string capture(const Body& body, const ScopePtr& scope);
  Value apply_filter_chain(const Expr& filter, const Value& input, const ScopePtr& scope);

  Value eval(const Expr& e, const ScopePtr& scope);
  Value eval_call(const Expr& e, const ScopePtr& scope);
  CallArgs eval_args(const ArgExprs& args, const ScopePtr& scope);
  Value eval_compare(const Expr& e, const ScopePtr& scope);
  Value eval_subscript(const Expr& e, const ScopePtr& scope);
  Value lookup(const std::string& name, const ScopePtr& scope) const;

  Value make_macro(const MacroDef& def, const ScopePtr& closure);
  Value call_macro(const MacroDef& def, const ScopePtr& closure, CallArgs& args);
  Value call_loop(LoopObj& loop, CallArgs& args);
};

}  // namespace strata::jinja
