#include "models/causal_lm.h"

#include <algorithm>

namespace strata {

StepLimits step_limits(int64_t rows, int64_t capacity, bool all_logits, int workers) {
  StepLimits limits;
  limits.rows = rows;
  limits.capacity = capacity;
  limits.workers = workers;
  // A chunk gives every row the same number of tokens, at least one.
  const int64_t per_row = std::clamp<int64_t>(kMaxStepTokens / rows, 1, capacity);
  limits.max_tokens = rows * per_row;
  limits.logit_rows = all_logits ? limits.max_tokens : rows;
  return limits;
}

}  // namespace strata
