// Continuous batching: sequences submitted at different times, more of them
// than slots, with prompts fed in chunks, each produce exactly the greedy
// tokens generate() gives for them alone; cancel, a callback's stop and
// stop() end sequences and free their slots for the others.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "strata/error.h"
#include "strata/generate.h"
#include "strata/model.h"
#include "strata/scheduler.h"
#include "test_support.h"

namespace strata {
namespace {

// What the scheduler reports for one sequence, for the test thread to wait on.
class Collector {
 public:
  // stop_after: the token callback returns false at that many tokens.
  // linger: it holds the step thread 300 ms after the first token, so a
  // cancel or stop the test makes then lands before the sequence can end.
  SequenceEvents events(int64_t stop_after = -1, bool linger = false) {
    SequenceEvents e;
    e.token = [this, stop_after, linger](int32_t token, std::span<const float>) {
      size_t count;
      {
        std::lock_guard lock(mutex_);
        tokens_.push_back(token);
        count = tokens_.size();
        changed_.notify_all();
      }
      if (linger && count == 1) std::this_thread::sleep_for(std::chrono::milliseconds(300));
      return stop_after < 0 || static_cast<int64_t>(count) < stop_after;
    };
    e.finish = [this](const SequenceSummary& s) {
      std::lock_guard lock(mutex_);
      summary_ = s;
      changed_.notify_all();
    };
    return e;
  }
  // Waits until the sequence finished, and returns how.
  SequenceSummary summary() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return summary_.has_value(); });
    return *summary_;
  }
  void wait_for_tokens(size_t n) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return tokens_.size() >= n || summary_.has_value(); });
  }
  std::vector<int32_t> tokens() {
    std::lock_guard lock(mutex_);
    return tokens_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<int32_t> tokens_;
  std::optional<SequenceSummary> summary_;
};

class ContinuousBatching : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    STRATA_REQUIRE_FIXTURES();
    const auto dir = test::fixtures_dir() / "models" / GetParam();
    const test::Reference ref = test::read_reference(dir);
    const auto& ids = ref.input_ids;
    const auto row = [&](int64_t r, size_t n) {
      return std::vector<int32_t>(ids.begin() + r * ref.tokens, ids.begin() + r * ref.tokens + static_cast<long>(n));
    };
    prompts_ = {row(0, 3), row(1, 8), row(0, 6), row(1, 5)};
    ModelOptions options = test::with_threads(2);
    options.batch = 2;
    options.ctx = 16;
    model_ = Model::load(dir, options);
  }

  GenerateOptions greedy(int64_t new_tokens) const {
    GenerateOptions g;
    g.max_new_tokens = new_tokens;
    return g;
  }

  std::unique_ptr<Model> model_;
  std::vector<std::vector<int32_t>> prompts_;
};

TEST_P(ContinuousBatching, EverySequenceComputesWhatItComputesAlone) {
  // Two slots for four sequences; prompts fed 4 tokens per step, all
  // sequences together; the last two join while the first two decode.
  const int64_t new_tokens[] = {6, 3, 5, 4};
  std::vector<GenerateResult> alone;  // first: the model serves one thread at a time
  for (size_t i = 0; i < prompts_.size(); ++i) alone.push_back(generate(*model_, prompts_[i], greedy(new_tokens[i])));
  Scheduler scheduler(*model_, {.slots = 2, .context = 16, .prefill_chunk = 4});
  std::vector<Collector> collectors(prompts_.size());
  scheduler.submit(prompts_[0], greedy(new_tokens[0]), collectors[0].events());
  scheduler.submit(prompts_[1], greedy(new_tokens[1]), collectors[1].events());
  collectors[0].wait_for_tokens(1);
  scheduler.submit(prompts_[2], greedy(new_tokens[2]), collectors[2].events());
  scheduler.submit(prompts_[3], greedy(new_tokens[3]), collectors[3].events());
  for (size_t i = 0; i < prompts_.size(); ++i) {
    SCOPED_TRACE("sequence " + std::to_string(i));
    const SequenceSummary s = collectors[i].summary();
    EXPECT_EQ(collectors[i].tokens(), alone[i].new_ids);
    EXPECT_EQ(s.reason, alone[i].stopped_on_eos ? FinishReason::eos : FinishReason::length);
    EXPECT_EQ(s.prompt_tokens, static_cast<int64_t>(prompts_[i].size()));
    EXPECT_EQ(s.new_tokens, static_cast<int64_t>(alone[i].new_ids.size()));
    EXPECT_GT(s.first_token_seconds, 0.0);
  }
  const SchedulerStats stats = scheduler.stats();
  EXPECT_EQ(stats.running, 0);
  EXPECT_EQ(stats.waiting, 0);
  EXPECT_GT(stats.steps, 0u);
}

