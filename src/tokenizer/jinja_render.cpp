// The interpreter over the parsed tree. Statement semantics follow the code
// jinja2/compiler.py generates; expression semantics come from jinja_ops,
// jinja_value and the built-ins.
#include "tokenizer/jinja_render.h"

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_ops.h"

namespace strata::jinja {
namespace {

// Bounds the interpreter's own recursion (nested expressions and statements
// times nested macro calls), well inside an 8 MiB stack even with sanitizers.
constexpr int kMaxEvalDepth = 1000;

}  // namespace

const Value* Scope::find_local(std::string_view name) const {
  for (const auto& [k, v] : vars)
    if (k == name) return &v;
  return nullptr;
}

void Scope::set(std::string_view name, Value value) {
  for (auto& [k, v] : vars)
    if (k == name) {
      v = std::move(value);
      return;
    }
  vars.emplace_back(std::string(name), std::move(value));
}

namespace {

ScopePtr child_scope(const ScopePtr& parent) {
  auto s = std::make_shared<Scope>();
  s->parent = parent;
  return s;
}

}  // namespace

struct Renderer::DepthGuard {
  DepthGuard(int& counter, int limit) : count(counter) {
    if (++count > limit) {
      --count;
      raise("RecursionError", "maximum recursion depth exceeded");
    }
  }
  ~DepthGuard() { --count; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;
  int& count;
};

// Redirects output into a fresh buffer for the lifetime of the object.
struct Renderer::Capture {
  explicit Capture(Renderer& r) : renderer(r) {
    r.outputs_.push_back(std::make_unique<std::string>());
    r.out_ = r.outputs_.back().get();
  }
  ~Capture() {
    renderer.outputs_.pop_back();
    renderer.out_ = renderer.outputs_.empty() ? nullptr : renderer.outputs_.back().get();
  }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;
  std::string take() { return std::move(*renderer.outputs_.back()); }
  Renderer& renderer;
};

Renderer::Renderer(const Template& tpl, RenderConfig config) : tpl_(tpl), config_(std::move(config)) {}

Renderer::~Renderer() {
  // Macros hold the scope they were defined in, which holds the macros, and
  // namespaces may hold themselves: clear those so the render frees them.
  for (auto& weak : closure_scopes_)
    if (auto scope = weak.lock()) scope->vars.clear();
  for (auto& weak : namespaces_)
    if (auto ns = weak.lock()) static_cast<NamespaceObj*>(ns.get())->attrs.clear();
}

std::string Renderer::render(const Value& context) {
  auto root = std::make_shared<Scope>();
  if (context.kind() == Kind::Dict)
    for (const auto& [k, v] : context.as_dict().entries)
      if (k.is_str()) root->set(k.as_str(), v);
  std::string out;
  {
    Capture cap(*this);
    exec_body(tpl_.body, root);
    out = cap.take();
  }
  root->vars.clear();
  return out;
}

void Renderer::charge(uint64_t units) {
  work_ += units;
  if (work_ > config_.max_work)
    raise("SecurityError", cat("the template exceeded its work limit of ", std::to_string(config_.max_work),
                               " steps (loop iterations, calls and items processed)"));
}

void Renderer::check_string(size_t bytes) {
  if (bytes > config_.max_output_bytes)
    raise("SecurityError", cat("the template built a string longer than the limit of ",
                               std::to_string(config_.max_output_bytes), " bytes"));
  charge(bytes / 256);
}

void Renderer::track(const Value& ns) {
  if (ns.kind() == Kind::Namespace) namespaces_.push_back(ns.shared_object());
}

void Renderer::emit(std::string_view text) {
  if (out_->size() + text.size() > config_.max_output_bytes)
    raise("SecurityError",
          cat("the rendered output exceeds the limit of ", std::to_string(config_.max_output_bytes), " bytes"));
  out_->append(text);
}

Renderer::Flow Renderer::exec_body(const Body& body, const ScopePtr& scope) {
  for (const auto& s : body) {
    const Flow flow = exec(*s, scope);
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

Renderer::Flow Renderer::exec(const Stmt& s, const ScopePtr& scope) {
  DepthGuard depth(eval_depth_, kMaxEvalDepth);
  line_ = s.line;
  switch (s.kind) {
    case StmtKind::Text:
      emit(s.text);
      return Flow::Normal;
    case StmtKind::Print: {
      const Value v = eval(*s.expr, scope);
      if (v.is_str()) {
        emit(v.as_str());
      } else {
        std::string text;
        append_str(text, v);
        emit(text);
      }
      return Flow::Normal;
    }
    case StmtKind::If:
      for (const auto& [test, body] : s.branches)
        if (truthy(eval(*test, scope))) return exec_body(body, scope);
      return exec_body(s.else_body, scope);
    case StmtKind::For: {
      const Value iterable = eval(*s.expr, scope);
      exec_for(s, scope, iterable, 0);
      return Flow::Normal;
    }
    case StmtKind::Set:
      assign(s.target, eval(*s.expr, scope), scope);
      return Flow::Normal;
    case StmtKind::SetBlock: {
      const auto inner = child_scope(scope);
      Value v = Value::str(capture(s.body, inner));
      if (s.filter) v = apply_filter_chain(*s.filter, v, inner);
      assign(s.target, v, scope);
      return Flow::Normal;
    }
    case StmtKind::Macro:
      scope->set(s.macro->name, make_macro(*s.macro, scope));
      return Flow::Normal;
    case StmtKind::CallBlock: {
      // {% call %}: the body becomes the `caller` macro passed to the call.
      const Expr& call = *s.expr;
      Value callee = eval(*call.a, scope);
      CallArgs args = eval_args(call.args, scope);
      args.keyword.emplace_back("caller", make_macro(*s.macro, scope));
      const Value result = this->call(callee, args);
      std::string text;
      append_str(text, result);
      emit(text);
      return Flow::Normal;
    }
    case StmtKind::FilterBlock: {
      const auto inner = child_scope(scope);
      const Value body = Value::str(capture(s.body, inner));
      const Value result = apply_filter_chain(*s.filter, body, inner);
      std::string text;
      append_str(text, result);
      emit(text);
      return Flow::Normal;
    }
    case StmtKind::Scope: {
      const auto inner = child_scope(scope);
      for (const auto& [target, value] : s.assigns) assign(target, eval(*value, scope), inner);
      return exec_body(s.body, inner);
    }
    case StmtKind::Break:
      return Flow::Break;
    case StmtKind::Continue:
      return Flow::Continue;
  }
  return Flow::Normal;
}

std::string Renderer::capture(const Body& body, const ScopePtr& scope) {
  Capture cap(*this);
  exec_body(body, scope);
  return cap.take();
}

// Applies a filter chain whose innermost filter has no operand (the body of
// a filter block or set block) to `input`.
Value Renderer::apply_filter_chain(const Expr& filter, const Value& input, const ScopePtr& scope) {
  const Value operand = filter.a ? apply_filter_chain(*filter.a, input, scope) : input;
  CallArgs args = eval_args(filter.args, scope);
  if (!filter.filter) raise("TemplateRuntimeError", cat("No filter named '", filter.name, "' found."));
  return filter.filter(*this, operand, args);
}

void Renderer::exec_for(const Stmt& s, const ScopePtr& scope, const Value& iterable, int depth0) {
  std::vector<Value> items = iterate(iterable);
  if (s.filter) {
    std::vector<Value> kept;
    for (const Value& item : items) {
      charge(1);
      const auto test_scope = child_scope(scope);
      assign(s.target, item, test_scope);
      if (truthy(eval(*s.filter, test_scope))) kept.push_back(item);
    }
    items = std::move(kept);
  }
  auto loop = std::make_shared<LoopObj>();
  loop->items = std::move(items);
  loop->depth0 = depth0;
  loop->stmt = &s;
  loop->scope = scope;
  const Value loop_value = Value::from_object(Kind::Loop, loop);
  // Jinja runs the else block unless some iteration reached the end of the
  // body: an empty loop, or one whose every pass ended in break/continue.
  bool completed = false;
  ScopePtr it;
  for (size_t i = 0; i < loop->items.size(); ++i) {
    charge(1);
    loop->index0 = static_cast<int64_t>(i);
    // Each pass gets a fresh scope; the last one is reused when nothing
    // (a macro defined in the body) kept a reference to it.
    if (it && it.use_count() == 1) {
      it->vars.clear();
    } else {
      it = child_scope(scope);
    }
    assign(s.target, loop->items[i], it);
    it->set("loop", loop_value);
    const Flow flow = exec_body(s.body, it);
    if (flow == Flow::Break) break;
    if (flow == Flow::Normal) completed = true;
  }
  // The loop object may outlive the loop (stored in a namespace); it must not
  // keep the scope alive, which could hold it in turn.
  loop->scope.reset();
  if (!completed && !s.else_body.empty()) exec_body(s.else_body, child_scope(scope));
}

void Renderer::assign(const Target& target, const Value& value, const ScopePtr& scope) {
  switch (target.kind) {
    case Target::Kind::Name:
      scope->set(target.name, value);
      return;
    case Target::Kind::NsAttr: {
      const Value ns = lookup(target.name, scope);
      if (ns.kind() != Kind::Namespace)
        raise("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
      ns.as_namespace().set(target.attr, value);
      return;
    }
    case Target::Kind::Tuple: {
      const std::vector<Value> items = iterate(value);
      const size_t want = target.items.size();
      if (items.size() < want)
        raise("ValueError", cat("not enough values to unpack (expected ", std::to_string(want), ", got ",
                                std::to_string(items.size()), ")"));
      if (items.size() > want)
        raise("ValueError", cat("too many values to unpack (expected ", std::to_string(want), ")"));
      for (size_t i = 0; i < want; ++i) assign(target.items[i], items[i], scope);
      return;
    }
  }
}

Value Renderer::lookup(const std::string& name, const ScopePtr& scope) const {
  for (const Scope* s = scope.get(); s; s = s->parent.get())
    if (const Value* v = s->find_local(name)) return *v;
  Value global = find_global(name);
  if (!global.is_undefined()) return global;
  return Value::undefined_name(name);
}

Value Renderer::eval(const Expr& e, const ScopePtr& scope) {
  DepthGuard depth(eval_depth_, kMaxEvalDepth);
  switch (e.kind) {
    case ExprKind::Const:
      return e.value;
    case ExprKind::Name:
      return lookup(e.name, scope);
    case ExprKind::Getattr:
      return get_attr(eval(*e.a, scope), e.name);
    case ExprKind::Getitem:
      return eval_subscript(e, scope);
    case ExprKind::Slice:
      raise("TemplateSyntaxError", "a slice outside a subscript");
    case ExprKind::Call:
      return eval_call(e, scope);
    case ExprKind::Filter: {
      const Value input = e.a ? eval(*e.a, scope) : Value();
      CallArgs args = eval_args(e.args, scope);
      line_ = e.line;
      if (!e.filter) raise("TemplateRuntimeError", cat("No filter named '", e.name, "' found."));
      return e.filter(*this, input, args);
    }
    case ExprKind::Test: {
      const Value input = eval(*e.a, scope);
      CallArgs args = eval_args(e.args, scope);
      line_ = e.line;
      if (!e.test) raise("TemplateRuntimeError", cat("No test named '", e.name, "' found."));
      return Value::boolean(e.test(*this, input, args));
    }
    case ExprKind::Binary: {
      const Value a = eval(*e.a, scope);
      const Value b = eval(*e.b, scope);
      line_ = e.line;
      return binary_op(*this, e.bin_op, a, b);
    }
    case ExprKind::Unary: {
      const Value a = eval(*e.a, scope);
      if (e.unary_op == UnaryOp::Not) return Value::boolean(!truthy(a));
      line_ = e.line;
      return unary_op(e.unary_op, a);
    }
    case ExprKind::Compare:
      return eval_compare(e, scope);
    case ExprKind::And: {
      Value a = eval(*e.a, scope);
      return truthy(a) ? eval(*e.b, scope) : a;
    }
    case ExprKind::Or: {
      Value a = eval(*e.a, scope);
      return truthy(a) ? a : eval(*e.b, scope);
    }
    case ExprKind::CondExpr:
      if (truthy(eval(*e.a, scope))) return eval(*e.b, scope);
      if (e.c) return eval(*e.c, scope);
      return Value::undefined(cat("the inline if-expression on line ", std::to_string(e.line),
                                  " evaluated to false and no else section was defined."));
    case ExprKind::List:
    case ExprKind::Tuple: {
      std::vector<Value> items;
      items.reserve(e.items.size());
      for (const auto& item : e.items) items.push_back(eval(*item, scope));
      return Value::seq(std::move(items), e.kind == ExprKind::Tuple ? SeqType::Tuple : SeqType::List);
    }
    case ExprKind::Dict: {
      DictBuilder dict;
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value key = eval(*e.items[i], scope);
        dict.set(std::move(key), eval(*e.items[i + 1], scope));
      }
      return dict.build();
    }
    case ExprKind::Concat: {
      // `~` joins str() of each part, never escaping (autoescape is off).
      std::string out;
      for (const auto& part : e.items) {
        append_str(out, eval(*part, scope));
        check_string(out.size());
      }
      return Value::str(std::move(out));
    }
  }
  return Value();
}

Value Renderer::eval_subscript(const Expr& e, const ScopePtr& scope) {
  const Value obj = eval(*e.a, scope);
  if (e.b->kind == ExprKind::Slice) {
    auto part = [&](const ExprPtr& p) { return p ? eval(*p, scope) : Value::none(); };
    const Value start = part(e.b->a), stop = part(e.b->b), step = part(e.b->c);
    line_ = e.line;
    return slice(obj, start, stop, step);
  }
  const Value key = eval(*e.b, scope);
  line_ = e.line;
  return get_item(obj, key);
}

Value Renderer::eval_compare(const Expr& e, const ScopePtr& scope) {
  Value left = eval(*e.a, scope);
  for (const auto& [op, expr] : e.ops) {
    Value right = eval(*expr, scope);
    line_ = e.line;
    bool result = false;
    switch (op) {
      case CmpOp::Eq:
        result = equal(left, right);
        break;
      case CmpOp::Ne:
        result = !equal(left, right);
        break;
      case CmpOp::Lt:
        result = order(left, right, "<");
        break;
      case CmpOp::Le:
        result = order(left, right, "<=");
        break;
      case CmpOp::Gt:
        result = order(left, right, ">");
        break;
      case CmpOp::Ge:
        result = order(left, right, ">=");
        break;
      case CmpOp::In:
        result = contains(right, left);
        break;
      case CmpOp::NotIn:
        result = !contains(right, left);
        break;
    }
    if (!result) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

CallArgs Renderer::eval_args(const ArgExprs& args, const ScopePtr& scope) {
  CallArgs out;
  out.positional.reserve(args.positional.size());
  for (const auto& a : args.positional) out.positional.push_back(eval(*a, scope));
  for (const auto& [k, a] : args.keyword) out.keyword.emplace_back(k, eval(*a, scope));
  if (args.star)
    for (Value& v : iterate(eval(*args.star, scope))) out.positional.push_back(std::move(v));
  if (args.star_star) {
    const Value kw = eval(*args.star_star, scope);
    if (kw.kind() != Kind::Dict) raise("TypeError", cat("argument after ** must be a mapping, not ", type_name(kw)));
    for (const auto& [k, v] : kw.as_dict().entries) {
      if (!k.is_str()) raise("TypeError", "keywords must be strings");
      out.keyword.emplace_back(k.as_str(), v);
    }
  }
  return out;
}

Value Renderer::eval_call(const Expr& e, const ScopePtr& scope) {
  if (e.a->kind == ExprKind::Getattr) {
    // obj.method(...): call str/list/dict methods without building a bound method.
    const Value obj = eval(*e.a->a, scope);
    if (obj.is_undefined()) raise_undefined(obj);
    CallArgs args = eval_args(e.args, scope);
    line_ = e.line;
    if (auto result = call_method(*this, obj, e.a->name, args)) return std::move(*result);
    const Value fn = get_attr(obj, e.a->name);
    return call(fn, args);
  }
  const Value fn = eval(*e.a, scope);
  CallArgs args = eval_args(e.args, scope);
  line_ = e.line;
  return call(fn, args);
}

Value Renderer::call(const Value& callee, CallArgs& args) {
  switch (callee.kind()) {
    case Kind::Func:
      return callee.as_func().fn(*this, args);
    case Kind::Undefined:
      raise_undefined(callee);
    case Kind::Loop:
      return call_loop(*static_cast<LoopObj*>(callee.object()), args);
    default:
      raise("TypeError", cat("'", type_name(callee), "' object is not callable"));
  }
}

Value Renderer::call_filter(std::string_view name, const Value& input, CallArgs& args) {
  const FilterFn fn = find_filter(name);
  if (!fn) raise("TemplateRuntimeError", cat("No filter named '", std::string(name), "'."));
  return fn(*this, input, args);
}

bool Renderer::call_test(std::string_view name, const Value& input, CallArgs& args) {
  const TestFn fn = find_test(name);
  if (!fn) raise("TemplateRuntimeError", cat("No test named '", std::string(name), "'."));
  return fn(*this, input, args);
}

Value Renderer::make_macro(const MacroDef& def, const ScopePtr& closure) {
  closure_scopes_.push_back(closure);
  const MacroDef* d = &def;
  return Value::function(
      def.name, [d, closure](Renderer& r, CallArgs& args) { return r.call_macro(*d, closure, args); }, "Macro");
}

// jinja2.runtime.Macro.__call__ and the function the compiler writes for a macro.
Value Renderer::call_macro(const MacroDef& def, const ScopePtr& closure, CallArgs& args) {
  DepthGuard depth(call_depth_, config_.max_call_depth);
  charge(1);
  const auto scope = child_scope(closure);
  const size_t n = def.params.size();
  std::vector<std::optional<Value>> values(n);
  for (size_t i = 0; i < n && i < args.positional.size(); ++i) values[i] = args.positional[i];
  std::vector<std::pair<std::string, Value>> extra_kwargs;
  for (auto& [k, v] : args.keyword) {
    bool matched = false;
    for (size_t i = args.positional.size(); i < n; ++i)
      if (def.params[i] == k) {
        values[i] = v;
        matched = true;
        break;
      }
    if (!matched) {
      if (k == "caller" && def.catch_caller) {
        scope->set("caller", v);
        continue;
      }
      if (!def.catch_kwargs)
        raise("TypeError", cat("macro ", repr_str(def.name), " takes no keyword argument ", repr_str(k)));
      extra_kwargs.emplace_back(k, v);
    }
  }
  if (args.positional.size() > n && !def.catch_varargs)
    raise("TypeError", cat("macro ", repr_str(def.name), " takes not more than ", std::to_string(n), " argument(s)"));
  if (def.catch_caller && !scope->find_local("caller")) scope->set("caller", Value::undefined("No caller defined"));
  if (def.catch_kwargs) {
    std::vector<std::pair<Value, Value>> entries;
    for (auto& [k, v] : extra_kwargs) entries.emplace_back(Value::str(k), v);
    scope->set("kwargs", Value::dict(std::move(entries)));
  }
  if (def.catch_varargs) {
    std::vector<Value> rest;
    for (size_t i = n; i < args.positional.size(); ++i) rest.push_back(args.positional[i]);
    scope->set("varargs", Value::tuple(std::move(rest)));
  }
  // Parameters in order; a default is evaluated in the macro's scope, so it
  // sees the parameters before it.
  for (size_t i = 0; i < n; ++i) {
    if (values[i]) {
      scope->set(def.params[i], std::move(*values[i]));
    } else if (def.defaults[i]) {
      scope->set(def.params[i], eval(*def.defaults[i], scope));
    } else {
      scope->set(def.params[i], Value::undefined(cat("parameter ", repr_str(def.params[i]), " was not provided")));
    }
  }
  const int saved_line = line_;
  std::string text = capture(def.body, scope);
  line_ = saved_line;
  return Value::str(std::move(text));
}

// loop(items) in a recursive for loop renders the loop's body for `items`
// one level deeper and returns the text.
Value Renderer::call_loop(LoopObj& loop, CallArgs& args) {
  if (!loop.stmt || !loop.stmt->recursive)
    raise("TypeError", "The loop must have the 'recursive' marker to be called recursively.");
  if (!loop.scope) raise("TypeError", "a recursive loop can only be called while it runs");
  if (args.positional.size() != 1 || !args.keyword.empty())
    raise("TypeError", "loop() takes exactly one argument, the items to iterate");
  DepthGuard depth(call_depth_, config_.max_call_depth);
  Capture cap(*this);
  exec_for(*loop.stmt, loop.scope, args.positional[0], loop.depth0 + 1);
  return Value::str(cap.take());
}

}  // namespace strata::jinja
