// Checks over a parsed template (see jinja_analysis.h).
#include "tokenizer/jinja_analysis.h"

#include "tokenizer/jinja_value.h"

namespace strata::jinja {
namespace {

bool reads_name(const Body& body, std::string_view name);
bool reads_name(const Stmt& s, std::string_view name);
bool reads_name(const Expr* e, std::string_view name);
void check_filters(const Body& body, bool soft);
void check_filters(const Stmt& s, bool soft);
void check_filters(const Expr* e, bool soft);

// Whether a body reads `name` (jinja2's find_undeclared, which looks into
// nested macros too).
bool reads_name(const Body& body, std::string_view name) {
  for (const auto& s : body)
    if (reads_name(*s, name)) return true;
  return false;
}
bool reads_name(const Stmt& s, std::string_view name) {
  if (reads_name(s.expr.get(), name) || reads_name(s.filter.get(), name)) return true;
  for (const auto& [test, body] : s.branches)
    if (reads_name(test.get(), name) || reads_name(body, name)) return true;
  if (reads_name(s.body, name) || reads_name(s.else_body, name)) return true;
  for (const auto& [target, value] : s.assigns)
    if (reads_name(value.get(), name)) return true;
  if (s.macro) {
    for (const auto& d : s.macro->defaults)
      if (reads_name(d.get(), name)) return true;
    if (reads_name(s.macro->body, name)) return true;
  }
  return false;
}
bool reads_name(const Expr* e, std::string_view name) {
  if (!e) return false;
  if (e->kind == ExprKind::Name && e->name == name) return true;
  if (reads_name(e->a.get(), name) || reads_name(e->b.get(), name) || reads_name(e->c.get(), name)) return true;
  for (const auto& i : e->items)
    if (reads_name(i.get(), name)) return true;
  for (const auto& [op, x] : e->ops)
    if (reads_name(x.get(), name)) return true;
  for (const auto& x : e->args.positional)
    if (reads_name(x.get(), name)) return true;
  for (const auto& [k, x] : e->args.keyword)
    if (reads_name(x.get(), name)) return true;
  return reads_name(e->args.star.get(), name) || reads_name(e->args.star_star.get(), name);
}

// Jinja's compiler rejects a filter or test it does not know unless the
// use sits directly in an if-statement or a conditional expression (a
// "soft" frame), where the error waits until the call is made.
void check_filters(const Body& body, bool soft) {
  for (const auto& s : body) check_filters(*s, soft);
}
void check_filters(const Stmt& s, bool soft) {
  switch (s.kind) {
    case StmtKind::If:
      for (const auto& [test, body] : s.branches) {
        check_filters(test.get(), true);
        check_filters(body, true);
      }
      check_filters(s.else_body, true);
      return;
    case StmtKind::For:
      check_filters(s.expr.get(), soft);
      check_filters(s.filter.get(), false);
      check_filters(s.body, false);
      check_filters(s.else_body, false);
      return;
    case StmtKind::Print:
    case StmtKind::Set:
      check_filters(s.expr.get(), soft);
      return;
    case StmtKind::SetBlock:
    case StmtKind::FilterBlock:
      check_filters(s.filter.get(), false);
      check_filters(s.body, false);
      return;
    case StmtKind::Macro:
    case StmtKind::CallBlock:
      check_filters(s.expr.get(), soft);
      for (const auto& d : s.macro->defaults) check_filters(d.get(), false);
      check_filters(s.macro->body, false);
      return;
    case StmtKind::Scope:
      for (const auto& [target, value] : s.assigns) check_filters(value.get(), soft);
      check_filters(s.body, false);
      return;
    default:
      return;
  }
}
void check_filters(const Expr* e, bool soft) {
  if (!e) return;
  if (e->kind == ExprKind::CondExpr) soft = true;
  if (!soft && e->kind == ExprKind::Filter && !e->filter)
    raise("TemplateAssertionError", cat("No filter named '", e->name, "'. (line ", std::to_string(e->line), ")"));
  if (!soft && e->kind == ExprKind::Test && !e->test)
    raise("TemplateAssertionError", cat("No test named '", e->name, "'. (line ", std::to_string(e->line), ")"));
  check_filters(e->a.get(), soft);
  check_filters(e->b.get(), soft);
  check_filters(e->c.get(), soft);
  for (const auto& i : e->items) check_filters(i.get(), soft);
  for (const auto& [op, x] : e->ops) check_filters(x.get(), soft);
  for (const auto& x : e->args.positional) check_filters(x.get(), soft);
  for (const auto& [k, x] : e->args.keyword) check_filters(x.get(), soft);
  check_filters(e->args.star.get(), soft);
  check_filters(e->args.star_star.get(), soft);
}

}  // namespace

bool body_reads_name(const Body& body, std::string_view name) { return reads_name(body, name); }

void check_filters_and_tests(const Body& body) { check_filters(body, false); }

}  // namespace strata::jinja
