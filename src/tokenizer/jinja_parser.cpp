// Recursive-descent parser over the lexer's tokens, following
// jinja2/parser.py (3.1) rule for rule so that precedence, tuple handling and
// error cases agree: condexpr < or < and < not < compare < + - < ~ < * / // %
// < ** < unary; filters and tests bind to the unary operand.
#include "tokenizer/jinja_parser.h"

#include <algorithm>
#include <optional>

#include "tokenizer/jinja_analysis.h"
#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_lexer.h"

namespace strata::jinja {
namespace {

// How deeply expressions and blocks may nest: a bound on the parser's (and
// the renderer's) recursion, far above what real templates need.
constexpr int kMaxNesting = 400;

ExprPtr make_expr(ExprKind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  std::unique_ptr<Template> run() {
    auto tpl = std::make_unique<Template>();
    tpl->body = subparse(nullptr);
    check_filters_and_tests(tpl->body);
    return tpl;
  }

 private:
  std::vector<Token> toks_;
  size_t pos_ = 0;
  int nesting_ = 0;
  int loop_depth_ = 0;                                // for break/continue outside a loop
  std::vector<std::vector<std::string>> end_tokens_;  // what each open block waits for
  std::vector<std::string> tag_stack_;                // the open blocks' tags

  // --- token stream -------------------------------------------------------

  const Token& cur() const { return toks_[pos_]; }
  const Token& look() const { return toks_[std::min(pos_ + 1, toks_.size() - 1)]; }
  void advance() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }

  [[noreturn]] void fail(const std::string& message, int line = -1) const {
    raise("TemplateSyntaxError", message + " (line " + std::to_string(line < 0 ? cur().line : line) + ")");
  }

  bool skip_op(std::string_view op) {
    if (!cur().is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!cur().is_name(name)) return false;
    advance();
    return true;
  }

  [[noreturn]] void fail_expected(const std::string& what) const {
    if (cur().type == Tok::Eof) fail(cat("unexpected end of template, expected '", what, "'."));
    fail(cat("expected token '", what, "', got '", describe(cur()), "'"));
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail_expected(std::string(op));
  }
  void expect_type(Tok type, const std::string& what) {
    if (cur().type != type) fail_expected(what);
    advance();
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) fail_expected("name");
    std::string name = cur().text;
    advance();
    return name;
  }
  void expect_name(std::string_view name) {
    if (!skip_name(name)) fail_expected(std::string(name));
  }

  struct NestGuard {
    explicit NestGuard(Parser& p) : parser(p) {
      if (++parser.nesting_ > kMaxNesting) parser.fail("the template nests too deeply");
    }
    ~NestGuard() { --parser.nesting_; }
    NestGuard(const NestGuard&) = delete;
    NestGuard& operator=(const NestGuard&) = delete;
    Parser& parser;
  };

  // Counts each link of a left-nested chain (a.b.c, a + b + c, x|f|g) as a
  // level of nesting: the tree it builds is as deep as the chain is long.
  struct ChainGuard {
    explicit ChainGuard(Parser& p) : parser(p) {}
    ~ChainGuard() { parser.nesting_ -= links; }
    ChainGuard(const ChainGuard&) = delete;
    ChainGuard& operator=(const ChainGuard&) = delete;
    void link() {
      ++links;
      if (++parser.nesting_ > kMaxNesting) parser.fail("the template nests too deeply");
    }
    Parser& parser;
    int links = 0;
  };

  // --- statements ---------------------------------------------------------

  bool at_end_token(const std::vector<std::string>* end_tokens) const {
    if (!end_tokens || cur().type != Tok::Name) return false;
    return std::find(end_tokens->begin(), end_tokens->end(), cur().text) != end_tokens->end();
  }

