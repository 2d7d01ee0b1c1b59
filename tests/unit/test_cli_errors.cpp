// The `strata` command on damaged checkpoints: every case must end with one
// line on stderr that names the problem, a non-zero exit and no crash.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <sys/wait.h>

#include "broken_checkpoints.h"
#include "test_support.h"

namespace strata {
namespace {

struct RunResult {
  int exit_code = -1;
  bool signaled = false;
  std::string output;  // stdout and stderr together
};

RunResult run(const std::string& args) {
  const std::string command = test::cli_path().string() + " " + args + " 2>&1";
  RunResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  result.signaled = WIFSIGNALED(status);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

TEST(CliErrors, BrokenCheckpointsGiveOneLineErrors) {
  test::TempDir root;
  const auto cases = test::make_broken_checkpoints(root.path());
  ASSERT_GE(cases.size(), 10u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const RunResult r = run("generate -m " + c.dir.string() + " --prompt-ids 1,2 -n 2 --temp 0");
    EXPECT_FALSE(r.signaled) << r.output;
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output.rfind("strata: error: ", 0), 0u) << r.output;
    // Exactly one line.
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find(c.expected), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(c.expected_file), std::string::npos) << r.output;
  }
}

TEST(CliErrors, ValidTinyModelRuns) {
  // The base the gallery damages is itself valid: the errors come from the damage.
  test::TempDir root;
  test::write_tiny_llama(root.path() / "ok");
  const RunResult r = run("generate -m " + (root.path() / "ok").string() + " --prompt-ids 1,2 -n 3 --temp 0 --json");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"new_ids\""), std::string::npos) << r.output;
}

TEST(CliErrors, BadArgumentsAreReported) {
  const RunResult missing = run("generate -m /nonexistent/model --prompt-ids 1");
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_NE(missing.output.find("/nonexistent/model"), std::string::npos) << missing.output;

  const RunResult bad_ids = run("generate -m /tmp --prompt-ids 1,x");
  EXPECT_NE(bad_ids.exit_code, 0);

  const RunResult unknown = run("frobnicate");
  EXPECT_NE(unknown.exit_code, 0);
}

TEST(CliErrors, TokenIdOutsideVocabularyIsAnError) {
  test::TempDir root;
  test::write_tiny_llama(root.path() / "ok");
  const RunResult r = run("generate -m " + (root.path() / "ok").string() + " --prompt-ids 1,99999 -n 1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("outside the vocabulary"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace strata
