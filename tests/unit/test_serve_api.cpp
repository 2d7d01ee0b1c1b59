// strata serve's request parsing: each malformed or unsupported request is a
// 400 with OpenAI's error object naming the parameter; good ones come out as
// the plain struct the engine takes.
#include <gtest/gtest.h>

#include <string>

#include "serve_api.h"

namespace strata::cli::serve {
namespace {

// The ApiError a body raises (status 0 when none).
ApiError error_of(const std::string& body, Endpoint endpoint = Endpoint::chat) {
  try {
    parse_completion_request(body, endpoint);
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "no error");
}

void expect_400(const std::string& body, const std::string& param, const std::string& message_part,
                Endpoint endpoint = Endpoint::chat) {
  const ApiError e = error_of(body, endpoint);
  EXPECT_EQ(e.status(), 400) << body;
  EXPECT_EQ(e.param(), param) << body;
  EXPECT_NE(std::string(e.what()).find(message_part), std::string::npos) << body << " -> " << e.what();
  EXPECT_EQ(e.type(), "invalid_request_error");
}

const std::string kHello = R"("messages": [{"role": "user", "content": "hi"}])";

TEST(ServeApi, ParsesAChatRequest) {
  const CompletionRequest r = parse_completion_request(
      R"({"model": "m", "messages": [{"role": "developer", "content": "be brief"},
          {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
          {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
             "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
          {"role": "tool", "tool_call_id": "call_1", "content": "2"}],
          "max_completion_tokens": 7, "max_tokens": 99, "temperature": 0, "top_p": 0.5, "top_k": -1, "seed": 42,
          "stop": ["\n\n", ""], "stream": true, "stream_options": {"include_usage": true},
          "logprobs": true, "top_logprobs": 3,
          "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
          "chat_template_kwargs": {"enable_thinking": false}, "user": "ignored"})",
      Endpoint::chat);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0]["role"], "system");  // developer is the template's system
  EXPECT_EQ(r.messages[1]["content"], "a\nb");
  EXPECT_TRUE(r.messages[2]["content"].is_null());
  EXPECT_EQ(r.messages[2]["tool_calls"][0]["function"]["arguments"]["x"], 1);  // parsed for |tojson
  EXPECT_EQ(r.messages[3]["tool_call_id"], "call_1");
  EXPECT_EQ(r.max_tokens, 7);  // max_completion_tokens wins
  EXPECT_EQ(r.temperature, 0.0);
  EXPECT_EQ(r.top_p, 0.5);
  EXPECT_EQ(r.top_k, 0);
  EXPECT_EQ(r.seed, 42u);
  EXPECT_EQ(r.stop, std::vector<std::string>{"\n\n"});
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_TRUE(r.tools.is_array());
  EXPECT_TRUE(r.parse_tool_calls);
  EXPECT_EQ(r.template_kwargs["enable_thinking"], false);
}

TEST(ServeApi, ParsesCompletionPrompts) {
  EXPECT_EQ(parse_completion_request(R"({"prompt": "Once"})", Endpoint::completions).prompt, "Once");
  EXPECT_EQ(parse_completion_request(R"({"prompt": ["Once"]})", Endpoint::completions).prompt, "Once");
  const CompletionRequest ids = parse_completion_request(R"({"prompt": [1, 403], "logprobs": 2})", Endpoint::completions);
  EXPECT_TRUE(ids.prompt_is_ids);
  EXPECT_EQ(ids.prompt_ids, (std::vector<int32_t>{1, 403}));
  EXPECT_TRUE(ids.logprobs);
  EXPECT_EQ(ids.top_logprobs, 2);
  EXPECT_EQ(parse_completion_request(R"({"prompt": [[5, 6]]})", Endpoint::completions).prompt_ids,
            (std::vector<int32_t>{5, 6}));
  // Absent means absent: the server fills the model's defaults.
  const CompletionRequest bare = parse_completion_request(R"({"prompt": "x", "temperature": null})", Endpoint::completions);
  EXPECT_FALSE(bare.max_tokens);
  EXPECT_FALSE(bare.temperature);
  EXPECT_FALSE(bare.seed);
}

