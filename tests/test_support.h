// Helpers shared by the tests: where the golden fixtures are, temp dirs.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "strata/model.h"

namespace strata::test {

// The fixtures folder: $STRATA_FIXTURES, else the repository's tests/fixtures
// (a copy of ../shared/fixtures that scripts/sync-fixtures.sh keeps equal).
inline std::filesystem::path fixtures_dir() {
  if (const char* env = std::getenv("STRATA_FIXTURES"); env && *env) return env;
  return STRATA_DEFAULT_FIXTURES;
}

// The built `strata` command, for tests that check exit codes and messages.
inline std::filesystem::path cli_path() { return STRATA_CLI_PATH; }

// Whether the environment variable `name` is "1": how a run says that a skip
// would hide something (STRATA_REQUIRE_FIXTURES, STRATA_EXPECT_GPU).
inline bool env_flag(const char* name) {
  const char* value = std::getenv(name);
  return value && std::string(value) == "1";
}

// Default model options with `threads` workers. GPUs are used only inside
// a ScopedGpus (the suite's expectations are the CPU's; see test_support.cpp).
inline ModelOptions with_threads(int threads) {
  ModelOptions options;
  options.threads = threads;
  options.gpus = !env_flag("STRATA_NO_GPU");
  return options;
}

// The local time fixtures/chat_templates' renders were made at (strftime_now
// pinned to 2026-07-26 09:15:00, a Sunday), as a chat template's clock.
inline std::tm chat_template_golden_time() {
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 6;
  tm.tm_mday = 26;
  tm.tm_hour = 9;
  tm.tm_min = 15;
  tm.tm_wday = 0;
  tm.tm_yday = 206;
  return tm;
}

// The model folders under fixtures/models that hold transformers references.
// Tests name the fixtures they support here and never walk the folder: a new
// fixture (another family, a quantized format) must not fail the old tests.
inline const std::vector<std::string>& float_fixture_model_names() {
  static const std::vector<std::string> names{
      "stories260k",       "stories260k-sharded", "llama-tiny-random",  "llama-tiny-random-bf16",
      "qwen2-tiny-random", "qwen3-tiny-random",   "gemma-tiny-random",  "gemma2-tiny-random",
      "phi3-tiny-random",  "gpt2-tiny-random",    "mixtral-tiny-random", "qwen2moe-tiny-random",
      "qwen3moe-tiny-random"};
  return names;
}
// Pre-quantized checkpoints (GPTQ, AWQ, FP8, compressed-tensors).
inline const std::vector<std::string>& quantized_fixture_model_names() {
  static const std::vector<std::string> names{"llama-gptq-4bit-g32", "llama-gptq-8bit-g32", "llama-awq-4bit-g32",
                                              "llama-fp8-block", "llama-ct-w4a16-g32"};
  return names;
}
// All of them.
inline const std::vector<std::string>& fixture_model_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> all = float_fixture_model_names();
    all.insert(all.end(), quantized_fixture_model_names().begin(), quantized_fixture_model_names().end());
    return all;
  }();
  return names;
}

// A fixture model's block modules (from its family's description), so a
// test builds device maps in any family's names.
struct FixtureModules {
  std::vector<std::string> embeddings;  // token (and learned position) embeddings
  std::vector<std::string> layers;
  std::string final_norm, head;
  bool tied = false;  // the head reads the token embedding
};
FixtureModules fixture_modules(const std::filesystem::path& model_dir);

// Names parameterized tests after a string parameter, with every character
// gtest does not allow in a name turned into '_'.
struct ParamName {
  std::string operator()(const ::testing::TestParamInfo<std::string>& param_info) const {
    std::string out;
    for (const char c : param_info.param) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return out;
  }
};

// A whole file as bytes, and a JSON file parsed.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
inline nlohmann::json read_json(const std::filesystem::path& path) { return nlohmann::json::parse(read_file(path)); }

