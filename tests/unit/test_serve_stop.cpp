// strata serve's stop strings: found when split over any number of tokens,
// never sent in part, and text that only looks like a beginning is released
// as soon as it is known not to be one.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "serve_stop.h"

namespace strata::cli::serve {
namespace {

// Pushes the pieces; returns what went out and whether it stopped.
std::pair<std::string, bool> run(const std::vector<std::string>& stops, const std::vector<std::string>& pieces,
                                 std::vector<std::string>* outputs = nullptr) {
  StopMatcher m(stops);
  std::string out;
  for (const std::string& p : pieces) {
    const std::string o = m.push(p);
    if (outputs) outputs->push_back(o);
    out += o;
    if (m.stopped()) break;
  }
  out += m.flush();
  return {out, m.stopped()};
}

TEST(ServeStop, PartialMatchLength) {
  EXPECT_EQ(partial_match_length("hello wor", "world"), 3u);
  EXPECT_EQ(partial_match_length("hello", "world"), 0u);
  EXPECT_EQ(partial_match_length("w", "world"), 1u);
  EXPECT_EQ(partial_match_length("world", "world"), 0u);  // whole matches are not partial
  EXPECT_EQ(partial_match_length("aab", "abc"), 2u);
  EXPECT_EQ(partial_match_length("xx", ""), 0u);
}

TEST(ServeStop, StopInsideOnePiece) {
  EXPECT_EQ(run({"END"}, {"one two END three"}), std::make_pair(std::string("one two "), true));
}

TEST(ServeStop, StopSplitAcrossTokens) {
  std::vector<std::string> outputs;
  const auto [text, stopped] = run({"\n\nUser:"}, {"Sure", ".", "\n", "\nUs", "er", ":", " more"}, &outputs);
  EXPECT_TRUE(stopped);
  EXPECT_EQ(text, "Sure.");
  // Nothing of the stop string was ever released.
  for (const std::string& o : outputs) EXPECT_EQ(o.find('\n'), std::string::npos);
}

TEST(ServeStop, FalseStartIsReleased) {
  std::vector<std::string> outputs;
  const auto [text, stopped] = run({"STOP"}, {"ST", "O", "P-less? no: STO", "ne"}, &outputs);
  // "STOP" completes in the third piece.
  EXPECT_TRUE(stopped);
  EXPECT_EQ(text, "");
  const auto [text2, stopped2] = run({"STOP"}, {"ST", "ONE", " age"}, &outputs);
  EXPECT_FALSE(stopped2);
  EXPECT_EQ(text2, "STONE age");
}

TEST(ServeStop, HeldTextIsReleasedAtTheEnd) {
  std::vector<std::string> outputs;
  const auto [text, stopped] = run({"</answer>"}, {"42 </ans"}, &outputs);
  EXPECT_FALSE(stopped);
  EXPECT_EQ(outputs[0], "42 ");
  EXPECT_EQ(text, "42 </ans");
}

TEST(ServeStop, EarliestOfSeveralStops) {
  EXPECT_EQ(run({"bb", "a"}, {"xxbb", "a"}).first, "xx");
  EXPECT_EQ(run({"cd", "bcde"}, {"ab", "cde"}).first, "a");  // "bcde" begins first
  StopMatcher m({"cd", "x"});
  EXPECT_EQ(m.push("abcdx"), "ab");
  EXPECT_EQ(m.matched(), "cd");
  EXPECT_EQ(m.push("more"), "");
}

TEST(ServeStop, SplitInsideAMultibyteCharacter) {
  // "é" is C3 A9: a stop string that starts inside a character's bytes still
  // holds back only whole-prefix tails.
  const auto [text, stopped] = run({"é!"}, {"caf\xC3", "\xA9", "!"});
  EXPECT_TRUE(stopped);
  EXPECT_EQ(text, "caf");
}

TEST(ServeStop, NoStopsPassesEverything) {
  StopMatcher m({});
  EXPECT_EQ(m.push("abc"), "abc");
  EXPECT_EQ(m.flush(), "");
  EXPECT_FALSE(m.stopped());
}

}  // namespace
}  // namespace strata::cli::serve
