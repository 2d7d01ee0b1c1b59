#include "serve_tools.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "serve_stop.h"

namespace strata::cli::serve {

using ordered_json = nlohmann::ordered_json;

namespace {

constexpr std::string_view kToolCallOpen = "<tool_call>";
constexpr std::string_view kToolCallClose = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr std::string_view kMistralCalls = "[TOOL_CALLS]";
constexpr std::string_view kMistralArgs = "[ARGS]";
constexpr std::string_view kMistralCallId = "[CALL_ID]";
constexpr size_t kMaxDepth = 64;

bool contains(std::string_view text, std::string_view what) { return text.find(what) != std::string_view::npos; }

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// The text between the calls, joined: what the reply says besides calling.
void add_content(std::string& content, std::string_view piece) {
  piece = trim(piece);
  if (piece.empty()) return;
  if (!content.empty()) content += "\n";
  content.append(piece);
}

ToolParse as_text(std::string_view text, std::string problem) {
  ToolParse p;
  p.content = std::string(text);
  p.problem = std::move(problem);
  return p;
}

std::string shorten(std::string_view text) {
  constexpr size_t kMax = 80;
  std::string s(text.substr(0, kMax));
  if (text.size() > kMax) s += "...";
  return s;
}

// A call from a JSON object {"name", "arguments" | "parameters", "id"?}.
std::optional<ToolCall> call_from_json(const ordered_json& object) {
  if (!object.is_object()) return std::nullopt;
  const auto name = object.find("name");
  if (name == object.end() || !name->is_string()) return std::nullopt;
  ToolCall call;
  call.name = name->get<std::string>();
  auto args = object.find("arguments");
  if (args == object.end()) args = object.find("parameters");
  if (args == object.end() || args->is_null()) {
    call.arguments = "{}";
  } else if (args->is_string()) {
    call.arguments = args->get<std::string>();
  } else {
    call.arguments = args->dump(-1, ' ', false, ordered_json::error_handler_t::replace);
  }
  if (const auto id = object.find("id"); id != object.end() && id->is_string()) call.id = id->get<std::string>();
  return call;
}

// Parses the JSON value at the start of `text` (after whitespace); sets
// `rest` to what follows it.
std::optional<ordered_json> leading_json(std::string_view text, std::string_view& rest) {
  text = trim(text);
  const size_t end = json_value_end(text);
  if (end == std::string_view::npos) return std::nullopt;
  ordered_json value = ordered_json::parse(text.substr(0, end), nullptr, false);
  if (value.is_discarded()) return std::nullopt;
  rest = text.substr(end);
  return value;
}

// The JSON type a tool's schema gives a parameter ("" when unknown).
std::string parameter_type(const ordered_json& tools, const std::string& function, const std::string& parameter) {
  if (!tools.is_array()) return {};
  for (const auto& tool : tools) {
    const auto f = tool.find("function");
    if (f == tool.end() || !f->is_object() || f->value("name", std::string()) != function) continue;
    const auto params = f->find("parameters");
    if (params == f->end() || !params->is_object()) return {};
    const auto props = params->find("properties");
    if (props == params->end() || !props->is_object()) return {};
    const auto p = props->find(parameter);
    if (p == props->end() || !p->is_object()) return {};
    const auto type = p->find("type");
    return type != p->end() && type->is_string() ? type->get<std::string>() : std::string();
  }
  return {};
}

// <function=NAME><parameter=KEY>VALUE</parameter>...</function>: values are
// text; the schema's type says which are JSON (numbers, booleans, objects),
// and without a type a value that parses as JSON is taken as JSON, as
// Qwen3-Coder's own parser does.
std::optional<ToolCall> parse_xml_function(std::string_view inner, const ordered_json& tools, std::string& problem) {
  constexpr std::string_view kFunction = "<function=";
  constexpr std::string_view kParameter = "<parameter=";
  constexpr std::string_view kParameterEnd = "</parameter>";
  constexpr std::string_view kFunctionEnd = "</function>";
  inner = trim(inner);
  if (inner.substr(0, kFunction.size()) != kFunction) {
    problem = "expected <function=NAME> inside <tool_call>";
    return std::nullopt;
  }
  const size_t name_end = inner.find('>');
  if (name_end == std::string_view::npos) {
    problem = "<function= has no closing '>'";
    return std::nullopt;
  }
  ToolCall call;
  call.name = std::string(trim(inner.substr(kFunction.size(), name_end - kFunction.size())));
  ordered_json args = ordered_json::object();
  std::string_view rest = inner.substr(name_end + 1);
  for (size_t at = rest.find(kParameter); at != std::string_view::npos; at = rest.find(kParameter)) {
    rest.remove_prefix(at + kParameter.size());
    const size_t key_end = rest.find('>');
    if (key_end == std::string_view::npos) {
      problem = "<parameter= has no closing '>'";
      return std::nullopt;
    }
    const std::string key(trim(rest.substr(0, key_end)));
    rest.remove_prefix(key_end + 1);
    size_t value_end = rest.find(kParameterEnd);
    if (value_end == std::string_view::npos) value_end = std::min(rest.find(kParameter), rest.find(kFunctionEnd));
    if (value_end == std::string_view::npos) value_end = rest.size();
    std::string_view value = rest.substr(0, value_end);
    // The template writes each value between newlines.
    if (!value.empty() && value.front() == '\n') value.remove_prefix(1);
    if (!value.empty() && value.back() == '\n') value.remove_suffix(1);
    const std::string type = parameter_type(tools, call.name, key);
    if (type == "string") {
      args[key] = std::string(value);
    } else {
      ordered_json parsed = ordered_json::parse(value, nullptr, false);
      args[key] = parsed.is_discarded() ? ordered_json(std::string(value)) : std::move(parsed);
    }
    size_t consumed = value_end;
    if (rest.substr(value_end, kParameterEnd.size()) == kParameterEnd) consumed += kParameterEnd.size();
    rest.remove_prefix(consumed);
  }
  call.arguments = args.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
  return call;
}

// <tool_call>...</tool_call> blocks (hermes, qwen_xml); the closing tag may
// be missing at the very end, where the model stopped at its end token.
ToolParse parse_tagged(std::string_view text, const ordered_json& tools) {
  ToolParse out;
  size_t pos = 0;
  for (size_t open = text.find(kToolCallOpen); open != std::string_view::npos;
       open = text.find(kToolCallOpen, pos)) {
    add_content(out.content, text.substr(pos, open - pos));
    const size_t inner_begin = open + kToolCallOpen.size();
    const size_t close = text.find(kToolCallClose, inner_begin);
    const std::string_view inner =
        trim(text.substr(inner_begin, close == std::string_view::npos ? std::string_view::npos : close - inner_begin));
    std::string problem;
    std::optional<ToolCall> call;
    if (inner.substr(0, 10) == "<function=") {
      call = parse_xml_function(inner, tools, problem);
    } else {
      std::string_view rest;
      if (const auto value = leading_json(inner, rest)) {
        call = call_from_json(*value);
        if (!call) problem = "the JSON in <tool_call> has no \"name\"";
        else if (!trim(rest).empty()) problem = "text after the JSON in <tool_call>: " + shorten(trim(rest));
      } else {
        problem = "<tool_call> does not hold a complete JSON object: " + shorten(inner);
      }
    }
    if (!call || !problem.empty()) return as_text(text, problem.empty() ? "unparsable <tool_call>" : problem);
    out.calls.push_back(std::move(*call));
    pos = close == std::string_view::npos ? text.size() : close + kToolCallClose.size();
  }
  if (out.calls.empty()) return as_text(text, "");
  add_content(out.content, text.substr(pos));
  return out;
}

// Llama 3.1: the whole reply is one or more JSON calls separated by ';',
// optionally after <|python_tag|>.
ToolParse parse_llama3(std::string_view text) {
  std::string_view body = trim(text);
  const bool tagged = body.substr(0, kPythonTag.size()) == kPythonTag;
  if (tagged) body = trim(body.substr(kPythonTag.size()));
  if (!tagged && (body.empty() || body.front() != '{')) return as_text(text, "");
  ToolParse out;
  while (!body.empty()) {
    std::string_view rest;
    const auto value = leading_json(body, rest);
    std::optional<ToolCall> call;
    if (value) call = call_from_json(*value);
    if (!call)
      return as_text(text, std::string(tagged ? "the text after <|python_tag|>" : "the reply, which starts with '{',") +
                               " is not a Llama 3.1 JSON call {\"name\", \"parameters\"}: " + shorten(body));
    out.calls.push_back(std::move(*call));
    body = trim(rest);
    while (!body.empty() && body.front() == ';') body = trim(body.substr(1));
  }
  return out;
}

// One [TOOL_CALLS] segment: a JSON list (or object) of calls, or NAME[ARGS]{...}
// with an optional [CALL_ID]ID before [ARGS].
bool parse_mistral_segment(std::string_view segment, ToolParse& out, std::string& problem) {
  segment = trim(segment);
  std::string_view rest;
  if (!segment.empty() && (segment.front() == '[' || segment.front() == '{')) {
    const auto value = leading_json(segment, rest);
    if (!value) {
      problem = "the JSON after [TOOL_CALLS] is not complete: " + shorten(segment);
      return false;
    }
    const ordered_json list = value->is_array() ? *value : ordered_json::array({*value});
    for (const auto& item : list) {
      auto call = call_from_json(item);
      if (!call) {
        problem = "a call after [TOOL_CALLS] has no \"name\": " + shorten(item.dump());
        return false;
      }
      out.calls.push_back(std::move(*call));
    }
    add_content(out.content, rest);
    return true;
  }
  const size_t args_at = segment.find(kMistralArgs);
  if (args_at == std::string_view::npos) {
    problem = "[TOOL_CALLS] is followed by neither a JSON list nor NAME[ARGS]: " + shorten(segment);
    return false;
  }
  ToolCall call;
  std::string_view head = segment.substr(0, args_at);
  if (const size_t id_at = head.find(kMistralCallId); id_at != std::string_view::npos) {
    call.id = std::string(trim(head.substr(id_at + kMistralCallId.size())));
    head = head.substr(0, id_at);
  }
  call.name = std::string(trim(head));
  const auto args = leading_json(segment.substr(args_at + kMistralArgs.size()), rest);
  if (call.name.empty() || !args || !args->is_object()) {
    problem = "[ARGS] of '" + call.name + "' is not a complete JSON object: " + shorten(segment);
    return false;
  }
  call.arguments = args->dump(-1, ' ', false, ordered_json::error_handler_t::replace);
  out.calls.push_back(std::move(call));
  add_content(out.content, rest);
  return true;
}

ToolParse parse_mistral(std::string_view text) {
  const size_t first = text.find(kMistralCalls);
  if (first == std::string_view::npos) return as_text(text, "");
  ToolParse out;
  add_content(out.content, text.substr(0, first));
  size_t pos = first + kMistralCalls.size();
  while (true) {
    const size_t next = text.find(kMistralCalls, pos);
    const std::string_view segment = text.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
    std::string problem;
    if (!parse_mistral_segment(segment, out, problem)) return as_text(text, problem);
    if (next == std::string_view::npos) break;
    pos = next + kMistralCalls.size();
  }
  return out;
}

// The text whose appearance means a call begins.
std::string_view call_marker(ToolSyntax syntax) {
  switch (syntax) {
    case ToolSyntax::hermes:
    case ToolSyntax::qwen_xml: return kToolCallOpen;
    case ToolSyntax::llama3: return kPythonTag;
    case ToolSyntax::mistral: return kMistralCalls;
    case ToolSyntax::none: break;
  }
  return {};
}

}  // namespace

ToolSyntax detect_tool_syntax(std::string_view source) {
  if (contains(source, kMistralCalls)) return ToolSyntax::mistral;
  if (contains(source, kToolCallOpen)) {
    if (contains(source, "<function=")) return ToolSyntax::qwen_xml;
    // GLM writes <tool_call>NAME<arg_key>..., a syntax of its own.
    if (contains(source, "<arg_key>")) return ToolSyntax::none;
    return ToolSyntax::hermes;
  }
  // functionary's template also names <|python_tag|>, for <function=...> calls.
  if (contains(source, kPythonTag) && !contains(source, "<function=")) return ToolSyntax::llama3;
  return ToolSyntax::none;
}

const char* tool_syntax_name(ToolSyntax syntax) {
  switch (syntax) {
    case ToolSyntax::hermes: return "hermes <tool_call> JSON";
    case ToolSyntax::qwen_xml: return "qwen <tool_call><function=...> XML";
    case ToolSyntax::llama3: return "llama 3.1 JSON";
    case ToolSyntax::mistral: return "mistral [TOOL_CALLS]";
    case ToolSyntax::none: break;
  }
  return "none";
}

std::vector<std::string> tool_syntax_special_tokens(ToolSyntax syntax) {
  switch (syntax) {
    case ToolSyntax::hermes:
    case ToolSyntax::qwen_xml: return {std::string(kToolCallOpen), std::string(kToolCallClose)};
    case ToolSyntax::llama3: return {std::string(kPythonTag)};
    case ToolSyntax::mistral:
      return {std::string(kMistralCalls), std::string(kMistralArgs), std::string(kMistralCallId)};
    case ToolSyntax::none: break;
  }
  return {};
}

size_t json_value_end(std::string_view text) {
  if (text.empty() || (text.front() != '{' && text.front() != '[')) return std::string_view::npos;
  std::vector<char> closers;
  bool in_string = false;
  bool escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      // A model's arguments are never this deep; parsing and printing them would recurse as deep.
      if (closers.size() >= kMaxDepth) return std::string_view::npos;
      closers.push_back(c == '{' ? '}' : ']');
    } else if (c == '}' || c == ']') {
      if (closers.empty() || closers.back() != c) return std::string_view::npos;
      closers.pop_back();
      if (closers.empty()) return i + 1;
    }
  }
  return std::string_view::npos;
}