// Runs the `strata` command with `args` (a shell fragment), capturing its
// output. A command that did not run to an exit of its own (killed by a
// signal, or not found or not executable: exit 127 or 126) fails the calling
// test here, whatever exit code the test expects: a test that wants an error
// must not pass on a crash or a missing binary.
struct CliResult {
  int exit_code = -1;
  bool signaled = false;
  std::string out;  // stdout
  std::string err;  // stderr
};
CliResult run_cli(const std::string& args);
// The same with environment variables set for the command ("STRATA_KERNELS=avx2").
CliResult run_cli_with_env(const std::string& env, const std::string& args);

// Loading dir fails with `phrase` in the message (naming `tensor`, when
// given) before a single weight was placed, under `device_map` (empty: the
// automatic one), and `strata generate` says it on one line with exit 1.
void expect_load_error(const std::filesystem::path& dir, const std::string& phrase, const std::string& tensor = {},
                       const std::string& device_map = {});

// A fixture model's reference.safetensors: input_ids [rows, tokens] and
// transformers' logits [rows, tokens, vocab].
struct Reference {
  std::vector<int32_t> input_ids;
  int64_t rows = 0, tokens = 0, vocab = 0;
  std::vector<float> logits;
};
Reference read_reference(const std::filesystem::path& model_dir);

// Options for running a fixture's reference input under `device_map`: two
// threads, a context and batch that hold it, every position's logits.
ModelOptions reference_options(const Reference& ref, const std::string& device_map, const std::string& sim_devices,
                               const std::filesystem::path& offload_folder);

// What a model gives for a fixture's reference input: every position's
// logits, 6 greedy ids after its first two tokens, the expert counters and
// the devices' reports.
struct ReferenceRun {
  std::vector<float> logits;
  std::vector<int32_t> greedy;
  ExpertStats experts;
  std::vector<DeviceReport> devices;
};
ReferenceRun run_reference(const std::filesystem::path& model_dir, const ModelOptions& options, const Reference& ref);

// A run under some device map against a reference run of the same model:
// logits bit for bit, greedy ids exact, and every device's peak within its
// budget and within the plan's bill for it (DESIGN.md's invariants).
void expect_same_run(const std::vector<float>& logits, const std::vector<int32_t>& greedy,
                     const std::vector<DeviceReport>& devices, const std::vector<float>& want_logits,
                     const std::vector<int32_t>& want_greedy, const std::string& what);

// The tests run with GPUs hidden (STRATA_NO_GPU=1); a GPU test makes them
// visible to the models it loads for its own scope.
class ScopedGpus {
 public:
  ScopedGpus();
  ~ScopedGpus();
  ScopedGpus(const ScopedGpus&) = delete;
  ScopedGpus& operator=(const ScopedGpus&) = delete;
};

// A fresh, empty directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace strata::test

// Skips the current test with `message` (a stream: "a " << b), or fails it
// instead when the environment variable `flag` is 1, where a skip would hide
// what the run is meant to check.
#define STRATA_SKIP_OR_FAIL_(flag, message)                   \
  do {                                                        \
    if (::strata::test::env_flag(flag)) {                     \
      FAIL() << message << " (" flag "=1 forbids this skip)"; \
    } else {                                                  \
      GTEST_SKIP() << message;                                \
    }                                                         \
  } while (0)

// Skips the current test, loudly, when the fixtures are not there; fails it
// under STRATA_REQUIRE_FIXTURES=1 (CI sets it).
#define STRATA_REQUIRE_FIXTURES()                                                                                   \
  do {                                                                                                              \
    if (!std::filesystem::exists(::strata::test::fixtures_dir() / "README.md"))                                     \
      STRATA_SKIP_OR_FAIL_("STRATA_REQUIRE_FIXTURES",                                                               \
                           "fixtures not found at " << ::strata::test::fixtures_dir() << " (set STRATA_FIXTURES)"); \
  } while (0)

// A GPU test's skip where no GPU is usable, with `why` (a stream); fails
// under STRATA_EXPECT_GPU=1 (bench/gpu_offload.sh sets it on a GPU machine).
#define STRATA_SKIP_WITHOUT_GPU(why) STRATA_SKIP_OR_FAIL_("STRATA_EXPECT_GPU", why)