  static std::string quoted_list(const std::vector<std::string>& names) {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i) out += (i ? " or '" : "'") + names[i] + "'";
    return out;
  }

  // jinja2.parser.Parser._fail_ut_eof: what was found and what was expected.
  [[noreturn]] void fail_unknown_tag(const std::string* name, int line) const {
    std::string message = name ? cat("Encountered unknown tag '", *name, "'.") : "Unexpected end of template.";
    if (!end_tokens_.empty()) {
      bool expected = false;
      for (const auto& group : end_tokens_)
        if (name && std::find(group.begin(), group.end(), *name) != group.end()) expected = true;
      if (expected) {
        message += " You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for " +
                   quoted_list(end_tokens_.back()) + ".";
      } else {
        message += cat(" Jinja was looking for the following tags: ", quoted_list(end_tokens_.back()), ".");
      }
    }
    if (!tag_stack_.empty())
      message += cat(" The innermost block that needs to be closed is '", tag_stack_.back(), "'.");
    fail(message, line);
  }

  Body subparse(const std::vector<std::string>* end_tokens) {
    if (end_tokens) end_tokens_.push_back(*end_tokens);
    Body body;
    while (cur().type != Tok::Eof) {
      const Token& t = cur();
      if (t.type == Tok::Data) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Text;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        advance();
      } else if (t.type == Tok::VariableBegin) {
        advance();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Print;
        s->line = cur().line;
        s->expr = parse_tuple(true, false, {});
        body.push_back(std::move(s));
        expect_type(Tok::VariableEnd, "end of print statement");
      } else if (t.type == Tok::BlockBegin) {
        advance();
        if (at_end_token(end_tokens)) {
          end_tokens_.pop_back();
          return body;
        }
        body.push_back(parse_statement());
        expect_type(Tok::BlockEnd, "end of statement block");
      } else {
        fail(cat("unexpected '", describe(t), "'"));
      }
    }
    if (end_tokens) fail_unknown_tag(nullptr, cur().line);
    return body;
  }

  // Parses `%}` body up to one of end_tokens; with drop_needle the end tag's
  // name is consumed too.
  Body parse_statements(const std::vector<std::string>& end_tokens, bool drop_needle) {
    skip_op(":");
    expect_type(Tok::BlockEnd, "end of statement block");
    Body body = subparse(&end_tokens);
    if (cur().type == Tok::Eof) fail_unknown_tag(nullptr, cur().line);
    if (drop_needle) advance();
    return body;
  }

  std::unique_ptr<Stmt> parse_statement() {
    NestGuard guard(*this);
    const Token& t = cur();
    if (t.type != Tok::Name) fail("tag name expected");
    const std::string tag = t.text;
    const int line = t.line;
    tag_stack_.push_back(tag);
    std::unique_ptr<Stmt> s;
    if (tag == "if") {
      s = parse_if();
    } else if (tag == "for") {
      s = parse_for();
    } else if (tag == "set") {
      s = parse_set();
    } else if (tag == "macro") {
      s = parse_macro();
    } else if (tag == "call") {
      s = parse_call_block();
    } else if (tag == "filter") {
      s = parse_filter_block();
    } else if (tag == "with") {
      s = parse_with();
    } else if (tag == "generation") {
      // transformers' AssistantTracker: a call block whose caller renders the body.
      advance();
      s = std::make_unique<Stmt>();
      s->kind = StmtKind::Scope;
      s->body = parse_statements({"endgeneration"}, true);
    } else if (tag == "print") {
      advance();
      s = std::make_unique<Stmt>();
      s->kind = StmtKind::Print;
      std::vector<ExprPtr> items;
      while (cur().type != Tok::BlockEnd) {
        if (!items.empty()) expect_op(",");
        items.push_back(parse_expression(true));
      }
      if (items.size() == 1) {
        s->expr = std::move(items[0]);
      } else {
        s->expr = make_expr(ExprKind::Tuple, line);
        s->expr->items = std::move(items);
      }
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail(cat("'", tag, "' outside loop"), line);
      advance();
      s = std::make_unique<Stmt>();
      s->kind = tag == "break" ? StmtKind::Break : StmtKind::Continue;
    } else if (tag == "include" || tag == "import" || tag == "from" || tag == "extends" || tag == "block") {
      fail(cat("tag '", tag, "' is not supported in chat templates (they have no loader)"), line);
    } else {
      tag_stack_.pop_back();
      fail_unknown_tag(&tag, line);
    }
    tag_stack_.pop_back();
    s->line = line;
    return s;
  }

  std::unique_ptr<Stmt> parse_if() {
    advance();
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::If;
    while (true) {
      ExprPtr test = parse_tuple(false, false, {});
      Body body = parse_statements({"elif", "else", "endif"}, false);
      s->branches.emplace_back(std::move(test), std::move(body));
      const std::string token = cur().text;
      advance();
      if (token == "elif") continue;
      if (token == "else") s->else_body = parse_statements({"endif"}, true);
      break;
    }
    return s;
  }

  std::unique_ptr<Stmt> parse_for() {
    advance();
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::For;
    s->target = parse_assign_target(true, false, {"in"}, false);
    if (contains_name(s->target, "loop")) fail("Can't assign to special loop variable in for-loop target");
    expect_name("in");
    s->expr = parse_tuple(false, false, {"recursive"});
    if (skip_name("if")) s->filter = parse_expression(true);
    s->recursive = skip_name("recursive");
    ++loop_depth_;
    s->body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    const std::string token = cur().text;
    advance();
    if (token == "else") {
      // break/continue in a for-else block leave the enclosing loop, if any.
      const int saved = loop_depth_;
      s->else_body = parse_statements({"endfor"}, true);
      loop_depth_ = saved;
    }
    return s;
  }

  static bool contains_name(const Target& t, std::string_view name) {
    if (t.kind == Target::Kind::Name) return t.name == name;
    return std::any_of(t.items.begin(), t.items.end(), [&](const Target& i) { return contains_name(i, name); });
  }

  std::unique_ptr<Stmt> parse_set() {
    advance();
    auto s = std::make_unique<Stmt>();
    s->target = parse_assign_target(true, false, {}, true);
    if (skip_op("=")) {
      s->kind = StmtKind::Set;
      s->expr = parse_tuple(true, false, {});
      return s;
    }
    s->kind = StmtKind::SetBlock;
    s->filter = parse_filter(nullptr, false);
    const int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements({"endset"}, true);
    loop_depth_ = saved;
    return s;
  }

  void parse_signature(MacroDef& m) {
    expect_op("(");
    bool any_default = false;
    while (!cur().is_op(")")) {
      if (!m.params.empty()) expect_op(",");
      m.params.push_back(expect_name());
      if (skip_op("=")) {
        m.defaults.push_back(parse_expression(true));
        any_default = true;
      } else {
        if (any_default) fail("non-default argument follows default argument");
        m.defaults.push_back(nullptr);
      }
    }
    expect_op(")");
  }

  std::unique_ptr<MacroDef> parse_macro_body(std::unique_ptr<MacroDef> m, const std::string& end_tag) {
    const int saved = loop_depth_;
    loop_depth_ = 0;
    m->body = parse_statements({end_tag}, true);
    loop_depth_ = saved;
    // jinja2 Macro: the special names the body reads decide what it accepts.
    m->catch_varargs = body_reads_name(m->body, "varargs");
    m->catch_kwargs = body_reads_name(m->body, "kwargs");
    m->catch_caller = body_reads_name(m->body, "caller");
    return m;
  }

  std::unique_ptr<Stmt> parse_macro() {
    advance();
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::Macro;
    auto m = std::make_unique<MacroDef>();
    m->name = expect_name();
    parse_signature(*m);
    s->macro = parse_macro_body(std::move(m), "endmacro");
    return s;
  }

  std::unique_ptr<Stmt> parse_call_block() {
    const int line = cur().line;
    advance();
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::CallBlock;
    auto m = std::make_unique<MacroDef>();
    m->name = "caller";
    if (cur().is_op("(")) parse_signature(*m);
    s->expr = parse_expression(true);
    if (s->expr->kind != ExprKind::Call) fail("expected call", line);
    s->macro = parse_macro_body(std::move(m), "endcall");
    return s;
  }

  std::unique_ptr<Stmt> parse_filter_block() {
    advance();
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::FilterBlock;
    s->filter = parse_filter(nullptr, true);
    const int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements({"endfilter"}, true);
    loop_depth_ = saved;
    return s;
  }

  std::unique_ptr<Stmt> parse_with() {
    advance();
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::Scope;
    while (cur().type != Tok::BlockEnd) {
      if (!s->assigns.empty()) expect_op(",");
      Target target = parse_assign_target(true, false, {}, false);
      expect_op("=");
      s->assigns.emplace_back(std::move(target), parse_expression(true));
    }
    s->body = parse_statements({"endwith"}, true);
    return s;
  }

  Target parse_assign_target(bool with_tuple, bool name_only, const std::vector<std::string>& extra_end,
                             bool with_namespace) {
    Target t;
    t.line = cur().line;
    if (with_namespace && cur().type == Tok::Name && look().is_op(".")) {
      t.kind = Target::Kind::NsAttr;
      t.name = expect_name();
      advance();
      t.attr = expect_name();
      return t;
    }
    if (name_only) {
      t.name = expect_name();
      return t;
    }
    ExprPtr e = with_tuple ? parse_tuple(true, true, extra_end) : parse_primary();
    return to_target(*e);
  }

  Target to_target(const Expr& e) {
    Target t;
    t.line = e.line;
    if (e.kind == ExprKind::Name) {
      t.name = e.name;
      return t;
    }
    if (e.kind == ExprKind::Tuple) {
      t.kind = Target::Kind::Tuple;
      for (const auto& item : e.items) t.items.push_back(to_target(*item));
      return t;
    }
    const char* what = e.kind == ExprKind::Const ? "const" : e.kind == ExprKind::List ? "list" : "expression";
    fail(std::string("can't assign to '") + what + "'", e.line);
  }

  // --- expressions --------------------------------------------------------

  bool is_tuple_end(const std::vector<std::string>& extra_end) const {
    const Token& t = cur();
    if (t.type == Tok::VariableEnd || t.type == Tok::BlockEnd || t.is_op(")")) return true;
    return t.type == Tok::Name && std::find(extra_end.begin(), extra_end.end(), t.text) != extra_end.end();
  }

  // jinja2 parse_tuple: comma-separated expressions; one without a comma is itself.
  ExprPtr parse_tuple(bool with_condexpr, bool simplified, const std::vector<std::string>& extra_end,
                      bool explicit_parentheses = false) {
    const int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
      if (cur().is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) fail(cat("Expected an expression, got '", describe(cur()), "'"));
    }
    auto e = make_expr(ExprKind::Tuple, line);
    e->items = std::move(items);
    return e;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    NestGuard guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    const int line = cur().line;
    ExprPtr expr1 = parse_or();
    ChainGuard chain(*this);
    while (skip_name("if")) {
      chain.link();
      ExprPtr test = parse_or();
      ExprPtr expr3;
      if (skip_name("else")) expr3 = parse_condexpr();
      auto e = make_expr(ExprKind::CondExpr, line);
      e->a = std::move(test);
      e->b = std::move(expr1);
      e->c = std::move(expr3);
      expr1 = std::move(e);
    }
    return expr1;
  }

  ExprPtr binary(ExprKind kind, ExprPtr l, ExprPtr r, int line) {
    auto e = make_expr(kind, line);
    e->a = std::move(l);
    e->b = std::move(r);
    return e;
  }

  ExprPtr parse_or() {
    const int line = cur().line;
    ExprPtr left = parse_and();
    ChainGuard chain(*this);
    while (skip_name("or") && (chain.link(), true)) left = binary(ExprKind::Or, std::move(left), parse_and(), line);
    return left;
  }

  ExprPtr parse_and() {
    const int line = cur().line;
    ExprPtr left = parse_not();
    ChainGuard chain(*this);
    while (skip_name("and") && (chain.link(), true)) left = binary(ExprKind::And, std::move(left), parse_not(), line);
    return left;
  }

  ExprPtr parse_not() {
    if (cur().is_name("not")) {
      const int line = cur().line;
      advance();
      NestGuard guard(*this);
      auto e = make_expr(ExprKind::Unary, line);
      e->unary_op = UnaryOp::Not;
      e->a = parse_not();
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = cur().line;
    ExprPtr expr = parse_math1();
    std::vector<std::pair<CmpOp, ExprPtr>> ops;
    while (true) {
      const Token& t = cur();
      std::optional<CmpOp> op;
      if (t.is_op("=="))
        op = CmpOp::Eq;
      else if (t.is_op("!="))
        op = CmpOp::Ne;
      else if (t.is_op("<"))
        op = CmpOp::Lt;
      else if (t.is_op("<="))
        op = CmpOp::Le;
      else if (t.is_op(">"))
        op = CmpOp::Gt;
      else if (t.is_op(">="))
        op = CmpOp::Ge;
      if (op) {
        advance();
      } else if (t.is_name("in")) {
        advance();
        op = CmpOp::In;
      } else if (t.is_name("not") && look().is_name("in")) {
        advance();
        advance();
        op = CmpOp::NotIn;
      } else {
        break;
      }
      ops.emplace_back(*op, parse_math1());
    }
    if (ops.empty()) return expr;
    auto e = make_expr(ExprKind::Compare, line);
    e->a = std::move(expr);
    e->ops = std::move(ops);
    return e;
  }

  ExprPtr arith(BinOp op, ExprPtr l, ExprPtr r, int line) {
    auto e = binary(ExprKind::Binary, std::move(l), std::move(r), line);
    e->bin_op = op;
    return e;
  }

  ExprPtr parse_math1() {
    const int line = cur().line;
    ExprPtr left = parse_concat();
    ChainGuard chain(*this);
    while (cur().is_op("+") || cur().is_op("-")) {
      chain.link();
      const BinOp op = cur().text == "+" ? BinOp::Add : BinOp::Sub;
      advance();
      left = arith(op, std::move(left), parse_concat(), line);
    }
    return left;
  }

  ExprPtr parse_concat() {
    const int line = cur().line;
    std::vector<ExprPtr> parts;
    parts.push_back(parse_math2());
    while (skip_op("~")) parts.push_back(parse_math2());
    if (parts.size() == 1) return std::move(parts[0]);
    auto e = make_expr(ExprKind::Concat, line);
    e->items = std::move(parts);
    return e;
  }

  ExprPtr parse_math2() {
    const int line = cur().line;
    ExprPtr left = parse_pow();
    ChainGuard chain(*this);
    while (true) {
      BinOp op;
      if (cur().is_op("*"))
        op = BinOp::Mul;
      else if (cur().is_op("/"))
        op = BinOp::Div;
      else if (cur().is_op("//"))
        op = BinOp::FloorDiv;
      else if (cur().is_op("%"))
        op = BinOp::Mod;
      else
        break;
      chain.link();
      advance();
      left = arith(op, std::move(left), parse_pow(), line);
    }
    return left;
  }

  ExprPtr parse_pow() {
    const int line = cur().line;
    ExprPtr left = parse_unary(true);
    ChainGuard chain(*this);
    while (skip_op("**") && (chain.link(), true)) left = arith(BinOp::Pow, std::move(left), parse_unary(true), line);
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    NestGuard guard(*this);
    const int line = cur().line;
    ExprPtr node;
    if (cur().is_op("-") || cur().is_op("+")) {
      const UnaryOp op = cur().text == "-" ? UnaryOp::Neg : UnaryOp::Pos;
      advance();
      node = make_expr(ExprKind::Unary, line);
      node->unary_op = op;
      node->a = parse_unary(false);
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    auto e = make_expr(ExprKind::Const, t.line);
    switch (t.type) {
      case Tok::Name:
        if (t.text == "true" || t.text == "True") {
          e->value = Value::boolean(true);
        } else if (t.text == "false" || t.text == "False") {
          e->value = Value::boolean(false);
        } else if (t.text == "none" || t.text == "None") {
          e->value = Value::none();
        } else {
          e->kind = ExprKind::Name;
          e->name = t.text;
        }
        advance();
        return e;
      case Tok::String: {
        // Adjacent string literals concatenate.
        std::string text;
        while (cur().type == Tok::String) {
          text += cur().text;
          advance();
        }
        e->value = Value::str(std::move(text));
        return e;
      }
      case Tok::Integer:
        e->value = Value::integer(t.int_value);
        advance();
        return e;
      case Tok::Float:
        e->value = Value::real(t.float_value);
        advance();
        return e;
      case Tok::Operator:
        if (t.text == "(") {
          advance();
          ExprPtr inner = parse_tuple(true, false, {}, true);
          expect_op(")");
          return inner;
        }
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default:
        break;
    }
    if (t.type == Tok::Eof) fail("unexpected end of template");
    fail(cat("unexpected '", describe(t), "'"));
  }

  ExprPtr parse_list() {
    auto e = make_expr(ExprKind::List, cur().line);
    expect_op("[");
    while (!cur().is_op("]")) {
      if (!e->items.empty()) expect_op(",");
      if (cur().is_op("]")) break;
      e->items.push_back(parse_expression(true));
    }
    expect_op("]");
    return e;
  }

  ExprPtr parse_dict() {
    auto e = make_expr(ExprKind::Dict, cur().line);
    expect_op("{");
    while (!cur().is_op("}")) {
      if (!e->items.empty()) expect_op(",");
      if (cur().is_op("}")) break;
      e->items.push_back(parse_expression(true));
      expect_op(":");
      e->items.push_back(parse_expression(true));
    }
    expect_op("}");
    return e;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    ChainGuard chain(*this);
    while (true) {
      chain.link();
      if (cur().is_op(".") || cur().is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (cur().is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    ChainGuard chain(*this);
    while (true) {
      chain.link();
      if (cur().is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (cur().is_name("is")) {
        node = parse_test(std::move(node));
      } else if (cur().is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token t = cur();
    advance();
    if (t.is_op(".")) {
      const Token attr = cur();
      advance();
      if (attr.type == Tok::Name) {
        auto e = make_expr(ExprKind::Getattr, t.line);
        e->a = std::move(node);
        e->name = attr.text;
        return e;
      }
      if (attr.type != Tok::Integer) fail("expected name or number", attr.line);
      auto e = make_expr(ExprKind::Getitem, t.line);
      e->a = std::move(node);
      e->b = make_expr(ExprKind::Const, attr.line);
      e->b->value = Value::integer(attr.int_value);
      return e;
    }
    std::vector<ExprPtr> args;
    while (!cur().is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    auto e = make_expr(ExprKind::Getitem, t.line);
    e->a = std::move(node);
    if (args.size() == 1) {
      e->b = std::move(args[0]);
    } else {
      e->b = make_expr(ExprKind::Tuple, t.line);
      e->b->items = std::move(args);
    }
    return e;
  }

  ExprPtr parse_subscribed() {
    const int line = cur().line;
    std::vector<ExprPtr> parts;
    if (cur().is_op(":")) {
      advance();
      parts.push_back(nullptr);
    } else {
      ExprPtr node = parse_expression(true);
      if (!cur().is_op(":")) return node;
      advance();
      parts.push_back(std::move(node));
    }
    if (cur().is_op(":")) {
      parts.push_back(nullptr);
    } else if (!cur().is_op("]") && !cur().is_op(",")) {
      parts.push_back(parse_expression(true));
    } else {
      parts.push_back(nullptr);
    }
    if (cur().is_op(":")) {
      advance();
      if (!cur().is_op("]") && !cur().is_op(",")) {
        parts.push_back(parse_expression(true));
      } else {
        parts.push_back(nullptr);
      }
    } else {
      parts.push_back(nullptr);
    }
    auto e = make_expr(ExprKind::Slice, line);
    e->a = std::move(parts[0]);
    e->b = std::move(parts[1]);
    e->c = std::move(parts[2]);
    return e;
  }

  void parse_call_args(ArgExprs& args) {
    const int line = cur().line;
    expect_op("(");
    auto ensure = [&](bool ok) {
      if (!ok) fail("invalid syntax for function call expression", line);
    };
    bool require_comma = false;
    while (!cur().is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (cur().is_op(")")) break;  // trailing comma
      }
      if (cur().is_op("*")) {
        ensure(!args.star && !args.star_star);
        advance();
        args.star = parse_expression(true);
      } else if (cur().is_op("**")) {
        ensure(!args.star_star);
        advance();
        args.star_star = parse_expression(true);
      } else if (cur().type == Tok::Name && look().is_op("=")) {
        ensure(!args.star_star);
        std::string key = cur().text;
        advance();
        advance();
        args.keyword.emplace_back(std::move(key), parse_expression(true));
      } else {
        ensure(!args.star && !args.star_star && args.keyword.empty());
        args.positional.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make_expr(ExprKind::Call, cur().line);
    e->a = std::move(node);
    parse_call_args(e->args);
    return e;
  }

  std::string parse_dotted_name() {
    std::string name = expect_name();
    while (cur().is_op(".")) {
      advance();
      name.append(".").append(expect_name());
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    ChainGuard chain(*this);
    while (cur().is_op("|") || start_inline) {
      chain.link();
      if (!start_inline) advance();
      const int line = cur().line;
      auto e = make_expr(ExprKind::Filter, line);
      e->name = parse_dotted_name();
      e->filter = find_filter(e->name);
      if (cur().is_op("(")) parse_call_args(e->args);
      e->a = std::move(node);
      node = std::move(e);
      start_inline = false;
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    const int line = cur().line;
    advance();  // is
    const bool negated = skip_name("not");
    auto e = make_expr(ExprKind::Test, line);
    e->name = parse_dotted_name();
    e->test = find_test(e->name);
    const Token& t = cur();
    if (t.is_op("(")) {
      parse_call_args(e->args);
    } else if ((t.type == Tok::Name || t.type == Tok::String || t.type == Tok::Integer || t.type == Tok::Float ||
                t.is_op("(") || t.is_op("[") || t.is_op("{")) &&
               !t.is_name("else") && !t.is_name("or") && !t.is_name("and")) {
      if (t.is_name("is")) fail("You cannot chain multiple tests with is");
      ExprPtr arg = parse_postfix(parse_primary());
      e->args.positional.push_back(std::move(arg));
    }
    e->a = std::move(node);
    if (!negated) return e;
    auto n = make_expr(ExprKind::Unary, line);
    n->unary_op = UnaryOp::Not;
    n->a = std::move(e);
    return n;
  }
};

}  // namespace

std::unique_ptr<Template> parse_template(std::string_view source) { return Parser(tokenize(source)).run(); }

}  // namespace strata::jinja
