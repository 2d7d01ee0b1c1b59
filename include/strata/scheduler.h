// Continuous batching (DESIGN.md, "Execution: steps, hooks and streaming"):
// sequences join and leave between steps. Each step is ragged: the next token
// of every decoding sequence plus up to `prefill_chunk` prompt tokens of
// sequences still reading their prompts, so a long prompt delays the others
// by one chunk per step, never by the whole prompt. Each sequence has its own
// KV cache slot and length. In exact compute mode a sequence's tokens do not
// depend on what else is in the batch.
//
// Thread-safety: submit, cancel, stats and stop may be called from any
// thread. The steps and every callback run on the scheduler's own thread,
// one at a time; a callback must not call back into the scheduler except
// through its return value. While a scheduler exists it is its model's only
// user (a model runs on one thread at a time).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "strata/generate.h"
#include "strata/model.h"

namespace strata {

struct SchedulerOptions {
  int64_t slots = 4;            // sequences that decode together (KV cache rows)
  int64_t context = 4096;       // tokens per sequence: its prompt and its new tokens
  int64_t prefill_chunk = 256;  // prompt tokens per step, all sequences together
};

enum class FinishReason {
  length,     // max_new_tokens reached
  eos,        // an id of options.eos_ids was produced (and reported)
  stopped,    // the token callback returned false (a stop string matched, the client left)
  cancelled,  // cancel() or stop(false)
  error,      // the step failed: `error` says why
};

struct SequenceSummary {
  FinishReason reason = FinishReason::length;
  int64_t prompt_tokens = 0;
  int64_t new_tokens = 0;
  double first_token_seconds = 0;  // from submit to the first new token
  double seconds = 0;              // from submit to finish
  std::string error;
};

struct SequenceEvents {
  // Each new token with its row of logits (valid during the call only; for
  // logprobs). Returning false ends the sequence with FinishReason::stopped.
  std::function<bool(int32_t token, std::span<const float> logits)> token;
  // Called exactly once, after the last token.
  std::function<void(const SequenceSummary& summary)> finish;
};

struct SchedulerStats {
  int64_t slots = 0;
  int64_t running = 0;  // holding a slot (reading the prompt or decoding)
  int64_t waiting = 0;  // queued for a slot
  uint64_t steps = 0;
  uint64_t new_tokens = 0;      // all sequences, since start
  int64_t last_step_rows = 0;   // sequences in the latest step
  double last_step_seconds = 0;
  double tokens_per_second = 0;  // new tokens of all sequences over the last few seconds of steps
};

class Scheduler {
 public:
  // Allocates the KV cache for options.slots x options.context on the
  // devices that run each layer and starts the step thread. Throws
  // strata::Error (one line) when the cache does not fit.
  Scheduler(Model& model, const SchedulerOptions& options);
  ~Scheduler();  // stop(false)
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a sequence and returns its id. Throws strata::Error for an empty
  // prompt, or when prompt + max_new_tokens exceeds the context (the message
  // says by how many tokens), or after stop().
  uint64_t submit(std::vector<int32_t> prompt, const GenerateOptions& options, SequenceEvents events);
  // Ends a queued or running sequence at the next step (FinishReason::cancelled);
  // an id that already finished is ignored.
  void cancel(uint64_t id);
  // Takes no new sequences; finish_running lets queued and running ones
  // complete, else they are cancelled. Returns when the step thread has ended.
  void stop(bool finish_running);

  SchedulerStats stats() const;
  const SchedulerOptions& options() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
