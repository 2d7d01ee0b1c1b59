// strata serve's tool-call parsing, one syntax at a time, in whole replies
// and streamed in pieces: calls come out as OpenAI's tool_calls, and text
// that starts like a call but does not parse comes back as text with the
// reason — never dropped.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "serve_tools.h"
#include "test_support.h"

namespace strata::cli::serve {
namespace {

using ordered_json = nlohmann::ordered_json;

ordered_json args_of(const ToolCall& call) { return ordered_json::parse(call.arguments); }

// Streams `text` in pieces of `step` bytes through a ToolCallStream; returns
// the content released on the way and the final parse (its content appended).
std::pair<std::string, ToolParse> stream(ToolSyntax syntax, const std::string& text, size_t step,
                                         const ordered_json& tools = {}) {
  ToolCallStream s(syntax);
  std::string content;
  for (size_t i = 0; i < text.size(); i += step) content += s.push(text.substr(i, step));
  ToolParse p = s.finish(tools);
  content += p.content;
  return {content, p};
}

TEST(ServeTools, DetectsTheFixtureTemplatesSyntaxes) {
  const auto dir = test::fixtures_dir() / "chat_templates" / "templates";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no chat template fixtures in " << dir;
  auto syntax_of = [&](const std::string& name) {
    std::ifstream in(dir / name);
    std::stringstream ss;
    ss << in.rdbuf();
    return detect_tool_syntax(ss.str());
  };
  EXPECT_EQ(syntax_of("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja"), ToolSyntax::hermes);
  EXPECT_EQ(syntax_of("Qwen-Qwen2.5-7B-Instruct.jinja"), ToolSyntax::hermes);
  EXPECT_EQ(syntax_of("Qwen-Qwen3-0.6B.jinja"), ToolSyntax::hermes);
  EXPECT_EQ(syntax_of("Qwen3-Coder.jinja"), ToolSyntax::qwen_xml);
  EXPECT_EQ(syntax_of("meta-llama-Llama-3.1-8B-Instruct.jinja"), ToolSyntax::llama3);
  EXPECT_EQ(syntax_of("Mistral-Small-3.2-24B-Instruct-2506.jinja"), ToolSyntax::mistral);
  EXPECT_EQ(syntax_of("unsloth-mistral-Devstral-Small-2507.jinja"), ToolSyntax::mistral);
  EXPECT_EQ(syntax_of("GLM-4.6.jinja"), ToolSyntax::none);  // <arg_key> blocks: not parsed, said so
  EXPECT_EQ(syntax_of("meetkai-functionary-medium-v3.1.jinja"), ToolSyntax::none);
  EXPECT_EQ(syntax_of("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja"), ToolSyntax::none);
}

TEST(ServeTools, Hermes) {
  const std::string reply =
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
  const ToolParse p = parse_tool_calls(ToolSyntax::hermes, reply);
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(args_of(p.calls[0]), ordered_json::parse(R"({"city": "Paris"})"));
  EXPECT_EQ(p.calls[1].name, "get_time");
  EXPECT_EQ(p.calls[1].arguments, "{}");
  EXPECT_EQ(p.content, "Let me check.");
  EXPECT_TRUE(p.problem.empty());
  // The model may stop at its end token before </tool_call>.
  const ToolParse open = parse_tool_calls(ToolSyntax::hermes, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": [1, \"}\"]}}");
  ASSERT_EQ(open.calls.size(), 1u);
  EXPECT_EQ(args_of(open.calls[0])["a"][1], "}");
  // No call: the text as it is.
  const ToolParse none = parse_tool_calls(ToolSyntax::hermes, "  just text ");
  EXPECT_TRUE(none.calls.empty());
  EXPECT_EQ(none.content, "  just text ");
  EXPECT_TRUE(none.problem.empty());
}

TEST(ServeTools, BrokenCallComesBackAsTextWithTheReason) {
  const std::string reply = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \n</tool_call>";
  const ToolParse p = parse_tool_calls(ToolSyntax::hermes, reply);
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, reply);
  EXPECT_NE(p.problem.find("complete JSON"), std::string::npos) << p.problem;
  const ToolParse nameless = parse_tool_calls(ToolSyntax::hermes, "<tool_call>{\"arguments\": {}}</tool_call>");
  EXPECT_TRUE(nameless.calls.empty());
  EXPECT_NE(nameless.problem.find("name"), std::string::npos);
}

TEST(ServeTools, QwenXml) {
  const ordered_json tools = ordered_json::parse(R"([{"type": "function", "function": {"name": "search",
      "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"},
                                                      "exact": {"type": "boolean"}}}}}])");
  const std::string reply =
      "<tool_call>\n<function=search>\n<parameter=query>\n42\n</parameter>\n<parameter=limit>\n5\n</parameter>\n"
      "<parameter=exact>\ntrue\n</parameter>\n<parameter=note>\nmulti\nline\n</parameter>\n</function>\n</tool_call>";
  const ToolParse p = parse_tool_calls(ToolSyntax::qwen_xml, reply, tools);
  ASSERT_EQ(p.calls.size(), 1u) << p.problem;
  EXPECT_EQ(p.calls[0].name, "search");
  // The schema says query is a string, so "42" stays text; the others are JSON.
  EXPECT_EQ(args_of(p.calls[0]), ordered_json::parse(R"({"query": "42", "limit": 5, "exact": true,
                                                            "note": "multi\nline"})"));
  EXPECT_TRUE(p.content.empty());
}

