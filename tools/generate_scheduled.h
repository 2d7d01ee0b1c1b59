// strata generate on the scheduler (continuous batching): one prompt, or a
// file of prompts decoded --batch at a time.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "strata/generate.h"
#include "strata/model.h"
#include "strata/tokenizer.h"

namespace strata::cli {

// Generates from one prompt on a one-slot scheduler. The whole prompt goes
// in one step, so streamed weights are read once for it, as generate() does;
// on_token gets each new id as it is chosen (on the scheduler's thread).
// Throws strata::Error when a step fails.
GenerateResult generate_scheduled(Model& model, std::vector<int32_t> prompt, const GenerateOptions& options,
                                  const std::function<void(int32_t)>& on_token);

// Reads one prompt per line (blank lines skipped); throws strata::Error for
// an unreadable or empty file.
std::vector<std::string> read_prompt_lines(const std::string& path);

// Generates for every prompt with `batch` slots of continuous batching (a
// prompt starts as soon as a slot is free), printing each result in order
// (text, or one JSON object per line with json) and a throughput line.
void run_prompt_batches(Model& model, const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                        bool add_special, int64_t batch, const GenerateOptions& options, bool json);

}  // namespace strata::cli
