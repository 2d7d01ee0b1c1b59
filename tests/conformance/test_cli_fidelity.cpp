// The acceptance checks as a user runs them: through the `strata` command.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "format/safetensors.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using test::read_json;

std::vector<float> read_logits(const fs::path& path) {
  SafetensorsFile file(path);
  for (const auto& t : file.tensors()) {
    if (t.name != "logits") continue;
    std::vector<float> out(static_cast<size_t>(t.numel()));
    std::memcpy(out.data(), file.data(t).data(), out.size() * sizeof(float));
    return out;
  }
  ADD_FAILURE() << "no logits in " << path;
  return {};
}

class CliFixture : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path dir() const { return test::fixtures_dir() / "models" / GetParam(); }
};

TEST_P(CliFixture, LogitsCommandMatchesReference) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir tmp;
  const fs::path out = tmp.path() / "logits.safetensors";
  const auto r = test::run_cli("logits -m " + dir().string() + " --input " + (dir() / "reference.safetensors").string() +
                               " -o " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto got = read_logits(out);
  const auto want = read_logits(dir() / "reference.safetensors");
  ASSERT_EQ(got.size(), want.size());
  double max_diff = 0;
  for (size_t i = 0; i < got.size(); ++i) max_diff = std::max(max_diff, std::abs(double(got[i]) - want[i]));
  EXPECT_LE(max_diff, 1e-4);  // the fixtures README's float32 threshold (reference.json: tolerance)
}

