// strata serve: the OpenAI-style request bodies it accepts, parsed and
// validated into plain structs, and the error object it answers with.
// Field names and semantics follow OpenAI's API reference for
// /v1/completions and /v1/chat/completions; the extra endpoints follow
// vLLM (/tokenize, /detokenize) and llama.cpp's server (/apply-template).
// Nothing here touches the network, the model or the tokenizer.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace strata::cli::serve {

// A request the server answers with an HTTP error status and OpenAI's
// error object. what() is the message.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = {}, std::string code = {},
           std::string type = {});
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }
  // "invalid_request_error" unless given (400, 401, 404, 413), "server_error" (5xx).
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::string param_;
  std::string code_;
  std::string type_;
};

// {"error": {"message", "type", "param", "code"}}, param and code null when empty.
nlohmann::json error_body(const ApiError& error);

enum class Endpoint { completions, chat };

// One /v1/completions or /v1/chat/completions request. Absent optional
// fields stay empty; the server fills them from the model's defaults.
struct CompletionRequest {
  Endpoint endpoint = Endpoint::chat;
  std::string model;

  // Chat: the messages as the template sees them (roles checked, content
  // made a string, tool-call arguments parsed into objects), the tools
  // (null when none) and template variables from chat_template_kwargs.
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;
  bool parse_tool_calls = true;  // false with tool_choice "none"
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();

  // Completions: the prompt as text, or as token ids.
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  bool prompt_is_ids = false;

  std::optional<int64_t> max_tokens;  // max_completion_tokens, else max_tokens
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int64_t> top_k;  // 0 (or -1 in the request): off
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;  // empty strings dropped
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;
  int top_logprobs = 0;
};

// The most stop strings a request may give (OpenAI allows 4; vLLM has no limit).
inline constexpr size_t kMaxStopStrings = 16;
// The most alternatives per token logprobs may ask for (OpenAI's chat limit).
inline constexpr int kMaxTopLogprobs = 20;

// Parses and validates a request body. Throws ApiError (400) naming the
// offending parameter: malformed JSON, a wrong type, a value out of range,
// an unknown role, or a feature strata does not implement (n > 1, echo,
// penalties, logit_bias, structured output) — never silently ignored.
CompletionRequest parse_completion_request(std::string_view body, Endpoint endpoint);

// POST /tokenize: {"prompt" (or "content"): text, "add_special_tokens": bool (default true)}.
struct TokenizeRequest {
  std::string text;
  bool add_special = true;
};
TokenizeRequest parse_tokenize_request(std::string_view body);

// POST /detokenize: {"tokens": [ids]}. Ids are checked against vocab_size.
std::vector<int32_t> parse_detokenize_request(std::string_view body, int64_t vocab_size);

// POST /apply-template: {"messages", "tools", "add_generation_prompt" (default true), "chat_template_kwargs"}.
struct TemplateRequest {
  nlohmann::ordered_json messages;
  nlohmann::ordered_json tools;
  bool add_generation_prompt = true;
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();
};
TemplateRequest parse_template_request(std::string_view body);

// The body as a JSON object, or ApiError 400 (also when nested deeper than kMaxJsonDepth).
inline constexpr size_t kMaxJsonDepth = 64;
nlohmann::ordered_json parse_json_object(std::string_view body);
// The deepest nesting of arrays and objects in JSON text (strings skipped).
size_t json_nesting_depth(std::string_view text);

// "Bearer KEY" in an Authorization header value matches `key` (compared in
// time independent of where they differ).
bool bearer_matches(std::string_view authorization, std::string_view key);

}  // namespace strata::cli::serve
