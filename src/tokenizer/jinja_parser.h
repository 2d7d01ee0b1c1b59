// Parses a template into its tree, as jinja2/parser.py does, with the
// statements chat templates use: if/elif/else, for (with else, an `if`
// filter and `recursive`), set (also `ns.attr` and block form), macro, call,
// filter, with, break/continue (jinja2.ext.loopcontrols), generation
// (transformers' AssistantTracker) and raw (in the lexer).
#pragma once

#include <memory>
#include <string_view>

#include "tokenizer/jinja_ast.h"

namespace strata::jinja {

// Throws RenderError with class TemplateSyntaxError, or
// TemplateAssertionError for a filter or test Jinja does not know outside an
// if-statement or conditional expression; the message ends with "(line N)".
std::unique_ptr<Template> parse_template(std::string_view source);

}  // namespace strata::jinja