TEST(ServeTools, Llama3) {
  const ToolParse p = parse_tool_calls(ToolSyntax::llama3,
                                       R"({"name": "get_weather", "parameters": {"city": "Oslo"}})");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(args_of(p.calls[0])["city"], "Oslo");
  const ToolParse two = parse_tool_calls(ToolSyntax::llama3,
                                         "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"x\": 1}}");
  ASSERT_EQ(two.calls.size(), 2u);
  EXPECT_EQ(two.calls[1].name, "b");
  // Plain text is content; built-in tool code after <|python_tag|> is not a JSON call and says so.
  EXPECT_TRUE(parse_tool_calls(ToolSyntax::llama3, "The weather is fine.").calls.empty());
  const ToolParse code = parse_tool_calls(ToolSyntax::llama3, "<|python_tag|>brave_search.call(query=\"x\")");
  EXPECT_TRUE(code.calls.empty());
  EXPECT_EQ(code.content, "<|python_tag|>brave_search.call(query=\"x\")");
  EXPECT_FALSE(code.problem.empty());
}

TEST(ServeTools, Mistral) {
  // v3: a JSON list.
  const ToolParse v3 = parse_tool_calls(
      ToolSyntax::mistral, R"([TOOL_CALLS][{"name": "f", "arguments": {"a": 1}, "id": "abcDEF123"}, {"name": "g", "arguments": {}}])");
  ASSERT_EQ(v3.calls.size(), 2u) << v3.problem;
  EXPECT_EQ(v3.calls[0].id, "abcDEF123");
  EXPECT_EQ(args_of(v3.calls[0])["a"], 1);
  EXPECT_EQ(v3.calls[1].name, "g");
  // v11 (Devstral, Mistral Small 3.2): NAME[ARGS]{...}, with [CALL_ID] in some.
  const ToolParse v11 = parse_tool_calls(
      ToolSyntax::mistral, R"(Sure.[TOOL_CALLS]get_weather[ARGS]{"city": "Lyon"}[TOOL_CALLS]get_time[CALL_ID]a1b2c3d4e[ARGS]{})");
  ASSERT_EQ(v11.calls.size(), 2u) << v11.problem;
  EXPECT_EQ(v11.content, "Sure.");
  EXPECT_EQ(v11.calls[0].name, "get_weather");
  EXPECT_EQ(args_of(v11.calls[0])["city"], "Lyon");
  EXPECT_EQ(v11.calls[1].name, "get_time");
  EXPECT_EQ(v11.calls[1].id, "a1b2c3d4e");
  const ToolParse broken = parse_tool_calls(ToolSyntax::mistral, "[TOOL_CALLS]get_weather[ARGS]{\"city\":");
  EXPECT_TRUE(broken.calls.empty());
  EXPECT_FALSE(broken.problem.empty());
  EXPECT_EQ(broken.content, "[TOOL_CALLS]get_weather[ARGS]{\"city\":");
}