TEST_P(ContinuousBatching, CancelAndCallbackStopFreeTheirSlots) {
  const GenerateResult alone = generate(*model_, prompts_[2], greedy(5));
  Scheduler scheduler(*model_, {.slots = 2, .context = 16, .prefill_chunk = 16});
  Collector cancelled, stopped, after;
  const uint64_t id = scheduler.submit(prompts_[0], greedy(12), cancelled.events(-1, /*linger=*/true));
  scheduler.submit(prompts_[1], greedy(8), stopped.events(/*stop_after=*/2));
  cancelled.wait_for_tokens(1);
  scheduler.cancel(id);
  // Both slots come free for a third sequence, which computes what it does alone.
  scheduler.submit(prompts_[2], greedy(5), after.events());
  EXPECT_EQ(cancelled.summary().reason, FinishReason::cancelled);
  EXPECT_LT(cancelled.summary().new_tokens, 12);
  EXPECT_EQ(stopped.summary().reason, FinishReason::stopped);
  EXPECT_EQ(stopped.summary().new_tokens, 2);
  after.summary();
  EXPECT_EQ(after.tokens(), alone.new_ids);
  scheduler.cancel(id);  // already finished: ignored
}

TEST_P(ContinuousBatching, StopCancelsOrFinishesAndThenRefuses) {
  Collector finished, waiting;
  {
    Scheduler scheduler(*model_, {.slots = 1, .context = 16, .prefill_chunk = 16});
    scheduler.submit(prompts_[0], greedy(4), finished.events());
    scheduler.stop(/*finish_running=*/true);
    EXPECT_EQ(finished.summary().new_tokens, 4);
    EXPECT_THROW(scheduler.submit(prompts_[0], greedy(1), waiting.events()), Error);
  }
  Scheduler scheduler(*model_, {.slots = 1, .context = 16, .prefill_chunk = 16});
  Collector running;
  scheduler.submit(prompts_[0], greedy(12), running.events(-1, /*linger=*/true));
  scheduler.submit(prompts_[1], greedy(4), waiting.events());
  running.wait_for_tokens(1);
  scheduler.stop(/*finish_running=*/false);
  EXPECT_EQ(running.summary().reason, FinishReason::cancelled);
  EXPECT_EQ(waiting.summary().reason, FinishReason::cancelled);
  EXPECT_EQ(waiting.summary().new_tokens, 0);
}

TEST_P(ContinuousBatching, TooLongSaysByHowMuch) {
  Scheduler scheduler(*model_, {.slots = 1, .context = 16, .prefill_chunk = 16});
  Collector c;
  try {
    scheduler.submit(prompts_[1], greedy(11), c.events());  // 8 + 11 = 19 > 16
    FAIL() << "a sequence longer than the context was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("by 3 tokens"), std::string::npos) << e.what();
  }
  EXPECT_THROW(scheduler.submit({}, greedy(1), c.events()), Error);
}

// A dense family, one with a sliding window, a mixture of experts and a
// pre-quantized checkpoint.
INSTANTIATE_TEST_SUITE_P(Fixtures, ContinuousBatching,
                         ::testing::Values("stories260k", "gemma2-tiny-random", "qwen3moe-tiny-random",
                                           "llama-gptq-4bit-g32"),
                         test::ParamName());

}  // namespace
}  // namespace strata
