// strata serve: tool calls in the model's output. Each template family that
// offers tools teaches its model one syntax for calling them; when the
// template is one of those we know, the call is parsed into OpenAI's
// tool_calls, otherwise the text is returned as it is and the server says so
// in its log. A call that looks like a call but does not parse is returned as
// text too, with the reason — a call is never dropped silently.
//
// The syntaxes (from the templates' own instructions and their rendering of
// earlier calls, see tests/fixtures/chat_templates/templates):
//  * hermes:   <tool_call>{"name": ..., "arguments": {...}}</tool_call>, one
//              block per call (NousResearch Hermes 2/3, Qwen2.5, Qwen3, Granite 4)
//  * qwen_xml: <tool_call><function=NAME><parameter=KEY>VALUE</parameter>...
//              </function></tool_call> (Qwen3-Coder, Nemotron 3)
//  * llama3:   {"name": ..., "parameters": {...}} as the whole reply, or after
//              <|python_tag|>; several separated by ';' (Llama 3.1/3.3)
//  * mistral:  [TOOL_CALLS][{"name": ..., "arguments": {...}, "id": ...}] (v3),
//              or [TOOL_CALLS]NAME[CALL_ID]ID[ARGS]{...} / [TOOL_CALLS]NAME[ARGS]{...},
//              once per call (Mistral Small 3.2, Devstral, Ministral 3)
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace strata::cli::serve {

enum class ToolSyntax { none, hermes, qwen_xml, llama3, mistral };

// The syntax a chat template teaches, from its source text; none when it is
// not one of the above (GLM's <arg_key> blocks, functionary, ...).
ToolSyntax detect_tool_syntax(std::string_view template_source);
const char* tool_syntax_name(ToolSyntax syntax);

// Special tokens of the syntax that decoding with skip_special would drop
// ([TOOL_CALLS], <|python_tag|>, ...): the server re-inserts their text.
std::vector<std::string> tool_syntax_special_tokens(ToolSyntax syntax);

struct ToolCall {
  std::string id;         // the model's own (Mistral), else empty for the server to assign
  std::string name;
  std::string arguments;  // a JSON object as text, as OpenAI's function.arguments
};

struct ToolParse {
  std::string content;          // the text outside the calls (all of it when none parsed)
  std::vector<ToolCall> calls;
  std::string problem;          // why text that starts like a call is returned as text; empty when fine
};

// Parses a whole reply. `tools` (the request's) gives the parameter types
// qwen_xml's untyped values are converted with.
ToolParse parse_tool_calls(ToolSyntax syntax, std::string_view text,
                           const nlohmann::ordered_json& tools = nlohmann::ordered_json());

// Where a JSON value that starts at text[0] ends (one past its last byte),
// or npos when it is incomplete or text does not start with { or [.
size_t json_value_end(std::string_view text);

// For streaming: passes text on until a call may begin, then holds the rest
// of the reply for parse_tool_calls at the end. Text that could be the start
// of a call marker is held until it is known not to be.
// Thread-safety: one instance belongs to one sequence and one thread.
class ToolCallStream {
 public:
  explicit ToolCallStream(ToolSyntax syntax);
  // Returns the text that is certainly content.
  std::string push(std::string_view text);
  // The held rest of the reply, parsed.
  ToolParse finish(const nlohmann::ordered_json& tools);
  // Whether a call marker has been seen.
  bool in_call() const { return in_call_; }

 private:
  ToolSyntax syntax_;
  std::string held_;
  bool in_call_ = false;
  bool emitted_ = false;  // content went out already (llama3: a reply that starts with text is not a call)
};

// A fresh id for a call: "call_" and 24 letters and digits, or 9 letters and
// digits for mistral, whose templates refuse other ids in later turns.
std::string make_tool_call_id(ToolSyntax syntax, uint64_t& rng_state);

}  // namespace strata::cli::serve
