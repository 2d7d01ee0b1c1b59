// The Jinja engine behind strata::ChatTemplate: the language as transformers'
// environment runs it (whitespace control, expressions with Python's
// semantics, filters, tests, loops, macros, namespaces, Undefined), the
// sandbox (immutable containers, bounded work, output and recursion), and
// errors with Python's class names and messages.
//
// The table's expected strings are what jinja2 3.1 renders in
// ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with
// transformers' tojson and raise_exception; an expected string starting
// with "!" is the error "<class>: <message>" (syntax errors: without the
// "(line N)" suffix strata adds).
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "strata/chat_template.h"
#include "strata/error.h"
#include "test_support.h"

namespace strata {
namespace {

using ojson = nlohmann::ordered_json;

std::string render(std::string_view source, const std::string& context = "{}", const RenderOptions& options = {}) {
  return ChatTemplate::parse(source).render(ojson::parse(context), options);
}

// The error message() a parse or render raises, or "" when it succeeds.
std::string error_of(std::string_view source, const std::string& context = "{}", const RenderOptions& options = {}) {
  try {
    render(source, context, options);
  } catch (const Error& e) {
    return e.message();
  }
  return "";
}

std::string strip_line_suffix(std::string message) {
  const size_t at = message.rfind(" (line ");
  if (at != std::string::npos && message.back() == ')') message.erase(at);
  return message;
}

struct Case {
  const char* group;
  const char* source;
  const char* context;
  const char* expected;
};

const Case kCases[] = {
    {"whitespace", "{% if true %}\nyes\n{% endif %}\nend", "{}", "yes\nend"},
    {"whitespace", "  {% if true %}\n  yes\n  {% endif %}\n", "{}", "  yes\n"},
    {"whitespace", "a  {%- if true -%}  b  {%- endif -%}  c", "{}", "abc"},
    {"whitespace", "a\n  {{- 'b' -}}\n  c", "{}", "abc"},
    {"whitespace", "a\n  {{ 'b' }}  \nc", "{}", "a\n  b  \nc"},
    {"whitespace", "x {%+ if true %}y{% endif +%}\nz", "{}", "x y\nz"},
    {"whitespace", "  {# comment #}\nline\n  {#- c -#}  tail", "{}", "linetail"},
    {"whitespace", "one\r\ntwo\rthree\n", "{}", "one\ntwo\nthree"},
    {"whitespace", "keeps one of two\n\n", "{}", "keeps one of two\n"},
    {"whitespace", "{% raw %}{{ not }}{% if %}{% endraw %}", "{}", "{{ not }}{% if %}"},
    {"whitespace", "{% for x in [1, 2] %}\n  {{ x }}\n{% endfor %}\n", "{}", "  1\n  2\n"},
    {"whitespace", "{%- for x in [1, 2] -%}\n  {{ x }}\n{%- endfor %}", "{}", "12"},
    {"print", "{{ [1, 'a', none, true, 2.5] }}|{{ {'k': 'v', 'n': none} }}|{{ (1,) }}|{{ none }}|{{ false }}", "{}", "[1, 'a', None, True, 2.5]|{'k': 'v', 'n': None}|(1,)|None|False"},
    {"print", "{{ 1e16 }}|{{ 1e15 }}|{{ 0.1 + 0.2 }}|{{ 1e-05 }}|{{ 0.0001 }}|{{ 3.0 }}|{{ -0.0 }}|{{ 22 / 1 }}", "{}", "1e+16|1000000000000000.0|0.30000000000000004|1e-05|0.0001|3.0|-0.0|22.0"},
    {"print", "{{ [s] }}", "{\"s\": \"it's \\\"q\\\" \\\\ \\n‍é\"}", "['it\\'s \"q\" \\\\ \\n\\u200dé']"},
    {"print", "{{ 'a' ~ 1 ~ none ~ undefined_name ~ [2] }}", "{}", "a1None[2]"},
    {"arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 1 / 4 }} {{ 7.5 // 2 }} {{ 10 - 2.5 }} {{ 'ab' * 2 }} {{ [0] * 3 }} {{ true + true }}", "{}", "3 -4 2 -2 1024 0.25 3.0 7.5 abab [0, 0, 0] 2"},
    {"arith", "{{ 1 / 0 }}", "{}", "!ZeroDivisionError: division by zero"},
    {"arith", "{{ 1 // 0 }}", "{}", "!ZeroDivisionError: integer division or modulo by zero"},
    {"arith", "{{ 'a' + 1 }}", "{}", "!TypeError: can only concatenate str (not \"int\") to str"},
    {"arith", "{{ 1 + 'a' }}", "{}", "!TypeError: unsupported operand type(s) for +: 'int' and 'str'"},
    {"arith", "{{ [1] + 'a' }}", "{}", "!TypeError: can only concatenate list (not \"str\") to list"},
    {"arith", "{{ -'a' }}", "{}", "!TypeError: bad operand type for unary -: 'str'"},
    {"compare", "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ [1, 2] < [1, 3] }} {{ 'a' < 'b' }} {{ none == none }} {{ 'a' != 'b' }}", "{}", "True False True True True True True True"},
    {"compare", "{{ 1 < 'a' }}", "{}", "!TypeError: '<' not supported between instances of 'int' and 'str'"},
    {"compare", "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'z' not in d }} {{ 1 in undefined_name }}", "{\"d\": {\"k\": 1}}", "True True True True False"},
    {"compare", "{{ 1 in 'abc' }}", "{}", "!TypeError: 'in <string>' requires string as left operand, not int"},
    {"compare", "{{ 'x' in none }}", "{}", "!TypeError: argument of type 'NoneType' is not iterable"},
    {"logic", "{{ 0 or 'b' }} {{ 'a' and 'b' }} {{ none or [] }} {{ not '' }} {{ 'y' if 0 else 'n' }} [{{ 'y' if 0 }}]", "{}", "b b [] True n []"},
    {"str", "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxaxx'.strip('x') }}|{{ s|trim }}|{{ 'xyx'|trim('x') }}", "{\"s\": \" \\t a b \\n\"}", "a b|a b \n| \t a b|a|a b|y"},
    {"str", "{{ ' a  b '.split() }} {{ ' a  b '.split(none, 1) }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }}", "{}", "['a', 'b'] ['a', 'b '] ['a', 'b', '', 'c'] ['a', 'b,c'] ['a,b', 'c']"},
    {"str", "{{ 'abc'.startswith('a') }} {{ 'abc'.startswith(('x', 'ab')) }} {{ 'abc'.endswith('c') }} {{ 'abc'.endswith('b', 0, 2) }}", "{}", "True True True True"},
    {"str", "{{ 'aaa'.replace('a', 'b') }} {{ 'aaa'.replace('a', 'b', 2) }} {{ 'ab'.replace('', '-') }} {{ 'héllo'.find('l') }} {{ 'abc'.find('z') }} {{ 'héllo'.rfind('l') }}", "{}", "bbb bba -a-b- 2 -1 3"},
    {"str", "{{ 'hello World'.upper() }} {{ 'Hello'.lower() }} {{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }} {{ 'straße'|upper }} {{ 'hello-world (x)'|title }}", "{}", "HELLO WORLD hello Hello World Hello STRASSE Hello-World (X)"},
    {"str", "{{ s|length }} {{ s[1] }} {{ s[1:3] }} {{ s[::-1] }} {{ s[-2:] }} {{ s[::2] }} [{{ s[10] }}]", "{\"s\": \"héllo\"}", "5 é él olléh lo hlo []"},
    {"str", "{{ 'a-b'.split('-')|join('+') }} {{ ', '.join(['x', 'y']) }} {{ '{} and {name}'.format(1, name='n') }} {{ '%s=%d' % ('k', 3) }} {{ '%05.1f'|format(3.14159) }}", "{}", "a+b x, y 1 and n k=3 003.1"},
    {"str", "{{ 'a\\nb\\r\\nc'.splitlines() }} {{ 'line'.center(8, '*') }} {{ 'x=y'.partition('=') }} {{ 'ab'.zfill(4) }}", "{}", "['a', 'b', 'c'] **line** ('x', '=', 'y') 00ab"},
    {"seq", "{{ l[::-1] }} {{ l[1:] }} {{ l[-1] }} [{{ l[9] }}] {{ l|first }} {{ l|last }} {{ l|length }} {{ l|sum }} {{ l|min }} {{ l|max }}", "{\"l\": [3, 1, 2]}", "[2, 1, 3] [1, 2] 2 [] 3 2 3 6 1 3"},
    {"seq", "{{ d.items()|list }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.get('b') }} {{ d.get('z') }} {{ d.get('z', 0) }} {{ d|length }}", "{\"d\": {\"b\": 1, \"a\": 2}}", "[('b', 1), ('a', 2)] ['b', 'a'] [1, 2] 1 None 0 2"},
    {"seq", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {% for k, v in d|dictsort %}{{ k }}={{ v }};{% endfor %} {% for k, v in d|items %}{{ k }};{% endfor %}", "{\"d\": {\"b\": 1, \"a\": 2}}", "b=1;a=2; a=2;b=1; b;a;"},
    {"seq", "{{ d.b }} {{ d['b'] }} {{ d.items is callable }} {{ d['items'] is callable }} {{ d.get('items') }}", "{\"d\": {\"b\": 1, \"items\": 5}}", "1 1 True False 5"},
    {"tojson", "{{ v|tojson }}", "{\"v\": {\"b\": [1, 2.0, null, true], \"a\": \"é\\\"\\n\\u0001\", \"c\": {}}}", "{\"b\": [1, 2.0, null, true], \"a\": \"é\\\"\\n\\u0001\", \"c\": {}}"},
    {"tojson", "{{ v|tojson(indent=2) }}", "{\"v\": {\"b\": [1, {\"x\": []}], \"a\": \"s\"}}", "{\n  \"b\": [\n    1,\n    {\n      \"x\": []\n    }\n  ],\n  \"a\": \"s\"\n}"},
    {"tojson", "{{ v|tojson(ensure_ascii=true) }}|{{ v|tojson(sort_keys=true) }}|{{ v|tojson(separators=(',', ':')) }}", "{\"v\": {\"z\": \"é😀\", \"a\": 1}}", "{\"z\": \"\\u00e9\\ud83d\\ude00\", \"a\": 1}|{\"a\": 1, \"z\": \"é😀\"}|{\"z\":\"é😀\",\"a\":1}"},
    {"tojson", "{{ [1.0, 2.5, 1e20, 1e-7, 100000000000000000.0]|tojson }}", "{}", "[1.0, 2.5, 1e+20, 1e-07, 1e+17]"},
    {"tojson", "{{ l|map(attribute='a')|tojson }}", "{\"l\": [{\"a\": 1}]}", "!TypeError: Object of type generator is not JSON serializable"},
    {"tojson", "{{ undefined_name|tojson }}", "{}", "!TypeError: Object of type Undefined is not JSON serializable"},
    {"tojson", "{{ d.items()|tojson }}", "{\"d\": {\"a\": 1}}", "!TypeError: Object of type dict_items is not JSON serializable"},
    {"filters", "{{ x|default('d') }} {{ n|default('d') }} {{ n|default('d', true) }} {{ ''|default('e', boolean=true) }} {{ 0|d(5) }}", "{\"n\": null}", "d None d e 0"},
    {"filters", "{{ l|join(', ') }}|{{ [1, none]|join }}|{{ m|join('/', attribute='role') }}|{{ m|map(attribute='role')|list }}|{{ m|map(attribute='x', default='-')|list }}", "{\"l\": [\"a\", \"b\"], \"m\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \" Hi \"}, {\"role\": \"assistant\", \"content\": \"Hello\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"b\": 2, \"a\": \"é\"}}}]}]}", "a, b|1None|system/user/assistant|['system', 'user', 'assistant']|['-', '-', '-']"},
    {"filters", "{{ m|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }} {{ m|rejectattr('role', 'in', ['user', 'system'])|list|length }} {{ m|selectattr('tool_calls', 'defined')|list|length }} {{ [0, 1, '', 'a']|select|list }} {{ [1, 2, 3, 4]|reject('odd')|list }}", "{\"m\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \" Hi \"}, {\"role\": \"assistant\", \"content\": \"Hello\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"b\": 2, \"a\": \"é\"}}}]}]}", "[' Hi '] 1 1 [1, 'a'] [2, 4]"},
    {"filters", "{{ [3, 1, 2]|sort }} {{ ['b', 'A', 'c']|sort }} {{ ['b', 'A']|sort(case_sensitive=true) }} {{ [3, 1]|sort(reverse=true) }} {{ m|sort(attribute='role')|map(attribute='role')|join(',') }} {{ ['a', 'A', 'b', 'a']|unique|list }}", "{\"m\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \" Hi \"}, {\"role\": \"assistant\", \"content\": \"Hello\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"b\": 2, \"a\": \"é\"}}}]}]}", "[1, 2, 3] ['A', 'b', 'c'] ['A', 'b'] [3, 1] assistant,system,user ['a', 'b']"},
    {"filters", "{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '0x1f'|int(0, 16) }} {{ '2.5'|float }} {{ 'x'|float }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 7|round }} {{ 2.1|round(method='ceil') }} {{ -3|abs }}", "{}", "42 4 0 7 3 31 2.5 0.0 2.0 4.0 2.67 7 3.0 3"},
    {"filters", "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(1, blank=true) }}", "{}", "a\n    b\n\n    c|  a\n  b|a\n \n b"},
    {"filters", "{{ 'abc'|replace('b', 'x') }} {{ 'ab'|upper }} {{ 'AB'|lower }} {{ 'ab cd'|capitalize }} {{ 5|string }} {{ [1]|string }} {{ 'a b'|wordcount }} {{ 'abcdefghijkl'|truncate(9, leeway=0) }} {{ [1, 2, 3]|batch(2)|list }} {{ 'abc'|reverse }} {{ [1, 2]|reverse|list }}", "{}", "axc AB ab Ab cd 5 [1] 2 abcdef... [[1, 2], [3]] cba [2, 1]"},
    {"filters", "{{ l|map('string')|length }}", "{\"l\": [1]}", "!TypeError: object of type 'generator' has no len()"},
    {"filters", "{{ 5|items|list }}", "{}", "!TypeError: Can only get item pairs from a mapping."},
    {"markup", "{{ '<a>'|safe + '<b>' }}|{{ '<a>'|safe ~ '<b>' }}|{{ '\\'x\\''|e }}|{{ '<'|safe is escaped }}", "{}", "<a>&lt;b&gt;|<a><b>|&#39;x&#39;|True"},
    {"tests", "{{ x is defined }} {{ x is undefined }} {{ n is none }} {{ n is defined }} {{ 'a' is string }} {{ 1 is number }} {{ true is number }} {{ 1 is integer }} {{ true is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ 1 is true }} {{ false is false }}", "{\"n\": null}", "False True True True True True True True False True True False True"},
    {"tests", "{{ d is mapping }} {{ l is mapping }} {{ l is sequence }} {{ d is sequence }} {{ 'a' is sequence }} {{ l is iterable }} {{ n is iterable }} {{ x is iterable }} {{ x is sequence }} {{ l is callable }} {{ range is callable }}", "{\"d\": {}, \"l\": [], \"n\": null}", "True False True True True True False True True False True"},
    {"tests", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 2 is in [1, 2] }} {{ 'A' is upper }} {{ 'a' is lower }} {{ 2 is gt 1 }} {{ 'tojson' is filter }} {{ 'odd' is test }}", "{}", "True True True False True False True True True True True True"},
    {"loop", "{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", "{\"l\": [\"a\", \"b\"]}", "1021TrueFalse2;2110FalseTrue2;"},
    {"loop", "{% for x in l %}[{{ loop.previtem }}|{{ loop.nextitem }}]{% endfor %}", "{\"l\": [\"a\", \"b\", \"c\"]}", "[|b][a|c][b|]"},
    {"loop", "{% for x in l %}{{ loop.cycle('o', 'e') }}{% endfor %} {% for x in [1, 1, 2] %}{{ loop.changed(x) }}{% endfor %}", "{\"l\": [1, 2, 3]}", "oeo TrueFalseTrue"},
    {"loop", "{% for x in l if x > 1 %}{{ x }}/{{ loop.length }} {% else %}none{% endfor %}|{% for x in [] %}{% else %}empty{% endfor %}", "{\"l\": [1, 2, 3]}", "2/2 3/2 |empty"},
    {"loop", "{% for x in l %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", "{\"l\": [1, 2, 3, 4, 5]}", "13"},
    {"loop", "{% for x in [1] %}{% break %}{% else %}else runs{% endfor %}", "{}", "else runs"},
    {"loop", "{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}|{{ x }}", "{}", "0102|0"},
    {"loop", "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }} {% endfor %}{% for c in 'ab' %}{{ c }}{% endfor %}{% for k in {'p': 1, 'q': 2} %}{{ k }}{% endfor %}", "{}", "3 7 abpq"},
    {"loop", "{% for x in n %}{% endfor %}", "{\"n\": null}", "!TypeError: 'NoneType' object is not iterable"},
    {"loop", "{% for x in 5 %}{% endfor %}", "{}", "!TypeError: 'int' object is not iterable"},
    {"loop", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", "{}", "!ValueError: too many values to unpack (expected 2)"},
    {"loop", "{% for x in [1, [2, [3]]] recursive %}{% if x is iterable %}({{ loop(x) }}){% else %}{{ x }}@{{ loop.depth }}{% endif %}{% endfor %}", "{}", "1@1(2@2(3@3))"},
    {"loop", "{% for i in range(3) %}{{ i }}{% endfor %} {{ range(1, 10, 4)|list }} {{ range(3, 0, -1)|list }}", "{}", "012 [1, 5, 9] [3, 2, 1]"},
    {"ns", "{% set ns = namespace(n=0, s='') %}{% for x in [1, 2, 3] %}{% set ns.n = ns.n + x %}{% set ns.s = ns.s ~ x %}{% endfor %}{{ ns.n }} {{ ns.s }} {{ ns.missing }}", "{}", "6 123 "},
    {"ns", "{% set x = 1 %}{% set x.y = 2 %}", "{}", "!TemplateRuntimeError: cannot assign attribute on non-namespace object"},
    {"ns", "{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set t %} block {{ a }} {% endset %}[{{ t }}] {% set u | upper %}up{% endset %}{{ u }}", "{}", "12 [ block 1 ] UP"},
    {"ns", "{% if true %}{% set leak = 1 %}{% endif %}{{ leak }}|{% for i in [1] %}{% set inner = 1 %}{% endfor %}{{ inner }}|{% with w = 5 %}{{ w }}{% endwith %}{{ w }}", "{}", "1||5"},
    {"macro", "{% macro m(a, b=a + 1, c='c') %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 5) }} {{ m(b=2, a=3) }} {{ m(1, c='z') }}", "{}", "12c 15c 32c 12z"},
    {"macro", "{% macro m(a, b=a + 1) %}{{ b }}{% endmacro %}{{ m() }}", "{}", "!UndefinedError: parameter 'a' was not provided"},
    {"macro", "{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m() }}", "{}", "[]"},
    {"macro", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}", "{}", "1(2,){'k': 3}"},
    {"macro", "{% macro m() %}<{{ caller() }}>{% endmacro %}{% call m() %}body{% endcall %} {% macro n() %}{{ caller(7) }}{% endmacro %}{% call(v) n() %}got {{ v }}{% endcall %}", "{}", "<body> got 7"},
    {"macro", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", "{}", "!TypeError: macro 'm' takes not more than 1 argument(s)"},
    {"macro", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, z=2) }}", "{}", "!TypeError: macro 'm' takes no keyword argument 'z'"},
    {"macro", "{% set g = 'global' %}{% macro m() %}{{ g }}{% endmacro %}{% set g = 'late' %}{{ m() }}{% for i in [1] %}{% set g = 'loop' %}{{ m() }}{% endfor %}", "{}", "latelate"},
    {"macro", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}", "{}", "120"},
    {"macro", "{% filter upper %}shout {{ 'x' }}{% endfilter %}|{% filter trim %}   pad   {% endfilter %}|", "{}", "SHOUT X|pad|"},
    {"undefined", "[{{ x }}] {{ x is defined }} {{ x|length }} {{ x|list }} {{ not x }} {{ x == x }} [{{ x ~ 'y' }}] {{ x|default('d') }} [{{ x|trim }}] [{{ x|string }}]", "{}", "[] False 0 [] True True [y] d [] []"},
    {"undefined", "{{ x.y }}", "{}", "!UndefinedError: 'x' is undefined"},
    {"undefined", "{{ d.missing.y }}", "{\"d\": {}}", "!UndefinedError: 'dict object' has no attribute 'missing'"},
    {"undefined", "{{ l[5].y }}", "{\"l\": []}", "!UndefinedError: list object has no element 5"},
    {"undefined", "{{ n.y.z }}", "{\"n\": null}", "!UndefinedError: 'None' has no attribute 'y'"},
    {"undefined", "{{ x + 1 }}", "{}", "!UndefinedError: 'x' is undefined"},
    {"undefined", "{{ x() }}", "{}", "!UndefinedError: 'x' is undefined"},
    {"undefined", "{{ x[0] }}", "{}", "!UndefinedError: 'x' is undefined"},
    {"undefined", "{% for i in [1] %}{{ loop.previtem.x }}{% endfor %}", "{}", "!UndefinedError: there is no previous item"},
    {"sandbox", "{% set l = [] %}{% set _ = l.append(1) %}", "{}", "!SecurityError: access to attribute 'append' of 'list' object is unsafe."},
    {"sandbox", "{{ d.pop('a') }}", "{\"d\": {\"a\": 1}}", "!SecurityError: access to attribute 'pop' of 'dict' object is unsafe."},
    {"sandbox", "{{ d.update({}) }}", "{\"d\": {\"a\": 1}}", "!SecurityError: access to attribute 'update' of 'dict' object is unsafe."},
    {"sandbox", "{{ d.__class__ }}|", "{\"d\": {}}", "|"},
    {"sandbox", "{{ d.__class__() }}", "{\"d\": {}}", "!SecurityError: access to attribute '__class__' of 'dict' object is unsafe."},
    {"sandbox", "{{ range(100001)|length }}", "{}", "!OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000)."},
    {"sandbox", "{{ raise_exception('custom message ' ~ 42) }}", "{}", "!TemplateError: custom message 42"},
    {"syntax", "{% if x %}open", "{}", "!TemplateSyntaxError: Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'."},
    {"syntax", "{% for x in y %}{% endif %}", "{}", "!TemplateSyntaxError: Encountered unknown tag 'endif'. Jinja was looking for the following tags: 'endfor' or 'else'. The innermost block that needs to be closed is 'for'."},
    {"syntax", "line1\n{{ a + }}", "{}", "!TemplateSyntaxError: unexpected 'end of print statement'"},
    {"syntax", "{% frobnicate %}", "{}", "!TemplateSyntaxError: Encountered unknown tag 'frobnicate'."},
    {"syntax", "{{ 'unclosed }}", "{}", "!TemplateSyntaxError: unexpected char \"'\" at 3"},
    {"syntax", "{# unclosed comment", "{}", "!TemplateSyntaxError: Missing end of comment tag"},
    {"syntax", "{{ x|nosuchfilter }}", "{}", "!TemplateAssertionError: No filter named 'nosuchfilter'."},
    {"syntax", "{{ x is nosuchtest }}", "{}", "!TemplateAssertionError: No test named 'nosuchtest'."},
    {"syntax", "{% if false %}{{ x|nosuchfilter }}{% endif %}ok", "{}", "ok"},
    {"syntax", "{% if true %}{{ x|nosuchfilter }}{% endif %}ok", "{}", "!TemplateRuntimeError: No filter named 'nosuchfilter' found."},
    {"syntax", "{{ a b }}", "{}", "!TemplateSyntaxError: expected token 'end of print statement', got 'b'"},
    {"syntax", "{% set 1 = 2 %}", "{}", "!TemplateSyntaxError: can't assign to 'const'"},
    {"syntax", "{% macro m(a=1, b) %}{% endmacro %}", "{}", "!TemplateSyntaxError: non-default argument follows default argument"},
    {"syntax", "{{ (1, 2] }}", "{}", "!TemplateSyntaxError: unexpected ']', expected ')'"},
};

TEST(Jinja, MatchesJinja2OnTheLanguageTable) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(c.group) + ": " + c.source);
    const std::string want = c.expected;
    if (want.starts_with("!")) {
      EXPECT_EQ(strip_line_suffix(error_of(c.source, c.context)), want.substr(1));
    } else {
      std::string got;
      try {
        got = render(c.source, c.context);
      } catch (const Error& e) {
        got = std::string("unexpected error: ") + e.what();
      }
      EXPECT_EQ(got, want);
    }
  }
}

