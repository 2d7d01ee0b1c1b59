// Chat templates against transformers 4.51.3's apply_chat_template renders
// (fixtures/chat_templates: 45 real templates on 9 conversations, rendered
// with jinja2 3.1.2, strftime_now pinned to 2026-07-26 09:15:00). Every case
// must render byte for byte, or fail with the exception transformers raised.
// Also `strata template`, the command that renders one case file.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "strata/chat_template.h"
#include "strata/error.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

fs::path chat_dir() { return test::fixtures_dir() / "chat_templates"; }

// The developer set's templates, named here: tests never walk the folder.
const std::vector<std::string>& template_names() {
  static const std::vector<std::string> names{
      "Apertus-8B-Instruct",
      "Bielik-11B-v3.0-Instruct",
      "ByteDance-Seed-OSS",
      "Cohere2MoE",
      "CohereForAI-c4ai-command-r7b-12-2024-tool_use",
      "GLM-4.6",
      "GigaChat3-10B-A1.8B",
      "GigaChat3.1-10B-A1.8B",
      "HuggingFaceTB-SmolLM3-3B",
      "Kimi-K2-Instruct",
      "LFM2-8B-A1B",
      "LFM2.5-Instruct",
      "MiMo-VL",
      "MiniMax-M2",
      "Mistral-Small-3.2-24B-Instruct-2506",
      "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
      "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
      "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
      "Qwen-QwQ-32B",
      "Qwen-Qwen2.5-7B-Instruct",
      "Qwen-Qwen3-0.6B",
      "Qwen3-Coder",
      "StepFun3.5-Flash",
      "deepseek-ai-DeepSeek-R1-Distill-Llama-8B",
      "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
      "deepseek-ai-DeepSeek-V3.1",
      "deepseek-ai-DeepSeek-V4",
      "deepseek-ai-DeepSeek-V4-Flash-0731",
      "fireworks-ai-llama-3-firefunction-v2",
      "google-gemma-4-31B-it",
      "google-gemma-4-31B-it-interleaved",
      "ibm-granite-granite-4.0",
      "ibm-granite-granite-4.1",
      "llama-cpp-deepseek-r1",
      "llama-cpp-rwkv-world",
      "meetkai-functionary-medium-v3.1",
      "meta-llama-Llama-3.1-8B-Instruct",
      "meta-llama-Llama-3.3-70B-Instruct",
      "mistralai-Ministral-3-14B-Reasoning-2512",
      "moonshotai-Kimi-K2",
      "openai-gpt-oss-120b",
      "poolside-Laguna-XS-2.1",
      "poolside-Laguna-XS.2",
      "unsloth-Apriel-1.5",
      "unsloth-mistral-Devstral-Small-2507",
  };
  return names;
}

// cases.json, parsed once with its objects' key order kept (tojson and
// dict iteration print keys in that order).
const ojson& all_cases() {
  static const ojson cases = [] {
    const fs::path path = chat_dir() / "cases.json";
    return fs::exists(path) ? ojson::parse(test::read_file(path)) : ojson::array();
  }();
  return cases;
}

#define STRATA_REQUIRE_CHAT_TEMPLATE_FIXTURES()                                                              \
  do {                                                                                                       \
    STRATA_REQUIRE_FIXTURES();                                                                               \
    if (!fs::exists(chat_dir() / "cases.json"))                                                              \
      STRATA_SKIP_OR_FAIL_("STRATA_REQUIRE_FIXTURES", "chat template fixtures not found at " << chat_dir()); \
  } while (0)

// The clock the goldens were rendered with.
RenderOptions pinned_clock() {
  RenderOptions options;
  options.now = test::chat_template_golden_time;
  return options;
}