ToolParse parse_tool_calls(ToolSyntax syntax, std::string_view text, const ordered_json& tools) {
  switch (syntax) {
    case ToolSyntax::hermes:
    case ToolSyntax::qwen_xml: return parse_tagged(text, tools);
    case ToolSyntax::llama3: return parse_llama3(text);
    case ToolSyntax::mistral: return parse_mistral(text);
    case ToolSyntax::none: break;
  }
  return as_text(text, "");
}

ToolCallStream::ToolCallStream(ToolSyntax syntax) : syntax_(syntax) {}

std::string ToolCallStream::push(std::string_view text) {
  held_.append(text);
  if (in_call_ || syntax_ == ToolSyntax::none) {
    if (syntax_ == ToolSyntax::none) return std::exchange(held_, std::string());
    return {};
  }
  // Llama 3.1 answers a call with a bare JSON object: a reply whose first
  // non-space character is '{' is held whole.
  if (syntax_ == ToolSyntax::llama3 && !emitted_) {
    const std::string_view start = trim(held_);
    if (start.empty()) return {};
    if (start.front() == '{') {
      in_call_ = true;
      return {};
    }
  }
  const std::string_view marker = call_marker(syntax_);
  const size_t at = held_.find(marker);
  const size_t release = at != std::string::npos ? at : held_.size() - partial_match_length(held_, marker);
  in_call_ = at != std::string::npos;
  std::string out = held_.substr(0, release);
  held_.erase(0, release);
  if (!out.empty()) emitted_ = true;
  return out;
}

ToolParse ToolCallStream::finish(const ordered_json& tools) {
  std::string rest = std::exchange(held_, std::string());
  if (!in_call_) return as_text(rest, "");
  return parse_tool_calls(syntax_, rest, tools);
}

std::string make_tool_call_id(ToolSyntax syntax, uint64_t& rng_state) {
  static constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const size_t length = syntax == ToolSyntax::mistral ? 9 : 24;
  std::string id = syntax == ToolSyntax::mistral ? "" : "call_";
  for (size_t i = 0; i < length; ++i) {
    // splitmix64: a well-mixed stream from a counter.
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    id += kAlphabet[z % kAlphabet.size()];
  }
  return id;
}

}  // namespace strata::cli::serve
