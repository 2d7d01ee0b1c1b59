// The parsed form of a template: expressions and statements as Jinja's
// parser (jinja2/parser.py, nodes.py) builds them. The tree is immutable
// after parsing and is shared by every render of the template.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace strata::jinja {

// A filter or test implementation; `args` holds the arguments after the input.
using FilterFn = Value (*)(Renderer&, const Value& input, CallArgs& args);
using TestFn = bool (*)(Renderer&, const Value& input, CallArgs& args);

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct ArgExprs {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
  ExprPtr star;       // *args
  ExprPtr star_star;  // **kwargs
};

enum class ExprKind : uint8_t {
  Const,     // value
  Name,      // name
  Getattr,   // a.name
  Getitem,   // a[b]
  Slice,     // a:b:c inside a subscript (each may be null)
  Call,      // a(args)
  Filter,    // a | name(args); a is null inside a filter block or {% set x | f %}
  Test,      // a is name(args)
  Binary,    // a op b
  Unary,     // op a
  Compare,   // a (op b)...
  And,       // a and b
  Or,        // a or b
  CondExpr,  // b if a else c (c may be null)
  List,      // [items]
  Tuple,     // (items)
  Dict,      // {items[0]: items[1], ...}
  Concat,    // items[0] ~ items[1] ~ ...
};

enum class BinOp : uint8_t { Add, Sub, Mul, Div, FloorDiv, Mod, Pow };
enum class UnaryOp : uint8_t { Not, Neg, Pos };
enum class CmpOp : uint8_t { Eq, Ne, Lt, Le, Gt, Ge, In, NotIn };

struct Expr {
  ExprKind kind = ExprKind::Const;
  int line = 0;
  Value value;       // Const
  std::string name;  // Name, Getattr, Filter, Test
  ExprPtr a, b, c;
  std::vector<ExprPtr> items;
  std::vector<std::pair<CmpOp, ExprPtr>> ops;
  ArgExprs args;  // Call, Filter, Test
  BinOp bin_op = BinOp::Add;
  UnaryOp unary_op = UnaryOp::Not;
  FilterFn filter = nullptr;  // Filter: null when Jinja knows no such filter
  TestFn test = nullptr;      // Test: likewise
};

// Where a value is stored: a name, a tuple of targets to unpack into, or a
// namespace attribute (`ns.attr`, only in {% set %}).
struct Target {
  enum class Kind : uint8_t { Name, Tuple, NsAttr } kind = Kind::Name;
  std::string name;
  std::string attr;
  std::vector<Target> items;
  int line = 0;
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct MacroDef {
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // one per param; null where the param has none
  Body body;
  // Whether the body reads the implicit `varargs`, `kwargs` and `caller`,
  // which decides if extra arguments are accepted (jinja2 Macro).
  bool catch_varargs = false;
  bool catch_kwargs = false;
  bool catch_caller = false;
};

enum class StmtKind : uint8_t {
  Text,         // text
  Print,        // {{ expr }}
  If,           // branches (test, body)..., else_body
  For,          // for target in expr [if filter] [recursive]: body else else_body
  Set,          // set target = expr
  SetBlock,     // set target [| filter] %}body{% endset
  Macro,        // macro
  CallBlock,    // call(macro params) expr %}body (the caller){% endcall
  FilterBlock,  // filter chain (filter, innermost operand null) over body
  Scope,        // body in its own scope: {% generation %} and {% with %}
  Break,
  Continue,
};

struct Stmt {
  StmtKind kind = StmtKind::Text;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  Target target;
  bool recursive = false;
  std::unique_ptr<MacroDef> macro;
  std::vector<std::pair<Target, ExprPtr>> assigns;  // {% with a = 1 %}
};

struct Template {
  Body body;
};

}  // namespace strata::jinja
