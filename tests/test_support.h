// Helpers shared by the tests: where the golden fixtures are, temp dirs.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "strata/model.h"

namespace strata::test {

// Default model options with `threads` workers.
inline ModelOptions with_threads(int threads) {
  ModelOptions options;
  options.threads = threads;
  return options;
}

// The fixtures folder: $STRATA_FIXTURES, else ../shared/fixtures beside the checkout.
inline std::filesystem::path fixtures_dir() {
  if (const char* env = std::getenv("STRATA_FIXTURES"); env && *env) return env;
  return STRATA_DEFAULT_FIXTURES;
}

// The built `strata` command, for tests that check exit codes and messages.
inline std::filesystem::path cli_path() { return STRATA_CLI_PATH; }

// The model folders under fixtures/models that hold transformers references.
inline const std::vector<std::string>& fixture_model_names() {
  static const std::vector<std::string> names{"stories260k", "stories260k-sharded", "llama-tiny-random",
                                              "llama-tiny-random-bf16", "qwen2-tiny-random"};
  return names;
}

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

// Runs the `strata` command with `args` (a shell fragment), capturing its output.
struct CliResult {
  int exit_code = -1;
  bool signaled = false;
  std::string out;  // stdout
  std::string err;  // stderr
};
CliResult run_cli(const std::string& args);

// A fixture model's reference.safetensors: input_ids [rows, tokens] and
// transformers' logits [rows, tokens, vocab].
struct Reference {
  std::vector<int32_t> input_ids;
  int64_t rows = 0, tokens = 0, vocab = 0;
  std::vector<float> logits;
};
Reference read_reference(const std::filesystem::path& model_dir);

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

// Skips the current test, loudly, when the fixtures are not there.
#define STRATA_REQUIRE_FIXTURES()                                                          \
  do {                                                                                     \
    if (!std::filesystem::exists(::strata::test::fixtures_dir() / "README.md"))            \
      GTEST_SKIP() << "fixtures not found at " << ::strata::test::fixtures_dir()           \
                   << " (set STRATA_FIXTURES)";                                            \
  } while (0)