TEST(ServeApi, MalformedJsonIs400) {
  for (const std::string body : {"{", "not json", "{\"messages\": [}", ""}) {
    const ApiError e = error_of(body);
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_EQ(e.code(), "invalid_json");
    EXPECT_NE(std::string(e.what()).find("could not parse the JSON body"), std::string::npos);
  }
  expect_400("[1, 2]", "body", "expected an object");
  // Deep nesting is refused before anything recurses over it.
  const ApiError deep = error_of(std::string(100000, '['));
  EXPECT_EQ(deep.status(), 400);
  EXPECT_NE(std::string(deep.what()).find("nested 100000 levels"), std::string::npos) << deep.what();
  EXPECT_EQ(json_nesting_depth(R"({"a": "[[[[", "b": [[1]]})"), 3u);
  EXPECT_NO_THROW(parse_completion_request("{" + kHello + R"(, "user": [[[["ok"]]]]})", Endpoint::chat));
}

TEST(ServeApi, WrongTypesAre400) {
  expect_400("{" + kHello + R"(, "max_tokens": "10"})", "max_tokens", "expected an integer, but got a string");
  expect_400("{" + kHello + R"(, "max_tokens": 1.5})", "max_tokens", "expected an integer, but got a decimal");
  expect_400("{" + kHello + R"(, "temperature": "hot"})", "temperature", "expected a number");
  expect_400("{" + kHello + R"(, "stream": "yes"})", "stream", "expected a boolean");
  expect_400("{" + kHello + R"(, "stop": 3})", "stop", "a string or an array of strings");
  expect_400("{" + kHello + R"(, "stop": ["a", 1]})", "stop[1]", "expected a string");
  expect_400("{" + kHello + R"(, "seed": "1"})", "seed", "expected an integer");
  expect_400("{" + kHello + R"(, "logprobs": 1})", "logprobs", "expected a boolean");
  expect_400("{" + kHello + R"(, "stream_options": true})", "stream_options", "expected an object");
  expect_400("{" + kHello + R"(, "tools": {}})", "tools", "expected an array");
  expect_400("{" + kHello + R"(, "tools": [{"type": "function", "function": {"name": 3}}]})", "tools[0].function.name",
             "expected a string");
  expect_400(R"({"messages": "hi"})", "messages", "expected an array");
  expect_400(R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content",
             "a string or an array of content parts");
  expect_400(R"({"messages": [{"role": 1, "content": "x"}]})", "messages[0].role", "expected a string");
  expect_400(R"({"prompt": 5})", "prompt", "expected a string, an array", Endpoint::completions);
  expect_400(R"({"prompt": [1, "a"]})", "prompt[1]", "expected an integer", Endpoint::completions);
  expect_400(R"({"prompt": "x", "logprobs": true})", "logprobs", "expected an integer", Endpoint::completions);
}

TEST(ServeApi, ValuesOutOfRangeAre400) {
  expect_400("{" + kHello + R"(, "max_tokens": 0})", "max_tokens", "between 1 and");
  expect_400("{" + kHello + R"(, "temperature": 3})", "temperature", "between 0 and 2");
  expect_400("{" + kHello + R"(, "top_p": 1.5})", "top_p", "between 0 and 1");
  expect_400("{" + kHello + R"(, "top_logprobs": 30, "logprobs": true})", "top_logprobs", "between 0 and 20");
  expect_400("{" + kHello + R"(, "top_logprobs": 2})", "top_logprobs", "needs logprobs");
  expect_400("{" + kHello + R"(, "max_tokens": 99999999999999999999})", "max_tokens", "");
  expect_400(R"({"prompt": "x", "logprobs": 6})", "logprobs", "between 0 and 5", Endpoint::completions);
  expect_400(R"({"prompt": [-1]})", "prompt[0]", "token ids", Endpoint::completions);
}

TEST(ServeApi, UnknownRolesAndMissingFieldsAre400) {
  expect_400(R"({"messages": [{"role": "wizard", "content": "x"}]})", "messages[0].role",
             "Invalid value: 'wizard'. Supported values are");
  expect_400(R"({"messages": [{"content": "x"}]})", "messages[0].role", "Missing required parameter");
  expect_400(R"({"messages": [{"role": "user"}]})", "messages[0].content", "Missing required parameter");
  expect_400(R"({"messages": []})", "messages", "empty array");
  expect_400(R"({"model": "m"})", "messages", "Missing required parameter: 'messages'");
  expect_400(R"({"model": "m"})", "prompt", "Missing required parameter: 'prompt'", Endpoint::completions);
  expect_400(R"({"messages": [{"role": "user", "content": "x", "tool_calls": []}]})", "messages[0].tool_calls",
             "only assistant messages");
  expect_400(R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})",
             "messages[0].content[0].type", "text only");
}

TEST(ServeApi, UnimplementedFeaturesAreRefusedNotIgnored) {
  expect_400("{" + kHello + R"(, "n": 2})", "n", "n must be 1");
  expect_400("{" + kHello + R"(, "presence_penalty": 0.5})", "presence_penalty", "not supported");
  expect_400("{" + kHello + R"(, "logit_bias": {"1": 5}})", "logit_bias", "not supported");
  expect_400("{" + kHello + R"(, "response_format": {"type": "json_object"}})", "response_format", "not supported");
  expect_400("{" + kHello + R"(, "tool_choice": "required"})", "tool_choice", "cannot force");
  expect_400(R"({"prompt": "x", "echo": true})", "echo", "not supported", Endpoint::completions);
  expect_400(R"({"prompt": ["a", "b"]})", "prompt", "One prompt per request", Endpoint::completions);
  // Their neutral values are fine.
  EXPECT_NO_THROW(parse_completion_request(
      "{" + kHello + R"(, "n": 1, "presence_penalty": 0, "logit_bias": {}, "response_format": {"type": "text"},
                          "tool_choice": "auto"})",
      Endpoint::chat));
  EXPECT_FALSE(parse_completion_request("{" + kHello + R"(, "tool_choice": "none"})", Endpoint::chat).parse_tool_calls);
}

