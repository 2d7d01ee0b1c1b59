#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "strata/error.h"
#include "strata/generate.h"

namespace strata {
namespace {

TEST(Sampler, GreedyTakesFirstMaximum) {
  Sampler s(SamplingOptions{});
  const std::vector<float> logits{0.1f, 3.0f, 3.0f, -1.0f};
  EXPECT_EQ(s.pick(logits), 1);
}

TEST(Sampler, TopKOneIsGreedy) {
  Sampler s(SamplingOptions{1.0, 1, 1.0, 42});
  const std::vector<float> logits{0.1f, 2.0f, 1.9f, -1.0f};
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.pick(logits), 1);
}

TEST(Sampler, TopPKeepsSmallestSetReachingP) {
  // Probabilities ~ [0.5, 0.3, 0.2]: top_p 0.6 keeps the first two only.
  const std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  Sampler s(SamplingOptions{1.0, 0, 0.6, 1});
  std::map<int32_t, int> counts;
  for (int i = 0; i < 4000; ++i) ++counts[s.pick(logits)];
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(counts[0] / 4000.0, 0.5 / 0.8, 0.03);
}

TEST(Sampler, FrequenciesFollowSoftmax) {
  const std::vector<float> logits{0.0f, std::log(3.0f)};
  Sampler s(SamplingOptions{1.0, 0, 1.0, 9});
  int ones = 0;
  for (int i = 0; i < 8000; ++i) ones += s.pick(logits);
  EXPECT_NEAR(ones / 8000.0, 0.75, 0.02);
}

TEST(Sampler, SameSeedSameDraws) {
  const std::vector<float> logits{0.3f, 0.2f, 0.1f, 0.0f, -0.5f};
  Sampler a(SamplingOptions{0.8, 0, 0.95, 1234}), b(SamplingOptions{0.8, 0, 0.95, 1234});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.pick(logits), b.pick(logits));
}

TEST(Sampler, RejectsBadOptions) {
  EXPECT_THROW(Sampler(SamplingOptions{-1.0, 0, 1.0, 0}), Error);
  EXPECT_THROW(Sampler(SamplingOptions{1.0, 0, 0.0, 0}), Error);
  EXPECT_THROW(Sampler(SamplingOptions{1.0, 0, 1.5, 0}), Error);
}

}  // namespace
}  // namespace strata
