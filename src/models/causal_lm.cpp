#include "models/causal_lm.h"

#include <algorithm>
#include <string>

#include "strata/error.h"

namespace strata {

StepLimits step_limits(int64_t rows, int64_t capacity, bool all_logits, int workers) {
  if (rows < 1 || rows > kMaxRows)
    throw Error("a session needs between 1 and " + std::to_string(kMaxRows) + " rows, not " + std::to_string(rows));
  if (capacity < 1 || capacity > kMaxContext)
    throw Error("a context of " + std::to_string(capacity) + " tokens is out of range (1 to " +
                    std::to_string(kMaxContext) + ")",
                "", "", "lower --max-new-tokens or --ctx");
  StepLimits limits;
  limits.rows = rows;
  limits.capacity = capacity;
  limits.workers = workers;
  // A chunk gives every row the same number of tokens, at least one.
  const int64_t per_row = std::clamp<int64_t>(kMaxStepTokens / rows, 1, capacity);
  limits.max_tokens = rows * per_row;
  limits.logit_rows = all_logits ? limits.max_tokens : rows;
  limits.all_logits = all_logits;
  return limits;
}

SessionHostSizes session_host_sizes(const ModelConfig& config, const StepLimits& limits) {
  const auto vocab = static_cast<size_t>(config.vocab_size);
  const auto rows = static_cast<size_t>(limits.rows);
  SessionHostSizes sizes;
  sizes.logits = (limits.all_logits ? rows * static_cast<size_t>(limits.capacity) : rows) * vocab;
  sizes.ids = static_cast<size_t>(limits.max_tokens);
  sizes.bounce = std::max(static_cast<size_t>(limits.max_tokens * config.hidden_size),
                          static_cast<size_t>(limits.logit_rows) * vocab);
  return sizes;
}

}  // namespace strata
