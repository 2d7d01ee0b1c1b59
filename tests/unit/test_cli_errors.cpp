// The `strata` command on damaged checkpoints: every case must end with one
// line on stderr that names the problem, a non-zero exit and no crash.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "broken_checkpoints.h"
#include "test_support.h"

namespace strata {
namespace {

// Errors go to stderr as one line; nothing on stdout.
test::CliResult run(const std::string& args) { return test::run_cli(args); }

TEST(CliErrors, BrokenCheckpointsGiveOneLineErrors) {
  test::TempDir root;
  const auto cases = test::make_broken_checkpoints(root.path());
  ASSERT_GE(cases.size(), 10u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const test::CliResult r = run("generate -m " + c.dir.string() + " --prompt-ids 1,2 -n 2 --temp 0");
    EXPECT_NE(r.exit_code, 0) << r.err;  // run_cli fails the test on a crash
    EXPECT_EQ(r.err.rfind("strata: error: ", 0), 0u) << r.err;
    // Exactly one line.
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.expected_file), std::string::npos) << r.err;
  }
}

TEST(CliErrors, ValidTinyModelRuns) {
  // The base the gallery damages is itself valid: the errors come from the damage.
  test::TempDir root;
  test::write_tiny_llama(root.path() / "ok");
  const test::CliResult r = run("generate -m " + (root.path() / "ok").string() + " --prompt-ids 1,2 -n 3 --temp 0 --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"new_ids\""), std::string::npos) << r.err;
}

TEST(CliErrors, BadArgumentsAreReported) {
  const test::CliResult missing = run("generate -m /nonexistent/model --prompt-ids 1");
  EXPECT_EQ(missing.exit_code, 1) << missing.err;
  EXPECT_NE(missing.err.find("/nonexistent/model"), std::string::npos) << missing.err;

  const test::CliResult bad_ids = run("generate -m /tmp --prompt-ids 1,x");
  EXPECT_NE(bad_ids.exit_code, 0);

  const test::CliResult unknown = run("frobnicate");
  EXPECT_NE(unknown.exit_code, 0);
}

// GPT-2 learned n_positions (64 in the fixture) positions: a longer run is
// refused before loading, not after its first tokens.
TEST(CliErrors, LongerThanLearnedPositionsFailsBeforeGenerating) {
  STRATA_REQUIRE_FIXTURES();
  const std::string model = (test::fixtures_dir() / "models" / "gpt2-tiny-random").string();
  const test::CliResult r = run("generate -m " + model + " --prompt-ids 1,5,9 -n 100 --temp 0");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("longer than the 64 positions this model has learned"), std::string::npos) << r.err;
}

// The tests above expect non-zero exits; run_cli fails them on a crash or on
// a command that never ran, which would give one too. The shell fragments
// stand in for those: strata runs in the background, then the shell is
// replaced by a process that kills itself, or by one that does not exist.
TEST(CliErrors, RunCliFailsOnACrashOrACommandThatNeverRan) {
  EXPECT_NONFATAL_FAILURE(test::run_cli("--help >/dev/null 2>&1 & exec sh -c 'kill -KILL $$'"), "killed by signal 9");
  EXPECT_NONFATAL_FAILURE(test::run_cli("--help >/dev/null 2>&1 & exec /nonexistent/strata"),
                          "did not run to an exit of its own (exit 127)");
}

TEST(CliErrors, TokenIdOutsideVocabularyIsAnError) {
  test::TempDir root;
  test::write_tiny_llama(root.path() / "ok");
  const test::CliResult r = run("generate -m " + (root.path() / "ok").string() + " --prompt-ids 1,99999 -n 1");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("outside the vocabulary"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace strata