// One case: the render equals `expected`, or the error equals `expected_error`.
void check_case(const ChatTemplate& t, const ojson& c) {
  SCOPED_TRACE(c.at("template").get<std::string>() + " / " + c.at("case").get<std::string>());
  std::string rendered, error;
  try {
    rendered = t.apply(c.at("messages"), c.at("tools"), c.at("add_generation_prompt").get<bool>(), c.at("kwargs"),
                       pinned_clock());
  } catch (const Error& e) {
    error = e.message();
  }
  if (c.at("expected").is_null()) {
    const std::string want = c.at("expected_error").get<std::string>();
    ASSERT_FALSE(error.empty()) << "rendered instead of failing with " << want << ":\n" << rendered;
    EXPECT_EQ(error.substr(0, error.find(':')), want.substr(0, want.find(':'))) << error;
    EXPECT_EQ(error, want);
  } else {
    ASSERT_TRUE(error.empty()) << error;
    EXPECT_EQ(rendered, c.at("expected").get<std::string>());
  }
}

ChatTemplate load_template(const std::string& file) {
  return ChatTemplate::parse(test::read_file(chat_dir() / "templates" / file));
}

class ChatTemplateConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateConformance, RendersEveryConversationAsTransformersDoes) {
  STRATA_REQUIRE_CHAT_TEMPLATE_FIXTURES();
  const std::string file = GetParam() + ".jinja";
  ASSERT_TRUE(fs::exists(chat_dir() / "templates" / file)) << file;
  const ChatTemplate t = load_template(file);
  int checked = 0;
  for (const ojson& c : all_cases()) {
    if (c.at("template") != file) continue;
    check_case(t, c);
    ++checked;
  }
  EXPECT_GT(checked, 0) << "no case renders " << file;
}

INSTANTIATE_TEST_SUITE_P(Templates, ChatTemplateConformance, ::testing::ValuesIn(template_names()), test::ParamName());

// Every case in the file, whichever template it names, so that a fixture set
// with other templates (the held-out one) is checked in full.
TEST(ChatTemplateCases, EveryCaseInTheFile) {
  STRATA_REQUIRE_CHAT_TEMPLATE_FIXTURES();
  ASSERT_GT(all_cases().size(), 0u);
  std::map<std::string, ChatTemplate> templates;
  for (const ojson& c : all_cases()) {
    const std::string file = c.at("template").get<std::string>();
    if (!templates.contains(file)) templates.emplace(file, load_template(file));
    check_case(templates.at(file), c);
  }
}

// --- strata template ---------------------------------------------------------

const ojson& find_case(const std::string& template_name, const std::string& case_name) {
  for (const ojson& c : all_cases())
    if (c.at("template") == template_name + ".jinja" && c.at("case") == case_name) return c;
  static const ojson none;
  ADD_FAILURE() << "no case " << template_name << " / " << case_name;
  return none;
}

// Writes the case file `strata template --input` reads: a cases.json entry.
fs::path write_case(const test::TempDir& dir, const ojson& c, const std::string& name = "case.json") {
  const fs::path path = dir.path() / name;
  std::ofstream(path) << c.dump();
  return path;
}

std::string quoted(const fs::path& p) { return std::string("'").append(p.string()).append("'"); }

TEST(ChatTemplateCli, RendersACaseFileExactly) {
  STRATA_REQUIRE_CHAT_TEMPLATE_FIXTURES();
  test::TempDir dir;
  for (const auto& [name, case_name] : std::vector<std::pair<std::string, std::string>>{
           {"Qwen-Qwen2.5-7B-Instruct", "tools"}, {"Mistral-Small-3.2-24B-Instruct-2506", "special_chars"}}) {
    SCOPED_TRACE(name);
    const ojson& c = find_case(name, case_name);
    const test::CliResult r = test::run_cli("template -t " + quoted(chat_dir() / "templates" / (name + ".jinja")) +
                                            " --input " + quoted(write_case(dir, c)) + " --now '2026-07-26 09:15:00'");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.out, c.at("expected").get<std::string>());
  }
}