TEST(ServeApi, ErrorBodyIsOpenAIs) {
  const nlohmann::json body = error_body(ApiError(400, "bad", "max_tokens", "invalid_type"));
  EXPECT_EQ(body, nlohmann::json::parse(R"({"error": {"message": "bad", "type": "invalid_request_error",
                                                       "param": "max_tokens", "code": "invalid_type"}})"));
  const nlohmann::json bare = error_body(ApiError(500, "boom"));
  EXPECT_EQ(bare["error"]["type"], "server_error");
  EXPECT_TRUE(bare["error"]["param"].is_null());
  EXPECT_TRUE(bare["error"]["code"].is_null());
}

TEST(ServeApi, TokenizeDetokenizeAndTemplateRequests) {
  EXPECT_EQ(parse_tokenize_request(R"({"prompt": "hi"})").text, "hi");
  EXPECT_EQ(parse_tokenize_request(R"({"content": "hi", "add_special_tokens": false})").add_special, false);
  EXPECT_THROW(parse_tokenize_request(R"({"prompt": 1})"), ApiError);
  EXPECT_EQ(parse_detokenize_request(R"({"tokens": [1, 2]})", 10), (std::vector<int32_t>{1, 2}));
  try {
    parse_detokenize_request(R"({"tokens": [1, 12]})", 10);
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param(), "tokens[1]");
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos);
  }
  const TemplateRequest t = parse_template_request(R"({"messages": [{"role": "user", "content": "x"}],
                                                       "add_generation_prompt": false})");
  EXPECT_FALSE(t.add_generation_prompt);
  EXPECT_TRUE(t.tools.is_null());
  EXPECT_THROW(parse_template_request(R"({"messages": [{"role": "robot", "content": "x"}]})"), ApiError);
}

TEST(ServeApi, BearerKey) {
  EXPECT_TRUE(bearer_matches("Bearer sekrit", "sekrit"));
  EXPECT_TRUE(bearer_matches("bearer  sekrit ", "sekrit"));
  EXPECT_FALSE(bearer_matches("Bearer sekrit2", "sekrit"));
  EXPECT_FALSE(bearer_matches("Bearer sekri", "sekrit"));
  EXPECT_FALSE(bearer_matches("Basic sekrit", "sekrit"));
  EXPECT_FALSE(bearer_matches("", "sekrit"));
  EXPECT_FALSE(bearer_matches("Bearer ", ""));
}

}  // namespace
}  // namespace strata::cli::serve