TEST(Jinja, SyntaxErrorsNameTheLine) {
  EXPECT_EQ(error_of("line1\n{{ a + }}"), "TemplateSyntaxError: unexpected 'end of print statement' (line 2)");
  EXPECT_EQ(error_of("{% for x in y %}\n\n{% endif %}"),
            "TemplateSyntaxError: Encountered unknown tag 'endif'. Jinja was looking for the following tags: 'endfor' "
            "or 'else'. The innermost block that needs to be closed is 'for'. (line 3)");
  EXPECT_EQ(error_of("a\n{% if x %}\nb"),
            "TemplateSyntaxError: Unexpected end of template. Jinja was looking for the following tags: 'elif' or "
            "'else' or 'endif'. The innermost block that needs to be closed is 'if'. (line 3)");
  EXPECT_EQ(error_of("\n\n{{ x|nosuchfilter }}"), "TemplateAssertionError: No filter named 'nosuchfilter'. (line 3)");
  EXPECT_EQ(error_of("{% break %}"), "TemplateSyntaxError: 'break' outside loop (line 1)");
  EXPECT_EQ(error_of("bad \xff byte"), "TemplateSyntaxError: the template is not valid UTF-8 (line 1)");
  EXPECT_EQ(error_of("{{ '\\x4' }}"), "TemplateSyntaxError: truncated \\xXX escape (line 1)");
}

