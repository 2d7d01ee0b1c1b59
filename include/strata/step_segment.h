// A sequence's part of a ragged step (DESIGN.md, "Execution: steps"): the
// unit in which sessions, the executor and the models take new tokens.
#pragma once

#include <cstdint>

namespace strata {

// `tokens` ids appended to session (KV cache) row `row`, after the
// positions it holds.
struct StepSegment {
  int64_t row = 0;
  int64_t tokens = 1;
};

}  // namespace strata