TEST(ChatTemplateCli, TemplateErrorIsOneLineAndExitOne) {
  STRATA_REQUIRE_CHAT_TEMPLATE_FIXTURES();
  test::TempDir dir;
  const std::string name = "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use";
  const ojson& c = find_case(name, "user_single");
  const test::CliResult r = test::run_cli("template -t " + quoted(chat_dir() / "templates" / (name + ".jinja")) +
                                          " --input " + quoted(write_case(dir, c)));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(r.err.starts_with("strata: error: " + c.at("expected_error").get<std::string>() + " (template line "))
      << r.err;
}

// A model folder with named templates: "tool_use" when the request has
// tools, "default" otherwise; its special tokens are passed too.
TEST(ChatTemplateCli, ModelFolderPicksTheNamedTemplate) {
  STRATA_REQUIRE_CHAT_TEMPLATE_FIXTURES();
  test::TempDir dir;
  const std::string tool_use = "NousResearch-Hermes-3-Llama-3.1-8B-tool_use";
  const std::string dflt = "Qwen-Qwen2.5-7B-Instruct";
  ojson config = ojson::object();
  config["bos_token"] = "<|begin_of_text|>";
  config["chat_template"] = ojson::array(
      {ojson{{"name", "default"}, {"template", test::read_file(chat_dir() / "templates" / (dflt + ".jinja"))}},
       ojson{{"name", "tool_use"}, {"template", test::read_file(chat_dir() / "templates" / (tool_use + ".jinja"))}}});
  fs::create_directories(dir.path() / "model");
  std::ofstream(dir.path() / "model" / "tokenizer_config.json") << config.dump();

  ojson with_tools = find_case(tool_use, "tools");
  with_tools["kwargs"].erase("bos_token");  // comes from the model folder now
  const test::CliResult r1 = test::run_cli("template -m " + quoted(dir.path() / "model") + " --input " +
                                           quoted(write_case(dir, with_tools, "tools.json")));
  EXPECT_EQ(r1.exit_code, 0) << r1.err;
  EXPECT_EQ(r1.out, with_tools.at("expected").get<std::string>());

  const ojson& plain = find_case(dflt, "multi_turn");
  const test::CliResult r2 = test::run_cli("template -m " + quoted(dir.path() / "model") + " --input " +
                                           quoted(write_case(dir, plain, "plain.json")));
  EXPECT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_EQ(r2.out, plain.at("expected").get<std::string>());
}

TEST(ChatTemplateCli, BadInvocationsAreOneLineErrors) {
  test::TempDir dir;
  const fs::path tpl = dir.path() / "t.jinja";
  std::ofstream(tpl) << "{% for m in messages %}{{ m.content }}{% endfor %}";
  const fs::path bad_tpl = dir.path() / "bad.jinja";
  std::ofstream(bad_tpl) << "line 1\n{% if %}";
  const fs::path input = dir.path() / "in.json";
  std::ofstream(input) << R"({"messages": [{"role": "user", "content": "x"}]})";
  const fs::path not_json = dir.path() / "bad.json";
  std::ofstream(not_json) << "{messages";

  const test::CliResult ok = test::run_cli("template -t " + quoted(tpl) + " --input " + quoted(input));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "x");

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"template -t " + quoted(tpl) + " -m " + quoted(dir.path()) + " --input " + quoted(input),
       "give exactly one of -m DIR and -t FILE"},
      {"template --input " + quoted(input), "give exactly one of -m DIR and -t FILE"},
      {"template -t " + quoted(bad_tpl) + " --input " + quoted(input), "TemplateSyntaxError: Expected an expression"},
      {"template -t " + quoted(tpl) + " --input " + quoted(not_json), "not valid JSON"},
      {"template -t " + quoted(tpl) + " --input " + quoted(dir.path() / "missing.json"), "missing.json"},
      {"template -m " + quoted(dir.path()) + " --input " + quoted(input), "no chat template"},
      {"template -t " + quoted(tpl) + " --input " + quoted(input) + " --now yesterday", "--now must be"},
  };
  for (const auto& [args, phrase] : cases) {
    SCOPED_TRACE(args);
    const test::CliResult r = test::run_cli(args);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(phrase), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace strata