TEST(Jinja, RuntimeErrorsNameTheTemplateLine) {
  try {
    render("a\n{{ 1 }}\n{{ x.y }}");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "UndefinedError: 'x' is undefined");
    EXPECT_EQ(e.hint(), "template line 3");
    EXPECT_EQ(std::string(e.what()), "UndefinedError: 'x' is undefined (template line 3)");
  }
  // raise_exception's text may hold newlines; what() stays on one line.
  try {
    render("{{ raise_exception('two\\nlines') }}");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "TemplateError: two\nlines");
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

TEST(Jinja, KeepTrailingNewlineIsOff) {
  EXPECT_EQ(render("x\n"), "x");
  EXPECT_EQ(render("x\n\n"), "x\n");
  EXPECT_EQ(render("x\r\n"), "x");
  EXPECT_EQ(render("{{ 'a' }}\n"), "a");
  EXPECT_EQ(render(""), "");
  EXPECT_EQ(render("\n"), "");
}

TEST(Jinja, StringLiteralsUsePythonEscapes) {
  EXPECT_EQ(render("{{ 'a\\tb\\n\\\\\\'\\\"\\x41\\u00e9\\U0001F600\\101\\q' }}"), "a\tb\n\\'\"Aé😀A\\q");
  EXPECT_EQ(render("{{ 'adjacent' \"strings\" }}"), "adjacentstrings");
  EXPECT_EQ(render("{{ 0x1f }} {{ 0b101 }} {{ 0o17 }} {{ 1_000 }} {{ 1.5e3 }} {{ 2E-3 }}"), "31 5 15 1000 1500.0 0.002");
  EXPECT_EQ(render("{{ \"{{ not a tag }}\" }}"), "{{ not a tag }}");
}