// The same command through a device map that puts layers on two simulated
// accelerators, RAM and disk: the logits file is bit-identical.
TEST_P(CliFixture, LogitsCommandIsBitIdenticalUnderADeviceMap) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir tmp;
  const std::string common = "logits -m " + dir().string() + " --input " + (dir() / "reference.safetensors").string();
  const auto cpu = test::run_cli(common + " -o " + (tmp.path() / "cpu.safetensors").string());
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  const test::FixtureModules m = test::fixture_modules(dir());
  std::string map = R"('{"": "disk", ")" + m.head + R"(": 0, ")" + m.layers.at(0) + R"(": 1, ")" + m.layers.at(1) + R"(": "cpu")";
  for (const std::string& embedding : m.embeddings) map += R"(, ")" + embedding + R"(": 0)";
  map += "}'";
  const auto mapped = test::run_cli(common + " -o " + (tmp.path() / "mapped.safetensors").string() +
                                    " --sim-devices 2x4MiB --offload-folder " + (tmp.path() / "offload").string() +
                                    " --device-map " + map);
  ASSERT_EQ(mapped.exit_code, 0) << mapped.err;
  EXPECT_NE(mapped.err.find("strata: map (user map) sim:0"), std::string::npos) << mapped.err;
  EXPECT_NE(mapped.err.find("peak allocated"), std::string::npos) << mapped.err;
  const auto a = read_logits(tmp.path() / "cpu.safetensors");
  const auto b = read_logits(tmp.path() / "mapped.safetensors");
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

TEST_P(CliFixture, GreedyJsonMatchesReference) {
  STRATA_REQUIRE_FIXTURES();
  const json greedy = read_json(dir() / "reference.json").at("greedy");
  std::string ids;
  // append() rather than chained +: GCC 12 warns falsely on the latter (bug 105329).
  for (const int id : greedy.at("prompt_ids")) {
    if (!ids.empty()) ids.append(",");
    ids.append(std::to_string(id));
  }
  const auto r = test::run_cli("generate -m " + dir().string() + " --prompt-ids " + ids + " -n " +
                               std::to_string(greedy.at("max_new_tokens").get<int>()) + " --temp 0 --json --compute exact");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json out = json::parse(r.out);
  EXPECT_EQ(out.at("new_ids"), greedy.at("new_ids"));
  if (greedy.contains("text")) {
    EXPECT_EQ(out.at("text"), greedy.at("text"));
  }
}

INSTANTIATE_TEST_SUITE_P(Transformers, CliFixture,
                         ::testing::ValuesIn(test::fixture_model_names()), test::ParamName());

TEST(CliStories260k, GreedyFromBosPrintsLlama2cText) {
  STRATA_REQUIRE_FIXTURES();
  const fs::path dir = test::fixtures_dir() / "models" / "stories260k";
  const json ref = read_json(dir / "llama2c_reference.json");
  const auto r = test::run_cli("generate -m " + dir.string() + " --prompt-ids 1 -n 200 --temp 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The text, then one newline that ends the output.
  EXPECT_EQ(r.out, ref.at("text").get<std::string>() + "\n");
}

TEST(CliStories260k, PromptTextStreamsTheReferenceContinuation) {
  STRATA_REQUIRE_FIXTURES();
  const fs::path dir = test::fixtures_dir() / "models" / "stories260k";
  const json greedy = read_json(dir / "reference.json").at("greedy");
  const auto tokens = test::run_cli("tokenize -m " + dir.string() + " -p 'Once upon a time' --add-special");
  ASSERT_EQ(tokens.exit_code, 0) << tokens.err;
  EXPECT_EQ(json::parse(tokens.out), greedy.at("prompt_ids"));
  const auto r = test::run_cli("generate -m " + dir.string() + " -p 'Once upon a time' -n 32 --temp 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, greedy.at("text").get<std::string>() + "\n");
  EXPECT_NE(r.err.find("tok/s"), std::string::npos) << r.err;
}

TEST(CliStories260k, SampledGenerationIsReproducibleWithASeed) {
  STRATA_REQUIRE_FIXTURES();
  const fs::path dir = test::fixtures_dir() / "models" / "stories260k";
  const std::string args = "generate -m " + dir.string() + " -p 'Once upon a time' -n 40 --temp 0.9 --top-p 0.9 --seed 7 --json";
  const auto a = test::run_cli(args);
  const auto b = test::run_cli(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  const auto c = test::run_cli("generate -m " + dir.string() + " -p 'Once upon a time' -n 40 --temp 0.9 --top-p 0.9 --seed 8 --json");
  EXPECT_NE(json::parse(a.out).at("new_ids"), json::parse(c.out).at("new_ids"));
}

TEST(CliStories260k, PromptFromStandardInput) {
  STRATA_REQUIRE_FIXTURES();
  const fs::path dir = test::fixtures_dir() / "models" / "stories260k";
  const auto r = test::run_cli("generate -m " + dir.string() + " -n 4 --temp 0 --json < /dev/null");
  // Empty stdin still gives BOS, so generation runs from BOS.
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("prompt_ids"), json::array({1}));
}

// Decoded text is bytes end to end: GPT-2's byte tokens for NUL and 0x01
// (Ā, ā) come out as those bytes, not as the end of a C string.
TEST(CliTokenize, DecodeWritesNulBytes) {
  STRATA_REQUIRE_FIXTURES();
  const fs::path dir = test::fixtures_dir() / "tokenizers" / "gpt2";
  const auto encoded = test::run_cli("tokenize -m " + dir.string() + " -p 'ctrl:'");
  ASSERT_EQ(encoded.exit_code, 0) << encoded.err;
  std::string ids = json::parse(encoded.out).dump();
  ids = ids.substr(1, ids.size() - 2) + ",188,189";
  const auto decoded = test::run_cli("tokenize -m " + dir.string() + " --decode " + ids);
  ASSERT_EQ(decoded.exit_code, 0) << decoded.err;
  EXPECT_EQ(decoded.out, std::string("ctrl:\0\x01\n", 8));
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

// --prompts with --batch: prompts of different lengths decoded together give
// each the ids it gets alone, one JSON line per prompt in order.
TEST(CliBatch, PromptsFileGivesWhatEachPromptGivesAlone) {
  STRATA_REQUIRE_FIXTURES();
  const std::string model = (test::fixtures_dir() / "models" / "stories260k").string();
  const std::vector<std::string> prompts{"Once upon a time", "The little dog", "Lily and Tom went to the park"};
  test::TempDir tmp;
  {
    std::ofstream file(tmp.path() / "prompts.txt");
    for (const auto& p : prompts) file << p << "\n\n";  // blank lines are skipped
  }
  const auto batch = test::run_cli("generate -m " + model + " --prompts " + (tmp.path() / "prompts.txt").string() +
                                   " --batch 2 -n 10 --temp 0 --json");
  ASSERT_EQ(batch.exit_code, 0) << batch.err;
  EXPECT_NE(batch.err.find("tok/s for the whole batch"), std::string::npos) << batch.err;
  std::istringstream lines(batch.out);
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::string line;
    ASSERT_TRUE(std::getline(lines, line)) << batch.out;
    const auto row = nlohmann::json::parse(line);
    EXPECT_EQ(row["index"], i);
    const auto alone = test::run_cli("generate -m " + model + " -p '" + prompts[i] + "' -n 10 --temp 0 --json");
    ASSERT_EQ(alone.exit_code, 0) << alone.err;
    EXPECT_EQ(row["new_ids"], nlohmann::json::parse(alone.out)["new_ids"]) << prompts[i];
  }
}

}  // namespace
}  // namespace strata
