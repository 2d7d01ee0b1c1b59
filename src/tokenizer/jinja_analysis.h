// Checks over a parsed template: which special names a macro body reads,
// and Jinja's compile-time rejection of unknown filters and tests.
#pragma once

#include <string_view>

#include "tokenizer/jinja_ast.h"

namespace strata::jinja {

// Whether `body` reads the variable `name` anywhere, nested macros included
// (jinja2.compiler.find_undeclared, which decides whether a macro takes
// varargs, kwargs and caller).
bool body_reads_name(const Body& body, std::string_view name);

// Raises TemplateAssertionError for a filter or test Jinja does not know,
// unless its use sits in an if-statement or conditional expression, where
// Jinja defers the error until the call is made.
void check_filters_and_tests(const Body& body);

}  // namespace strata::jinja