TEST(Jinja, StrftimeNowReadsTheGivenClock) {
  RenderOptions options;
  options.now = test::chat_template_golden_time;
  EXPECT_EQ(render("{{ strftime_now('%Y-%m-%d %H:%M') }}|{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%B %A') }}",
                   "{}", options),
            "2026-07-26 09:15|26 Jul 2026|July Sunday");
  // Without a pinned clock it reads the local time.
  EXPECT_EQ(render("{{ strftime_now('%Y')|length }}"), "4");
}

TEST(Jinja, ApplyPassesTransformersVariables) {
  const ChatTemplate t = ChatTemplate::parse(
      "{{ messages|length }}|{{ tools }}|{{ documents }}|{{ add_generation_prompt }}|{{ bos_token }}|{{ enable_thinking "
      "}}");
  EXPECT_EQ(t.apply(ojson::parse(R"([{"role": "user", "content": "hi"}])"), nullptr, true,
                    ojson::parse(R"({"bos_token": "<s>", "enable_thinking": false, "messages": "ignored"})")),
            "1|None|None|True|<s>|False");
}

TEST(Jinja, ContextObjectsKeepTheirKeyOrder) {
  EXPECT_EQ(render("{{ d|tojson }} {% for k in d %}{{ k }}{% endfor %}", R"({"d": {"z": 1, "a": 2, "m": 3}})"),
            "{\"z\": 1, \"a\": 2, \"m\": 3} zam");
}

