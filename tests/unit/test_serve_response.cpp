// strata serve's responses: server-sent-event framing, OpenAI's response and
// chunk shapes, and log-probabilities computed from logits.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "serve_response.h"

namespace strata::cli::serve {
namespace {

using json = nlohmann::json;

TEST(ServeSse, OneDataLinePerEvent) {
  const std::string event = sse_event({{"text", "line one\nline two\r\n\n"}, {"n", 1}});
  EXPECT_EQ(event.substr(0, 6), "data: ");
  EXPECT_EQ(event.substr(event.size() - 2), "\n\n");
  // The only newlines are the event's own end: newlines in the data are escaped.
  EXPECT_EQ(event.find('\n'), event.size() - 2);
  EXPECT_EQ(event.find('\r'), std::string::npos);
  EXPECT_EQ(json::parse(event.substr(6)), json({{"text", "line one\nline two\r\n\n"}, {"n", 1}}));
  EXPECT_EQ(std::string(kSseDone), "data: [DONE]\n\n");
}

TEST(ServeSse, InvalidUtf8DoesNotThrow) {
  const std::string event = sse_event({{"text", std::string("a\xC3")}});
  EXPECT_NE(event.find("a\xEF\xBF\xBD"), std::string::npos);
}

TEST(ServeResponse, ChatResponseShape) {
  Outcome o;
  o.text = "Hi.";
  o.finish_reason = "stop";
  o.prompt_tokens = 5;
  o.completion_tokens = 3;
  o.strata = {{"step_seconds", 0.01}};
  const json r = chat_response({"chatcmpl-1", "m", 1700000000}, o);
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"], json({{"role", "assistant"}, {"content", "Hi."}}));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(r["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(r["usage"], json({{"prompt_tokens", 5}, {"completion_tokens", 3}, {"total_tokens", 8}}));
  EXPECT_EQ(r["strata"]["step_seconds"], 0.01);

  o.text.clear();
  o.tool_calls = {{"call_x", "f", R"({"a":1})"}};
  o.finish_reason = "tool_calls";
  const json t = chat_response({"chatcmpl-2", "m", 0}, o);
  EXPECT_TRUE(t["choices"][0]["message"]["content"].is_null());
  EXPECT_EQ(t["choices"][0]["message"]["tool_calls"][0],
            json({{"id", "call_x"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", R"({"a":1})"}}}}));
  EXPECT_EQ(tool_calls_json(o.tool_calls, true)[0]["index"], 0);
}

TEST(ServeResponse, CompletionAndChunkShapes) {
  Outcome o;
  o.text = "abc";
  o.finish_reason = "length";
  const json r = completion_response({"cmpl-1", "m", 1}, o);
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["choices"][0]["text"], "abc");
  const json c = chat_chunk({"chatcmpl-1", "m", 1}, {{"content", "x"}}, nullptr, nullptr);
  EXPECT_EQ(c["object"], "chat.completion.chunk");
  EXPECT_EQ(c["choices"][0]["delta"]["content"], "x");
  EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
  const json u = usage_chunk({"cmpl-1", "m", 1}, Endpoint::completions, o);
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["total_tokens"], 0);
}

TEST(ServeResponse, LogprobsAreLogSoftmax) {
  const std::vector<float> logits{1.0f, 3.0f, 2.0f, 3.0f};
  const auto piece = [](int32_t id) {
    std::string text = std::to_string(id);
    return text.insert(0, 1, 't');
  };
  const TokenLogprob lp = token_logprob(logits, 2, 3, piece);
  double norm = 0;
  for (const float x : logits) norm += std::exp(static_cast<double>(x));
  EXPECT_EQ(lp.token, "t2");
  EXPECT_NEAR(lp.logprob, 2.0 - std::log(norm), 1e-12);
  ASSERT_EQ(lp.top.size(), 3u);
  // Best first; equal logits by lower id.
  EXPECT_EQ(lp.top[0].first, "t1");
  EXPECT_EQ(lp.top[1].first, "t3");
  EXPECT_EQ(lp.top[2].first, "t2");
  EXPECT_NEAR(lp.top[0].second, 3.0 - std::log(norm), 1e-12);
  EXPECT_TRUE(token_logprob(logits, 0, 0, piece).top.empty());

  const json chat = chat_logprobs_json(std::vector<TokenLogprob>{lp});
  EXPECT_EQ(chat["content"][0]["token"], "t2");
  EXPECT_EQ(chat["content"][0]["bytes"], json({116, 50}));
  EXPECT_EQ(chat["content"][0]["top_logprobs"].size(), 3u);
  const json legacy = completion_logprobs_json(std::vector<TokenLogprob>{lp, lp}, 10);
  EXPECT_EQ(legacy["tokens"], json({"t2", "t2"}));
  EXPECT_EQ(legacy["text_offset"], json({10, 12}));
  EXPECT_EQ(legacy["top_logprobs"][0].size(), 3u);
}

}  // namespace
}  // namespace strata::cli::serve
