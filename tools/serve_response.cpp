#include "serve_response.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace strata::cli::serve {

using json = nlohmann::json;

TokenLogprob token_logprob(std::span<const float> logits, int32_t token, int top,
                           const std::function<std::string(int32_t)>& piece) {
  // log p_i = x_i - (max + log sum exp(x - max)), summed in double.
  float max = -std::numeric_limits<float>::infinity();
  for (const float x : logits) max = std::max(max, x);
  double sum = 0;
  for (const float x : logits) sum += std::exp(static_cast<double>(x) - static_cast<double>(max));
  const double log_norm = static_cast<double>(max) + std::log(sum);
  auto logprob = [&](size_t i) { return static_cast<double>(logits[i]) - log_norm; };

  TokenLogprob out;
  out.token = piece(token);
  out.logprob = token >= 0 && static_cast<size_t>(token) < logits.size() ? logprob(static_cast<size_t>(token))
                                                                          : -std::numeric_limits<double>::infinity();
  const size_t k = std::min(static_cast<size_t>(std::max(top, 0)), logits.size());
  if (k == 0) return out;
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  // Higher logit first; equal logits by lower id, so the order is reproducible.
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(), [&](int32_t a, int32_t b) {
    return logits[static_cast<size_t>(a)] != logits[static_cast<size_t>(b)]
               ? logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)]
               : a < b;
  });
  for (size_t i = 0; i < k; ++i) out.top.emplace_back(piece(ids[i]), logprob(static_cast<size_t>(ids[i])));
  return out;
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {

json utf8_bytes(const std::string& s) {
  json bytes = json::array();
  for (const char c : s) bytes.push_back(static_cast<unsigned char>(c));
  return bytes;
}

// -inf (a token the model gives no chance) is not JSON; OpenAI reports -9999.0 for such tokens.
double finite(double logprob) { return std::isfinite(logprob) ? logprob : -9999.0; }

}  // namespace

json chat_logprobs_json(std::span<const TokenLogprob> logprobs) {
  json content = json::array();
  for (const TokenLogprob& t : logprobs) {
    json top = json::array();
    for (const auto& [token, lp] : t.top)
      top.push_back({{"token", token}, {"logprob", finite(lp)}, {"bytes", utf8_bytes(token)}});
    content.push_back(
        {{"token", t.token}, {"logprob", finite(t.logprob)}, {"bytes", utf8_bytes(t.token)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json completion_logprobs_json(std::span<const TokenLogprob> logprobs, size_t offset) {
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(), offsets = json::array();
  for (const TokenLogprob& t : logprobs) {
    tokens.push_back(t.token);
    token_logprobs.push_back(finite(t.logprob));
    json top = json::object();
    for (const auto& [token, lp] : t.top) top[token] = finite(lp);
    top_logprobs.push_back(top);
    offsets.push_back(offset);
    offset += t.token.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs}, {"text_offset", offsets}};
}

json tool_calls_json(std::span<const ToolCall> calls, bool with_index) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json call{{"id", calls[i].id},
              {"type", "function"},
              {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (with_index) call["index"] = i;
    out.push_back(std::move(call));
  }
  return out;
}

json chat_response(const ResponseMeta& meta, const Outcome& outcome) {
  json message{{"role", "assistant"}, {"content", outcome.text}};
  if (!outcome.tool_calls.empty()) {
    if (outcome.text.empty()) message["content"] = nullptr;
    message["tool_calls"] = tool_calls_json(outcome.tool_calls, false);
  }
  json choice{{"index", 0},
              {"message", std::move(message)},
              {"logprobs", outcome.with_logprobs ? chat_logprobs_json(outcome.logprobs) : json(nullptr)},
              {"finish_reason", outcome.finish_reason}};
  return {{"id", meta.id},
          {"object", "chat.completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", json::array({std::move(choice)})},
          {"usage", usage_json(outcome.prompt_tokens, outcome.completion_tokens)},
          {"strata", outcome.strata}};
}

json completion_response(const ResponseMeta& meta, const Outcome& outcome) {
  json choice{{"index", 0},
              {"text", outcome.text},
              {"logprobs", outcome.with_logprobs ? completion_logprobs_json(outcome.logprobs, 0) : json(nullptr)},
              {"finish_reason", outcome.finish_reason}};
  return {{"id", meta.id},
          {"object", "text_completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", json::array({std::move(choice)})},
          {"usage", usage_json(outcome.prompt_tokens, outcome.completion_tokens)},
          {"strata", outcome.strata}};
}

json chat_chunk(const ResponseMeta& meta, json delta, json logprobs, json finish_reason) {
  json choice{{"index", 0}, {"delta", std::move(delta)}, {"logprobs", std::move(logprobs)},
              {"finish_reason", std::move(finish_reason)}};
  return {{"id", meta.id},
          {"object", "chat.completion.chunk"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", json::array({std::move(choice)})}};
}

json completion_chunk(const ResponseMeta& meta, const std::string& text, json logprobs, json finish_reason) {
  json choice{{"index", 0}, {"text", text}, {"logprobs", std::move(logprobs)}, {"finish_reason", std::move(finish_reason)}};
  return {{"id", meta.id},
          {"object", "text_completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", json::array({std::move(choice)})}};
}

json usage_chunk(const ResponseMeta& meta, Endpoint endpoint, const Outcome& outcome) {
  return {{"id", meta.id},
          {"object", endpoint == Endpoint::chat ? "chat.completion.chunk" : "text_completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", json::array()},
          {"usage", usage_json(outcome.prompt_tokens, outcome.completion_tokens)},
          {"strata", outcome.strata}};
}

std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& data) {
  // Compact JSON escapes every newline, so the event is one data line.
  return "data: " + dump(data) + "\n\n";
}

}  // namespace strata::cli::serve