TEST(Jinja, UndefinedFromAMissingKeyBehavesAsJinjaSays) {
  const std::string ctx = R"({"m": {"role": "user"}})";
  EXPECT_EQ(render("[{{ m.content }}]{{ m.content is defined }}{{ m.content is none }}{{ m.content|length }}", ctx),
            "[]FalseFalse0");
  EXPECT_EQ(error_of("{{ m.content + 'x' }}", ctx), "UndefinedError: 'dict object' has no attribute 'content'");
  EXPECT_EQ(error_of("{{ m.content.strip() }}", ctx), "UndefinedError: 'dict object' has no attribute 'content'");
}

TEST(Jinja, SandboxBoundsWork) {
  RenderOptions options;
  options.limits.max_work = 10000;
  EXPECT_EQ(error_of("{% for i in range(100) %}{% for j in range(100) %}{% for k in range(100) %}{% endfor %}"
                     "{% endfor %}{% endfor %}",
                     "{}", options),
            "SecurityError: the template exceeded its work limit of 10000 steps (loop iterations, calls and items "
            "processed)");
  // The default budget ends a runaway template in about a second.
  EXPECT_TRUE(error_of("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
                  .starts_with("SecurityError: the template exceeded its work limit"));
}

TEST(Jinja, SandboxBoundsOutputAndStrings) {
  RenderOptions options;
  options.limits.max_output_bytes = 1 << 20;
  EXPECT_EQ(error_of("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}", "{}", options),
            "SecurityError: the rendered output exceeds the limit of 1048576 bytes");
  EXPECT_EQ(error_of("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}"
                     "{% endfor %}",
                     "{}", options),
            "SecurityError: the template built a string longer than the limit of 1048576 bytes");
  EXPECT_EQ(error_of("{{ 'x' * 9000000000000000000 }}", "{}", options),
            "SecurityError: the template built a string longer than the limit of 1048576 bytes");
  EXPECT_EQ(error_of("{{ ([1] * 100000) * 100000 }}"), "SecurityError: a list repetition would build more than "
                                                       "16777216 items");
  EXPECT_EQ(error_of("{{ 9223372036854775807 + 1 }}"), "OverflowError: integer result does not fit in 64 bits");
}

TEST(Jinja, SandboxBoundsRecursion) {
  EXPECT_EQ(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
            "RecursionError: maximum recursion depth exceeded");
  EXPECT_EQ(error_of("{% for x in [[[]]] recursive %}{{ loop([x]) }}{% endfor %}"),
            "RecursionError: maximum recursion depth exceeded");
  // The worst case for the stack: deep expressions inside deep recursion.
  const std::string deep = std::string(90, '[') + "f(n + 1)" + std::string(90, ']');
  EXPECT_EQ(error_of("{% macro f(n) %}{{ " + deep + " }}{% endmacro %}{{ f(0) }}"),
            "RecursionError: maximum recursion depth exceeded");
  // Values nested deeper than Python's json or repr would go.
  EXPECT_EQ(error_of("{% set ns = namespace(x=[]) %}{% for i in range(2000) %}{% set ns.x = [ns.x] %}{% endfor %}"),
            "RecursionError: maximum nesting depth of values exceeded");
  const std::string deep_json = std::string(1000, '[') + std::string(1000, ']');
  EXPECT_EQ(error_of("{{ x }}", R"({"x": )" + deep_json + "}"), "RecursionError: the JSON input nests deeper than 500");
  // A namespace that holds itself is freed at the end of the render (the
  // sanitizer build checks for leaks).
  EXPECT_EQ(error_of("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"),
            "RecursionError: maximum recursion depth exceeded while getting the repr of an object");
  EXPECT_EQ(render("{% macro m() %}x{% endmacro %}{% set ns = namespace(f=m) %}{% set ns.g = ns %}{{ ns.g.f() }}"), "x");
}

TEST(Jinja, DeeplyNestedSourceIsASyntaxErrorNotACrash) {
  const std::string parens = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_EQ(strip_line_suffix(error_of(parens)), "TemplateSyntaxError: the template nests too deeply");
  std::string ifs;
  for (int i = 0; i < 2000; ++i) ifs += "{% if true %}";
  for (int i = 0; i < 2000; ++i) ifs += "{% endif %}";
  EXPECT_EQ(strip_line_suffix(error_of(ifs)), "TemplateSyntaxError: the template nests too deeply");
  std::string chain = "{{ x";
  for (int i = 0; i < 100000; ++i) chain += ".a";
  EXPECT_EQ(strip_line_suffix(error_of(chain + " }}")), "TemplateSyntaxError: the template nests too deeply");
  std::string sum = "{{ 1";
  for (int i = 0; i < 100000; ++i) sum += " + 1";
  EXPECT_EQ(strip_line_suffix(error_of(sum + " }}")), "TemplateSyntaxError: the template nests too deeply");
  std::string nots = "{{ ";
  for (int i = 0; i < 100000; ++i) nots += "not ";
  EXPECT_EQ(strip_line_suffix(error_of(nots + "1 }}")), "TemplateSyntaxError: the template nests too deeply");
  // Real templates nest far less than the limit.
  std::string fine = "{{ 1";
  for (int i = 0; i < 100; ++i) fine += " + 1";
  EXPECT_EQ(render(fine + " }}"), "101");
}

TEST(Jinja, GarbageNeverCrashes) {
  // Truncations of a real template: each parses, or fails with one error.
  const std::string source =
      "{%- set ns = namespace(x=0) -%}{% for m in messages if m.role != 'x' %}{{ m.content|trim ~ '\\n' }}"
      "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}{% endfor %}{# c #}{{ ns.x }}";
  for (size_t n = 0; n <= source.size(); ++n) {
    try {
      ChatTemplate::parse(source.substr(0, n)).apply(ojson::parse(R"([{"role":"user","content":" hi "}])"), nullptr,
                                                     true);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("Error"), std::string::npos) << e.what();
    }
  }
}