TEST(ServeTools, StreamsContentAndHoldsTheCall) {
  const std::string reply =
      "Checking <tool> tags... <tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 2}}\n</tool_call>";
  for (size_t step : {1u, 2u, 3u, 7u, 100u}) {
    ToolCallStream s(ToolSyntax::hermes);
    std::string released;
    for (size_t i = 0; i < reply.size(); i += step) {
      released += s.push(reply.substr(i, step));
      EXPECT_EQ(released.find("<tool_call"), std::string::npos) << step;  // never a piece of the marker
    }
    EXPECT_EQ(released, "Checking <tool> tags... ") << step;
    const ToolParse p = s.finish({});
    ASSERT_EQ(p.calls.size(), 1u) << step;
    EXPECT_EQ(args_of(p.calls[0])["x"], 2);
  }
}

TEST(ServeTools, StreamsPlainTextWhole) {
  for (const ToolSyntax syntax : {ToolSyntax::hermes, ToolSyntax::llama3, ToolSyntax::mistral, ToolSyntax::none}) {
    const auto [content, parse] = stream(syntax, "Hello <tool and [TOOL and <|py but no call", 2);
    EXPECT_EQ(content, "Hello <tool and [TOOL and <|py but no call");
    EXPECT_TRUE(parse.calls.empty());
  }
}

TEST(ServeTools, StreamsLlama3BareJson) {
  const auto [content, parse] = stream(ToolSyntax::llama3, "  {\"name\": \"f\", \"parameters\": {\"q\": \"a b\"}}", 3);
  EXPECT_TRUE(content.empty());
  ASSERT_EQ(parse.calls.size(), 1u);
  EXPECT_EQ(args_of(parse.calls[0])["q"], "a b");
  // A reply that begins with text is content even if JSON follows later.
  const auto [text, none] = stream(ToolSyntax::llama3, "Use {\"name\": 1}", 4);
  EXPECT_EQ(text, "Use {\"name\": 1}");
  EXPECT_TRUE(none.calls.empty());
}

TEST(ServeTools, StreamedBrokenCallIsReturnedAsText) {
  const std::string reply = "ok [TOOL_CALLS]f[ARGS]{oops";
  const auto [content, parse] = stream(ToolSyntax::mistral, reply, 5);
  EXPECT_EQ(content, reply);
  EXPECT_FALSE(parse.problem.empty());
}

TEST(ServeTools, JsonValueEnd) {
  EXPECT_EQ(json_value_end(R"({"a": "}"} tail)"), 10u);
  EXPECT_EQ(json_value_end(R"([1, [2, {"x": "\"]"}]] x)"), 22u);
  EXPECT_EQ(json_value_end(R"({"a": 1)"), std::string::npos);
  EXPECT_EQ(json_value_end("x{}"), std::string::npos);
  EXPECT_EQ(json_value_end("{]"), std::string::npos);
  EXPECT_EQ(json_value_end(std::string(65, '[') + std::string(65, ']')), std::string::npos);  // too deep to parse
  EXPECT_EQ(json_value_end(std::string(64, '[') + std::string(64, ']')), 128u);
}

TEST(ServeTools, CallIds) {
  uint64_t state = 7;
  const std::string a = make_tool_call_id(ToolSyntax::hermes, state);
  const std::string b = make_tool_call_id(ToolSyntax::hermes, state);
  EXPECT_EQ(a.substr(0, 5), "call_");
  EXPECT_EQ(a.size(), 29u);
  EXPECT_NE(a, b);
  const std::string m = make_tool_call_id(ToolSyntax::mistral, state);
  EXPECT_EQ(m.size(), 9u);  // Mistral's templates take 9 letters and digits
  for (const char c : m) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)));
}

}  // namespace
}  // namespace strata::cli::serve
