#include "serve_api.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>

namespace strata::cli::serve {

using ordered_json = nlohmann::ordered_json;

ApiError::ApiError(int status, const std::string& message, std::string param, std::string code, std::string type)
    : std::runtime_error(message), status_(status), param_(std::move(param)), code_(std::move(code)),
      type_(std::move(type)) {
  if (type_.empty()) type_ = status_ >= 500 ? "server_error" : "invalid_request_error";
}

nlohmann::json error_body(const ApiError& error) {
  nlohmann::json e{{"message", error.what()}, {"type", error.type()}, {"param", nullptr}, {"code", nullptr}};
  if (!error.param().empty()) e["param"] = error.param();
  if (!error.code().empty()) e["code"] = error.code();
  return {{"error", std::move(e)}};
}

namespace {

// The JSON type names OpenAI's messages use ("expected an integer, but got a string instead").
std::string type_name(const ordered_json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a decimal";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

[[noreturn]] void wrong_type(const std::string& param, const std::string& expected, const ordered_json& got) {
  throw ApiError(400, "Invalid type for '" + param + "': expected " + expected + ", but got " + type_name(got) +
                          " instead.",
                 param, "invalid_type");
}

[[noreturn]] void bad_value(const std::string& param, const std::string& message) {
  throw ApiError(400, "Invalid value for '" + param + "': " + message, param, "invalid_value");
}

[[noreturn]] void unsupported(const std::string& param, const std::string& message) {
  throw ApiError(400, message, param, "unsupported_parameter");
}

// The value of `key`, or nullptr when absent or null (OpenAI treats an
// explicit null as "not given").
const ordered_json* field(const ordered_json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<bool> get_bool(const ordered_json& object, const char* key) {
  const ordered_json* v = field(object, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(key, "a boolean", *v);
  return v->get<bool>();
}

std::optional<int64_t> get_int(const ordered_json& object, const char* key, int64_t min, int64_t max) {
  const ordered_json* v = field(object, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) wrong_type(key, "an integer", *v);
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    bad_value(key, "expected an integer at most " + std::to_string(max) + ".");
  const int64_t x = v->get<int64_t>();
  if (x < min || x > max)
    bad_value(key, "expected an integer between " + std::to_string(min) + " and " + std::to_string(max) +
                       ", but got " + std::to_string(x) + " instead.");
  return x;
}

std::string format_number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", x);
  return text;
}

std::optional<double> get_number(const ordered_json& object, const char* key, double min, double max) {
  const ordered_json* v = field(object, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(key, "a number", *v);
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < min || x > max)
    bad_value(key, "expected a number between " + format_number(min) + " and " + format_number(max) +
                       ", but got " + format_number(x) + " instead.");
  return x;
}

std::optional<std::string> get_string(const ordered_json& object, const char* key) {
  const ordered_json* v = field(object, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(key, "a string", *v);
  return v->get<std::string>();
}

// Message content as the template gets it: a string. A list of parts is
// joined with newlines, as vLLM does for templates that expect strings;
// parts other than text cannot be served by a text-only model.
std::string content_text(const ordered_json& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) wrong_type(param, "a string or an array of content parts", content);
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const ordered_json& part = content[i];
    const std::string part_param = param + "[" + std::to_string(i) + "]";
    if (!part.is_object()) wrong_type(part_param, "an object", part);
    const auto type = get_string(part, "type");
    if (!type) throw ApiError(400, "Missing required parameter: '" + part_param + ".type'.", part_param + ".type",
                              "missing_required_parameter");
    if (*type != "text")
      unsupported(part_param + ".type", "Content parts of type '" + *type +
                                            "' are not supported: this server takes text only ('" + part_param +
                                            ".type').");
    const ordered_json* t = field(part, "text");
    if (!t) throw ApiError(400, "Missing required parameter: '" + part_param + ".text'.", part_param + ".text",
                           "missing_required_parameter");
    if (!t->is_string()) wrong_type(part_param + ".text", "a string", *t);
    if (!text.empty()) text += "\n";
    text += t->get<std::string>();
  }
  return text;
}

// An assistant message's tool_calls, with each function's arguments
// parsed from the JSON string OpenAI sends into the object chat templates
// expect (they write it with |tojson), as vLLM passes them.
ordered_json normalize_tool_calls(const ordered_json& calls, const std::string& param) {
  if (!calls.is_array()) wrong_type(param, "an array", calls);
  ordered_json out = ordered_json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const std::string p = param + "[" + std::to_string(i) + "]";
    ordered_json call = calls[i];
    if (!call.is_object()) wrong_type(p, "an object", call);
    const ordered_json* function = field(call, "function");
    if (!function) throw ApiError(400, "Missing required parameter: '" + p + ".function'.", p + ".function",
                                  "missing_required_parameter");
    if (!function->is_object()) wrong_type(p + ".function", "an object", *function);
    const auto name = get_string(*function, "name");
    if (!name) throw ApiError(400, "Missing required parameter: '" + p + ".function.name'.", p + ".function.name",
                              "missing_required_parameter");
    if (const ordered_json* args = field(*function, "arguments"); args && args->is_string()) {
      ordered_json parsed = ordered_json::parse(args->get<std::string>(), nullptr, false);
      if (!parsed.is_discarded()) call["function"]["arguments"] = std::move(parsed);
    }
    out.push_back(std::move(call));
  }
  return out;
}

// Checks the messages and returns them as the template sees them.
ordered_json normalize_messages(const ordered_json& body) {
  const ordered_json* messages = field(body, "messages");
  if (!messages)
    throw ApiError(400, "Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
  if (!messages->is_array()) wrong_type("messages", "an array", *messages);
  if (messages->empty())
    throw ApiError(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
                        "empty array instead.",
                   "messages", "empty_array");
  ordered_json out = ordered_json::array();
  for (size_t i = 0; i < messages->size(); ++i) {
    const std::string p = "messages[" + std::to_string(i) + "]";
    const ordered_json& m = (*messages)[i];
    if (!m.is_object()) wrong_type(p, "an object", m);
    const ordered_json* role_value = field(m, "role");
    if (!role_value)
      throw ApiError(400, "Missing required parameter: '" + p + ".role'.", p + ".role", "missing_required_parameter");
    if (!role_value->is_string()) wrong_type(p + ".role", "a string", *role_value);
    std::string role = role_value->get<std::string>();
    if (role != "system" && role != "developer" && role != "user" && role != "assistant" && role != "tool")
      throw ApiError(400, "Invalid value: '" + role + "'. Supported values are: 'system', 'developer', 'user', "
                          "'assistant', and 'tool'.",
                     p + ".role", "invalid_value");
    // Chat templates know system, not OpenAI's newer name for it.
    if (role == "developer") role = "system";

    ordered_json message = m;  // other keys (name, tool_call_id, ...) pass through to the template
    message["role"] = role;
    const ordered_json* content = field(m, "content");
    const bool has_tool_calls = field(m, "tool_calls") != nullptr;
    if (content) {
      message["content"] = content_text(*content, p + ".content");
    } else if (role == "assistant") {
      message["content"] = nullptr;
    } else {
      throw ApiError(400, "Missing required parameter: '" + p + ".content'.", p + ".content",
                     "missing_required_parameter");
    }
    if (has_tool_calls) {
      if (role != "assistant")
        bad_value(p + ".tool_calls", "only assistant messages carry tool calls, this one has role '" + role + "'.");
      message["tool_calls"] = normalize_tool_calls(m["tool_calls"], p + ".tool_calls");
    }
    if (role == "tool") {
      if (const ordered_json* id = field(m, "tool_call_id"); id && !id->is_string())
        wrong_type(p + ".tool_call_id", "a string", *id);
    }
    if (const ordered_json* name = field(m, "name"); name && !name->is_string()) wrong_type(p + ".name", "a string", *name);
    out.push_back(std::move(message));
  }
  return out;
}

// The tools, passed to the template in OpenAI's form
// ({"type": "function", "function": {"name", "description", "parameters"}}),
// which is the form transformers' templates take. Null when none.
ordered_json check_tools(const ordered_json& body) {
  const ordered_json* tools = field(body, "tools");
  if (!tools) return nullptr;
  if (!tools->is_array()) wrong_type("tools", "an array", *tools);
  if (tools->empty()) return nullptr;
  for (size_t i = 0; i < tools->size(); ++i) {
    const std::string p = "tools[" + std::to_string(i) + "]";
    const ordered_json& t = (*tools)[i];
    if (!t.is_object()) wrong_type(p, "an object", t);
    const auto type = get_string(t, "type");
    if (type && *type != "function")
      bad_value(p + ".type", "expected 'function', but got '" + *type + "' instead.");
    const ordered_json* function = field(t, "function");
    if (!function)
      throw ApiError(400, "Missing required parameter: '" + p + ".function'.", p + ".function",
                     "missing_required_parameter");
    if (!function->is_object()) wrong_type(p + ".function", "an object", *function);
    const ordered_json* name = field(*function, "name");
    if (!name)
      throw ApiError(400, "Missing required parameter: '" + p + ".function.name'.", p + ".function.name",
                     "missing_required_parameter");
    if (!name->is_string()) wrong_type(p + ".function.name", "a string", *name);
    if (const ordered_json* params = field(*function, "parameters"); params && !params->is_object())
      wrong_type(p + ".function.parameters", "an object", *params);
  }
  return *tools;
}

// tool_choice: "auto" and "none" are honoured; forcing a call ("required",
// a named function) would need constrained decoding, which strata does not do.
bool tool_calls_wanted(const ordered_json& body) {
  const ordered_json* choice = field(body, "tool_choice");
  if (!choice) return true;
  if (choice->is_string()) {
    const std::string c = choice->get<std::string>();
    if (c == "auto") return true;
    if (c == "none") return false;
    if (c == "required")
      unsupported("tool_choice", "tool_choice 'required' is not supported: strata cannot force a tool call; use "
                                 "'auto' or 'none'.");
    bad_value("tool_choice", "expected 'auto', 'none' or 'required', but got '" + c + "' instead.");
  }
  if (choice->is_object())
    unsupported("tool_choice", "A named tool_choice is not supported: strata cannot force a tool call; use 'auto' "
                               "or 'none'.");
  wrong_type("tool_choice", "a string or an object", *choice);
}

std::vector<std::string> get_stop(const ordered_json& body) {
  const ordered_json* stop = field(body, "stop");
  std::vector<std::string> out;
  if (!stop) return out;
  if (stop->is_string()) {
    if (!stop->get<std::string>().empty()) out.push_back(stop->get<std::string>());
    return out;
  }
  if (!stop->is_array()) wrong_type("stop", "a string or an array of strings", *stop);
  if (stop->size() > kMaxStopStrings)
    bad_value("stop", "at most " + std::to_string(kMaxStopStrings) + " stop strings, got " +
                          std::to_string(stop->size()) + ".");
  for (size_t i = 0; i < stop->size(); ++i) {
    const ordered_json& s = (*stop)[i];
    if (!s.is_string()) wrong_type("stop[" + std::to_string(i) + "]", "a string", s);
    if (!s.get<std::string>().empty()) out.push_back(s.get<std::string>());
  }
  return out;
}

// Parameters that would change the result in ways strata does not
// implement: refused with a message rather than ignored.
void refuse_unimplemented(const ordered_json& body) {
  if (const auto n = get_int(body, "n", 1, 128); n && *n != 1)
    unsupported("n", "n must be 1: strata serve returns one choice per request; send several requests instead.");
  if (const auto b = get_int(body, "best_of", 1, 128); b && *b != 1)
    unsupported("best_of", "best_of must be 1: strata serve returns one choice per request.");
  if (get_bool(body, "echo").value_or(false))
    unsupported("echo", "echo is not supported: the prompt is not returned with the completion.");
  if (const auto s = get_string(body, "suffix"); s && !s->empty())
    unsupported("suffix", "suffix is not supported.");
  for (const char* key : {"presence_penalty", "frequency_penalty"})
    if (const auto p = get_number(body, key, -2.0, 2.0); p && *p != 0.0)
      unsupported(key, std::string(key) + " is not supported: strata samples without penalties (send 0 or leave it out).");
  if (const ordered_json* bias = field(body, "logit_bias")) {
    if (!bias->is_object()) wrong_type("logit_bias", "an object", *bias);
    if (!bias->empty()) unsupported("logit_bias", "logit_bias is not supported.");
  }
  if (const ordered_json* format = field(body, "response_format")) {
    if (!format->is_object()) wrong_type("response_format", "an object", *format);
    const auto type = get_string(*format, "type");
    if (type && *type != "text")
      unsupported("response_format", "response_format '" + *type +
                                         "' is not supported: strata does not constrain the output; use 'text'.");
  }
}

void parse_sampling(const ordered_json& body, CompletionRequest& r) {
  const auto max_completion = get_int(body, "max_completion_tokens", 1, std::numeric_limits<int64_t>::max());
  const auto max_tokens = get_int(body, "max_tokens", 1, std::numeric_limits<int64_t>::max());
  r.max_tokens = max_completion ? max_completion : max_tokens;
  r.temperature = get_number(body, "temperature", 0.0, 2.0);
  r.top_p = get_number(body, "top_p", 0.0, 1.0);
  if (const auto k = get_int(body, "top_k", -1, std::numeric_limits<int32_t>::max())) r.top_k = *k < 0 ? 0 : *k;
  if (const auto seed = get_int(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()))
    r.seed = static_cast<uint64_t>(*seed);
  r.stop = get_stop(body);
  r.stream = get_bool(body, "stream").value_or(false);
  if (const ordered_json* options = field(body, "stream_options")) {
    if (!options->is_object()) wrong_type("stream_options", "an object", *options);
    r.include_usage = get_bool(*options, "include_usage").value_or(false);
  }
  refuse_unimplemented(body);
}

// Chat: logprobs is a boolean and top_logprobs (0-20) needs it.
void parse_chat_logprobs(const ordered_json& body, CompletionRequest& r) {
  r.logprobs = get_bool(body, "logprobs").value_or(false);
  if (const auto top = get_int(body, "top_logprobs", 0, kMaxTopLogprobs)) {
    if (!r.logprobs && *top > 0)
      bad_value("top_logprobs", "top_logprobs needs logprobs set to true.");
    r.top_logprobs = static_cast<int>(*top);
  }
}

// Completions: logprobs is the number of alternatives (0-5), null for none.
void parse_completion_logprobs(const ordered_json& body, CompletionRequest& r) {
  if (const auto n = get_int(body, "logprobs", 0, 5)) {
    r.logprobs = true;
    r.top_logprobs = static_cast<int>(*n);
  }
}

std::vector<int32_t> token_ids(const ordered_json& ids, const std::string& param) {
  std::vector<int32_t> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const ordered_json& id = ids[i];
    const std::string p = param + "[" + std::to_string(i) + "]";
    if (!id.is_number_integer()) wrong_type(p, "an integer", id);
    if (id.is_number_unsigned() ? id.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())
                                : (id.get<int64_t>() < 0 || id.get<int64_t>() > std::numeric_limits<int32_t>::max()))
      bad_value(p, "token ids are between 0 and the vocabulary size.");
    out.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return out;
}

// The completions prompt: a string, or token ids; one prompt per request
// (a list of several prompts would need several choices).
void parse_prompt(const ordered_json& body, CompletionRequest& r) {
  const ordered_json* prompt = field(body, "prompt");
  if (!prompt) throw ApiError(400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter");
  if (prompt->is_string()) {
    r.prompt = prompt->get<std::string>();
    return;
  }
  if (!prompt->is_array()) wrong_type("prompt", "a string, an array of strings or an array of token ids", *prompt);
  if (prompt->empty()) bad_value("prompt", "the prompt is an empty array.");
  const ordered_json& first = (*prompt)[0];
  if (first.is_number_integer()) {
    r.prompt_ids = token_ids(*prompt, "prompt");
    r.prompt_is_ids = true;
    return;
  }
  if (prompt->size() > 1)
    unsupported("prompt", "One prompt per request: this array holds " + std::to_string(prompt->size()) +
                              " prompts; send them as separate requests.");
  if (first.is_string()) {
    r.prompt = first.get<std::string>();
  } else if (first.is_array()) {
    r.prompt_ids = token_ids(first, "prompt[0]");
    r.prompt_is_ids = true;
    if (r.prompt_ids.empty()) bad_value("prompt", "the prompt is an empty array.");
  } else {
    wrong_type("prompt[0]", "a string or an array of token ids", first);
  }
}

ordered_json get_template_kwargs(const ordered_json& body) {
  const ordered_json* kwargs = field(body, "chat_template_kwargs");
  if (!kwargs) return ordered_json::object();
  if (!kwargs->is_object()) wrong_type("chat_template_kwargs", "an object", *kwargs);
  return *kwargs;
}

}  // namespace

size_t json_nesting_depth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

ordered_json parse_json_object(std::string_view body) {
  // Copying and rendering a value recurses once per level: a body of
  // nothing but '[' must not reach them.
  if (const size_t depth = json_nesting_depth(body); depth > kMaxJsonDepth)
    throw ApiError(400, "The JSON body is nested " + std::to_string(depth) + " levels deep; this server takes at most " +
                            std::to_string(kMaxJsonDepth) + ".",
                   "", "invalid_json");
  ordered_json j = ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    throw ApiError(400, "We could not parse the JSON body of your request: it is not valid JSON. (HINT: This likely "
                        "means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
                   "", "invalid_json");
  if (!j.is_object()) wrong_type("body", "an object", j);
  return j;
}

CompletionRequest parse_completion_request(std::string_view body_text, Endpoint endpoint) {
  const ordered_json body = parse_json_object(body_text);
  CompletionRequest r;
  r.endpoint = endpoint;
  if (const auto model = get_string(body, "model")) r.model = *model;
  if (endpoint == Endpoint::chat) {
    r.messages = normalize_messages(body);
    r.tools = check_tools(body);
    r.parse_tool_calls = tool_calls_wanted(body);
    r.template_kwargs = get_template_kwargs(body);
    parse_chat_logprobs(body, r);
  } else {
    parse_prompt(body, r);
    parse_completion_logprobs(body, r);
  }
  parse_sampling(body, r);
  return r;
}

TokenizeRequest parse_tokenize_request(std::string_view body_text) {
  const ordered_json body = parse_json_object(body_text);
  TokenizeRequest r;
  auto text = get_string(body, "prompt");
  if (!text) text = get_string(body, "content");
  if (!text) throw ApiError(400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter");
  r.text = std::move(*text);
  r.add_special = get_bool(body, "add_special_tokens").value_or(true);
  return r;
}

std::vector<int32_t> parse_detokenize_request(std::string_view body_text, int64_t vocab_size) {
  const ordered_json body = parse_json_object(body_text);
  const ordered_json* tokens = field(body, "tokens");
  if (!tokens) throw ApiError(400, "Missing required parameter: 'tokens'.", "tokens", "missing_required_parameter");
  if (!tokens->is_array()) wrong_type("tokens", "an array of integers", *tokens);
  std::vector<int32_t> ids = token_ids(*tokens, "tokens");
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] >= vocab_size)
      bad_value("tokens[" + std::to_string(i) + "]", "token id " + std::to_string(ids[i]) +
                                                         " is outside the vocabulary (" + std::to_string(vocab_size) +
                                                         " tokens).");
  return ids;
}

TemplateRequest parse_template_request(std::string_view body_text) {
  const ordered_json body = parse_json_object(body_text);
  TemplateRequest r;
  r.messages = normalize_messages(body);
  r.tools = check_tools(body);
  r.add_generation_prompt = get_bool(body, "add_generation_prompt").value_or(true);
  r.template_kwargs = get_template_kwargs(body);
  return r;
}

bool bearer_matches(std::string_view authorization, std::string_view key) {
  constexpr std::string_view kScheme = "Bearer ";
  if (key.empty() || authorization.size() < kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i])))
      return false;
  std::string_view given = authorization.substr(kScheme.size());
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
  // Every byte is compared whatever the first difference, so the time does
  // not tell an attacker how much of a guess was right.
  unsigned diff = given.size() == key.size() ? 0u : 1u;
  for (size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned>(given[i] ^ key[i % key.size()]);
  return diff == 0;
}

}  // namespace strata::cli::serve
