// Helpers shared by the tests: where the golden fixtures are, temp dirs.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

namespace strata::test {

// The fixtures folder: $STRATA_FIXTURES, else ../shared/fixtures beside the checkout.
inline std::filesystem::path fixtures_dir() {
  if (const char* env = std::getenv("STRATA_FIXTURES"); env && *env) return env;
  return STRATA_DEFAULT_FIXTURES;
}

// The built `strata` command, for tests that check exit codes and messages.
inline std::filesystem::path cli_path() { return STRATA_CLI_PATH; }

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
