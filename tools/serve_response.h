// strata serve: the response bodies, in OpenAI's shapes (chat.completion,
// chat.completion.chunk, text_completion), token log-probabilities, and
// server-sent-event framing. Pure functions of their inputs.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "serve_api.h"
#include "serve_tools.h"

namespace strata::cli::serve {

// A sampled token's log-probability under the model (log-softmax of the
// logits, before temperature and truncation, as OpenAI reports them) and the
// most likely alternatives, best first.
struct TokenLogprob {
  std::string token;
  double logprob = 0;
  std::vector<std::pair<std::string, double>> top;
};

// `piece` gives a token's text.
TokenLogprob token_logprob(std::span<const float> logits, int32_t token, int top,
                           const std::function<std::string(int32_t)>& piece);

// Identifies one response: "chatcmpl-..." or "cmpl-...", the model name, the Unix time.
struct ResponseMeta {
  std::string id;
  std::string model;
  int64_t created = 0;
};

// A finished choice and what it cost.
struct Outcome {
  std::string text;                // all the content (non-streamed responses)
  std::vector<ToolCall> tool_calls;  // ids assigned
  std::string finish_reason;       // "stop", "length", "tool_calls"
  std::vector<TokenLogprob> logprobs;
  bool with_logprobs = false;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  nlohmann::json strata;  // step time and bytes from each tier (see serve_engine.h)
};

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);
// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}.
nlohmann::json chat_logprobs_json(std::span<const TokenLogprob> logprobs);
// Completions (legacy): {"tokens", "token_logprobs", "top_logprobs", "text_offset"},
// offsets counted from `offset`.
nlohmann::json completion_logprobs_json(std::span<const TokenLogprob> logprobs, size_t offset);
// OpenAI's tool_calls array; `with_index` adds the "index" streamed deltas carry.
nlohmann::json tool_calls_json(std::span<const ToolCall> calls, bool with_index);

nlohmann::json chat_response(const ResponseMeta& meta, const Outcome& outcome);
nlohmann::json completion_response(const ResponseMeta& meta, const Outcome& outcome);

// One streamed chunk with one choice. `logprobs` and `finish_reason` may be null.
nlohmann::json chat_chunk(const ResponseMeta& meta, nlohmann::json delta, nlohmann::json logprobs,
                          nlohmann::json finish_reason);
nlohmann::json completion_chunk(const ResponseMeta& meta, const std::string& text, nlohmann::json logprobs,
                                nlohmann::json finish_reason);
// The chunk with no choices that carries usage (stream_options.include_usage).
nlohmann::json usage_chunk(const ResponseMeta& meta, Endpoint endpoint, const Outcome& outcome);

// JSON text; invalid UTF-8 (which the decoder never produces) becomes U+FFFD rather than an exception.
std::string dump(const nlohmann::json& value);
// "data: <one line of JSON>\n\n"
std::string sse_event(const nlohmann::json& data);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

}  // namespace strata::cli::serve