TEST(Jinja, RendersFromManyThreadsAtOnce) {
  const ChatTemplate t = ChatTemplate::parse(
      "{% set ns = namespace(n=0) %}{% macro show(m) %}{{ m.role }}:{{ m.content }}{% endmacro %}"
      "{% for m in messages %}{% set ns.n = ns.n + 1 %}{{ show(m) }};{% endfor %}{{ ns.n }}");
  const ojson messages = ojson::parse(R"([{"role":"user","content":"a"},{"role":"assistant","content":"b"}])");
  const std::string want = "user:a;assistant:b;2";
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      for (int k = 0; k < 200; ++k)
        if (t.apply(messages, nullptr, false) != want) ++wrong;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(ChatTemplateSelection, PicksLikeGetChatTemplate) {
  EXPECT_EQ(select_chat_template(ojson("plain"), true), "plain");
  const ojson named = ojson::parse(R"([{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"},
                                       {"name": "rag", "template": "R"}])");
  EXPECT_EQ(select_chat_template(named, false), "D");
  EXPECT_EQ(select_chat_template(named, true), "T");
  EXPECT_EQ(select_chat_template(named, false, "rag"), "R");
  EXPECT_THROW(select_chat_template(named, false, "nope"), Error);
  const ojson no_default = ojson::parse(R"([{"name": "tool_use", "template": "T"}])");
  EXPECT_EQ(select_chat_template(no_default, true), "T");
  try {
    select_chat_template(no_default, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("none is named 'default'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(select_chat_template(ojson(), false), Error);
}

TEST(ChatTemplateSelection, SpecialTokensAreStrings) {
  const ojson config = ojson::parse(R"({"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
      "eos_token": "</s>", "pad_token": null, "unk_token": "<unk>", "additional_special_tokens": ["<a>", {"content": "<b>"}],
      "model_max_length": 10})");
  EXPECT_EQ(chat_template_special_tokens(config).dump(),
            R"({"bos_token":"<s>","eos_token":"</s>","unk_token":"<unk>","additional_special_tokens":["<a>","<b>"]})");
}

TEST(ChatTemplateSelection, ModelFolder) {
  test::TempDir dir;
  {
    std::ofstream(dir.path() / "tokenizer_config.json") << R"({"bos_token": "<s>", "chat_template": [
        {"name": "default", "template": "default {{ bos_token }}"}, {"name": "tool_use", "template": "tools"}]})";
  }
  ModelChatTemplate t = load_chat_template(dir.path(), false);
  EXPECT_EQ(t.source, "default {{ bos_token }}");
  EXPECT_EQ(t.special_tokens.dump(), R"({"bos_token":"<s>"})");
  EXPECT_EQ(load_chat_template(dir.path(), true).source, "tools");
  // chat_template.jinja overrides the config, as transformers loads it.
  { std::ofstream(dir.path() / "chat_template.jinja") << "from file"; }
  EXPECT_EQ(load_chat_template(dir.path(), true).source, "from file");
  // --chat-template FILE overrides both, and the special tokens still come from the folder.
  { std::ofstream(dir.path() / "override.jinja") << "override"; }
  t = load_chat_template(dir.path(), false, {}, dir.path() / "override.jinja");
  EXPECT_EQ(t.source, "override");
  EXPECT_EQ(t.special_tokens.dump(), R"({"bos_token":"<s>"})");
  test::TempDir empty;
  try {
    load_chat_template(empty.path(), false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no chat template"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace strata
