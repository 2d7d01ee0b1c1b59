#include "strata/generate.h"

#include <algorithm>
#include <chrono>

#include "core/clock.h"
#include "strata/error.h"

namespace strata {

GenerateResult generate(Model& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                        const std::function<void(int32_t)>& on_token) {
  if (prompt.empty()) throw Error("the prompt is empty", "", "", "give at least one token, e.g. BOS");
  if (options.max_new_tokens < 0) throw Error("the number of new tokens must be >= 0");
  GenerateResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  if (options.max_new_tokens == 0) return result;

  Sampler sampler(options.sampling);
  // The last new token is never fed back, so it needs no cache slot.
  Session session(model, 1, static_cast<int64_t>(prompt.size()) + options.max_new_tokens - 1);
  auto is_eos = [&](int32_t id) {
    return std::find(options.eos_ids.begin(), options.eos_ids.end(), id) != options.eos_ids.end();
  };

  auto start = std::chrono::steady_clock::now();
  std::span<const float> logits = session.feed(prompt, static_cast<int64_t>(prompt.size()));
  result.prompt_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  for (;;) {
    const int32_t next = sampler.pick(logits);
    result.new_ids.push_back(next);
    if (on_token) on_token(next);
    if (is_eos(next)) {
      result.stopped_on_eos = true;
      break;
    }
    if (static_cast<int64_t>(result.new_ids.size()) >= options.max_new_tokens) break;
    logits = session.feed(std::span<const int32_t>(&next, 1), 1);
  }
  result.generate_seconds = seconds_since(start);
  return result;
}

BatchGenerateResult generate_batch(Model& model, const std::vector<std::vector<int32_t>>& prompts,
                                   const GenerateOptions& options) {
  if (prompts.empty()) throw Error("no prompts to generate from");
  if (options.max_new_tokens < 0) throw Error("the number of new tokens must be >= 0");
  const auto rows = static_cast<int64_t>(prompts.size());
  BatchGenerateResult result;
  result.rows.resize(prompts.size());
  size_t longest = 0;
  for (size_t r = 0; r < prompts.size(); ++r) {
    result.rows[r].prompt_tokens = static_cast<int64_t>(prompts[r].size());
    longest = std::max(longest, prompts[r].size());
  }
  if (options.max_new_tokens == 0) return result;

  std::vector<Sampler> samplers;
  for (int64_t r = 0; r < rows; ++r) {
    SamplingOptions sampling = options.sampling;
    sampling.seed += static_cast<uint64_t>(r);
    samplers.emplace_back(sampling);
  }
  Session session(model, rows, static_cast<int64_t>(longest) + options.max_new_tokens - 1);
  auto is_eos = [&](int32_t id) {
    return std::find(options.eos_ids.begin(), options.eos_ids.end(), id) != options.eos_ids.end();
  };
  const size_t vocab = static_cast<size_t>(model.config().vocab_size);

  auto start = std::chrono::steady_clock::now();
  std::span<const float> logits = session.feed_prompts(prompts);
  result.prompt_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  std::vector<int32_t> next(prompts.size());
  std::vector<bool> done(prompts.size(), false);
  for (int64_t step = 0;; ++step) {
    size_t active = 0;
    for (size_t r = 0; r < prompts.size(); ++r) {
      if (done[r]) continue;
      next[r] = samplers[r].pick(logits.subspan(r * vocab, vocab));
      GenerateResult& row = result.rows[r];
      row.new_ids.push_back(next[r]);
      if (step > 0) ++result.decode_tokens;
      row.stopped_on_eos = is_eos(next[r]);
      done[r] = row.stopped_on_eos || static_cast<int64_t>(row.new_ids.size()) >= options.max_new_tokens;
      active += done[r] ? 0 : 1;
    }
    if (active == 0) break;
    // Finished rows ride along (their outputs are ignored): one pass serves all.
    logits = session.feed(next, 1);
  }
  result.generate_seconds = seconds_since(start);
  return result;
}

}  // namespace strata
